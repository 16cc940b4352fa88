//! Departments and members.

use super::*;

pub(super) fn upsert_department<S: Store>(s: &mut Overlay<'_, S>, d: &Department) -> R<Done> {
    valid!(valid_name(&d.name, "department name"));
    ensure!(d.id > 0, Code::InvalidArgument, "department id must be > 0");
    for l in &d.leaders {
        let _ = check!(active_member(s, l, false));
    }
    let existing = s.get_as::<Department>(&keys::dept(d.id))?;
    match d.parent {
        None => ensure!(
            d.id == ROOT_DEPARTMENT,
            Code::InvalidArgument,
            "only the root department (id 1) has no parent"
        ),
        Some(p) => {
            ensure!(
                d.id != ROOT_DEPARTMENT,
                Code::InvalidArgument,
                "the root department (id 1) cannot have a parent"
            );
            ensure!(
                s.get(&keys::dept(p))?.is_some(),
                Code::NotFound,
                "parent department {p} does not exist"
            );
            // No cycles: walking up from the new parent must not meet d.
            let mut at = Some(p);
            let mut steps = 0;
            while let Some(cur) = at {
                ensure!(
                    cur != d.id,
                    Code::Cycle,
                    "moving department {} under {p} would make a cycle",
                    d.id
                );
                steps += 1;
                if steps > 10_000 {
                    return Err(StoreFault("department tree deeper than 10000".into()));
                }
                at = s
                    .get_as::<Department>(&keys::dept(cur))?
                    .and_then(|x| x.parent);
            }
        }
    }
    // Sibling departments have distinct names (as in WeCom).
    let parent = d.parent.unwrap_or(0);
    let name_key = keys::dept_name(parent, &d.name);
    if let Some(other) = s.get_as::<u64>(&name_key)?
        && other != d.id
        && s.get(&keys::dept(other))?.is_some()
    {
        return Ok(refuse(
            Code::AlreadyExists,
            format!(
                "department {other} under {parent} is already named {:?}",
                d.name
            ),
        ));
    }
    if let Some(old) = &existing {
        if old.parent != d.parent {
            s.delete(&keys::dept_child(old.parent.unwrap_or(0), d.id));
        }
        s.delete(&keys::dept_name(old.parent.unwrap_or(0), &old.name));
    }
    s.put_as(&name_key, &d.id)?;
    s.put(&keys::dept_child(parent, d.id), Vec::new());
    s.put_as(&keys::dept(d.id), d)?;
    // Generated ids (WeCom's create without an id) start above every id used.
    if s.get_as::<u64>(keys::DEPT_CTR)?.unwrap_or(0) < d.id {
        s.put_as(keys::DEPT_CTR, &d.id)?;
    }
    Ok(Ok(Done::Department(d.clone())))
}

pub(super) fn delete_department<S: Store>(s: &mut Overlay<'_, S>, ctx: &Ctx, id: u64) -> R<Done> {
    let Some(d) = s.get_as::<Department>(&keys::dept(id))? else {
        return Ok(refuse(Code::NotFound, format!("no department {id}")));
    };

    ensure!(
        s.scan(&keys::dept_children(id), None, 1)?.is_empty(),
        Code::DepartmentNotEmpty,
        "department {id} still has sub-departments"
    );
    ensure!(
        s.scan(&keys::dept_members(id), None, 1)?.is_empty(),
        Code::DepartmentNotEmpty,
        "department {id} still has members"
    );
    ensure!(
        id != ROOT_DEPARTMENT,
        Code::Forbidden,
        "the root department cannot be deleted"
    );
    s.delete(&keys::dept(id));
    s.delete(&keys::dept_child(d.parent.unwrap_or(0), id));
    s.delete(&keys::dept_name(d.parent.unwrap_or(0), &d.name));
    callbacks::contact_changed(s, ctx, "delete_party", vec![("Id", id.to_string())])?;
    Ok(Ok(Done::Ok))
}

pub(super) fn check_member_fields<S: Store>(s: &Overlay<'_, S>, m: &Member) -> R<()> {
    valid!(valid_userid(&m.userid));
    valid!(valid_name(&m.name, "name"));
    valid!(valid_field(&m.title, "title"));
    valid!(valid_field(&m.email, "email"));
    valid!(valid_field(&m.mobile, "mobile"));
    ensure!(
        !m.departments.is_empty() && m.departments.len() <= 20,
        Code::InvalidArgument,
        "a member belongs to 1-20 departments"
    );
    for d in &m.departments {
        ensure!(
            s.get(&keys::dept(*d))?.is_some(),
            Code::NotFound,
            "department {d} does not exist"
        );
    }
    Ok(Ok(()))
}

pub(super) fn create_member<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    m: &Member,
    password_hash: Option<&str>,
) -> R<Done> {
    check!(check_member_fields(s, m));
    ensure!(
        s.get(&keys::user(&m.userid))?.is_none() && s.get(&keys::external(&m.userid))?.is_none(),
        Code::AlreadyExists,
        "userid {:?} is taken",
        m.userid
    );
    let mut m = m.clone();
    m.departments.sort_unstable();
    m.departments.dedup();
    m.status = MemberStatus::Active;
    for d in &m.departments {
        s.put(&keys::dept_member(*d, &m.userid), Vec::new());
    }
    for k in keys::name_keys(&m.name, &m.userid) {
        s.put(&k, Vec::new());
    }
    s.put_as(&keys::user(&m.userid), &m)?;
    let acct = Account {
        password_hash: password_hash.map(str::to_string),
        must_change: password_hash.is_some(),
        ..Default::default()
    };
    s.put_as(&keys::account(&m.userid), &acct)?;
    callbacks::contact_changed(s, ctx, "create_user", callbacks::user_fields(&m))?;
    Ok(Ok(Done::Member(m)))
}

pub(super) fn update_member<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    userid: &str,
    p: &MemberPatch,
) -> R<Done> {
    let old = check!(active_member(s, userid, false));
    ensure!(
        old.status != MemberStatus::Departed,
        Code::AccountInactive,
        "member {userid:?} has departed and cannot be changed"
    );
    let mut m = old.clone();
    if let Some(v) = &p.name {
        m.name = v.clone();
    }
    if let Some(v) = &p.departments {
        m.departments = v.clone();
        m.departments.sort_unstable();
        m.departments.dedup();
    }
    if let Some(v) = &p.title {
        m.title = v.clone();
    }
    if let Some(v) = &p.email {
        m.email = v.clone();
    }
    if let Some(v) = &p.mobile {
        m.mobile = v.clone();
    }
    check!(check_member_fields(s, &m));
    for d in &old.departments {
        s.delete(&keys::dept_member(*d, userid));
        if !m.departments.contains(d) {
            users::set_leader(s, *d, userid, false)?;
        }
    }
    for d in &m.departments {
        s.put(&keys::dept_member(*d, userid), Vec::new());
    }
    if m.departments != old.departments {
        // The per-department order follows the departments it belongs to.
        let mut p = users::profile_of(s, userid)?;
        let orders: std::collections::BTreeMap<u64, i64> = old
            .departments
            .iter()
            .copied()
            .zip(p.orders.iter().copied())
            .collect();
        p.orders = m
            .departments
            .iter()
            .map(|d| orders.get(d).copied().unwrap_or(0))
            .collect();
        if !m.departments.contains(&p.main_department) {
            p.main_department = 0;
        }
        s.put_as(&keys::profile(userid), &p)?;
    }
    for k in keys::name_keys(&old.name, userid) {
        s.delete(&k);
    }
    for k in keys::name_keys(&m.name, userid) {
        s.put(&k, Vec::new());
    }
    s.put_as(&keys::user(userid), &m)?;
    callbacks::contact_changed(s, ctx, "update_user", callbacks::user_fields(&m))?;
    Ok(Ok(Done::Member(m)))
}

pub(super) fn set_status<S: Store>(
    s: &mut Overlay<'_, S>,
    ctx: &Ctx,
    userid: &str,
    status: MemberStatus,
) -> R<Done> {
    let mut m = check!(active_member(s, userid, false));
    ensure!(
        m.status != MemberStatus::Departed || status == MemberStatus::Departed,
        Code::AccountInactive,
        "member {userid:?} has departed and cannot be reactivated"
    );
    m.status = status;
    if status == MemberStatus::Departed {
        // Departed members leave the org chart but keep their history.
        for d in &m.departments {
            s.delete(&keys::dept_member(*d, userid));
            users::set_leader(s, *d, userid, false)?;
        }
    }
    if status != MemberStatus::Active {
        revoke_sessions(s, userid, None)?;
    }
    if status == MemberStatus::Departed {
        // A departed member holds no rights.
        for p in Permission::ALL {
            s.delete(&keys::permission(p.as_str(), userid));
        }
    }
    s.put_as(&keys::user(userid), &m)?;
    if status == MemberStatus::Departed {
        // Their external contacts and customer groups wait for a new owner.
        super::external::member_departed(s, ctx, userid)?;
    }
    if status == MemberStatus::Departed {
        callbacks::contact_changed(
            s,
            ctx,
            "delete_user",
            vec![("UserID", callbacks::cdata(userid))],
        )?;
    } else {
        callbacks::contact_changed(s, ctx, "update_user", callbacks::user_fields(&m))?;
    }
    Ok(Ok(Done::Member(m)))
}

/// Grant or revoke a permission (sysadmin). Granting to a departed member
/// is refused; revoking what was never granted is not an error.
pub(super) fn set_permission<S: Store>(
    s: &mut Overlay<'_, S>,
    userid: &str,
    permission: Permission,
    granted: bool,
) -> R<Done> {
    let m: Option<Member> = s.get_as(&keys::user(userid))?;
    let Some(m) = m else {
        return Ok(refuse(Code::NotFound, format!("no member {userid:?}")));
    };
    let key = keys::permission(permission.as_str(), userid);
    if granted {
        ensure!(
            m.status != MemberStatus::Departed,
            Code::AccountInactive,
            "member {userid:?} has departed"
        );
        s.put(&key, Vec::new());
    } else {
        s.delete(&key);
    }
    Ok(Ok(Done::Member(m)))
}
