//! Snapshot (and backup) file format: streamed, checksummed, versioned.
//!
//! ```text
//! "ENCLSNAP" | version: u32 LE | meta_len: u32 LE | meta (postcard SnapshotMeta)
//! records: key_len: u32 LE | key | val_len: u32 LE | value        (repeated)
//! end:     key_len = 0xFFFF_FFFF
//! trailer: SHA-256 of every byte before it (32 bytes)
//! ```
//!
//! Writers and readers stream record by record; no snapshot is ever held in
//! memory whole.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::types::SnapshotMeta;

pub const MAGIC: &[u8; 8] = b"ENCLSNAP";
pub const VERSION: u32 = 1;
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
    pub bytes: u64,
    pub sha256: String,
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

/// Stream `records` into a new snapshot file at `path` (fsynced).
pub fn write<I>(path: &Path, meta: &SnapshotMeta, records: I) -> Result<SnapshotInfo, SnapshotError>
where
    I: IntoIterator<Item = Result<(Vec<u8>, Vec<u8>), std::io::Error>>,
{
    let p = path.display().to_string();
    let io = |source| SnapshotError::Io {
        path: p.clone(),
        source,
    };
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
    let mut w = HashingWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        ctx: ring::digest::Context::new(&ring::digest::SHA256),
        bytes: 0,
    };
    let meta_bytes = postcard::to_stdvec(meta).map_err(|e| io(std::io::Error::other(e)))?;
    w.write_all(MAGIC).map_err(io)?;
    w.write_all(&VERSION.to_le_bytes()).map_err(io)?;
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
            w.inner.flush().map_err(io)?;
            w.inner.get_ref().sync_data().map_err(io)?;
            synced = w.bytes;
        }
    }
    w.write_all(&END.to_le_bytes()).map_err(io)?;
    let digest = w.ctx.clone().finish();
    let bytes = w.bytes + 32;
    let mut inner = w.inner;
    inner.write_all(digest.as_ref()).map_err(io)?;
    let file = inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)?;
    Ok(SnapshotInfo {
        meta: meta.clone(),
        records: count,
        bytes,
        sha256: hex::encode(digest.as_ref()),
    })
}

/// A streaming reader over a snapshot file that checks the trailer at the end.
pub struct Reader {
    path: String,
    r: BufReader<File>,
    ctx: ring::digest::Context,
    pub meta: SnapshotMeta,
    records: u64,
    bytes: u64,
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
        file.seek(SeekFrom::Start(0))
            .map_err(|source| SnapshotError::Io {
                path: p.clone(),
                source,
            })?;
        let mut rd = Reader {
            path: p,
            r: BufReader::with_capacity(1 << 20, file),
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            meta: SnapshotMeta::default(),
            records: 0,
            bytes: 0,
            done: false,
        };
        let mut magic = [0u8; 8];
        rd.read_exact_hashed(&mut magic)?;
        if &magic != MAGIC {
            return Err(rd.format("bad magic bytes"));
        }
        let version = rd.read_u32()?;
        if version != VERSION {
            return Err(rd.format(&format!(
                "unsupported format version {version} (this build reads {VERSION})"
            )));
        }
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
            let mut trailer = [0u8; 32];
            self.r
                .read_exact(&mut trailer)
                .map_err(|_| SnapshotError::Checksum {
                    path: self.path.clone(),
                })?;
            if trailer != expected.as_ref() {
                return Err(SnapshotError::Checksum {
                    path: self.path.clone(),
                });
            }
            let mut extra = [0u8; 1];
            if self
                .r
                .read(&mut extra)
                .map_err(|source| SnapshotError::Io {
                    path: self.path.clone(),
                    source,
                })?
                != 0
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
            bytes: self.bytes,
            sha256: sha,
        })
    }
}

/// Verify a snapshot or backup file end to end.
pub fn verify(path: &Path) -> Result<SnapshotInfo, SnapshotError> {
    Reader::open(path)?.verify()
}
