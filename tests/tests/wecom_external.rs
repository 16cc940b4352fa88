//! The WeCom-compatible external-contact calls (`/cgi-bin/externalcontact/*`)
//! against a real `enclave` process: contacts and customer groups made
//! through the native API (invitations, acceptance, groups) are read and
//! handed over in WeCom's shapes — in service (a window to object) and
//! after a departure (at once) — with WeCom's per-item error codes, the
//! app scope, and bad input that changes nothing.

use std::collections::BTreeSet;
use std::time::Duration;

use enclave_certs::Role;
use enclave_ops::Client;
use enclave_tests::api::{Api, seed_directory};
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use enclave_tests::wait_for_async;
use enclave_tests::wecom::{Wecom, create_app};
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

fn errcode(v: &Value) -> i64 {
    v["errcode"].as_i64().unwrap_or(i64::MIN)
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn admin(c: &TestCluster, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let (s, b) = c
        .admin(0)
        .request(method, path, body.map(|b| b.to_string().into_bytes()))
        .await
        .expect("admin request");
    (
        s.as_u16(),
        serde_json::from_slice(&b).unwrap_or(Value::Null),
    )
}

/// A node whose directory has `users`, which has moved to log version 3
/// (external contacts), and whose `inviters` may invite.
struct Setup {
    c: TestCluster,
    api: Api,
    we: Wecom,
}

async fn setup(users: &[&str], inviters: &[&str]) -> Setup {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, users, PW).await;
    let c_ref = &c;
    wait_for_async("log version 3", Duration::from_secs(60), || async move {
        let (s, v) = admin(c_ref, Method::GET, "/v1/cluster/upgrade", None).await;
        (s == 200 && v["cluster_version"].as_u64().unwrap_or(0) >= 3).then_some(())
    })
    .await;
    for u in inviters {
        let (s, v) = admin(
            &c,
            Method::PUT,
            &format!("/v1/directory/members/{u}/permissions/external:add"),
            None,
        )
        .await;
        assert_eq!(s, 200, "grant external:add to {u}: {v}");
    }
    let ca = c.pki.ca_dir().join("ca.pem");
    let url = c.endpoints(0).api_url();
    Setup {
        api: Api::new(&url, &ca),
        we: Wecom::new(&url, &ca),
        c,
    }
}

impl Setup {
    /// `employee` invites `userid`, who accepts; returns their 1:1's id.
    async fn contact(&self, employee: &str, userid: &str, org: &str) -> String {
        let tok = self.api.login(employee, PW).await;
        let (s, inv) = self
            .api
            .call(Method::POST, "/v1/external/invitations", Some(&tok), None)
            .await;
        assert_eq!(s, 200, "invite: {inv}");
        let (s, v) = self
            .api
            .call(
                Method::POST,
                "/v1/external/accept",
                None,
                Some(json!({
                    "code": inv["code"], "userid": userid, "name": format!("Customer {userid}"),
                    "org": org, "password": PW,
                })),
            )
            .await;
        assert_eq!(s, 200, "accept as {userid}: {v}");
        v["conversation"]
            .as_str()
            .or_else(|| v["conv"].as_str())
            .expect("the contact's conversation")
            .to_string()
    }

    /// `owner` makes a customer group; returns its id.
    async fn group(&self, owner: &str, name: &str, members: &[&str]) -> String {
        let tok = self.api.login(owner, PW).await;
        let (s, v) = self
            .api
            .call(
                Method::POST,
                "/v1/external/groups",
                Some(&tok),
                Some(json!({ "name": name, "members": members })),
            )
            .await;
        assert_eq!(s, 200, "group {name}: {v}");
        v["id"].as_str().expect("group id").to_string()
    }

    async fn depart(&self, userid: &str) {
        let (s, v) = admin(
            &self.c,
            Method::PUT,
            &format!("/v1/directory/members/{userid}/status"),
            Some(json!({ "status": "departed" })),
        )
        .await;
        assert_eq!(s, 200, "{userid} departs: {v}");
    }

    /// The security administrator sets the hand-over window.
    async fn window(&self, ms: u64) {
        let sec = self.c.pki.operator("sec", Role::Secadmin);
        let client = Client::with_cert_dir(&self.c.nodes[0].admin_url(), &sec).expect("client");
        let (st, b) = client
            .request(
                Method::PUT,
                "/v1/policy/external",
                Some(json!({ "transfer_window_ms": ms }).to_string().into_bytes()),
            )
            .await
            .expect("policy");
        assert_eq!(st.as_u16(), 200, "policy: {}", String::from_utf8_lossy(&b));
    }

    async fn token(&self, name: &str, scopes: &[&str]) -> String {
        let app = create_app(&self.c, 0, name, scopes, &[]).await;
        self.we.token(&app).await
    }
}

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// `customer[]` of a transfer answer as (external_userid, errcode).
fn customers(v: &Value) -> Vec<(String, i64)> {
    v["customer"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["external_userid"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        c["errcode"].as_i64().unwrap_or(i64::MIN),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `transfer_result`'s customers as (external_userid, status, takeover_time).
fn results(v: &Value) -> Vec<(String, i64, i64)> {
    v["customer"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["external_userid"]
                            .as_str()
                            .unwrap_or_default()
                            .to_string(),
                        c["status"].as_i64().unwrap_or(-1),
                        c["takeover_time"].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contacts_are_read_and_handed_over_in_service_and_after_a_departure() {
    let s = setup(
        &["alice", "bob", "carol", "dave", "erin"],
        &["alice", "bob"],
    )
    .await;
    s.contact("alice", "cust1", "Acme Ltd").await;
    s.contact("alice", "cust2", "Acme Ltd").await;
    s.contact("bob", "cust3", "Globex").await;
    s.contact("bob", "cust4", "Globex").await;
    s.depart("erin").await;
    let we = &s.we;
    let t = s.token("CRM", &["externalcontact"]).await;

    // list / get
    let v = we
        .get("externalcontact/list", &t, &[("userid", "alice")])
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    assert_eq!(ids(&v["external_userid"]), ["cust1", "cust2"], "{v}");
    let v = we
        .get("externalcontact/list", &t, &[("userid", "carol")])
        .await;
    assert_eq!(
        (errcode(&v), ids(&v["external_userid"]).len()),
        (0, 0),
        "{v}"
    );
    let v = we
        .get("externalcontact/get", &t, &[("external_userid", "cust1")])
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let e = &v["external_contact"];
    assert_eq!(
        (
            e["external_userid"].as_str(),
            e["name"].as_str(),
            e["corp_name"].as_str(),
            e["type"].as_i64()
        ),
        (
            Some("cust1"),
            Some("Customer cust1"),
            Some("Acme Ltd"),
            Some(1)
        ),
        "{v}"
    );
    let follow = v["follow_user"].as_array().expect("follow_user");
    assert_eq!(follow.len(), 1, "{v}");
    assert_eq!(follow[0]["userid"], "alice", "{v}");
    let created = follow[0]["createtime"].as_i64().unwrap_or(0);
    assert!(
        (created - now_s()).abs() < 600,
        "createtime in seconds: {v}"
    );

    // In service: alice → carol waits for the window; per-contact codes.
    let v = we
        .post(
            "externalcontact/transfer_customer",
            &t,
            json!({"handover_userid": "alice", "takeover_userid": "carol",
                   "external_userid": ["cust2", "nobody", "cust3"],
                   "transfer_success_msg": "carol will look after you"}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    assert_eq!(
        customers(&v),
        [
            ("cust2".to_string(), 0),
            ("nobody".to_string(), 40096),
            ("cust3".to_string(), 40131)
        ],
        "{v}"
    );
    let v = we
        .post(
            "externalcontact/transfer_result",
            &t,
            json!({"handover_userid": "alice", "takeover_userid": "carol"}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let r = results(&v);
    assert_eq!(r.len(), 1, "{v}");
    assert_eq!((r[0].0.as_str(), r[0].1), ("cust2", 2), "waiting: {v}");
    assert!(
        r[0].2 > now_s() + 3600,
        "takeover_time is when the window ends: {v}"
    );
    // Still alice's while it waits; a second hand-over of it is refused.
    let v = we
        .get("externalcontact/list", &t, &[("userid", "alice")])
        .await;
    assert_eq!(ids(&v["external_userid"]), ["cust1", "cust2"], "{v}");
    let v = we
        .post(
            "externalcontact/transfer_customer",
            &t,
            json!({"handover_userid": "alice", "takeover_userid": "dave",
                   "external_userid": ["cust2"]}),
        )
        .await;
    assert_eq!(customers(&v), [("cust2".to_string(), 40100)], "{v}");

    // Bad requests fail as a whole.
    for (body, want) in [
        (
            json!({"handover_userid": "alice", "takeover_userid": "erin", "external_userid": ["cust1"]}),
            60111,
        ),
        (
            json!({"handover_userid": "alice", "takeover_userid": "ghost", "external_userid": ["cust1"]}),
            60111,
        ),
        (
            json!({"handover_userid": "alice", "takeover_userid": "alice", "external_userid": ["cust1"]}),
            40130,
        ),
        (
            json!({"handover_userid": "alice", "takeover_userid": "dave", "external_userid": []}),
            41035,
        ),
        (
            json!({"handover_userid": "alice", "takeover_userid": "dave", "external_userid": "cust1"}),
            40058,
        ),
        (
            json!({"takeover_userid": "dave", "external_userid": ["cust1"]}),
            41009,
        ),
        (
            json!({"handover_userid": "al ice", "takeover_userid": "dave", "external_userid": ["cust1"]}),
            40003,
        ),
        (
            json!({"handover_userid": "alice", "takeover_userid": "dave", "external_userid": ["cust1"], "surprise": 1}),
            40058,
        ),
    ] {
        let v = we
            .post("externalcontact/transfer_customer", &t, body.clone())
            .await;
        assert_eq!(errcode(&v), want, "{body} → {v}");
    }
    let v = we
        .raw(
            Method::POST,
            &format!("/cgi-bin/externalcontact/transfer_customer?access_token={t}"),
            Some(b"{\"handover_userid\":".to_vec()),
        )
        .await;
    assert_eq!(errcode(&v), 47001, "{v}");
    // The resigned call refuses an employed handover.
    let v = we
        .post(
            "externalcontact/resigned/transfer_customer",
            &t,
            json!({"handover_userid": "alice", "takeover_userid": "dave", "external_userid": ["cust1"]}),
        )
        .await;
    assert_eq!(errcode(&v), 40097, "{v}");
    let v = we
        .get("externalcontact/list", &t, &[("userid", "dave")])
        .await;
    assert!(ids(&v["external_userid"]).is_empty(), "nothing moved: {v}");

    // bob departs: his contacts are unassigned until handed over.
    s.depart("bob").await;
    let v = we
        .post(
            "externalcontact/get_unassigned_list",
            &t,
            json!({"page_id": 0, "page_size": 1}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    assert_eq!(v["info"][0]["handover_userid"], "bob", "{v}");
    assert_eq!(v["info"][0]["external_userid"], "cust3", "{v}");
    let dimission = v["info"][0]["dimission_time"].as_i64().unwrap_or(0);
    assert!((dimission - now_s()).abs() < 600, "seconds: {v}");
    assert_eq!(v["is_last"], false, "{v}");
    let cursor = v["next_cursor"].as_str().expect("next_cursor").to_string();
    let v = we
        .post(
            "externalcontact/get_unassigned_list",
            &t,
            json!({"page_size": 1, "cursor": cursor}),
        )
        .await;
    assert_eq!(
        (
            v["info"][0]["external_userid"].as_str(),
            v["is_last"].as_bool(),
            v["info"].as_array().map(Vec::len)
        ),
        (Some("cust4"), Some(true), Some(1)),
        "{v}"
    );
    let v = we
        .post(
            "externalcontact/get_unassigned_list",
            &t,
            json!({"cursor": "no cursor"}),
        )
        .await;
    assert_eq!(errcode(&v), 50100, "{v}");
    // In service is refused for him; the resigned call moves cust3 at once.
    let v = we
        .post(
            "externalcontact/transfer_customer",
            &t,
            json!({"handover_userid": "bob", "takeover_userid": "dave", "external_userid": ["cust3"]}),
        )
        .await;
    assert_eq!(errcode(&v), 60111, "{v}");
    let v = we
        .post(
            "externalcontact/resigned/transfer_customer",
            &t,
            json!({"handover_userid": "bob", "takeover_userid": "dave", "external_userid": ["cust3", "cust1"]}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    assert_eq!(
        customers(&v),
        [("cust3".to_string(), 0), ("cust1".to_string(), 40131)],
        "{v}"
    );
    let v = we
        .get("externalcontact/get", &t, &[("external_userid", "cust3")])
        .await;
    let follow = v["follow_user"].as_array().expect("follow_user");
    assert_eq!(
        (
            follow.len(),
            follow[0]["userid"].as_str(),
            follow[0]["add_way"].as_i64()
        ),
        (1, Some("dave"), Some(202)),
        "the new follow_user: {v}"
    );
    let v = we
        .get("externalcontact/list", &t, &[("userid", "dave")])
        .await;
    assert_eq!(ids(&v["external_userid"]), ["cust3"], "{v}");
    let v = we
        .post(
            "externalcontact/resigned/transfer_result",
            &t,
            json!({"handover_userid": "bob", "takeover_userid": "dave"}),
        )
        .await;
    assert_eq!(
        results(&v)
            .into_iter()
            .map(|r| (r.0, r.1))
            .collect::<Vec<_>>(),
        [("cust3".to_string(), 1)],
        "{v}"
    );
    let v = we
        .post("externalcontact/get_unassigned_list", &t, json!({}))
        .await;
    let rows: Vec<&str> = v["info"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["external_userid"].as_str())
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        (rows, v["is_last"].as_bool()),
        (vec!["cust4"], Some(true)),
        "{v}"
    );
    // A departed takeover is refused.
    let v = we
        .post(
            "externalcontact/resigned/transfer_customer",
            &t,
            json!({"handover_userid": "bob", "takeover_userid": "erin", "external_userid": ["cust4"]}),
        )
        .await;
    assert_eq!(errcode(&v), 60111, "{v}");
    // WeCom's older one-contact call (wechatpy's `transfer`).
    let v = we
        .post(
            "externalcontact/transfer",
            &t,
            json!({"handover_userid": "bob", "takeover_userid": "carol", "external_userid": "cust4"}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let v = we
        .get("externalcontact/list", &t, &[("userid", "carol")])
        .await;
    assert_eq!(ids(&v["external_userid"]), ["cust4"], "{v}");
    let v = we
        .post(
            "externalcontact/transfer",
            &t,
            json!({"handover_userid": "bob", "takeover_userid": "carol", "external_userid": "cust4"}),
        )
        .await;
    assert_eq!(errcode(&v), 40131, "bob no longer serves cust4: {v}");

    // Reads: unknown ids.
    let v = we
        .get("externalcontact/get", &t, &[("external_userid", "ghost")])
        .await;
    assert_eq!(errcode(&v), 40096, "{v}");
    let v = we
        .get("externalcontact/get", &t, &[("external_userid", "alice")])
        .await;
    assert_eq!(
        errcode(&v),
        40096,
        "a member is not an external contact: {v}"
    );
    let v = we.get("externalcontact/get", &t, &[]).await;
    assert_eq!(errcode(&v), 41035, "{v}");
    let v = we
        .get("externalcontact/list", &t, &[("userid", "ghost")])
        .await;
    assert_eq!(errcode(&v), 60111, "{v}");
    let v = we
        .get("externalcontact/list", &t, &[("userid", "cust1")])
        .await;
    assert_eq!(
        errcode(&v),
        60111,
        "an external account is not a member: {v}"
    );
    let v = we
        .get("externalcontact/get_follow_user_list", &t, &[])
        .await;
    assert_eq!(ids(&v["follow_user"]), ["alice"], "bob departed: {v}");

    // With a short window the in-service hand-over takes effect by itself.
    s.window(2_000).await;
    let v = we
        .post(
            "externalcontact/transfer_customer",
            &t,
            json!({"handover_userid": "alice", "takeover_userid": "dave", "external_userid": ["cust1"]}),
        )
        .await;
    assert_eq!(customers(&v), [("cust1".to_string(), 0)], "{v}");
    let we2 = we.clone();
    let t2 = t.clone();
    let done = wait_for_async("the window to end", Duration::from_secs(60), || {
        let (we, t) = (we2.clone(), t2.clone());
        async move {
            let v = we
                .post(
                    "externalcontact/transfer_result",
                    &t,
                    json!({"handover_userid": "alice", "takeover_userid": "dave"}),
                )
                .await;
            results(&v).into_iter().find(|r| r.0 == "cust1" && r.1 == 1)
        }
    })
    .await;
    assert!((done.2 - now_s()).abs() < 600, "takeover_time: {done:?}");
    let v = we
        .get("externalcontact/get", &t, &[("external_userid", "cust1")])
        .await;
    assert_eq!(v["follow_user"][0]["userid"], "dave", "{v}");
    let v = we
        .get("externalcontact/list", &t, &[("userid", "alice")])
        .await;
    assert_eq!(ids(&v["external_userid"]), ["cust2"], "{v}");

    // An app without the scope: 48002 on every call, nothing changes.
    let hr = s.token("HR", &["directory:read", "message:send"]).await;
    let v = we
        .get("externalcontact/list", &hr, &[("userid", "alice")])
        .await;
    assert_eq!(errcode(&v), 48002, "{v}");
    let v = we
        .post(
            "externalcontact/transfer_customer",
            &hr,
            json!({"handover_userid": "alice", "takeover_userid": "carol", "external_userid": ["cust2"]}),
        )
        .await;
    assert_eq!(errcode(&v), 48002, "{v}");
    let v = we
        .post("externalcontact/groupchat/list", &hr, json!({"limit": 10}))
        .await;
    assert_eq!(errcode(&v), 48002, "{v}");
    let v = we
        .get("externalcontact/list", &t, &[("userid", "alice")])
        .await;
    assert_eq!(ids(&v["external_userid"]), ["cust2"], "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn customer_groups_are_listed_read_and_inherited() {
    let s = setup(&["alice", "bob", "carol", "dave"], &["alice", "bob"]).await;
    let x1 = s.contact("alice", "cust1", "Acme Ltd").await;
    s.contact("bob", "cust3", "Globex").await;
    let g1 = s.group("alice", "Acme 客户群", &["cust1", "carol"]).await;
    let g2 = s.group("bob", "Globex 客户群", &["cust3"]).await;
    let we = &s.we;
    let t = s.token("CRM", &["externalcontact"]).await;

    let list = |v: &Value| -> BTreeSet<(String, i64)> {
        v["group_chat_list"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|g| {
                        (
                            g["chat_id"].as_str().unwrap_or_default().to_string(),
                            g["status"].as_i64().unwrap_or(-1),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let v = we
        .post("externalcontact/groupchat/list", &t, json!({"limit": 100}))
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    assert_eq!(
        list(&v),
        BTreeSet::from([(g1.clone(), 0), (g2.clone(), 0)]),
        "{v}"
    );
    // Paging: one a page, the cursor leads to the other.
    let v = we
        .post("externalcontact/groupchat/list", &t, json!({"limit": 1}))
        .await;
    let first = list(&v);
    let cursor = v["next_cursor"].as_str().expect("next_cursor").to_string();
    let v = we
        .post(
            "externalcontact/groupchat/list",
            &t,
            json!({"limit": 1, "cursor": cursor}),
        )
        .await;
    let second = list(&v);
    assert_eq!((first.len(), second.len()), (1, 1), "{v}");
    assert!(first.is_disjoint(&second), "{first:?} {second:?}");
    assert!(
        v["next_cursor"].as_str().is_none_or(str::is_empty),
        "last page: {v}"
    );
    let v = we
        .post(
            "externalcontact/groupchat/list",
            &t,
            json!({"limit": 10, "owner_filter": {"userid_list": ["bob"]}}),
        )
        .await;
    assert_eq!(list(&v), BTreeSet::from([(g2.clone(), 0)]), "{v}");

    let v = we
        .post(
            "externalcontact/groupchat/get",
            &t,
            json!({"chat_id": g1, "need_name": 1}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let g = &v["group_chat"];
    assert_eq!(
        (
            g["chat_id"].as_str(),
            g["name"].as_str(),
            g["owner"].as_str()
        ),
        (Some(g1.as_str()), Some("Acme 客户群"), Some("alice")),
        "{v}"
    );
    assert!(
        (g["create_time"].as_i64().unwrap_or(0) - now_s()).abs() < 600,
        "{v}"
    );
    let members: BTreeSet<(String, i64, i64)> = g["member_list"]
        .as_array()
        .expect("member_list")
        .iter()
        .map(|m| {
            assert!(m["join_time"].as_i64().unwrap_or(0) > 0, "{m}");
            (
                m["userid"].as_str().unwrap_or_default().to_string(),
                m["type"].as_i64().unwrap_or(-1),
                m["join_scene"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        members,
        BTreeSet::from([
            ("alice".to_string(), 1, 1),
            ("carol".to_string(), 1, 1),
            ("cust1".to_string(), 2, 1)
        ]),
        "{v}"
    );
    assert!(
        g["member_list"]
            .as_array()
            .is_some_and(|a| a.iter().any(|m| m["name"] == "Customer cust1")),
        "need_name: {v}"
    );
    for (body, want) in [
        (json!({"chat_id": "xg999"}), 86003),
        (json!({"chat_id": x1}), 90501),
        (json!({}), 40058),
        (json!({"chat_id": 7}), 40058),
    ] {
        let v = we
            .post("externalcontact/groupchat/get", &t, body.clone())
            .await;
        assert_eq!(errcode(&v), want, "{body} → {v}");
    }

    // groupchat/transfer is for departed owners.
    let v = we
        .post(
            "externalcontact/groupchat/transfer",
            &t,
            json!({"chat_id_list": [g1], "new_owner": "dave"}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    assert_eq!(v["failed_chat_list"][0]["chat_id"], g1.as_str(), "{v}");
    assert_eq!(v["failed_chat_list"][0]["errcode"], 90500, "{v}");

    s.depart("bob").await;
    let v = we
        .post(
            "externalcontact/groupchat/list",
            &t,
            json!({"status_filter": 1, "limit": 100}),
        )
        .await;
    assert_eq!(list(&v), BTreeSet::from([(g2.clone(), 1)]), "{v}");
    let v = we
        .post(
            "externalcontact/groupchat/onjob_transfer",
            &t,
            json!({"chat_id_list": [g2], "new_owner": "dave"}),
        )
        .await;
    assert_eq!(v["failed_chat_list"][0]["errcode"], 90502, "{v}");
    // Bad requests: nothing moves.
    for (body, want) in [
        (json!({"chat_id_list": [g2], "new_owner": "ghost"}), 60111),
        (json!({"chat_id_list": [g2], "new_owner": "bob"}), 60111),
        (json!({"chat_id_list": [], "new_owner": "dave"}), 40058),
        (json!({"chat_id_list": [g2]}), 41009),
    ] {
        let v = we
            .post("externalcontact/groupchat/transfer", &t, body.clone())
            .await;
        assert_eq!(errcode(&v), want, "{body} → {v}");
    }
    let v = we
        .post(
            "externalcontact/groupchat/transfer",
            &t,
            json!({"chat_id_list": [g2, g1, "xg999"], "new_owner": "dave"}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let failed: BTreeSet<(String, i64)> = v["failed_chat_list"]
        .as_array()
        .expect("failed_chat_list")
        .iter()
        .map(|f| {
            assert!(f["errmsg"].as_str().is_some_and(|m| !m.is_empty()), "{f}");
            (
                f["chat_id"].as_str().unwrap_or_default().to_string(),
                f["errcode"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from([(g1.clone(), 90500), ("xg999".to_string(), 86003)]),
        "{v}"
    );
    let v = we
        .post("externalcontact/groupchat/get", &t, json!({"chat_id": g2}))
        .await;
    assert_eq!(v["group_chat"]["owner"], "dave", "inherited at once: {v}");
    assert!(
        v["group_chat"]["member_list"]
            .as_array()
            .is_some_and(|a| a.iter().any(|m| m["userid"] == "dave")),
        "{v}"
    );
    let v = we
        .post(
            "externalcontact/groupchat/list",
            &t,
            json!({"status_filter": 3, "limit": 100}),
        )
        .await;
    assert_eq!(list(&v), BTreeSet::from([(g2.clone(), 3)]), "{v}");
    let v = we
        .post(
            "externalcontact/groupchat/transfer",
            &t,
            json!({"chat_id_list": [g2], "new_owner": "dave"}),
        )
        .await;
    assert_eq!(v["failed_chat_list"][0]["errcode"], 90504, "{v}");

    // In service: waits for the window; a second one is refused.
    let v = we
        .post(
            "externalcontact/groupchat/onjob_transfer",
            &t,
            json!({"chat_id_list": [g1], "new_owner": "carol"}),
        )
        .await;
    assert_eq!(
        (errcode(&v), v["failed_chat_list"].as_array().map(Vec::len)),
        (0, Some(0)),
        "{v}"
    );
    let v = we
        .post("externalcontact/groupchat/get", &t, json!({"chat_id": g1}))
        .await;
    assert_eq!(v["group_chat"]["owner"], "alice", "still waiting: {v}");
    let v = we
        .post(
            "externalcontact/groupchat/onjob_transfer",
            &t,
            json!({"chat_id_list": [g1], "new_owner": "dave"}),
        )
        .await;
    assert_eq!(v["failed_chat_list"][0]["errcode"], 90507, "{v}");
    for body in [
        json!({"limit": 0}),
        json!({"limit": 10, "status_filter": 9}),
        json!({"limit": 10, "owner_filter": {"partyid_list": [1]}}),
    ] {
        let v = we
            .post("externalcontact/groupchat/list", &t, body.clone())
            .await;
        assert_eq!(errcode(&v), 40058, "{body} → {v}");
    }
    let v = we
        .post(
            "externalcontact/groupchat/list",
            &t,
            json!({"limit": 10, "cursor": "garbage"}),
        )
        .await;
    assert_eq!(errcode(&v), 50100, "{v}");
}
