//! Passwords (argon2id, checked off the async runtime) and bearer tokens
//! (random, stored only as SHA-256), shared by every face that logs a
//! member in.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use http::StatusCode;
use ring::rand::SecureRandom;

use super::ApiError;

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

/// Hash a password (argon2id, random salt) off the async runtime.
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
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
/// checked, so an unknown user takes as long as a wrong password.
pub async fn verify_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
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
    .unwrap_or(false)
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
