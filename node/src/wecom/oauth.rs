//! Sign-in for integrated web apps (WeCom's OAuth2 "网页授权登录"): an app
//! sends the employee's browser to `/connect/oauth2/authorize`; the node
//! signs them in (or recognises its own sign-in cookie) and redirects back
//! with a one-time `code`; the app's server trades the code for the userid
//! with `auth/getuserinfo`. One Enclave password instead of one per system.
//!
//! The page is served by the node itself: no script at all, a stylesheet
//! from the same origin, a strict CSP, no framing, a signed form token
//! against cross-site posts. The redirect must go to one of the app's
//! trusted domains. Codes are valid five minutes and work once, on any
//! node (they are replicated).

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use enclave_cluster::listener::ConnInfo;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use ring::hmac;
use ring::rand::SecureRandom;
use serde::Deserialize;
use serde_json::json;

use super::errors::{Family, WeResult, code, err, invalid, ok};
use super::extract::{AppCall, WeQuery, form_pairs};
use super::propose;
use crate::audit::ActorKind;
use crate::domain::{self, App, Command, Corp, Done, Scope};
use crate::http::accounts::{password_login, token_hash};
use crate::http::{NodeState, S, now_ms, submit};

/// Name of the sign-in cookie (a member session, scoped to this page).
const COOKIE: &str = "enclave_sso";
/// How long a rendered form may be posted back.
const FORM_TTL_SECS: u64 = 15 * 60;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct AuthorizeQuery {
    #[serde(default)]
    appid: String,
    #[serde(default)]
    redirect_uri: String,
    #[serde(default)]
    response_type: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    agentid: String,
}

/// A checked authorization request.
struct Authorize {
    app: App,
    corp: Corp,
    redirect: String,
    origin_of_redirect: String,
    state: String,
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// An error page (no redirect: the redirect target is what failed).
fn error_page(status: StatusCode, msg: &str) -> Response {
    page(
        status,
        &format!(
            "<h1>无法登录 · Cannot sign in</h1><p class=\"err\">{}</p>",
            html_escape(msg)
        ),
        None,
    )
}

/// The page shell with its security headers. `form_to`: the origin a
/// form on this page may end up at (its redirect), for CSP form-action.
fn page(status: StatusCode, body: &str, form_to: Option<&str>) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Enclave 登录</title><link rel=\"stylesheet\" href=\"/connect/oauth2/login.css\"></head>\
         <body><main>{body}</main></body></html>"
    );
    let csp = format!(
        "default-src 'none'; style-src 'self'; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
        form_to.map(|o| format!(" {o}")).unwrap_or_default()
    );
    let mut r = (status, html).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    security_headers(h);
    if let Ok(v) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
}

/// `GET /connect/oauth2/login.css`
pub async fn stylesheet() -> Response {
    let css = "body{font-family:system-ui,'PingFang SC','Microsoft YaHei',sans-serif;background:#f3f5f8;margin:0}\
main{max-width:360px;margin:10vh auto;background:#fff;padding:24px;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{font-size:20px;margin:0 0 16px}label{display:block;margin:12px 0 4px;font-size:14px;color:#333}\
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:10px;font-size:16px;border:1px solid #ccd;border-radius:4px}\
button{margin-top:20px;width:100%;padding:12px;font-size:16px;background:#1f6feb;color:#fff;border:0;border-radius:4px}\
.err{color:#b42318}.app{color:#555;font-size:14px}";
    let mut r = ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], css).into_response();
    security_headers(r.headers_mut());
    r
}

/// `scheme://host[:port]` of an http(s) URL, and its `host[:port]`.
fn origin_and_host(url: &str) -> Option<(String, String)> {
    let uri: http::Uri = url.parse().ok()?;
    let scheme = uri.scheme_str().filter(|s| *s == "https" || *s == "http")?;
    let auth = uri.authority()?;
    if auth.as_str().contains('@') {
        return None;
    }
    let host = auth.as_str().to_lowercase();
    Some((format!("{scheme}://{host}"), host))
}

/// Check an authorization request: the corp, the app, the redirect.
fn check(state: &NodeState, q: &AuthorizeQuery) -> Result<Authorize, Box<Response>> {
    let view = state.view();
    let bad = |m: &str| Err(Box::new(error_page(StatusCode::BAD_REQUEST, m)));
    let corp = match domain::query::corp(&view) {
        Ok(Some(c)) if c.corpid == q.appid => c,
        Ok(_) => return bad("appid is not this enterprise's corpid"),
        Err(_) => {
            return Err(Box::new(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the state failed",
            )));
        }
    };
    if !q.response_type.is_empty() && q.response_type != "code" {
        return bad("response_type must be code");
    }
    if q.state.len() > 128 {
        return bad("state is longer than 128 bytes");
    }
    let Some((origin, host)) = origin_and_host(&q.redirect_uri) else {
        return bad("redirect_uri must be an absolute http(s) URL");
    };
    let apps = match domain::query::apps(&view) {
        Ok(a) => a,
        Err(_) => {
            return Err(Box::new(error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading the state failed",
            )));
        }
    };
    let wanted: Option<u32> = if q.agentid.is_empty() {
        None
    } else {
        match q.agentid.parse() {
            Ok(a) => Some(a),
            Err(_) => return bad("agentid is not a number"),
        }
    };
    let trusted = |a: &App| {
        a.enabled
            && a.allows(Scope::OAuth)
            && a.trusted_domains
                .iter()
                .any(|d| *d == host || host.split(':').next() == Some(d.as_str()))
    };
    let app = apps
        .into_iter()
        .filter(|a| wanted.is_none_or(|w| w == a.agentid))
        .find(trusted);
    let Some(app) = app else {
        return bad("redirect_uri is not on a trusted domain of an app allowed to sign members in");
    };
    Ok(Authorize {
        app,
        corp,
        redirect: q.redirect_uri.clone(),
        origin_of_redirect: origin,
        state: q.state.clone(),
    })
}

/// The form token: HMAC over what the form was rendered for, and when.
fn form_token(corp: &Corp, a: &Authorize, issued: u64) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &corp.token_key);
    let msg = format!(
        "oauth-form|{}|{}|{}|{issued}",
        a.app.agentid, a.redirect, a.state
    );
    format!(
        "{}.{issued}",
        hex::encode(&hmac::sign(&key, msg.as_bytes()).as_ref()[..16])
    )
}

fn form_token_ok(corp: &Corp, a: &Authorize, token: &str) -> bool {
    let Some((_, issued)) = token.split_once('.') else {
        return false;
    };
    let Ok(issued) = issued.parse::<u64>() else {
        return false;
    };
    let now = now_ms() / 1000;
    if issued > now + 60 || now.saturating_sub(issued) > FORM_TTL_SECS {
        return false;
    }
    let want = form_token(corp, a, issued);
    subtle::ConstantTimeEq::ct_eq(want.as_bytes(), token.as_bytes()).into()
}

fn login_form(a: &Authorize, q: &AuthorizeQuery, userid: &str, error: Option<&str>) -> Response {
    let token = form_token(&a.corp, a, now_ms() / 1000);
    let hidden = |n: &str, v: &str| {
        format!(
            "<input type=\"hidden\" name=\"{n}\" value=\"{}\">",
            html_escape(v)
        )
    };
    let body = format!(
        "<h1>登录 Enclave · Sign in</h1><p class=\"app\">{} 请求确认你的身份 · {} asks who you are</p>{}\
         <form method=\"post\" action=\"/connect/oauth2/authorize\">{}{}{}{}{}\
         <label for=\"u\">账号 · User ID</label><input id=\"u\" type=\"text\" name=\"userid\" value=\"{}\" autocomplete=\"username\" required autofocus>\
         <label for=\"p\">密码 · Password</label><input id=\"p\" type=\"password\" name=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">登录 · Sign in</button></form>",
        html_escape(&a.app.name),
        html_escape(&a.app.name),
        error
            .map(|e| format!("<p class=\"err\" role=\"alert\">{}</p>", html_escape(e)))
            .unwrap_or_default(),
        hidden("appid", &q.appid),
        hidden("redirect_uri", &q.redirect_uri),
        hidden("state", &q.state),
        hidden("agentid", &q.agentid),
        hidden("form_token", &token),
        html_escape(userid),
    );
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(status, &body, Some(&a.origin_of_redirect))
}

fn random_code() -> Option<String> {
    let mut b = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut b).ok()?;
    Some(hex::encode(b))
}

/// Issue a code for `userid` and redirect back to the app.
async fn redirect_with_code(
    state: &NodeState,
    a: &Authorize,
    userid: &str,
    ext: &http::Extensions,
    set_cookie: Option<String>,
) -> Response {
    let Some(code) = random_code() else {
        return error_page(StatusCode::INTERNAL_SERVER_ERROR, "no randomness");
    };
    let origin = crate::http::origin(ext, ActorKind::User, userid, "member", &state.node_id);
    let cmd = Command::IssueOAuthCode {
        code_hash: token_hash(&code),
        userid: userid.to_string(),
        agentid: a.app.agentid,
    };
    if let Err(e) = submit(state, &origin, &cmd, None).await {
        return error_page(StatusCode::SERVICE_UNAVAILABLE, &e.message);
    }
    let sep = if a.redirect.contains('?') { '&' } else { '?' };
    let mut target = format!("{}{sep}code={code}", a.redirect);
    if !a.state.is_empty() {
        target.push_str("&state=");
        target.push_str(&form_urlencoded::byte_serialize(a.state.as_bytes()).collect::<String>());
    }
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    security_headers(h);
    if let Ok(v) = HeaderValue::from_str(&target) {
        h.insert(header::LOCATION, v);
    }
    if let Some(c) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        h.insert(header::SET_COOKIE, c);
    }
    r
}

/// The member behind a still-valid sign-in cookie.
fn cookie_member(state: &NodeState, headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::COOKIE)?.to_str().ok()?;
    let token = raw
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_string())?;
    if token.len() > 256 {
        return None;
    }
    let view = state.view();
    let s = domain::query::session(&view, &token_hash(&token)).ok()??;
    if s.expires_ms <= now_ms() {
        return None;
    }
    match domain::query::member(&view, &s.userid).ok()? {
        Some(m) if m.status == domain::MemberStatus::Active => Some(s.userid),
        _ => None,
    }
}

/// `GET /connect/oauth2/authorize?appid=&redirect_uri=&response_type=code&scope=&state=&agentid=`
pub async fn authorize(
    State(state): State<S>,
    parts: Parts,
    Query(q): Query<AuthorizeQuery>,
) -> Response {
    let a = match check(&state, &q) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    if let Some(userid) = cookie_member(&state, &parts.headers) {
        return redirect_with_code(&state, &a, &userid, &parts.extensions, None).await;
    }
    login_form(&a, &q, "", None)
}

/// `POST /connect/oauth2/authorize` (the sign-in form).
pub async fn login(
    State(state): State<S>,
    Extension(conn): Extension<ConnInfo>,
    headers: HeaderMap,
    ext: http::Extensions,
    body: Bytes,
) -> Response {
    if body.len() > 16 << 10 {
        return error_page(StatusCode::PAYLOAD_TOO_LARGE, "form too large");
    }
    let form: std::collections::HashMap<String, String> =
        form_pairs(&String::from_utf8_lossy(&body))
            .into_iter()
            .collect();
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    let q = AuthorizeQuery {
        appid: get("appid"),
        redirect_uri: get("redirect_uri"),
        response_type: "code".into(),
        state: get("state"),
        agentid: get("agentid"),
    };
    let a = match check(&state, &q) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    // A form posted from another site, or stale: show a fresh one.
    let cross_site = headers
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .zip(headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .is_some_and(|(o, h)| o != format!("https://{h}"));
    if cross_site || !form_token_ok(&a.corp, &a, &get("form_token")) {
        return login_form(
            &a,
            &q,
            "",
            Some("表单已过期，请重新登录 · The form expired; sign in again"),
        );
    }
    let userid = get("userid");
    let origin = crate::http::origin(&ext, ActorKind::User, &userid, "member", &state.node_id);
    match password_login(&state, &origin, conn.remote.ip(), &userid, get("password")).await {
        Ok(t) if t.must_change => error_page(
            StatusCode::FORBIDDEN,
            "请先在 Enclave 客户端修改初始密码 · Change your initial password in the Enclave client first",
        ),
        Ok(t) => {
            let ttl = t.expires_ms.saturating_sub(now_ms()) / 1000;
            let cookie = format!(
                "{COOKIE}={}; Path=/connect/oauth2/; Max-Age={ttl}; Secure; HttpOnly; SameSite=Lax",
                t.access
            );
            redirect_with_code(&state, &a, &t.userid, &ext, Some(cookie)).await
        }
        Err(e) => {
            if e.code == "too_many_attempts" {
                state.metrics.rate_limited("login_source");
            }
            let msg = match e.code {
                "account_locked" | "too_many_attempts" | "account_inactive" => e.message,
                _ => "账号或密码错误 · Wrong user ID or password".into(),
            };
            login_form(&a, &q, &userid, Some(&msg))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct CodeQuery {
    code: Option<String>,
}

async fn redeem(
    state: &S,
    call: &AppCall,
    code: Option<String>,
) -> Result<String, super::errors::WeErr> {
    call.need(Scope::OAuth)?;
    let Some(code) = code.filter(|c| !c.is_empty() && c.len() <= 512) else {
        return Err(invalid("code is required"));
    };
    let cmd = Command::RedeemOAuthCode {
        code_hash: token_hash(&code),
        agentid: call.app.agentid,
    };
    match propose(state, call, &cmd, Family::OAuth).await? {
        Done::OAuthUser { userid } => Ok(userid),
        other => Err(err(code::BUSY, format!("unexpected outcome {other:?}"))),
    }
}

/// `GET /cgi-bin/auth/getuserinfo?access_token=&code=`
pub async fn getuserinfo(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<CodeQuery>,
) -> WeResult {
    let userid = redeem(&state, &call, q.code).await?;
    Ok(ok(json!({ "userid": userid })))
}

/// `GET /cgi-bin/user/getuserinfo?access_token=&code=` (the older path
/// wechatpy's `oauth.get_user_info` calls): also `UserId`, as it was.
pub async fn getuserinfo_legacy(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<CodeQuery>,
) -> WeResult {
    let userid = redeem(&state, &call, q.code).await?;
    Ok(ok(
        json!({ "UserId": userid, "userid": userid, "DeviceId": "" }),
    ))
}
