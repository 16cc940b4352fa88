//! WeCom-style directory writes: users and departments.

use super::*;

#[test]
fn wecom_user_writes_keep_profile_order_and_leaders() {
    let (mut s, app) = world();
    let w = as_app(10, app.agentid);
    let mut f = user("li", "李四", &[3, 2]);
    f.orders = Some(vec![30, 20]);
    f.leader_in_dept = Some(vec![true, false]);
    f.alias = Some("Lee".into());
    f.gender = Some(1);
    f.main_department = Some(3);
    f.position = Some("经理".into());
    ok(
        &mut s,
        &w,
        Command::PutUser {
            mode: PutMode::Create,
            fields: f.clone(),
        },
    );
    let m = query::member(&s, "li").expect("get").expect("member");
    assert_eq!(m.departments, vec![2, 3]);
    assert_eq!(m.title, "经理");
    let p: Profile = s
        .get_as(&keys::profile("li"))
        .expect("get")
        .expect("profile");
    assert_eq!(
        (p.orders.clone(), p.main_department, p.gender),
        (vec![20, 30], 3, 1)
    );
    let d3 = query::department(&s, 3).expect("get").expect("dept");
    assert_eq!(d3.leaders, vec!["li".to_string()]);
    // Exists: create refused; update of a missing one refused.
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Create,
                fields: f
            }
        ),
        Code::AlreadyExists
    );
    let ghost = UserFields {
        userid: "nobody".into(),
        name: Some("N".into()),
        ..Default::default()
    };
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Update,
                fields: ghost
            }
        ),
        Code::NotFound
    );
    // Leaving department 3 drops the leader flag there; order follows.
    let upd = UserFields {
        userid: "li".into(),
        departments: Some(vec![2]),
        ..Default::default()
    };
    ok(
        &mut s,
        &w,
        Command::PutUser {
            mode: PutMode::Update,
            fields: upd,
        },
    );
    assert!(
        query::department(&s, 3)
            .expect("get")
            .expect("d")
            .leaders
            .is_empty()
    );
    let p: Profile = s
        .get_as(&keys::profile("li"))
        .expect("get")
        .expect("profile");
    assert_eq!((p.orders, p.main_department), (vec![20], 0));
    // Mismatched parallel lists are refused.
    let bad = UserFields {
        userid: "li".into(),
        departments: Some(vec![2, 3]),
        orders: Some(vec![1]),
        ..Default::default()
    };
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Update,
                fields: bad
            }
        ),
        Code::InvalidArgument
    );
    // enable=false disables; delete departs and the userid is not reused.
    let off = UserFields {
        userid: "li".into(),
        enabled: Some(false),
        ..Default::default()
    };
    ok(
        &mut s,
        &w,
        Command::PutUser {
            mode: PutMode::Update,
            fields: off,
        },
    );
    assert_eq!(
        query::member(&s, "li").expect("g").expect("m").status,
        MemberStatus::Disabled
    );
    ok(
        &mut s,
        &w,
        Command::DeleteUsers {
            userids: vec!["li".into()],
        },
    );
    let again = user("li", "新李四", &[1]);
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutUser {
                mode: PutMode::Upsert,
                fields: again
            }
        ),
        Code::AlreadyExists
    );
    // Batch delete is all or nothing.
    let c = code(
        &mut s,
        &w,
        Command::DeleteUsers {
            userids: vec!["a".into(), "ghost".into()],
        },
    );
    assert_eq!(c, Code::NotFound);
    assert_eq!(
        query::member(&s, "a").expect("g").expect("m").status,
        MemberStatus::Active
    );
}

#[test]
fn departments_get_ids_above_every_id_and_sibling_names_are_unique() {
    let (mut s, app) = world();
    let w = as_app(10, app.agentid);
    let auto = DeptFields {
        id: None,
        parent: Some(1),
        name: Some("Ops".into()),
        order: Some(5),
    };
    let Done::Department(d) = ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: auto,
        },
    ) else {
        panic!()
    };
    assert_eq!(d.id, 4);
    ok(
        &mut s,
        &ctx(11),
        Command::UpsertDepartment {
            dept: Department {
                id: 90,
                parent: Some(1),
                name: "Far".into(),
                order: 0,
                leaders: vec![],
            },
        },
    );
    let auto = DeptFields {
        id: None,
        parent: Some(2),
        name: Some("Ops".into()),
        order: None,
    };
    let Done::Department(d) = ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: auto,
        },
    ) else {
        panic!()
    };
    assert_eq!(
        d.id, 91,
        "above the largest id, and the same name under another parent is fine"
    );
    let clash = DeptFields {
        id: None,
        parent: Some(1),
        name: Some("OPS".into()),
        order: None,
    };
    assert_eq!(
        code(
            &mut s,
            &w,
            Command::PutDepartment {
                create: true,
                fields: clash
            }
        ),
        Code::AlreadyExists
    );
    // Renaming frees the old name.
    let rename = DeptFields {
        id: Some(4),
        parent: None,
        name: Some("Operations".into()),
        order: None,
    };
    ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: false,
            fields: rename,
        },
    );
    let reuse = DeptFields {
        id: None,
        parent: Some(1),
        name: Some("Ops".into()),
        order: None,
    };
    ok(
        &mut s,
        &w,
        Command::PutDepartment {
            create: true,
            fields: reuse,
        },
    );
    assert_eq!(
        code(&mut s, &w, Command::DeleteDepartment { id: 1 }),
        Code::DepartmentNotEmpty
    );
    // Even empty, the root stays.
    let mut empty = MemStore::default();
    let root = Department {
        id: 1,
        parent: None,
        name: "Root".into(),
        order: 0,
        leaders: vec![],
    };
    ok(
        &mut empty,
        &ctx(1),
        Command::UpsertDepartment { dept: root },
    );
    assert_eq!(
        code(&mut empty, &ctx(2), Command::DeleteDepartment { id: 1 }),
        Code::Forbidden
    );
}
