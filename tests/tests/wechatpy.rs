//! The WeCom-compatible API driven by a real third-party SDK: Python's
//! wechatpy (`tests/wecom/wechatpy_e2e.py`), installed from PyPI into a
//! virtualenv under the target directory (`.ci/run` prepares it; without
//! it the test creates it, which needs the package registry).
//!
//! Token, department and user lifecycle, a bulk replaceuser job, app
//! messages to users and a department, media uploaded and sent as image
//! and file messages and read back with `media/get`, app chats, OAuth2 code → userid,
//! external contacts and customer groups read and handed over after a
//! departure,
//! callbacks decrypted by wechatpy's own `WeChatCrypto`, and the error
//! codes for a bad token, an expired token, an unknown and an existing
//! userid.

use std::path::PathBuf;
use std::process::Command;

use enclave_tests::api::seed_directory;
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use enclave_tests::wecom::create_app;

/// wechatpy's version the test is written against.
const WECHATPY: &str = "wechatpy==1.8.18";

/// `<target>/wecom-venv/bin/python`, with wechatpy importable.
fn python() -> PathBuf {
    let venv = enclave_tests::profile_dir()
        .parent()
        .map(|t| t.join("wecom-venv"))
        .expect("target dir");
    let py = venv.join("bin").join("python");
    let ok = |py: &PathBuf| {
        Command::new(py)
            .args(["-c", "import wechatpy, cryptography"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if ok(&py) {
        return py;
    }
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 -m venv (Python 3 is needed for this test)");
    assert!(status.success(), "creating {}", venv.display());
    let status = Command::new(venv.join("bin").join("pip"))
        .args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            WECHATPY,
            "cryptography",
        ])
        .status()
        .expect("pip");
    assert!(
        status.success(),
        "installing {WECHATPY} into {} failed (run .ci/run once with network access)",
        venv.display()
    );
    assert!(
        ok(&py),
        "wechatpy still not importable from {}",
        py.display()
    );
    py
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wechatpy_drives_the_whole_api() {
    let py = python();
    let fault = tempfile::tempdir().expect("tmp");
    let spec = NodeSpec {
        env: vec![(
            "ENCLAVE_FAULT_DIR".into(),
            fault.path().display().to_string(),
        )],
        ..Default::default()
    };
    let mut c = TestCluster::start(1, spec).await;
    seed_directory(&c, 0, &[], "unused password").await;
    let app = create_app(
        &c,
        0,
        "HR-sync",
        &[
            "directory:write",
            "message:send",
            "appchat",
            "oauth",
            "approval",
            "externalcontact",
        ],
        &["oa.example.internal"],
    )
    .await;
    let receiver = c.pki.node_at("receiver", "127.0.0.1");
    let ca = c.pki.ca_dir().join("ca.pem");
    let base = c.endpoints(0).api_url();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("wecom/wechatpy_e2e.py");
    let out = Command::new(&py)
        .arg(&script)
        .env("BASE", &base)
        .env("CA", &ca)
        .env("REQUESTS_CA_BUNDLE", &ca)
        .env("CORPID", &app.corpid)
        .env("SECRET", &app.secret)
        .env("AGENTID", app.agentid.to_string())
        .env("CTL", enclave_tests::bin("enclavectl"))
        .env("CERT_DIR", &c.admin_dir)
        .env("ADMIN", c.nodes[0].admin_url())
        .env("FAULT_DIR", fault.path())
        .env("RECV_CERT", receiver.join("cert.pem"))
        .env("RECV_KEY", receiver.join("key.pem"))
        .output()
        .expect("run the wechatpy script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("ALL OK"),
        "wechatpy script failed ({}):\n{stdout}\n{stderr}\n--- node log ---\n{}",
        out.status,
        c.procs[0]
            .as_ref()
            .map(|p| p.log_text())
            .unwrap_or_default()
    );
}
