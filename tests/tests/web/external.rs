//! External contacts in the web client: invited, marked, answered and
//! handed over.

use super::*;

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
