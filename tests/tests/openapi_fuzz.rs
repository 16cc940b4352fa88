//! The client API against its own OpenAPI document: schemathesis (a
//! property-based API fuzzer from PyPI, installed into a virtualenv under
//! the target directory; `.ci/run` prepares it, without it the test
//! creates it, which needs the package registry) reads `/v1/openapi.json`
//! from a real node, generates requests from it — valid ones and, for the
//! checks that apply to them, invalid ones — and checks every answer:
//!
//! - `not_a_server_error`: no 5xx, whatever the input;
//! - `positive_data_acceptance`: a request the document calls valid is not
//!   refused as malformed (the document is no looser than the server);
//! - `status_code_conformance`, `content_type_conformance`,
//!   `response_schema_conformance`: every answer is documented, JSON, and
//!   has the documented shape.
//!
//! The node has a small directory, two groups and a 1:1 conversation;
//! half of the generated conversation ids, userids and sequence numbers
//! are real ones (schemathesis "dictionaries"), so requests get past "no
//! such conversation" into the domain's own checks.
//!
//! Run it alone: `cargo nextest run -p enclave-tests --test openapi_fuzz`.
//! `OPENAPI_FUZZ_SEED=<n>` replays (or explores) another seed;
//! `OPENAPI_FUZZ_EXAMPLES=<n>` changes the examples per operation;
//! `OPENAPI_FUZZ_REPORT=<dir>` keeps every request and answer there (HAR).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use enclave_tests::api::{Api, seed_directory};
use enclave_tests::cluster::TestCluster;
use enclave_tests::proc::NodeSpec;
use http::Method;
use serde_json::{Value, json};

/// The schemathesis release the test is written against (its CLI and
/// config file changed between major versions).
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

/// The seed the run uses unless `OPENAPI_FUZZ_SEED` says otherwise: a
/// fixed one keeps CI reproducible.
const SEED: &str = "20250101";

const PW: &str = "correct horse battery";

/// `<target>/openapi-venv/bin/st`, installed if missing.
fn schemathesis() -> PathBuf {
    let venv = enclave_tests::profile_dir()
        .parent()
        .map(|t| t.join("openapi-venv"))
        .expect("target dir");
    let st = venv.join("bin").join("st");
    let wanted = SCHEMATHESIS.trim_start_matches("schemathesis==");
    let ok = |st: &PathBuf| {
        Command::new(st).arg("--version").output().is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).contains(wanted)
        })
    };
    if ok(&st) {
        return st;
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
            SCHEMATHESIS,
        ])
        .status()
        .expect("pip");
    assert!(
        status.success(),
        "installing {SCHEMATHESIS} into {} failed (run .ci/run once with network access)",
        venv.display()
    );
    assert!(ok(&st), "{} still does not run", st.display());
    st
}

async fn call(api: &Api, token: &str, method: Method, path: &str, body: Value) -> Value {
    let (s, v) = api.call(method, path, Some(token), Some(body)).await;
    assert_eq!(s, 200, "{path}: {v}");
    v
}

/// schemathesis' configuration: which statuses a valid request may get,
/// and the real ids it draws from half of the time.
fn config(direct: &str) -> String {
    format!(
        r#"
# A valid request may still meet the state: 401/403/404/409 (not yours,
# no such thing, a conflict), 410 (the group was dissolved — the fuzzer
# dissolves g2), 429 (failed logins per source address). 400 and 422 are
# not here: a request the document allows must never be malformed or over
# a documented limit.
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "410", "429"]

[dictionaries]
# The caller (alice) is left out of `users` on purpose: naming the owner
# as an admin is refused as invalid_argument (400) by design, and no
# schema can say "any member but you". (Messaging oneself is 403: the
# fuzzer learns "alice" from responses and tries it.)
users = {{ values = ["bob", "carol", "dave"] }}
# Group operations on a 1:1 conversation are invalid_argument too, so
# they get the groups only.
groups = {{ values = ["g1", "g2", "g3"] }}
dissolvable = {{ values = ["g2"] }}
giveable = {{ values = ["g3"] }}
leavable = {{ values = ["g4"] }}
convs = {{ values = ["g1", "{direct}"] }}
seqs = {{ values = [1, 2, 3] }}

[parameters]
"path.conv" = {{ dictionary = "convs", probability = 0.5 }}
"path.userid" = {{ dictionary = "users", probability = 0.5 }}
"path.seq" = {{ dictionary = "seqs", probability = 0.5 }}
"body.seq" = {{ dictionary = "seqs", probability = 0.5 }}
"body.reply_to" = {{ dictionary = "seqs", probability = 0.5 }}
"body.userids[*]" = {{ dictionary = "users", probability = 0.8 }}
"body.members[*]" = {{ dictionary = "users", probability = 0.8 }}
"body.admins[*]" = {{ dictionary = "users", probability = 0.8 }}
"body.mentions[*]" = {{ dictionary = "users", probability = 0.8 }}

# The first matching block decides. g2 is the group the fuzzer may
# dissolve and g3 the one it may give away, so g1 stays usable. (Logins
# get no real userids: failed ones would lock the account, 423.)
[[operations]]
include-name = "DELETE /v1/conversations/{{conv}}"
parameters = {{ "path.conv" = {{ dictionary = "dissolvable", probability = 0.5 }} }}

[[operations]]
include-name = "PUT /v1/conversations/{{conv}}/owner"
parameters = {{ "path.conv" = {{ dictionary = "giveable", probability = 0.5 }}, "body.userid" = {{ dictionary = "users", probability = 0.5 }} }}

# g4 is bob's: the caller may leave it (an owner may not).
[[operations]]
include-name = "POST /v1/conversations/{{conv}}/leave"
parameters = {{ "path.conv" = {{ dictionary = "leavable", probability = 0.5 }} }}

[[operations]]
include-name = [
    "PATCH /v1/conversations/{{conv}}",
    "POST /v1/conversations/{{conv}}/members",
    "DELETE /v1/conversations/{{conv}}/members/{{userid}}",
    "PUT /v1/conversations/{{conv}}/admins",
]
parameters = {{ "path.conv" = {{ dictionary = "groups", probability = 0.5 }} }}

# A long poll waits up to 60 s for events after `since`: not here.
[[operations]]
include-name = "GET /v1/sync"
parameters = {{ "query.timeout_ms" = 0 }}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_as_its_openapi_document_says() {
    let st = schemathesis();
    // Every generated request uses the one token: no per-token rate limit.
    let spec = NodeSpec {
        env: vec![("ENCLAVE_API__TOKEN_RATE_PER_SEC".into(), "0".into())],
        ..Default::default()
    };
    let mut c = TestCluster::start(1, spec).await;
    seed_directory(&c, 0, &["alice", "bob", "carol", "dave"], PW).await;
    // The external-contact routes answer 503 until the fresh cluster has
    // moved to log version 3 (a 503 would count as a refused valid request).
    c.wait_log_version(0, 3).await;
    let ca = c.pki.ca_dir().join("ca.pem");
    let base = c.endpoints(0).api_url();
    let api = Api::new(&base, &ca);
    let alice = api.login("alice", PW).await;
    let bob = api.login("bob", PW).await;

    // g1: alice (owner), bob and carol, with messages; g2: alice and bob;
    // g3: alice, bob and carol; g4: bob's, with alice and carol.
    let g1 = call(
        &api,
        &alice,
        Method::POST,
        "/v1/conversations",
        json!({"name": "Project", "members": ["bob", "carol"]}),
    )
    .await;
    assert_eq!(g1["id"], "g1", "{g1}");
    let g2 = call(
        &api,
        &alice,
        Method::POST,
        "/v1/conversations",
        json!({"name": "Spare", "members": ["bob"]}),
    )
    .await;
    assert_eq!(g2["id"], "g2", "{g2}");
    let g3 = call(
        &api,
        &alice,
        Method::POST,
        "/v1/conversations",
        json!({"name": "Handover", "members": ["bob", "carol"]}),
    )
    .await;
    assert_eq!(g3["id"], "g3", "{g3}");
    let g4 = call(
        &api,
        &bob,
        Method::POST,
        "/v1/conversations",
        json!({"name": "Bob's", "members": ["alice", "carol"]}),
    )
    .await;
    assert_eq!(g4["id"], "g4", "{g4}");
    for text in ["one", "two", "three"] {
        call(
            &api,
            &alice,
            Method::POST,
            "/v1/conversations/g1/messages",
            json!({ "text": text }),
        )
        .await;
    }
    // A 1:1 conversation with a message from each side.
    let m = api.send_direct(&alice, "bob", "hello", "seed-1").await;
    api.send_direct(&bob, "alice", "hi", "seed-2").await;
    let direct = m["conversation"]
        .as_str()
        .expect("conversation")
        .to_string();
    regressions(&base, &ca, &api, &alice).await;

    let work = tempfile::tempdir().expect("tmp");
    let cfg = work.path().join("schemathesis.toml");
    std::fs::write(&cfg, config(&direct)).expect("config");

    let seed = std::env::var("OPENAPI_FUZZ_SEED").unwrap_or_else(|_| SEED.into());
    let examples = std::env::var("OPENAPI_FUZZ_EXAMPLES").unwrap_or_else(|_| "25".into());
    let started = Instant::now();
    let out = run(&st, work.path(), &cfg, &base, &ca, &alice, &seed, &examples);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "schemathesis ran {:.0?} (seed {seed}, {examples} examples per operation)",
        started.elapsed()
    );
    assert!(
        out.status.success(),
        "schemathesis found failures ({}); replay with OPENAPI_FUZZ_SEED={seed}:\n{stdout}\n{stderr}\n--- node log ---\n{}",
        out.status,
        c.procs[0]
            .as_ref()
            .map(|p| p.log_text())
            .unwrap_or_default()
    );
    // It really tested something.
    assert!(
        stdout.contains("passed") && !stdout.contains("No operations"),
        "schemathesis tested nothing:\n{stdout}\n{stderr}"
    );
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or_default()
}

/// Bugs found by fuzzing the API against its document, pinned down (on g1
/// and a group of their own, before the fuzzer runs).
async fn regressions(base: &str, ca: &Path, api: &Api, alice: &str) {
    let auth = format!("Bearer {alice}");
    let raw = |method: Method, path: &str, body: Option<Value>, headers: Vec<(&str, &str)>| {
        let client = enclave_ops::Client::anonymous(base, ca).expect("client");
        let path = path.to_string();
        let mut headers: Vec<(String, String)> = headers
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        headers.push(("authorization".into(), auth.clone()));
        if body.is_some() {
            headers.push(("content-type".into(), "application/json".into()));
        }
        async move {
            let headers: Vec<(&str, &str)> = headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let (s, b) = client
                .session()
                .request(
                    method,
                    &path,
                    body.map(|b| b.to_string().into_bytes()),
                    &headers,
                )
                .await
                .expect("request");
            let v = serde_json::from_slice(&b).unwrap_or(Value::Null);
            (s.as_u16(), v)
        }
    };

    // An idempotency key given to a group's creation is not replayed to a
    // send (the send used to get the group back: a 500).
    let (s, v) = raw(
        Method::POST,
        "/v1/conversations",
        Some(json!({"name": "Keyed", "members": ["bob"]})),
        vec![("idempotency-key", "same-key")],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let keyed = v["id"].as_str().expect("id").to_string();
    let (s, v) = raw(
        Method::POST,
        &format!("/v1/conversations/{keyed}/messages"),
        Some(json!({"text": "hello"})),
        vec![("idempotency-key", "same-key")],
    )
    .await;
    assert_eq!((s, v["seq"].as_u64()), (200, Some(1)), "{v}");
    // A key that is not printable ASCII is refused, not ignored.
    let (s, v) = raw(
        Method::POST,
        &format!("/v1/conversations/{keyed}/messages"),
        Some(json!({"text": "hello"})),
        vec![("idempotency-key", "ключ")],
    )
    .await;
    assert_eq!((s, code(&v)), (400, "invalid_idempotency_key"), "{v}");
    // 128 characters are 128 characters, whatever their UTF-8 length.
    let (s, v) = raw(
        Method::POST,
        &format!("/v1/conversations/{keyed}/messages"),
        Some(json!({"text": "hello", "client_msg_id": "键".repeat(128)})),
        vec![],
    )
    .await;
    assert_eq!(s, 200, "{v}");

    // A refused PATCH changes nothing: the rename is not applied when the
    // announcement is too long.
    let (s, v) = raw(
        Method::PATCH,
        &format!("/v1/conversations/{keyed}"),
        Some(json!({"name": "Renamed", "announcement": "x".repeat(2001)})),
        vec![],
    )
    .await;
    assert_eq!((s, code(&v)), (422, "limit_exceeded"), "{v}");
    let (s, v) = api
        .call(
            Method::GET,
            &format!("/v1/conversations/{keyed}"),
            Some(alice),
            None,
        )
        .await;
    assert_eq!((s, v["name"].as_str()), (200, Some("Keyed")), "{v}");

    // A marker past the last message names a message that does not exist
    // (404, like recall and receipts), not a malformed request.
    let (s, v) = raw(
        Method::POST,
        &format!("/v1/conversations/{keyed}/read"),
        Some(json!({"seq": 99})),
        vec![],
    )
    .await;
    assert_eq!((s, code(&v)), (404, "not_found"), "{v}");
    // Recalling twice (a retry) answers the tombstone both times.
    for _ in 0..2 {
        let (s, v) = raw(
            Method::POST,
            &format!("/v1/conversations/{keyed}/messages/1/recall"),
            None,
            vec![],
        )
        .await;
        assert_eq!((s, v["recalled"].as_bool()), (200, Some(true)), "{v}");
    }

    // The stream refuses a plain GET in the one error shape.
    let (s, v) = raw(Method::GET, "/v1/stream", None, vec![]).await;
    assert_eq!((s, code(&v)), (400, "not_a_websocket"), "{v}");
    // So does a path segment that is not UTF-8.
    let (s, v) = raw(Method::GET, "/v1/conversations/%FF", None, vec![]).await;
    assert_eq!((s, code(&v)), (400, "invalid_path"), "{v}");
}

#[allow(clippy::too_many_arguments)]
fn run(
    st: &Path,
    dir: &Path,
    cfg: &Path,
    base: &str,
    ca: &Path,
    token: &str,
    seed: &str,
    examples: &str,
) -> std::process::Output {
    let mut cmd = Command::new(st);
    cmd.current_dir(dir)
        .arg("--config-file")
        .arg(cfg)
        .arg("run")
        .arg(format!("{base}/v1/openapi.json"))
        .args(["--url", base])
        .arg("--tls-verify")
        .arg(ca)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args([
            "--checks",
            "not_a_server_error,positive_data_acceptance,status_code_conformance,\
             content_type_conformance,response_schema_conformance",
        ])
        // Not fuzzed: logout, a password change and a token refresh would
        // end the very session the run uses (every later request would be
        // 401), and the stream is a WebSocket, which schemathesis does not
        // speak (tests/tests/messaging.rs covers it).
        .args(["--exclude-path", "/v1/logout"])
        .args(["--exclude-path", "/v1/me/password"])
        .args(["--exclude-path", "/v1/token/refresh"])
        .args(["--exclude-path", "/v1/stream"])
        // Uploads take raw bytes whose type is sniffed: random bytes sent
        // as an image are rightly refused (415/422), which no schema can
        // rule out. tests/tests/files.rs covers them.
        .args(["--exclude-path", "/v1/files"])
        .args(["--exclude-path", "/v1/uploads"])
        .args(["--exclude-path", "/v1/uploads/{id}/chunks/{index}"])
        .args(["--exclude-path", "/v1/uploads/{id}/finish"])
        // Example, boundary and random requests; no stateful phase (the
        // document has no links, and the real ids above give depth).
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", examples])
        .args(["--seed", seed])
        // Hypothesis' per-example deadline is already off in schemathesis
        // 4 (a slow argon2 login on a loaded machine is not a failure).
        .args(["--generation-database", "none"])
        .args(["--request-timeout", "30"])
        .args(["--workers", "1"])
        .arg("--no-color");
    if let Ok(report) = std::env::var("OPENAPI_FUZZ_REPORT") {
        cmd.args(["--report", "har", "--report-dir", &report]);
    }
    cmd.output().expect("run schemathesis")
}
