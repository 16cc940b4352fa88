//! A history checker for failover tests (issue 6 groundwork): clients
//! append uniquely-identified messages to conversations through random
//! nodes and read them back; every operation is recorded with its outcome
//! and times. After healing, the checker compares the history with what
//! every live node holds, the way Jepsen's list-append checks do:
//!
//! - every acknowledged append is present exactly once on every node;
//! - each conversation's sequence is gap-free and identical on all nodes;
//! - an append whose outcome was unknown appears at most once;
//! - a failed (refused) append does not appear;
//! - reads are linearizable per conversation: a read that began after an
//!   append was acknowledged sees it, and reads never go backwards in
//!   real time.
//!
//! A failure names the minimal evidence: the operations involved.

use std::collections::{BTreeMap, HashMap, HashSet};

/// What happened to one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged; for an append, the sequence number it got.
    Ok(Option<u64>),
    /// Refused: definitely did not happen.
    Fail,
    /// Timed out or the connection broke: may or may not have happened.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Append message `id` to `conv`.
    Append { conv: String, id: String },
    /// Read `conv` from position `from + 1`: the ids seen, in sequence
    /// order (`from` messages were skipped; the read's head is
    /// `from + seen.len()`).
    Read {
        conv: String,
        from: u64,
        seen: Vec<String>,
    },
}

/// One recorded operation, with monotonic times (any unit, e.g. µs since
/// the test started).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub client: usize,
    pub op: Op,
    pub invoked: u64,
    pub completed: u64,
    pub outcome: Outcome,
    /// The node that served it (index).
    pub node: usize,
}

/// Final state of one node: per conversation, (seq, id) in seq order.
pub type NodeState = BTreeMap<String, Vec<(u64, String)>>;

/// Check `history` against the final states of the live nodes. Returns
/// every violation found (empty = the history is valid).
pub fn check(history: &[Event], nodes: &[(String, NodeState)]) -> Vec<String> {
    let mut problems = Vec::new();
    // 1. Every node: gap-free sequences, no duplicate ids.
    for (name, state) in nodes {
        for (conv, msgs) in state {
            for (i, (seq, _)) in msgs.iter().enumerate() {
                if *seq != i as u64 + 1 {
                    problems.push(format!(
                        "{name}: {conv} has seq {seq} at position {} (gap or reorder)",
                        i + 1
                    ));
                    break;
                }
            }
            let mut seen = HashSet::new();
            for (seq, id) in msgs {
                if !seen.insert(id) {
                    problems.push(format!(
                        "{name}: {conv}: message {id} appears twice (again at seq {seq})"
                    ));
                }
            }
        }
    }
    // 2. All nodes identical.
    if let Some((first_name, first)) = nodes.first() {
        for (name, state) in &nodes[1..] {
            if state != first {
                let conv = first
                    .keys()
                    .chain(state.keys())
                    .find(|c| first.get(*c) != state.get(*c))
                    .cloned()
                    .unwrap_or_default();
                problems.push(format!(
                    "{name} and {first_name} differ on {conv}: {:?} vs {:?}",
                    state.get(&conv).map(|v| v.len()),
                    first.get(&conv).map(|v| v.len())
                ));
            }
        }
    }
    let Some((_, reference)) = nodes.first() else {
        return problems;
    };
    let position: HashMap<(&str, &str), u64> = reference
        .iter()
        .flat_map(|(c, msgs)| {
            msgs.iter()
                .map(move |(s, id)| ((c.as_str(), id.as_str()), *s))
        })
        .collect();
    // 3. Appends: acknowledged present (at the acknowledged seq), failed
    // absent, unknown at most once (duplicates caught above).
    let other_outcome: HashSet<(&str, &str)> = history
        .iter()
        .filter_map(|e| match (&e.op, &e.outcome) {
            (_, Outcome::Fail) => None,
            (Op::Append { conv, id }, _) => Some((conv.as_str(), id.as_str())),
            _ => None,
        })
        .collect();
    for e in history {
        let Op::Append { conv, id } = &e.op else {
            continue;
        };
        let at = position.get(&(conv.as_str(), id.as_str()));
        match (&e.outcome, at) {
            (Outcome::Ok(_), None) => problems.push(format!(
                "acknowledged append of {id} to {conv} (client {}, done at {}) is missing",
                e.client, e.completed
            )),
            (Outcome::Ok(Some(seq)), Some(s)) if seq != s => problems.push(format!(
                "append of {id} to {conv} was acknowledged as seq {seq} but is stored at {s}"
            )),
            // A refused retry says nothing about an earlier attempt with
            // the same idempotency key: only flag ids never attempted
            // with another outcome.
            (Outcome::Fail, Some(s)) if !other_outcome.contains(&(conv.as_str(), id.as_str())) => {
                problems.push(format!(
                    "append of {id} to {conv} was refused (client {}, node {}, at {}) but is stored at seq {s}",
                    e.client, e.node, e.invoked
                ))
            }
            _ => {}
        }
    }
    // 4. Linearizable reads, per conversation.
    // 4. Linearizable reads, per conversation. A read's `seen` must be a
    // prefix of the final order (so it is "the first k messages"); every
    // append acknowledged before the read began must be among them, and a
    // read that began after another ended must not see fewer messages.
    // Sorted sweeps keep this O(n log n) for long soak histories.
    let mut acked_by_conv: HashMap<&str, Vec<(u64, u64, &Event)>> = HashMap::new();
    for e in history {
        if let (Op::Append { conv, id }, Outcome::Ok(_)) = (&e.op, &e.outcome)
            && let Some(pos) = position.get(&(conv.as_str(), id.as_str()))
        {
            acked_by_conv
                .entry(conv.as_str())
                .or_default()
                .push((e.completed, *pos, e));
        }
    }
    // Per conversation: acks sorted by completion, with the running
    // maximum final position (and the append that holds it).
    // (completion times, running (max position, append holding it))
    type Frontier<'a> = (Vec<u64>, Vec<(u64, &'a Event)>);
    let mut frontier: HashMap<&str, Frontier> = HashMap::new();
    for (conv, mut acks) in acked_by_conv {
        acks.sort_by_key(|a| a.0);
        let mut times = Vec::with_capacity(acks.len());
        let mut best: Vec<(u64, &Event)> = Vec::with_capacity(acks.len());
        for (t, pos, e) in acks {
            let keep = match best.last() {
                Some((p, _)) if *p >= pos => best[best.len() - 1],
                _ => (pos, e),
            };
            times.push(t);
            best.push(keep);
        }
        frontier.insert(conv, (times, best));
    }
    let mut reads_by_conv: HashMap<&str, Vec<&Event>> = HashMap::new();
    for e in history {
        if let (Op::Read { conv, .. }, Outcome::Ok(_)) = (&e.op, &e.outcome) {
            reads_by_conv.entry(conv.as_str()).or_default().push(e);
        }
    }
    for (conv, reads) in &reads_by_conv {
        for r in reads {
            let Op::Read { seen, from, .. } = &r.op else {
                continue;
            };
            let head = from + seen.len() as u64;
            if let Some(msgs) = reference.get(*conv) {
                let prefix: Vec<&str> = msgs
                    .iter()
                    .skip(*from as usize)
                    .take(seen.len())
                    .map(|(_, id)| id.as_str())
                    .collect();
                let got: Vec<&str> = seen.iter().map(String::as_str).collect();
                if prefix != got {
                    let at = prefix
                        .iter()
                        .zip(&got)
                        .position(|(a, b)| a != b)
                        .unwrap_or(prefix.len().min(got.len()));
                    problems.push(format!(
                        "read by client {} of {conv} on node {} at {} is not a prefix of the final order: \
                         position {} holds {:?} but the read saw {:?}",
                        r.client,
                        r.node,
                        r.invoked,
                        *from as usize + at + 1,
                        prefix.get(at),
                        got.get(at)
                    ));
                    continue;
                }
            }
            if let Some((times, best)) = frontier.get(conv) {
                // Acks completed strictly before the read was invoked.
                let n = times.partition_point(|t| *t < r.invoked);
                if n > 0 {
                    let (pos, a) = best[n - 1];
                    if pos > head
                        && let Op::Append { id, .. } = &a.op
                    {
                        problems.push(format!(
                            "stale read: client {} read {conv} on node {} at {} and saw {} messages, \
                             without {id} (seq {pos}), acknowledged at {} to client {} by node {}",
                            r.client,
                            r.node,
                            r.invoked,
                            head,
                            a.completed,
                            a.client,
                            a.node
                        ));
                    }
                }
            }
        }
        // Reads never go backwards: sort by completion, running max length.
        let mut by_done: Vec<&Event> = reads.clone();
        by_done.sort_by_key(|e| e.completed);
        let mut times = Vec::with_capacity(by_done.len());
        let mut longest: Vec<(u64, &Event)> = Vec::with_capacity(by_done.len());
        for e in &by_done {
            let Op::Read { seen, from, .. } = &e.op else {
                continue;
            };
            let head = from + seen.len() as u64;
            let keep = match longest.last() {
                Some((l, _)) if *l >= head => longest[longest.len() - 1],
                _ => (head, *e),
            };
            times.push(e.completed);
            longest.push(keep);
        }
        for b in reads {
            let Op::Read {
                seen: sb, from: fb, ..
            } = &b.op
            else {
                continue;
            };
            let hb = fb + sb.len() as u64;
            let n = times.partition_point(|t| *t < b.invoked);
            if n > 0 {
                let (la, a) = longest[n - 1];
                if hb < la {
                    problems.push(format!(
                        "read of {conv} went backwards: client {} saw {la} messages on node {} (done at {}), \
                         then client {} saw {} on node {} (begun at {})",
                        a.client,
                        a.node,
                        a.completed,
                        b.client,
                        hb,
                        b.node,
                        b.invoked
                    ));
                }
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(client: usize, conv: &str, id: &str, t: (u64, u64), outcome: Outcome) -> Event {
        Event {
            client,
            op: Op::Append {
                conv: conv.into(),
                id: id.into(),
            },
            invoked: t.0,
            completed: t.1,
            outcome,
            node: 0,
        }
    }

    fn read(client: usize, conv: &str, seen: &[&str], t: (u64, u64)) -> Event {
        Event {
            client,
            op: Op::Read {
                conv: conv.into(),
                from: 0,
                seen: seen.iter().map(|s| s.to_string()).collect(),
            },
            invoked: t.0,
            completed: t.1,
            outcome: Outcome::Ok(None),
            node: 0,
        }
    }

    fn tail_read(client: usize, from: u64, seen: &[&str], t: (u64, u64)) -> Event {
        let mut e = read(client, "c", seen, t);
        if let Op::Read { from: f, .. } = &mut e.op {
            *f = from;
        }
        e
    }

    #[test]
    fn reads_of_a_tail_are_checked_against_their_positions() {
        let nodes = vec![("n1".into(), state(&["a", "b", "d"]))];
        // Positions 2..=3 after skipping one message: fine.
        let mut ok = good_history();
        ok.push(tail_read(4, 1, &["b", "d"], (40, 41)));
        assert_eq!(check(&ok, &nodes), Vec::<String>::new());
        // Wrong message at position 3.
        let mut wrong = good_history();
        wrong.push(tail_read(4, 2, &["b"], (40, 41)));
        let w = check(&wrong, &nodes);
        assert!(w.iter().any(|p| p.contains("position 3")), "{w:?}");
        // A node shorter than the reader's overlap returns nothing: the
        // read's head (2) is below the acknowledged d (position 3).
        let mut stale = good_history();
        stale.push(tail_read(4, 2, &[], (40, 41)));
        let st = check(&stale, &nodes);
        assert!(
            st.iter()
                .any(|p| p.contains("stale read") && p.contains("saw 2 messages")),
            "{st:?}"
        );
        assert!(st.iter().any(|p| p.contains("went backwards")), "{st:?}");
    }

    fn state(msgs: &[&str]) -> NodeState {
        let mut s = NodeState::new();
        s.insert(
            "c".into(),
            msgs.iter()
                .enumerate()
                .map(|(i, m)| (i as u64 + 1, m.to_string()))
                .collect(),
        );
        s
    }

    fn good_history() -> Vec<Event> {
        vec![
            append(1, "c", "a", (0, 10), Outcome::Ok(Some(1))),
            append(2, "c", "b", (5, 20), Outcome::Unknown),
            append(1, "c", "x", (11, 12), Outcome::Fail),
            read(3, "c", &["a"], (15, 16)),
            append(1, "c", "d", (21, 30), Outcome::Ok(Some(3))),
            read(3, "c", &["a", "b", "d"], (31, 32)),
        ]
    }

    #[test]
    fn a_valid_history_passes() {
        let nodes = vec![
            ("n1".into(), state(&["a", "b", "d"])),
            ("n2".into(), state(&["a", "b", "d"])),
        ];
        assert_eq!(check(&good_history(), &nodes), Vec::<String>::new());
    }

    #[test]
    fn each_kind_of_violation_is_named() {
        let h = good_history();
        let lost = check(&h, &[("n1".into(), state(&["a", "b"]))]);
        assert!(
            lost.iter()
                .any(|p| p.contains("d to c") && p.contains("missing")),
            "{lost:?}"
        );
        let dup = check(&h, &[("n1".into(), state(&["a", "b", "b", "d"]))]);
        assert!(dup.iter().any(|p| p.contains("appears twice")), "{dup:?}");
        let diverged = check(
            &h,
            &[
                ("n1".into(), state(&["a", "b", "d"])),
                ("n2".into(), state(&["a", "d", "b"])),
            ],
        );
        assert!(
            diverged.iter().any(|p| p.contains("differ")),
            "{diverged:?}"
        );
        let refused = check(&h, &[("n1".into(), state(&["a", "b", "x", "d"]))]);
        assert!(
            refused
                .iter()
                .any(|p| p.contains("refused") && p.contains("stored")),
            "{refused:?}"
        );
        // A refused retry of an append whose first attempt was unknown is
        // no evidence against the stored message.
        let mut retried = h.clone();
        retried.push(append(5, "c", "y", (50, 51), Outcome::Unknown));
        retried.push(append(5, "c", "y", (52, 53), Outcome::Fail));
        let r = check(&retried, &[("n1".into(), state(&["a", "b", "d", "y"]))]);
        assert_eq!(r, Vec::<String>::new());
        let mut stale = h.clone();
        stale.push(read(4, "c", &["a"], (40, 41)));
        let s = check(&stale, &[("n1".into(), state(&["a", "b", "d"]))]);
        assert!(
            s.iter()
                .any(|p| p.contains("stale read") && p.contains("without d")),
            "{s:?}"
        );
        let mut gap = state(&["a", "b", "d"]);
        if let Some(v) = gap.get_mut("c") {
            v[2].0 = 4;
        }
        let g = check(&h, &[("n1".into(), gap)]);
        assert!(g.iter().any(|p| p.contains("gap")), "{g:?}");
    }
}
