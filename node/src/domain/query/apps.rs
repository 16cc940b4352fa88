//! Reads for integrated apps (WeCom-compatible API) and files.

use crate::domain::keys;
use crate::domain::model::*;
use crate::domain::store::{Store, StoreExt, StoreFault};

// ------------------------------------------------------ integrated apps

pub fn corp<S: Store + ?Sized>(s: &S) -> Result<Option<Corp>, StoreFault> {
    s.get_as(keys::CORP)
}

pub fn app<S: Store + ?Sized>(s: &S, agentid: u32) -> Result<Option<App>, StoreFault> {
    s.get_as(&keys::app(agentid))
}

/// The app whose secret has this SHA-256.
pub fn app_by_secret<S: Store + ?Sized>(s: &S, hash: &[u8; 32]) -> Result<Option<App>, StoreFault> {
    match s.get_as::<u32>(&keys::app_secret(hash))? {
        Some(id) => app(s, id),
        None => Ok(None),
    }
}

pub fn apps<S: Store + ?Sized>(s: &S) -> Result<Vec<App>, StoreFault> {
    Ok(s.scan_as::<App>(keys::APPS, None, usize::MAX)?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

pub fn profile<S: Store + ?Sized>(s: &S, userid: &str) -> Result<Profile, StoreFault> {
    Ok(s.get_as(&keys::profile(userid))?.unwrap_or_default())
}

pub fn callback_state<S: Store + ?Sized>(s: &S, agentid: u32) -> Result<CallbackState, StoreFault> {
    Ok(s.get_as(&keys::callback_state(agentid))?
        .unwrap_or_default())
}

/// Queued callback events of an app, oldest first.
pub fn callback_items<S: Store + ?Sized>(
    s: &S,
    agentid: u32,
    limit: usize,
) -> Result<Vec<CallbackItem>, StoreFault> {
    Ok(
        s.scan_as::<CallbackItem>(&keys::callback_items(agentid), None, limit)?
            .into_iter()
            .map(|(_, i)| i)
            .collect(),
    )
}

/// Apps with a callback configured.
pub fn apps_with_callback<S: Store + ?Sized>(s: &S) -> Result<Vec<App>, StoreFault> {
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::APPS_WITH_CALLBACK, None, usize::MAX)? {
        let Some(id) = k
            .get(keys::APPS_WITH_CALLBACK.len()..)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
        else {
            continue;
        };
        if let Some(a) = app(s, id)? {
            out.push(a);
        }
    }
    Ok(out)
}

/// Pending leader-driven work: (id, item).
pub fn work<S: Store + ?Sized>(s: &S) -> Result<Vec<(u64, WorkItem)>, StoreFault> {
    Ok(s.scan_as::<WorkItem>(keys::WORK, None, usize::MAX)?
        .into_iter()
        .map(|(k, w)| (keys::tail_u64(&k), w))
        .collect())
}

pub fn job<S: Store + ?Sized>(s: &S, jobid: &str) -> Result<Option<Job>, StoreFault> {
    s.get_as(&keys::job(jobid))
}

/// Jobs not finished yet.
pub fn running_jobs<S: Store + ?Sized>(s: &S) -> Result<Vec<Job>, StoreFault> {
    Ok(s.scan_as::<Job>(keys::JOBS, None, usize::MAX)?
        .into_iter()
        .map(|(_, j)| j)
        .filter(|j| j.cursor != JobCursor::Done)
        .collect())
}

/// Every row result of a job, in order.
pub fn job_results<S: Store + ?Sized>(s: &S, jobid: &str) -> Result<Vec<RowResult>, StoreFault> {
    Ok(
        s.scan_as::<Vec<RowResult>>(&keys::job_results(jobid), None, usize::MAX)?
            .into_iter()
            .flat_map(|(_, r)| r)
            .collect(),
    )
}

pub fn media_meta<S: Store + ?Sized>(s: &S, id: &str) -> Result<Option<MediaMeta>, StoreFault> {
    s.get_as(&keys::media_meta(id))
}

/// The bytes of a sealed upload.
pub fn media_bytes<S: Store + ?Sized>(s: &S, meta: &MediaMeta) -> Result<Vec<u8>, StoreFault> {
    let mut out = Vec::with_capacity(meta.size as usize);
    for i in 0..meta.chunks {
        match s.get(&keys::media_chunk(&meta.media_id, i))? {
            Some(b) => out.extend_from_slice(&b),
            None => {
                return Err(StoreFault(format!(
                    "upload {} lacks chunk {i}",
                    meta.media_id
                )));
            }
        }
    }
    Ok(out)
}

/// The app that owns an app chat, by chatid.
pub fn app_chat_owner<S: Store + ?Sized>(s: &S, chatid: &str) -> Result<Option<u32>, StoreFault> {
    s.get_as(&keys::app_chat(&keys::chat_conv_id(chatid)))
}

// ---------------------------------------------------------------- files

pub fn file<S: Store + ?Sized>(
    s: &S,
    id: &str,
) -> Result<Option<crate::domain::BlobRecord>, StoreFault> {
    s.get_as(&keys::file(id))
}

/// Bytes of live files held by `uploader`.
pub fn file_usage<S: Store + ?Sized>(s: &S, uploader: &str) -> Result<u64, StoreFault> {
    Ok(s.get_as::<u64>(&keys::file_usage(uploader))?.unwrap_or(0))
}

pub fn file_policy<S: Store + ?Sized>(s: &S) -> Result<crate::domain::FilePolicy, StoreFault> {
    crate::domain::apply::files::file_policy(s)
}

/// The file if `userid` may read it: `NotFound` when there is no such
/// file (never recorded, recalled, past retention), `Forbidden` when it
/// exists but no conversation of theirs carries it.
pub fn file_for<S: Store + ?Sized>(
    s: &S,
    userid: &str,
    id: &str,
) -> Result<Result<crate::domain::BlobRecord, Refusal>, StoreFault> {
    let Some(f) = file(s, id)? else {
        return Ok(refuse(Code::NotFound, format!("no file {id:?}")));
    };
    if crate::domain::apply::files::may_read(s, userid, &f)? {
        Ok(Ok(f))
    } else {
        Ok(refuse(
            Code::Forbidden,
            format!("file {id:?} is not in any conversation of yours"),
        ))
    }
}

/// Recorded files and their bytes (the replicated view, same on every node).
pub fn file_totals<S: Store + ?Sized>(s: &S) -> Result<(u64, u64), StoreFault> {
    let (mut n, mut bytes) = (0u64, 0u64);
    s.visit_as::<crate::domain::BlobRecord>(keys::FILES, None, |_, f| {
        n += 1;
        bytes += f.size;
        Ok(true)
    })?;
    Ok((n, bytes))
}
