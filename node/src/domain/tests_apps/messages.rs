//! App messages and their fan-out, app chats, sign-in codes.

use super::*;

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
