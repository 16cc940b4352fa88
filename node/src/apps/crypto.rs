//! WeCom callback message encryption ("WXBizMsgCrypt"), byte-compatible with
//! WeCom and wechatpy so that integrations written against WeCom accept what
//! we send and we can read what they reply.
//!
//! The scheme is fixed by WeCom, not chosen by us: AES-256-CBC with the IV
//! taken from the key, PKCS#7 padded to 32 bytes, no MAC; integrity comes only
//! from the SHA-1 `msg_signature` over token, timestamp, nonce and ciphertext.
//! Callers must therefore verify the signature before trusting a decryption.

use aes::Aes256;
use base64::Engine as _;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ring::rand::{SecureRandom, SystemRandom};
use subtle::ConstantTimeEq;

/// WeCom pads to 32 bytes, not to the AES block size.
const PAD_BLOCK: usize = 32;
/// Length of an EncodingAESKey as WeCom shows it (base64 of 32 bytes, no `=`).
const KEY_CHARS: usize = 43;

/// WeCom generates EncodingAESKeys as 43 arbitrary base64 characters, so the
/// two spare bits of the last one are often non-zero; Python's decoder ignores
/// them and so must we, or real keys from the WeCom console would be refused.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Everything that can be wrong with keys, tokens or ciphertexts; messages
/// name the problem so an operator pasting a key sees what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("EncodingAESKey must be {KEY_CHARS} characters (base64 without '='), got {0}")]
    KeyLength(usize),
    #[error("EncodingAESKey is not base64 (only A-Z, a-z, 0-9, '+' and '/' are allowed)")]
    KeyNotBase64,
    #[error("callback Token must be 1-32 ASCII letters or digits")]
    InvalidToken,
    #[error("encrypted message is not valid base64")]
    CiphertextNotBase64,
    #[error("encrypted message length {0} is not a non-zero multiple of 16 bytes")]
    CiphertextLength(usize),
    #[error("bad padding after decryption (wrong EncodingAESKey?)")]
    Padding,
    #[error("decrypted message is too short to hold the random prefix and length")]
    Truncated,
    #[error("decrypted length field {declared} exceeds the {available} bytes present")]
    LengthField { declared: usize, available: usize },
    #[error("receive id in the decrypted message is not UTF-8")]
    ReceiveIdNotUtf8,
    #[error("message was encrypted for receive id {0:?}, not for us")]
    ReceiveIdMismatch(String),
    #[error("msg_signature does not match")]
    Signature,
    #[error("system random number generator failed")]
    Random,
}

/// A decoded EncodingAESKey. `Debug` is redacted so keys never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct AesKey([u8; 32]);

impl std::fmt::Debug for AesKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AesKey(..)")
    }
}

impl AesKey {
    /// Parses the 43-character EncodingAESKey the way WeCom does:
    /// `base64decode(key + "=")`.
    pub fn parse(encoding: &str) -> Result<Self, CryptoError> {
        let chars = encoding.chars().count();
        if chars != KEY_CHARS {
            return Err(CryptoError::KeyLength(chars));
        }
        let raw = KEY_ENGINE
            .decode(format!("{encoding}="))
            .map_err(|_| CryptoError::KeyNotBase64)?;
        raw.try_into()
            .map(Self)
            .map_err(|_| CryptoError::KeyNotBase64)
    }

    /// The 43-character form, as entered into integrations' configuration.
    pub fn encoding(&self) -> String {
        STANDARD.encode(self.0).trim_end_matches('=').to_owned()
    }

    /// WeCom derives the CBC IV from the key rather than sending one.
    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.0[..16]);
        iv
    }
}

fn random<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    SystemRandom::new()
        .fill(&mut out)
        .map_err(|_| CryptoError::Random)?;
    Ok(out)
}

/// A fresh random EncodingAESKey (43 characters), for provisioning a callback.
pub fn generate_aes_key() -> Result<String, CryptoError> {
    Ok(AesKey(random()?).encoding())
}

/// WeCom's rule for a callback Token: 1–32 ASCII letters or digits.
pub fn valid_token(token: &str) -> bool {
    (1..=32).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A random 16-byte prefix for [`encrypt`]: ASCII alphanumerics, as WeCom and
/// wechatpy use, in case a receiver treats the prefix as text.
pub fn random_prefix() -> Result<[u8; 16], CryptoError> {
    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut prefix = Vec::with_capacity(32);
    while prefix.len() < 16 {
        // Rejection sampling (248 = 4 * 62) keeps the choice unbiased.
        let fresh = random::<32>()?.into_iter().filter(|&b| b < 248);
        prefix.extend(fresh.filter_map(|b| ALNUM.get(usize::from(b) % 62)));
    }
    let mut out = [0u8; 16];
    out.iter_mut().zip(prefix).for_each(|(o, p)| *o = p);
    Ok(out)
}

/// Encrypts `msg` for `receive_id` (the corpid). The caller supplies the
/// random prefix so that output is reproducible in tests.
pub fn encrypt(key: &AesKey, random16: [u8; 16], msg: &[u8], receive_id: &str) -> String {
    let body_len = 16 + 4 + msg.len() + receive_id.len();
    let pad = PAD_BLOCK - body_len % PAD_BLOCK;
    let mut buf = Vec::with_capacity(body_len + pad);
    buf.extend_from_slice(&random16);
    // WeCom messages are far below 4 GiB; saturate rather than wrap if not.
    buf.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
    buf.extend_from_slice(msg);
    buf.extend_from_slice(receive_id.as_bytes());
    // `pad` is 1..=32 so it always fits in a byte.
    buf.resize(body_len + pad, pad as u8);
    cbc_encrypt(key, &buf)
}

/// Encrypts block-aligned `plain` with no further padding, then base64.
fn cbc_encrypt(key: &AesKey, plain: &[u8]) -> String {
    let cipher = cbc::Encryptor::<Aes256>::new(&key.0.into(), &key.iv().into());
    STANDARD.encode(cipher.encrypt_padded_vec_mut::<NoPadding>(plain))
}

/// [`encrypt`] with a prefix drawn from the system RNG.
pub fn encrypt_random(key: &AesKey, msg: &[u8], receive_id: &str) -> Result<String, CryptoError> {
    Ok(encrypt(key, random_prefix()?, msg, receive_id))
}

/// Decrypts a base64 `Encrypt` value into `(msg, receive_id)`. The receive id
/// is returned, not checked, so callers compare it with the corpid they expect.
/// Every malformed input yields an error, never a panic.
pub fn decrypt(key: &AesKey, b64: &str) -> Result<(Vec<u8>, String), CryptoError> {
    let mut buf = STANDARD
        .decode(b64)
        .map_err(|_| CryptoError::CiphertextNotBase64)?;
    let len = buf.len();
    if len == 0 || len % 16 != 0 {
        return Err(CryptoError::CiphertextLength(len));
    }
    let cipher = cbc::Decryptor::<Aes256>::new(&key.0.into(), &key.iv().into());
    let plain = cipher
        .decrypt_padded_mut::<NoPadding>(&mut buf)
        .map_err(|_| CryptoError::CiphertextLength(len))?;
    let pad = usize::from(*plain.last().ok_or(CryptoError::Padding)?);
    let unpadded_len = plain.len().checked_sub(pad).ok_or(CryptoError::Padding)?;
    let (unpadded, padding) = plain.split_at(unpadded_len);
    // Checking every pad byte turns most wrong-key decryptions into errors.
    if !(1..=PAD_BLOCK).contains(&pad) || padding.iter().any(|&b| usize::from(b) != pad) {
        return Err(CryptoError::Padding);
    }
    let body = unpadded.get(16..).ok_or(CryptoError::Truncated)?;
    let (len_field, rest) = body
        .split_first_chunk::<4>()
        .ok_or(CryptoError::Truncated)?;
    let declared = usize::try_from(u32::from_be_bytes(*len_field)).unwrap_or(usize::MAX);
    if declared > rest.len() {
        let available = rest.len();
        return Err(CryptoError::LengthField {
            declared,
            available,
        });
    }
    let (msg, receive_id) = rest.split_at(declared);
    let receive_id =
        String::from_utf8(receive_id.to_vec()).map_err(|_| CryptoError::ReceiveIdNotUtf8)?;
    Ok((msg.to_vec(), receive_id))
}

/// WeCom's `msg_signature`: SHA-1 hex of the four strings sorted bytewise and
/// concatenated.
pub fn msg_signature(token: &str, timestamp: &str, nonce: &str, encrypt: &str) -> String {
    let mut parts = [token, timestamp, nonce, encrypt];
    parts.sort_unstable();
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        parts.concat().as_bytes(),
    );
    hex::encode(digest.as_ref())
}

/// Checks a received `msg_signature` in constant time, so the comparison does
/// not leak how many leading characters of a forgery were right.
pub fn verify_signature(
    token: &str,
    timestamp: &str,
    nonce: &str,
    encrypt: &str,
    given: &str,
) -> bool {
    let expected = msg_signature(token, timestamp, nonce, encrypt);
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// A CDATA section holding `s` exactly: any `]]>` inside is split across two
/// sections, so caller text can never close the section early.
pub fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// The encrypted XML envelope, in the layout WeCom uses.
pub fn envelope(encrypt: &str, signature: &str, timestamp: u64, nonce: &str) -> String {
    format!(
        "<xml><Encrypt>{}</Encrypt><MsgSignature>{}</MsgSignature><TimeStamp>{timestamp}</TimeStamp><Nonce>{}</Nonce></xml>",
        cdata(encrypt),
        cdata(signature),
        cdata(nonce)
    )
}

/// Percent-encodes everything outside RFC 3986's unreserved set; base64's
/// `+`, `/` and `=` would otherwise be mangled by query parsers.
fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A sealed callback: the POST body and the query string (WeCom signs over the
/// query's `msg_signature`, `timestamp` and `nonce`, receivers check those).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub body: String,
    pub query: String,
}

/// The URL-verification handshake: GET `url?{query}`; a correct receiver
/// answers with exactly `expected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub query: String,
    pub expected: String,
}

/// One callback configuration (Token, EncodingAESKey, corpid): seals outgoing
/// callbacks and opens receivers' encrypted replies.
#[derive(Debug, Clone)]
pub struct Sealer {
    token: String,
    key: AesKey,
    corp_id: String,
}

impl Sealer {
    /// Checks the Token up front so a bad configuration fails at setup, not
    /// at the first delivery.
    pub fn new(token: &str, key: AesKey, corp_id: &str) -> Result<Self, CryptoError> {
        if !valid_token(token) {
            return Err(CryptoError::InvalidToken);
        }
        Ok(Self {
            token: token.to_owned(),
            key,
            corp_id: corp_id.to_owned(),
        })
    }

    /// The signature over `encrypt` and the query string carrying it.
    fn sign(&self, encrypt: &str, timestamp: u64, nonce: &str) -> (String, String) {
        let ts = timestamp.to_string();
        let sig = msg_signature(&self.token, &ts, nonce, encrypt);
        let query = format!("msg_signature={sig}&timestamp={ts}&nonce={}", pct(nonce));
        (sig, query)
    }

    /// Seals `xml` with a caller-chosen prefix (deterministic, for tests).
    pub fn seal_with(&self, random16: [u8; 16], xml: &str, timestamp: u64, nonce: &str) -> Sealed {
        let enc = encrypt(&self.key, random16, xml.as_bytes(), &self.corp_id);
        let (sig, query) = self.sign(&enc, timestamp, nonce);
        let body = envelope(&enc, &sig, timestamp, nonce);
        Sealed { body, query }
    }

    /// Seals a plaintext XML callback into a signed envelope.
    pub fn seal(&self, xml: &str, timestamp: u64, nonce: &str) -> Result<Sealed, CryptoError> {
        Ok(self.seal_with(random_prefix()?, xml, timestamp, nonce))
    }

    /// Verifies and decrypts an `Encrypt` value addressed to our corpid.
    pub fn open(
        &self,
        encrypt: &str,
        signature: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<Vec<u8>, CryptoError> {
        if !verify_signature(&self.token, timestamp, nonce, encrypt, signature) {
            return Err(CryptoError::Signature);
        }
        let (msg, receive_id) = decrypt(&self.key, encrypt)?;
        if receive_id != self.corp_id {
            return Err(CryptoError::ReceiveIdMismatch(receive_id));
        }
        Ok(msg)
    }

    /// The handshake for a caller-chosen prefix and echo text.
    pub fn verification_with(
        &self,
        random16: [u8; 16],
        echo: &str,
        timestamp: u64,
        nonce: &str,
    ) -> Verification {
        let echostr = encrypt(&self.key, random16, echo.as_bytes(), &self.corp_id);
        let (_, query) = self.sign(&echostr, timestamp, nonce);
        let query = format!("{query}&echostr={}", pct(&echostr));
        Verification {
            query,
            expected: echo.to_owned(),
        }
    }

    /// The URL-verification handshake with a fresh random echo text (digits,
    /// like WeCom's).
    pub fn verification(&self, timestamp: u64, nonce: &str) -> Result<Verification, CryptoError> {
        let echo = u64::from_be_bytes(random()?).to_string();
        Ok(self.verification_with(random_prefix()?, &echo, timestamp, nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use CryptoError as E;

    // WeCom's own published sample configuration.
    const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
    const KEY_HEX: &str = "8d69989bbaabe67328014c194631ad0719b3dca035b64023df292447aab60760";
    const TOKEN: &str = "QDG6eK";
    const CORP: &str = "wx5823bf96d3bd56c7";

    fn key() -> AesKey {
        AesKey::parse(KEY).expect("sample key")
    }

    #[test]
    fn keys_and_tokens() {
        assert_eq!(hex::encode(key().0), KEY_HEX);
        assert_eq!(AesKey::parse(&KEY[..42]), Err(E::KeyLength(42)));
        assert_eq!(AesKey::parse(&format!("{KEY}=")), Err(E::KeyLength(44)));
        for bad in ["!", "é", "="] {
            let parsed = AesKey::parse(&format!("{}{bad}", &KEY[..42]));
            assert_eq!(parsed, Err(E::KeyNotBase64));
        }
        let fresh = generate_aes_key().expect("rng");
        assert_eq!(AesKey::parse(&fresh).expect("fresh").encoding(), fresh);
        assert_ne!(fresh, generate_aes_key().expect("rng"));
        assert_eq!(format!("{:?}", key()), "AesKey(..)");
        assert!(valid_token(TOKEN) && valid_token(&"a".repeat(32)));
        assert!(!valid_token("") && !valid_token(&"a".repeat(33)) && !valid_token("a-b"));
        assert_eq!(Sealer::new("a b", key(), CORP).err(), Some(E::InvalidToken));
    }

    // wechatpy 1.8.18 `enterprise.crypto.PrpCrypto().encrypt(msg, CORP)` with
    // `get_random_string` fixed to "aaaabbbbccccdddd". The last one has a
    // whole 32-byte block of padding (16 + 4 + 26 + 18 = 64).
    const MSGS: [&str; 5] = [
        "<xml><Content><![CDATA[hello]]></Content></xml>",
        "",
        "xxxxxxxxxx",
        "企业微信 ✓ <xml/>",
        "yyyyyyyyyyyyyyyyyyyyyyyyyy",
    ];
    const B64S: [&str; 5] = [
        "ZA4HuQypHxnRrA+A6SOHGK8QUXVPs8FZkkRWXEqtKKfq22rXDPTcc/x3bSmjqRjfO2H2dBgB/VH46++idEDXerdjiucL5hAn39mAoEdw5kYOkXp+9mQ0mpRAcwZ68qqw",
        "ZA4HuQypHxnRrA+A6SOHGL4m235ZCN1+Jv+aZ2kyu/rN3XE1k18dKRFj4YPZDobZHzL5ah1o0U98CpJT0i4GWQ==",
        "ZA4HuQypHxnRrA+A6SOHGPNos+YHNcLDdPfCxzNRSgiiDATKMJfdYgCyfHD1GNF6m6QtXYIEZQVBIfD7Fw0zDg==",
        "ZA4HuQypHxnRrA+A6SOHGI8+aIIbhY31tJZEhM5NNxlV78MHLgm7xB3m3bkGJtOMp2CufDw9nRfR/MvTaQT/fA==",
        "ZA4HuQypHxnRrA+A6SOHGCEb7vVh+A5iaLf1MIQVOpTu3XFRl1OCAfo1PibvCHDgDh7V3VgBYNsmHGKMtckuDWji+0Gaesh1f+tD8K5kTm4m5lESHBXUhYdULd/Et1VQ",
    ];

    #[test]
    fn matches_wechatpy() {
        for (msg, b64) in MSGS.iter().zip(B64S) {
            let ours = encrypt(&key(), *b"aaaabbbbccccdddd", msg.as_bytes(), CORP);
            assert_eq!(ours, b64);
            let (plain, rid) = decrypt(&key(), b64).expect("decrypt");
            assert_eq!((plain.as_slice(), rid.as_str()), (msg.as_bytes(), CORP));
        }
        let sig = msg_signature(TOKEN, "1409659813", "1372623149", "abc+/=");
        assert_eq!(sig, "948a76324e9d25210e2e26515fcd6e3169b2220f");
        // wechatpy `WeChatCrypto.encrypt_message(xml, nonce, timestamp)` with
        // prefix "0123456789abcdef" (it puts newlines between elements).
        let xml = "<xml><ToUserName><![CDATA[zhangsan]]></ToUserName></xml>";
        let sealer = Sealer::new(TOKEN, key(), CORP).expect("sealer");
        let sealed = sealer.seal_with(*b"0123456789abcdef", xml, 1409659813, "1372623149");
        let enc = "sKqRbbiSUnDhFHOvPjtUMcLOqnucrjeBSWtQpw9hILD+jbGzo6A5xJ5QzCUN7URooY8xZ1pDXyyhWx1tVaBJn2WY/ADIT9+wNXSs6WV2O7DWmiVubpREEQcSvZqfu4go";
        let sig = "82e89dd9852409213d4c3018e7d526e49193a337";
        let body = format!(
            "<xml><Encrypt><![CDATA[{enc}]]></Encrypt><MsgSignature><![CDATA[{sig}]]></MsgSignature><TimeStamp>1409659813</TimeStamp><Nonce><![CDATA[1372623149]]></Nonce></xml>"
        );
        assert_eq!(sealed.body, body);
        let query = format!("msg_signature={sig}&timestamp=1409659813&nonce=1372623149");
        assert_eq!(sealed.query, query);
        assert_eq!(
            sealer
                .open(enc, sig, "1409659813", "1372623149")
                .expect("open"),
            xml.as_bytes()
        );
    }

    #[test]
    fn url_verification() {
        // WeCom's published sample request; wechatpy's check_signature agrees.
        let echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==";
        let sig = "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3";
        let sealer = Sealer::new(TOKEN, key(), CORP).expect("sealer");
        let opened = sealer.open(echostr, sig, "1409659589", "263014780");
        assert_eq!(opened.expect("open"), b"1616140317555161061");
        let forged = sealer.open(echostr, &sig.replace('5', "6"), "1409659589", "263014780");
        assert_eq!(forged, Err(E::Signature));
        // wechatpy's check_signature on these (parse_qs'd) parameters returns
        // "1616140317555161061".
        let v = sealer.verification_with(
            *b"0123456789abcdef",
            "1616140317555161061",
            1409659589,
            "263014780",
        );
        assert_eq!(
            v.query,
            "msg_signature=78c387407a9d2cf24bd3f04727d28ac889d8d014&timestamp=1409659589&nonce=263014780&echostr=sKqRbbiSUnDhFHOvPjtUMWzf2R8PrpMiTTPaicBgqZlYW%2FWsF6SiFd2z9CriX2YpWYzF1yrNNQ0SomM3ovdnfA%3D%3D"
        );
        let fresh = sealer.verification(1, "n o+").expect("rng");
        let echo = fresh.query.rsplit_once("echostr=").expect("echostr").1;
        let echo = echo
            .replace("%2B", "+")
            .replace("%2F", "/")
            .replace("%3D", "=");
        assert_eq!(
            decrypt(&key(), &echo).expect("decrypt").0,
            fresh.expected.as_bytes()
        );
        assert!(fresh.query.contains("&nonce=n%20o%2B&"));
    }

    #[test]
    fn wrong_receiver_or_key_is_detectable() {
        let b64 = encrypt_random(&key(), b"<xml/>", "other-corp").expect("rng");
        assert_eq!(decrypt(&key(), &b64).expect("decrypt").1, "other-corp");
        let sig = msg_signature(TOKEN, "1", "2", &b64);
        let sealer = Sealer::new(TOKEN, key(), CORP).expect("sealer");
        let opened = sealer.open(&b64, &sig, "1", "2");
        assert_eq!(opened, Err(E::ReceiveIdMismatch("other-corp".into())));
        let other = AesKey::parse(&generate_aes_key().expect("rng")).expect("key");
        assert!(decrypt(&other, &b64).is_err());
    }

    #[test]
    fn hostile_inputs_are_errors() {
        let k = key();
        assert_eq!(decrypt(&k, "not base64!"), Err(E::CiphertextNotBase64));
        assert_eq!(decrypt(&k, ""), Err(E::CiphertextLength(0)));
        let short = STANDARD.encode([0u8; 15]);
        assert_eq!(decrypt(&k, &short), Err(E::CiphertextLength(15)));
        // Well-encrypted but malformed plaintexts: (prefix, filler to 32).
        let crafted = |head: &[u8], fill: u8| {
            let mut plain = head.to_vec();
            plain.resize(32, fill);
            decrypt(&k, &cbc_encrypt(&k, &plain))
        };
        let declared = usize::try_from(u32::MAX).expect("64-bit");
        let huge = crafted(&[b"0123456789abcdef".as_slice(), &[0xff; 4]].concat(), 12);
        assert_eq!(
            huge,
            Err(E::LengthField {
                declared,
                available: 0
            })
        );
        assert_eq!(crafted(b"", 0), Err(E::Padding));
        assert_eq!(crafted(b"", 33), Err(E::Padding));
        assert_eq!(crafted(&[b'r'; 28], 5), Err(E::Padding));
        assert_eq!(crafted(b"", 32), Err(E::Truncated));
        assert_eq!(crafted(&[b'r'; 19], 13), Err(E::Truncated));
        let bad_id = [b"0123456789abcdef".as_slice(), &[0, 0, 0, 0, 0xff]].concat();
        assert_eq!(crafted(&bad_id, 11), Err(E::ReceiveIdNotUtf8));
        // Truncations and bit flips of a real message never panic.
        let good = STANDARD.decode(B64S[0]).expect("b64");
        for i in 0..good.len() {
            let _ = decrypt(&k, &STANDARD.encode(&good[..i]));
            let mut flipped = good.clone();
            flipped[i] ^= 0x80;
            let _ = decrypt(&k, &STANDARD.encode(&flipped));
        }
    }

    #[test]
    fn cdata_and_query_escaping() {
        assert_eq!(cdata("a]]>b"), "<![CDATA[a]]]]><![CDATA[>b]]>");
        assert_eq!(
            cdata("]]>]]>"),
            "<![CDATA[]]]]><![CDATA[>]]]]><![CDATA[>]]>"
        );
        assert_eq!(pct("a+/= b~-_.é"), "a%2B%2F%3D%20b~-_.%C3%A9");
    }
}
