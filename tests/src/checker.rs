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
    /// Read `conv`: the ids seen, in sequence order.
    Read { conv: String, seen: Vec<String> },
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
            (Outcome::Fail, Some(s)) => problems.push(format!(
                "append of {id} to {conv} was refused but is stored at seq {s}"
            )),
            _ => {}
        }
    }
    // 4. Linearizable reads, per conversation.
    let acked: Vec<&Event> = history
        .iter()
        .filter(|e| matches!(e.op, Op::Append { .. }) && matches!(e.outcome, Outcome::Ok(_)))
        .collect();
    let mut reads: Vec<&Event> = history
        .iter()
        .filter(|e| matches!(e.op, Op::Read { .. }) && matches!(e.outcome, Outcome::Ok(_)))
        .collect();
    reads.sort_by_key(|e| e.invoked);
    for r in &reads {
        let Op::Read { conv, seen } = &r.op else {
            continue;
        };
        let seen_set: HashSet<&str> = seen.iter().map(String::as_str).collect();
        for a in &acked {
            let Op::Append { conv: ac, id } = &a.op else {
                continue;
            };
            if ac == conv && a.completed < r.invoked && !seen_set.contains(id.as_str()) {
                problems.push(format!(
                    "stale read: client {} read {conv} at {} without {id}, acknowledged at {} to client {}",
                    r.client, r.invoked, a.completed, a.client
                ));
            }
        }
        // What a read saw must be a prefix of the final sequence.
        if let Some(msgs) = reference.get(conv) {
            let prefix: Vec<&str> = msgs
                .iter()
                .take(seen.len())
                .map(|(_, id)| id.as_str())
                .collect();
            let got: Vec<&str> = seen.iter().map(String::as_str).collect();
            if prefix != got {
                problems.push(format!(
                    "read by client {} of {conv} at {} is not a prefix of the final order",
                    r.client, r.invoked
                ));
            }
        }
    }
    // Reads never go backwards: a read that began after another finished
    // sees at least as much.
    for (i, a) in reads.iter().enumerate() {
        for b in &reads[i + 1..] {
            let (Op::Read { conv: ca, seen: sa }, Op::Read { conv: cb, seen: sb }) = (&a.op, &b.op)
            else {
                continue;
            };
            if ca == cb && a.completed < b.invoked && sb.len() < sa.len() {
                problems.push(format!(
                    "read of {ca} went backwards: client {} saw {} at {}, then client {} saw {} at {}",
                    a.client,
                    sa.len(),
                    a.completed,
                    b.client,
                    sb.len(),
                    b.invoked
                ));
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
        }
    }

    fn read(client: usize, conv: &str, seen: &[&str], t: (u64, u64)) -> Event {
        Event {
            client,
            op: Op::Read {
                conv: conv.into(),
                seen: seen.iter().map(|s| s.to_string()).collect(),
            },
            invoked: t.0,
            completed: t.1,
            outcome: Outcome::Ok(None),
        }
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
            refused.iter().any(|p| p.contains("refused but is stored")),
            "{refused:?}"
        );
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
