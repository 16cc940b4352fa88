//! Snapshot (and backup) file format: streamed, checksummed, versioned.
//!
//! ```text
//! version 1 (plain):
//!   "ENCLSNAP" | 1 u32 LE | meta_len u32 LE | meta (postcard SnapshotMeta)
//!   records: key_len u32 LE | key | val_len u32 LE | value   (repeated)
//!   end:     key_len = 0xFFFF_FFFF
//!   trailer: SHA-256 of every byte before it (32 bytes)
//! version 2 (compressed):
//!   "ENCLSNAP" | 2 u32 LE | raw DEFLATE stream of what follows the
//!   version in version 1 up to and including the end mark
//!   trailer: logical length u64 LE | SHA-256 of the logical bytes
//! ```
//!
//! The logical bytes of version 2 are those version 1 would have written
//! before its trailer (with 2 as the version): the checksum is the same
//! kind of value for both. Version 2 is written only once the cluster's
//! log version says every voter reads it (the application decides, see
//! `Application::snapshot_format`); a snapshot of tiny sorted records
//! compresses about 4.6× at DEFLATE level 1.
//!
//! Writers and readers stream record by record; no snapshot is ever held in
//! memory whole.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::types::SnapshotMeta;

pub const MAGIC: &[u8; 8] = b"ENCLSNAP";
/// Plain records.
pub const VERSION: u32 = 1;
/// Records in a DEFLATE stream.
pub const VERSION_DEFLATE: u32 = 2;
/// DEFLATE level of version 2: the fastest, most of the gain (records are
/// sorted, so neighbouring keys share their prefixes).
const DEFLATE_LEVEL: u32 = 1;
const END: u32 = u32::MAX;
/// Upper bound on one key or value, to reject garbage before allocating.
const MAX_ITEM: u32 = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an Enclave snapshot or backup: {detail}")]
    Format { path: String, detail: String },
    #[error("{path}: checksum mismatch: the file is damaged or incomplete")]
    Checksum { path: String },
}

/// Facts about a verified snapshot file.
#[derive(Debug, Clone)]
pub struct SnapshotInfo {
    pub meta: SnapshotMeta,
    pub records: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Size of the data uncompressed (version 1: the file's size).
    pub logical_bytes: u64,
    pub sha256: String,
}

/// Where a writer's bytes go: the file, or a DEFLATE stream into it.
enum Sink {
    Plain(BufWriter<File>),
    Deflate(flate2::write::DeflateEncoder<BufWriter<File>>),
}

impl Sink {
    fn file(&self) -> &File {
        match self {
            Sink::Plain(w) => w.get_ref(),
            Sink::Deflate(e) => e.get_ref().get_ref(),
        }
    }

    /// Write out what is buffered so far (not the compressor's state).
    fn flush_buffer(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Deflate(e) => e.get_mut().flush(),
        }
    }

    /// End the compressed stream, if any: the file's writer.
    fn finish(self) -> std::io::Result<BufWriter<File>> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Deflate(e) => e.finish(),
        }
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Deflate(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Deflate(e) => e.flush(),
        }
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    ctx: ring::digest::Context,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.ctx.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Bytes of snapshot written between two `sync_data` calls.
const SYNC_EVERY: u64 = 4 << 20;

/// Stream `records` into a new snapshot file at `path` (fsynced), plain
/// (version 1).
pub fn write<I>(path: &Path, meta: &SnapshotMeta, records: I) -> Result<SnapshotInfo, SnapshotError>
where
    I: IntoIterator<Item = Result<(Vec<u8>, Vec<u8>), std::io::Error>>,
{
    write_as(path, meta, records, VERSION)
}

/// [`write`] in format `version` ([`VERSION`] or [`VERSION_DEFLATE`]).
pub fn write_as<I>(
    path: &Path,
    meta: &SnapshotMeta,
    records: I,
    version: u32,
) -> Result<SnapshotInfo, SnapshotError>
where
    I: IntoIterator<Item = Result<(Vec<u8>, Vec<u8>), std::io::Error>>,
{
    let p = path.display().to_string();
    let io = |source| SnapshotError::Io {
        path: p.clone(),
        source,
    };
    if version != VERSION && version != VERSION_DEFLATE {
        return Err(io(std::io::Error::other(format!(
            "unknown snapshot format version {version}"
        ))));
    }
    // Snapshots and backups hold all replicated data: owner-only.
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(io)?
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    // The header is never compressed: a reader learns the format from it.
    let mut head = MAGIC.to_vec();
    head.extend_from_slice(&version.to_le_bytes());
    out.write_all(&head).map_err(io)?;
    ctx.update(&head);
    let sink = if version == VERSION_DEFLATE {
        let level = flate2::Compression::new(DEFLATE_LEVEL);
        Sink::Deflate(flate2::write::DeflateEncoder::new(out, level))
    } else {
        Sink::Plain(out)
    };
    let mut w = HashingWriter {
        inner: sink,
        ctx,
        bytes: head.len() as u64,
    };
    let meta_bytes = postcard::to_stdvec(meta).map_err(|e| io(std::io::Error::other(e)))?;
    w.write_all(&(meta_bytes.len() as u32).to_le_bytes())
        .map_err(io)?;
    w.write_all(&meta_bytes).map_err(io)?;
    let mut count = 0u64;
    let mut synced = 0u64;
    for r in records {
        let (k, v) = r.map_err(io)?;
        w.write_all(&(k.len() as u32).to_le_bytes()).map_err(io)?;
        w.write_all(&k).map_err(io)?;
        w.write_all(&(v.len() as u32).to_le_bytes()).map_err(io)?;
        w.write_all(&v).map_err(io)?;
        count += 1;
        // Write back as we go: a file-system journal commit (the Raft
        // log's next fsync) must otherwise flush every dirty page of the
        // snapshot first, and a 60 MB snapshot made log appends miss their
        // deadlines for seconds.
        if w.bytes - synced >= SYNC_EVERY {
            w.inner.flush_buffer().map_err(io)?;
            w.inner.file().sync_data().map_err(io)?;
            synced = w.bytes;
        }
    }
    w.write_all(&END.to_le_bytes()).map_err(io)?;
    let digest = w.ctx.clone().finish();
    let logical = w.bytes;
    let mut inner = w.inner.finish().map_err(io)?;
    if version == VERSION_DEFLATE {
        inner.write_all(&logical.to_le_bytes()).map_err(io)?;
    }
    inner.write_all(digest.as_ref()).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    Ok(SnapshotInfo {
        meta: meta.clone(),
        records: count,
        bytes,
        logical_bytes: if version == VERSION {
            bytes
        } else {
            logical + 32
        },
        sha256: hex::encode(digest.as_ref()),
    })
}

/// The uncompressed size of the data in a snapshot file (version 2: from
/// its trailer; version 1: the file's size), without reading it through.
pub fn logical_size(path: &Path) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut head = [0u8; 12];
    f.read_exact(&mut head)?;
    if &head[..8] != MAGIC {
        return Err(std::io::Error::other("not an Enclave snapshot"));
    }
    if u32::from_le_bytes([head[8], head[9], head[10], head[11]]) != VERSION_DEFLATE {
        return Ok(len);
    }
    let mut n = [0u8; 8];
    f.seek(SeekFrom::Start(len.saturating_sub(40)))?;
    f.read_exact(&mut n)?;
    Ok(u64::from_le_bytes(n) + 32)
}

/// What a reader reads from: the file, or the DEFLATE stream in it.
enum Source {
    Plain(BufReader<File>),
    Deflate(flate2::bufread::DeflateDecoder<BufReader<File>>),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Plain(r) => r.read(buf),
            Source::Deflate(d) => d.read(buf),
        }
    }
}

/// A streaming reader over a snapshot file that checks the trailer at the end.
pub struct Reader {
    path: String,
    r: Source,
    ctx: ring::digest::Context,
    pub meta: SnapshotMeta,
    records: u64,
    /// Logical bytes read (the file's bytes, for version 1).
    bytes: u64,
    file_bytes: u64,
    done: bool,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("path", &self.path)
            .field("meta", &self.meta)
            .finish()
    }
}

impl Reader {
    pub fn open(path: &Path) -> Result<Reader, SnapshotError> {
        let file = File::open(path).map_err(|source| SnapshotError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Reader::from_file(path, file)
    }

    pub fn from_file(path: &Path, mut file: File) -> Result<Reader, SnapshotError> {
        let p = path.display().to_string();
        let io = |source| SnapshotError::Io {
            path: p.clone(),
            source,
        };
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        let file_bytes = file.metadata().map_err(io)?.len();
        let mut r = BufReader::with_capacity(1 << 20, file);
        // The header, never compressed: magic and format version.
        let mut head = [0u8; 12];
        if let Err(e) = r.read_exact(&mut head) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                SnapshotError::Checksum { path: p }
            } else {
                io(e)
            });
        }
        let format = |detail: &str| SnapshotError::Format {
            path: p.clone(),
            detail: detail.into(),
        };
        if &head[..8] != MAGIC {
            return Err(format("bad magic bytes"));
        }
        let version = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
        let r = match version {
            VERSION => Source::Plain(r),
            VERSION_DEFLATE => Source::Deflate(flate2::bufread::DeflateDecoder::new(r)),
            _ => {
                return Err(format(&format!(
                    "unsupported format version {version} (this build reads {VERSION} and {VERSION_DEFLATE})"
                )));
            }
        };
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(&head);
        let mut rd = Reader {
            path: p,
            r,
            ctx,
            meta: SnapshotMeta::default(),
            records: 0,
            bytes: head.len() as u64,
            file_bytes,
            done: false,
        };
        let meta_len = rd.read_u32()?;
        if meta_len > MAX_ITEM {
            return Err(rd.format("header too large"));
        }
        let mut meta = vec![0u8; meta_len as usize];
        rd.read_exact_hashed(&mut meta)?;
        rd.meta =
            postcard::from_bytes(&meta).map_err(|e| rd.format(&format!("bad header: {e}")))?;
        Ok(rd)
    }

    fn format(&self, detail: &str) -> SnapshotError {
        SnapshotError::Format {
            path: self.path.clone(),
            detail: detail.into(),
        }
    }

    fn read_exact_hashed(&mut self, buf: &mut [u8]) -> Result<(), SnapshotError> {
        self.r.read_exact(buf).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                SnapshotError::Checksum {
                    path: self.path.clone(),
                }
            } else {
                SnapshotError::Io {
                    path: self.path.clone(),
                    source: e,
                }
            }
        })?;
        self.ctx.update(buf);
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn read_u32(&mut self) -> Result<u32, SnapshotError> {
        let mut b = [0u8; 4];
        self.read_exact_hashed(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Next record, or `None` at the (verified) end.
    pub fn next_record(&mut self) -> Result<Option<super::KvPair>, SnapshotError> {
        if self.done {
            return Ok(None);
        }
        let klen = self.read_u32()?;
        if klen == END {
            let expected = self.ctx.clone().finish();
            let damaged = || SnapshotError::Checksum {
                path: self.path.clone(),
            };
            let mut trailer = [0u8; 32];
            if let Source::Deflate(d) = &mut self.r {
                // The compressed stream ends with the end mark.
                let mut extra = [0u8; 1];
                if d.read(&mut extra).map_err(|_| damaged())? != 0 {
                    return Err(self.format("data after the end mark"));
                }
                let file = d.get_mut();
                let mut len = [0u8; 8];
                file.read_exact(&mut len).map_err(|_| damaged())?;
                if u64::from_le_bytes(len) != self.bytes {
                    return Err(damaged());
                }
                file.read_exact(&mut trailer).map_err(|_| damaged())?;
            } else {
                self.r.read_exact(&mut trailer).map_err(|_| damaged())?;
            }
            if trailer != expected.as_ref() {
                return Err(SnapshotError::Checksum {
                    path: self.path.clone(),
                });
            }
            let mut extra = [0u8; 1];
            let rest: &mut dyn Read = match &mut self.r {
                Source::Plain(r) => r,
                Source::Deflate(d) => d.get_mut(),
            };
            if rest.read(&mut extra).map_err(|source| SnapshotError::Io {
                path: self.path.clone(),
                source,
            })? != 0
            {
                return Err(self.format("trailing bytes after the checksum"));
            }
            self.bytes += 32;
            self.done = true;
            return Ok(None);
        }
        if klen > MAX_ITEM {
            return Err(SnapshotError::Checksum {
                path: self.path.clone(),
            });
        }
        let mut k = vec![0u8; klen as usize];
        self.read_exact_hashed(&mut k)?;
        let vlen = self.read_u32()?;
        if vlen > MAX_ITEM {
            return Err(SnapshotError::Checksum {
                path: self.path.clone(),
            });
        }
        let mut v = vec![0u8; vlen as usize];
        self.read_exact_hashed(&mut v)?;
        self.records += 1;
        Ok(Some((k, v)))
    }

    /// Read to the end, verifying the checksum.
    pub fn verify(mut self) -> Result<SnapshotInfo, SnapshotError> {
        while self.next_record()?.is_some() {}
        let sha = {
            let ctx = self.ctx.clone();
            hex::encode(ctx.finish().as_ref())
        };
        Ok(SnapshotInfo {
            meta: self.meta,
            records: self.records,
            bytes: self.file_bytes,
            logical_bytes: self.bytes,
            sha256: sha,
        })
    }
}

/// Verify a snapshot or backup file end to end.
pub fn verify(path: &Path) -> Result<SnapshotInfo, SnapshotError> {
    Reader::open(path)?.verify()
}
