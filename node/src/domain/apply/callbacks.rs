//! The queue of event callbacks each app is sent: directory changes
//! (`change_contact`), members' replies to the app (`text`), the end of a
//! bulk job (`batch_job_result`).
//!
//! Events are queued at apply, so every node holds the same queue; the
//! leader delivers them in order and reports back (`CallbackDelivered`,
//! `CallbackFailed`), so a leader change neither loses nor re-orders them
//! (at most the event in flight is sent again: receivers dedup by
//! `EnclaveEventId`). The plaintext XML is stored; it is encrypted and
//! signed at delivery, with fresh randomness, outside apply.

use super::*;

/// Events kept per app; beyond this new events are dropped and counted.
pub const MAX_QUEUED: u64 = 10_000;

/// XML character data, safe for any text (`]]>` is split).
pub fn cdata(s: &str) -> String {
    format!("<![CDATA[{}]]>", s.replace("]]>", "]]]]><![CDATA[>"))
}

/// A WeCom callback XML message from its (element, text) fields.
fn xml(fields: &[(&str, String)]) -> String {
    let mut out = String::from("<xml>");
    for (name, value) in fields {
        out.push_str(&format!("<{name}>{value}</{name}>"));
    }
    out.push_str("</xml>");
    out
}

/// Queue an event for `agentid` (or for `target`, a job's own callback).
/// `fields` come after the common header; the queue adds the event id.
pub(super) fn enqueue<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    kind: &str,
    header: Header<'_>,
    fields: Vec<(&str, String)>,
    target: Option<CallbackCfg>,
) -> Result<(), StoreFault> {
    let Some(corp) = super::apps::corp(s)? else {
        return Ok(());
    };
    let key = keys::callback_state(agentid);
    let mut st: CallbackState = s.get_as(&key)?.unwrap_or_default();
    if st.next == 0 {
        st.next = 1;
    }
    if st.next - 1 - st.acked >= MAX_QUEUED {
        st.dropped += 1;
        return s.put_as(&key, &st);
    }
    let seq = st.next;
    st.next += 1;
    let mut all = vec![
        ("ToUserName", cdata(&corp.corpid)),
        ("FromUserName", cdata(header.from)),
        ("CreateTime", (ctx.time_ms / 1000).to_string()),
        ("MsgType", cdata(header.msg_type)),
    ];
    all.extend(fields);
    all.push(("AgentID", agentid.to_string()));
    all.push(("EnclaveEventId", format!("{agentid}-{seq}")));
    let item = CallbackItem {
        seq,
        time_ms: ctx.time_ms,
        kind: kind.to_string(),
        xml: xml(&all),
        target,
    };
    s.put_as(&keys::callback_item(agentid, seq), &item)?;
    s.put_as(&key, &st)
}

/// The start of every callback message.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header<'a> {
    pub from: &'a str,
    pub msg_type: &'a str,
}

/// Apps told of directory changes: a callback, a directory scope, enabled,
/// and not the app that made the change.
fn contact_listeners<S: Store>(s: &Overlay<'_, S>, ctx: &Ctx) -> Result<Vec<u32>, StoreFault> {
    let mut out = Vec::new();
    for (k, _) in s.scan(keys::APPS_WITH_CALLBACK, None, usize::MAX)? {
        let Some(id) = k
            .get(keys::APPS_WITH_CALLBACK.len()..)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(u32::from_be_bytes)
        else {
            continue;
        };
        if Some(id) == ctx.app {
            continue;
        }
        if let Some(app) = s.get_as::<App>(&keys::app(id))?
            && app.enabled
            && app.allows(Scope::DirectoryRead)
        {
            out.push(id);
        }
    }
    Ok(out)
}

/// A directory change, as WeCom's `change_contact` event describes it.
pub(super) fn contact_changed<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    change_type: &str,
    fields: Vec<(&'static str, String)>,
) -> Result<(), StoreFault> {
    for agentid in contact_listeners(s, ctx)? {
        let mut f = vec![
            ("Event", cdata("change_contact")),
            ("ChangeType", cdata(change_type)),
        ];
        f.extend(fields.iter().cloned());
        enqueue(
            s,
            ctx,
            agentid,
            "change_contact",
            Header {
                from: "sys",
                msg_type: "event",
            },
            f,
            None,
        )?;
    }
    Ok(())
}

/// The fields of a member in `create_user` / `update_user` events.
pub(super) fn user_fields(m: &Member) -> Vec<(&'static str, String)> {
    let depts: Vec<String> = m.departments.iter().map(u64::to_string).collect();
    vec![
        ("UserID", cdata(&m.userid)),
        ("Name", cdata(&m.name)),
        ("Department", cdata(&depts.join(","))),
        ("Position", cdata(&m.title)),
        ("Mobile", cdata(&m.mobile)),
        ("Email", cdata(&m.email)),
        (
            "Status",
            match m.status {
                MemberStatus::Active => "1",
                MemberStatus::Disabled => "2",
                MemberStatus::Departed => "5",
            }
            .to_string(),
        ),
    ]
}

/// The fields of a department in `create_party` / `update_party` events.
pub(super) fn party_fields(d: &Department) -> Vec<(&'static str, String)> {
    vec![
        ("Id", d.id.to_string()),
        ("Name", cdata(&d.name)),
        ("ParentId", d.parent.unwrap_or(0).to_string()),
        ("Order", d.order.to_string()),
    ]
}

/// A member wrote in their conversation with an app: the app is told.
pub(super) fn reply_to_app<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    msg: &Message,
) -> Result<(), StoreFault> {
    let Some(app) = s.get_as::<App>(&keys::app(agentid))? else {
        return Ok(());
    };
    if app.callback.is_none() || !app.enabled {
        return Ok(());
    }
    enqueue(
        s,
        ctx,
        agentid,
        "text",
        Header {
            from: &msg.sender,
            msg_type: "text",
        },
        vec![
            ("Content", cdata(&msg.text)),
            ("MsgId", msg.event.to_string()),
        ],
        None,
    )
}

/// Drop everything queued for an app (its callback was removed).
pub(super) fn clear_queue<S: Store>(
    s: &mut Overlay<'_, S>,
    agentid: u32,
) -> Result<(), StoreFault> {
    let key = keys::callback_state(agentid);
    let Some(mut st) = s.get_as::<CallbackState>(&key)? else {
        return Ok(());
    };
    for (k, _) in s.scan(&keys::callback_items(agentid), None, usize::MAX)? {
        s.delete(&k);
    }
    st.dropped += st.next.saturating_sub(1).saturating_sub(st.acked);
    st.acked = st.next.saturating_sub(1);
    st.failures = 0;
    s.put_as(&key, &st)
}

pub(super) fn delivered<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    upto: u64,
) -> R<Done> {
    let key = keys::callback_state(agentid);
    let Some(mut st) = s.get_as::<CallbackState>(&key)? else {
        return Ok(refuse(
            Code::NotFound,
            format!("no callbacks for app {agentid}"),
        ));
    };
    ensure!(
        upto > st.acked && upto < st.next,
        Code::Stale,
        "callbacks of app {agentid} are acknowledged up to {} (queued up to {})",
        st.acked,
        st.next.saturating_sub(1)
    );
    for seq in st.acked + 1..=upto {
        s.delete(&keys::callback_item(agentid, seq));
    }
    st.delivered += upto - st.acked;
    st.acked = upto;
    st.failures = 0;
    st.last_ok_ms = ctx.time_ms;
    s.put_as(&key, &st)?;
    Ok(Ok(Done::Ok))
}

pub(super) fn failed<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    agentid: u32,
    seq: u64,
    error: &str,
) -> R<Done> {
    let key = keys::callback_state(agentid);
    let Some(mut st) = s.get_as::<CallbackState>(&key)? else {
        return Ok(refuse(
            Code::NotFound,
            format!("no callbacks for app {agentid}"),
        ));
    };
    ensure!(
        seq == st.acked + 1,
        Code::Stale,
        "event {seq} is not at the head of app {agentid}'s queue"
    );
    st.failures = st.failures.saturating_add(1);
    st.last_error = error.chars().take(300).collect();
    st.last_error_ms = ctx.time_ms;
    s.put_as(&key, &st)?;
    Ok(Ok(Done::Ok))
}
