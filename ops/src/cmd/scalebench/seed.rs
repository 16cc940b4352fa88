//! Seeding the synthetic enterprise: its department tree, members, groups
//! and 1:1s, planned by a deterministic PRNG.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use http::{Method, StatusCode};
use serde_json::{Value, json};

use super::Phase;
use super::conn::{Conn, Counters, pool};
use super::progress::Progress;
use crate::client::Client;
use crate::cmd::msgbench::PASSWORD;

const DEPT_BASE: u64 = 100_000;
pub(super) const FANOUT: [usize; 5] = [6, 5, 4, 3, 3];
const CHUNK: usize = 500;

const SURNAMES: [&str; 12] = [
    "张", "王", "李", "赵", "刘", "陈", "杨", "黄", "周", "吴", "徐", "孙",
];
pub(super) const PINYIN: [&str; 12] = [
    "zhang", "wang", "li", "zhao", "liu", "chen", "yang", "huang", "zhou", "wu", "xu", "sun",
];
const GIVEN: [&str; 16] = [
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "涛", "明", "超", "霞", "平",
];

pub(super) fn userid(i: usize) -> String {
    format!("scale-{:06}", i + 1)
}

fn display_name(i: usize) -> String {
    format!(
        "{}{}{}",
        SURNAMES[i % 12],
        GIVEN[(i / 12) % 16],
        GIVEN[(i / 192) % 16]
    )
}

/// How many of `total` items go to `slot` when item k goes to k % slots.
pub(super) fn share(total: usize, slots: usize, slot: usize) -> usize {
    total / slots + usize::from(slot < total % slots)
}

/// splitmix64: small, fast and deterministic.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64, stream: u64) -> Rng {
        Rng(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Parse `--group-mix` ("70,25,5": percentages of small, medium and
/// large groups, summing to 100).
pub(super) fn parse_group_mix(s: &str) -> anyhow::Result<[usize; 3]> {
    let parts: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--group-mix {s:?}: {e}"))?;
    match parts.as_slice() {
        [a, b, c] if a + b + c == 100 => Ok([*a, *b, *c]),
        _ => anyhow::bail!(
            "--group-mix {s:?}: three percentages (small, medium, large) that sum to 100, e.g. 70,25,5"
        ),
    }
}

/// (class, size): `mix` percent small (3–20), medium (21–200), large (201–2000).
pub(super) fn group_size(rng: &mut Rng, mix: [usize; 3]) -> (usize, usize) {
    let r = rng.below(100);
    let (class, lo, hi) = if r < mix[0] {
        (0, 3, 20)
    } else if r < mix[0] + mix[1] {
        (1, 21, 200)
    } else {
        (2, 201, 2000)
    };
    (class, lo + rng.below(hi - lo + 1))
}

/// Group g: (owner, size class, members other than the owner).
fn plan_group(
    seed: u64,
    g: usize,
    active: usize,
    n: usize,
    cap: usize,
    mix: [usize; 3],
) -> (usize, usize, Vec<usize>) {
    let mut rng = Rng::new(seed, 0x6_0000_0000 + g as u64);
    let (class, size) = group_size(&mut rng, mix);
    let owner = g % active;
    let want = size.min(cap).min(n).saturating_sub(1);
    if want * 2 <= n {
        let (mut set, mut out) = (HashSet::new(), Vec::with_capacity(want));
        while out.len() < want {
            let x = rng.below(n);
            if x != owner && set.insert(x) {
                out.push(x);
            }
        }
        return (owner, class, out);
    }
    let mut all: Vec<usize> = (0..n).filter(|x| *x != owner).collect();
    for i in 0..want {
        let j = i + rng.below(all.len() - i);
        all.swap(i, j);
    }
    all.truncate(want);
    (owner, class, all)
}

#[derive(Debug, Clone)]
pub(super) struct Dept {
    pub(super) id: u64,
    pub(super) parent: u64,
    name: String,
    pub(super) level: usize,
    order: usize,
}

/// Fan-outs scaled down until the tree has at most members/25 (≥ 36).
fn fanouts(members: usize) -> [usize; 5] {
    let target = (members / 25).max(36);
    for pct in (1..=100).rev() {
        let f = FANOUT.map(|x| ((x * pct + 50) / 100).max(1));
        let size: usize = (1..=5).map(|l| f[..l].iter().product::<usize>()).sum();
        if size <= target {
            return f;
        }
    }
    [1; 5]
}

/// Every department below the root, parents first.
pub(super) fn plan_departments(members: usize) -> Vec<Dept> {
    let mut out: Vec<Dept> = Vec::new();
    let mut frontier = vec![(1u64, String::new())];
    for (level, fan) in fanouts(members).iter().enumerate() {
        let mut next = Vec::new();
        for (parent, path) in &frontier {
            for c in 0..*fan {
                let p = format!("{path}{}{}", if path.is_empty() { "" } else { "." }, c + 1);
                let id = DEPT_BASE + out.len() as u64 + 1;
                let name = format!("Scale {p}");
                out.push(Dept {
                    id,
                    parent: *parent,
                    name,
                    level: level + 1,
                    order: c,
                });
                next.push((id, p));
            }
        }
        frontier = next;
    }
    out
}

#[derive(Debug, Clone)]
pub(super) struct ConvInfo {
    pub(super) id: String,
    pub(super) kind: String,
    name: String,
    owner: String,
    members: u64,
    pub(super) last_seq: u64,
}

#[derive(Debug)]
pub(super) struct Listing {
    pub(super) convs: Vec<ConvInfo>,
    pub(super) head: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Ack {
    pub(super) sender: usize,
    pub(super) conv: String,
    pub(super) seq: u64,
    pub(super) marker: String,
}

impl Ack {
    pub(super) fn from_answer(sender: usize, v: &Value) -> Option<Ack> {
        let conv = v["conversation"].as_str()?.to_string();
        let marker = v["text"].as_str()?.split(' ').next()?.to_string();
        Some(Ack {
            sender,
            conv,
            seq: v["seq"].as_u64()?,
            marker,
        })
    }
}

/// The sizes, what derives from them, and the connections to seed with.
#[derive(Debug)]
pub(super) struct Seed<'a> {
    pub(super) n: usize,
    pub(super) active: usize,
    pub(super) groups: usize,
    pub(super) direct: usize,
    pub(super) seed: u64,
    pub(super) cap: usize,
    pub(super) group_mix: [usize; 3],
    pub(super) conc: usize,
    pub(super) depts: Vec<Dept>,
    pub(super) leaves: Vec<u64>,
    pub(super) admin: &'a Client,
    pub(super) apis: &'a [Client],
    pub(super) ctr: Arc<Counters>,
    pub(super) phases: Vec<Phase>,
}

impl Seed<'_> {
    pub(super) fn conns(&self, admin: bool) -> Vec<Conn> {
        let clients = if admin {
            std::slice::from_ref(self.admin)
        } else {
            self.apis
        };
        Conn::many(clients, self.conc, &self.ctr, true)
    }

    fn phase(&mut self, name: &'static str, total: usize, created: usize, p: &Progress, r0: u64) {
        let seconds = p.finish();
        let (per_sec, retries) = (created as f64 / seconds.max(1e-9), self.ctr.total() - r0);
        self.phases.push(Phase {
            name,
            total,
            created,
            reused: total - created,
            seconds,
            per_sec,
            retries,
        });
    }

    pub(super) async fn departments(&mut self) -> anyhow::Result<()> {
        let (r0, mut conns) = (self.ctr.total(), self.conns(true));
        let v = conns[0].get("/v1/directory/departments", None).await?;
        let mut have: HashSet<(u64, Option<u64>, &str)> = HashSet::new();
        for d in v["departments"].as_array().into_iter().flatten() {
            have.insert((
                d["id"].as_u64().unwrap_or(0),
                d["parent"].as_u64(),
                d["name"].as_str().unwrap_or(""),
            ));
        }
        let todo: Vec<&Dept> = (self.depts.iter())
            .filter(|d| !have.contains(&(d.id, Some(d.parent), d.name.as_str())))
            .collect();
        let done = self.depts.len() - todo.len();
        let p = Progress::start(&format!("departments ({done} exist)"), todo.len() + 1);
        let mut created = 0;
        if !have.contains(&(1, None, "Enterprise")) {
            let body = json!({ "name": "Enterprise" });
            let path = "/v1/directory/departments/1";
            let a = conns[0]
                .call(Method::PUT, path, Some(&body), None, None)
                .await?;
            a.ok(format_args!("naming the root department (PUT {path})"))?;
            created += 1;
        }
        p.add(1);
        for level in 1..=FANOUT.len() {
            let todo: Vec<&Dept> = todo.iter().copied().filter(|d| d.level == level).collect();
            pool(&mut conns, todo.len(), &p, async |c: &mut Conn, i| {
                let d = todo[i];
                let body = json!({ "parent": d.parent, "name": d.name, "order": d.order });
                let path = format!("/v1/directory/departments/{}", d.id);
                let a = c.call(Method::PUT, &path, Some(&body), None, None).await?;
                a.ok(format_args!("creating department {} (PUT {path})", d.id))
            })
            .await?;
        }
        created += todo.len();
        self.phase("departments", self.depts.len() + 1, created, &p, r0);
        Ok(())
    }

    pub(super) async fn members(&mut self) -> anyhow::Result<()> {
        let (r0, mut conns) = (self.ctr.total(), self.conns(true));
        let have = existing_members(&mut conns[0]).await?;
        let todo: Vec<usize> = (0..self.n)
            .filter(|i| !have.contains(&userid(*i)))
            .collect();
        let exist = self.n - todo.len();
        let p = Progress::start(&format!("members ({exist} exist)"), todo.len());
        let (leaves, active) = (&self.leaves, self.active);
        pool(&mut conns, todo.len(), &p, async |c: &mut Conn, j| {
            let i = todo[j];
            let body = json!({
                "userid": userid(i), "name": display_name(i), "title": "工程师",
                "departments": [leaves[i % leaves.len()]],
                "password": (i < active).then_some(PASSWORD),
            });
            let path = "/v1/directory/members";
            let a = c.call(Method::POST, path, Some(&body), None, None).await?;
            if a.status != StatusCode::CONFLICT {
                a.ok(format_args!("creating member {} (POST {path})", userid(i)))?;
            }
            Ok(())
        })
        .await?;
        self.phase("members", self.n, todo.len(), &p, r0);
        Ok(())
    }

    /// Log in every active member. With `fix`, one that cannot log in
    /// (created by a run with a smaller --active) is given the password.
    pub(super) async fn login(&mut self, fix: bool) -> anyhow::Result<Vec<String>> {
        let (r0, mut conns) = (self.ctr.total(), self.conns(false));
        let p = Progress::start("login", self.active);
        let (admin, ctr) = (self.admin, &self.ctr);
        let tokens = pool(&mut conns, self.active, &p, async |c: &mut Conn, i| {
            let u = userid(i);
            let body = json!({ "userid": u, "password": PASSWORD });
            let login = Some(&body);
            let mut a = c.call(Method::POST, "/v1/login", login, None, None).await?;
            // The node answering the login may apply the new password a
            // moment after the one that took it.
            for attempt in 0..20 {
                if a.status != StatusCode::UNAUTHORIZED || !fix {
                    break;
                }
                if attempt == 0 {
                    let path = format!("/v1/directory/members/{u}/password");
                    let pw = json!({ "password": PASSWORD });
                    let mut ac = Conn::new(admin, ctr, true);
                    let set = ac.call(Method::PUT, &path, Some(&pw), None, None).await?;
                    set.ok(format_args!("setting the password of {u} (PUT {path})"))?;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
                a = c.call(Method::POST, "/v1/login", login, None, None).await?;
            }
            let v = a.ok(format_args!("logging in {u} (POST /v1/login)"))?;
            let token = v["access_token"]
                .as_str()
                .context("no access_token in the login answer");
            Ok(token?.to_string())
        })
        .await?;
        self.phase("login", self.active, self.active, &p, r0);
        Ok(tokens)
    }

    /// The first `n` active members' conversations and sync heads.
    pub(super) async fn listing(
        &mut self,
        name: &'static str,
        tokens: &[String],
        n: usize,
    ) -> anyhow::Result<Vec<Listing>> {
        let (r0, mut conns) = (self.ctr.total(), self.conns(false));
        let p = Progress::start(name, n);
        let out = list_all(&mut conns, tokens, n, &p).await?;
        self.phase(name, n, n, &p, r0);
        Ok(out)
    }

    pub(super) async fn groups(
        &mut self,
        tokens: &[String],
        lists: &[Listing],
    ) -> anyhow::Result<()> {
        let (r0, mut conns) = (self.ctr.total(), self.conns(false));
        // (owner, name): a group of a seed with another --active has another owner.
        let mut have: HashMap<(usize, &str), (&str, u64)> = HashMap::new();
        for (o, l) in lists.iter().enumerate() {
            for c in l
                .convs
                .iter()
                .filter(|c| our_group(c, &userid(o)).is_some())
            {
                have.insert((o, c.name.as_str()), (c.id.as_str(), c.members));
            }
        }
        let p = Progress::start("groups", self.groups);
        let (seed, active, n, cap, mix) =
            (self.seed, self.active, self.n, self.cap, self.group_mix);
        let done = pool(&mut conns, self.groups, &p, async |c: &mut Conn, g| {
            let (owner, _, members) = plan_group(seed, g, active, n, cap, mix);
            let (name, tok) = (format!("scale-g{g:06}"), tokens[owner].as_str());
            let members: Vec<String> = members.iter().map(|m| userid(*m)).collect();
            if let Some((id, count)) = have.get(&(owner, name.as_str())) {
                let short = (*count as usize) <= members.len();
                if short {
                    fill_group(c, tok, id, &members).await?;
                }
                return Ok(short);
            }
            // The name is the idempotency key: a retry does not create a second group.
            let body = json!({ "name": name, "members": &members[..members.len().min(CHUNK)] });
            let (path, key) = ("/v1/conversations", Some(name.as_str()));
            let a = c
                .call(Method::POST, path, Some(&body), Some(tok), key)
                .await?;
            let v = a.ok(format_args!("creating group {name} (POST {path})"))?;
            let id = v["id"]
                .as_str()
                .context("no id in a group creation answer")?;
            if members.len() > CHUNK {
                fill_group(c, tok, id, &members).await?;
            }
            Ok(true)
        })
        .await?;
        let created = done.iter().filter(|d| **d).count();
        self.phase("groups", self.groups, created, &p, r0);
        Ok(())
    }

    pub(super) async fn direct(
        &mut self,
        tokens: &[String],
        lists: &[Listing],
    ) -> anyhow::Result<Vec<Ack>> {
        let (r0, mut conns) = (self.ctr.total(), self.conns(false));
        let (a, d) = (self.active, self.direct);
        let p = Progress::start("direct", d);
        let acks = pool(&mut conns, d, &p, async |c: &mut Conn, k| {
            // Peers are never active, so all of a sender's 1:1s are from
            // this phase: skip a sender who has them all.
            let s = k % a;
            if lists[s].convs.iter().filter(|c| c.kind == "direct").count() >= share(d, a, s) {
                return Ok(None);
            }
            let marker = format!("scale-direct-{k}");
            let body = json!({ "text": format!("{marker} 你好"), "client_msg_id": marker });
            let path = format!("/v1/direct/{}/messages", userid(a + k));
            let tok = Some(tokens[s].as_str());
            let ans = c.call(Method::POST, &path, Some(&body), tok, None).await?;
            let v = ans.ok(format_args!("opening a 1:1 (POST {path})"))?;
            let ack = Ack::from_answer(s, &v).context("no conversation, seq or text in an answer");
            Ok(Some(ack?))
        })
        .await?;
        let acks: Vec<Ack> = acks.into_iter().flatten().collect();
        self.phase("direct", d, acks.len(), &p, r0);
        Ok(acks)
    }
}

async fn list_convs(c: &mut Conn, token: &str) -> anyhow::Result<Listing> {
    let mut convs = Vec::new();
    c.paged(
        "/v1/conversations?limit=500",
        "conversations",
        Some(token),
        None,
        |x| {
            let s = |k: &str| x[k].as_str().unwrap_or_default().to_string();
            if x["dissolved"].as_bool() != Some(true) {
                let (members, last_seq) = (
                    x["member_count"].as_u64().unwrap_or(0),
                    x["last_seq"].as_u64().unwrap_or(0),
                );
                convs.push(ConvInfo {
                    id: s("id"),
                    kind: s("kind"),
                    name: s("name"),
                    owner: s("owner"),
                    members,
                    last_seq,
                });
            }
            true
        },
    )
    .await?;
    let head = c.get("/v1/me", Some(token)).await?["sync_head"].as_u64();
    Ok(Listing {
        convs,
        head: head.context("no sync_head in GET /v1/me")?,
    })
}

/// The index of a benchmark group `me` owns.
pub(super) fn our_group(c: &ConvInfo, me: &str) -> Option<usize> {
    let g = c.name.strip_prefix("scale-g")?.parse().ok()?;
    (c.kind == "group" && c.owner == me).then_some(g)
}

/// Add whichever of `wanted` are not in group `id` yet, CHUNK a call.
async fn fill_group(c: &mut Conn, tok: &str, id: &str, wanted: &[String]) -> anyhow::Result<()> {
    // A group just created may not be applied yet on the node this
    // connection reads from (a follower under heavy load trails the
    // leader): the members are read linearizably, which includes every
    // write acknowledged before it.
    'again: for _ in 0..3 {
        let mut have = HashSet::new();
        let base = format!("/v1/conversations/{id}/members?limit=2000&consistency=linearizable");
        c.paged(&base, "members", Some(tok), None, |m| {
            have.insert(m["userid"].as_str().unwrap_or("").to_string());
            true
        })
        .await?;
        let missing: Vec<&String> = wanted.iter().filter(|u| !have.contains(*u)).collect();
        for chunk in missing.chunks(CHUNK) {
            let path = format!("/v1/conversations/{id}/members");
            let a = c
                .call(
                    Method::POST,
                    &path,
                    Some(&json!({ "userids": chunk })),
                    Some(tok),
                    None,
                )
                .await?;
            if a.status == StatusCode::CONFLICT {
                continue 'again; // a retried add that had gone through: look again
            }
            a.ok(format_args!("adding members to {id} (POST {path})"))?;
        }
        return Ok(());
    }
    bail!("adding members to {id}: still conflicting after three attempts")
}

/// The benchmark's members that exist (`scale-…`, listed in userid order).
pub(super) async fn existing_members(c: &mut Conn) -> anyhow::Result<HashSet<String>> {
    let mut out = HashSet::new();
    let start = Some("scale-".to_string());
    c.paged(
        "/v1/directory/members?limit=1000",
        "members",
        None,
        start,
        |m| {
            let u = m["userid"].as_str().unwrap_or_default();
            let ours = u.starts_with("scale-");
            if ours {
                out.insert(u.to_string());
            }
            ours
        },
    )
    .await?;
    Ok(out)
}

/// Each of the first `n` active members' conversations and sync head.
pub(super) async fn list_all(
    conns: &mut [Conn],
    tokens: &[String],
    n: usize,
    p: &Progress,
) -> anyhow::Result<Vec<Listing>> {
    pool(conns, n, p, async |c: &mut Conn, i| {
        list_convs(c, &tokens[i]).await
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prng_is_splitmix64_and_plans_are_deterministic() {
        let mut r = Rng(0);
        assert_eq!(
            [r.next(), r.next()],
            [0xE220_A839_7B1D_CDAF, 0x6E78_9E6A_A1B9_65F4]
        );
        assert_eq!(
            plan_group(1, 42, 200, 10_000, 2000, GROUP_MIX),
            plan_group(1, 42, 200, 10_000, 2000, GROUP_MIX)
        );
        assert_ne!(
            plan_group(1, 42, 200, 10_000, 2000, GROUP_MIX).2,
            plan_group(2, 42, 200, 10_000, 2000, GROUP_MIX).2
        );
    }

    /// The default `--group-mix`.
    const GROUP_MIX: [usize; 3] = [70, 25, 5];

    #[test]
    fn a_group_mix_is_three_percentages_that_sum_to_100() {
        assert_eq!(parse_group_mix("90, 9,1").ok(), Some([90, 9, 1]));
        for bad in ["70,25", "70,25,6", "a,b,c", "", "100,0,0,0"] {
            assert!(parse_group_mix(bad).is_err(), "{bad}");
        }
        let mut rng = Rng::new(1, 2);
        let small_only: Vec<usize> = (0..200)
            .map(|_| group_size(&mut rng, [100, 0, 0]).0)
            .collect();
        assert!(small_only.iter().all(|c| *c == 0));
    }

    #[test]
    fn group_sizes_follow_the_mix_and_their_caps() {
        let mut classes = [0usize; 3];
        for g in 0..10_000 {
            let (owner, class, members) = plan_group(1, g, 200, 10_000, 2000, GROUP_MIX);
            let size = members.len() + 1;
            assert_eq!(owner, g % 200);
            assert!(
                [3..=20, 21..=200, 201..=2000][class].contains(&size),
                "{class} {size}"
            );
            assert!(
                !members.contains(&owner)
                    && members.iter().collect::<HashSet<_>>().len() == members.len()
            );
            classes[class] += 1;
        }
        let f = classes.map(|c| c as f64 / 10_000.0);
        assert!(
            (f[0] - 0.70).abs() < 0.02 && (f[1] - 0.25).abs() < 0.02 && (f[2] - 0.05).abs() < 0.01,
            "{f:?}"
        );
        // A small enterprise and a low policy limit cap every group.
        for g in 0..100 {
            let (owner, _, m) = plan_group(3, g, 5, 30, 2000, GROUP_MIX);
            assert!(m.len() <= 29 && !m.contains(&owner) && m.iter().all(|x| *x < 30));
            assert!(plan_group(3, g, 5, 10_000, 50, GROUP_MIX).2.len() <= 49);
        }
    }

    #[test]
    fn departments_are_six_deep_and_about_members_over_25() {
        for (members, lo, hi) in [(10_000, 200, 400), (100, 20, 36), (1_000_000, 1596, 1596)] {
            let d = plan_departments(members);
            assert!((lo..=hi).contains(&d.len()), "{members}: {}", d.len());
            assert_eq!(d.iter().map(|x| x.level).max(), Some(5));
            let mut seen = HashSet::from([1]);
            assert!(
                d.iter()
                    .all(|x| seen.contains(&x.parent) && seen.insert(x.id))
            );
        }
    }
}
