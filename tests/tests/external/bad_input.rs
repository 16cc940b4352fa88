//! Bad transfers and limits are refused with specific codes and change nothing.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transfers_and_limits_are_refused_and_change_nothing() {
    let mut c = TestCluster::start(3, NodeSpec::default()).await;
    let ops = Ops::new(&c);
    wait_v3(&c).await;
    dept(&c, 1, json!({"name": "Root"})).await;
    dept(&c, 2, json!({"name": "渠道部", "parent": 1})).await;
    for u in ["ann", "bob", "gone", "lee"] {
        member(&c, u, 2).await;
    }
    dept(
        &c,
        2,
        json!({"name": "渠道部", "parent": 1, "leaders": ["lee"]}),
    )
    .await;
    grant_external_add(&c, "ann").await;
    grant_external_add(&c, "bob").await;
    let a = apis(&mut c);
    let ann = login(&a[0], "ann").await;
    let bob = login(&a[0], "bob").await;
    let lee = login(&a[0], "lee").await;
    for k in ["c1", "c2"] {
        new_contact(&c, &a[0], &ann, &a[1], k).await;
    }
    new_contact(&c, &a[0], &bob, &a[1], "d1").await;
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/directory/members/gone/status",
        Some(json!({"status": "departed"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    c.wait_converged().await;
    let c1 = login(&a[1], "c1").await;

    // Policy values out of range, and a policy change by the wrong role.
    for bad in [
        json!({"max_customer_group_members": 1}),
        json!({"max_contacts_per_employee": 0}),
        json!({"invitation_ttl_ms": 1000}),
        json!({"transfer_window_ms": 31u64 * 86_400_000}),
    ] {
        let (s, v) = admin_as(
            &c,
            &ops.sec,
            0,
            Method::PUT,
            "/v1/policy/external",
            Some(bad.clone()),
        )
        .await;
        assert_eq!((s, code(&v)), (400, Some("invalid_argument")), "{bad}: {v}");
    }
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/policy/external",
        Some(json!({"max_contacts_per_employee": 3})),
    )
    .await;
    assert_eq!(s, 403, "the sysadmin set the policy: {v}");
    let (s, p) = admin(&c, 0, Method::GET, "/v1/policy/external", None).await;
    assert_eq!(s, 200, "{p}");
    assert_eq!(
        (
            p["max_contacts_per_employee"].as_u64(),
            p["max_customer_group_members"].as_u64()
        ),
        (Some(2000), Some(500)),
        "defaults unchanged: {p}"
    );

    // Transfers to a departed, an external, an unknown account, and other
    // nonsense: each its own code, nothing changes.
    let before = state_hash(&c, 0).await;
    let served_before = served(&c, 0, "ann").await;
    for (body, status, want) in [
        (
            json!({"from": "ann", "to": "gone", "externals": ["c1"]}),
            403,
            "account_inactive",
        ),
        (
            json!({"from": "ann", "to": "c2", "externals": ["c1"]}),
            400,
            "invalid_argument",
        ),
        (
            json!({"from": "ann", "to": "nobody", "externals": ["c1"]}),
            404,
            "not_found",
        ),
        (
            json!({"from": "nobody", "to": "bob", "externals": ["c1"]}),
            404,
            "not_found",
        ),
        (
            json!({"from": "ann", "to": "ann", "externals": ["c1"]}),
            400,
            "invalid_argument",
        ),
        (json!({"from": "ann", "to": "bob"}), 400, "invalid_argument"),
        (
            json!({"from": "ann", "to": "bob", "externals": ["d1"]}),
            404,
            "not_found",
        ),
        (
            json!({"from": "ann", "to": "bob", "groups": ["xg99"]}),
            404,
            "not_found",
        ),
        (
            json!({"from": "ann", "to": "bob", "all": true, "externals": ["c1"]}),
            400,
            "invalid_argument",
        ),
        (
            json!({"from": "ann", "to": "bob", "externals": ["c1"], "message": "a\u{0}b"}),
            400,
            "invalid_argument",
        ),
        (
            json!({"from": "ann", "to": "bob", "externals": ["c1"], "colour": "red"}),
            400,
            "invalid_body",
        ),
    ] {
        let (s, v) = admin(
            &c,
            0,
            Method::POST,
            "/v1/external/transfers",
            Some(body.clone()),
        )
        .await;
        assert_eq!((s, code(&v)), (status, Some(want)), "{body}: {v}");
    }
    // Through the client API: an external, a colleague who leads nothing,
    // a leader for a departed employee.
    expect_code(
        &a[1],
        Method::POST,
        "/v1/external/transfers",
        Some(&c1),
        Some(json!({"from": "ann", "to": "bob", "externals": ["c1"]})),
        (403, Some("external_account")),
    )
    .await;
    expect_code(
        &a[0],
        Method::POST,
        "/v1/external/transfers",
        Some(&bob),
        Some(json!({"from": "ann", "to": "bob", "externals": ["c1"]})),
        (403, Some("forbidden")),
    )
    .await;
    let (s, v) = a[0]
        .call(
            Method::POST,
            "/v1/external/transfers",
            Some(&lee),
            Some(json!({"from": "ann", "to": "gone", "externals": ["c1"]})),
        )
        .await;
    assert_eq!((s, code(&v)), (403, Some("account_inactive")), "{v}");
    // The sysadmin's only: the auditor may not transfer.
    let (s, _) = admin_as(
        &c,
        &ops.aud,
        0,
        Method::POST,
        "/v1/external/transfers",
        Some(json!({"from": "ann", "to": "bob", "externals": ["c1"]})),
    )
    .await;
    assert_eq!(s, 403);
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "refused transfers changed the state"
    );
    assert_eq!(served(&c, 0, "ann").await, served_before);
    let (s, v) = admin(&c, 0, Method::GET, "/v1/external/transfers", None).await;
    assert_eq!(
        (s, v["transfers"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );

    // Customer groups over the limit.
    set_policy(&c, &ops, json!({"max_customer_group_members": 3})).await;
    let before = state_hash(&c, 0).await;
    let create = |members: Value| {
        let a = &a[0];
        let ann = ann.clone();
        async move {
            a.call(
                Method::POST,
                "/v1/external/groups",
                Some(&ann),
                Some(json!({"name": "大群", "members": members})),
            )
            .await
        }
    };
    let (s, v) = create(json!(["bob", "c1", "c2"])).await;
    assert_eq!(
        (s, code(&v)),
        (422, Some("limit_exceeded")),
        "4 members with a limit of 3: {v}"
    );
    // Someone else's contact, an unknown account, a departed employee.
    let (s, v) = create(json!(["d1"])).await;
    assert_eq!((s, code(&v)), (403, Some("forbidden")), "{v}");
    let (s, v) = create(json!(["nobody"])).await;
    assert_eq!((s, code(&v)), (404, Some("not_found")), "{v}");
    let (s, v) = create(json!(["gone"])).await;
    assert_eq!((s, code(&v)), (403, Some("account_inactive")), "{v}");
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "refused groups changed the state"
    );
    let (s, g) = create(json!(["c1", "c2"])).await;
    assert_eq!((s, g["member_count"].as_u64()), (200, Some(3)), "{g}");
    let gid = g["id"].as_str().expect("id").to_string();
    let before = state_hash(&c, 0).await;
    expect_code(
        &a[0],
        Method::POST,
        &format!("/v1/conversations/{gid}/members"),
        Some(&ann),
        Some(json!({"userids": ["bob"]})),
        (422, Some("limit_exceeded")),
    )
    .await;
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "a refused member changed the state"
    );
    let (s, v) = a[0]
        .call(
            Method::GET,
            &format!("/v1/conversations/{gid}"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!((s, v["member_count"].as_u64()), (200, Some(3)), "{v}");

    // Invitations over the employee's limit (contacts + open invitations).
    set_policy(&c, &ops, json!({"max_contacts_per_employee": 3})).await;
    let open = invite(&a[0], &ann).await;
    let before = state_hash(&c, 0).await;
    let (s, v) = a[0]
        .call(Method::POST, "/v1/external/invitations", Some(&ann), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (422, Some("limit_exceeded")),
        "2 contacts + 1 open invitation: {v}"
    );
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "a refused invitation changed the state"
    );
    assert_eq!(contacts(&a[0], &ann).await, vec!["c1", "c2"]);
    c.wait_converged().await;
    let (s, v) = accept(&a[1], open["code"].as_str().expect("code"), "c3", "ACME").await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = a[0]
        .call(Method::POST, "/v1/external/invitations", Some(&ann), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (422, Some("limit_exceeded")),
        "3 contacts: {v}"
    );
    // A transfer that would take bob past the limit (1 + 3 > 3).
    let before = state_hash(&c, 0).await;
    let (s, v) = admin(
        &c,
        0,
        Method::POST,
        "/v1/external/transfers",
        Some(json!({"from": "ann", "to": "bob", "all": true})),
    )
    .await;
    assert_eq!((s, code(&v)), (422, Some("limit_exceeded")), "{v}");
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "a refused transfer changed the state"
    );
    assert_eq!(contacts(&a[0], &ann).await, vec!["c1", "c2", "c3"]);
    assert_eq!(contacts(&a[0], &bob).await, vec!["d1"]);

    // A disabled external account cannot log in; enabled again, it can.
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/external/accounts/c1/disabled",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!((s, v["disabled"].as_bool()), (200, Some(true)), "{v}");
    let (s, v) = a[0].call(Method::GET, "/v1/me", Some(&c1), None).await;
    assert_eq!(s, 401, "a disabled account's session goes on: {v}");
    let (s, v) = a[0]
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"userid": "c1", "password": PW})),
        )
        .await;
    assert_eq!(
        (s, code(&v)),
        (403, Some("account_inactive")),
        "a disabled external logged in: {v}"
    );
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/external/accounts/c1/disabled",
        Some(json!({"disabled": false})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    login(&a[0], "c1").await;
    let (s, v) = admin(
        &c,
        0,
        Method::PUT,
        "/v1/external/accounts/ann/disabled",
        Some(json!({"disabled": true})),
    )
    .await;
    assert_eq!(
        (s, code(&v)),
        (404, Some("not_found")),
        "an employee is no external account: {v}"
    );
    same_state_everywhere(&c).await;
}
