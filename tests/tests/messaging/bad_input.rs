//! Bad input to the messaging API: each gets a specific error and
//! changes nothing.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_specific_error_and_changes_nothing() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob", "cai"], PW).await;
    let a = api(&mut c, 0);
    let ann = a.login("ann", PW).await;
    let bob = a.login("bob", PW).await;
    let cai = a.login("cai", PW).await;
    let first = a.send_direct(&ann, "bob", "hello", "m1").await;
    let conv = first["conversation"].as_str().expect("conv").to_string();
    let before = head(&a, &ann).await;
    let send_path = format!("/v1/conversations/{conv}/messages");

    // Wrong password, unknown user: the same answer.
    for (u, p) in [("ann", "wrong password"), ("nobody", PW)] {
        let (s, v) = a
            .call(
                Method::POST,
                "/v1/login",
                None,
                Some(json!({"userid": u, "password": p})),
            )
            .await;
        assert_eq!((s, code(&v)), (401, "unauthenticated"), "{v}");
    }
    // Malformed JSON, wrong types, unknown fields, no content type, huge body.
    let (s, v) = a
        .raw(
            Method::POST,
            &send_path,
            Some(&ann),
            Some(b"{\"text\": ".to_vec()),
            Some("application/json"),
        )
        .await;
    assert_eq!((s, code(&v)), (400, "malformed_json"), "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            &send_path,
            Some(&ann),
            Some(json!({"text": 42})),
        )
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_body"), "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            &send_path,
            Some(&ann),
            Some(json!({"text": "x", "colour": "red"})),
        )
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_body"), "{v}");
    let (s, v) = a
        .raw(
            Method::POST,
            &send_path,
            Some(&ann),
            Some(br#"{"text":"x"}"#.to_vec()),
            Some("text/plain"),
        )
        .await;
    assert_eq!((s, code(&v)), (415, "unsupported_media_type"), "{v}");
    // Just over the 1 MiB limit: small enough that the whole body fits in
    // the socket buffers before the node answers 413 and closes.
    let huge = json!({ "text": "x".repeat((1 << 20) + 1024) })
        .to_string()
        .into_bytes();
    let (s, v) = a
        .raw(
            Method::POST,
            &send_path,
            Some(&ann),
            Some(huge),
            Some("application/json"),
        )
        .await;
    assert_eq!((s, code(&v)), (413, "body_too_large"), "{v}");
    // Too long for the policy, empty.
    let (s, v) = a
        .call(
            Method::POST,
            &send_path,
            Some(&ann),
            Some(json!({"text": "字".repeat(4001)})),
        )
        .await;
    assert_eq!((s, code(&v)), (422, "limit_exceeded"), "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            &send_path,
            Some(&ann),
            Some(json!({"text": ""})),
        )
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_argument"), "{v}");
    // Unknown ids.
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/conversations/g999/messages",
            Some(&ann),
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!((s, code(&v)), (404, "not_found"), "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/direct/nobody/messages",
            Some(&ann),
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!((s, code(&v)), (404, "not_found"), "{v}");
    // A well-formed send this caller may not make: to themselves.
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/direct/ann/messages",
            Some(&ann),
            Some(json!({"text": "note to self"})),
        )
        .await;
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
    let (s, v) = a
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/messages/abc/receipts"),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_path"), "{v}");
    let (s, v) = a
        .call(Method::GET, "/v1/sync?since=banana", Some(&ann), None)
        .await;
    assert_eq!((s, code(&v)), (400, "invalid_token"), "{v}");
    // A non-member sees nothing of the conversation and cannot post to it.
    let (s, v) = a
        .call(
            Method::GET,
            &format!("/v1/conversations/{conv}/messages"),
            Some(&cai),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (403, "not_a_member"), "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            &send_path,
            Some(&cai),
            Some(json!({"text": "x"})),
        )
        .await;
    assert_eq!((s, code(&v)), (403, "not_a_member"), "{v}");
    let (s, v) = a.call(Method::GET, "/v1/sync", Some(&cai), None).await;
    assert_eq!(s, 200);
    assert!(
        !v.to_string().contains("hello"),
        "a non-member synced the message: {v}"
    );
    // Someone else's message cannot be recalled.
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages/1/recall"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (403, "forbidden"), "{v}");
    // No token, garbage token, revoked token.
    let (s, v) = a.call(Method::GET, "/v1/conversations", None, None).await;
    assert_eq!((s, code(&v)), (401, "unauthenticated"), "{v}");
    let (s, v) = a
        .call(Method::GET, "/v1/conversations", Some("eat_nonsense"), None)
        .await;
    assert_eq!((s, code(&v)), (401, "unauthenticated"), "{v}");
    assert_eq!(
        head(&a, &ann).await,
        before,
        "a refused request changed the state"
    );

    let cai2 = a.login("cai", PW).await;
    let (s, _) = a.call(Method::POST, "/v1/logout", Some(&cai2), None).await;
    assert_eq!(s, 200);
    let (s, v) = a
        .call(Method::GET, "/v1/conversations", Some(&cai2), None)
        .await;
    assert_eq!(
        (s, code(&v)),
        (401, "unauthenticated"),
        "revoked token: {v}"
    );
    let _ = cai;

    // A retried send with the same client id makes one message.
    let again = a.send_direct(&ann, "bob", "hello", "m1").await;
    assert_eq!(
        again["seq"], first["seq"],
        "the retry made a second message"
    );
    assert_eq!(head(&a, &ann).await, before);

    // The security admin shortens the recall window and session lifetime.
    let sec = c.pki.operator("sec", Role::Secadmin);
    let sec = Client::with_cert_dir(&c.nodes[0].admin_url(), &sec).expect("client");
    let mut policy: Value = sec.get_json("/v1/policy").await.expect("policy");
    policy["recall_window_ms"] = json!(1);
    policy["session_ttl_ms"] = json!(5_000);
    let (s, b) = sec
        .request(
            Method::PUT,
            "/v1/policy",
            Some(policy.to_string().into_bytes()),
        )
        .await
        .expect("put policy");
    assert!(s.is_success(), "{s} {}", String::from_utf8_lossy(&b));
    // The system administrator may not change the security policy.
    let (s, _) = c
        .admin(0)
        .request(
            Method::PUT,
            "/v1/policy",
            Some(policy.to_string().into_bytes()),
        )
        .await
        .expect("put policy");
    assert_eq!(s.as_u16(), 403);

    let m = a.send_direct(&ann, "bob", "oops", "m2").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let at = head(&a, &ann).await;
    let (s, v) = a
        .call(
            Method::POST,
            &format!("/v1/conversations/{conv}/messages/{}/recall", m["seq"]),
            Some(&ann),
            None,
        )
        .await;
    assert_eq!((s, code(&v)), (409, "recall_window_expired"), "{v}");
    assert_eq!(head(&a, &ann).await, at);

    // Sessions opened now expire after 5 s.
    let short = a.login("bob", PW).await;
    let (s, _) = a.call(Method::GET, "/v1/me", Some(&short), None).await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(5_500)).await;
    let (s, v) = a.call(Method::GET, "/v1/me", Some(&short), None).await;
    assert_eq!((s, code(&v)), (401, "token_expired"), "{v}");

    // Disabling a member revokes their sessions at once.
    let ann2 = a.login("ann", PW).await;
    let (s, _) = c
        .admin(0)
        .request(
            Method::PUT,
            "/v1/directory/members/ann/status",
            Some(json!({"status": "disabled"}).to_string().into_bytes()),
        )
        .await
        .expect("disable");
    assert!(s.is_success());
    let (s, v) = a.call(Method::GET, "/v1/me", Some(&ann2), None).await;
    assert_eq!((s, code(&v)), (401, "unauthenticated"), "{v}");
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/login",
            None,
            Some(json!({"userid": "ann", "password": PW})),
        )
        .await;
    assert_eq!((s, code(&v)), (403, "account_inactive"), "{v}");
}
