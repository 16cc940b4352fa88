//! JSON views of files, shared by the client API, the admin API and the
//! WeCom-compatible API.

use serde_json::{Value, json};

use crate::domain::{BlobRecord, FileKind, FileRef};

fn dims(v: &mut Value, kind: FileKind, width: u32, height: u32, duration_ms: u32) {
    match kind {
        FileKind::Image => {
            v["width"] = json!(width);
            v["height"] = json!(height);
        }
        FileKind::Voice => v["duration_ms"] = json!(duration_ms),
        FileKind::File => {}
    }
}

/// A file as a message carries it.
pub fn file_ref_json(f: &FileRef) -> Value {
    let mut v = json!({
        "id": f.id,
        "name": f.name,
        "kind": f.kind.as_str(),
        "mime": f.mime,
        "size": f.size,
        "thumbnail": f.thumbnail,
    });
    dims(&mut v, f.kind, f.width, f.height, f.duration_ms);
    v
}

/// A recorded file.
pub fn file_json(f: &BlobRecord) -> Value {
    let mut v = json!({
        "id": f.id,
        "name": f.name,
        "kind": f.kind.as_str(),
        "mime": f.mime,
        "type_class": f.class,
        "size": f.size,
        "sha256": hex::encode(f.sha256),
        "thumbnail": f.thumb.is_some(),
        "created_ms": f.created_ms,
        "uploader": f.uploader,
    });
    dims(&mut v, f.kind, f.width, f.height, f.duration_ms);
    v
}
