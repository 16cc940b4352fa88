//! The admin console in the browser: each role sees only what it may do.

use super::*;

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
