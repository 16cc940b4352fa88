//! `enclavectl bundle sbom`: a CycloneDX 1.5 JSON SBOM of every crate
//! compiled into the binaries, from `cargo metadata` and Cargo.lock.
//!
//! What is in it: the crates reachable from the binary packages
//! (`enclave-node`, `enclave-ops`) over **normal** dependency edges, for
//! the host platform (`cargo metadata --filter-platform`), with `scope:
//! required`; and the crates that only run while building them (build
//! dependencies, proc-macros and everything below those) with `scope:
//! excluded` and the property `enclave:build-time = true`. Build-time
//! crates generate or compile code that ends up in the binary, so a
//! supply-chain review needs them too; scanners that want only the code
//! that ships can drop `scope: excluded`. Dev-dependencies are left out:
//! they are never compiled into a release binary.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Output;

#[derive(Debug, Args)]
pub struct SbomArgs {
    /// Output of `cargo metadata --format-version 1 --locked --filter-platform <host>`
    /// (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    pub metadata: PathBuf,
    /// The workspace's Cargo.lock (for each crate's SHA-256 checksum).
    #[arg(long, value_name = "FILE")]
    pub lockfile: PathBuf,
    /// Packages whose binaries ship (repeat); default enclave-node and enclave-ops.
    #[arg(long = "package", value_name = "NAME")]
    pub packages: Vec<String>,
    /// The compiler, as `rustc -V` prints it; recorded as the Rust standard
    /// library component (it is compiled into every binary too).
    #[arg(long, value_name = "VERSION")]
    pub rustc: Option<String>,
    /// Product name in the SBOM's metadata.
    #[arg(long, default_value = "enclave")]
    pub name: String,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    workspace_members: Vec<String>,
    resolve: Option<Resolve>,
}

#[derive(Debug, Deserialize)]
struct Package {
    id: String,
    name: String,
    version: String,
    source: Option<String>,
    license: Option<String>,
    license_file: Option<String>,
    description: Option<String>,
    repository: Option<String>,
    homepage: Option<String>,
    #[serde(default)]
    targets: Vec<Target>,
}

#[derive(Debug, Deserialize)]
struct Target {
    #[serde(default)]
    kind: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Resolve {
    nodes: Vec<Node>,
}

#[derive(Debug, Deserialize)]
struct Node {
    id: String,
    #[serde(default)]
    deps: Vec<NodeDep>,
}

#[derive(Debug, Deserialize)]
struct NodeDep {
    pkg: String,
    #[serde(default)]
    dep_kinds: Vec<DepKind>,
}

#[derive(Debug, Deserialize)]
struct DepKind {
    kind: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Lock {
    #[serde(default)]
    package: Vec<LockPackage>,
}

#[derive(Debug, Deserialize)]
struct LockPackage {
    name: String,
    version: String,
    source: Option<String>,
    checksum: Option<String>,
}

const CRATES_IO: [&str; 2] = [
    "registry+https://github.com/rust-lang/crates.io-index",
    "sparse+https://index.crates.io/",
];

/// Whether a crate is compiled into the binaries or only used to build them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Use {
    Runtime,
    BuildTime,
}

pub fn run(a: SbomArgs, _output: Output) -> anyhow::Result<()> {
    let metadata = if a.metadata.as_os_str() == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading cargo metadata from standard input")?;
        s
    } else {
        fs::read_to_string(&a.metadata)
            .with_context(|| format!("{}: cannot read", a.metadata.display()))?
    };
    let lock = fs::read_to_string(&a.lockfile)
        .with_context(|| format!("{}: cannot read", a.lockfile.display()))?;
    let packages = if a.packages.is_empty() {
        vec!["enclave-node".to_string(), "enclave-ops".to_string()]
    } else {
        a.packages.clone()
    };
    let timestamp = sbom_timestamp()?;
    let bom = build(
        &metadata,
        &lock,
        &packages,
        a.rustc.as_deref(),
        &a.name,
        &timestamp,
    )?;
    let text = serde_json::to_string_pretty(&bom)? + "\n";
    match &a.out {
        Some(out) => {
            fs::write(out, text).with_context(|| format!("{}: cannot write", out.display()))?
        }
        None => print!("{text}"),
    }
    Ok(())
}

/// RFC 3339 time of the SBOM: `SOURCE_DATE_EPOCH` when set (reproducible
/// bundles), otherwise now.
fn sbom_timestamp() -> anyhow::Result<String> {
    let t = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) => {
            let secs: i64 = s
                .trim()
                .parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is not a number of seconds"))?;
            time::OffsetDateTime::from_unix_timestamp(secs)
                .with_context(|| format!("SOURCE_DATE_EPOCH={s:?} is out of range"))?
        }
        Err(_) => time::OffsetDateTime::now_utc(),
    };
    Ok(t.format(&time::format_description::well_known::Rfc3339)?)
}

fn is_crates_io(source: Option<&str>) -> bool {
    source.is_some_and(|s| CRATES_IO.contains(&s))
}

/// CycloneDX license choice from a Cargo `license` field (SPDX
/// expression; the old `A/B` form means `A OR B`).
fn licenses(p: &Package) -> Value {
    if let Some(l) = p.license.as_deref().filter(|l| !l.trim().is_empty()) {
        let expr = l.split('/').map(str::trim).collect::<Vec<_>>().join(" OR ");
        return json!([{ "expression": expr }]);
    }
    match &p.license_file {
        Some(f) => {
            let name = std::path::Path::new(f)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| f.clone());
            json!([{ "license": { "name": format!("see {name} in the crate") } }])
        }
        None => json!([]),
    }
}

/// Build the SBOM document.
fn build(
    metadata: &str,
    lock: &str,
    roots: &[String],
    rustc: Option<&str>,
    name: &str,
    timestamp: &str,
) -> anyhow::Result<Value> {
    let meta: Metadata = serde_json::from_str(metadata)
        .context("not the JSON of `cargo metadata --format-version 1`")?;
    let lock: Lock = toml::from_str(lock).context("Cargo.lock is not valid TOML")?;
    let resolve = meta
        .resolve
        .as_ref()
        .context("cargo metadata has no resolve graph (do not pass --no-deps)")?;
    let by_id: BTreeMap<&str, &Package> =
        meta.packages.iter().map(|p| (p.id.as_str(), p)).collect();
    let nodes: BTreeMap<&str, &Node> = resolve.nodes.iter().map(|n| (n.id.as_str(), n)).collect();
    let checksums: BTreeMap<(&str, &str, Option<&str>), &str> = lock
        .package
        .iter()
        .filter_map(|p| {
            p.checksum.as_deref().map(|c| {
                (
                    (p.name.as_str(), p.version.as_str(), p.source.as_deref()),
                    c,
                )
            })
        })
        .collect();
    let workspace: BTreeSet<&str> = meta.workspace_members.iter().map(String::as_str).collect();

    let mut root_ids = Vec::new();
    for r in roots {
        let p = meta
            .packages
            .iter()
            .find(|p| &p.name == r && workspace.contains(p.id.as_str()))
            .with_context(|| format!("package {r} is not a member of this workspace"))?;
        root_ids.push(p.id.as_str());
    }
    let is_proc_macro = |id: &str| {
        by_id.get(id).is_some_and(|p| {
            p.targets
                .iter()
                .any(|t| t.kind.iter().any(|k| k == "proc-macro"))
        })
    };

    // Breadth-first over the resolve graph; a crate reached at run time
    // stays a run-time crate even if it is also reached at build time.
    let mut reached: BTreeMap<&str, Use> = BTreeMap::new();
    let mut edges: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut queue: VecDeque<(&str, Use)> = root_ids.iter().map(|id| (*id, Use::Runtime)).collect();
    while let Some((id, how)) = queue.pop_front() {
        match reached.get(id) {
            Some(prev) if *prev <= how => continue,
            _ => {}
        }
        reached.insert(id, how);
        let Some(node) = nodes.get(id) else {
            bail!("{id} is missing from the resolve graph");
        };
        for dep in &node.deps {
            let normal = dep.dep_kinds.iter().any(|k| k.kind.is_none());
            let build = dep
                .dep_kinds
                .iter()
                .any(|k| k.kind.as_deref() == Some("build"));
            if !normal && !build {
                continue; // dev-dependency only
            }
            let next = if how == Use::BuildTime || !normal || is_proc_macro(&dep.pkg) {
                Use::BuildTime
            } else {
                Use::Runtime
            };
            edges.entry(id).or_default().insert(dep.pkg.as_str());
            queue.push_back((dep.pkg.as_str(), next));
        }
    }

    // bom-refs: name@version, or the package id if that is ambiguous.
    let mut seen: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for id in reached.keys() {
        if let Some(p) = by_id.get(id) {
            *seen
                .entry((p.name.as_str(), p.version.as_str()))
                .or_default() += 1;
        }
    }
    let bom_ref = |id: &str| -> String {
        match by_id.get(id) {
            Some(p) if seen.get(&(p.name.as_str(), p.version.as_str())) == Some(&1) => {
                format!("{}@{}", p.name, p.version)
            }
            _ => id.to_string(),
        }
    };

    let mut components = Vec::new();
    for (id, how) in &reached {
        let p = by_id
            .get(id)
            .with_context(|| format!("{id} is in the resolve graph but not among the packages"))?;
        let local = workspace.contains(id);
        let mut c = json!({
            "type": if root_ids.contains(id) { "application" } else { "library" },
            "bom-ref": bom_ref(id),
            "name": p.name,
            "version": p.version,
            "scope": if *how == Use::Runtime { "required" } else { "excluded" },
            "licenses": licenses(p),
        });
        if let Some(d) = p.description.as_deref() {
            c["description"] = json!(d.trim());
        }
        if is_crates_io(p.source.as_deref()) {
            c["purl"] = json!(format!("pkg:cargo/{}@{}", p.name, p.version));
        }
        if let Some(sum) =
            checksums.get(&(p.name.as_str(), p.version.as_str(), p.source.as_deref()))
        {
            c["hashes"] = json!([{ "alg": "SHA-256", "content": sum }]);
        } else if !local {
            bail!(
                "{} {} has no checksum in Cargo.lock (only crates.io dependencies are expected)",
                p.name,
                p.version
            );
        }
        let mut refs = Vec::new();
        if let Some(r) = &p.repository {
            refs.push(json!({ "type": "vcs", "url": r }));
        }
        if let Some(h) = &p.homepage {
            refs.push(json!({ "type": "website", "url": h }));
        }
        if !refs.is_empty() {
            c["externalReferences"] = json!(refs);
        }
        let mut props = vec![json!({
            "name": "enclave:source",
            "value": if local { "workspace".to_string() } else { p.source.clone().unwrap_or_default() },
        })];
        if *how == Use::BuildTime {
            props.push(json!({ "name": "enclave:build-time", "value": "true" }));
        }
        c["properties"] = json!(props);
        components.push(c);
    }
    if let Some(rustc) = rustc {
        let version = rustc.split_whitespace().nth(1).unwrap_or(rustc);
        components.push(json!({
            "type": "library",
            "bom-ref": format!("rust-std@{version}"),
            "name": "rust-std",
            "version": version,
            "scope": "required",
            "description": format!("Rust standard library (std, core, alloc) of {rustc}"),
            "licenses": [{ "expression": "MIT OR Apache-2.0" }],
        }));
    }

    let dependencies: Vec<Value> = reached
        .keys()
        .map(|id| {
            let on: Vec<String> = edges
                .get(id)
                .map(|s| s.iter().map(|d| bom_ref(d)).collect())
                .unwrap_or_default();
            json!({ "ref": bom_ref(id), "dependsOn": on })
        })
        .collect();

    let version = root_ids
        .first()
        .and_then(|id| by_id.get(id))
        .map(|p| p.version.clone())
        .unwrap_or_default();
    // A serial number derived from the content: the same inputs give the
    // same SBOM (reproducible bundles), different ones a different serial.
    let digest = ring::digest::digest(
        &ring::digest::SHA256,
        serde_json::to_string(&(&components, &dependencies, timestamp))?.as_bytes(),
    );
    let b = digest.as_ref();
    let serial = format!(
        "urn:uuid:{}-{}-8{}-{:x}{}-{}",
        hex::encode(&b[0..4]),
        hex::encode(&b[4..6]),
        &hex::encode(&b[6..8])[1..],
        (b[8] & 0x3f) | 0x80,
        &hex::encode(&b[8..10])[2..],
        hex::encode(&b[10..16]),
    );
    Ok(json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "serialNumber": serial,
        "version": 1,
        "metadata": {
            "timestamp": timestamp,
            "tools": { "components": [{
                "type": "application",
                "name": "enclavectl",
                "version": env!("CARGO_PKG_VERSION"),
                "description": "enclavectl bundle sbom (from cargo metadata and Cargo.lock)",
            }]},
            "component": {
                "type": "application",
                "bom-ref": format!("{name}@{version}"),
                "name": name,
                "version": version,
            },
        },
        "components": components,
        "dependencies": dependencies,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkg(id: &str, name: &str, kind: &str, source: Option<&str>) -> Value {
        json!({
            "id": id, "name": name, "version": "1.0.0", "source": source,
            "license": "MIT/Apache-2.0", "license_file": null, "description": null,
            "repository": null, "homepage": null,
            "targets": [{ "kind": [kind] }],
        })
    }

    fn dep(pkg: &str, kind: Option<&str>) -> Value {
        json!({ "name": pkg, "pkg": pkg, "dep_kinds": [{ "kind": kind, "target": null }] })
    }

    #[test]
    fn walks_normal_edges_marks_build_time_and_skips_dev() {
        let cio = "registry+https://github.com/rust-lang/crates.io-index";
        let meta = json!({
            "packages": [
                pkg("app", "app", "bin", None),
                pkg("rt", "rt", "lib", Some(cio)),
                pkg("mac", "mac", "proc-macro", Some(cio)),
                pkg("syn", "syn", "lib", Some(cio)),
                pkg("cc", "cc", "lib", Some(cio)),
                pkg("dev", "dev", "lib", Some(cio)),
                pkg("unused", "unused", "lib", Some(cio)),
            ],
            "workspace_members": ["app"],
            "resolve": { "nodes": [
                { "id": "app", "deps": [dep("rt", None), dep("mac", None), dep("cc", Some("build")), dep("dev", Some("dev"))] },
                { "id": "rt", "deps": [dep("syn", None)] },
                { "id": "mac", "deps": [dep("syn", None)] },
                { "id": "syn", "deps": [] },
                { "id": "cc", "deps": [] },
                { "id": "dev", "deps": [] },
                { "id": "unused", "deps": [] },
            ]},
        });
        let mut lock = String::from("version = 4\n");
        for n in ["rt", "mac", "syn", "cc", "dev", "unused"] {
            lock += &format!(
                "[[package]]\nname = \"{n}\"\nversion = \"1.0.0\"\nsource = \"{cio}\"\nchecksum = \"{}\"\n",
                "ab".repeat(32)
            );
        }
        lock += "[[package]]\nname = \"app\"\nversion = \"1.0.0\"\n";
        let bom = build(
            &meta.to_string(),
            &lock,
            &["app".to_string()],
            Some("rustc 1.95.0 (59807616e 2026-04-14)"),
            "enclave",
            "2026-12-03T00:00:00Z",
        )
        .expect("sbom");
        let comps = bom["components"].as_array().expect("components");
        let scope = |n: &str| {
            comps
                .iter()
                .find(|c| c["name"] == n)
                .map(|c| c["scope"].as_str().unwrap_or("").to_string())
        };
        assert_eq!(scope("app").as_deref(), Some("required"));
        assert_eq!(scope("rt").as_deref(), Some("required"));
        // syn is reached at run time through rt, so it stays required.
        assert_eq!(scope("syn").as_deref(), Some("required"));
        assert_eq!(scope("mac").as_deref(), Some("excluded"));
        assert_eq!(scope("cc").as_deref(), Some("excluded"));
        assert_eq!(scope("dev"), None);
        assert_eq!(scope("unused"), None);
        assert_eq!(scope("rust-std").as_deref(), Some("required"));
        let rt = comps.iter().find(|c| c["name"] == "rt").expect("rt");
        assert_eq!(rt["purl"], "pkg:cargo/rt@1.0.0");
        assert_eq!(rt["licenses"][0]["expression"], "MIT OR Apache-2.0");
        assert_eq!(rt["hashes"][0]["content"], "ab".repeat(32));
        let app = comps.iter().find(|c| c["name"] == "app").expect("app");
        assert!(app.get("purl").is_none(), "a workspace crate has no purl");
        assert_eq!(bom["specVersion"], "1.5");
        let serial = bom["serialNumber"].as_str().expect("serial");
        assert_eq!(serial.len(), "urn:uuid:".len() + 36, "{serial}");
        // Same input, same document.
        let again = build(
            &meta.to_string(),
            &lock,
            &["app".to_string()],
            Some("rustc 1.95.0 (59807616e 2026-04-14)"),
            "enclave",
            "2026-12-03T00:00:00Z",
        )
        .expect("sbom");
        assert_eq!(bom, again);
    }
}
