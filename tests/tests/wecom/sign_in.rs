//! Sign-in codes work once and only for trusted redirects.

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_codes_work_once_and_only_for_trusted_redirects() {
    let mut c = TestCluster::start(1, NodeSpec::default()).await;
    seed_directory(&c, 0, &["ann"], PW).await;
    let a = api(&mut c, 0);
    // The initial password must be changed before signing in anywhere.
    let tok = a.login("ann", PW).await;
    let new_pw = "a much better passphrase";
    let (s, v) = a
        .call(
            Method::POST,
            "/v1/me/password",
            Some(&tok),
            Some(json!({"old_password": PW, "new_password": new_pw})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let app = create_app(&c, 0, "OA", &["oauth"], &["oa.example.internal"]).await;
    let w = wecom(&mut c, 0);
    let t = w.token(&app).await;
    let redirect = "https://oa.example.internal/sso/callback?x=1";
    let q = format!(
        "/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code&scope=snsapi_base&state=s%201&agentid={}",
        app.corpid,
        form_urlencoded::byte_serialize(redirect.as_bytes()).collect::<String>(),
        app.agentid
    );
    let page = w.raw(Method::GET, &q, None).await;
    let html = page.as_str().expect("html");
    assert!(html.contains("<form") && html.contains("OA"), "{html}");
    let field = |name: &str| {
        let at = html.find(&format!("name=\"{name}\" value=\"")).expect(name) + name.len() + 15;
        html[at..].split('"').next().expect("value").to_string()
    };
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("appid", &field("appid"))
        .append_pair("redirect_uri", &field("redirect_uri").replace("&amp;", "&"))
        .append_pair("state", &field("state"))
        .append_pair("agentid", &field("agentid"))
        .append_pair("form_token", &field("form_token"))
        .append_pair("userid", "ann")
        .append_pair("password", new_pw)
        .finish();
    let session =
        enclave_ops::Client::anonymous(&w.url, &c.pki.ca_dir().join("ca.pem")).expect("client");
    let (status, headers, _) = session
        .session()
        .request_with_headers(
            Method::POST,
            "/connect/oauth2/authorize",
            Some(form.into_bytes()),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await
        .expect("post form");
    assert_eq!(status.as_u16(), 303);
    let location = headers
        .get("location")
        .and_then(|l| l.to_str().ok())
        .expect("location")
        .to_string();
    assert!(
        location.starts_with("https://oa.example.internal/sso/callback?x=1&code="),
        "{location}"
    );
    assert!(location.ends_with("&state=s+1"), "{location}");
    let cookie = headers
        .get("set-cookie")
        .and_then(|l| l.to_str().ok())
        .expect("cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("Secure"),
        "{cookie}"
    );
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("code");
    let v = w.get("auth/getuserinfo", &t, &[("code", code)]).await;
    assert_eq!((errcode(&v), v["userid"].as_str()), (0, Some("ann")), "{v}");
    // Once only.
    assert_eq!(
        errcode(&w.get("auth/getuserinfo", &t, &[("code", code)]).await),
        40029
    );
    // An untrusted redirect gets an error page, no form.
    let evil = q.replace("oa.example.internal", "evil.example.com");
    let (status, _, body) = session
        .session()
        .request_with_headers(Method::GET, &evil, None, &[])
        .await
        .expect("get");
    assert_eq!(status.as_u16(), 400);
    assert!(!String::from_utf8_lossy(&body).contains("<form"));
    // A forged form (no valid form token) signs nobody in.
    let forged = form_urlencoded::Serializer::new(String::new())
        .append_pair("appid", &app.corpid)
        .append_pair("redirect_uri", redirect)
        .append_pair("agentid", &app.agentid.to_string())
        .append_pair("form_token", "00.1")
        .append_pair("userid", "ann")
        .append_pair("password", new_pw)
        .finish();
    let (status, headers, _) = session
        .session()
        .request_with_headers(
            Method::POST,
            "/connect/oauth2/authorize",
            Some(forged.into_bytes()),
            &[("content-type", "application/x-www-form-urlencoded")],
        )
        .await
        .expect("post");
    assert_eq!(status.as_u16(), 401);
    assert!(headers.get("location").is_none());
    let csp = headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script"),
        "{csp}"
    );
}
