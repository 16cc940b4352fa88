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

#[path = "web/console.rs"]
mod console;
#[path = "web/external.rs"]
mod external;
#[path = "web/pages.rs"]
mod pages;

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
