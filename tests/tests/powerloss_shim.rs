//! Tests of the power-loss shim itself (`enclave_tests::powerloss`), with a
//! Python process as the writer: it writes, syncs (or not), then SIGKILLs
//! itself; `cut_power` must leave exactly what was durable.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use enclave_tests::powerloss::{self, Report};
use tempfile::TempDir;

/// The real interpreter (`python3` on PATH may be a pyenv shell shim,
/// which we don't want to run under LD_PRELOAD).
fn python() -> PathBuf {
    static PY: OnceLock<PathBuf> = OnceLock::new();
    PY.get_or_init(|| {
        let out = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .expect("python3");
        assert!(out.status.success(), "python3 failed: {out:?}");
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
    })
    .clone()
}

const PRELUDE: &str = r#"
import ctypes, os, random, signal, sys, threading, time
D = os.environ["DATA"]
O = os.environ["OUTSIDE"]
def p(name): return os.path.join(D, name)
def die():
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(60)
A = bytes(range(256)) * 8
"#;

/// 2048 bytes, the `A` of the Python prelude.
fn a() -> Vec<u8> {
    (0..=255u8).cycle().take(2048).collect()
}

struct Case {
    _tmp: TempDir,
    data: PathBuf,
    outside: PathBuf,
    journal: PathBuf,
}

impl Case {
    fn new() -> Case {
        let tmp = tempfile::tempdir().expect("tempdir");
        let data = tmp.path().join("data");
        let outside = tmp.path().join("outside");
        fs::create_dir(&data).expect("mkdir data");
        fs::create_dir(&outside).expect("mkdir outside");
        let journal = tmp.path().join("journal.bin");
        Case {
            _tmp: tmp,
            data,
            outside,
            journal,
        }
    }

    fn d(&self, name: &str) -> PathBuf {
        self.data.join(name)
    }

    fn o(&self, name: &str) -> PathBuf {
        self.outside.join(name)
    }

    fn python(&self, script: &str, envs: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(python());
        cmd.arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .envs(powerloss::env(&self.data, &self.journal))
            .env("DATA", &self.data)
            .env("OUTSIDE", &self.outside)
            .envs(envs.iter().copied());
        cmd
    }

    /// Runs the script, which must end by SIGKILLing itself.
    fn run_killed(&self, script: &str, envs: &[(&str, &str)]) {
        let out = self.python(script, envs).output().expect("spawn python");
        assert_eq!(
            out.status.signal(),
            Some(9),
            "python did not die of SIGKILL: {:?}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn cut(&self) -> Report {
        let report = powerloss::cut_power(&self.journal).expect("cut_power");
        assert!(!self.journal.exists(), "journal must be moved away");
        report
    }
}

fn read(p: &Path) -> Vec<u8> {
    fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn fsync_is_durable_later_writes_are_not() {
    let c = Case::new();
    c.run_killed(
        r#"
fd = os.open(p("f"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, A)
os.fsync(fd)
os.pwrite(fd, b"X" * 200, 100)      # overwrite part of the synced data
os.lseek(fd, 0, os.SEEK_END)
os.write(fd, b"Y" * 500)            # append
d = os.dup(fd)                      # writes through a dup are tracked too
os.pwrite(d, b"Z" * 10, 2000)
die()
"#,
        &[],
    );
    // The page cache survived the kill ...
    let before = read(&c.d("f"));
    assert_eq!(before.len(), 2548);
    assert_eq!(&before[100..300], &[b'X'; 200][..]);
    // ... the power cut does not.
    let report = c.cut();
    assert_eq!(read(&c.d("f")), a());
    assert_eq!(
        report,
        Report {
            files: 1,
            writes_undone: 3,
            bytes_undone: 210,
            truncated: 1,
            missing: 0
        }
    );
}

#[test]
fn fdatasync_is_durable_and_write_only_fds_work() {
    let c = Case::new();
    c.run_killed(
        r#"
fd = os.open(p("f"), os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, A)
os.fdatasync(fd)
os.pwrite(fd, b"X" * 300, 1000)
os.writev(fd, [b"Y" * 7, b"W" * 9])  # at the file offset (2048): append
os.ftruncate(fd, 500)                # shrink below the synced size
os.ftruncate(fd, 5000)               # and grow
die()
"#,
        &[],
    );
    assert_eq!(read(&c.d("f")).len(), 5000);
    let report = c.cut();
    assert_eq!(read(&c.d("f")), a());
    assert_eq!(report.writes_undone, 4);
    assert_eq!(report.truncated, 1);
}

#[test]
fn sync_file_range_is_not_durable() {
    let c = Case::new();
    c.run_killed(
        r#"
libc = ctypes.CDLL(None, use_errno=True)
libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
WAIT_BEFORE, WRITE, WAIT_AFTER = 1, 2, 4
fd = os.open(p("f"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, A)
os.fsync(fd)
os.pwrite(fd, b"X" * 100, 0)
os.pwrite(fd, b"Y" * 100, 2048)
assert libc.sync_file_range(fd, 0, 0, WAIT_BEFORE | WRITE | WAIT_AFTER) == 0, ctypes.get_errno()
g = os.open(p("g"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(g, A)
assert libc.sync_file_range(g, 0, 0, WAIT_BEFORE | WRITE | WAIT_AFTER) == 0, ctypes.get_errno()
die()
"#,
        &[],
    );
    let report = c.cut();
    assert_eq!(read(&c.d("f")), a());
    assert_eq!(read(&c.d("g")), b"");
    assert_eq!(report.files, 2);
    assert_eq!(report.writes_undone, 3);
}

#[test]
fn created_and_never_synced_ends_empty_preexisting_is_restored() {
    let c = Case::new();
    // Files that exist before the process starts count as durable.
    fs::write(c.d("old"), b"old durable content").expect("write old");
    fs::write(c.d("log"), b"0123456789").expect("write log");
    c.run_killed(
        r#"
fd = os.open(p("new"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, A * 3)
os.writev(fd, [b"a" * 10, b"b" * 20])
with open(p("old"), "wb") as f:      # O_TRUNC: destroys the old content
    f.write(b"something else entirely, and longer")
fd = os.open(p("log"), os.O_WRONLY | os.O_APPEND)
os.write(fd, b"appended")
os.pwrite(fd, b"!", 0)               # O_APPEND: Linux appends this too
die()
"#,
        &[],
    );
    assert_eq!(read(&c.d("log")), b"0123456789appended!");
    let report = c.cut();
    assert_eq!(read(&c.d("new")), b"", "created, never synced: empty");
    assert_eq!(read(&c.d("old")), b"old durable content");
    assert_eq!(read(&c.d("log")), b"0123456789");
    assert_eq!(report.files, 3);
    assert_eq!(report.truncated, 3); // new, log, and old (its new content was longer)
}

#[test]
fn files_outside_the_dir_are_untouched() {
    let c = Case::new();
    c.run_killed(
        r#"
with open(os.path.join(O, "x"), "wb") as f:
    f.write(b"outside, never synced")
fd = os.open(p("y"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"inside, never synced")
die()
"#,
        &[],
    );
    let report = c.cut();
    assert_eq!(read(&c.o("x")), b"outside, never synced");
    assert_eq!(read(&c.d("y")), b"");
    assert_eq!(report.files, 1);
}

#[test]
fn renamed_and_replaced_files() {
    let c = Case::new();
    c.run_killed(
        r#"
# Renamed after its fsync: found again by inode.
fd = os.open(p("a"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, A)
os.fsync(fd)
os.write(fd, b"lost")
os.rename(p("a"), p("b"))
os.write(fd, b"lost too")
# Atomic replace: the new file was synced before the rename, the old one dies.
fd = os.open(p("c"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"old version")
os.fsync(fd)
t = os.open(p("c.tmp"), os.O_RDWR | os.O_CREAT, 0o644)
os.write(t, b"new version")
os.fsync(t)
os.replace(p("c.tmp"), p("c"))
os.write(t, b", unsynced tail")
os.write(fd, b" written to the dead inode")
# Unlinked files need no undo; new files may reuse their inode numbers.
for i in range(20):
    fd = os.open(p(f"tmp{i}"), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"x" * 100)
    os.fsync(fd)
    os.close(fd)
    os.unlink(p(f"tmp{i}"))
    fd = os.open(p(f"n{i}"), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"never synced")
    os.close(fd)
die()
"#,
        &[],
    );
    let report = c.cut();
    assert!(!c.d("a").exists());
    assert_eq!(read(&c.d("b")), a());
    assert_eq!(read(&c.d("c")), b"new version");
    for i in 0..20 {
        assert_eq!(read(&c.d(&format!("n{i}"))), b"", "n{i}");
    }
    assert_eq!(report.files, 22);
    assert_eq!(report.missing, 0);
}

#[test]
fn inert_without_configuration() {
    let c = Case::new();
    let out = Command::new(python())
        .arg("-c")
        .arg(format!(
            "{PRELUDE}\nwith open(p('f'), 'wb') as f: f.write(b'hi')\nos.sync()"
        ))
        .env("LD_PRELOAD", powerloss::shim())
        .env("DATA", &c.data)
        .env("OUTSIDE", &c.outside)
        .output()
        .expect("spawn python");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(read(&c.d("f")), b"hi");
    assert!(!c.journal.exists());
}

/// Threads write to their own files with every kind of call and sync at
/// random points; the process is killed mid-flight. Before each fsync a
/// thread saves what it is about to sync ("pending") and after it what it
/// synced ("synced"), both outside the dir and made durable first, so after
/// the cut each file must hold its synced content, or its pending content
/// when the kill landed between the fsync and the bookkeeping.
#[test]
fn multithreaded_writers_keep_exactly_their_synced_content() {
    const THREADS: usize = 6;
    // A thread between its fsync and its next write has nothing to undo, so
    // one run may legitimately undo nothing; all of them together must not.
    let mut undone = 0;
    for seed in 1..=3u32 {
        let c = Case::new();
        let seed_s = seed.to_string();
        c.run_killed(
            r#"
seed = int(os.environ["SEED"])
N = int(os.environ["THREADS"])
ops = [0] * N
syncs = [0] * N

def side(i, name, data):
    tmp = os.path.join(O, f"t{i}.{name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, os.path.join(O, f"t{i}.{name}"))

def put(model, off, data):
    if off > len(model):
        model += bytes(off - len(model))
    model[off:off + len(data)] = data

def worker(i):
    rnd = random.Random(seed * 1000 + i)
    kind = i % 3       # 0: O_RDWR, 1: O_WRONLY, 2: O_APPEND
    flags = os.O_CREAT | (os.O_WRONLY if kind == 1 else os.O_RDWR) | (os.O_APPEND if kind == 2 else 0)
    fd = os.open(p(f"t{i}"), flags, 0o644)
    model = bytearray()
    side(i, "synced", b"")
    while True:
        op = rnd.random()
        if kind == 2 and op < 0.7:
            data = rnd.randbytes(rnd.randint(1, 3000))
            os.write(fd, data)
            model += data
        elif op < 0.35:
            off = rnd.randint(0, len(model) + 100)
            data = rnd.randbytes(rnd.randint(1, 5000))
            os.pwrite(fd, data, off)
            put(model, len(model) if kind == 2 else off, data)
        elif op < 0.55:
            off = rnd.randint(0, len(model))
            os.lseek(fd, off, os.SEEK_SET)
            parts = [rnd.randbytes(rnd.randint(0, 2000)) for _ in range(rnd.randint(1, 3))]
            os.writev(fd, parts)
            put(model, len(model) if kind == 2 else off, b"".join(parts))
        elif op < 0.65:
            n = rnd.randint(0, len(model) + 1000)
            os.ftruncate(fd, n)
            if n < len(model):
                del model[n:]
            else:
                model += bytes(n - len(model))
        elif op < 0.8:
            snap = bytes(model)
            side(i, "pending", snap)
            (os.fsync if rnd.random() < 0.5 else os.fdatasync)(fd)
            side(i, "synced", snap)
            os.unlink(os.path.join(O, f"t{i}.pending"))
            syncs[i] += 1
        else:
            time.sleep(0.001)
        ops[i] += 1

for i in range(N):
    threading.Thread(target=worker, args=(i,), daemon=True).start()
# Kill once every thread made real progress (not after a fixed time: the
# machine may be busy), at a random point after that.
deadline = time.monotonic() + 60
while (min(ops) < 40 or min(syncs) < 2) and time.monotonic() < deadline:
    time.sleep(0.005)
if min(ops) < 40 or min(syncs) < 2:
    print(f"threads stalled: ops={ops} syncs={syncs}", file=sys.stderr)
    os._exit(3)
time.sleep(random.Random(seed).uniform(0.0, 0.2))
die()
"#,
            &[("SEED", &seed_s), ("THREADS", &THREADS.to_string())],
        );
        let report = c.cut();
        undone += report.writes_undone;
        let mut synced_something = false;
        for i in 0..THREADS {
            let actual = read(&c.d(&format!("t{i}")));
            let synced = read(&c.o(&format!("t{i}.synced")));
            let pending = fs::read(c.o(&format!("t{i}.pending"))).ok();
            synced_something |= !synced.is_empty();
            assert!(
                actual == synced || Some(&actual) == pending.as_ref(),
                "seed {seed} thread {i}: file has {} bytes, synced {} bytes, pending {:?} bytes",
                actual.len(),
                synced.len(),
                pending.as_ref().map(Vec::len)
            );
        }
        assert!(synced_something, "seed {seed}: no thread ever synced");
    }
    assert!(undone > 0, "no run had anything to undo");
}

/// The calls Rust std makes (the enclave is a Rust program): `File::create`
/// (open64 + O_TRUNC), `write` / `write_vectored` (write, writev),
/// `write_all_at` (pwrite64), `set_len` (ftruncate64), `sync_all` (fsync),
/// `sync_data` (fdatasync), `io::copy` between files (copy_file_range).
/// The test binary re-executes itself as the writer.
#[test]
fn rust_std_file_calls_are_tracked() {
    const CHILD: &str = "POWERLOSS_RUST_CHILD";
    if let Some(data) = std::env::var_os(CHILD) {
        rust_child(Path::new(&data)).expect("child");
        return;
    }
    let c = Case::new();
    fs::write(c.d("pre"), a()).expect("write pre");
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new(exe)
        .args([
            "--exact",
            "rust_std_file_calls_are_tracked",
            "--nocapture",
            "--test-threads=1",
        ])
        .envs(powerloss::env(&c.data, &c.journal))
        .env(CHILD, &c.data)
        .output()
        .expect("spawn self");
    assert_eq!(
        out.status.signal(),
        Some(9),
        "child did not die of SIGKILL: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(&read(&c.d("h"))[10..14], b"XXXX", "page cache has the copy");
    let report = c.cut();
    assert_eq!(read(&c.d("r")), a());
    assert_eq!(read(&c.d("s")), a());
    assert_eq!(read(&c.d("h")), a());
    assert_eq!(read(&c.d("pre")), a());
    assert_eq!(read(&c.d("copy")), b"");
    assert_eq!(report.files, 5, "{report:?}");
    assert_eq!(report.missing, 0);
}

fn rust_child(d: &Path) -> std::io::Result<()> {
    use std::io::{IoSlice, Seek, SeekFrom, Write};
    use std::os::unix::fs::FileExt;

    let mut r = fs::File::create(d.join("r"))?;
    r.write_all(&a())?;
    r.sync_all()?;
    r.write_all_at(b"XXXX", 10)?;
    let n = r.write_vectored(&[IoSlice::new(b"tail"), IoSlice::new(b"more")])?;
    assert_eq!(n, 8, "short writev to a regular file");
    r.set_len(100)?;

    let s = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(d.join("s"))?;
    s.write_all_at(&a(), 0)?;
    s.sync_data()?;
    s.set_len(4096)?;
    s.write_all_at(b"beyond", 5000)?;

    let mut h = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(d.join("h"))?;
    h.write_all(&a())?;
    h.sync_all()?;
    h.seek(SeekFrom::Start(0))?;
    let mut src = fs::File::open(d.join("r"))?;
    std::io::copy(&mut src, &mut h)?;

    fs::copy(d.join("r"), d.join("copy"))?;
    fs::OpenOptions::new()
        .append(true)
        .open(d.join("pre"))?
        .write_all(b"unsynced")?;

    Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status()?;
    std::thread::sleep(std::time::Duration::from_secs(60));
    Ok(())
}
