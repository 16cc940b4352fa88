//! Files: recording an upload, reference counting through the messages
//! that carry it, recall, retention. Bytes never pass through here: a
//! record names the chunks every node must hold (`crate::blobs`).

use super::*;
use crate::domain::files::{BlobRecord, CHUNK_SIZE, FileKind, FilePolicy, MAX_VOICE_MS};

/// Files deleted per sweep step at most.
pub const SWEEP_BATCH: usize = 256;

pub fn file_policy<S: Store + ?Sized>(s: &S) -> Result<FilePolicy, StoreFault> {
    Ok(s.get_as(keys::FILE_POLICY)?.unwrap_or_default())
}

fn valid_file_id(id: &str) -> bool {
    id.len() == 33 && id.starts_with('f') && id[1..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn usage<S: Store + ?Sized>(s: &S, uploader: &str) -> Result<u64, StoreFault> {
    Ok(s.get_as::<u64>(&keys::file_usage(uploader))?.unwrap_or(0))
}

/// The uploader: an active member, or `app:<agentid>` for an enabled app.
fn check_uploader<S: Store>(s: &Overlay<'_, S>, ctx: &Ctx, uploader: &str) -> R<()> {
    if let Some(agentid) = uploader.strip_prefix("app:") {
        let ok = agentid.parse::<u32>().ok() == ctx.app && ctx.app.is_some();
        ensure!(
            ok,
            Code::Forbidden,
            "uploader {uploader:?} does not match the calling app"
        );
        return Ok(Ok(()));
    }
    ensure!(
        ctx.app.is_none(),
        Code::Forbidden,
        "an app uploads as app:<agentid>"
    );
    let _ = check!(super::external::active_party(s, uploader, true));
    Ok(Ok(()))
}

/// Record a file whose chunks a majority holds.
pub(super) fn record<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, f: &BlobRecord) -> R<Done> {
    ensure!(
        valid_file_id(&f.id),
        Code::InvalidArgument,
        "invalid file id {:?}",
        f.id
    );
    ensure!(
        s.get(&keys::file(&f.id))?.is_none(),
        Code::AlreadyExists,
        "file {:?} is already recorded",
        f.id
    );
    check!(check_uploader(s, ctx, &f.uploader));
    let name_len = f.name.chars().count();
    ensure!(
        (1..=255).contains(&name_len) && !f.name.chars().any(char::is_control),
        Code::InvalidArgument,
        "file name must be 1-255 characters without control characters"
    );
    ensure!(f.size > 0, Code::InvalidArgument, "the file is empty");
    ensure!(
        f.chunks.len() as u64 == f.size.div_ceil(CHUNK_SIZE),
        Code::InvalidArgument,
        "a file of {} bytes has {} chunks of {} bytes, not {}",
        f.size,
        f.size.div_ceil(CHUNK_SIZE),
        CHUNK_SIZE,
        f.chunks.len()
    );
    ensure!(
        f.mime.len() <= 127 && f.class.len() <= 32,
        Code::InvalidArgument,
        "media type too long"
    );
    let policy = file_policy(s)?;
    ensure!(
        f.size <= policy.max_file_bytes,
        Code::TooLarge,
        "files are at most {} bytes (policy max_file_bytes)",
        policy.max_file_bytes
    );
    ensure!(
        policy.allows(&f.class),
        Code::TypeNotAllowed,
        "files of type {:?} ({}) are not allowed (policy allowed_types)",
        f.class,
        f.mime
    );
    match f.kind {
        FileKind::Image => ensure!(
            f.class == "image" && f.width > 0 && f.height > 0,
            Code::InvalidArgument,
            "an image needs an image type and dimensions"
        ),
        FileKind::Voice => ensure!(
            f.class == "audio" && f.duration_ms > 0 && f.duration_ms <= MAX_VOICE_MS,
            Code::InvalidArgument,
            "a voice note needs an audio type and a duration of 1 ms to {} s",
            MAX_VOICE_MS / 1000
        ),
        FileKind::File => {}
    }
    let used = usage(s, &f.uploader)?;
    ensure!(
        used.saturating_add(f.size) <= policy.user_quota_bytes,
        Code::QuotaExceeded,
        "{:?} holds {used} bytes of files; this one ({} bytes) would pass the quota of {} bytes",
        f.uploader,
        f.size,
        policy.user_quota_bytes
    );
    let mut f = f.clone();
    f.created_ms = ctx.time_ms;
    let n = s.get_as::<u64>(keys::FILE_CTR)?.unwrap_or(0) + 1;
    s.put_as(keys::FILE_CTR, &n)?;
    s.put_as(&keys::file_in_order(n), &f.id)?;
    s.put(&keys::file_unreferenced(f.created_ms, &f.id), Vec::new());
    s.put(&keys::file_by_age(f.created_ms, &f.id), Vec::new());
    for h in f.all_chunks() {
        s.put(&keys::chunk_user(h, &f.id), Vec::new());
    }
    s.put_as(&keys::file_usage(&f.uploader), &(used + f.size))?;
    s.put_as(&keys::file(&f.id), &f)?;
    Ok(Ok(Done::Created { id: f.id }))
}

/// Whether `userid` may read file `f`: its uploader, or a current member
/// of a conversation with a message that carries it.
pub fn may_read<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    f: &BlobRecord,
) -> Result<bool, StoreFault> {
    if f.uploader == userid {
        return Ok(true);
    }
    let prefix = keys::file_refs(&f.id);
    let mut found = false;
    s.visit_as::<()>(&prefix, None, |k, ()| {
        let rest = &k[prefix.len()..];
        if let Some(end) = rest.iter().position(|b| *b == 0) {
            let conv = String::from_utf8_lossy(&rest[..end]);
            found = s.get(&keys::conv_member(&conv, userid))?.is_some();
        }
        Ok(!found)
    })?;
    Ok(found)
}

/// A message is about to carry file `id`: the sender must be able to read
/// it (their own upload, or one they received: forwarding).
pub(super) fn attach<S: Store>(s: &mut Overlay<'_, S>, actor: &str, id: &str) -> R<BlobRecord> {
    let Some(f) = s.get_as::<BlobRecord>(&keys::file(id))? else {
        return Ok(refuse(Code::NotFound, format!("no file {id:?}")));
    };
    ensure!(may_read(s, actor, &f)?, Code::NotFound, "no file {id:?}");
    Ok(Ok(f))
}

/// Message `conv`/`seq` now carries `f`.
pub(super) fn add_ref<S: Store>(
    s: &mut Overlay<'_, S>,
    f: &BlobRecord,
    conv: &str,
    seq: u64,
) -> Result<(), StoreFault> {
    // First use: no longer an unsent upload (a no-op after that).
    s.delete(&keys::file_unreferenced(f.created_ms, &f.id));
    s.put(&keys::file_ref(&f.id, conv, seq), Vec::new());
    Ok(())
}

/// Message `conv`/`seq` was recalled: it no longer carries file `id`. A
/// file no message carries any more is deleted (recall takes it back from
/// everyone, its uploader included).
pub(super) fn drop_ref<S: Store>(
    s: &mut Overlay<'_, S>,
    id: &str,
    conv: &str,
    seq: u64,
) -> Result<(), StoreFault> {
    s.delete(&keys::file_ref(id, conv, seq));
    if s.scan(&keys::file_refs(id), None, 1)?.is_empty()
        && let Some(f) = s.get_as::<BlobRecord>(&keys::file(id))?
    {
        delete(s, &f)?;
    }
    Ok(())
}

/// Delete a file's record and indexes. Nodes then delete chunks no record
/// uses (`crate::blobs::gc`).
fn delete<S: Store>(s: &mut Overlay<'_, S>, f: &BlobRecord) -> Result<(), StoreFault> {
    s.delete(&keys::file(&f.id));
    s.delete(&keys::file_by_age(f.created_ms, &f.id));
    for h in f.all_chunks() {
        s.delete(&keys::chunk_user(h, &f.id));
    }
    for (k, _) in s.scan(&keys::file_refs(&f.id), None, usize::MAX)? {
        s.delete(&k);
    }
    let used = usage(s, &f.uploader)?;
    let left = used.saturating_sub(f.size);
    if left == 0 {
        s.delete(&keys::file_usage(&f.uploader));
    } else {
        s.put_as(&keys::file_usage(&f.uploader), &left)?;
    }
    // `fileq/` keeps its entry: a node following it skips missing records.
    Ok(())
}

/// What a sweep would delete now: (never-sent uploads past
/// `unreferenced_hours`, files past `retention_days`). The leader asks
/// before proposing a step.
pub fn sweep_due<S: Store + ?Sized>(s: &S, now_ms: u64) -> Result<bool, StoreFault> {
    let policy = file_policy(s)?;
    let unref_cut = now_ms.saturating_sub(policy.unreferenced_hours as u64 * 3_600_000);
    if let Some((k, _)) = s.scan(keys::FILES_UNREFERENCED, None, 1)?.first()
        && keys_time(k, keys::FILES_UNREFERENCED) <= unref_cut
    {
        return Ok(true);
    }
    if policy.retention_days > 0 {
        let cut = now_ms.saturating_sub(policy.retention_days as u64 * 86_400_000);
        if let Some((k, _)) = s.scan(keys::FILES_BY_AGE, None, 1)?.first()
            && keys_time(k, keys::FILES_BY_AGE) <= cut
        {
            return Ok(true);
        }
    }
    Ok(false)
}

fn keys_time(k: &[u8], prefix: &[u8]) -> u64 {
    k.get(prefix.len()..prefix.len() + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .unwrap_or(u64::MAX)
}

/// One sweep step (deterministic: it reads only the state and `ctx`).
pub(super) fn sweep<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx) -> R<Done> {
    let policy = file_policy(s)?;
    let mut budget = SWEEP_BATCH;
    let unref_cut = ctx
        .time_ms
        .saturating_sub(policy.unreferenced_hours as u64 * 3_600_000);
    for (k, _) in s.scan(keys::FILES_UNREFERENCED, None, budget)? {
        if keys_time(&k, keys::FILES_UNREFERENCED) > unref_cut {
            break;
        }
        s.delete(&k);
        let id = String::from_utf8_lossy(&k[keys::FILES_UNREFERENCED.len() + 8..]).into_owned();
        if let Some(f) = s.get_as::<BlobRecord>(&keys::file(&id))? {
            delete(s, &f)?;
        }
        budget -= 1;
    }
    if policy.retention_days > 0 && budget > 0 {
        let cut = ctx
            .time_ms
            .saturating_sub(policy.retention_days as u64 * 86_400_000);
        for (k, _) in s.scan(keys::FILES_BY_AGE, None, budget)? {
            if keys_time(&k, keys::FILES_BY_AGE) > cut {
                break;
            }
            let id = String::from_utf8_lossy(&k[keys::FILES_BY_AGE.len() + 8..]).into_owned();
            match s.get_as::<BlobRecord>(&keys::file(&id))? {
                Some(f) => {
                    s.delete(&keys::file_unreferenced(f.created_ms, &f.id));
                    delete(s, &f)?;
                }
                None => s.delete(&k),
            }
        }
    }
    Ok(Ok(Done::Ok))
}

pub(super) fn set_policy<S: Store>(s: &mut Overlay<'_, S>, p: &FilePolicy) -> R<Done> {
    if let Err(e) = p.validate() {
        return Ok(refuse(Code::InvalidArgument, e));
    }
    s.put_as(keys::FILE_POLICY, p)?;
    Ok(Ok(Done::Ok))
}
