//! Login sessions and their revocation.

use super::*;

pub(super) fn drop_session<S: Store>(
    s: &mut Overlay<'_, S>,
    token_hash: &[u8; 32],
    sess: &Session,
) {
    s.delete(&keys::session(token_hash));
    s.delete(&keys::refresh(&sess.refresh_hash));
    s.delete(&keys::user_session(&sess.userid, token_hash));
}

/// Revoke every session of `userid` (but `keep`).
pub(super) fn revoke_sessions<S: Store>(
    s: &mut Overlay<'_, S>,
    userid: &str,
    keep: Option<&[u8; 32]>,
) -> Result<(), StoreFault> {
    let prefix = keys::user_sessions(userid);
    let all = s.scan(&prefix, None, usize::MAX)?;
    for (k, _) in all {
        let Ok(hash) = <[u8; 32]>::try_from(&k[prefix.len()..]) else {
            continue;
        };
        if keep == Some(&hash) {
            continue;
        }
        if let Some(sess) = s.get_as::<Session>(&keys::session(&hash))? {
            drop_session(s, &hash, &sess);
        } else {
            s.delete(&k);
        }
    }
    Ok(())
}

pub(super) fn login_succeeded<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    userid: &str,
    token_hash: &[u8; 32],
    refresh_hash: &[u8; 32],
) -> R<Done> {
    let _ = check!(super::external::active_party(s, userid, true));
    let mut acct: Account = s.get_as(&keys::account(userid))?.unwrap_or_default();
    // A lockout decided meanwhile (on another node) wins.
    ensure!(
        acct.locked_until_ms <= ctx.time_ms,
        Code::AccountLocked,
        "account {userid:?} is locked"
    );
    ensure!(
        s.get(&keys::session(token_hash))?.is_none(),
        Code::AlreadyExists,
        "session exists"
    );
    let policy = policy(s)?;
    acct.failed_logins = 0;
    s.put_as(&keys::account(userid), &acct)?;
    let sess = Session {
        userid: userid.to_string(),
        created_ms: ctx.time_ms,
        expires_ms: ctx.time_ms + policy.session_ttl_ms,
        refresh_hash: *refresh_hash,
        refresh_expires_ms: ctx.time_ms + policy.refresh_ttl_ms,
    };
    s.put_as(&keys::session(token_hash), &sess)?;
    s.put(&keys::refresh(refresh_hash), token_hash.to_vec());
    s.put(&keys::user_session(userid, token_hash), Vec::new());
    Ok(Ok(Done::Session {
        userid: userid.to_string(),
        expires_ms: sess.expires_ms,
        refresh_expires_ms: sess.refresh_expires_ms,
    }))
}

pub(super) fn login_failed<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, userid: &str) -> R<Done> {
    // Unknown users are not recorded: there is no account to lock.
    if s.get(&keys::user(userid))?.is_none() && s.get(&keys::external(userid))?.is_none() {
        return Ok(Ok(Done::Ok));
    }
    let policy = policy(s)?;
    let mut acct: Account = s.get_as(&keys::account(userid))?.unwrap_or_default();
    acct.failed_logins += 1;
    if acct.failed_logins >= policy.lockout_threshold {
        acct.locked_until_ms = ctx.time_ms + policy.lockout_ms;
        acct.failed_logins = 0;
    }
    s.put_as(&keys::account(userid), &acct)?;
    Ok(Ok(Done::Ok))
}

pub(super) fn refresh<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    refresh_hash: &[u8; 32],
    new_token: &[u8; 32],
    new_refresh: &[u8; 32],
) -> R<Done> {
    let Some(old_token) = s.get(&keys::refresh(refresh_hash))? else {
        return Ok(refuse(
            Code::Unauthenticated,
            "unknown or used refresh token",
        ));
    };
    let Ok(old_token) = <[u8; 32]>::try_from(old_token.as_slice()) else {
        return Err(StoreFault("malformed refresh record".into()));
    };
    let Some(sess) = s.get_as::<Session>(&keys::session(&old_token))? else {
        return Ok(refuse(Code::Unauthenticated, "session is gone"));
    };
    drop_session(s, &old_token, &sess);
    if sess.refresh_expires_ms <= ctx.time_ms {
        // Expired: the stale session is dropped, the refresh refused.
        return Ok(refuse(Code::Unauthenticated, "refresh token expired"));
    }
    login_succeeded(s, ctx, &sess.userid, new_token, new_refresh)
}
