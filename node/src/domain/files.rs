//! Files, images and voice notes: what the replicated state knows of a
//! blob. The bytes live beside the log, in each node's chunk store
//! (`crate::blobs`); the log carries only a [`BlobRecord`]: the ordered
//! SHA-256 of its chunks, its size and type, who uploaded it.

use serde::{Deserialize, Serialize};

/// Chunk size of the blob store. Every chunk of a blob but the last is
/// exactly this long.
pub const CHUNK_SIZE: u64 = 4 << 20;

/// How a file is shown in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Image,
    Voice,
}

impl FileKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Image => "image",
            FileKind::Voice => "voice",
        }
    }

    pub fn parse(s: &str) -> Option<FileKind> {
        match s {
            "file" => Some(FileKind::File),
            "image" => Some(FileKind::Image),
            "voice" => Some(FileKind::Voice),
            _ => None,
        }
    }
}

/// The type classes a site can allow or refuse (`FilePolicy::allowed_types`),
/// decided from the bytes (magic numbers), never from a name or a header.
pub const TYPE_CLASSES: &[&str] = &[
    "image",
    "audio",
    "video",
    "document",
    "text",
    "archive",
    "executable",
    "other",
];

/// One uploaded file, as recorded in the log once a majority of nodes hold
/// its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// `f` + 32 hex digits, chosen by the node that took the upload.
    pub id: String,
    /// The file name as given (shown and offered on download).
    pub name: String,
    pub kind: FileKind,
    /// Sniffed media type (`application/octet-stream` when unknown).
    pub mime: String,
    /// Sniffed type class (one of [`TYPE_CLASSES`]).
    pub class: String,
    pub size: u64,
    pub sha256: [u8; 32],
    /// SHA-256 of each chunk, in order.
    pub chunks: Vec<[u8; 32]>,
    /// A member's userid, or `app:<agentid>` for an integrated app.
    pub uploader: String,
    pub created_ms: u64,
    /// Images: pixel size and a JPEG thumbnail stored as one chunk.
    pub width: u32,
    pub height: u32,
    pub thumb: Option<([u8; 32], u32)>,
    /// Voice notes: length as the client measured it (at most 5 minutes).
    pub duration_ms: u32,
}

impl BlobRecord {
    /// Every chunk this record needs on disk (the thumbnail included).
    pub fn all_chunks(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.chunks
            .iter()
            .chain(self.thumb.as_ref().map(|(h, _)| h))
    }

    /// Byte length of chunk `i`.
    pub fn chunk_len(&self, i: usize) -> u64 {
        let start = i as u64 * CHUNK_SIZE;
        self.size.saturating_sub(start).min(CHUNK_SIZE)
    }

    pub fn reference(&self) -> FileRef {
        FileRef {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind,
            mime: self.mime.clone(),
            size: self.size,
            width: self.width,
            height: self.height,
            duration_ms: self.duration_ms,
            thumbnail: self.thumb.is_some(),
        }
    }
}

/// A file as a message carries it (what a client shows without asking).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRef {
    pub id: String,
    pub name: String,
    pub kind: FileKind,
    pub mime: String,
    pub size: u64,
    pub width: u32,
    pub height: u32,
    pub duration_ms: u32,
    pub thumbnail: bool,
}

/// Files policy (`cfg/files`, set by the security administrator). Kept
/// apart from `Policy` so a stored policy record keeps its shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilePolicy {
    /// Largest file, in bytes.
    pub max_file_bytes: u64,
    /// Bytes of live files one uploader may hold.
    pub user_quota_bytes: u64,
    /// Type classes that may be uploaded (see [`TYPE_CLASSES`]).
    pub allowed_types: Vec<String>,
    /// Files older than this are deleted, referenced or not (0: keep).
    pub retention_days: u32,
    /// An upload never sent in a conversation is deleted after this.
    pub unreferenced_hours: u32,
}

impl Default for FilePolicy {
    fn default() -> Self {
        FilePolicy {
            max_file_bytes: 200 << 20,
            user_quota_bytes: 10 << 30,
            allowed_types: TYPE_CLASSES
                .iter()
                .filter(|c| **c != "executable")
                .map(|c| c.to_string())
                .collect(),
            retention_days: 0,
            unreferenced_hours: 24,
        }
    }
}

impl FilePolicy {
    pub fn allows(&self, class: &str) -> bool {
        self.allowed_types.iter().any(|c| c == class)
    }

    /// Checked when the policy is set.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_file_bytes == 0 || self.max_file_bytes > 16 << 30 {
            return Err("max_file_bytes must be between 1 and 16 GiB".into());
        }
        if self.user_quota_bytes < self.max_file_bytes {
            return Err("user_quota_bytes must be at least max_file_bytes".into());
        }
        for c in &self.allowed_types {
            if !TYPE_CLASSES.contains(&c.as_str()) {
                return Err(format!(
                    "allowed_types: unknown type class {c:?} (known: {})",
                    TYPE_CLASSES.join(", ")
                ));
            }
        }
        if self.retention_days > 36_500 {
            return Err("retention_days must be at most 36500 (0 keeps files)".into());
        }
        if self.unreferenced_hours == 0 || self.unreferenced_hours > 24 * 365 {
            return Err("unreferenced_hours must be between 1 and 8760".into());
        }
        Ok(())
    }
}

/// Longest voice note.
pub const MAX_VOICE_MS: u32 = 5 * 60 * 1000;
