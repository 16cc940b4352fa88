//! Key layout of the domain's records (all under the application prefix).
//!
//! `cfg` policy · `ctr/event`, `ctr/group` counters ·
//! `dept/<id>` · `deptc/<parent><id>` children · `deptm/<dept><userid>` members ·
//! `user/<userid>` · `uname/<lowercased name>\0<userid>` name index ·
//! `acct/<userid>` · `sess/<token sha256>` · `rsess/<refresh sha256>` ·
//! `usess/<userid>\0<token sha256>` · `conv/<id>` · `cm/<conv>\0<userid>` ·
//! `uc/<userid>\0<conv>` · `msg/<conv>\0<seq>` · `ev/<conv>\0<event>`.
//!
//! Integrated apps: `cfg/corp` · `ctr/app`, `ctr/appmsg`, `ctr/job`,
//! `ctr/work`, `ctr/dept`, `ctr/chat` · `app/<agentid>` ·
//! `appsec/<secret sha256>`→agentid · `appname/<lowercased name>` ·
//! `appcb/<agentid>` (apps with a callback) · `uprof/<userid>` profile ·
//! `dname/<parent><lowercased name>`→dept id · `amsg/<msgid>` ·
//! `amsgr/<msgid>\0<chunk>` recipients to deliver ·
//! `amsgd/<msgid>\0<chunk>` (userid, seq) delivered ·
//! `appdup/<agentid><content sha256>` · `work/<id>` · `appchat/<conv>`→agentid ·
//! `media/<id>\0<chunk>` · `mediam/<id>` · `mediau/<id>` (unsealed) ·
//! `mediax/<expires><id>` · `job/<jobid>` · `jobres/<jobid>\0<step>` ·
//! `jobseen/<jobid>\0<key>` · `oauth/<code sha256>` ·
//! `oauthx/<expires><code sha256>` · `cbst/<agentid>` ·
//! `cbq/<agentid><seq>`.
//!
//! Permissions: `perm/<permission>\0<userid>` (a grant).
//!
//! Urgent notices: `ctr/notice` · `ntc/<id>` notice · `ntb/<id>` body ·
//! `ntt/<id>` targets · `ntr/<id><userid>` recipient ·
//! `ntu/<userid>\0<!id>` inbox (newest first) · `nts/<sender>\0<!id>` sent ·
//! `nte/<id><leader>\0<userid>` escalated to · `ntec/<id><leader>` count ·
//! `ndue/<due ms><id>` the leader's schedule (one per notice not done).
//!
//! Announcements: `ctr/announcement` · `anc/<id>` · `anb/<id>` body ·
//! `ant/<id>` targets · `anr/<id><userid>` reader · `anl/<!id>` all ·
//! `anu/<userid>\0<!id>` inbox · `ans/<sender>\0<!id>` sent ·
//! `adue/<id>` being sent out.
//!
//! Approvals: `ctr/approval` · `apt/<template id>` · `apr/<id>` request ·
//! `apa/<applicant>\0<!id>` mine · `apw/<userid>\0<!id>` waiting ·
//! `aph/<userid>\0<!id>` acted on · `apc/<userid>\0<!id>` copied ·
//! `apd/<dept><id>` a leader step pending at that department ·
//! `apf/<finished ms><id>` finished.
//!
//! Numbers are big-endian so keys sort numerically.

pub const POLICY: &[u8] = b"cfg";
pub const EVENT_CTR: &[u8] = b"ctr/event";
pub const GROUP_CTR: &[u8] = b"ctr/group";
pub const CORP: &[u8] = b"cfg/corp";
pub const APP_CTR: &[u8] = b"ctr/app";
pub const APPMSG_CTR: &[u8] = b"ctr/appmsg";
pub const JOB_CTR: &[u8] = b"ctr/job";
pub const WORK_CTR: &[u8] = b"ctr/work";
pub const DEPT_CTR: &[u8] = b"ctr/dept";
pub const CHAT_CTR: &[u8] = b"ctr/chat";
pub const NOTICE_CTR: &[u8] = b"ctr/notice";
pub const NOTICE_DUE: &[u8] = b"ndue/";
pub const NOTICE_POLICY: &[u8] = b"cfg/notices";
pub const ANNOUNCEMENT_CTR: &[u8] = b"ctr/announcement";
pub const ANNOUNCEMENTS_LISTED: &[u8] = b"anl/";
pub const ANNOUNCEMENT_DUE: &[u8] = b"adue/";
pub const APPROVAL_CTR: &[u8] = b"ctr/approval";
pub const APPROVAL_TEMPLATES: &[u8] = b"apt/";
pub const APPROVALS_FINISHED: &[u8] = b"apf/";

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
pub fn permission(perm: &str, userid: &str) -> Vec<u8> {
    cat(&[b"perm/", perm.as_bytes(), b"\0", userid.as_bytes()])
}
pub fn permission_holders(perm: &str) -> Vec<u8> {
    cat(&[b"perm/", perm.as_bytes(), b"\0"])
}
pub fn notice(id: u64) -> Vec<u8> {
    cat(&[b"ntc/", &id.to_be_bytes()])
}
pub const NOTICES: &[u8] = b"ntc/";
pub fn notice_body(id: u64) -> Vec<u8> {
    cat(&[b"ntb/", &id.to_be_bytes()])
}
pub fn notice_targets(id: u64) -> Vec<u8> {
    cat(&[b"ntt/", &id.to_be_bytes()])
}
pub fn notice_recipient(id: u64, userid: &str) -> Vec<u8> {
    cat(&[b"ntr/", &id.to_be_bytes(), userid.as_bytes()])
}
pub fn notice_recipients(id: u64) -> Vec<u8> {
    cat(&[b"ntr/", &id.to_be_bytes()])
}
/// Newest first: the id is stored inverted.
pub fn notice_inbox(userid: &str, id: u64) -> Vec<u8> {
    cat(&[
        b"ntu/",
        userid.as_bytes(),
        b"\0",
        &(u64::MAX - id).to_be_bytes(),
    ])
}
pub fn notice_inbox_of(userid: &str) -> Vec<u8> {
    cat(&[b"ntu/", userid.as_bytes(), b"\0"])
}
pub fn notice_sent(userid: &str, id: u64) -> Vec<u8> {
    cat(&[
        b"nts/",
        userid.as_bytes(),
        b"\0",
        &(u64::MAX - id).to_be_bytes(),
    ])
}
pub fn notice_sent_by(userid: &str) -> Vec<u8> {
    cat(&[b"nts/", userid.as_bytes(), b"\0"])
}
pub fn notice_escalation(id: u64, leader: &str, userid: &str) -> Vec<u8> {
    cat(&[
        b"nte/",
        &id.to_be_bytes(),
        leader.as_bytes(),
        b"\0",
        userid.as_bytes(),
    ])
}
pub fn notice_escalation_of(id: u64, leader: &str) -> Vec<u8> {
    cat(&[b"nte/", &id.to_be_bytes(), leader.as_bytes(), b"\0"])
}
pub fn notice_escalation_count(id: u64, leader: &str) -> Vec<u8> {
    cat(&[b"ntec/", &id.to_be_bytes(), leader.as_bytes()])
}
pub fn notice_escalation_counts(id: u64) -> Vec<u8> {
    cat(&[b"ntec/", &id.to_be_bytes()])
}
pub fn notice_due(due_ms: u64, id: u64) -> Vec<u8> {
    cat(&[b"ndue/", &due_ms.to_be_bytes(), &id.to_be_bytes()])
}
pub fn announcement(id: u64) -> Vec<u8> {
    cat(&[b"anc/", &id.to_be_bytes()])
}
pub fn announcement_body(id: u64) -> Vec<u8> {
    cat(&[b"anb/", &id.to_be_bytes()])
}
pub fn announcement_targets(id: u64) -> Vec<u8> {
    cat(&[b"ant/", &id.to_be_bytes()])
}
pub fn announcement_reader(id: u64, userid: &str) -> Vec<u8> {
    cat(&[b"anr/", &id.to_be_bytes(), userid.as_bytes()])
}
pub fn announcement_readers(id: u64) -> Vec<u8> {
    cat(&[b"anr/", &id.to_be_bytes()])
}
/// Every announcement, newest first.
pub fn announcement_listed(id: u64) -> Vec<u8> {
    cat(&[b"anl/", &(u64::MAX - id).to_be_bytes()])
}
pub fn announcement_inbox(userid: &str, id: u64) -> Vec<u8> {
    newest_first(b"anu/", userid, id)
}
pub fn announcement_inbox_of(userid: &str) -> Vec<u8> {
    cat(&[b"anu/", userid.as_bytes(), b"\0"])
}
pub fn announcement_sent(userid: &str, id: u64) -> Vec<u8> {
    newest_first(b"ans/", userid, id)
}
pub fn announcement_sent_by(userid: &str) -> Vec<u8> {
    cat(&[b"ans/", userid.as_bytes(), b"\0"])
}
pub fn announcement_due(id: u64) -> Vec<u8> {
    cat(&[b"adue/", &id.to_be_bytes()])
}
pub fn approval_template(id: &str) -> Vec<u8> {
    cat(&[b"apt/", id.as_bytes()])
}
pub fn approval(id: u64) -> Vec<u8> {
    cat(&[b"apr/", &id.to_be_bytes()])
}
/// An approval list of `userid`: `apa` mine, `apw` waiting for them,
/// `aph` acted on, `apc` copied to them.
pub fn approval_listed(list: &[u8; 4], userid: &str, id: u64) -> Vec<u8> {
    newest_first(list, userid, id)
}
pub fn approval_list_of(list: &[u8; 4], userid: &str) -> Vec<u8> {
    cat(&[list, userid.as_bytes(), b"\0"])
}
pub const APPROVALS_MINE: &[u8; 4] = b"apa/";
pub const APPROVALS_WAITING: &[u8; 4] = b"apw/";
pub const APPROVALS_DONE: &[u8; 4] = b"aph/";
pub const APPROVALS_CC: &[u8; 4] = b"apc/";
pub fn approval_at_dept(dept: u64, id: u64) -> Vec<u8> {
    cat(&[b"apd/", &dept.to_be_bytes(), &id.to_be_bytes()])
}
pub fn approvals_at_dept(dept: u64) -> Vec<u8> {
    cat(&[b"apd/", &dept.to_be_bytes()])
}
pub fn approval_finished(ms: u64, id: u64) -> Vec<u8> {
    cat(&[b"apf/", &ms.to_be_bytes(), &id.to_be_bytes()])
}
/// `<prefix><userid>\0<!id>`: a per-user list, newest first.
fn newest_first(prefix: &[u8], userid: &str, id: u64) -> Vec<u8> {
    cat(&[
        prefix,
        userid.as_bytes(),
        b"\0",
        &(u64::MAX - id).to_be_bytes(),
    ])
}
/// A member's notice inbox conversation.
pub fn notice_conv_id(userid: &str) -> String {
    format!("n.{userid}")
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
/// Every name-index key of a member: one per search form of the name
/// (`domain::names`).
pub fn name_keys(name: &str, userid: &str) -> Vec<Vec<u8>> {
    super::names::search_forms(name)
        .iter()
        .map(|f| name_index(f, userid))
        .collect()
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

pub fn app(agentid: u32) -> Vec<u8> {
    cat(&[b"app/", &agentid.to_be_bytes()])
}
pub const APPS: &[u8] = b"app/";
pub fn app_secret(hash: &[u8; 32]) -> Vec<u8> {
    cat(&[b"appsec/", hash])
}
pub fn app_name(name: &str) -> Vec<u8> {
    cat(&[b"appname/", name.to_lowercase().as_bytes()])
}
pub fn app_with_callback(agentid: u32) -> Vec<u8> {
    cat(&[b"appcb/", &agentid.to_be_bytes()])
}
pub const APPS_WITH_CALLBACK: &[u8] = b"appcb/";
pub fn profile(userid: &str) -> Vec<u8> {
    cat(&[b"uprof/", userid.as_bytes()])
}
pub fn dept_name(parent: u64, name: &str) -> Vec<u8> {
    cat(&[
        b"dname/",
        &parent.to_be_bytes(),
        name.to_lowercase().as_bytes(),
    ])
}
pub fn app_message(msgid: &str) -> Vec<u8> {
    cat(&[b"amsg/", msgid.as_bytes()])
}
pub fn app_message_todo(msgid: &str, chunk: u32) -> Vec<u8> {
    cat(&[b"amsgr/", msgid.as_bytes(), b"\0", &chunk.to_be_bytes()])
}
pub fn app_message_done(msgid: &str, chunk: u32) -> Vec<u8> {
    cat(&[b"amsgd/", msgid.as_bytes(), b"\0", &chunk.to_be_bytes()])
}
pub fn app_dedup(agentid: u32, hash: &[u8]) -> Vec<u8> {
    cat(&[b"appdup/", &agentid.to_be_bytes(), hash])
}
pub fn work(id: u64) -> Vec<u8> {
    cat(&[b"work/", &id.to_be_bytes()])
}
pub const WORK: &[u8] = b"work/";
pub fn app_chat(conv: &str) -> Vec<u8> {
    cat(&[b"appchat/", conv.as_bytes()])
}
/// The conversation of a member with an app.
pub fn app_conv_id(agentid: u32, userid: &str) -> String {
    format!("a{agentid}.{userid}")
}
/// The conversation behind an app chat's chatid.
pub fn chat_conv_id(chatid: &str) -> String {
    format!("w{chatid}")
}
pub fn media_chunk(id: &str, index: u32) -> Vec<u8> {
    cat(&[b"media/", id.as_bytes(), b"\0", &index.to_be_bytes()])
}
pub fn media_meta(id: &str) -> Vec<u8> {
    cat(&[b"mediam/", id.as_bytes()])
}
pub fn media_unsealed(id: &str) -> Vec<u8> {
    cat(&[b"mediau/", id.as_bytes()])
}
pub const MEDIA_UNSEALED: &[u8] = b"mediau/";
pub fn media_expiry(expires_ms: u64, id: &str) -> Vec<u8> {
    cat(&[b"mediax/", &expires_ms.to_be_bytes(), id.as_bytes()])
}
pub const MEDIA_EXPIRY: &[u8] = b"mediax/";
pub fn job(jobid: &str) -> Vec<u8> {
    cat(&[b"job/", jobid.as_bytes()])
}
pub const JOBS: &[u8] = b"job/";
pub fn job_result(jobid: &str, step: u64) -> Vec<u8> {
    cat(&[b"jobres/", jobid.as_bytes(), b"\0", &step.to_be_bytes()])
}
pub fn job_results(jobid: &str) -> Vec<u8> {
    cat(&[b"jobres/", jobid.as_bytes(), b"\0"])
}
pub fn job_seen(jobid: &str, key: &str) -> Vec<u8> {
    cat(&[b"jobseen/", jobid.as_bytes(), b"\0", key.as_bytes()])
}
pub fn job_seen_all(jobid: &str) -> Vec<u8> {
    cat(&[b"jobseen/", jobid.as_bytes(), b"\0"])
}
pub fn oauth_code(hash: &[u8; 32]) -> Vec<u8> {
    cat(&[b"oauth/", hash])
}
pub fn oauth_expiry(expires_ms: u64, hash: &[u8; 32]) -> Vec<u8> {
    cat(&[b"oauthx/", &expires_ms.to_be_bytes(), hash])
}
pub const OAUTH_EXPIRY: &[u8] = b"oauthx/";
pub fn callback_state(agentid: u32) -> Vec<u8> {
    cat(&[b"cbst/", &agentid.to_be_bytes()])
}
pub fn callback_item(agentid: u32, seq: u64) -> Vec<u8> {
    cat(&[b"cbq/", &agentid.to_be_bytes(), &seq.to_be_bytes()])
}
pub fn callback_items(agentid: u32) -> Vec<u8> {
    cat(&[b"cbq/", &agentid.to_be_bytes()])
}

// --- files (issue 17): `file/<id>` record · `ctr/file` · `fileq/<n>`→id
// in recording order (nodes follow it to fetch chunks) · `filez/<since
// ms><id>` never referenced · `filet/<created ms><id>` (retention) ·
// `filek/<chunk sha256><id>` which files use a chunk ·
// `filer/<id>\0<conv>\0<seq>` messages that carry it · `fileu/<uploader>`
// bytes held · `cfg/files` policy.
pub const FILE_POLICY: &[u8] = b"cfg/files";
/// The replicated-log version the cluster has moved to (issue 18).
pub const CLUSTER_VERSION: &[u8] = b"cfg/version";

// --- the change index (log version 4): `chg/<event no>` → the id of the
// conversation the event is in, for every event numbered above
// `cfg/chgfrom` (the event counter when the cluster moved to version 4).
// Sync reads the conversations changed since a token from it instead of
// all of a member's conversations.
pub const CHANGES: &[u8] = b"chg/";
pub const CHANGES_FROM: &[u8] = b"cfg/chgfrom";
pub fn change(no: u64) -> Vec<u8> {
    cat(&[CHANGES, &no.to_be_bytes()])
}
/// The log version from which events are indexed in `chg/`.
pub const CHANGE_INDEX_VERSION: u32 = 4;
/// The log version from which a message is stored once: its posting event
/// is not written to `ev/` but derived from the message record (the event's
/// number, time and actor are the message's `event`, `time_ms` and
/// `sender`); sync reads both (`query::sync`).
pub const MESSAGE_ONCE_VERSION: u32 = 5;
pub const FILE_CTR: &[u8] = b"ctr/file";
pub const FILES: &[u8] = b"file/";
pub const FILES_IN_ORDER: &[u8] = b"fileq/";
pub const FILES_UNREFERENCED: &[u8] = b"filez/";
pub const FILES_BY_AGE: &[u8] = b"filet/";
pub const CHUNK_USERS: &[u8] = b"filek/";
pub fn file(id: &str) -> Vec<u8> {
    cat(&[FILES, id.as_bytes()])
}
pub fn file_in_order(n: u64) -> Vec<u8> {
    cat(&[FILES_IN_ORDER, &n.to_be_bytes()])
}
pub fn file_unreferenced(since_ms: u64, id: &str) -> Vec<u8> {
    cat(&[FILES_UNREFERENCED, &since_ms.to_be_bytes(), id.as_bytes()])
}
pub fn file_by_age(created_ms: u64, id: &str) -> Vec<u8> {
    cat(&[FILES_BY_AGE, &created_ms.to_be_bytes(), id.as_bytes()])
}
pub fn chunk_user(hash: &[u8; 32], id: &str) -> Vec<u8> {
    cat(&[CHUNK_USERS, hash, id.as_bytes()])
}
pub fn chunk_users(hash: &[u8; 32]) -> Vec<u8> {
    cat(&[CHUNK_USERS, hash])
}
pub fn file_ref(id: &str, conv: &str, seq: u64) -> Vec<u8> {
    cat(&[
        b"filer/",
        id.as_bytes(),
        b"\0",
        conv.as_bytes(),
        b"\0",
        &seq.to_be_bytes(),
    ])
}
pub fn file_refs(id: &str) -> Vec<u8> {
    cat(&[b"filer/", id.as_bytes(), b"\0"])
}
pub fn file_usage(uploader: &str) -> Vec<u8> {
    cat(&[b"fileu/", uploader.as_bytes()])
}

// ---------------------------------------------------------- external contacts
//
// `ext/<userid>` account · `exti/<code sha256>` invitation ·
// `extib/<employee>\0<code sha256>` open invitations of an employee ·
// `extc/<employee>\0<external>` contact · `extr/<external>\0<employee>`
// served by · `extg/<owner>\0<conv>` customer groups owned ·
// `extd/<employee>` departed with contacts (the unassigned list) ·
// `ctr/xconv` · `ctr/xfer` · `extx/<id>` transfer ·
// `extxd/<due ms><id>` transfers waiting (the leader's schedule) ·
// `extxi/<item>` the waiting transfer an item is in ·
// `extar/<conv>` auto-reply rules · `exts/<employee>\0<day>` messages sent ·
// `cfg/external` policy.

pub const EXTERNAL_POLICY: &[u8] = b"cfg/external";
pub const XCONV_CTR: &[u8] = b"ctr/xconv";
pub const TRANSFER_CTR: &[u8] = b"ctr/xfer";
pub const EXTERNALS: &[u8] = b"ext/";
pub const DEPARTED_WITH_CONTACTS: &[u8] = b"extd/";
pub const TRANSFERS_DUE: &[u8] = b"extxd/";
pub const TRANSFERS: &[u8] = b"extx/";

pub fn external(userid: &str) -> Vec<u8> {
    cat(&[b"ext/", userid.as_bytes()])
}
pub fn invitation(code_hash: &[u8; 32]) -> Vec<u8> {
    cat(&[b"exti/", code_hash])
}
pub fn invitation_of(employee: &str, code_hash: &[u8; 32]) -> Vec<u8> {
    cat(&[b"extib/", employee.as_bytes(), b"\0", code_hash])
}
pub fn invitations_of(employee: &str) -> Vec<u8> {
    cat(&[b"extib/", employee.as_bytes(), b"\0"])
}
pub fn contact(employee: &str, external: &str) -> Vec<u8> {
    cat(&[b"extc/", employee.as_bytes(), b"\0", external.as_bytes()])
}
pub fn contacts_of(employee: &str) -> Vec<u8> {
    cat(&[b"extc/", employee.as_bytes(), b"\0"])
}
pub fn served_by(external: &str, employee: &str) -> Vec<u8> {
    cat(&[b"extr/", external.as_bytes(), b"\0", employee.as_bytes()])
}
pub fn servers_of(external: &str) -> Vec<u8> {
    cat(&[b"extr/", external.as_bytes(), b"\0"])
}
pub fn customer_group(owner: &str, conv: &str) -> Vec<u8> {
    cat(&[b"extg/", owner.as_bytes(), b"\0", conv.as_bytes()])
}
pub fn customer_groups_of(owner: &str) -> Vec<u8> {
    cat(&[b"extg/", owner.as_bytes(), b"\0"])
}
pub fn departed_with_contacts(employee: &str) -> Vec<u8> {
    cat(&[b"extd/", employee.as_bytes()])
}
pub fn transfer(id: u64) -> Vec<u8> {
    cat(&[b"extx/", &id.to_be_bytes()])
}
pub fn transfer_due(due_ms: u64, id: u64) -> Vec<u8> {
    cat(&[b"extxd/", &due_ms.to_be_bytes(), &id.to_be_bytes()])
}
/// `item`: `c:<from>\0<external>` for a contact, `g:<conv>` for a group.
pub fn transfer_item(item: &str) -> Vec<u8> {
    cat(&[b"extxi/", item.as_bytes()])
}
pub fn auto_replies(conv: &str) -> Vec<u8> {
    cat(&[b"extar/", conv.as_bytes()])
}
pub fn external_sent(employee: &str, day: u32) -> Vec<u8> {
    cat(&[b"exts/", employee.as_bytes(), b"\0", &day.to_be_bytes()])
}
pub fn external_sent_of(employee: &str) -> Vec<u8> {
    cat(&[b"exts/", employee.as_bytes(), b"\0"])
}
