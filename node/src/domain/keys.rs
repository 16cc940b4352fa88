//! Key layout of the domain's records (all under the application prefix).
//!
//! `cfg` policy · `ctr/event`, `ctr/group` counters ·
//! `dept/<id>` · `deptc/<parent><id>` children · `deptm/<dept><userid>` members ·
//! `user/<userid>` · `uname/<lowercased name>\0<userid>` name index ·
//! `acct/<userid>` · `sess/<token sha256>` · `rsess/<refresh sha256>` ·
//! `usess/<userid>\0<token sha256>` · `conv/<id>` · `cm/<conv>\0<userid>` ·
//! `uc/<userid>\0<conv>` · `msg/<conv>\0<seq>` · `ev/<conv>\0<event>`.
//! Numbers are big-endian so keys sort numerically.

pub const POLICY: &[u8] = b"cfg";
pub const EVENT_CTR: &[u8] = b"ctr/event";
pub const GROUP_CTR: &[u8] = b"ctr/group";

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

pub fn dept(id: u64) -> Vec<u8> {
    cat(&[b"dept/", &id.to_be_bytes()])
}
pub fn dept_child(parent: u64, id: u64) -> Vec<u8> {
    cat(&[b"deptc/", &parent.to_be_bytes(), &id.to_be_bytes()])
}
pub fn dept_children(parent: u64) -> Vec<u8> {
    cat(&[b"deptc/", &parent.to_be_bytes()])
}
pub fn dept_member(dept: u64, userid: &str) -> Vec<u8> {
    cat(&[b"deptm/", &dept.to_be_bytes(), userid.as_bytes()])
}
pub fn dept_members(dept: u64) -> Vec<u8> {
    cat(&[b"deptm/", &dept.to_be_bytes()])
}
pub fn user(userid: &str) -> Vec<u8> {
    cat(&[b"user/", userid.as_bytes()])
}
pub const USERS: &[u8] = b"user/";
pub fn name_index(name: &str, userid: &str) -> Vec<u8> {
    cat(&[
        b"uname/",
        name.to_lowercase().as_bytes(),
        b"\0",
        userid.as_bytes(),
    ])
}
pub fn name_prefix(prefix: &str) -> Vec<u8> {
    cat(&[b"uname/", prefix.to_lowercase().as_bytes()])
}
pub fn account(userid: &str) -> Vec<u8> {
    cat(&[b"acct/", userid.as_bytes()])
}
pub fn session(token_hash: &[u8; 32]) -> Vec<u8> {
    cat(&[b"sess/", token_hash])
}
pub fn refresh(refresh_hash: &[u8; 32]) -> Vec<u8> {
    cat(&[b"rsess/", refresh_hash])
}
pub fn user_session(userid: &str, token_hash: &[u8; 32]) -> Vec<u8> {
    cat(&[b"usess/", userid.as_bytes(), b"\0", token_hash])
}
pub fn user_sessions(userid: &str) -> Vec<u8> {
    cat(&[b"usess/", userid.as_bytes(), b"\0"])
}
pub fn conv(id: &str) -> Vec<u8> {
    cat(&[b"conv/", id.as_bytes()])
}
pub fn conv_member(conv: &str, userid: &str) -> Vec<u8> {
    cat(&[b"cm/", conv.as_bytes(), b"\0", userid.as_bytes()])
}
pub fn conv_members(conv: &str) -> Vec<u8> {
    cat(&[b"cm/", conv.as_bytes(), b"\0"])
}
pub fn user_conv(userid: &str, conv: &str) -> Vec<u8> {
    cat(&[b"uc/", userid.as_bytes(), b"\0", conv.as_bytes()])
}
pub fn user_convs(userid: &str) -> Vec<u8> {
    cat(&[b"uc/", userid.as_bytes(), b"\0"])
}
pub fn message(conv: &str, seq: u64) -> Vec<u8> {
    cat(&[b"msg/", conv.as_bytes(), b"\0", &seq.to_be_bytes()])
}
pub fn messages(conv: &str) -> Vec<u8> {
    cat(&[b"msg/", conv.as_bytes(), b"\0"])
}
pub fn event(conv: &str, no: u64) -> Vec<u8> {
    cat(&[b"ev/", conv.as_bytes(), b"\0", &no.to_be_bytes()])
}
pub fn events(conv: &str) -> Vec<u8> {
    cat(&[b"ev/", conv.as_bytes(), b"\0"])
}

/// The suffix after the last `\0` of a key, as a string.
pub fn tail_str(key: &[u8]) -> String {
    let at = key.iter().rposition(|b| *b == 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&key[at..]).into_owned()
}

/// The trailing big-endian u64 of a key.
pub fn tail_u64(key: &[u8]) -> u64 {
    key.len()
        .checked_sub(8)
        .and_then(|at| <[u8; 8]>::try_from(&key[at..]).ok())
        .map_or(0, u64::from_be_bytes)
}

/// Id of the 1:1 conversation of two users (order does not matter).
pub fn direct_conv_id(a: &str, b: &str) -> String {
    let (x, y) = if a <= b { (a, b) } else { (b, a) };
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        &[x.as_bytes(), b"\0", y.as_bytes()].concat(),
    );
    format!("d{}", hex::encode(&d.as_ref()[..12]))
}
