//! Tests of integrated apps over the in-memory store: registration and
//! scopes, WeCom-style directory writes, app messages and chats, bulk
//! jobs, sign-in codes, callback queues.

use super::store::StoreExt;
use super::*;

fn ctx(t: u64) -> Ctx {
    Ctx {
        time_ms: t,
        app: None,
    }
}

fn as_app(t: u64, agentid: u32) -> Ctx {
    Ctx {
        time_ms: t,
        app: Some(agentid),
    }
}

fn run(s: &mut MemStore, c: &Ctx, cmd: &Command) -> Result<Done, Refusal> {
    let before = s.hash();
    let (out, events) = apply(s, c, cmd).expect("storage");
    if out.is_err() {
        assert!(events.is_empty());
        assert_eq!(before, s.hash(), "a refused {cmd:?} changed the state");
    }
    out
}

fn ok(s: &mut MemStore, c: &Ctx, cmd: Command) -> Done {
    run(s, c, &cmd).unwrap_or_else(|r| panic!("{cmd:?} refused: {r:?}"))
}

fn code(s: &mut MemStore, c: &Ctx, cmd: Command) -> Code {
    match run(s, c, &cmd) {
        Ok(d) => panic!("{cmd:?} should be refused, got {d:?}"),
        Err(r) => r.code,
    }
}

fn corp() -> Corp {
    Corp {
        corpid: "ww0123456789abcdef".into(),
        token_key: [7; 32],
    }
}

fn new_app(s: &mut MemStore, name: &str, scopes: &[Scope], secret: u8) -> App {
    match ok(
        s,
        &ctx(1),
        Command::CreateApp {
            name: name.into(),
            scopes: scopes.to_vec(),
            secret_hash: [secret; 32],
            trusted_domains: vec!["oa.example.internal".into()],
            corp: corp(),
        },
    ) {
        Done::App(a) => a,
        d => panic!("{d:?}"),
    }
}

fn user(userid: &str, name: &str, depts: &[u64]) -> UserFields {
    UserFields {
        userid: userid.into(),
        name: Some(name.into()),
        departments: Some(depts.to_vec()),
        ..Default::default()
    }
}

fn dept(id: u64, parent: u64, name: &str) -> DeptFields {
    DeptFields {
        id: Some(id),
        parent: Some(parent),
        name: Some(name.into()),
        order: None,
    }
}

/// Root, departments 2 and 3 (under 2), members a (1), b (2), c (3).
fn world() -> (MemStore, App) {
    let mut s = MemStore::default();
    let app = new_app(&mut s, "HR-sync", &Scope::ALL, 1);
    let w = as_app(2, app.agentid);
    ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: dept(1, 0, "Corp"),
        },
    );
    ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: dept(2, 1, "Sales"),
        },
    );
    ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: dept(3, 2, "North"),
        },
    );
    for (u, d) in [("a", 1), ("b", 2), ("c", 3)] {
        ok(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Create,
                fields: user(u, u, &[d]),
            },
        );
    }
    (s, app)
}

fn text(t: &str) -> AppContent {
    AppContent {
        text: t.into(),
        rich: None,
        safe: false,
        file: None,
    }
}

#[test]
fn apps_get_agentids_once_a_corp_and_unique_names() {
    let mut s = MemStore::default();
    let a = new_app(&mut s, "HR", &[Scope::DirectoryWrite], 1);
    let b = new_app(&mut s, "OA", &[Scope::MessageSend], 2);
    assert_eq!((a.agentid, b.agentid), (1_000_002, 1_000_003));
    assert!(a.allows(Scope::DirectoryRead), "write implies read");
    assert!(!a.allows(Scope::MessageSend));
    let first: Corp = s.get_as(keys::CORP).expect("get").expect("corp");
    assert_eq!(first, corp());
    // A second seed does not change the corp.
    let mut other = corp();
    other.corpid = "wwffffffffffffffff".into();
    ok(
        &mut s,
        &ctx(1),
        Command::CreateApp {
            name: "Third".into(),
            scopes: vec![Scope::OAuth],
            secret_hash: [3; 32],
            trusted_domains: vec![],
            corp: other,
        },
    );
    assert_eq!(s.get_as::<Corp>(keys::CORP).expect("get"), Some(corp()));
    let dup = Command::CreateApp {
        name: "hr".into(),
        scopes: vec![Scope::OAuth],
        secret_hash: [4; 32],
        trusted_domains: vec![],
        corp: corp(),
    };
    assert_eq!(code(&mut s, &ctx(1), dup), Code::AlreadyExists);
    let none = Command::CreateApp {
        name: "Empty".into(),
        scopes: vec![],
        secret_hash: [5; 32],
        trusted_domains: vec![],
        corp: corp(),
    };
    assert_eq!(code(&mut s, &ctx(1), none), Code::InvalidArgument);
}

#[test]
fn scopes_disable_and_rotation_are_enforced_at_apply() {
    let (mut s, app) = world();
    let reader = new_app(&mut s, "Reader", &[Scope::DirectoryRead], 9);
    let r = as_app(3, reader.agentid);
    // No write scope: refused, nothing changes.
    let c = code(
        &mut s,
        &r,
        Command::PutUser {
            mode: PutMode::Create,
            fields: user("z", "Z", &[1]),
        },
    );
    assert_eq!(c, Code::ScopeDenied);
    let send = Command::AppSend {
        agentid: reader.agentid,
        to: Recipients {
            users: vec!["a".into()],
            ..Default::default()
        },
        content: text("hi"),
        dedup_ms: 0,
    };
    assert_eq!(code(&mut s, &r, send), Code::ScopeDenied);
    // Acting as another app is refused.
    let spoof = Command::AppSend {
        agentid: app.agentid,
        to: Recipients {
            users: vec!["a".into()],
            ..Default::default()
        },
        content: text("hi"),
        dedup_ms: 0,
    };
    assert_eq!(code(&mut s, &r, spoof.clone()), Code::ScopeDenied);
    // Commands only members or operators issue are refused for apps.
    let member_cmd = Command::Logout {
        token_hash: [0; 32],
    };
    assert_eq!(code(&mut s, &r, member_cmd), Code::ScopeDenied);
    // Disabled: refused at once, whatever the scope.
    ok(
        &mut s,
        &ctx(4),
        Command::UpdateApp {
            agentid: app.agentid,
            change: AppChange::Enable(false),
        },
    );
    assert_eq!(
        code(&mut s, &as_app(5, app.agentid), spoof.clone()),
        Code::AppDisabled
    );
    ok(
        &mut s,
        &ctx(6),
        Command::UpdateApp {
            agentid: app.agentid,
            change: AppChange::Enable(true),
        },
    );
    ok(&mut s, &as_app(7, app.agentid), spoof);
    // Rotation: a new generation and secret index.
    let Done::App(rot) = ok(
        &mut s,
        &ctx(8),
        Command::UpdateApp {
            agentid: app.agentid,
            change: AppChange::RotateSecret {
                secret_hash: [42; 32],
            },
        },
    ) else {
        panic!()
    };
    assert_eq!(rot.generation, app.generation + 1);
    assert_eq!(
        s.get_as::<u32>(&keys::app_secret(&[42; 32])).expect("get"),
        Some(app.agentid)
    );
    assert_eq!(s.get(&keys::app_secret(&[1; 32])).expect("get"), None);
}

#[test]
fn wecom_user_writes_keep_profile_order_and_leaders() {
    let (mut s, app) = world();
    let w = as_app(10, app.agentid);
    let mut f = user("li", "李四", &[3, 2]);
    f.orders = Some(vec![30, 20]);
    f.leader_in_dept = Some(vec![true, false]);
    f.alias = Some("Lee".into());
    f.gender = Some(1);
    f.main_department = Some(3);
    f.position = Some("经理".into());
    ok(
        &mut s,
        &w,
        Command::PutUser {
            mode: PutMode::Create,
            fields: f.clone(),
        },
    );
    let m = query::member(&s, "li").expect("get").expect("member");
    assert_eq!(m.departments, vec![2, 3]);
    assert_eq!(m.title, "经理");
    let p: Profile = s
        .get_as(&keys::profile("li"))
        .expect("get")
        .expect("profile");
    assert_eq!(
        (p.orders.clone(), p.main_department, p.gender),
        (vec![20, 30], 3, 1)
    );
    let d3 = query::department(&s, 3).expect("get").expect("dept");
    assert_eq!(d3.leaders, vec!["li".to_string()]);
    // Exists: create refused; update of a missing one refused.
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Create,
                fields: f
            }
        ),
        Code::AlreadyExists
    );
    let ghost = UserFields {
        userid: "nobody".into(),
        name: Some("N".into()),
        ..Default::default()
    };
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Update,
                fields: ghost
            }
        ),
        Code::NotFound
    );
    // Leaving department 3 drops the leader flag there; order follows.
    let upd = UserFields {
        userid: "li".into(),
        departments: Some(vec![2]),
        ..Default::default()
    };
    ok(
        &mut s,
        &w,
        Command::PutUser {
            mode: PutMode::Update,
            fields: upd,
        },
    );
    assert!(
        query::department(&s, 3)
            .expect("get")
            .expect("d")
            .leaders
            .is_empty()
    );
    let p: Profile = s
        .get_as(&keys::profile("li"))
        .expect("get")
        .expect("profile");
    assert_eq!((p.orders, p.main_department), (vec![20], 0));
    // Mismatched parallel lists are refused.
    let bad = UserFields {
        userid: "li".into(),
        departments: Some(vec![2, 3]),
        orders: Some(vec![1]),
        ..Default::default()
    };
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Update,
                fields: bad
            }
        ),
        Code::InvalidArgument
    );
    // enable=false disables; delete departs and the userid is not reused.
    let off = UserFields {
        userid: "li".into(),
        enabled: Some(false),
        ..Default::default()
    };
    ok(
        &mut s,
        &w,
        Command::PutUser {
            mode: PutMode::Update,
            fields: off,
        },
    );
    assert_eq!(
        query::member(&s, "li").expect("g").expect("m").status,
        MemberStatus::Disabled
    );
    ok(
        &mut s,
        &w,
        Command::DeleteUsers {
            userids: vec!["li".into()],
        },
    );
    let again = user("li", "新李四", &[1]);
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Upsert,
                fields: again
            }
        ),
        Code::AlreadyExists
    );
    // Batch delete is all or nothing.
    let c = code(
        &mut s,
        &w,
        Command::DeleteUsers {
            userids: vec!["a".into(), "ghost".into()],
        },
    );
    assert_eq!(c, Code::NotFound);
    assert_eq!(
        query::member(&s, "a").expect("g").expect("m").status,
        MemberStatus::Active
    );
}

#[test]
fn departments_get_ids_above_every_id_and_sibling_names_are_unique() {
    let (mut s, app) = world();
    let w = as_app(10, app.agentid);
    let auto = DeptFields {
        id: None,
        parent: Some(1),
        name: Some("Ops".into()),
        order: Some(5),
    };
    let Done::Department(d) = ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: auto,
        },
    ) else {
        panic!()
    };
    assert_eq!(d.id, 4);
    ok(
        &mut s,
        &ctx(11),
        Command::UpsertDepartment {
            dept: Department {
                id: 90,
                parent: Some(1),
                name: "Far".into(),
                order: 0,
                leaders: vec![],
            },
        },
    );
    let auto = DeptFields {
        id: None,
        parent: Some(2),
        name: Some("Ops".into()),
        order: None,
    };
    let Done::Department(d) = ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: auto,
        },
    ) else {
        panic!()
    };
    assert_eq!(
        d.id, 91,
        "above the largest id, and the same name under another parent is fine"
    );
    let clash = DeptFields {
        id: None,
        parent: Some(1),
        name: Some("OPS".into()),
        order: None,
    };
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutDepartment {
                create: true,
                fields: clash
            }
        ),
        Code::AlreadyExists
    );
    // Renaming frees the old name.
    let rename = DeptFields {
        id: Some(4),
        parent: None,
        name: Some("Operations".into()),
        order: None,
    };
    ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: false,
            fields: rename,
        },
    );
    let reuse = DeptFields {
        id: None,
        parent: Some(1),
        name: Some("Ops".into()),
        order: None,
    };
    ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: reuse,
        },
    );
    assert_eq!(
        code(&mut s, &w, Command::DeleteDepartment { id: 1 }),
        Code::DepartmentNotEmpty
    );
    // Even empty, the root stays.
    let mut empty = MemStore::default();
    let root = Department {
        id: 1,
        parent: None,
        name: "Root".into(),
        order: 0,
        leaders: vec![],
    };
    ok(
        &mut empty,
        &ctx(1),
        Command::UpsertDepartment { dept: root },
    );
    assert_eq!(
        code(&mut empty, &ctx(2), Command::DeleteDepartment { id: 1 }),
        Code::Forbidden
    );
}

#[test]
fn app_messages_reach_users_and_departments_with_subdepartments() {
    let (mut s, app) = world();
    let w = as_app(20, app.agentid);
    let to = Recipients {
        users: vec!["a".into(), "ghost".into()],
        parties: vec![2, 77],
        all: false,
    };
    let Done::AppSent {
        msgid,
        invalid_users,
        invalid_parties,
        recipients,
        duplicate,
    } = ok(
        &mut s,
        &w,
        Command::AppSend {
            agentid: app.agentid,
            to: to.clone(),
            content: text("放假通知"),
            dedup_ms: 60_000,
        },
    )
    else {
        panic!()
    };
    assert_eq!(
        (invalid_users, invalid_parties, recipients, duplicate),
        (vec!["ghost".to_string()], vec![77], 3, false)
    );
    for u in ["a", "b", "c"] {
        let page = query::sync(&s, u, 0, 100).expect("sync");
        let msgs: Vec<&Message> = page
            .events
            .iter()
            .filter_map(|e| match &e.body {
                EventBody::Message { message } => Some(message),
                _ => None,
            })
            .collect();
        assert_eq!(msgs.len(), 1, "{u}");
        assert_eq!(msgs[0].sender, format!("app:{}", app.agentid));
        assert_eq!(msgs[0].conv, keys::app_conv_id(app.agentid, u));
    }
    // Same message within the window: not sent again, same msgid.
    let Done::AppSent {
        msgid: again,
        duplicate,
        ..
    } = ok(
        &mut s,
        &as_app(30, app.agentid),
        Command::AppSend {
            agentid: app.agentid,
            to: to.clone(),
            content: text("放假通知"),
            dedup_ms: 60_000,
        },
    )
    else {
        panic!()
    };
    assert_eq!((again.as_str(), duplicate), (msgid.as_str(), true));
    // Nobody valid: refused.
    let nobody = Recipients {
        users: vec!["ghost".into()],
        ..Default::default()
    };
    let c = code(
        &mut s,
        &w,
        Command::AppSend {
            agentid: app.agentid,
            to: nobody,
            content: text("x"),
            dedup_ms: 0,
        },
    );
    assert_eq!(c, Code::NoRecipients);
    // A member's reply is a message in the same conversation.
    ok(
        &mut s,
        &ctx(40),
        Command::Send {
            actor: "b".into(),
            target: Target::Conv(keys::app_conv_id(app.agentid, "b")),
            text: "收到".into(),
            mentions: vec![],
            mention_all: false,
            reply_to: None,
            file: None,
        },
    );
    // Recall reaches every copy.
    ok(
        &mut s,
        &as_app(50, app.agentid),
        Command::AppRecall {
            agentid: app.agentid,
            msgid: msgid.clone(),
        },
    );
    for u in ["a", "b", "c"] {
        let conv = keys::app_conv_id(app.agentid, u);
        let m = query::message(&s, &conv, 1).expect("get");
        assert!(m.is_some_and(|m| m.recalled && m.text.is_empty()), "{u}");
    }
    let c = code(
        &mut s,
        &as_app(60, app.agentid),
        Command::AppRecall {
            agentid: app.agentid,
            msgid,
        },
    );
    assert_eq!(c, Code::InvalidArgument);
}

#[test]
fn a_large_fanout_continues_in_steps_that_apply_once() {
    let (mut s, app) = world();
    let w = as_app(20, app.agentid);
    let n = apply::FANOUT_CHUNK * 2 + 5;
    for i in 0..n {
        ok(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Create,
                fields: user(&format!("u{i:05}"), "U", &[3]),
            },
        );
    }
    let to = Recipients {
        all: true,
        ..Default::default()
    };
    let Done::AppSent {
        msgid, recipients, ..
    } = ok(
        &mut s,
        &w,
        Command::AppSend {
            agentid: app.agentid,
            to,
            content: text("all hands"),
            dedup_ms: 0,
        },
    )
    else {
        panic!()
    };
    assert_eq!(recipients as usize, n + 3);
    let delivered = |s: &MemStore| s.scan(b"conv/a", None, usize::MAX).expect("scan").len();
    assert_eq!(delivered(&s), apply::FANOUT_CHUNK);
    let work: Vec<(Vec<u8>, WorkItem)> = s.scan_as(keys::WORK, None, 10).expect("scan");
    assert_eq!(work.len(), 1);
    let id = keys::tail_u64(&work[0].0);
    ok(
        &mut s,
        &ctx(21),
        Command::Continue {
            work: id,
            cursor: 0,
        },
    );
    // The same step proposed again (a deposed leader) applies nothing.
    assert_eq!(
        code(
            &mut s,
            &ctx(22),
            Command::Continue {
                work: id,
                cursor: 0
            }
        ),
        Code::Stale
    );
    assert_eq!(delivered(&s), apply::FANOUT_CHUNK * 2);
    ok(
        &mut s,
        &ctx(23),
        Command::Continue {
            work: id,
            cursor: 1,
        },
    );
    assert_eq!(delivered(&s), n + 3);
    assert!(
        s.scan(keys::WORK, None, 10).expect("scan").is_empty(),
        "work done"
    );
    let am: AppMessage = s.get_as(&keys::app_message(&msgid)).expect("g").expect("m");
    assert_eq!((am.delivered, am.chunks), (3, 3));
}

#[test]
fn app_chats_are_groups_the_app_manages_and_posts_to() {
    let (mut s, app) = world();
    let other = new_app(&mut s, "Other", &[Scope::AppChat], 9);
    let w = as_app(20, app.agentid);
    let create = Command::AppChatCreate {
        agentid: app.agentid,
        chatid: Some("proj1".into()),
        name: "项目群".into(),
        owner: Some("a".into()),
        members: vec!["a".into(), "b".into()],
    };
    assert_eq!(
        ok(&mut s, &w, create.clone()),
        Done::Created { id: "proj1".into() }
    );
    assert_eq!(code(&mut s, &w, create), Code::AlreadyExists);
    let conv = keys::chat_conv_id("proj1");
    ok(
        &mut s,
        &w,
        Command::AppChatUpdate {
            agentid: app.agentid,
            chatid: "proj1".into(),
            name: Some("项目群2".into()),
            owner: Some("c".into()),
            add: vec!["c".into()],
            del: vec!["b".into()],
        },
    );
    let (c, _) = query::conversation_for(&s, "c", &conv)
        .expect("get")
        .expect("conv");
    assert_eq!(
        (c.owner.as_str(), c.member_count, c.name.as_str()),
        ("c", 2, "项目群2")
    );
    ok(
        &mut s,
        &w,
        Command::AppChatSend {
            agentid: app.agentid,
            chatid: "proj1".into(),
            content: text("hello"),
        },
    );
    // Another app cannot touch it.
    let c = code(
        &mut s,
        &as_app(21, other.agentid),
        Command::AppChatSend {
            agentid: other.agentid,
            chatid: "proj1".into(),
            content: text("x"),
        },
    );
    assert_eq!(c, Code::NotFound);
    // b left: does not see the message; a does.
    let b_sees = query::sync(&s, "b", 0, 100)
        .expect("sync")
        .events
        .iter()
        .any(|e| matches!(&e.body, EventBody::Message { message } if message.text == "hello"));
    assert!(!b_sees);
    let a_sees = query::sync(&s, "a", 0, 100)
        .expect("sync")
        .events
        .iter()
        .any(|e| matches!(&e.body, EventBody::Message { message } if message.text == "hello"));
    assert!(a_sees);
}

#[test]
fn sign_in_codes_work_once_for_their_app_within_five_minutes() {
    let (mut s, app) = world();
    let issue = |code_hash| Command::IssueOAuthCode {
        code_hash,
        userid: "a".into(),
        agentid: app.agentid,
    };
    ok(&mut s, &ctx(1000), issue([1; 32]));
    let redeem = |h| Command::RedeemOAuthCode {
        code_hash: h,
        agentid: app.agentid,
    };
    assert_eq!(
        ok(&mut s, &as_app(2000, app.agentid), redeem([1; 32])),
        Done::OAuthUser { userid: "a".into() }
    );
    assert_eq!(
        code(&mut s, &as_app(2001, app.agentid), redeem([1; 32])),
        Code::NotFound,
        "used"
    );
    ok(&mut s, &ctx(3000), issue([2; 32]));
    let late = 3000 + apply::OAUTH_CODE_MS;
    assert_eq!(
        code(&mut s, &as_app(late, app.agentid), redeem([2; 32])),
        Code::Expired
    );
    // Expired codes are pruned by later issues.
    ok(&mut s, &ctx(late + 1), issue([3; 32]));
    assert!(s.get(&keys::oauth_code(&[2; 32])).expect("get").is_none());
}

#[test]
fn directory_changes_and_replies_queue_callbacks_for_other_apps() {
    let (mut s, app) = world();
    let listener = new_app(
        &mut s,
        "Listener",
        &[Scope::DirectoryRead, Scope::MessageSend],
        9,
    );
    let cb = CallbackCfg {
        url: "https://10.0.0.9/cb".into(),
        token: "tok".into(),
        aes_key: "a".repeat(43),
    };
    for a in [app.agentid, listener.agentid] {
        ok(
            &mut s,
            &ctx(5),
            Command::UpdateApp {
                agentid: a,
                change: AppChange::SetCallback(Some(cb.clone())),
            },
        );
    }
    // Made by HR-sync: only the listener hears it.
    ok(
        &mut s,
        &as_app(6, app.agentid),
        Command::PutUser {
            mode: PutMode::Create,
            fields: user("d", "D", &[1]),
        },
    );
    let items = |s: &MemStore, a: u32| -> Vec<CallbackItem> {
        s.scan_as(&keys::callback_items(a), None, usize::MAX)
            .expect("scan")
            .into_iter()
            .map(|(_, i)| i)
            .collect()
    };
    assert!(items(&s, app.agentid).is_empty());
    let got = items(&s, listener.agentid);
    assert_eq!(got.len(), 1);
    assert!(
        got[0]
            .xml
            .contains("<ChangeType><![CDATA[create_user]]></ChangeType>"),
        "{}",
        got[0].xml
    );
    assert!(got[0].xml.contains("<UserID><![CDATA[d]]></UserID>"));
    // By an operator: both hear it.
    ok(
        &mut s,
        &ctx(7),
        Command::SetMemberStatus {
            userid: "d".into(),
            status: MemberStatus::Departed,
        },
    );
    assert_eq!(items(&s, app.agentid).len(), 1);
    assert!(items(&s, listener.agentid)[1].xml.contains("delete_user"));
    // A reply to the listener app reaches the listener only.
    ok(
        &mut s,
        &as_app(8, listener.agentid),
        Command::AppSend {
            agentid: listener.agentid,
            to: Recipients {
                users: vec!["a".into()],
                ..Default::default()
            },
            content: text("审批通过?"),
            dedup_ms: 0,
        },
    );
    ok(
        &mut s,
        &ctx(9),
        Command::Send {
            actor: "a".into(),
            target: Target::Conv(keys::app_conv_id(listener.agentid, "a")),
            text: "好的 ]]> <x>".into(),
            mentions: vec![],
            mention_all: false,
            reply_to: None,
            file: None,
        },
    );
    let got = items(&s, listener.agentid);
    assert_eq!(got.len(), 3);
    assert!(got[2].xml.contains("<MsgType><![CDATA[text]]></MsgType>"));
    assert!(
        got[2]
            .xml
            .contains("<Content><![CDATA[好的 ]]]]><![CDATA[> <x>]]></Content>")
    );
    // Acknowledgements move forward only; the head's failures are counted.
    let l = listener.agentid;
    ok(
        &mut s,
        &ctx(10),
        Command::CallbackFailed {
            agentid: l,
            seq: 1,
            error: "connection refused".into(),
        },
    );
    assert_eq!(
        code(
            &mut s,
            &ctx(10),
            Command::CallbackFailed {
                agentid: l,
                seq: 2,
                error: "x".into()
            }
        ),
        Code::Stale
    );
    ok(
        &mut s,
        &ctx(11),
        Command::CallbackDelivered {
            agentid: l,
            upto: 2,
        },
    );
    assert_eq!(
        code(
            &mut s,
            &ctx(12),
            Command::CallbackDelivered {
                agentid: l,
                upto: 2
            }
        ),
        Code::Stale
    );
    assert_eq!(
        code(
            &mut s,
            &ctx(12),
            Command::CallbackDelivered {
                agentid: l,
                upto: 9
            }
        ),
        Code::Stale
    );
    let st: CallbackState = s.get_as(&keys::callback_state(l)).expect("g").expect("st");
    assert_eq!((st.acked, st.delivered, st.failures, st.next), (2, 2, 0, 4));
    assert_eq!(items(&s, l).len(), 1);
    // Removing the callback drops what is queued.
    ok(
        &mut s,
        &ctx(13),
        Command::UpdateApp {
            agentid: l,
            change: AppChange::SetCallback(None),
        },
    );
    assert!(items(&s, l).is_empty());
}

#[test]
fn a_full_queue_drops_new_events_and_counts_them() {
    let (mut s, app) = world();
    let cb = CallbackCfg {
        url: "https://10.0.0.9/cb".into(),
        token: "tok".into(),
        aes_key: "a".repeat(43),
    };
    ok(
        &mut s,
        &ctx(5),
        Command::UpdateApp {
            agentid: app.agentid,
            change: AppChange::SetCallback(Some(cb)),
        },
    );
    for i in 0..apply::MAX_QUEUED + 3 {
        let f = UserFields {
            userid: "a".into(),
            position: Some(format!("p{i}")),
            ..Default::default()
        };
        // Without `ok`: its state hashes would make this quadratic.
        let (out, _) = apply(
            &mut s,
            &ctx(6),
            &Command::PutUser {
                mode: PutMode::Update,
                fields: f,
            },
        )
        .expect("storage");
        assert!(out.is_ok());
    }
    let st: CallbackState = s
        .get_as(&keys::callback_state(app.agentid))
        .expect("g")
        .expect("st");
    assert_eq!((st.next - 1, st.dropped), (apply::MAX_QUEUED, 3));
}

fn media(s: &mut MemStore, agentid: u32, id: &str, bytes: &[u8]) {
    let w = as_app(100, agentid);
    for (i, c) in bytes.chunks(apply::jobs::MEDIA_CHUNK).enumerate() {
        ok(
            s,
            &w,
            Command::PutMedia {
                media_id: id.into(),
                agentid,
                index: i as u32,
                data: c.to_vec(),
            },
        );
    }
    let mut sha = [0u8; 32];
    sha.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    ok(
        s,
        &w,
        Command::SealMedia {
            media_id: id.into(),
            agentid,
            kind: "file".into(),
            filename: "u.csv".into(),
            size: bytes.len() as u64,
            sha256: sha,
            chunks: bytes.len().div_ceil(apply::jobs::MEDIA_CHUNK) as u32,
        },
    );
}

#[test]
fn uploads_are_checked_when_sealed() {
    let (mut s, app) = world();
    let w = as_app(100, app.agentid);
    ok(
        &mut s,
        &w,
        Command::PutMedia {
            media_id: "m1".into(),
            agentid: app.agentid,
            index: 0,
            data: b"abc".to_vec(),
        },
    );
    let wrong = Command::SealMedia {
        media_id: "m1".into(),
        agentid: app.agentid,
        kind: "file".into(),
        filename: "x".into(),
        size: 3,
        sha256: [0; 32],
        chunks: 1,
    };
    assert_eq!(code(&mut s, &w, wrong), Code::InvalidArgument);
    media(&mut s, app.agentid, "m2", b"hello");
    let meta: MediaMeta = s.get_as(&keys::media_meta("m2")).expect("g").expect("meta");
    assert_eq!(meta.expires_ms, 100 + apply::jobs::MEDIA_TTL_MS);
}

#[test]
fn job_steps_apply_once_report_bad_rows_and_replace_disables_the_absent() {
    let (mut s, app) = world();
    media(
        &mut s,
        app.agentid,
        "csv1",
        b"file bytes are opaque to the domain",
    );
    let w = as_app(200, app.agentid);
    let Done::Job(job) = ok(
        &mut s,
        &w,
        Command::CreateJob {
            agentid: app.agentid,
            kind: JobKind::ReplaceUser,
            media_id: "csv1".into(),
            columns: vec![],
            start: JobCursor::Rows { pos: 10, line: 2 },
            total: 3,
            callback: None,
        },
    ) else {
        panic!()
    };
    let sys = ctx(300);
    let rows = JobRows::Users(vec![
        (
            2,
            "a".into(),
            Ok(UserFields {
                userid: "a".into(),
                position: Some("boss".into()),
                ..Default::default()
            }),
        ),
        (3, "n1".into(), Ok(user("n1", "New", &[2]))),
        (
            4,
            "bad".into(),
            Err("department \"x\" is not a number".into()),
        ),
        (5, "n2".into(), Ok(user("n2", "Bad dept", &[999]))),
    ]);
    let step = |at: JobCursor, next: JobCursor, rows: JobRows| Command::JobStep {
        jobid: job.jobid.clone(),
        at,
        next,
        rows,
    };
    let r1 = JobCursor::Rows { pos: 10, line: 2 };
    let absent = JobCursor::Absent {
        step: 0,
        after: String::new(),
    };
    ok(&mut s, &sys, step(r1.clone(), absent.clone(), rows.clone()));
    assert_eq!(
        code(&mut s, &sys, step(r1, absent.clone(), rows)),
        Code::Stale
    );
    assert_eq!(query::member(&s, "a").expect("g").expect("m").title, "boss");
    assert!(query::member(&s, "n1").expect("g").is_some());
    assert!(
        query::member(&s, "n2").expect("g").is_none(),
        "bad department: row refused"
    );
    // b and c were not in the file: disabled.
    // The leader's `next` is not trusted in this phase: the step decides
    // (here: done, every member seen).
    ok(
        &mut s,
        &sys,
        step(absent, JobCursor::Cleanup { step: 9 }, JobRows::None),
    );
    for (u, st) in [
        ("a", MemberStatus::Active),
        ("b", MemberStatus::Disabled),
        ("c", MemberStatus::Disabled),
        ("n1", MemberStatus::Active),
    ] {
        assert_eq!(
            query::member(&s, u).expect("g").expect("m").status,
            st,
            "{u}"
        );
    }
    // Listed members carry the job's stamp; a row listed but bad keeps
    // its member from being disabled.
    assert_eq!(query::profile(&s, "a").expect("p").synced_by, job.jobid);
    let done: Job = s.get_as(&keys::job(&job.jobid)).expect("g").expect("job");
    assert_eq!(
        (done.processed, done.failed, done.removed, done.cursor),
        (4, 2, 2, JobCursor::Done)
    );
    let results: Vec<RowResult> = s
        .scan_as::<Vec<RowResult>>(&keys::job_results(&job.jobid), None, 10)
        .expect("scan")
        .into_iter()
        .flat_map(|(_, r)| r)
        .collect();
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| r.code.is_some())
        .map(|r| r.key.as_str())
        .collect();
    assert_eq!(failed, vec!["bad", "n2"]);
}

#[test]
fn replace_party_deletes_absent_departments_children_first() {
    let (mut s, app) = world();
    media(&mut s, app.agentid, "p1", b"x");
    let w = as_app(200, app.agentid);
    let Done::Job(job) = ok(
        &mut s,
        &w,
        Command::CreateJob {
            agentid: app.agentid,
            kind: JobKind::ReplaceParty,
            media_id: "p1".into(),
            columns: vec![],
            start: JobCursor::Rows { pos: 0, line: 2 },
            total: 2,
            callback: None,
        },
    ) else {
        panic!()
    };
    let sys = ctx(300);
    let rows = JobRows::Parties(vec![
        (
            2,
            "1".into(),
            Ok(DeptFields {
                id: Some(1),
                parent: None,
                name: Some("Corp".into()),
                order: None,
            }),
        ),
        (3, "5".into(), Ok(dept(5, 1, "Legal"))),
    ]);
    let absent = JobCursor::Absent {
        step: 0,
        after: String::new(),
    };
    ok(
        &mut s,
        &sys,
        Command::JobStep {
            jobid: job.jobid.clone(),
            at: JobCursor::Rows { pos: 0, line: 2 },
            next: absent.clone(),
            rows,
        },
    );
    assert_eq!(
        apply::jobs::absent_departments(&s, &job.jobid, 10).expect("absent"),
        vec![3, 2]
    );
    ok(
        &mut s,
        &sys,
        Command::JobStep {
            jobid: job.jobid.clone(),
            at: absent,
            next: JobCursor::Done,
            rows: JobRows::None,
        },
    );
    let ids: Vec<u64> = query::departments(&s)
        .expect("d")
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, vec![1, 5]);
    // Members of deleted departments now belong to the root.
    for u in ["b", "c"] {
        assert_eq!(
            query::member(&s, u).expect("g").expect("m").departments,
            vec![1],
            "{u}"
        );
    }
}

/// Not a test: how long the domain itself takes to deliver one app message
/// to 1,000 members (in memory, no sled). `cargo test --release -p
/// enclave-node --lib fanout_cost -- --ignored --nocapture`.
#[test]
#[ignore]
fn fanout_cost() {
    let (mut s, app) = world();
    let w = as_app(20, app.agentid);
    for i in 0..1000 {
        ok(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Create,
                fields: user(&format!("f{i:04}"), "F", &[3]),
            },
        );
    }
    for round in 0..5 {
        let t = std::time::Instant::now();
        let cmd = Command::AppSend {
            agentid: app.agentid,
            to: Recipients {
                parties: vec![3],
                ..Default::default()
            },
            content: text("fan"),
            dedup_ms: 0,
        };
        let (out, events) = apply(&mut s, &w, &cmd).expect("apply");
        assert!(out.is_ok());
        println!(
            "round {round}: {} events in {:?}",
            events.len(),
            t.elapsed()
        );
    }
}

fn app_file(s: &mut MemStore, agentid: u32, id: char) -> crate::domain::files::BlobRecord {
    let f = crate::domain::files::BlobRecord {
        id: format!("f{}", id.to_string().repeat(32)),
        name: "report.pdf".into(),
        kind: crate::domain::files::FileKind::File,
        mime: "application/pdf".into(),
        class: "document".into(),
        size: 10,
        sha256: [1; 32],
        chunks: vec![[2; 32]],
        uploader: format!("app:{agentid}"),
        created_ms: 0,
        width: 0,
        height: 0,
        thumb: None,
        duration_ms: 0,
    };
    ok(
        s,
        &as_app(5, agentid),
        Command::RecordFile { file: f.clone() },
    );
    query::file(s, &f.id).expect("read").expect("recorded")
}

#[test]
fn an_app_message_carries_the_apps_own_file_to_every_recipient() {
    let (mut s, app) = world();
    let other = new_app(&mut s, "OA", &[Scope::MessageSend], 2);
    let f = app_file(&mut s, app.agentid, 'a');
    let theirs = app_file(&mut s, other.agentid, 'b');
    let send = |file: Option<crate::domain::files::FileRef>| Command::AppSend {
        agentid: app.agentid,
        to: Recipients {
            users: vec!["a".into(), "b".into()],
            ..Default::default()
        },
        content: AppContent {
            text: "[文件] report.pdf".into(),
            rich: None,
            safe: false,
            file,
        },
        dedup_ms: 0,
    };
    // Another app's file, or none at all: refused.
    let w = as_app(20, app.agentid);
    assert_eq!(
        code(&mut s, &w, send(Some(theirs.reference()))),
        Code::NotFound
    );
    let mut ghost = f.reference();
    ghost.id = format!("f{}", "c".repeat(32));
    assert_eq!(code(&mut s, &w, send(Some(ghost))), Code::NotFound);
    // The command's reference is replaced by the record's own.
    let mut forged = f.reference();
    forged.size = 999;
    let Done::AppSent { msgid, .. } = ok(&mut s, &w, send(Some(forged))) else {
        panic!()
    };
    for u in ["a", "b"] {
        let page = query::sync(&s, u, 0, 100).expect("sync");
        let msg = page
            .events
            .iter()
            .find_map(|e| match &e.body {
                EventBody::Message { message } => Some(message.clone()),
                _ => None,
            })
            .expect("message");
        assert_eq!(msg.file.as_ref(), Some(&f.reference()), "{u}");
        assert_eq!(msg.text, "[文件] report.pdf");
        // The recipient may download it.
        assert!(query::file_for(&s, u, &f.id).expect("read").is_ok(), "{u}");
    }
    assert!(query::file_for(&s, "c", &f.id).expect("read").is_err());
    // Recalling the message takes the file back.
    ok(
        &mut s,
        &as_app(30, app.agentid),
        Command::AppRecall {
            agentid: app.agentid,
            msgid,
        },
    );
    assert_eq!(query::file(&s, &f.id).expect("read"), None);
}
