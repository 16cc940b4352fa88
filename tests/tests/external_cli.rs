//! `enclavectl external` against a real one-node cluster: an employee with
//! an external contact and a customer group departs; the sysadmin finds
//! them in the unassigned list and hands them over with `transfer --all`;
//! an in-service transfer waits for the secadmin's window and is
//! cancelled; an external account is disabled and enabled; each role is
//! refused outside its duty; refusals name the flag; the audit trail has
//! every step.

use enclave_certs::Role;
use enclave_tests::api::Api;
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departure_hand_over_and_in_service_transfer_through_enclavectl() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    // External contacts are log version 3: a fresh cluster moves there by
    // itself within seconds.
    c.wait_log_version(0, 3).await;
    enclave_tests::api::seed_directory(&c, 0, &["lisi", "wangwu", "zhao"], PW).await;
    let url = c.nodes[0].admin_url();
    let sys = c.admin_dir.display().to_string();
    let sec = c.pki.operator("sec", Role::Secadmin).display().to_string();
    let aud = c.pki.operator("aud", Role::Auditor).display().to_string();
    let ctl = |dir: &str, args: &[&str]| {
        let mut all = vec!["--cert-dir", dir, "--endpoint", url.as_str()];
        all.extend_from_slice(args);
        enclave_tests::proc::enclavectl(&all)
    };

    // lisi may invite contacts: the existing permission command.
    let (code, out, err) = ctl(
        &sys,
        &["directory", "permission", "grant", "lisi", "external:add"],
    );
    assert_eq!(code, 0, "{out}{err}");
    let api_url = c.endpoints(0).api_url();
    let api = Api::new(&api_url, &c.pki.ca_dir().join("ca.pem"));
    let lisi = api.login("lisi", PW).await;
    let (s, inv) = api
        .call(Method::POST, "/v1/external/invitations", Some(&lisi), None)
        .await;
    assert_eq!(s, 200, "{inv}");
    let (s, acc) = api
        .call(
            Method::POST,
            "/v1/external/accept",
            None,
            Some(json!({
                "code": inv["code"], "userid": "wang.wu", "name": "王五",
                "org": "华东钢铁", "password": PW,
            })),
        )
        .await;
    assert_eq!(s, 200, "{acc}");
    let (s, group) = api
        .call(
            Method::POST,
            "/v1/external/groups",
            Some(&lisi),
            Some(json!({ "name": "华东客户群", "members": ["wang.wu"] })),
        )
        .await;
    assert_eq!(s, 200, "{group}");
    let group_id = group["id"].as_str().expect("group id").to_string();

    // lisi departs (离职).
    let (code, out, err) = ctl(&sys, &["directory", "member", "status", "lisi", "departed"]);
    assert_eq!(code, 0, "{out}{err}");

    // The auditor and the sysadmin see what waits for a new owner.
    let (code, out, err) = ctl(&aud, &["external", "unassigned"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("EMPLOYEE"), "{out}");
    assert!(out.contains("contact  wang.wu"), "{out}");
    assert!(out.contains(&format!("group    {group_id}")), "{out}");
    assert!(
        out.contains("华东钢铁") && out.contains("华东客户群"),
        "{out}"
    );
    let (code, out, err) = ctl(&sys, &["--output", "json", "external", "unassigned"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["unassigned"][0]["employee"], "lisi", "{v}");

    // Refusals: usage errors exit 2, the node's name the flag at fault.
    let (code, _, err) = ctl(
        &sys,
        &["external", "transfer", "--from", "lisi", "--to", "wangwu"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--all"), "{err}");
    let (code, _, err) = ctl(
        &sys,
        &[
            "external", "transfer", "--from", "lisi", "--to", "nobody", "--all",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--to nobody refused"), "{err}");
    let (code, _, err) = ctl(
        &sys,
        &[
            "external",
            "transfer",
            "--from",
            "lisi",
            "--to",
            "wangwu",
            "--contact",
            "ghost",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--contact ghost refused"), "{err}");
    let (code, _, err) = ctl(
        &aud,
        &[
            "external", "transfer", "--from", "lisi", "--to", "wangwu", "--all",
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("403"), "{err}");

    // The hand-over (离职继承): immediate for a departed employee.
    let (code, out, err) = ctl(
        &sys,
        &[
            "external",
            "transfer",
            "--from",
            "lisi",
            "--to",
            "wangwu",
            "--all",
            "--message",
            "王经理接替李四",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("lisi -> wangwu  done"), "{out}");
    assert!(out.contains("contacts:  wang.wu"), "{out}");
    let (code, out, err) = ctl(&sys, &["external", "unassigned"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "nothing unassigned");
    let (code, out, err) = ctl(&aud, &["external", "contacts", "--employee", "wangwu"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with("wangwu serves 1 external contact(s) and owns 1 customer group(s)"),
        "{out}"
    );
    assert!(out.contains("wang.wu") && out.contains("lisi"), "{out}");
    // The new owner sees the contact, and the contact was told.
    let wangwu = api.login("wangwu", PW).await;
    let (s, mine) = api
        .call(Method::GET, "/v1/external/contacts", Some(&wangwu), None)
        .await;
    assert_eq!(s, 200, "{mine}");
    assert_eq!(mine["contacts"][0]["userid"], "wang.wu", "{mine}");
    let conv = acc["conversation"].as_str().expect("conversation");
    let (s, hist) = api
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/messages?limit=50"),
            Some(&wangwu),
            None,
        )
        .await;
    assert_eq!(s, 200, "{hist}");
    assert!(hist.to_string().contains("王经理接替李四"), "{hist}");

    // In service (在职继承): the secadmin sets a window; the transfer waits
    // and is cancelled.
    let (code, _, err) = ctl(
        &sec,
        &["external", "policy", "set", "--transfer-window", "5x"],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--transfer-window"), "{err}");
    let (code, _, err) = ctl(
        &sys,
        &["external", "policy", "set", "--transfer-window", "1h"],
    );
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = ctl(
        &sec,
        &["external", "policy", "set", "--transfer-window", "1h"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("transfer_window_ms: 86400000 (24h) -> 3600000 (1h)"),
        "{out}"
    );
    let (code, out, err) = ctl(&aud, &["external", "policy"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("max_contacts_per_employee    2000"), "{out}");
    let (code, out, err) = ctl(
        &sys,
        &[
            "--output", "json", "external", "transfer", "--from", "wangwu", "--to", "zhao", "--all",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let t: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(t["status"], "waiting", "{t}");
    assert_eq!(
        t["due_ms"].as_u64().expect("due") - t["created_ms"].as_u64().expect("created"),
        3_600_000
    );
    let id = t["id"].to_string();
    let (code, out, err) = ctl(&aud, &["external", "transfers", "--from", "wangwu"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ID"), "{out}");
    assert!(out.contains("waiting"), "{out}");
    let (code, _, err) = ctl(&aud, &["external", "cancel", &id]);
    assert_eq!(code, 1, "{err}");
    let (code, out, err) = ctl(&sys, &["external", "cancel", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("cancelled"), "{out}");
    let (code, out, err) = ctl(&aud, &["external", "transfer-show", &id]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("wangwu -> zhao  cancelled"), "{out}");
    let (code, out, err) = ctl(&sys, &["external", "contacts", "--employee", "wangwu"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("serves 1 external contact(s)"), "{out}");

    // Disabling an external account ends its logins; enabling restores them.
    let (code, out, err) = ctl(&sys, &["external", "disable", "wang.wu"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("DISABLED"), "{out}");
    let (s, v) = api
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({ "userid": "wang.wu", "password": PW })),
        )
        .await;
    assert_ne!(s, 200, "{v}");
    let (code, out, err) = ctl(&aud, &["external", "accounts"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("wang.wu") && l.contains("wangwu") && l.ends_with("disabled")),
        "{out}"
    );
    let (code, out, err) = ctl(&sys, &["external", "enable", "wang.wu"]);
    assert_eq!(code, 0, "{out}{err}");
    api.login("wang.wu", PW).await;
    let (code, out, err) = ctl(&aud, &["external", "account", "wang.wu"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("served by:   wangwu"), "{out}");

    // Supervision of the root department.
    let (code, out, err) = ctl(&aud, &["external", "supervision", "--department", "1"]);
    assert_eq!(code, 0, "{out}{err}");
    // wangwu: 1 contact, 1 customer group, no messages to externals yet.
    assert!(
        out.lines().any(|l| l.starts_with("wangwu")
            && l.split_whitespace().rev().take(3).collect::<Vec<_>>() == ["0", "1", "1"]),
        "{out}"
    );
    let (code, _, err) = ctl(&aud, &["external", "supervision", "--department", "99"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--department refused"), "{err}");

    // Every step is in the audit trail.
    let aud_client =
        enclave_ops::Client::with_cert_dir(&url, std::path::Path::new(&aud)).expect("client");
    let v: Value = aud_client
        .get_json("/v1/audit?limit=10000")
        .await
        .expect("audit");
    // (action, outcome) of every record that went through; a transfer's
    // outcome carries its id and state.
    let done: Vec<(String, String)> = v["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            let f = |k: &str| r["record"][k].as_str().unwrap_or_default().to_string();
            (f("action"), f("outcome"))
        })
        .filter(|(_, o)| o.starts_with("ok"))
        .collect();
    for a in [
        "external.invite",
        "external.accept",
        "external.group.create",
        "external.transfer",
        "external.transfer.cancel",
        "external.disable",
        "external.enable",
        "policy.set",
    ] {
        assert!(
            done.iter().any(|(x, _)| x == a),
            "{a} not audited: {done:?}"
        );
    }
    let has = |action: &str, outcome: &str| {
        done.iter()
            .any(|(a, o)| a == action && o.as_str() == outcome)
    };
    assert!(has("external.transfer", "ok,transfer:1,done"), "{done:?}");
    assert!(
        has("external.transfer", &format!("ok,transfer:{id},waiting")),
        "{done:?}"
    );
    assert!(
        has(
            "external.transfer.cancel",
            &format!("ok,transfer:{id},cancelled")
        ),
        "{done:?}"
    );
}
