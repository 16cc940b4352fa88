//! Power-loss simulation for a test process.
//!
//! `kill -9` does not test fsync: the page cache outlives the process, so
//! everything it wrote is still there. This module pairs an `LD_PRELOAD`
//! shim (`tests/powerloss/powerloss.c`) with an undo step:
//!
//! 1. Start the process under test with [`env`]. The shim journals, before
//!    every change to a regular file under the given directory, the old
//!    bytes and the old size of the range it touches, and it journals every
//!    successful `fsync`/`fdatasync` (per inode) and `syncfs`/`sync` (all
//!    files) as a durability point.
//! 2. SIGKILL the process and wait for it.
//! 3. Call [`cut_power`]: every change journaled after the last durability
//!    point of its file is undone, newest first, so each file is left as a
//!    power cut would have left it on a disk that honours fsync.
//!
//! # Model and limits
//!
//! - A file's data and size are durable up to the start of its last
//!   successful `fsync`/`fdatasync`, or the last `syncfs`/`sync` of the
//!   process. A write racing with the fsync counts as not durable.
//! - `sync_file_range` is *not* a durability point (on ext4 it neither
//!   commits metadata nor flushes the disk's write cache): data that was
//!   only `sync_file_range`d is rolled back. Note that sled 0.34 relies on
//!   `sync_file_range` in `flush()` and only `fsync`s from its periodic
//!   flusher thread and a few other places, so under this model a sled
//!   `flush()` is durable only once the next `sync_all` has run.
//! - Files that existed before the process started are taken as durable
//!   as they were. A file created by the process and never synced keeps
//!   its name (see below) but is truncated to 0 bytes, the common ext4
//!   outcome; it is not deleted.
//! - Namespace operations (create, rename, unlink, link, mkdir) are treated
//!   as immediately durable: a real power cut can also lose a rename or a
//!   create whose directory was not fsynced; this simulation never does.
//!   Renamed files are found again by inode.
//! - Writes through `mmap`, io_uring, stdio buffers (`fwrite`), raw
//!   `syscall(2)`, or from statically linked programs are not seen.
//! - One process per journal at a time; after [`cut_power`] the journal is
//!   renamed to `<journal>.applied`, so a restarted process starts afresh.
//!
//! The journal format is described in the header comment of
//! `tests/powerloss/powerloss.c`; the parser below mirrors it.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// What [`cut_power`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Files that had unsynced changes rolled back.
    pub files: usize,
    /// Data-changing calls undone (write, pwrite, writev, truncate, ...).
    pub writes_undone: usize,
    /// Old bytes written back.
    pub bytes_undone: u64,
    /// Files that ended up shorter than they were before the cut.
    pub truncated: usize,
    /// Files with unsynced changes that could no longer be found (moved out
    /// of the directory, or unlinked behind the shim's back).
    pub missing: usize,
}

/// Path of the shim, `<target>/powerloss/libpowerloss.so`, built with `cc`
/// on first use in this process when the C source is newer than it.
pub fn shim() -> PathBuf {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(build_shim).clone()
}

fn build_shim() -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("powerloss")
        .join("powerloss.c");
    // The test binary lives in target/<profile>/deps.
    let exe = std::env::current_exe().expect("current_exe");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let out_dir = target.join("powerloss");
    let so = out_dir.join("libpowerloss.so");
    let src_time = fs::metadata(&src)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    if let Ok(so_time) = fs::metadata(&so).and_then(|m| m.modified())
        && so_time >= src_time
    {
        return so;
    }
    fs::create_dir_all(&out_dir).unwrap_or_else(|e| panic!("{}: {e}", out_dir.display()));
    // Test processes run in parallel: build privately, then rename.
    let tmp = out_dir.join(format!(".libpowerloss.{}.so", std::process::id()));
    let out = Command::new("cc")
        .args([
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-Wextra",
            "-U_FORTIFY_SOURCE",
            "-o",
        ])
        .arg(&tmp)
        .arg(&src)
        .args(["-ldl", "-lpthread"])
        .output()
        .unwrap_or_else(|e| panic!("running cc: {e}"));
    if !out.status.success() {
        let _ = fs::remove_file(&tmp);
        panic!(
            "cc failed to build {} ({}):\n{}",
            src.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    fs::rename(&tmp, &so).unwrap_or_else(|e| panic!("{}: {e}", so.display()));
    so
}

/// Environment for a process whose writes under `dir` should be subject to
/// [`cut_power`]: `LD_PRELOAD`, `POWERLOSS_DIR`, `POWERLOSS_JOURNAL`.
///
/// `dir` should exist before the process starts (it is canonicalized here
/// and by the shim; the shim matches files by their canonical path). The
/// journal must be outside `dir`.
pub fn env(dir: &Path, journal: &Path) -> Vec<(String, String)> {
    let dir = canonical(dir);
    let journal = match (journal.parent(), journal.file_name()) {
        (Some(parent), Some(name)) => canonical(parent).join(name),
        _ => panic!("journal {} is not a file path", journal.display()),
    };
    assert!(
        !journal.starts_with(&dir),
        "journal {} must be outside {}",
        journal.display(),
        dir.display()
    );
    vec![
        ("LD_PRELOAD".into(), utf8(&shim())),
        ("POWERLOSS_DIR".into(), utf8(&dir)),
        ("POWERLOSS_JOURNAL".into(), utf8(&journal)),
    ]
}

fn canonical(p: &Path) -> PathBuf {
    fs::canonicalize(p)
        .or_else(|_| std::path::absolute(p))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn utf8(p: &Path) -> String {
    p.to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 path {}", p.display()))
        .to_owned()
}

// ---- journal format (mirrors powerloss.c) ----------------------------------

const MAGIC: u32 = 0x4a4c_5750;
const RECORD_HEADER: u64 = 16;
const R_HEADER: u8 = 0;
const R_OPEN: u8 = 1;
const R_WRITE: u8 = 2;
const R_SYNC: u8 = 3;
const R_SYNC_ALL: u8 = 4;
const R_GONE: u8 = 5;
const OPEN_CREATED: u8 = 1;
const OP_CONTINUED: u8 = 0x80;

type Inode = (u64, u64);

#[derive(Debug)]
enum Ev {
    Open {
        created: bool,
        size: u64,
        path: PathBuf,
    },
    Write {
        off: u64,
        old_size: u64,
        data_at: u64,
        data_len: u64,
        continued: bool,
    },
    Sync {
        covers: u64,
        size: u64,
    },
    Gone,
}

#[derive(Debug)]
struct Event {
    /// Offset of the record in the journal.
    pos: u64,
    ev: Ev,
}

#[derive(Debug, Default)]
struct Journal {
    dirs: Vec<PathBuf>,
    order: Vec<Inode>,
    inodes: HashMap<Inode, Vec<Event>>,
    sync_all: u64,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[8 * i..8 * i + 8]);
    u64::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn parse(file: &File) -> io::Result<Journal> {
    let len = file.metadata()?.len();
    let mut r = BufReader::with_capacity(1 << 16, file);
    let mut j = Journal::default();
    let mut pos = 0u64;
    // A record cut short at the end is what SIGKILL mid-append leaves: the
    // call it describes never happened, so it is ignored.
    while pos + RECORD_HEADER <= len {
        let mut h = [0u8; RECORD_HEADER as usize];
        r.read_exact(&mut h)?;
        if u32_at(&h, 0) != MAGIC {
            return Err(invalid(format!("journal: bad magic at offset {pos}")));
        }
        let (ty, flags) = (h[4], h[5]);
        let body = u64::from(u32_at(&h, 8));
        if pos + RECORD_HEADER + body > len {
            break;
        }
        let fixed: u64 = match ty {
            R_HEADER | R_SYNC_ALL => 8,
            R_OPEN => 24,
            R_WRITE => 40,
            R_SYNC => 32,
            R_GONE => 16,
            _ => 0,
        };
        if body < fixed {
            return Err(invalid(format!(
                "journal: record type {ty} at offset {pos} too short ({body} bytes)"
            )));
        }
        let mut v = vec![0u8; fixed as usize];
        r.read_exact(&mut v)?;
        let rest = body - fixed;
        let mut tail = Vec::new();
        if matches!(ty, R_HEADER | R_OPEN) {
            tail.resize(rest as usize, 0);
            r.read_exact(&mut tail)?;
        } else {
            let skip = i64::try_from(rest).map_err(|_| invalid("journal: huge record".into()))?;
            r.seek_relative(skip)?;
        }
        let key = |v: &[u8]| (u64_at(v, 0), u64_at(v, 1));
        let ev = match ty {
            R_HEADER => {
                j.dirs.push(PathBuf::from(OsString::from_vec(tail)));
                None
            }
            R_OPEN => Some(Ev::Open {
                created: flags & OPEN_CREATED != 0,
                size: u64_at(&v, 2),
                path: PathBuf::from(OsString::from_vec(tail)),
            }),
            R_WRITE => Some(Ev::Write {
                off: u64_at(&v, 2),
                old_size: u64_at(&v, 4),
                data_at: pos + RECORD_HEADER + fixed,
                data_len: rest,
                continued: flags & OP_CONTINUED != 0,
            }),
            R_SYNC => Some(Ev::Sync {
                covers: u64_at(&v, 2),
                size: u64_at(&v, 3),
            }),
            R_SYNC_ALL => {
                j.sync_all = j.sync_all.max(u64_at(&v, 0));
                None
            }
            R_GONE => Some(Ev::Gone),
            _ => None,
        };
        if let Some(ev) = ev {
            let k = key(&v);
            j.inodes
                .entry(k)
                .or_insert_with(|| {
                    j.order.push(k);
                    Vec::new()
                })
                .push(Event { pos, ev });
        }
        pos += RECORD_HEADER + body;
    }
    Ok(j)
}

/// The events of the inode's current file: a GONE ends a file, a created
/// OPEN (or the first OPEN after a GONE) starts a new one that happens to
/// reuse the inode number. `None` if the inode's last file is gone.
fn current_file(events: &[Event]) -> Option<Vec<&Event>> {
    let mut cur = Vec::new();
    let mut dead = false;
    for e in events {
        match &e.ev {
            Ev::Gone => {
                cur.clear();
                dead = true;
            }
            Ev::Open { created, .. } => {
                if *created || dead {
                    cur.clear();
                    dead = false;
                }
                cur.push(e);
            }
            _ if !dead => cur.push(e),
            _ => {}
        }
    }
    (!dead && !cur.is_empty()).then_some(cur)
}

/// Roll back, in the files under the journaled directory, every change
/// journaled after the last durability point of its file, as a power cut
/// would. Call this only after the process was SIGKILLed and reaped.
///
/// Per file: undo each later change newest first (write the old bytes back,
/// truncate to the old size), then set the size the file had at its last
/// `fsync` (or when the process first opened it; 0 for a file it created).
/// Files are located by their last journaled path, or by inode under the
/// directory if they were renamed. The journal is then renamed to
/// `<journal>.applied`. A missing journal (the process never touched the
/// directory) is an empty report.
pub fn cut_power(journal: &Path) -> io::Result<Report> {
    let jf = match File::open(journal) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Report::default()),
        Err(e) => return Err(e),
    };
    let j = parse(&jf)?;
    let mut report = Report::default();
    let mut by_inode: Option<HashMap<Inode, PathBuf>> = None;

    for key in &j.order {
        let Some(cur) = current_file(&j.inodes[key]) else {
            continue;
        };
        let start = cur[0].pos;
        let last_sync = cur
            .iter()
            .filter_map(|e| match e.ev {
                Ev::Sync { covers, size } => Some((covers, size)),
                _ => None,
            })
            .max_by_key(|&(covers, _)| covers);
        let sync_covers = last_sync.map_or(0, |(c, _)| c);
        let durable = sync_covers.max(j.sync_all);
        // Size at the durability point, when known.
        let target = match last_sync {
            Some((covers, size)) if covers >= j.sync_all => Some(size),
            _ if j.sync_all > start => None,
            _ => cur.iter().find_map(|e| match e.ev {
                Ev::Open { created, size, .. } => Some(if created { 0 } else { size }),
                _ => None,
            }),
        };
        let undo: Vec<&Event> = cur
            .iter()
            .copied()
            .filter(|e| e.pos >= durable && matches!(e.ev, Ev::Write { .. }))
            .collect();
        if undo.is_empty() {
            continue;
        }

        let last_path = cur.iter().rev().find_map(|e| match &e.ev {
            Ev::Open { path, .. } => Some(path),
            _ => None,
        });
        let here = last_path.filter(|p| {
            fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && (m.dev(), m.ino()) == *key)
        });
        let path = match here {
            Some(p) => p.clone(),
            None => {
                let map = by_inode.get_or_insert_with(|| walk(&j.dirs));
                match map.get(key) {
                    Some(p) => p.clone(),
                    None => {
                        report.missing += 1;
                        continue;
                    }
                }
            }
        };

        let f = OpenOptions::new().write(true).open(&path)?;
        let len_before = f.metadata()?.len();
        for e in undo.iter().rev() {
            let Ev::Write {
                off,
                old_size,
                data_at,
                data_len,
                continued,
            } = e.ev
            else {
                continue;
            };
            if data_len > 0 {
                let mut old = vec![0u8; data_len as usize];
                jf.read_exact_at(&mut old, data_at)?;
                f.write_all_at(&old, off)?;
            }
            f.set_len(old_size)?;
            report.bytes_undone += data_len;
            if !continued {
                report.writes_undone += 1;
            }
        }
        if let Some(size) = target
            && f.metadata()?.len() != size
        {
            f.set_len(size)?;
        }
        report.files += 1;
        if f.metadata()?.len() < len_before {
            report.truncated += 1;
        }
    }

    let mut done = journal.as_os_str().to_owned();
    done.push(".applied");
    fs::rename(journal, done)?;
    Ok(report)
}

/// (dev, ino) -> path of every regular file under the journaled dirs.
fn walk(dirs: &[PathBuf]) -> HashMap<Inode, PathBuf> {
    let mut map = HashMap::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    stack.sort();
    stack.dedup();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(m) = entry.metadata() else {
                continue;
            };
            if m.is_dir() {
                stack.push(entry.path());
            } else if m.is_file() {
                map.entry((m.dev(), m.ino()))
                    .or_insert_with(|| entry.path());
            }
        }
    }
    map
}
