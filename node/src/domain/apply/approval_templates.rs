//! Approval templates (审批模板) and the values filed against them:
//! checking a template, typed field values (decimal, money, date range,
//! choice, member). The flow of a request is in `approvals.rs`.

use std::collections::BTreeSet;

use super::approvals::{MAX_CC, MAX_GROUP, MAX_LEVELS, MAX_STEPS};
use super::audience::is_active;
use super::*;

pub const MAX_FIELDS: usize = 50;
pub const MAX_OPTIONS: usize = 100;
pub const MAX_TEXT_CHARS: usize = 2_000;
/// |money| below 10^13 hundredths.
pub const MAX_MONEY: i64 = 10_000_000_000_000;

fn valid_key(k: &str, what: &str) -> Result<(), Refusal> {
    if k.is_empty()
        || k.len() > 32
        || !k
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return refuse(
            Code::InvalidArgument,
            format!("{what} {k:?} must be 1-32 characters of a-z 0-9 _ -"),
        );
    }
    Ok(())
}

pub(super) fn valid_text(t: &str, max: usize, what: &str) -> Result<(), Refusal> {
    if t.chars().count() > max || t.chars().any(|c| c.is_control() && c != '\n') {
        return refuse(
            Code::InvalidArgument,
            format!("{what} must be at most {max} characters without control characters"),
        );
    }
    Ok(())
}

/// Check a template (the version is set here).
fn check_template<S: Store>(s: &Overlay<'_, S>, t: &ApprovalTemplate) -> R<()> {
    valid!(valid_key(&t.id, "template id"));
    valid!(valid_name(&t.name, "template name"));
    ensure!(
        t.fields.len() <= MAX_FIELDS,
        Code::LimitExceeded,
        "at most {MAX_FIELDS} fields"
    );
    let mut seen = BTreeSet::new();
    for (i, f) in t.fields.iter().enumerate() {
        valid!(valid_key(&f.key, &format!("fields[{i}].key")));
        valid!(valid_name(&f.label, &format!("fields[{i}].label")));
        ensure!(
            seen.insert(f.key.as_str()),
            Code::InvalidArgument,
            "fields[{i}].key {:?} is used twice",
            f.key
        );
        if f.kind == FieldKind::Choice {
            ensure!(
                !f.options.is_empty() && f.options.len() <= MAX_OPTIONS,
                Code::InvalidArgument,
                "fields[{i}] ({}) is a choice: give 1-{MAX_OPTIONS} options",
                f.key
            );
            let distinct: BTreeSet<&String> = f.options.iter().collect();
            ensure!(
                distinct.len() == f.options.len(),
                Code::InvalidArgument,
                "fields[{i}] ({}) lists an option twice",
                f.key
            );
            for o in &f.options {
                valid!(valid_name(o, &format!("fields[{i}].options")));
            }
        } else {
            ensure!(
                f.options.is_empty(),
                Code::InvalidArgument,
                "fields[{i}] ({}) is a {} field: options are only for choice fields",
                f.key,
                f.kind.as_str()
            );
        }
    }
    ensure!(
        !t.flow.is_empty() && t.flow.len() <= MAX_STEPS,
        Code::InvalidArgument,
        "the flow must have 1-{MAX_STEPS} steps"
    );
    let mut steps = 0u32;
    for (i, st) in t.flow.iter().enumerate() {
        match st {
            FlowStep::Leaders(k) => {
                ensure!(
                    (1..=MAX_LEVELS).contains(k),
                    Code::InvalidArgument,
                    "flow[{i}]: leaders must go up 1-{MAX_LEVELS} levels"
                );
                steps += k;
            }
            FlowStep::User(u) => {
                let _ = check!(active_member(s, u, true));
                steps += 1;
            }
            FlowStep::AnyOf(g) => {
                ensure!(
                    !g.is_empty() && g.len() <= MAX_GROUP,
                    Code::InvalidArgument,
                    "flow[{i}]: a group has 1-{MAX_GROUP} members"
                );
                for u in g {
                    let _ = check!(active_member(s, u, true));
                }
                steps += 1;
            }
        }
    }
    ensure!(
        steps as usize <= MAX_STEPS * 2,
        Code::LimitExceeded,
        "the flow has {steps} steps; at most {}",
        MAX_STEPS * 2
    );
    ensure!(
        t.cc.len() <= MAX_CC,
        Code::LimitExceeded,
        "at most {MAX_CC} CC recipients"
    );
    for u in &t.cc {
        let _ = check!(active_member(s, u, true));
    }
    Ok(Ok(()))
}

pub(super) fn put_template<S: Store>(s: &mut Overlay<'_, S>, t: &ApprovalTemplate) -> R<Done> {
    check!(check_template(s, t));
    let old: Option<ApprovalTemplate> = s.get_as(&keys::approval_template(&t.id))?;
    let mut t = t.clone();
    t.version = old.map_or(1, |o| o.version + 1);
    s.put_as(&keys::approval_template(&t.id), &t)?;
    Ok(Ok(Done::ApprovalTemplate(t)))
}

pub(super) fn set_template_disabled<S: Store>(
    s: &mut Overlay<'_, S>,
    id: &str,
    disabled: bool,
) -> R<Done> {
    let Some(mut t) = s.get_as::<ApprovalTemplate>(&keys::approval_template(id))? else {
        return Ok(refuse(
            Code::NotFound,
            format!("no approval template {id:?}"),
        ));
    };
    if t.disabled != disabled {
        t.disabled = disabled;
        t.version += 1;
        s.put_as(&keys::approval_template(id), &t)?;
    }
    Ok(Ok(Done::ApprovalTemplate(t)))
}

/// A decimal: optional sign, digits, optional fraction (at most `scale`
/// digits; any when None). Returns the normalised text.
fn decimal(raw: &str, scale: Option<usize>) -> Option<String> {
    let t = raw.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(b) => (true, b),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    if int.is_empty() || int.len() > 15 || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(f) = frac
        && (f.is_empty()
            || !f.bytes().all(|b| b.is_ascii_digit())
            || scale.is_some_and(|s| f.len() > s)
            || f.len() > 15)
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let frac = frac
        .map(|f| f.trim_end_matches('0'))
        .filter(|f| !f.is_empty());
    let mut out = String::new();
    if neg && (int != "0" || frac.is_some()) {
        out.push('-');
    }
    out.push_str(int);
    if let Some(f) = frac {
        out.push('.');
        out.push_str(f);
    }
    Some(out)
}

/// `YYYY-MM-DD` with a real day.
fn date(raw: &str) -> Option<(u32, u32, u32)> {
    let b = raw.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let y: u32 = raw.get(0..4)?.parse().ok()?;
    let m: u32 = raw.get(5..7)?.parse().ok()?;
    let d: u32 = raw.get(8..10)?.parse().ok()?;
    let leap = (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400);
    let days = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    (y >= 1900 && (1..=days).contains(&d)).then_some((y, m, d))
}

/// Parse one submitted value against its field.
pub(super) fn parse_value<S: Store>(s: &Overlay<'_, S>, f: &FieldDef, raw: &str) -> R<FieldValue> {
    let bad = |expect: &str| {
        refuse(
            Code::InvalidArgument,
            format!(
                "field {} ({}, {}): {raw:?} is not {expect}",
                f.key,
                f.label,
                f.kind.as_str()
            ),
        )
    };
    Ok(match f.kind {
        FieldKind::Text => {
            valid!(valid_text(raw, MAX_TEXT_CHARS, &format!("field {}", f.key)));
            Ok(FieldValue::Text(raw.to_string()))
        }
        FieldKind::Number => match decimal(raw, None) {
            Some(n) => Ok(FieldValue::Number(n)),
            None => bad("a number like 3 or 2.5"),
        },
        FieldKind::Money => match decimal(raw, Some(2)) {
            Some(n) => {
                let (neg, abs) = match n.strip_prefix('-') {
                    Some(a) => (true, a),
                    None => (false, n.as_str()),
                };
                let (i, fr) = abs.split_once('.').unwrap_or((abs, ""));
                let cents = i
                    .parse::<i64>()
                    .ok()
                    .and_then(|i| i.checked_mul(100))
                    .and_then(|c| {
                        let f: i64 = format!("{fr:0<2}").parse().ok()?;
                        c.checked_add(f)
                    });
                match cents {
                    Some(c) if c < MAX_MONEY => Ok(FieldValue::Money(if neg { -c } else { c })),
                    _ => bad("an amount below 100,000,000,000"),
                }
            }
            None => bad("an amount like 1234.56 (at most two decimals)"),
        },
        FieldKind::DateRange => {
            let Some((a, b)) = raw.split_once('/') else {
                return Ok(bad("a date range START/END (YYYY-MM-DD/YYYY-MM-DD)"));
            };
            match (date(a), date(b)) {
                (Some(x), Some(y)) if x <= y => Ok(FieldValue::DateRange(a.into(), b.into())),
                (Some(_), Some(_)) => bad("a date range whose start is not after its end"),
                _ => bad("a date range of real dates (YYYY-MM-DD/YYYY-MM-DD)"),
            }
        }
        FieldKind::Choice => {
            if f.options.iter().any(|o| o == raw) {
                Ok(FieldValue::Choice(raw.to_string()))
            } else {
                bad(&format!("one of {:?}", f.options))
            }
        }
        FieldKind::Member => {
            if is_active(s, raw)? {
                Ok(FieldValue::Member(raw.to_string()))
            } else {
                bad("an active member's userid")
            }
        }
    })
}
