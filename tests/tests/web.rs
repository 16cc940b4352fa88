//! The web client and the admin console in a real browser: Debian's
//! Chromium driven by playwright-core (`web/tests/*.mjs`, Node.js) against
//! real 3-node clusters. The scripts speak a one-line protocol with this
//! harness: `@@control {"kill": i}` on their stdout makes it kill node `i`
//! and answer `ok` on their stdin.
//!
//! `.ci/run` installs Chromium and the scripts' npm packages; where either
//! is truly absent the tests say so and pass without running (the reason is
//! printed).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use enclave_certs::Role;
use enclave_tests::api::Api;
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use http::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const START_PW: &str = "first password 1";
const PW: &str = "correct horse battery";

/// The people of the test enterprise: (userid, name).
const PEOPLE: &[(&str, &str)] = &[
    ("zhangsan", "张三"),
    ("lisi", "李四"),
    ("wangwu", "王五"),
    ("zhaoliu", "赵六"),
];

fn web_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web")
}

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Why the browser tests cannot run here, if they cannot.
fn missing() -> Option<String> {
    if chromium().is_none() {
        return Some("Chromium is not installed (apt-get install chromium)".into());
    }
    if !web_dir().join("node_modules/playwright-core").exists() {
        return Some("web/node_modules is missing (cd web && npm ci)".into());
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("Node.js is not installed".into());
    }
    None
}

/// Where screenshots go: `target/web-artifacts/<test>/`.
fn artifacts(test: &str) -> PathBuf {
    let dir = enclave_tests::profile_dir()
        .parent()
        .map(|t| t.join("web-artifacts").join(test))
        .expect("target dir");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// A 3-node cluster with one department of four members who have all set
/// their own password (so none must change it at first login).
async fn enterprise() -> TestCluster {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let admin = c.admin(0);
    let (s, b) = admin
        .request(
            Method::PUT,
            "/v1/directory/departments/1",
            Some(json!({ "name": "总部" }).to_string().into_bytes()),
        )
        .await
        .expect("dept");
    assert!(s.is_success(), "{s} {}", String::from_utf8_lossy(&b));
    for (u, name) in PEOPLE {
        let body = json!({ "userid": u, "name": name, "departments": [1], "password": START_PW });
        let (s, b) = admin
            .request(
                Method::POST,
                "/v1/directory/members",
                Some(body.to_string().into_bytes()),
            )
            .await
            .expect("member");
        assert!(s.is_success(), "{u}: {s} {}", String::from_utf8_lossy(&b));
    }
    // zhangsan may send urgent notices.
    let (s, b) = admin
        .request(
            Method::PUT,
            "/v1/directory/members/zhangsan/permissions/notice:urgent",
            None,
        )
        .await
        .expect("grant");
    assert!(s.is_success(), "{s} {}", String::from_utf8_lossy(&b));
    let url = c.endpoints(0).api_url();
    let api = Api::new(&url, &c.pki.ca_dir().join("ca.pem"));
    for (u, _) in PEOPLE {
        let token = api.login(u, START_PW).await;
        let (s, v) = api
            .call(
                Method::POST,
                "/v1/me/password",
                Some(&token),
                Some(json!({ "old_password": START_PW, "new_password": PW })),
            )
            .await;
        assert!((200..300).contains(&s), "password of {u}: {s} {v}");
    }
    c
}

/// Run `web/tests/<script>` against the cluster; kill nodes when it asks.
async fn run_script(c: &mut TestCluster, script: &str, test: &str) {
    let nodes: Vec<String> = (0..c.nodes.len())
        .map(|i| c.endpoints(i).api_url())
        .collect();
    let admins: Vec<String> = c.nodes.iter().map(|n| n.admin_url()).collect();
    let users: serde_json::Map<String, Value> = PEOPLE
        .iter()
        .map(|(u, n)| (u.to_string(), json!({ "password": PW, "name": n })))
        .collect();
    let mut certs = serde_json::Map::new();
    for (label, role) in [
        ("web-sysadmin", Role::Sysadmin),
        ("web-secadmin", Role::Secadmin),
        ("web-auditor", Role::Auditor),
        ("web-monitor", Role::Monitor),
    ] {
        let dir = c.pki.operator(label, role);
        certs.insert(
            role.as_str().to_string(),
            json!({ "cert": dir.join("cert.pem"), "key": dir.join("key.pem") }),
        );
    }
    let out = artifacts(test);
    let mut child = tokio::process::Command::new("node")
        .arg(web_dir().join("tests").join(script))
        .current_dir(web_dir())
        .env("ENCLAVE_NODES", Value::from(nodes).to_string())
        .env("ENCLAVE_ADMINS", Value::from(admins).to_string())
        .env("ENCLAVE_USERS", Value::Object(users).to_string())
        .env("ENCLAVE_CERTS", Value::Object(certs).to_string())
        .env("ENCLAVE_CA", c.pki.ca_dir().join("ca.pem"))
        .env("ENCLAVE_ARTIFACTS", &out)
        .env("CHROMIUM", chromium().expect("checked"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run node");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let stderr = child.stderr.take().expect("stderr");
    let err_task = tokio::spawn(async move {
        let mut s = String::new();
        let mut r = BufReader::new(stderr);
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut r, &mut s).await;
        s
    });
    let mut transcript = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    loop {
        let line = match tokio::time::timeout_at(deadline, lines.next_line()).await {
            Ok(Ok(Some(l))) => l,
            Ok(_) => break,
            Err(_) => {
                let _ = child.kill().await;
                panic!("{script} ran past 300 s:\n{transcript}");
            }
        };
        if let Some(cmd) = line.strip_prefix("@@control ") {
            let v: Value = serde_json::from_str(cmd).expect("control line is JSON");
            if let Some(i) = v["kill"].as_u64() {
                c.kill(i as usize);
                transcript.push_str(&format!("[harness] killed node {i}\n"));
            }
            stdin.write_all(b"ok\n").await.expect("answer the script");
            stdin.flush().await.expect("flush");
            continue;
        }
        println!("{line}");
        transcript.push_str(&line);
        transcript.push('\n');
    }
    let status = child.wait().await.expect("wait");
    let stderr = err_task.await.unwrap_or_default();
    if !status.success() {
        let _ = c.save_logs(&out);
        panic!(
            "{script} failed ({status}); screenshots and node logs in {}\n{transcript}\n{stderr}",
            out.display()
        );
    }
}

fn skip_reason() -> Option<String> {
    let why = missing()?;
    println!("SKIPPED: browser tests need Chromium, Node.js and web/node_modules: {why}");
    Some(why)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_employees_chat_live_with_receipts_recall_mentions_groups_and_search() {
    if skip_reason().is_some() {
        return;
    }
    let mut c = enterprise().await;
    run_script(&mut c, "chat.mjs", "chat").await;
    run_script(&mut c, "features.mjs", "features").await;
    run_script(&mut c, "a11y.mjs", "a11y").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_notices_pop_up_are_acknowledged_reminded_and_withdrawn() {
    if skip_reason().is_some() {
        return;
    }
    let mut c = enterprise().await;
    run_script(&mut c, "notices.mjs", "notices").await;
}

/// Attachments end to end: a picture's thumbnail and full size for the
/// other member on another node, a document card and its download (same
/// bytes), a 9 MiB file through the resumable upload, a refused type with
/// the server's reason, and a recalled picture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pictures_and_files_are_sent_shown_and_downloaded() {
    if skip_reason().is_some() {
        return;
    }
    let mut c = enterprise().await;
    run_script(&mut c, "files.mjs", "files").await;
}

/// An admin-port call that must succeed.
async fn admin_ok(c: &TestCluster, method: Method, path: &str, body: Option<Value>) {
    let (s, b) = c
        .admin(0)
        .request(method, path, body.map(|v| v.to_string().into_bytes()))
        .await
        .expect(path);
    assert!(
        s.is_success(),
        "{path}: {s} {}",
        String::from_utf8_lossy(&b)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_are_read_counted_and_approvals_walk_the_chain() {
    if skip_reason().is_some() {
        return;
    }
    let mut c = enterprise().await;
    // zhangsan may publish announcements; lisi leads the head office
    // (everyone's department); the leave form goes to the applicant's
    // leader, then to wangwu, and is copied to zhaoliu.
    admin_ok(
        &c,
        Method::PUT,
        "/v1/directory/members/zhangsan/permissions/announcement:publish",
        None,
    )
    .await;
    admin_ok(
        &c,
        Method::PUT,
        "/v1/directory/departments/1",
        Some(json!({ "name": "总部", "leaders": ["lisi"] })),
    )
    .await;
    admin_ok(
        &c,
        Method::PUT,
        "/v1/approvals/templates/leave",
        Some(json!({
            "name": "请假",
            "fields": [
                { "key": "days", "label": "天数", "type": "number", "required": true },
                { "key": "kind", "label": "类型", "type": "choice", "required": true, "options": ["年假", "病假"] },
                { "key": "dates", "label": "日期", "type": "date_range", "required": true },
                { "key": "amount", "label": "金额", "type": "money", "required": false },
            ],
            "flow": [{ "leaders": 1 }, { "user": "wangwu" }],
            "cc": ["zhaoliu"],
        })),
    )
    .await;
    run_script(&mut c, "office.mjs", "office").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_fails_over_when_its_node_dies_and_loses_nothing() {
    if skip_reason().is_some() {
        return;
    }
    let mut c = enterprise().await;
    run_script(&mut c, "failover.mjs", "failover").await;
}

/// What the console's 公告与审批 page has to show: an announcement
/// zhangsan published to everyone (audience 3) that lisi has read, and a
/// finished request on the template `leave` (zhangsan's, approved by lisi
/// with a comment). The ids go to the script in `setup.json`.
async fn console_office(c: &mut TestCluster) -> Value {
    admin_ok(
        c,
        Method::PUT,
        "/v1/directory/members/zhangsan/permissions/announcement:publish",
        None,
    )
    .await;
    admin_ok(
        c,
        Method::PUT,
        "/v1/approvals/templates/leave",
        Some(json!({
            "name": "请假",
            "fields": [{ "key": "days", "label": "天数", "type": "number", "required": true }],
            "flow": [{ "user": "lisi" }],
            "cc": ["wangwu"],
        })),
    )
    .await;
    let api = Api::new(&c.endpoints(0).api_url(), &c.pki.ca_dir().join("ca.pem"));
    let zhangsan = api.login("zhangsan", PW).await;
    let lisi = api.login("lisi", PW).await;
    let (s, a) = api
        .call(
            Method::POST,
            "/v1/announcements",
            Some(&zhangsan),
            Some(json!({
                "to": { "all": true },
                "title": "系统维护通知",
                "body": [
                    { "paragraph": [
                        { "text": "本周六 " },
                        { "text": "22:00", "bold": true },
                        { "text": " 起系统维护，详见" },
                        { "text": "维护说明", "link": "https://intra.example/maintenance" },
                    ] },
                    { "bullets": [[{ "text": "请提前保存工作" }], [{ "text": "维护期间无法登录" }]] },
                ],
            })),
        )
        .await;
    assert_eq!(s, 200, "publish: {a}");
    let id = a["id"].as_u64().expect("announcement id");
    // The audience is worked out in the background: lisi reads it as soon
    // as it has reached her.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (s, v) = api
            .call(
                Method::POST,
                &format!("/v1/announcements/{id}/read"),
                Some(&lisi),
                None,
            )
            .await;
        if s == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "lisi reads: {s} {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (s, r) = api
        .call(
            Method::POST,
            "/v1/approvals",
            Some(&zhangsan),
            Some(json!({ "template": "leave", "values": { "days": 2 } })),
        )
        .await;
    assert_eq!(s, 200, "file: {r}");
    let request = r["id"].as_u64().expect("request id");
    let (s, v) = api
        .call(
            Method::POST,
            &format!("/v1/approvals/{request}/approve"),
            Some(&lisi),
            Some(json!({ "comment": "同意，请做好交接" })),
        )
        .await;
    assert_eq!(s, 200, "approve: {v}");
    assert_eq!(v["status"], "approved", "{v}");
    json!({ "announcement": id, "approval": request })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_each_role_only_what_it_may_do() {
    if skip_reason().is_some() {
        return;
    }
    let mut c = enterprise().await;
    let setup = console_office(&mut c).await;
    std::fs::write(artifacts("console").join("setup.json"), setup.to_string())
        .expect("write setup.json");
    run_script(&mut c, "console.mjs", "console").await;
    // The auditor's export from the browser verifies offline, as one
    // written by `enclavectl audit export` does.
    let export = artifacts("console").join("audit-export.jsonl");
    let out = std::process::Command::new(enclave_tests::bin("enclavectl"))
        .arg("audit")
        .arg("verify")
        .arg(&export)
        .arg("--ca")
        .arg(c.pki.ca_dir().join("ca.pem"))
        .output()
        .expect("run enclavectl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the console's export does not verify: {text}"
    );
    assert!(text.contains("every hash link verifies"), "{text}");
    println!("enclavectl audit verify: {text}");
}

/// External contacts are commands of replicated-log version 3: a fresh
/// cluster moves to it within seconds of having a leader (until then they
/// answer 503 `cluster_upgrading`).
async fn wait_log_version(c: &TestCluster, version: u64) {
    enclave_tests::wait_for_async(
        &format!("the cluster to move to log version {version}"),
        Duration::from_secs(60),
        || async {
            let v: Value = c.admin(0).get_json("/v1/cluster/upgrade").await.ok()?;
            (v["cluster_version"].as_u64()? >= version).then_some(())
        },
    )
    .await;
}

/// An api-port call that must succeed; its answer.
async fn api_ok(api: &Api, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let (s, v) = api.call(method, path, Some(token), body).await;
    assert!((200..300).contains(&s), "{path}: {s} {v}");
    v
}

/// What the console's 外部联系人 page has to show: 赵六 (who may invite)
/// has one external contact (客户乙 of 乙公司, whom 赵六 wrote to) and one
/// customer group (with 客户乙 and 王五), then departs. zhangsan may invite
/// (the client script does it in the page).
async fn external_setup(c: &mut TestCluster) -> Value {
    let api = Api::new(&c.endpoints(0).api_url(), &c.pki.ca_dir().join("ca.pem"));
    wait_log_version(c, 3).await;
    for u in ["zhangsan", "zhaoliu"] {
        admin_ok(
            c,
            Method::PUT,
            &format!("/v1/directory/members/{u}/permissions/external:add"),
            None,
        )
        .await;
    }
    let zhaoliu = api.login("zhaoliu", PW).await;
    let inv = api_ok(
        &api,
        Method::POST,
        "/v1/external/invitations",
        &zhaoliu,
        None,
    )
    .await;
    let code = inv["code"].as_str().expect("invitation code");
    let contact_password = "kehu2 own password";
    let (s, acc) = api
        .call(
            Method::POST,
            "/v1/external/accept",
            None,
            Some(json!({
                "code": code, "userid": "kehu2", "name": "客户乙", "org": "乙公司",
                "phone": "13900000002", "email": "", "password": contact_password,
            })),
        )
        .await;
    assert_eq!(s, 200, "accept: {acc}");
    let conv = acc["conversation"].as_str().expect("contact conversation");
    let message = "客户乙您好，我是赵六，您的订单已发货";
    api_ok(
        &api,
        Method::POST,
        &format!("/v1/conversations/{conv}/messages"),
        &zhaoliu,
        Some(json!({ "text": message, "client_msg_id": "web-external-1" })),
    )
    .await;
    let group = api_ok(
        &api,
        Method::POST,
        "/v1/external/groups",
        &zhaoliu,
        Some(json!({ "name": "乙公司客户群", "members": ["kehu2", "wangwu"] })),
    )
    .await;
    let group = group["id"].as_str().expect("group id").to_string();
    admin_ok(
        c,
        Method::PUT,
        "/v1/directory/members/zhaoliu/status",
        Some(json!({ "status": "departed" })),
    )
    .await;
    // The unassigned list has 赵六 (node 0 has applied the departure).
    enclave_tests::wait_for_async(
        "赵六 in the unassigned list",
        Duration::from_secs(30),
        || async {
            let v: Value = c.admin(0).get_json("/v1/external/unassigned").await.ok()?;
            v["unassigned"]
                .as_array()?
                .iter()
                .any(|u| u["employee"] == "zhaoliu")
                .then_some(())
        },
    )
    .await;
    json!({
        "departed": "zhaoliu",
        "contact": "kehu2",
        "contact_password": contact_password,
        "group": group,
        "message": message,
    })
}

/// External contacts in the browser: an invitation made in the page is
/// accepted on another node's acceptance page; the external account sees
/// its conversation marked external, "My contacts" and no directory; a
/// customer group's auto-reply set in the editor answers the contact. Then
/// the console's hand-over of a departed employee's contact and group
/// (the unassigned list empties), what the new owner and the contact see,
/// disabling an external account, and the policy per role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_contacts_are_invited_marked_answered_and_handed_over() {
    if skip_reason().is_some() {
        return;
    }
    let mut c = enterprise().await;
    let setup = external_setup(&mut c).await;
    std::fs::write(artifacts("external").join("setup.json"), setup.to_string())
        .expect("write setup.json");
    run_script(&mut c, "external.mjs", "external").await;
    run_script(&mut c, "external-console.mjs", "external").await;
}

/// Not a browser test: the pages and assets carry the protections a
/// browser enforces, on both ports, and JSON routes are unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_a_strict_policy_and_api_paths_stay_json() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    let url = c.endpoints(0).api_url();
    let ca = c.pki.ca_dir().join("ca.pem");
    let api = Api::new(&url, &ca);
    let client = enclave_ops::Client::anonymous(&url, &ca).expect("client");
    let (s, headers, body) = client
        .session()
        .request_with_headers(Method::GET, "/", None, &[])
        .await
        .expect("GET /");
    assert_eq!(s.as_u16(), 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("<html"), "{text}");
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    for part in [
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "default-src 'none'",
    ] {
        assert!(csp.contains(part), "CSP {csp:?} lacks {part}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(headers.get("strict-transport-security").is_some());
    assert_eq!(
        headers.get("x-frame-options").and_then(|v| v.to_str().ok()),
        Some("DENY")
    );
    assert_eq!(
        headers
            .get("x-content-type-options")
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
    // Every script the page loads is served, as JavaScript, with the
    // same protections.
    for src in text.split("src=\"").skip(1) {
        let path = src.split('"').next().unwrap_or_default();
        if !path.starts_with("/assets/") {
            continue;
        }
        let (s, h, _) = client
            .session()
            .request_with_headers(Method::GET, path, None, &[])
            .await
            .expect("asset");
        assert_eq!(s.as_u16(), 200, "{path}");
        assert!(
            h.get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.starts_with("text/javascript")),
            "{path}: {h:?}"
        );
        assert!(h.get("content-security-policy").is_some());
    }
    // Browsers that take gzip get the build's precompressed copy; others
    // (no Accept-Encoding, or gzip;q=0) the file itself; `.gz` names are
    // not addressable.
    let (s, h, gz) = client
        .session()
        .request_with_headers(Method::GET, "/", None, &[("accept-encoding", "gzip, br")])
        .await
        .expect("GET / gzip");
    assert_eq!(s.as_u16(), 200);
    assert_eq!(
        h.get("content-encoding").and_then(|v| v.to_str().ok()),
        Some("gzip")
    );
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "a gzip stream");
    assert!(gz.len() < body.len(), "{} >= {}", gz.len(), body.len());
    let (_, h, plain) = client
        .session()
        .request_with_headers(Method::GET, "/", None, &[("accept-encoding", "gzip;q=0")])
        .await
        .expect("GET / no gzip");
    assert!(h.get("content-encoding").is_none(), "{h:?}");
    assert_eq!(plain, body);
    let first_js = text
        .split("src=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_default()
        .to_string();
    let (s, _, _) = client
        .session()
        .request_with_headers(Method::GET, &format!("{first_js}.gz"), None, &[])
        .await
        .expect("GET .gz");
    assert_eq!(s.as_u16(), 404);
    // API clients see no change: unknown /v1 paths and missing assets are
    // the JSON error.
    let (s, v) = api.call(Method::GET, "/v1/no-such-thing", None, None).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    let (s, v) = api
        .call(Method::GET, "/assets/../../etc/passwd", None, None)
        .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = api.call(Method::GET, "/assets/nope.js", None, None).await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "not_found", "{v}");
    // A known path with the wrong method: the JSON error, with Allow.
    let (s, h, b) = client
        .session()
        .request_with_headers(Method::DELETE, "/v1/login", None, &[])
        .await
        .expect("DELETE /v1/login");
    assert_eq!(s.as_u16(), 405);
    assert_eq!(h.get("allow").and_then(|v| v.to_str().ok()), Some("POST"));
    let v: Value = serde_json::from_slice(&b).expect("JSON 405");
    assert_eq!(v["error"]["code"], "method_not_allowed", "{v}");
    // The node list is for members only.
    let (s, _) = api.call(Method::GET, "/v1/nodes", None, None).await;
    assert_eq!(s, 401);
    // The console is on the admin port, for operators; a monitor
    // certificate is refused.
    let (s, b) = c
        .admin(0)
        .request(Method::GET, "/", None)
        .await
        .expect("console");
    assert_eq!(s.as_u16(), 200, "{}", String::from_utf8_lossy(&b));
    assert!(String::from_utf8_lossy(&b).contains("<html"));
    let monitor = c.pki.operator("mon", Role::Monitor);
    let m = enclave_ops::Client::with_cert_dir(&c.nodes[0].admin_url(), &monitor).expect("client");
    let (s, _) = m.request(Method::GET, "/", None).await.expect("console");
    assert_eq!(s.as_u16(), 403);
    // The operator's browser attaches the certificate to every request to
    // the admin port, whichever page asks: requests made by another site's
    // page (Fetch Metadata), and writes from another origin, are refused;
    // tools (no such headers) and the console's own calls are not.
    let admin_url = c.nodes[0].admin_url();
    let own_origin = admin_url.trim_end_matches('/').to_string();
    let sys = c.pki.operator("csrf-sys", Role::Sysadmin);
    let s_client = enclave_ops::Client::with_cert_dir(&admin_url, &sys).expect("client");
    let mut session = s_client.session();
    async fn ask(
        session: &mut enclave_ops::client::Session,
        method: Method,
        path: &str,
        headers: Vec<(&str, String)>,
    ) -> u16 {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let body = (method == Method::POST).then(|| b"{}".to_vec());
        session
            .request_with_headers(method, path, body, &h)
            .await
            .expect("request")
            .0
            .as_u16()
    }
    let cross = |site: &str| {
        vec![
            ("sec-fetch-site", site.to_string()),
            ("sec-fetch-mode", "cors".to_string()),
        ]
    };
    assert_eq!(
        ask(
            &mut session,
            Method::POST,
            "/v1/audit/checkpoint",
            cross("cross-site")
        )
        .await,
        403
    );
    // The api port is the same site (same host, other port): refused too.
    assert_eq!(
        ask(&mut session, Method::GET, "/v1/backup", cross("same-site")).await,
        403
    );
    let evil = vec![("origin", "https://evil.example".to_string())];
    assert_eq!(
        ask(
            &mut session,
            Method::POST,
            "/v1/cluster/transfer-leader",
            evil
        )
        .await,
        403
    );
    // A link from elsewhere may still open the console page itself.
    let nav = vec![
        ("sec-fetch-site", "cross-site".to_string()),
        ("sec-fetch-mode", "navigate".to_string()),
    ];
    assert_eq!(ask(&mut session, Method::GET, "/", nav).await, 200);
    // The console's own calls: same origin.
    let own = vec![
        ("sec-fetch-site", "same-origin".to_string()),
        ("origin", own_origin.clone()),
    ];
    assert_eq!(
        ask(&mut session, Method::GET, "/v1/policy", own.clone()).await,
        200
    );
    // (transfer to a node that does not exist: refused by the route, not the guard)
    let s = ask(
        &mut session,
        Method::POST,
        "/v1/cluster/transfer-leader",
        own,
    )
    .await;
    assert_ne!(s, 403, "a same-origin write reaches its route");
}

/// CORS: the cluster's own api origins may call, others get nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_clusters_own_origins_may_call_across_nodes() {
    let mut c = TestCluster::start(2, NodeSpec::default()).await;
    let a = c.endpoints(0).api_url();
    let b = c.endpoints(1).api_url();
    let ca = c.pki.ca_dir().join("ca.pem");
    let client = enclave_ops::Client::anonymous(&a, &ca).expect("client");
    let ask = |origin: String| {
        let client = &client;
        async move {
            client
                .session()
                .request_with_headers(
                    Method::OPTIONS,
                    "/v1/login",
                    None,
                    &[
                        ("origin", origin.as_str()),
                        ("access-control-request-method", "POST"),
                        ("access-control-request-headers", "content-type"),
                    ],
                )
                .await
                .expect("preflight")
        }
    };
    let (s, h, _) = ask(b.clone()).await;
    assert_eq!(s.as_u16(), 204);
    assert_eq!(
        h.get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some(b.as_str())
    );
    let (_, h, _) = ask("https://evil.example:8443".into()).await;
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    let (_, h, _) = ask(b.replacen("https://", "http://", 1)).await;
    assert!(h.get("access-control-allow-origin").is_none(), "{h:?}");
    // And the list of nodes a client fails over to names both.
    let api = Api::new(&a, &ca);
    seed(&c).await;
    let token = api.login("zhangsan", START_PW).await;
    let (s, v) = api.call(Method::GET, "/v1/nodes", Some(&token), None).await;
    assert_eq!(s, 200, "{v}");
    let urls: Vec<&str> = v["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|n| n["api_url"].as_str())
        .collect();
    assert_eq!(urls.first(), Some(&a.as_str()), "{v}");
    assert!(urls.contains(&b.as_str()), "{v}");
}

async fn seed(c: &TestCluster) {
    let admin = c.admin(0);
    let _ = admin
        .request(
            Method::PUT,
            "/v1/directory/departments/1",
            Some(json!({ "name": "总部" }).to_string().into_bytes()),
        )
        .await
        .expect("dept");
    let body =
        json!({ "userid": "zhangsan", "name": "张三", "departments": [1], "password": START_PW });
    let (s, _) = admin
        .request(
            Method::POST,
            "/v1/directory/members",
            Some(body.to_string().into_bytes()),
        )
        .await
        .expect("member");
    assert!(s.is_success());
}

/// The front end's unit tests (pure logic: resume cursor, message merge,
/// virtual list, the console's audit-chain encoder) under Node, so the
/// README's one test command runs them too.
#[test]
fn the_web_unit_tests_pass() {
    if !web_dir().join("node_modules/vite").exists() {
        println!("SKIPPED: web/node_modules is missing (cd web && npm ci)");
        return;
    }
    let out = std::process::Command::new("npm")
        .args(["run", "--silent", "test:unit"])
        .current_dir(web_dir())
        .output()
        .expect("run npm");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "npm run test:unit failed:\n{text}");
    assert!(text.contains("# fail 0"), "{text}");
}
