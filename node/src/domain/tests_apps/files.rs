//! Files an app sends.

use super::*;

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
