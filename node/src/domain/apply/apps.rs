//! Integrated apps: registration, changes, the checks every app-issued
//! command passes at apply, and one-time sign-in codes.

use super::*;

/// The first agentid handed out is one above this (WeCom's custom apps
/// start at 1000002).
const FIRST_AGENTID: u64 = 1_000_001;
/// Sign-in codes live five minutes.
pub const OAUTH_CODE_MS: u64 = 5 * 60 * 1000;

/// The app, which must exist, be enabled and hold `scope`.
pub(super) fn app_ok<S: Store>(s: &Overlay<'_, S>, agentid: u32, scope: Scope) -> R<App> {
    let Some(app) = s.get_as::<App>(&keys::app(agentid))? else {
        return Ok(refuse(Code::AppDisabled, format!("no app {agentid}")));
    };
    ensure!(
        app.enabled,
        Code::AppDisabled,
        "app {agentid} ({}) is disabled",
        app.name
    );
    ensure!(
        app.allows(scope),
        Code::ScopeDenied,
        "app {agentid} ({}) lacks the scope {}",
        app.name,
        scope.as_str()
    );
    Ok(Ok(app))
}

/// For a command an app issued (`ctx.app`): that app may do it.
pub(super) fn caller_may<S: Store>(s: &Overlay<'_, S>, ctx: &Ctx, scope: Scope) -> R<()> {
    if let Some(agentid) = ctx.app {
        let _ = check!(app_ok(s, agentid, scope));
    }
    Ok(Ok(()))
}

pub(super) fn corp<S: Store + ?Sized>(s: &S) -> Result<Option<Corp>, StoreFault> {
    s.get_as(keys::CORP)
}

fn valid_scopes(scopes: &[Scope]) -> Result<Vec<Scope>, Refusal> {
    let mut v = scopes.to_vec();
    v.sort();
    v.dedup();
    if v.is_empty() {
        return refuse(Code::InvalidArgument, "an app needs at least one scope");
    }
    Ok(v)
}

/// Trusted domains: `host` or `host:port`, lowercased, at most 10.
fn valid_domains(domains: &[String]) -> Result<Vec<String>, Refusal> {
    let mut out = Vec::new();
    for d in domains {
        let d = d.trim().to_lowercase();
        let ok = !d.is_empty()
            && d.len() <= 255
            && d.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !ok {
            return refuse(
                Code::InvalidArgument,
                format!("trusted domain {d:?} must be a host name or host:port"),
            );
        }
        out.push(d);
    }
    out.sort();
    out.dedup();
    if out.len() > 10 {
        return refuse(Code::LimitExceeded, "at most 10 trusted domains");
    }
    Ok(out)
}

/// A callback configuration's shape (reachability and the URL handshake
/// are checked by the receiving node before proposing).
pub fn valid_callback(c: &CallbackCfg) -> Result<(), Refusal> {
    if !c.url.starts_with("https://") || c.url.len() > 512 || c.url.chars().any(char::is_control) {
        return refuse(
            Code::InvalidArgument,
            "the callback URL must be https:// and at most 512 characters",
        );
    }
    if c.token.is_empty()
        || c.token.len() > 32
        || !c.token.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return refuse(
            Code::InvalidArgument,
            "the callback token must be 1-32 letters and digits",
        );
    }
    let b64 = |b: u8| b.is_ascii_alphanumeric() || b == b'+' || b == b'/';
    if c.aes_key.len() != 43 || !c.aes_key.bytes().all(b64) {
        return refuse(
            Code::InvalidArgument,
            "the EncodingAESKey must be 43 characters of base64",
        );
    }
    Ok(())
}

pub(super) fn create_app<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    name: &str,
    scopes: &[Scope],
    secret_hash: &[u8; 32],
    domains: &[String],
    seed: &Corp,
) -> R<Done> {
    valid!(valid_name(name, "app name"));
    let scopes = match valid_scopes(scopes) {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    let trusted_domains = match valid_domains(domains) {
        Ok(v) => v,
        Err(r) => return Ok(Err(r)),
    };
    ensure!(
        s.get(&keys::app_name(name))?.is_none(),
        Code::AlreadyExists,
        "an app named {name:?} exists"
    );
    ensure!(
        s.get(&keys::app_secret(secret_hash))?.is_none(),
        Code::AlreadyExists,
        "secret collision; try again"
    );
    if corp(s)?.is_none() {
        ensure!(
            seed.corpid.len() == 18 && seed.corpid.starts_with("ww"),
            Code::InvalidArgument,
            "corpid must be ww + 16 hex digits"
        );
        s.put_as(keys::CORP, seed)?;
    }
    let n = s.get_as::<u64>(keys::APP_CTR)?.unwrap_or(FIRST_AGENTID) + 1;
    let Ok(agentid) = u32::try_from(n) else {
        return Ok(refuse(Code::LimitExceeded, "no agentids left"));
    };
    s.put_as(keys::APP_CTR, &n)?;
    let app = App {
        agentid,
        name: name.to_string(),
        scopes,
        enabled: true,
        secret_hash: *secret_hash,
        generation: 1,
        trusted_domains,
        callback: None,
        created_ms: ctx.time_ms,
    };
    s.put_as(&keys::app(agentid), &app)?;
    s.put_as(&keys::app_secret(secret_hash), &agentid)?;
    s.put_as(&keys::app_name(name), &agentid)?;
    Ok(Ok(Done::App(app)))
}

pub(super) fn update_app<S: Store>(
    s: &mut Overlay<'_, S>,
    agentid: u32,
    change: &AppChange,
) -> R<Done> {
    let Some(mut app) = s.get_as::<App>(&keys::app(agentid))? else {
        return Ok(refuse(Code::NotFound, format!("no app {agentid}")));
    };
    match change {
        AppChange::Enable(on) => app.enabled = *on,
        AppChange::RotateSecret { secret_hash } => {
            ensure!(
                s.get(&keys::app_secret(secret_hash))?.is_none(),
                Code::AlreadyExists,
                "secret collision; try again"
            );
            s.delete(&keys::app_secret(&app.secret_hash));
            s.put_as(&keys::app_secret(secret_hash), &agentid)?;
            app.secret_hash = *secret_hash;
            app.generation += 1;
        }
        AppChange::SetScopes(scopes) => match valid_scopes(scopes) {
            Ok(v) => app.scopes = v,
            Err(r) => return Ok(Err(r)),
        },
        AppChange::SetTrustedDomains(d) => match valid_domains(d) {
            Ok(v) => app.trusted_domains = v,
            Err(r) => return Ok(Err(r)),
        },
        AppChange::SetCallback(Some(cb)) => {
            valid!(valid_callback(cb));
            app.callback = Some(cb.clone());
            s.put(&keys::app_with_callback(agentid), Vec::new());
        }
        AppChange::SetCallback(None) => {
            app.callback = None;
            s.delete(&keys::app_with_callback(agentid));
            // Nowhere to deliver to: what was queued is dropped.
            super::callbacks::clear_queue(s, agentid)?;
        }
    }
    s.put_as(&keys::app(agentid), &app)?;
    Ok(Ok(Done::App(app)))
}

pub(super) fn issue_oauth_code<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    code_hash: &[u8; 32],
    userid: &str,
    agentid: u32,
) -> R<Done> {
    let _ = check!(app_ok(s, agentid, Scope::OAuth));
    let _ = check!(active_member(s, userid, true));
    ensure!(
        s.get(&keys::oauth_code(code_hash))?.is_none(),
        Code::AlreadyExists,
        "code collision"
    );
    prune_oauth_codes(s, ctx)?;
    let expires_ms = ctx.time_ms + OAUTH_CODE_MS;
    s.put_as(
        &keys::oauth_code(code_hash),
        &OAuthCode {
            userid: userid.to_string(),
            agentid,
            expires_ms,
        },
    )?;
    s.put(&keys::oauth_expiry(expires_ms, code_hash), Vec::new());
    Ok(Ok(Done::Ok))
}

/// Drop codes that expired unredeemed (bounded per call, so pruning is
/// cheap and the same on every node).
fn prune_oauth_codes<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx) -> Result<(), StoreFault> {
    for (k, _) in s.scan(keys::OAUTH_EXPIRY, None, 64)? {
        let rest = &k[keys::OAUTH_EXPIRY.len()..];
        let (Some(at), Some(hash)) = (rest.get(..8), rest.get(8..)) else {
            continue;
        };
        let expires = u64::from_be_bytes(at.try_into().unwrap_or_default());
        if expires > ctx.time_ms {
            break;
        }
        if let Ok(hash) = <[u8; 32]>::try_from(hash) {
            s.delete(&keys::oauth_code(&hash));
        }
        s.delete(&k);
    }
    Ok(())
}

pub(super) fn redeem_oauth_code<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    code_hash: &[u8; 32],
    agentid: u32,
) -> R<Done> {
    let _ = check!(app_ok(s, agentid, Scope::OAuth));
    let key = keys::oauth_code(code_hash);
    let Some(code) = s.get_as::<OAuthCode>(&key)? else {
        return Ok(refuse(Code::NotFound, "unknown or used code"));
    };
    ensure!(
        code.agentid == agentid,
        Code::NotFound,
        "unknown or used code"
    );
    // An expired code is pruned later (a refusal writes nothing).
    ensure!(
        code.expires_ms > ctx.time_ms,
        Code::Expired,
        "the code has expired (codes are valid 5 minutes)"
    );
    let _ = check!(active_member(s, &code.userid, true));
    // Spent: a code works once.
    s.delete(&key);
    s.delete(&keys::oauth_expiry(code.expires_ms, code_hash));
    Ok(Ok(Done::OAuthUser {
        userid: code.userid,
    }))
}
