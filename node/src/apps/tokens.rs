//! App access tokens (`gettoken`): self-contained and signed with the
//! enterprise's token key from the replicated state, so any node checks a
//! token any node issued, with no write per token and nothing to lose in
//! a leader change.
//!
//! Layout (before base64url): version ‖ agentid ‖ generation ‖ expiry (ms)
//! ‖ 8 random bytes ‖ the first 16 bytes of HMAC-SHA256 over all of that.
//! A token stops working when it expires, when its app is disabled, or
//! when the app's secret is rotated (the generation moves on).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::hmac;
use ring::rand::SecureRandom;

use crate::domain::{App, Corp};

const VERSION: u8 = 1;
const BODY: usize = 1 + 4 + 4 + 8 + 8;
const MAC: usize = 16;

/// Why a token was refused (each has its own WeCom error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("malformed access_token")]
    Malformed,
    #[error("invalid access_token")]
    Invalid,
    #[error("access_token expired")]
    Expired,
    #[error("the app's secret was rotated: fetch a new access_token")]
    Rotated,
    #[error("the app is disabled")]
    Disabled,
}

/// The claims of a token whose signature checked out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claims {
    pub agentid: u32,
    pub generation: u32,
    pub expires_ms: u64,
}

fn key(corp: &Corp) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, &corp.token_key)
}

/// A fresh token for `app`, valid until `expires_ms`.
pub fn mint(corp: &Corp, app: &App, expires_ms: u64) -> String {
    let mut nonce = [0u8; 8];
    // Uniqueness only; the MAC is what protects the token.
    let _ = ring::rand::SystemRandom::new().fill(&mut nonce);
    mint_with(corp, app, expires_ms, nonce)
}

fn mint_with(corp: &Corp, app: &App, expires_ms: u64, nonce: [u8; 8]) -> String {
    let mut b = Vec::with_capacity(BODY + MAC);
    b.push(VERSION);
    b.extend_from_slice(&app.agentid.to_be_bytes());
    b.extend_from_slice(&app.generation.to_be_bytes());
    b.extend_from_slice(&expires_ms.to_be_bytes());
    b.extend_from_slice(&nonce);
    let tag = hmac::sign(&key(corp), &b);
    b.extend_from_slice(&tag.as_ref()[..MAC]);
    URL_SAFE_NO_PAD.encode(b)
}

/// Check the signature (in constant time) and read the claims. Whether
/// the app still accepts them is [`check`]'s business.
pub fn open(corp: &Corp, token: &str) -> Result<Claims, TokenError> {
    if token.len() > 128 {
        return Err(TokenError::Malformed);
    }
    let b = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| TokenError::Malformed)?;
    if b.len() != BODY + MAC || b.first() != Some(&VERSION) {
        return Err(TokenError::Malformed);
    }
    let (body, mac) = b.split_at(BODY);
    let full = hmac::sign(&key(corp), body);
    // Constant-time comparison of the truncated tag.
    let ok: bool = subtle::ConstantTimeEq::ct_eq(&full.as_ref()[..MAC], mac).into();
    if !ok {
        return Err(TokenError::Invalid);
    }
    let n = |r: std::ops::Range<usize>| body.get(r).unwrap_or_default();
    let u32_at = |r| u32::from_be_bytes(n(r).try_into().unwrap_or_default());
    Ok(Claims {
        agentid: u32_at(1..5),
        generation: u32_at(5..9),
        expires_ms: u64::from_be_bytes(n(9..17).try_into().unwrap_or_default()),
    })
}

/// Whether `app` (as the state has it now) accepts a token with `claims`.
pub fn check(app: &App, claims: &Claims, now_ms: u64) -> Result<(), TokenError> {
    if claims.agentid != app.agentid {
        return Err(TokenError::Invalid);
    }
    if !app.enabled {
        return Err(TokenError::Disabled);
    }
    if claims.generation != app.generation {
        return Err(TokenError::Rotated);
    }
    if claims.expires_ms <= now_ms {
        return Err(TokenError::Expired);
    }
    Ok(())
}

/// A new app secret: 32 random bytes, base64url (43 characters, like
/// WeCom's secrets), and its SHA-256 for the state.
pub fn new_secret() -> Option<(String, [u8; 32])> {
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    let secret = URL_SAFE_NO_PAD.encode(b);
    Some((secret.clone(), secret_hash(&secret)))
}

/// SHA-256 of a secret as given: what `appsec/` is keyed by. A secret is
/// 256 random bits, so a fast hash protects it as well as argon2 would.
pub fn secret_hash(secret: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref());
    out
}

/// A new enterprise identity (used only if the state has none yet).
pub fn new_corp() -> Option<Corp> {
    let rng = ring::rand::SystemRandom::new();
    let mut id = [0u8; 8];
    let mut token_key = [0u8; 32];
    rng.fill(&mut id).ok()?;
    rng.fill(&mut token_key).ok()?;
    Some(Corp {
        corpid: format!("ww{}", hex::encode(id)),
        token_key,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Scope;

    fn fixture() -> (Corp, App) {
        let corp = Corp {
            corpid: "ww0011223344556677".into(),
            token_key: [9; 32],
        };
        let app = App {
            agentid: 1_000_002,
            name: "HR".into(),
            scopes: vec![Scope::DirectoryRead],
            enabled: true,
            secret_hash: [1; 32],
            generation: 3,
            trusted_domains: vec![],
            callback: None,
            created_ms: 0,
        };
        (corp, app)
    }

    #[test]
    fn a_token_opens_only_with_its_key_and_unaltered() {
        let (corp, app) = fixture();
        let t = mint(&corp, &app, 10_000);
        let c = open(&corp, &t).expect("opens");
        assert_eq!(
            c,
            Claims {
                agentid: app.agentid,
                generation: 3,
                expires_ms: 10_000
            }
        );
        assert_eq!(check(&app, &c, 9_999), Ok(()));
        let mut other = corp.clone();
        other.token_key[0] ^= 1;
        assert_eq!(open(&other, &t), Err(TokenError::Invalid));
        // Flip each byte of the decoded token: never accepted.
        let raw = URL_SAFE_NO_PAD.decode(&t).expect("b64");
        for i in 0..raw.len() {
            let mut r = raw.clone();
            r[i] ^= 0x40;
            let bad = URL_SAFE_NO_PAD.encode(&r);
            assert!(open(&corp, &bad).is_err(), "byte {i}");
        }
        for junk in ["", "x", "!!!!", &"A".repeat(200)] {
            assert_eq!(open(&corp, junk), Err(TokenError::Malformed));
        }
    }

    #[test]
    fn expiry_disable_and_rotation_each_refuse() {
        let (corp, mut app) = fixture();
        let c = open(&corp, &mint_with(&corp, &app, 5_000, [0; 8])).expect("opens");
        assert_eq!(check(&app, &c, 5_000), Err(TokenError::Expired));
        app.generation += 1;
        assert_eq!(check(&app, &c, 1), Err(TokenError::Rotated));
        app.enabled = false;
        assert_eq!(check(&app, &c, 1), Err(TokenError::Disabled));
    }

    #[test]
    fn secrets_are_43_characters_and_hash_as_stored() {
        let (secret, hash) = new_secret().expect("randomness");
        assert_eq!(secret.len(), 43);
        assert_eq!(secret_hash(&secret), hash);
        let corp = new_corp().expect("randomness");
        assert_eq!(corp.corpid.len(), 18);
    }
}
