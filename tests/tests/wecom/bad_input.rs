//! Bad input of every family gets a WeCom error and changes nothing.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_of_every_family_gets_a_wecom_error_and_changes_nothing() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann", "bob"], PW).await;
    let app = create_app(&c, 0, "HR-sync", ALL, &[]).await;
    let w = wecom(&mut c, 0);
    let t = w.token(&app).await;
    // Something to refer to.
    assert_eq!(
        errcode(
            &w.post(
                "department/create",
                &t,
                json!({"name": "Sales", "parentid": 1, "id": 2})
            )
            .await
        ),
        0
    );
    let v = w
        .post(
            "appchat/create",
            &t,
            json!({"chatid": "c1", "name": "P", "owner": "ann", "userlist": ["ann", "bob"]}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let before = state_hash(&c, 0).await;

    // Tokens.
    let v = w
        .raw(Method::GET, "/cgi-bin/user/get?userid=ann", None)
        .await;
    assert_eq!(errcode(&v), 41001, "{v}");
    for bad in ["garbage", "AQAPQkIAAAABAAAAAAA", &format!("{t}x")] {
        assert_eq!(
            errcode(&w.get("user/get", bad, &[("userid", "ann")]).await),
            40014,
            "{bad}"
        );
    }
    let v = w
        .raw(
            Method::GET,
            "/cgi-bin/gettoken?corpid=wwnope&corpsecret=x",
            None,
        )
        .await;
    assert_eq!(errcode(&v), 40013, "{v}");
    let v = w
        .raw(
            Method::GET,
            &format!("/cgi-bin/gettoken?corpid={}&corpsecret=wrong", app.corpid),
            None,
        )
        .await;
    assert_eq!(errcode(&v), 40001, "{v}");
    let v = w.raw(Method::GET, "/cgi-bin/gettoken", None).await;
    assert_eq!(errcode(&v), 41002, "{v}");

    // Bodies: malformed, empty, wrong types, unknown fields, too large.
    let raw = |api: &str, body: &[u8]| {
        let w = w.clone();
        let path = format!("/cgi-bin/{api}?access_token={t}");
        let body = body.to_vec();
        async move { w.raw(Method::POST, &path, Some(body)).await }
    };
    let valid: Vec<(&str, Value)> = vec![
        ("user/create", json!({"userid": "zed", "name": "Z"})),
        ("department/create", json!({"name": "Ops", "parentid": 1})),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "text", "agentid": app.agentid, "text": {"content": "x"}}),
        ),
        (
            "appchat/send",
            json!({"chatid": "c1", "msgtype": "text", "text": {"content": "x"}}),
        ),
        ("batch/replaceuser", json!({"media_id": "m"})),
    ];
    for (api, body) in valid {
        assert_eq!(errcode(&raw(api, b"{ oops").await), 47001, "{api}");
        assert_eq!(errcode(&raw(api, b"").await), 44002, "{api}");
        let mut extra = body.clone();
        extra["colour"] = json!("red");
        let v = raw(api, extra.to_string().as_bytes()).await;
        assert_eq!(errcode(&v), 40058, "{api}: {v}");
        assert!(
            v["errmsg"].as_str().unwrap_or_default().contains("colour"),
            "{api}: {v}"
        );
    }
    let v = w
        .post("user/create", &t, json!({"userid": "zed", "name": 42}))
        .await;
    assert_eq!(errcode(&v), 40058, "{v}");
    let huge = json!({"userid": "zed", "name": "x".repeat(2 << 20)})
        .to_string()
        .into_bytes();
    assert_eq!(errcode(&raw("user/create", &huge).await), 45002);

    // Directory.
    let cases: Vec<(&str, Value, i64)> = vec![
        (
            "user/create",
            json!({"userid": "ann", "name": "Dup"}),
            60102,
        ),
        (
            "user/create",
            json!({"userid": "bad id!", "name": "X"}),
            40003,
        ),
        (
            "user/create",
            json!({"userid": "zed", "name": "Z", "department": [99]}),
            60003,
        ),
        ("user/create", json!({"userid": "zed", "name": ""}), 60112),
        (
            "user/create",
            json!({"userid": "zed", "name": "Z", "department": [1, 2], "order": [1]}),
            40058,
        ),
        (
            "user/update",
            json!({"userid": "ghost", "name": "G"}),
            60111,
        ),
        (
            "user/batchdelete",
            json!({"useridlist": ["ann", "ghost"]}),
            60111,
        ),
        ("user/batchdelete", json!({"useridlist": []}), 40058),
        (
            "department/create",
            json!({"name": "Sales", "parentid": 1}),
            60008,
        ),
        (
            "department/create",
            json!({"name": "X", "parentid": 77}),
            60004,
        ),
        ("department/create", json!({"name": "a/b:c*"}), 60001),
        ("department/update", json!({"id": 77, "name": "X"}), 60003),
        ("department/update", json!({"id": 1, "parentid": 2}), 40058),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "text", "agentid": app.agentid, "text": {"content": "  "}}),
            44004,
        ),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "image", "agentid": app.agentid, "image": {"media_id": "x"}}),
            40007,
        ),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "video", "agentid": app.agentid, "video": {"media_id": "x"}}),
            40008,
        ),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "text", "agentid": 1, "text": {"content": "x"}}),
            40056,
        ),
        (
            "message/send",
            json!({"touser": "ann", "msgtype": "text", "text": {"content": "x"}}),
            41011,
        ),
        (
            "message/send",
            json!({"touser": "ghost", "msgtype": "text", "agentid": app.agentid, "text": {"content": "x"}}),
            81013,
        ),
        (
            "message/send",
            json!({"totag": "1", "msgtype": "text", "agentid": app.agentid, "text": {"content": "x"}}),
            81013,
        ),
        ("message/recall", json!({"msgid": "m999"}), 40058),
        (
            "appchat/create",
            json!({"chatid": "c1", "name": "P", "userlist": ["ann", "bob"]}),
            40058,
        ),
        (
            "appchat/create",
            json!({"name": "P", "userlist": ["ann"]}),
            40058,
        ),
        (
            "appchat/create",
            json!({"name": "P", "userlist": ["ann", "ghost"]}),
            60111,
        ),
        (
            "appchat/update",
            json!({"chatid": "nope", "name": "X"}),
            86003,
        ),
        (
            "appchat/send",
            json!({"chatid": "nope", "msgtype": "text", "text": {"content": "x"}}),
            86003,
        ),
        ("batch/syncuser", json!({"media_id": "nope"}), 40007),
    ];
    for (api, body, want) in cases {
        let v = w.post(api, &t, body.clone()).await;
        assert_eq!(errcode(&v), want, "{api} {body}: {v}");
    }
    type Get<'a> = (&'a str, Vec<(&'a str, &'a str)>, i64);
    let gets: Vec<Get> = vec![
        ("user/get", vec![("userid", "ghost")], 60111),
        ("user/get", vec![], 40058),
        ("user/delete", vec![("userid", "ghost")], 60111),
        ("department/delete", vec![("id", "1")], 60007),
        ("department/delete", vec![("id", "77")], 60003),
        ("department/get", vec![("id", "77")], 60003),
        ("user/list", vec![("department_id", "77")], 60003),
        ("appchat/get", vec![("chatid", "nope")], 86003),
        ("batch/getresult", vec![("jobid", "nope")], 40058),
        ("auth/getuserinfo", vec![("code", "nope")], 40029),
    ];
    for (api, q, want) in gets {
        let v = w.get(api, &t, &q).await;
        assert_eq!(errcode(&v), want, "{api} {q:?}: {v}");
    }
    assert_eq!(
        state_hash(&c, 0).await,
        before,
        "a refused call changed the state"
    );
    // A department with members cannot be deleted.
    let v = w
        .post(
            "user/update",
            &t,
            json!({"userid": "bob", "department": [2]}),
        )
        .await;
    assert_eq!(errcode(&v), 0, "{v}");
    let mid = state_hash(&c, 0).await;
    assert_eq!(
        errcode(&w.get("department/delete", &t, &[("id", "2")]).await),
        60005
    );
    assert_eq!(state_hash(&c, 0).await, mid);
    // Uploads: wrong type, no file, a file that is not a user template.
    let v = w
        .raw(
            Method::POST,
            &format!("/cgi-bin/media/upload?access_token={t}&type=video"),
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(errcode(&v), 40004, "{v}");
    let v = w
        .raw(
            Method::POST,
            &format!("/cgi-bin/media/upload?access_token={t}&type=image"),
            Some(b"x".to_vec()),
        )
        .await;
    assert_eq!(errcode(&v), 40058, "{v}");
    let media = w.upload(&t, "notes.csv", "foo,bar\n1,2\n".as_bytes()).await;
    let v = w
        .post("batch/replaceuser", &t, json!({"media_id": media}))
        .await;
    assert_eq!(errcode(&v), 40058, "{v}");
    assert!(
        v["errmsg"].as_str().unwrap_or_default().contains("帐号"),
        "{v}"
    );
    let v = w.post("batch/syncuser", &t, json!({"media_id": media, "callback": {"url": "http://10.0.0.1/x", "token": "t", "encodingaeskey": "k"}})).await;
    assert_eq!(errcode(&v), 40058, "{v}");
    // Nothing the refusals touched changed (the upload itself is stored).
    let (_, v) = admin(&c, 0, Method::GET, "/v1/directory/members/ann", None).await;
    assert_eq!(
        (v["name"].as_str(), v["status"].as_str()),
        (Some("User ann"), Some("active")),
        "{v}"
    );
    let v = w
        .get(
            "user/simplelist",
            &t,
            &[("department_id", "1"), ("fetch_child", "1")],
        )
        .await;
    let users: BTreeSet<&str> = v["userlist"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u["userid"].as_str())
        .collect();
    assert_eq!(users, BTreeSet::from(["ann", "bob"]));
    let v = w.get("department/list", &t, &[]).await;
    assert_eq!(v["department"].as_array().map(Vec::len), Some(2), "{v}");
    let v = w.get("appchat/get", &t, &[("chatid", "c1")]).await;
    assert_eq!(v["chat_info"]["userlist"], json!(["ann", "bob"]), "{v}");
}
