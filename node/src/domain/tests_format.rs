//! The format discipline of a rolling upgrade (docs/operator/upgrade.md §
//! Format rules), checked against a corpus written by an earlier build:
//! `corpus/log-v1.txt` holds replicated-log entries (postcard `(Origin,
//! Command)` as the log carries them), the state they produced, and its
//! hash. A cluster runs two builds side by side during an upgrade, so this
//! build must
//!
//! 1. decode every old entry exactly, and encode it back to the same bytes
//!    (no variant moved, no field added, removed or retyped);
//! 2. read every old record (the domain invariants decode them all);
//! 3. apply the old entries to the same state, byte for byte — a node of
//!    the new build and one of the old must not diverge. A change of what
//!    an old command does must be gated on the cluster's log version.
//!
//! There is one corpus per log version that changed the log: `log-v1.txt`
//! (written by the build that introduced log version 2: version-1 kinds plus
//! `SetClusterVersion`) and `log-v3.txt` (the external-contact kinds, over
//! a base with external contacts). Every later build must pass all of them.
//!
//! `ENCLAVE_BLESS_CORPUS=1 cargo test -p enclave-node tests_format` writes
//! the corpus of this build's log version ([`LOG_VERSION`]) only, and only
//! if it does not exist yet: do that once when starting a new log version,
//! never to make this test pass.

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use super::store::MemStore;
use super::tests::{
    arb_command, check_invariants, ctx, external_seed, office_seed, seeded_with_app,
};
use super::*;
use crate::audit::Origin;
use crate::messaging::{decode_exact, encode_domain};

use crate::lifecycle::LOG_VERSION;

fn corpus_path(version: u32) -> String {
    format!(
        "{}/src/domain/corpus/log-v{version}.txt",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The corpora every build must pass: (log version, a kind it must hold).
const CORPORA: [(u32, &str); 2] = [(1, "SetClusterVersion"), (3, "AcceptInvitation")];

/// The commands of the corpus of `version`: a fixed-seed draw of the
/// property test's generator (and, for version 1, log-version-2 kinds).
fn generate(version: u32) -> Vec<Vec<u8>> {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[17 + version as u8; 32]),
    );
    let strategy = arb_command();
    let origin = Origin::system("node-1");
    let mut out = Vec::new();
    for _ in 0..400 {
        let cmd = strategy
            .new_tree(&mut runner)
            .expect("generate a command")
            .current();
        out.push(encode_domain(&origin, &cmd));
    }
    if version > 1 {
        return out;
    }
    out.push(encode_domain(
        &origin,
        &Command::SetClusterVersion {
            version: 2,
            forced: false,
        },
    ));
    out
}

fn base(version: u32) -> MemStore {
    let mut s = seeded_with_app();
    office_seed(&mut s);
    if version >= 3 {
        external_seed(&mut s);
    }
    s
}

/// Apply the log to the seeded state, one command per second.
fn replay(version: u32, entries: &[(Origin, Command)]) -> MemStore {
    let mut s = base(version);
    for (i, (_, cmd)) in entries.iter().enumerate() {
        let _ = apply(&mut s, &ctx(100 + i as u64 * 1000), cmd).expect("storage");
    }
    s
}

fn write_corpus(version: u32, entries: &[Vec<u8>], state: &MemStore) {
    let mut text = String::from(
        "# Replicated-log corpus (see node/src/domain/tests_format.rs). Do not edit.\n",
    );
    for e in entries {
        text += &format!("entry {}\n", hex::encode(e));
    }
    for (k, v) in &state.map {
        text += &format!("record {} {}\n", hex::encode(k), hex::encode(v));
    }
    text += &format!("hash {}\n", state.hash());
    let path = corpus_path(version);
    let path = std::path::Path::new(&path);
    std::fs::create_dir_all(path.parent().expect("corpus dir")).expect("corpus dir");
    std::fs::write(path, text).expect("write corpus");
}

#[test]
fn entries_and_records_of_the_earlier_build_still_decode_and_apply_the_same() {
    if std::env::var_os("ENCLAVE_BLESS_CORPUS").is_some()
        && !std::path::Path::new(&corpus_path(LOG_VERSION)).exists()
    {
        let entries = generate(LOG_VERSION);
        let decoded: Vec<(Origin, Command)> = entries
            .iter()
            .map(|e| decode_exact(&e[1..]).expect("own encoding"))
            .collect();
        write_corpus(LOG_VERSION, &entries, &replay(LOG_VERSION, &decoded));
    }
    for (version, kind) in CORPORA {
        check_corpus(version, kind);
    }
}

fn check_corpus(version: u32, kind: &str) {
    let path = corpus_path(version);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("{path}: {e} (create it with ENCLAVE_BLESS_CORPUS=1, once per log version)")
    });
    let mut entries = Vec::new();
    let mut old = MemStore::default();
    let mut hash = None;
    for (n, line) in text.lines().enumerate() {
        let mut parts = line.split(' ');
        match parts.next() {
            Some("entry") => {
                let bytes = hex::decode(parts.next().unwrap_or_default()).expect("entry hex");
                let (tag, rest) = bytes.split_first().expect("entry kind");
                assert_eq!(*tag, b'D', "line {}: not a domain entry", n + 1);
                let decoded: (Origin, Command) = decode_exact(rest).unwrap_or_else(|e| {
                    panic!(
                        "line {}: an entry of the earlier build no longer decodes ({e}): \
                         a variant was moved or a field added/removed/retyped. Add a new variant instead.",
                        n + 1
                    )
                });
                assert_eq!(
                    encode_domain(&decoded.0, &decoded.1),
                    bytes,
                    "line {}: {:?} encodes differently now: its shape changed",
                    n + 1,
                    decoded.1
                );
                entries.push(decoded);
            }
            Some("record") => {
                let k = hex::decode(parts.next().unwrap_or_default()).expect("key hex");
                let v = hex::decode(parts.next().unwrap_or_default()).expect("value hex");
                old.map.insert(k, v);
            }
            Some("hash") => hash = parts.next().map(str::to_string),
            _ => {}
        }
    }
    assert!(entries.len() > 300, "corpus too small: {}", entries.len());
    assert!(
        entries
            .iter()
            .any(|(_, c)| format!("{c:?}").starts_with(kind)),
        "{path}: the corpus lacks {kind} entries"
    );
    // Every record the earlier build wrote is readable by this one.
    check_invariants(&old);
    assert_eq!(Some(old.hash()), hash, "the corpus's own state is damaged");
    // And the same log gives the same state here.
    let now = replay(version, &entries);
    if now.map != old.map {
        let changed: Vec<String> = now
            .map
            .iter()
            .filter(|(k, v)| old.map.get(*k) != Some(*v))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .chain(
                old.map
                    .keys()
                    .filter(|k| !now.map.contains_key(*k))
                    .map(|k| String::from_utf8_lossy(k).into_owned()),
            )
            .take(10)
            .collect();
        panic!(
            "{path}: applying the earlier build's log gives a different state ({} records differ, e.g. {changed:?}): \
             nodes of the two builds would diverge. Gate the change on the cluster's log version.",
            now.map
                .iter()
                .filter(|(k, v)| old.map.get(*k) != Some(*v))
                .count()
        );
    }
}
