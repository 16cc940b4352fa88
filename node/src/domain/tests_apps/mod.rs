//! Tests of integrated apps over the in-memory store: registration and
//! scopes, WeCom-style directory writes, app messages and chats, bulk
//! jobs, sign-in codes, callback queues.

use super::store::StoreExt;
use super::*;

mod callbacks;
mod directory;
mod files;
mod jobs;
mod messages;
mod registration;

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
