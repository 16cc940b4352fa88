//! Files, images and voice notes against real `enclave` processes: a 50 MB
//! upload survives the loss of the node that took it and of that node's
//! chunk files; a flipped byte is caught, never served, and repaired;
//! access follows conversation membership on every node; recall takes the
//! file back; disk full on one follower is survived, on two it is a clear
//! error that records nothing; bombs and disguised types are refused.

use enclave_certs::Role;
use enclave_ops::Client;
use enclave_tests::api::Api;
use enclave_tests::cluster::TestCluster;
use enclave_tests::nemesis::SmallFs;
use enclave_tests::proc::NodeSpec;
use http::Method;
use serde_json::{Value, json};

const PW: &str = "correct horse battery";

fn api(c: &mut TestCluster, i: usize) -> Api {
    let url = c.endpoints(i).api_url();
    Api::new(&url, &c.pki.ca_dir().join("ca.pem"))
}

/// Deterministic incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn sha(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

async fn upload(a: &Api, token: &str, name: &str, kind: &str, body: Vec<u8>) -> (u16, Value) {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("name", name)
        .append_pair("kind", kind)
        .finish();
    a.raw(
        Method::POST,
        &format!("/v1/files?{q}"),
        Some(token),
        Some(body),
        Some("application/octet-stream"),
    )
    .await
}

/// GET a file's bytes: (status, body).
async fn download(a: &Api, token: &str, id: &str, range: Option<&str>) -> (u16, Vec<u8>) {
    let client = Client::anonymous(&a.url, &a.ca)
        .expect("client")
        .with_timeout(std::time::Duration::from_secs(60));
    let auth = format!("Bearer {token}");
    let mut headers = vec![("authorization", auth.as_str())];
    if let Some(r) = range {
        headers.push(("range", r));
    }
    let (s, b) = client
        .session()
        .request(Method::GET, &format!("/v1/files/{id}"), None, &headers)
        .await
        .expect("download");
    (s.as_u16(), b.to_vec())
}

async fn blobs(c: &TestCluster, i: usize) -> Value {
    let (s, b) = c
        .admin(i)
        .request(Method::GET, "/v1/blobs", None)
        .await
        .expect("blobs");
    assert!(s.is_success(), "{s}");
    serde_json::from_slice(&b).expect("json")
}

fn chunk_files(data_dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(data_dir.join("blobs/chunks")) {
        for d in rd.flatten() {
            if let Ok(files) = std::fs::read_dir(d.path()) {
                out.extend(files.flatten().map(|f| f.path()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_survives_its_node_and_its_chunks_and_follows_membership() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    enclave_tests::api::seed_directory(&c, 0, &["alice", "bob", "carol"], PW).await;
    let apis: Vec<Api> = (0..3).map(|i| api(&mut c, i)).collect();
    let alice = apis[0].login("alice", PW).await;
    let bob: Vec<String> = futures_join(&apis, "bob").await;
    let carol: Vec<String> = futures_join(&apis, "carol").await;

    // 50 MB to node-1: acknowledged once a majority holds every chunk.
    let data = noise(50 << 20, 17);
    let (s, f) = upload(&apis[0], &alice, "现场照片合集.bin", "file", data.clone()).await;
    assert_eq!(s, 201, "{f}");
    let id = f["file"]["id"].as_str().expect("id").to_string();
    assert_eq!(f["file"]["size"], 50 << 20);
    assert_eq!(f["file"]["sha256"], sha(&data));
    assert_eq!(f["file"]["type_class"], "other");
    let (s, m) = apis[0]
        .call(
            Method::POST,
            "/v1/direct/bob/messages",
            Some(&alice),
            Some(json!({"text": "", "file": id})),
        )
        .await;
    assert_eq!(s, 200, "{m}");
    assert_eq!(m["file"]["id"], id.as_str());
    assert_eq!(m["file"]["kind"], "file");
    let conv = m["conversation"].as_str().expect("conv").to_string();
    let seq = m["seq"].as_u64().expect("seq");

    // Node-1 dies before anyone downloads: nodes 2 and 3 serve it whole.
    c.kill(0);
    for i in [1, 2] {
        let (s, b) = download(&apis[i], &bob[i], &id, None).await;
        assert_eq!(s, 200, "node {i}");
        assert_eq!(b.len(), data.len(), "node {i}");
        assert!(b == data, "node {i}: bytes differ");
    }
    // A range across a chunk boundary.
    let (s, b) = download(&apis[1], &bob[1], &id, Some("bytes=4194300-4194311")).await;
    assert_eq!(s, 206);
    assert_eq!(b, data[4_194_300..4_194_312].to_vec());

    // Node-1 comes back without its chunk files: it repairs from peers.
    let dir = c.nodes[0].data_dir.clone();
    let before = chunk_files(&dir).len();
    assert!(before >= 13, "node-1 held {before} chunk files");
    std::fs::remove_dir_all(dir.join("blobs/chunks")).expect("delete chunks");
    c.restart(0);
    let apis: Vec<Api> = (0..3).map(|i| api(&mut c, i)).collect();
    let bob0 = apis[0].login("bob", PW).await;
    let (s, b) = download(&apis[0], &bob0, &id, None).await;
    assert_eq!(s, 200);
    assert!(b == data, "node-1 served different bytes after repair");
    let st = enclave_tests::wait_for_async(
        "node-1 to hold every chunk again",
        std::time::Duration::from_secs(60),
        || async {
            let v = blobs(&c, 0).await;
            (v["missing"] == 0 && v["bytes"].as_u64() >= Some(50 << 20)).then_some(v)
        },
    )
    .await;
    assert!(st["repaired_total"].as_u64() >= Some(13), "{st}");

    // A flipped byte in one chunk on node-2: detected, not served, repaired.
    let victim = chunk_files(&c.nodes[1].data_dir)
        .into_iter()
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() == 4 << 20)
                .unwrap_or(false)
        })
        .expect("a full chunk on node-2");
    let mut bytes = std::fs::read(&victim).expect("read chunk");
    bytes[12345] ^= 0x40;
    std::fs::write(&victim, &bytes).expect("flip");
    let (s, b) = download(&apis[1], &bob[1], &id, None).await;
    assert_eq!(s, 200);
    assert!(b == data, "node-2 served a damaged copy");
    let st = blobs(&c, 1).await;
    assert!(st["damaged_total"].as_u64() >= Some(1), "{st}");
    let healed = std::fs::read(&victim).expect("repaired chunk");
    assert_eq!(
        sha(&healed),
        victim.file_name().expect("name").to_string_lossy(),
        "the chunk on disk was repaired"
    );

    // A scrub finds nothing left to repair on node-3.
    let (s, _) = c
        .admin(2)
        .request(Method::POST, "/v1/blobs/verify", None)
        .await
        .expect("verify");
    assert_eq!(s.as_u16(), 202);
    let v = enclave_tests::wait_for_async(
        "the scrub on node-3",
        std::time::Duration::from_secs(60),
        || async {
            let (_, b) = c
                .admin(2)
                .request(Method::GET, "/v1/blobs/verify", None)
                .await
                .expect("verify status");
            let v: Value = serde_json::from_slice(&b).expect("json");
            (v["running"] == false && v["finished_ms"].is_u64()).then_some(v)
        },
    )
    .await;
    assert_eq!(v["unrepairable"], 0, "{v}");
    assert!(v["ok"].as_u64() >= Some(13), "{v}");

    // Not a member of the conversation: 403 on every node.
    for (i, a) in apis.iter().enumerate() {
        let (s, _) = download(a, &carol[i], &id, None).await;
        assert_eq!(s, 403, "carol on node {i}");
    }
    // Carol cannot send it on either (she cannot read it).
    let (s, v) = apis[2]
        .call(
            Method::POST,
            "/v1/direct/alice/messages",
            Some(&carol[2]),
            Some(json!({"text": "mine now", "file": id})),
        )
        .await;
    assert_eq!(s, 404, "{v}");

    // Recall: the file is gone for members and the uploader, on every node.
    let (s, v) = apis[1]
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages/{seq}/recall"),
            Some(&apis[1].login("alice", PW).await),
            None,
        )
        .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["file"], Value::Null, "{v}");
    for (i, a) in apis.iter().enumerate() {
        let s = enclave_tests::wait_for_async(
            "the recall on every node",
            std::time::Duration::from_secs(10),
            || async {
                let (s, _) = download(a, &bob[i], &id, None).await;
                (s == 404).then_some(s)
            },
        )
        .await;
        assert_eq!(s, 404);
    }
    let (s, _) = download(&apis[0], &alice, &id, None).await;
    assert_eq!(s, 404, "the uploader after recall");
    // The message history no longer carries it.
    let (s, l) = apis[2]
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&bob[2]),
            None,
        )
        .await;
    assert_eq!(s, 200, "{l}");
    assert_eq!(l["messages"][0]["file"], Value::Null, "{l}");
}

/// One login per node for `user`.
async fn futures_join(apis: &[Api], user: &str) -> Vec<String> {
    let mut out = Vec::new();
    for a in apis {
        out.push(a.login(user, PW).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_get_thumbnails_and_bombs_disguises_and_oversize_are_refused() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    enclave_tests::api::seed_directory(&c, 0, &["alice", "bob"], PW).await;
    let a = api(&mut c, 1);
    let alice = a.login("alice", PW).await;

    // A real picture: dimensions and a thumbnail.
    let png = png(640, 480);
    let (s, f) = upload(&a, &alice, "site.png", "image", png.clone()).await;
    assert_eq!(s, 201, "{f}");
    assert_eq!(f["file"]["mime"], "image/png");
    assert_eq!(
        (f["file"]["width"].as_u64(), f["file"]["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert_eq!(f["file"]["thumbnail"], true);
    let id = f["file"]["id"].as_str().expect("id");
    let client = Client::anonymous(&a.url, &a.ca).expect("client");
    let auth = format!("Bearer {alice}");
    let (s, t) = client
        .session()
        .request(
            Method::GET,
            &format!("/v1/files/{id}/thumbnail"),
            None,
            &[("authorization", auth.as_str())],
        )
        .await
        .expect("thumb");
    assert_eq!(s.as_u16(), 200);
    assert_eq!(&t[..3], &[0xFF, 0xD8, 0xFF], "a JPEG");

    // Resumable: chunks out of order, a status to resume from, bad chunks
    // refused; then one in order. Both come back byte for byte.
    let big = noise(9 << 20, 21);
    for order in [[2usize, 0, 1], [0, 1, 2]] {
        let (s, u) = a
            .call(
                Method::POST,
                "/v1/uploads",
                Some(&alice),
                Some(json!({"name": "drawings.zip", "size": big.len(), "kind": "file"})),
            )
            .await;
        assert_eq!(s, 201, "{u}");
        let uid = u["upload_id"].as_str().expect("upload id").to_string();
        let cs = u["chunk_size"].as_u64().expect("chunk size") as usize;
        assert_eq!(u["chunks"], 3);
        let put = |i: usize, body: Vec<u8>| {
            let a = &a;
            let alice = &alice;
            let uid = &uid;
            async move {
                a.raw(
                    Method::PUT,
                    &format!("/v1/uploads/{uid}/chunks/{i}"),
                    Some(alice),
                    Some(body),
                    Some("application/octet-stream"),
                )
                .await
            }
        };
        let part = |i: usize| big[i * cs..((i + 1) * cs).min(big.len())].to_vec();
        let (s, v) = put(0, vec![1, 2, 3]).await;
        assert_eq!(s, 400, "a short chunk: {v}");
        let (s, v) = put(3, vec![1]).await;
        assert_eq!(s, 400, "no chunk 3: {v}");
        for (n, i) in order.iter().enumerate() {
            let (s, v) = put(*i, part(*i)).await;
            assert_eq!(s, 204, "chunk {i}: {v}");
            if n == 1 {
                let (s, st) = a
                    .call(
                        Method::GET,
                        &format!("/v1/uploads/{uid}"),
                        Some(&alice),
                        None,
                    )
                    .await;
                assert_eq!(s, 200, "{st}");
                let mut got: Vec<u64> = st["received"]
                    .as_array()
                    .expect("received")
                    .iter()
                    .filter_map(Value::as_u64)
                    .collect();
                got.sort_unstable();
                let mut want = vec![order[0] as u64, order[1] as u64];
                want.sort_unstable();
                assert_eq!(got, want);
            }
        }
        let (s, f) = a
            .call(
                Method::POST,
                &format!("/v1/uploads/{uid}/finish"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(s, 201, "{f}");
        assert_eq!(f["file"]["sha256"], sha(&big), "{order:?}");
        let fid = f["file"]["id"].as_str().expect("id");
        let (s, b) = download(&a, &alice, fid, None).await;
        assert_eq!(s, 200);
        assert!(b == big, "{order:?}: bytes differ");
        // The session is over.
        let (s, _) = a
            .call(
                Method::GET,
                &format!("/v1/uploads/{uid}"),
                Some(&alice),
                None,
            )
            .await;
        assert_eq!(s, 404);
    }

    // A voice note (AMR-NB: the magic, then 20 ms frames).
    let mut amr = b"#!AMR\n".to_vec();
    for _ in 0..150 {
        amr.push(0x3c);
        amr.extend(noise(31, 4));
    }
    let q = "name=voice.amr&kind=voice&duration_ms=3000";
    let (s, v) = a
        .raw(
            Method::POST,
            &format!("/v1/files?{q}"),
            Some(&alice),
            Some(amr),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["file"]["kind"], "voice");
    assert_eq!(v["file"]["mime"], "audio/amr");
    assert_eq!(v["file"]["duration_ms"], 3000);
    // A browser's recording: audio-only WebM is a voice note, not a video.
    let mut webm = vec![
        0x1A, 0x45, 0xDF, 0xA3, 0x9F, 0x42, 0x86, 0x81, 0x01, 0x42, 0xF7, 0x81, 0x01, 0x42, 0xF2,
        0x81, 0x04, 0x42, 0xF3, 0x81, 0x08, 0x42, 0x82, 0x84,
    ];
    webm.extend_from_slice(b"webm");
    webm.extend(noise(2048, 8));
    let q = "name=voice.webm&kind=voice&duration_ms=1200";
    let (s, v) = a
        .raw(
            Method::POST,
            &format!("/v1/files?{q}"),
            Some(&alice),
            Some(webm),
            None,
        )
        .await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(v["file"]["mime"], "audio/webm");
    // A voice note without a duration is refused before any byte is kept.
    let (s, v) = upload(&a, &alice, "v.amr", "voice", b"#!AMR\n".to_vec()).await;
    assert_eq!(s, 400, "{v}");

    // A decompression bomb: 100,000 x 100,000 pixels claimed in a tiny PNG.
    let (s, v) = upload(&a, &alice, "bomb.png", "image", bomb(100_000, 100_000)).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "image_too_large", "{v}");
    // An executable named like a document: the bytes decide, and the
    // default policy refuses executables.
    let mut elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    elf.extend(noise(4096, 3));
    let (s, v) = upload(&a, &alice, "季度报告.pdf", "file", elf).await;
    assert_eq!(s, 415, "{v}");
    assert_eq!(v["error"]["code"], "type_not_allowed", "{v}");
    // A PDF sent as an image.
    let (s, v) = upload(
        &a,
        &alice,
        "scan.png",
        "image",
        b"%PDF-1.7\n1 0 obj\n".to_vec(),
    )
    .await;
    assert_eq!(s, 415, "{v}");
    // Nothing of those was recorded.
    let st = blobs(&c, 1).await;
    assert_eq!(st["blobs"], 5, "{st}");

    // A backup plus a copy of a node's chunks restores the files' bytes
    // (the two resumable uploads share their chunks: stored once).
    let (s, backup) = c
        .admin(0)
        .request(Method::GET, "/v1/backup", None)
        .await
        .expect("backup");
    assert!(s.is_success(), "backup: {s}");
    let work = tempfile::tempdir().expect("tempdir");
    let file = work.path().join("backup.snap");
    std::fs::write(&file, &backup).expect("write backup");
    let copy = work.path().join("chunks-copy");
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(c.nodes[1].data_dir.join("blobs/chunks"))
        .arg(&copy)
        .status()
        .expect("cp");
    assert!(status.success());
    let restored = work.path().join("restored");
    let out = std::process::Command::new(enclave_tests::bin("enclave"))
        .arg("restore")
        .arg("--from")
        .arg(&file)
        .arg("--blobs-from")
        .arg(&copy)
        .arg("--data-dir")
        .arg(&restored)
        .output()
        .expect("restore");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("files: 5 recorded; chunks: 7 copied, 0 missing, 0 damaged"),
        "{err}"
    );
    let sha_png = sha(&png);
    let name = format!("blobs/chunks/{}/{sha_png}", &sha_png[..2]);
    assert_eq!(
        std::fs::read(restored.join(name)).expect("restored chunk"),
        png
    );

    // The security admin lowers the size limit: 413 from Content-Length,
    // before the body is read.
    let sec = c.pki.operator("sec", Role::Secadmin);
    let sec = Client::with_cert_dir(&c.nodes[0].admin_url(), &sec).expect("client");
    let mut p: Value = sec.get_json("/v1/policy/files").await.expect("policy");
    p["max_file_bytes"] = json!(1 << 20);
    let (s, b) = sec
        .request(
            Method::PUT,
            "/v1/policy/files",
            Some(p.to_string().into_bytes()),
        )
        .await
        .expect("put policy");
    assert!(s.is_success(), "{s} {}", String::from_utf8_lossy(&b));
    // The system administrator may not.
    let (s, _) = c
        .admin(0)
        .request(
            Method::PUT,
            "/v1/policy/files",
            Some(p.to_string().into_bytes()),
        )
        .await
        .expect("put policy");
    assert_eq!(s.as_u16(), 403);
    let big = noise(2 << 20, 9);
    let v = enclave_tests::wait_for_async(
        "the policy on node-2",
        std::time::Duration::from_secs(5),
        || async {
            let (s, v) = upload(&a, &alice, "big.bin", "file", big.clone()).await;
            (s == 413).then_some(v)
        },
    )
    .await;
    assert_eq!(v["error"]["code"], "too_large", "{v}");
    // Bad policy values are refused with the key named.
    p["allowed_types"] = json!(["pictures"]);
    let (s, b) = sec
        .request(
            Method::PUT,
            "/v1/policy/files",
            Some(p.to_string().into_bytes()),
        )
        .await
        .expect("put policy");
    assert_eq!(s.as_u16(), 400);
    assert!(String::from_utf8_lossy(&b).contains("allowed_types"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_full_on_one_follower_is_survived_and_on_two_records_nothing() {
    let mut c = TestCluster::prepare(3, NodeSpec::default(), false);
    let mut fs = Vec::new();
    for i in [1, 2] {
        match SmallFs::mount(&c.nodes[i].data_dir.join("blobs"), 48, i) {
            Ok(f) => fs.push(f),
            Err(e) => {
                eprintln!("SKIP: cannot mount a small filesystem (needs root): {e}");
                return;
            }
        }
    }
    c = c.boot().await;
    enclave_tests::api::seed_directory(&c, 0, &["alice"], PW).await;
    let a = api(&mut c, 0);
    let alice = a.login("alice", PW).await;

    // Node-3's blob disk is full: a majority (1 and 2) still holds it.
    fs[1].fill();
    let data = noise(9 << 20, 5);
    let (s, f) = upload(&a, &alice, "ok.bin", "file", data.clone()).await;
    assert_eq!(s, 201, "{f}");
    let id = f["file"]["id"].as_str().expect("id").to_string();
    let (s, b) = download(&a, &alice, &id, None).await;
    assert_eq!(s, 200);
    assert!(b == data);

    // Node-2's too: only node-1 can store it. Refused, clearly, and
    // nothing is recorded; node-1 drops what it stored.
    fs[0].fill();
    let before = blobs(&c, 0).await;
    let (s, v) = upload(&a, &alice, "lost.bin", "file", noise(9 << 20, 6)).await;
    assert_eq!(s, 507, "{v}");
    assert_eq!(v["error"]["code"], "insufficient_storage", "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or_default();
    assert!(msg.contains("no space left"), "{msg}");
    assert!(msg.contains("node-2") && msg.contains("node-3"), "{msg}");
    let after = blobs(&c, 0).await;
    assert_eq!(after["blobs"], 1, "{after}");
    assert_eq!(after["bytes"], before["bytes"], "partial chunks cleaned up");

    // Space comes back: uploads work again and node-3 catches up.
    for f in &fs {
        f.free();
    }
    let (s, f) = upload(&a, &alice, "again.bin", "file", noise(1 << 20, 7)).await;
    assert_eq!(s, 201, "{f}");
    enclave_tests::wait_for_async(
        "node-3 to repair the file it could not store",
        std::time::Duration::from_secs(60),
        || async {
            let v = blobs(&c, 2).await;
            (v["missing"] == 0 && v["blobs"] == 2 && v["bytes"].as_u64() >= Some(10 << 20))
                .then_some(())
        },
    )
    .await;
}

/// A PNG of `w`x`h` pixels.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut raw = Vec::new();
    for y in 0..h {
        raw.push(0u8);
        for x in 0..w {
            raw.extend_from_slice(&[(x % 256) as u8, (y % 256) as u8, 128]);
        }
    }
    encode_png(w, h, &raw)
}

/// A decompression bomb: a tiny PNG that claims `w`x`h` pixels.
fn bomb(w: u32, h: u32) -> Vec<u8> {
    encode_png_header_only(w, h)
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut c = kind.to_vec();
    c.extend_from_slice(data);
    out.extend_from_slice(&c);
    out.extend_from_slice(&crc32(&c).to_be_bytes());
}

fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (1u32, 0u32);
    for x in data {
        a = (a + u32::from(*x)) % 65521;
        b = (b + a) % 65521;
    }
    (b << 16) | a
}

/// zlib with stored (uncompressed) deflate blocks.
fn zlib_stored(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = data.chunks(65535).collect();
    for (i, b) in blocks.iter().enumerate() {
        out.push(u8::from(i + 1 == blocks.len()));
        out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(b.len() as u16)).to_le_bytes());
        out.extend_from_slice(b);
    }
    out.extend_from_slice(&adler32(data).to_be_bytes());
    out
}

fn ihdr(w: u32, h: u32) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&w.to_be_bytes());
    d.extend_from_slice(&h.to_be_bytes());
    d.extend_from_slice(&[8, 2, 0, 0, 0]);
    d
}

fn encode_png(w: u32, h: u32, raw: &[u8]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr(w, h));
    chunk(&mut out, b"IDAT", &zlib_stored(raw));
    chunk(&mut out, b"IEND", &[]);
    out
}

fn encode_png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr(w, h));
    chunk(&mut out, b"IDAT", &zlib_stored(&[0u8; 64]));
    chunk(&mut out, b"IEND", &[]);
    out
}

/// A stand-in for the site's clamd: speaks its INSTREAM protocol on a
/// Unix socket and reports the EICAR test string as infected.
async fn fake_clamd(path: std::path::PathBuf) -> tokio::task::JoinHandle<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::UnixListener::bind(&path).expect("bind clamd socket");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut cmd = [0u8; 10];
                if s.read_exact(&mut cmd).await.is_err() || &cmd != b"zINSTREAM\0" {
                    let _ = s.write_all(b"UNKNOWN COMMAND\0").await;
                    return;
                }
                let mut data = Vec::new();
                loop {
                    let mut len = [0u8; 4];
                    if s.read_exact(&mut len).await.is_err() {
                        return;
                    }
                    let n = u32::from_be_bytes(len) as usize;
                    if n == 0 {
                        break;
                    }
                    let mut piece = vec![0u8; n];
                    if s.read_exact(&mut piece).await.is_err() {
                        return;
                    }
                    data.extend_from_slice(&piece);
                }
                let infected = data.windows(16).any(|w| w == b"EICAR-STANDARD-A");
                let answer: &[u8] = if infected {
                    b"stream: Eicar-Test-Signature FOUND\0"
                } else {
                    b"stream: OK\0"
                };
                let _ = s.write_all(answer).await;
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_malware_scanner_blocks_a_file_before_it_is_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("clamd.ctl");
    let server = fake_clamd(sock.clone()).await;
    let spec = NodeSpec {
        env: vec![(
            "ENCLAVE_FILES__CLAMD_SOCKET".into(),
            sock.display().to_string(),
        )],
        ..NodeSpec::default()
    };
    let mut c = TestCluster::start(1, spec).await;
    enclave_tests::api::seed_directory(&c, 0, &["alice"], PW).await;
    let a = api(&mut c, 0);
    let alice = a.login("alice", PW).await;
    let (s, f) = upload(
        &a,
        &alice,
        "clean.txt",
        "file",
        b"quarterly figures\n".to_vec(),
    )
    .await;
    assert_eq!(s, 201, "{f}");
    let eicar = b"X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*".to_vec();
    let (s, v) = upload(&a, &alice, "invoice.txt", "file", eicar).await;
    assert_eq!(s, 422, "{v}");
    assert_eq!(v["error"]["code"], "malware_detected", "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Eicar-Test-Signature")
    );
    // The scanner goes away: uploads are refused, not let through unscanned.
    server.abort();
    let _ = std::fs::remove_file(&sock);
    let (s, v) = upload(&a, &alice, "later.txt", "file", b"more\n".to_vec()).await;
    assert_eq!(s, 503, "{v}");
    assert_eq!(v["error"]["code"], "scanner_unavailable", "{v}");
    let st = blobs(&c, 0).await;
    assert_eq!(st["blobs"], 1, "only the clean file is recorded: {st}");
}
