//! The invariants: every acknowledged message exactly once where it was
//! sent, and the seed's counts.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;

use super::conn::{Conn, pool};
use super::progress::Progress;
use super::seed::{Ack, Seed, existing_members, list_all, our_group, share, userid};
use super::{Invariant, VerifyVia};

const SYNC_BUDGET: usize = 200_000;

#[derive(Debug, Default)]
struct Tally {
    checked: usize,
    missing: usize,
    duplicated: usize,
    misplaced: usize,
    via_history: usize,
    example: Option<String>,
}

/// Marker (the first word of a message's text) → where `me` sent it.
type Seen = HashMap<String, Vec<(String, u64)>>;

fn note(seen: &mut Seen, me: &str, m: &Value) {
    if m["sender"].as_str() == Some(me) {
        let marker = m["text"]
            .as_str()
            .unwrap_or("")
            .split(' ')
            .next()
            .unwrap_or("");
        let at = (
            m["conversation"].as_str().unwrap_or("").to_string(),
            m["seq"].as_u64().unwrap_or(0),
        );
        seen.entry(marker.to_string()).or_default().push(at);
    }
}

fn tally(acks: &[&Ack], seen: &Seen) -> Tally {
    let mut t = Tally {
        checked: acks.len(),
        ..Default::default()
    };
    for a in acks {
        let problem = match seen.get(&a.marker).map_or(&[][..], Vec::as_slice) {
            [(c, s)] if *c == a.conv && *s == a.seq => continue,
            [] => (&mut t.missing, "missing"),
            [_] => (&mut t.misplaced, "at another conversation or seq"),
            _ => (&mut t.duplicated, "there more than once"),
        };
        *problem.0 += 1;
        t.example.get_or_insert_with(|| {
            format!("{} seq {} ({}) {}", a.conv, a.seq, a.marker, problem.1)
        });
    }
    t
}

/// Find `me`'s acknowledged messages: in its sync stream from token 0
/// (looking again for up to 10 s, for a node still applying), or in the
/// histories of the conversations they went to.
async fn check_sender(
    c: &mut Conn,
    token: &str,
    me: &str,
    acks: &[&Ack],
    via: VerifyVia,
) -> anyhow::Result<Tally> {
    let mut seen = Seen::new();
    if via != VerifyVia::History {
        let budget = if via == VerifyVia::Sync {
            usize::MAX
        } else {
            SYNC_BUDGET
        };
        let (mut since, mut events) = ("0".to_string(), 0usize);
        for round in 0..10 {
            loop {
                let v = c
                    .get(&format!("/v1/sync?since={since}&limit=5000"), Some(token))
                    .await?;
                for e in v["events"].as_array().into_iter().flatten() {
                    events += 1;
                    if e["type"] == "message" {
                        note(&mut seen, me, &e["message"]);
                    }
                }
                if let Some(next) = v["next"].as_str() {
                    since = next.to_string();
                }
                if events > budget || v["more"].as_bool() != Some(true) {
                    break;
                }
            }
            let t = tally(acks, &seen);
            if events > budget {
                break;
            } else if t.missing == 0 || round == 9 {
                return Ok(t);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        seen.clear();
    }
    for conv in acks
        .iter()
        .map(|a| a.conv.as_str())
        .collect::<BTreeSet<_>>()
    {
        let mut after = 0;
        loop {
            let q = format!("after_seq={after}&limit=1000&consistency=linearizable");
            let v = c
                .get(
                    &format!("/v1/conversations/{conv}/messages?{q}"),
                    Some(token),
                )
                .await?;
            for m in v["messages"].as_array().into_iter().flatten() {
                note(&mut seen, me, m);
            }
            match v["next_after_seq"].as_u64() {
                Some(n) => after = n,
                None => break,
            }
        }
    }
    Ok(Tally {
        via_history: 1,
        ..tally(acks, &seen)
    })
}

pub(super) async fn verify(
    s: &Seed<'_>,
    tokens: &[String],
    acks: &[Ack],
    via: VerifyVia,
) -> anyhow::Result<Vec<Invariant>> {
    let mut by: BTreeMap<usize, Vec<&Ack>> = BTreeMap::new();
    for a in acks {
        by.entry(a.sender).or_default().push(a);
    }
    let senders: Vec<(&usize, &Vec<&Ack>)> = by.iter().collect();
    let p = Progress::start("verify", senders.len());
    let tallies = pool(
        &mut s.conns(false),
        senders.len(),
        &p,
        async |c: &mut Conn, i| {
            check_sender(
                c,
                &tokens[*senders[i].0],
                &userid(*senders[i].0),
                senders[i].1,
                via,
            )
            .await
        },
    )
    .await?;
    p.finish();
    let mut t = Tally::default();
    for x in tallies {
        (t.checked, t.missing, t.duplicated) = (
            t.checked + x.checked,
            t.missing + x.missing,
            t.duplicated + x.duplicated,
        );
        (t.misplaced, t.via_history) = (t.misplaced + x.misplaced, t.via_history + x.via_history);
        t.example = t.example.or(x.example);
    }
    let bad = t.missing + t.duplicated + t.misplaced;
    let how = format!(
        "{} senders via sync from token 0, {} via conversation history",
        senders.len() - t.via_history,
        t.via_history
    );
    let mut detail = format!(
        "{} acknowledged messages ({how}): {} missing, {} more than once, {} elsewhere",
        t.checked, t.missing, t.duplicated, t.misplaced
    );
    if let Some(e) = t.example {
        detail += &format!("; e.g. {e}");
    }
    let mut out = vec![Invariant {
        name: "messages_exactly_once",
        ok: bad == 0,
        detail,
    }];

    let mut admin = Conn::new(s.admin, &s.ctr, true);
    let have = existing_members(&mut admin).await?;
    let present = (0..s.n).filter(|i| have.contains(&userid(*i))).count();
    let detail = format!(
        "{present} of {} (scale-… members in all: {})",
        s.n,
        have.len()
    );
    out.push(Invariant {
        name: "members",
        ok: present == s.n,
        detail,
    });

    let v = admin.get("/v1/directory/departments", None).await?;
    let depts: HashMap<u64, (Option<u64>, &str)> =
        (v["departments"].as_array().into_iter().flatten())
            .map(|d| {
                (
                    d["id"].as_u64().unwrap_or(0),
                    (d["parent"].as_u64(), d["name"].as_str().unwrap_or("")),
                )
            })
            .collect();
    let root = depts.get(&1).is_some_and(|d| d.1 == "Enterprise");
    let present = s
        .depts
        .iter()
        .filter(|d| depts.get(&d.id).is_some_and(|x| x.0 == Some(d.parent)))
        .count();
    let detail = format!(
        "root named Enterprise: {root}; {present} of {} below it in place",
        s.depts.len()
    );
    out.push(Invariant {
        name: "departments",
        ok: root && present == s.depts.len(),
        detail,
    });

    let p = Progress::start("verify-listing", s.active);
    let lists = list_all(&mut s.conns(false), tokens, s.active, &p).await?;
    p.finish();
    let (mut wrong, mut extra, mut short_direct, mut example) = (0, 0, 0, None);
    for (o, l) in lists.iter().enumerate() {
        let me = userid(o);
        let owned: Vec<usize> = l.convs.iter().filter_map(|c| our_group(c, &me)).collect();
        let planned: Vec<usize> = (owned.iter().copied())
            .filter(|g| *g < s.groups && g % s.active == o)
            .collect();
        extra += owned.len() - planned.len();
        let want = share(s.groups, s.active, o);
        if planned.len() != want || planned.iter().collect::<HashSet<_>>().len() != want {
            wrong += 1;
            example.get_or_insert(format!("{me} owns {} of its {want}", planned.len()));
        }
        let direct = l.convs.iter().filter(|c| c.kind == "direct").count();
        short_direct += usize::from(direct < share(s.direct, s.active, o));
    }
    let e = example.map(|e| format!(", e.g. {e}")).unwrap_or_default();
    let detail = format!(
        "{wrong} of {} owners without each of their groups exactly once{e}; {extra} benchmark groups of other sizes",
        s.active
    );
    out.push(Invariant {
        name: "groups_owned",
        ok: wrong == 0,
        detail,
    });
    let detail = format!(
        "{short_direct} of {} senders with fewer 1:1s than seeded",
        s.active
    );
    out.push(Invariant {
        name: "direct_conversations",
        ok: short_direct == 0,
        detail,
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_tally_tells_missing_duplicated_and_misplaced() {
        let ack = |m: &str, seq| Ack {
            sender: 0,
            conv: "g1".into(),
            seq,
            marker: m.into(),
        };
        let acks = [ack("a", 1), ack("b", 2), ack("c", 3), ack("d", 4)];
        let mut seen = Seen::new();
        for (m, conv, seq) in [
            ("a", "g1", 1),
            ("b", "g1", 2),
            ("b", "g1", 9),
            ("c", "g2", 3),
        ] {
            note(
                &mut seen,
                "me",
                &json!({ "sender": "me", "text": format!("{m} x"), "conversation": conv, "seq": seq }),
            );
        }
        note(
            &mut seen,
            "me",
            &json!({ "sender": "other", "text": "d x", "conversation": "g1", "seq": 4 }),
        );
        let t = tally(&acks.iter().collect::<Vec<_>>(), &seen);
        assert_eq!(
            (t.checked, t.missing, t.duplicated, t.misplaced),
            (4, 1, 1, 1)
        );
    }
}
