//! Registration, scopes, disabling and secret rotation.

use super::*;

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
