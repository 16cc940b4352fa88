//! Callback queues.

use super::*;

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
