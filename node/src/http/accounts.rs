//! Passwords (argon2id, checked off the async runtime) and bearer tokens
//! (random, stored only as SHA-256), shared by every face that logs a
//! member in.

use std::net::IpAddr;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use http::StatusCode;
use ring::rand::SecureRandom;

use super::{ApiError, NodeState, now_ms, store_error, submit};
use crate::audit::Origin;
use crate::domain::{self, Command, Done, MemberStatus};

/// Shortest and longest password accepted.
pub const MIN_PASSWORD: usize = 8;
pub const MAX_PASSWORD: usize = 256;

fn argon() -> argon2::Argon2<'static> {
    // argon2id, OWASP's minimum: 19 MiB, 2 passes, 1 lane.
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(19 * 1024, 2, 1, None).unwrap_or_default(),
    )
}

pub fn check_password_rules(p: &str) -> Result<(), ApiError> {
    let n = p.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "weak_password",
            format!("a password has {MIN_PASSWORD}-{MAX_PASSWORD} characters"),
        ));
    }
    Ok(())
}

/// Hash a password (argon2id, random salt) off the async runtime, in one
/// of the node's bounded hashing slots.
pub async fn hash_password(state: &NodeState, password: String) -> Result<String, ApiError> {
    crate::http::admission::latency::not_a_sample();
    let slot = state.admission.hashing().await?;
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut salt = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| "no randomness".to_string())?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
        argon()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r)
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "hash_failed", e))
}

/// Verify off the async runtime. Without a stored hash a dummy one is
/// checked, so an unknown user takes as long as a wrong password. Refused
/// (503 `overloaded`) when the node's hashing slots and queue are full.
pub async fn verify_password(
    state: &NodeState,
    password: String,
    hash: Option<String>,
) -> Result<bool, ApiError> {
    crate::http::admission::latency::not_a_sample();
    let slot = state.admission.hashing().await?;
    Ok(tokio::task::spawn_blocking(move || {
        let _slot = slot;
        static DUMMY: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
        let dummy = DUMMY.get_or_init(|| {
            let salt = SaltString::encode_b64(b"enclave-dummy-salt").ok()?;
            argon()
                .hash_password(b"not a password", &salt)
                .map(|h| h.to_string())
                .ok()
        });
        let (stored, real) = match &hash {
            Some(h) => (h.as_str(), true),
            None => (dummy.as_deref().unwrap_or(""), false),
        };
        let ok = PasswordHash::new(stored)
            .map(|h| argon().verify_password(password.as_bytes(), &h).is_ok())
            .unwrap_or(false);
        ok && real
    })
    .await
    .unwrap_or(false))
}

pub fn new_token(prefix: &str) -> String {
    let mut b = [0u8; 32];
    // SystemRandom only fails if the OS has no randomness: refuse then.
    if ring::rand::SystemRandom::new().fill(&mut b).is_err() {
        std::process::abort();
    }
    format!("{prefix}{}", hex::encode(b))
}

/// SHA-256 of a bearer token: what the state stores and looks up.
pub fn token_hash(token: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn invalid_credentials() -> ApiError {
    ApiError::unauthenticated("wrong userid or password")
}

/// A member's new session: the bearer token pair (shown once) and facts.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub userid: String,
    pub access: String,
    pub refresh: String,
    pub expires_ms: u64,
    pub refresh_expires_ms: u64,
    /// An administrator set the password: it must be changed first.
    pub must_change: bool,
}

/// Make a fresh token pair and commit the session `command(access_hash,
/// refresh_hash)` opens. Used by login, refresh and the sign-in page.
pub async fn open_session(
    state: &NodeState,
    origin: &Origin,
    command: impl FnOnce([u8; 32], [u8; 32]) -> Command,
) -> Result<Tokens, ApiError> {
    let access = new_token("eat_");
    let refresh = new_token("ert_");
    let done = submit(
        state,
        origin,
        &command(token_hash(&access), token_hash(&refresh)),
        None,
    )
    .await?;
    let Done::Session {
        userid,
        expires_ms,
        refresh_expires_ms,
    } = done
    else {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected",
            "unexpected outcome",
        ));
    };
    let must_change = domain::query::account(&state.view(), &userid)
        .map_err(store_error)?
        .is_some_and(|a| a.must_change);
    Ok(Tokens {
        userid,
        access,
        refresh,
        expires_ms,
        refresh_expires_ms,
        must_change,
    })
}

/// Check a member's password and open a session: failed attempts count
/// per source address and per account (lockout, replicated), and every
/// attempt is audited. Used by `POST /v1/login` and the sign-in page of
/// integrated web apps.
pub async fn password_login(
    state: &NodeState,
    origin: &Origin,
    ip: IpAddr,
    userid: &str,
    password: String,
) -> Result<Tokens, ApiError> {
    state.limits.check_source(ip)?;
    if domain::apply::valid_userid(userid).is_err() || password.len() > 1024 {
        state.limits.record_failure(ip);
        return Err(invalid_credentials());
    }
    let view = state.view();
    // A member or an external account: both sign in here.
    let member = domain::external::party(&view, userid)
        .map_err(store_error)?
        .map(|(m, _)| m);
    let account = domain::query::account(&view, userid).map_err(store_error)?;
    if let Some(a) = &account
        && a.locked_until_ms > now_ms()
    {
        return Err(ApiError::new(
            StatusCode::LOCKED,
            "account_locked",
            format!(
                "too many failed logins; the account is locked for {} more s (an administrator can unlock it)",
                (a.locked_until_ms - now_ms()).div_ceil(1000)
            ),
        ));
    }
    let hash = account.and_then(|a| a.password_hash);
    if !verify_password(state, password, hash).await? {
        state.limits.record_failure(ip);
        if member.is_some() {
            submit(
                state,
                origin,
                &Command::LoginFailed {
                    userid: userid.to_string(),
                },
                None,
            )
            .await?;
        }
        tracing::info!(%userid, source = %ip, "login failed");
        return Err(invalid_credentials());
    }
    match member.map(|m| m.status) {
        Some(MemberStatus::Active) => {}
        _ => {
            // The right password for an account that may not sign in:
            // recorded, like every other refused login.
            super::submit::record(
                state,
                origin,
                "auth.login",
                userid,
                "refused:account_inactive",
            )
            .await;
            tracing::info!(%userid, source = %ip, "login refused: account inactive");
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "account_inactive",
                "this account is disabled or has departed",
            ));
        }
    }
    let uid = userid.to_string();
    let out = open_session(state, origin, |token_hash, refresh_hash| {
        Command::LoginSucceeded {
            userid: uid,
            token_hash,
            refresh_hash,
        }
    })
    .await;
    if out.is_ok() {
        tracing::info!(%userid, source = %ip, "login succeeded");
    }
    out
}
