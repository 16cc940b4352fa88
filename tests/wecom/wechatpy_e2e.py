"""Drive Enclave's WeCom-compatible API with wechatpy, a real third-party
WeCom SDK (https://github.com/wechatpy/wechatpy), the way an HR or OA
integration does: only the base URL changes and the cluster CA is trusted.

Run by tests/tests/wechatpy.rs, which starts the node and passes, in the
environment: BASE (https://host:port of the api port), CA (cluster CA
PEM), CORPID, SECRET, AGENTID, CTL (enclavectl), CERT_DIR (operator
bundle), ADMIN (admin endpoint), FAULT_DIR (the node's test clock),
RECV_CERT and RECV_KEY (a certificate of the cluster CA for 127.0.0.1,
for the callback receiver). Prints ALL OK on success; any failed check
raises.
"""

import http.server
import json
import os
import re
import socket
import ssl
import subprocess
import threading
import time
import urllib.parse

import requests
from wechatpy.enterprise import WeChatClient
from wechatpy.enterprise.crypto import WeChatCrypto
from wechatpy.exceptions import WeChatClientException

E = os.environ
BASE = E["BASE"].rstrip("/")
API = BASE + "/cgi-bin/"
CA = E["CA"]
CORPID, SECRET, AGENTID = E["CORPID"], E["SECRET"], int(E["AGENTID"])
PW = "correct horse battery"


class Client(WeChatClient):
    """wechatpy's enterprise client with the base URL moved on-prem (its
    gettoken URL is hard-coded, so that one method follows too)."""

    API_BASE_URL = API

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self._http.verify = CA
        self._http.trust_env = False

    def fetch_access_token(self):
        return self._fetch_access_token(
            url=API + "gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )


def expect_error(code, fn, *a, **kw):
    try:
        r = fn(*a, **kw)
    except WeChatClientException as e:
        assert e.errcode == code, f"expected {code}, got {e.errcode}: {e.errmsg}"
        return e
    raise AssertionError(f"expected error {code}, got {r}")


def ctl(*args):
    out = subprocess.run(
        [E["CTL"], "--cert-dir", E["CERT_DIR"], "--endpoint", E["ADMIN"], *args],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, f"enclavectl {args}: {out.stderr}"
    return out.stdout


def native(method, path, token=None, body=None):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    r = requests.request(method, BASE + path, json=body, headers=h, verify=CA)
    return r.status_code, r.json()


c = Client(CORPID, SECRET)

# --- token -----------------------------------------------------------------
tok = c.fetch_access_token()
assert tok["errcode"] == 0 and tok["expires_in"] == 7200, tok

# --- departments -----------------------------------------------------------
sales = c.department.create("销售部", parent_id=1)["id"]
north = c.department.create("华北区", parent_id=sales, order=10, id=20)["id"]
assert north == 20
c.department.update(north, name="华北大区")
depts = {d["id"]: d for d in c.department.get(sales)}
assert set(depts) == {sales, 20} and depts[20]["name"] == "华北大区", depts
simple = c.get("department/simplelist")["department_id"]
assert {d["id"] for d in simple} == {1, sales, 20}, simple
expect_error(60008, c.department.create, "销售部", parent_id=1)
expect_error(60003, c.department.delete, 999)

# --- users -----------------------------------------------------------------
c.user.create(
    "zhangsan", "张三", department=[sales, 20], position="经理",
    mobile="13800000001", gender=1, email="zs@example.com",
    is_leader_in_dept=[0, 1], order=[5, 1], alias="Zhang",
)
u = c.user.get("zhangsan")
assert u["name"] == "张三" and u["department"] == [sales, 20], u
assert u["is_leader_in_dept"] == [0, 1] and u["order"] == [5, 1], u
assert u["gender"] == "1" and u["alias"] == "Zhang" and u["status"] == 1, u
assert c.department.get(20)[0]["department_leader"] == ["zhangsan"]
c.user.update("zhangsan", position="总监")
assert c.user.get("zhangsan")["position"] == "总监"
for i in range(3):
    c.user.create(f"tmp{i}", f"临时{i}", department=[20])
listed = {x["userid"] for x in c.user.list(sales, fetch_child=True, simple=True)}
assert listed == {"zhangsan", "tmp0", "tmp1", "tmp2"}, listed
assert {x["userid"] for x in c.user.list(sales, simple=False)} == {"zhangsan"}
c.user.batch_delete(["tmp1", "tmp2"])
c.user.delete("tmp0")
expect_error(60111, c.user.get, "tmp0")
expect_error(60111, c.user.get, "nobody")
expect_error(60102, c.user.create, "zhangsan", "重复", department=[1])
expect_error(40003, c.user.create, "bad id!", "坏", department=[1])
expect_error(60005, c.department.delete, 20)

# --- bulk full sync: replaceuser -------------------------------------------
rows = ["姓名,帐号,手机号,邮箱,所在部门,职位,性别,是否部门负责人,排序"]
for i in range(300):
    rows.append(f"员工{i},e{i:04d},1390000{i:04d},e{i}@example.com,{sales};20,职员,2,0;0,{i};0")
rows.append("李四,lisi,13900009999,lisi@example.com,20,主管,1,1,1")
rows.append("坏行,bad row!,,,x,,,,")
media = c.media.upload("file", ("users.csv", "\n".join(rows).encode("utf-8")))
assert media["type"] == "file" and media["media_id"], media
job = c.batch.replace_user("", "", "", media["media_id"])["jobid"]
for _ in range(600):
    res = c.batch.get_result(job)
    if res["status"] == 3:
        break
    time.sleep(0.2)
assert res["status"] == 3 and res["type"] == "replace_user", res
assert res["total"] == 302 and res["percentage"] == 100, res
rowres = [r for r in res["result"] if not r["errmsg"].startswith("disabled")]
assert len(rowres) == 302, len(rowres)
bad = [r for r in rowres if r["errcode"] != 0]
assert [r["userid"] for r in bad] == ["bad row!"], bad
# zhangsan was not in the file: disabled, not deleted.
assert c.user.get("zhangsan")["status"] == 2
assert c.user.get("e0299")["department"] == [sales, 20]
assert "lisi" in c.department.get(20)[0]["department_leader"]

# --- app messages ----------------------------------------------------------
r = c.message.send_text(AGENTID, ["e0001", "nobody"], "请于周五前提交报销单")
assert r["invaliduser"] == "nobody" and r["msgid"], r
r = c.message.send_text(AGENTID, [], "全员通知", party_ids=["20"])
assert r["errcode"] == 0, r
r = c.message.send(AGENTID, ["e0002"], msg={"msgtype": "markdown", "markdown": {"content": "**审批通过**"}})
assert r["errcode"] == 0, r
r = c.message.send_text_card(AGENTID, ["e0002"], "领奖通知", "<div class=\"gray\">2026年12月2日</div>", "https://oa.example.internal/x")
assert r["errcode"] == 0, r
c.post("message/recall", data={"msgid": r["msgid"]})
expect_error(81013, c.message.send_text, AGENTID, ["nobody"], "x")

# --- media: an image and a file uploaded, sent, read back ------------------
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da636460f85f0f0002870180eb47ba920000000049454e44ae426082"
)
img = c.media.upload("image", ("chart.png", PNG))
assert img["type"] == "image" and img["media_id"] and img["created_at"], img
r = c.message.send_image(AGENTID, ["e0001"], img["media_id"])
assert r["errcode"] == 0 and r["msgid"], r
doc = c.media.upload("file", ("报告.txt", "季度报告".encode("utf-8")))
r = c.message.send_file(AGENTID, ["e0001"], doc["media_id"])
assert r["errcode"] == 0, r
# wechatpy's media.download has WeCom's host built in: same call by hand.
got = requests.get(
    API + "media/get",
    params={"access_token": c.access_token, "media_id": img["media_id"]},
    verify=CA,
)
assert got.status_code == 200 and got.content == PNG, (got.status_code, got.content[:200])
assert got.headers["Content-Type"] == "image/png", got.headers
expect_error(40007, c.message.send_image, AGENTID, ["e0001"], "f" + "0" * 32)
expect_error(40004, c.media.upload, "video", ("a.mp4", b"x"))
expect_error(40005, c.media.upload, "image", ("a.png", b"not a picture"))

# --- app group chats ---------------------------------------------------------
chat = c.appchat.create(chat_id="proj1", name="项目群", owner="lisi", user_list=["lisi", "e0001"])
assert chat["chatid"] == "proj1", chat
c.appchat.update("proj1", add_user_list=["e0002"], name="项目群2")
info = c.appchat.get("proj1")
assert set(info["userlist"]) == {"lisi", "e0001", "e0002"} and info["name"] == "项目群2", info
c.appchat.send_text("proj1", "开会")

# --- a member reads it all natively ----------------------------------------
pwfile = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"pw-{os.getpid()}")
with open(pwfile, "w") as f:
    f.write(PW + "\n")
ctl("directory", "member", "set-password", "e0002", "--password-file", pwfile)
s, login = native("POST", "/v1/login", body={"userid": "e0002", "password": PW})
assert s == 200, login
new_pw = PW + " 2"
s, _ = native("POST", "/v1/me/password", login["access_token"], {"old_password": PW, "new_password": new_pw})
assert s == 200
s, page = native("GET", "/v1/sync?limit=500", login["access_token"])
texts = [e["message"]["text"] for e in page["events"] if e["type"] == "message"]
assert "全员通知" in texts and "**审批通过**" in texts and "开会" in texts, texts
cards = [e["message"] for e in page["events"] if e["type"] == "message" and e["message"]["recalled"]]
assert len(cards) == 1 and cards[0]["text"] == "", cards

# --- OAuth2 sign-in: code -> userid ----------------------------------------
browser = requests.Session()
browser.verify = CA
browser.trust_env = False
redirect = "https://oa.example.internal/sso"
page = browser.get(BASE + "/connect/oauth2/authorize", params={
    "appid": CORPID, "redirect_uri": redirect, "response_type": "code",
    "scope": "snsapi_base", "state": "st1", "agentid": AGENTID,
})
assert page.status_code == 200 and "<form" in page.text, page.text
fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', page.text))
fields.update({"userid": "e0002", "password": new_pw})
fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
post = browser.post(BASE + "/connect/oauth2/authorize", data=fields, allow_redirects=False)
assert post.status_code == 303, (post.status_code, post.text)
loc = urllib.parse.urlparse(post.headers["Location"])
q = urllib.parse.parse_qs(loc.query)
assert loc.netloc == "oa.example.internal" and q["state"] == ["st1"], loc
code = q["code"][0]
info = c.oauth.get_user_info(code)  # wechatpy calls user/getuserinfo
assert info["UserId"] == "e0002", info
expect_error(40029, c.oauth.get_user_info, code)
# The sign-in cookie: the next authorize redirects at once.
again = browser.get(BASE + "/connect/oauth2/authorize", params={
    "appid": CORPID, "redirect_uri": redirect, "state": "st2", "agentid": AGENTID,
}, allow_redirects=False)
assert again.status_code == 303 and "code=" in again.headers["Location"], again.status_code
code2 = urllib.parse.parse_qs(urllib.parse.urlparse(again.headers["Location"]).query)["code"][0]
assert c.get("auth/getuserinfo", params={"code": code2})["userid"] == "e0002"

# --- callbacks, decrypted with wechatpy's own crypto -----------------------
TOKEN, AES = "wxTok3n", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
crypto = WeChatCrypto(TOKEN, AES, CORPID)
got = []


class Receiver(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _answer(self, body):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _q(self):
        return {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query).items()}

    def do_GET(self):  # URL verification
        q = self._q()
        plain = crypto.check_signature(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
        self._answer(plain.encode() if isinstance(plain, str) else plain)

    def do_POST(self):
        q = self._q()
        body = self.rfile.read(int(self.headers["Content-Length"]))
        got.append(crypto.decrypt_message(body, q["msg_signature"], q["timestamp"], q["nonce"]))
        self._answer(b"success")


sock = socket.socket()
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
sock.close()
server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(E["RECV_CERT"], E["RECV_KEY"])
server.socket = tls.wrap_socket(server.socket, server_side=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
ctl("app", "set-callback", str(AGENTID), "--url", f"https://127.0.0.1:{port}/cb", "--token", TOKEN, "--aes-key", AES)
# An operator's change reaches the app (its own changes would not).
ctl("directory", "member", "add", "wangwu", "--name", "王五", "--dept", "1")
# A member writes to the app.
s, login = native("POST", "/v1/login", body={"userid": "e0002", "password": new_pw})
s, v = native("POST", f"/v1/conversations/a{AGENTID}.e0002/messages", login["access_token"], {"text": "收到，谢谢"})
assert s == 200, v
for _ in range(200):
    if len(got) >= 2:
        break
    time.sleep(0.1)
assert len(got) >= 2, got
change = next(x for x in got if "change_contact" in x)
assert "<ChangeType><![CDATA[create_user]]></ChangeType>" in change and "wangwu" in change, change
reply = next(x for x in got if "<MsgType><![CDATA[text]]></MsgType>" in x)
assert "收到，谢谢" in reply and "<FromUserName><![CDATA[e0002]]></FromUserName>" in reply, reply

# --- approvals (oa) ---------------------------------------------------------
import tempfile

with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
    json.dump({"name": "请假", "fields": [
        {"key": "days", "label": "天数", "type": "number", "required": True},
        {"key": "kind", "label": "类型", "type": "choice", "required": True, "options": ["年假", "病假"]},
        {"key": "note", "label": "说明", "type": "text"}],
        "flow": [{"user": "wangwu"}], "cc": []}, f)
ctl("approval", "template", "put", "leave", f.name)
contents = [
    {"control": "Number", "id": "days", "title": [{"text": "天数", "lang": "zh_CN"}], "value": {"new_number": "2"}},
    {"control": "Selector", "id": "kind", "value": {"selector": {"type": "single", "options": [{"key": "年假"}]}}},
    {"control": "Textarea", "id": "note", "value": {"text": "回家"}},
]
r = c.OA.apply_event("e0002", "leave", 1, None, {"contents": contents}, [{"summary_info": [{"text": "请假2天", "lang": "zh_CN"}]}])
sp_no = r["sp_no"]
d = c.OA.get_approval_detail(sp_no)["info"]
assert d["sp_status"] == 1 and d["applyer"]["userid"] == "e0002" and d["template_id"] == "leave", d
assert d["sp_record"][0]["details"][0]["approver"]["userid"] == "wangwu", d
assert {x["id"]: x["value"] for x in d["apply_data"]["contents"]}["days"] == {"new_number": "2"}, d
now = int(time.time())
info = c.OA.get_approval_info(now - 600, now + 600, 0, 100, [{"key": "creator", "value": "e0002"}])
assert info["sp_no_list"] == [sp_no], info
# An explicit approver list (use_template_approver 0); a number with text.
r = c.OA.apply_event("e0002", "leave", 0, [{"attr": 1, "userid": ["wangwu"]}], {"contents": contents}, [], notifyer=["lisi"])
assert c.OA.get_approval_detail(r["sp_no"])["info"]["notifyer"] == [{"userid": "lisi"}]
bad = [dict(contents[0], value={"new_number": "两天"})] + contents[1:]
e = expect_error(40058, c.OA.apply_event, "e0002", "leave", 1, None, {"contents": bad}, [])
assert "days" in e.errmsg, e.errmsg

# --- external contacts (外部联系人) -----------------------------------------
# e0002 invites a customer through the client API (the invitation and its
# acceptance are the people's side); the integration reads the contact and
# the customer group, and after e0002 leaves hands both to wangwu, all with
# wechatpy's own calls.
ctl("directory", "permission", "grant", "e0002", "external:add")
s, login = native("POST", "/v1/login", body={"userid": "e0002", "password": new_pw})
assert s == 200, login
t2 = login["access_token"]
for _ in range(300):  # log version 3 (a fresh cluster moves within seconds)
    s, inv = native("POST", "/v1/external/invitations", t2)
    if s != 503:
        break
    time.sleep(0.1)
assert s == 200, inv
s, acc = native("POST", "/v1/external/accept", body={
    "code": inv["code"], "userid": "wm-acme-zhang", "name": "张经理", "org": "Acme 贸易", "password": PW})
assert s == 200, acc
assert c.external_contact.list("e0002")["external_userid"] == ["wm-acme-zhang"]
x = c.external_contact.get("wm-acme-zhang")
assert x["external_contact"]["name"] == "张经理" and x["external_contact"]["corp_name"] == "Acme 贸易", x
assert [f["userid"] for f in x["follow_user"]] == ["e0002"], x
s, grp = native("POST", "/v1/external/groups", t2, {"name": "Acme 客户群", "members": ["wm-acme-zhang", "wangwu"]})
assert s == 200 and grp["external"] and grp["kind"] == "customer", grp
chats = c.external_contact_group_chat.list(owner_userid_list=["e0002"])["group_chat_list"]
assert [ch["chat_id"] for ch in chats] == [grp["id"]], chats
info = c.external_contact_group_chat.get(grp["id"])["group_chat"]
types = {m["userid"]: m["type"] for m in info["member_list"]}
assert info["owner"] == "e0002" and types == {"e0002": 1, "wangwu": 1, "wm-acme-zhang": 2}, info
# e0002 leaves (WeCom's delete): the contact is unassigned, then handed over.
c.user.delete("e0002")
un = c.external_contact.get_unassigned_list(0, 100)
assert [(i["handover_userid"], i["external_userid"]) for i in un["info"]] == [("e0002", "wm-acme-zhang")], un
assert c.external_contact_group_chat.list(status_filter=1)["group_chat_list"][0]["chat_id"] == grp["id"]
c.external_contact.transfer("wm-acme-zhang", "e0002", "wangwu")
assert [f["userid"] for f in c.external_contact.get("wm-acme-zhang")["follow_user"]] == ["wangwu"]
assert c.external_contact.get_unassigned_list(0, 100)["info"] == []
r = c.post("externalcontact/groupchat/transfer", data={"chat_id_list": [grp["id"]], "new_owner": "wangwu"})
assert r["failed_chat_list"] == [], r
assert c.external_contact_group_chat.get(grp["id"])["group_chat"]["owner"] == "wangwu"
# A transfer to an unknown takeover is refused with WeCom's code.
expect_error(60111, c.post, "externalcontact/resigned/transfer_customer", data={
    "handover_userid": "e0002", "takeover_userid": "nobody", "external_userid": ["wm-acme-zhang"]})

# --- token errors ----------------------------------------------------------
bad = Client(CORPID, SECRET, access_token="not-a-token", auto_retry=False)
expect_error(40014, bad.user.get, "lisi")
old = Client(CORPID, SECRET, auto_retry=False)
old.fetch_access_token()
with open(os.path.join(E["FAULT_DIR"], "clock_offset_ms"), "w") as f:
    f.write(str(7300 * 1000))  # the node's clock, 2 h 1 min on
time.sleep(0.3)
expect_error(42001, old.user.get, "lisi")
with open(os.path.join(E["FAULT_DIR"], "clock_offset_ms"), "w") as f:
    f.write("0")
time.sleep(0.3)
# auto_retry (wechatpy's default) fetches a new token on 40014/42001.
assert Client(CORPID, SECRET, access_token="not-a-token").user.get("lisi")["name"] == "李四"
print("ALL OK")
