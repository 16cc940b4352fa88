//! The directory in WeCom's terms: user writes with profile fields,
//! leader flags and per-department order; departments with generated ids
//! and partial updates; batch deletion. The same records the native API
//! and `enclavectl directory` use.

use std::collections::BTreeMap;

use super::*;

/// At most this many userids per `DeleteUsers` (WeCom's batchdelete).
pub const MAX_BATCH_DELETE: usize = 200;

pub(super) fn profile_of<S: Store + ?Sized>(s: &S, userid: &str) -> Result<Profile, StoreFault> {
    Ok(s.get_as(&keys::profile(userid))?.unwrap_or_default())
}

fn len_ok(v: &str, max: usize, what: &str) -> Result<(), Refusal> {
    if v.chars().count() > max || v.chars().any(char::is_control) {
        return refuse(
            Code::InvalidArgument,
            format!("{what} must be at most {max} characters without control characters"),
        );
    }
    Ok(())
}

/// Create, update or upsert a member from WeCom's fields. `notify`: queue
/// `change_contact` events (not for bulk jobs, which report once).
pub(super) fn put_user<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    mode: PutMode,
    f: &UserFields,
    notify: bool,
) -> R<Done> {
    valid!(valid_userid(&f.userid));
    ensure!(
        s.get(&keys::external(&f.userid))?.is_none(),
        Code::AlreadyExists,
        "userid {:?} is an external account",
        f.userid
    );
    let existing = s.get_as::<Member>(&keys::user(&f.userid))?;
    match (&existing, mode) {
        (Some(m), PutMode::Create | PutMode::Upsert) if m.status == MemberStatus::Departed => {
            return Ok(refuse(
                Code::AlreadyExists,
                format!(
                    "userid {:?} belonged to a member who departed; it is kept with their history and cannot be reused",
                    f.userid
                ),
            ));
        }
        (Some(_), PutMode::Create) => {
            return Ok(refuse(
                Code::AlreadyExists,
                format!("userid {:?} exists", f.userid),
            ));
        }
        (None, PutMode::Update) => {
            return Ok(refuse(Code::NotFound, format!("no member {:?}", f.userid)));
        }
        (Some(m), PutMode::Update) if m.status == MemberStatus::Departed => {
            return Ok(refuse(Code::NotFound, format!("no member {:?}", f.userid)));
        }
        _ => {}
    }
    let creating = existing.is_none();
    if creating {
        ensure!(
            f.name.is_some(),
            Code::InvalidArgument,
            "name is required to create a member"
        );
    }
    let old = existing.clone();
    let mut m = existing.unwrap_or(Member {
        userid: f.userid.clone(),
        name: String::new(),
        departments: vec![ROOT_DEPARTMENT],
        title: String::new(),
        email: String::new(),
        mobile: String::new(),
        status: MemberStatus::Active,
    });
    let mut p = if creating {
        Profile::default()
    } else {
        profile_of(s, &f.userid)?
    };
    // Order and leader flags are given parallel to the departments as
    // written; keep them by department before the list is sorted.
    let old_orders: BTreeMap<u64, i64> = m
        .departments
        .iter()
        .copied()
        .zip(p.orders.iter().copied())
        .collect();
    let listed = f
        .departments
        .clone()
        .unwrap_or_else(|| m.departments.clone());
    for (what, n) in [
        ("order", f.orders.as_ref().map(Vec::len)),
        ("is_leader_in_dept", f.leader_in_dept.as_ref().map(Vec::len)),
    ] {
        if let Some(n) = n {
            ensure!(
                n == listed.len(),
                Code::InvalidArgument,
                "{what} has {n} values for {} departments",
                listed.len()
            );
        }
    }
    let orders: BTreeMap<u64, i64> = match &f.orders {
        Some(o) => listed.iter().copied().zip(o.iter().copied()).collect(),
        None => listed
            .iter()
            .map(|d| (*d, old_orders.get(d).copied().unwrap_or(0)))
            .collect(),
    };
    if let Some(v) = &f.name {
        m.name = v.clone();
    }
    m.departments = listed.clone();
    if let Some(v) = &f.position {
        m.title = v.clone();
    }
    if let Some(v) = &f.mobile {
        m.mobile = v.clone();
    }
    if let Some(v) = &f.email {
        m.email = v.clone();
    }
    if let Some(v) = &f.alias {
        valid!(len_ok(v, 64, "alias"));
        p.alias = v.clone();
    }
    if let Some(v) = &f.telephone {
        valid!(len_ok(v, 32, "telephone"));
        p.telephone = v.clone();
    }
    if let Some(v) = &f.address {
        valid!(len_ok(v, 128, "address"));
        p.address = v.clone();
    }
    if let Some(g) = f.gender {
        ensure!(g <= 2, Code::InvalidArgument, "gender must be 0, 1 or 2");
        p.gender = g;
    }
    if let Some(e) = f.enabled {
        m.status = if e {
            MemberStatus::Active
        } else {
            MemberStatus::Disabled
        };
    }
    check!(directory::check_member_fields(s, &m));
    m.departments.sort_unstable();
    m.departments.dedup();
    if let Some(md) = f.main_department {
        ensure!(
            md == 0 || m.departments.contains(&md),
            Code::InvalidArgument,
            "main_department {md} is not one of the member's departments"
        );
        p.main_department = md;
    } else if p.main_department != 0 && !m.departments.contains(&p.main_department) {
        p.main_department = 0;
    }
    p.orders = m
        .departments
        .iter()
        .map(|d| orders.get(d).copied().unwrap_or(0))
        .collect();
    // Index writes: departments, name, leaders.
    let old_depts = old
        .as_ref()
        .map(|o| o.departments.clone())
        .unwrap_or_default();
    for d in &old_depts {
        if !m.departments.contains(d) {
            s.delete(&keys::dept_member(*d, &m.userid));
            set_leader(s, *d, &m.userid, false)?;
        }
    }
    for d in &m.departments {
        s.put(&keys::dept_member(*d, &m.userid), Vec::new());
    }
    if let Some(flags) = &f.leader_in_dept {
        for (d, lead) in listed.iter().zip(flags) {
            set_leader(s, *d, &m.userid, *lead)?;
        }
    }
    if let Some(o) = &old {
        for k in keys::name_keys(&o.name, &o.userid) {
            s.delete(&k);
        }
    }
    for k in keys::name_keys(&m.name, &m.userid) {
        s.put(&k, Vec::new());
    }
    s.put_as(&keys::user(&m.userid), &m)?;
    s.put_as(&keys::profile(&m.userid), &p)?;
    // No account record until there is something to keep (a password, a
    // failed login): readers treat a missing one as the default.
    if m.status != MemberStatus::Active
        && old
            .as_ref()
            .is_some_and(|o| o.status == MemberStatus::Active)
    {
        revoke_sessions(s, &m.userid, None)?;
    }
    if notify {
        let change = if creating {
            "create_user"
        } else {
            "update_user"
        };
        callbacks::contact_changed(s, ctx, change, callbacks::user_fields(&m))?;
    }
    Ok(Ok(Done::Member(m)))
}

/// Add or remove `userid` among the leaders of department `d` (if it exists).
pub(super) fn set_leader<S: Store>(
    s: &mut Overlay<'_, S>,
    d: u64,
    userid: &str,
    lead: bool,
) -> Result<(), StoreFault> {
    let Some(mut dept) = s.get_as::<Department>(&keys::dept(d))? else {
        return Ok(());
    };
    let has = dept.leaders.iter().any(|l| l == userid);
    if has == lead {
        return Ok(());
    }
    if lead {
        dept.leaders.push(userid.to_string());
        dept.leaders.sort();
    } else {
        dept.leaders.retain(|l| l != userid);
    }
    s.put_as(&keys::dept(d), &dept)
}

/// Create (`create`) or partially update a department from WeCom's fields.
pub(super) fn put_department<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    create: bool,
    f: &DeptFields,
    notify: bool,
) -> R<Done> {
    let existing = match f.id {
        Some(id) => s.get_as::<Department>(&keys::dept(id))?,
        None => None,
    };
    let d = if create {
        let id = match f.id {
            Some(id) => {
                ensure!(
                    existing.is_none(),
                    Code::AlreadyExists,
                    "department id {id} exists"
                );
                id
            }
            None => {
                s.get_as::<u64>(keys::DEPT_CTR)?
                    .unwrap_or(ROOT_DEPARTMENT)
                    .max(ROOT_DEPARTMENT)
                    + 1
            }
        };
        let Some(name) = &f.name else {
            return Ok(refuse(Code::InvalidArgument, "name is required"));
        };
        Department {
            id,
            parent: if id == ROOT_DEPARTMENT {
                None
            } else {
                Some(f.parent.unwrap_or(ROOT_DEPARTMENT))
            },
            name: name.clone(),
            order: f.order.unwrap_or(0),
            leaders: Vec::new(),
        }
    } else {
        let Some(mut d) = existing.clone() else {
            return Ok(refuse(
                Code::NotFound,
                format!("no department {}", f.id.unwrap_or(0)),
            ));
        };
        if let Some(p) = f.parent {
            ensure!(
                d.id != ROOT_DEPARTMENT || p == 0,
                Code::InvalidArgument,
                "the root department has no parent"
            );
            if d.id != ROOT_DEPARTMENT {
                d.parent = Some(p);
            }
        }
        if let Some(n) = &f.name {
            d.name = n.clone();
        }
        if let Some(o) = f.order {
            d.order = o;
        }
        d
    };
    let done = check!(directory::upsert_department(s, &d));
    if notify {
        let change = if create {
            "create_party"
        } else {
            "update_party"
        };
        callbacks::contact_changed(s, ctx, change, callbacks::party_fields(&d))?;
    }
    Ok(Ok(done))
}

/// WeCom's delete and batchdelete: the members depart. Refused as a whole
/// if any userid is unknown or already gone.
pub(super) fn delete_users<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    userids: &[String],
) -> R<Done> {
    ensure!(
        !userids.is_empty() && userids.len() <= MAX_BATCH_DELETE,
        Code::InvalidArgument,
        "give 1-{MAX_BATCH_DELETE} userids"
    );
    for u in userids {
        match s.get_as::<Member>(&keys::user(u))? {
            Some(m) if m.status != MemberStatus::Departed => {}
            _ => return Ok(refuse(Code::NotFound, format!("no member {u:?}"))),
        }
    }
    for u in userids {
        let _ = check!(directory::set_status(s, ctx, u, MemberStatus::Departed));
    }
    Ok(Ok(Done::Ok))
}
