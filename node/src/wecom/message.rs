//! `message/send`, `message/recall` and `appchat/*`: app messages reach
//! members as ordinary messages (through sync and the WebSocket, on every
//! node), each member in their own conversation with the app; app chats
//! are groups the app creates, manages and posts to.

use axum::extract::State;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::errors::{Family, WeErr, WeResult, code, err, invalid, ok};
use super::extract::{AppCall, WeJson, WeQuery};
use super::propose;
use crate::domain::files::FileKind;
use crate::domain::{self, AppContent, Article, Command, Done, Recipients, Rich, Scope};
use crate::http::{S, store_error};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextBody {
    #[serde(default)]
    content: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextCardBody {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    btntxt: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArticleBody {
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    picurl: String,
    #[serde(default)]
    #[serde(rename = "appid")]
    _appid: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "pagepath")]
    _pagepath: Option<IgnoredAny>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewsBody {
    #[serde(default)]
    articles: Vec<ArticleBody>,
}

/// `image`, `voice`, `file`: a `media_id` from `media/upload`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaBody {
    #[serde(default)]
    media_id: String,
}

/// The content fields shared by `message/send` and `appchat/send`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentReq {
    msgtype: Option<String>,
    text: Option<TextBody>,
    markdown: Option<TextBody>,
    textcard: Option<TextCardBody>,
    news: Option<NewsBody>,
    #[serde(default)]
    safe: Option<u8>,
    image: Option<MediaBody>,
    voice: Option<MediaBody>,
    file: Option<MediaBody>,
    // Message types WeCom has and Enclave does not (yet): 40008.
    #[serde(default)]
    #[serde(rename = "video")]
    _video: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "mpnews")]
    _mpnews: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "miniprogram_notice")]
    _miniprogram_notice: Option<IgnoredAny>,
    #[serde(default)]
    #[serde(rename = "template_card")]
    _template_card: Option<IgnoredAny>,
}

/// Text without HTML tags (textcard descriptions carry `<div>`s).
fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

async fn content(state: &S, call: &AppCall, req: ContentReq) -> Result<AppContent, WeErr> {
    let safe = req.safe.unwrap_or(0) != 0;
    let msgtype = req.msgtype.unwrap_or_default();
    let missing = |t: &str| invalid(format!("msgtype {t} needs a \"{t}\" object"));
    let (text, rich, file) = match msgtype.as_str() {
        t @ ("image" | "voice" | "file") => {
            let body = match t {
                "image" => req.image,
                "voice" => req.voice,
                _ => req.file,
            }
            .ok_or_else(|| missing(t))?;
            if body.media_id.is_empty() {
                return Err(err(code::MISSING_MEDIA_ID, "media_id is required"));
            }
            let f = super::batch::app_file(state, call, &body.media_id).await?;
            let (want, text) = match t {
                "image" => (FileKind::Image, "[图片]".to_string()),
                "voice" => (FileKind::Voice, "[语音]".to_string()),
                _ => (f.kind, format!("[文件] {}", f.name)),
            };
            if f.kind != want {
                return Err(err(
                    code::INVALID_MEDIA_ID,
                    format!(
                        "invalid media_id {:?}: it is a {}, not a {t}",
                        body.media_id,
                        f.kind.as_str()
                    ),
                ));
            }
            return Ok(AppContent {
                text,
                rich: None,
                safe,
                file: Some(f.reference()),
            });
        }
        "text" => {
            let t = req.text.ok_or_else(|| missing("text"))?;
            if t.content.trim().is_empty() {
                return Err(err(code::EMPTY_TEXT, "empty content"));
            }
            (t.content, None, None)
        }
        "markdown" => {
            let t = req.markdown.ok_or_else(|| missing("markdown"))?;
            if t.content.trim().is_empty() {
                return Err(err(code::EMPTY_TEXT, "empty content"));
            }
            (
                t.content.clone(),
                Some(Rich::Markdown { content: t.content }),
                None,
            )
        }
        "textcard" => {
            let c = req.textcard.ok_or_else(|| missing("textcard"))?;
            if c.title.trim().is_empty() || c.description.trim().is_empty() || c.url.is_empty() {
                return Err(invalid("textcard needs title, description and url"));
            }
            let text = format!("{}\n{}", c.title, strip_tags(&c.description));
            let card = Rich::TextCard {
                title: c.title,
                description: c.description,
                url: c.url,
                btntxt: c.btntxt.unwrap_or_else(|| "详情".into()),
            };
            (text, Some(card), None)
        }
        "news" => {
            let n = req.news.ok_or_else(|| missing("news"))?;
            if n.articles.is_empty() || n.articles.len() > 8 {
                return Err(invalid("news has 1-8 articles"));
            }
            if n.articles.iter().any(|a| a.title.trim().is_empty()) {
                return Err(invalid("every article needs a title"));
            }
            let text = n
                .articles
                .iter()
                .map(|a| a.title.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            let articles = n
                .articles
                .into_iter()
                .map(|a| Article {
                    title: a.title,
                    description: a.description,
                    url: a.url,
                    picurl: a.picurl,
                })
                .collect();
            (text, Some(Rich::News { articles }), None)
        }
        "" => return Err(invalid("msgtype is required")),
        other => {
            return Err(err(
                code::INVALID_MSG_TYPE,
                format!(
                    "invalid message type {other:?}: supported are text, markdown, textcard, news, image, voice, file"
                ),
            ));
        }
    };
    Ok(AppContent {
        text,
        rich,
        safe,
        file,
    })
}

fn agentid_of(v: Option<&Value>) -> Option<u32> {
    match v? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Check the body's `agentid` is the token's app (WeCom's 40056).
fn same_app(call: &AppCall, agentid: Option<&Value>) -> Result<(), WeErr> {
    match agentid {
        None => Err(err(code::MISSING_AGENTID, "agentid missing")),
        Some(v) => match agentid_of(Some(v)) {
            Some(a) if a == call.app.agentid => Ok(()),
            _ => Err(err(
                code::INVALID_AGENTID,
                format!(
                    "invalid agentid: the access_token belongs to app {}",
                    call.app.agentid
                ),
            )),
        },
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendReq {
    #[serde(default)]
    touser: Option<String>,
    #[serde(default)]
    toparty: Option<String>,
    #[serde(default)]
    totag: Option<String>,
    #[serde(default)]
    agentid: Option<Value>,
    #[serde(flatten)]
    content: ContentReq,
    #[serde(default)]
    #[serde(rename = "enable_id_trans")]
    _enable_id_trans: Option<IgnoredAny>,
    #[serde(default)]
    enable_duplicate_check: Option<u8>,
    #[serde(default)]
    duplicate_check_interval: Option<u64>,
}

fn split(s: &Option<String>) -> Vec<String> {
    s.as_deref()
        .unwrap_or_default()
        .split('|')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// `POST message/send`
pub async fn send(State(state): State<S>, call: AppCall, body: WeJson<Value>) -> WeResult {
    call.need(Scope::MessageSend)?;
    // serde's flatten and deny_unknown_fields do not combine: check the
    // top-level keys by hand, then decode.
    let WeJson(raw) = body;
    const KEYS: &[&str] = &[
        "touser",
        "toparty",
        "totag",
        "agentid",
        "msgtype",
        "text",
        "markdown",
        "textcard",
        "news",
        "safe",
        "enable_id_trans",
        "enable_duplicate_check",
        "duplicate_check_interval",
        "image",
        "voice",
        "video",
        "file",
        "mpnews",
        "miniprogram_notice",
        "template_card",
    ];
    if let Some(obj) = raw.as_object() {
        if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(invalid(format!("invalid parameter: unknown field `{k}`")));
        }
    } else {
        return Err(invalid("the body must be a JSON object"));
    }
    let req: SendReq = serde_json::from_value(strip_content_unknowns(raw))
        .map_err(|e| invalid(format!("invalid parameter: {e}")))?;
    same_app(&call, req.agentid.as_ref())?;
    let users = split(&req.touser);
    let all = users.iter().any(|u| u == "@all");
    let mut bad_parties: Vec<String> = Vec::new();
    let mut parties = Vec::new();
    for p in split(&req.toparty) {
        match p.parse::<u64>() {
            Ok(n) => parties.push(n),
            Err(_) => bad_parties.push(p),
        }
    }
    let tags = split(&req.totag);
    let users: Vec<String> = users.into_iter().filter(|u| u != "@all").collect();
    if !all && users.is_empty() && parties.is_empty() {
        if !tags.is_empty() || !bad_parties.is_empty() {
            return Err(err(
                code::ALL_INVALID,
                "user & party & tag all invalid (tags are not supported)",
            ));
        }
        return Err(invalid("touser, toparty or totag is required"));
    }
    let content = content(&state, &call, req.content).await?;
    let dedup_ms = if req.enable_duplicate_check.unwrap_or(0) != 0 {
        // WeCom: default 1800 s, at most 4 hours.
        req.duplicate_check_interval
            .unwrap_or(1800)
            .clamp(1, 4 * 3600)
            * 1000
    } else {
        0
    };
    let cmd = Command::AppSend {
        agentid: call.app.agentid,
        to: Recipients {
            users,
            parties,
            all,
        },
        content,
        dedup_ms,
    };
    match propose(&state, &call, &cmd, Family::Message).await? {
        Done::AppSent {
            msgid,
            invalid_users,
            invalid_parties,
            recipients,
            ..
        } => {
            if recipients as usize > domain::apply::FANOUT_CHUNK {
                // The rest is delivered by the leader's runner: start it.
                state.runner_wake.notify_one();
            }
            let mut parties: Vec<String> = invalid_parties.iter().map(u64::to_string).collect();
            parties.extend(bad_parties);
            Ok(ok(json!({
                "invaliduser": invalid_users.join("|"),
                "invalidparty": parties.join("|"),
                "invalidtag": tags.join("|"),
                "unlicenseduser": "",
                "msgid": msgid,
                "response_code": "",
            })))
        }
        other => Err(err(code::BUSY, format!("unexpected outcome {other:?}"))),
    }
}

/// Keep only the content object of the message's own type: WeCom
/// ignores the others, and several SDKs send empty ones.
fn strip_content_unknowns(mut v: Value) -> Value {
    if let Some(obj) = v.as_object_mut() {
        let t = obj
            .get("msgtype")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        for k in [
            "text", "markdown", "textcard", "news", "image", "voice", "file",
        ] {
            if k != t {
                obj.remove(k);
            }
        }
    }
    v
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallReq {
    msgid: String,
}

/// `POST message/recall`
pub async fn recall(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<RecallReq>,
) -> WeResult {
    call.need(Scope::MessageSend)?;
    if req.msgid.is_empty() || req.msgid.len() > 64 {
        return Err(invalid("invalid msgid"));
    }
    let cmd = Command::AppRecall {
        agentid: call.app.agentid,
        msgid: req.msgid,
    };
    propose(&state, &call, &cmd, Family::Other)
        .await
        .map_err(|e| {
            if e.errcode == code::INVALID_PARAMETER || e.errcode == code::USERID_NOT_FOUND {
                invalid(format!("invalid msgid: {}", e.errmsg))
            } else {
                e
            }
        })?;
    // A large recall continues in the leader's runner.
    state.runner_wake.notify_one();
    Ok(ok(json!({})))
}

// -------------------------------------------------------------- app chats

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatCreateReq {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    userlist: Vec<String>,
    #[serde(default)]
    chatid: Option<String>,
}

/// `POST appchat/create`
pub async fn chat_create(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<ChatCreateReq>,
) -> WeResult {
    call.need(Scope::AppChat)?;
    if req.userlist.len() < 2 {
        return Err(invalid("userlist needs at least 2 members"));
    }
    let view = state.view();
    for u in &req.userlist {
        match domain::query::member(&view, u).map_err(store_error)? {
            Some(m) if m.status == domain::MemberStatus::Active => {}
            _ => {
                return Err(err(
                    code::USERID_NOT_FOUND,
                    format!("userid {u:?} not found or not active"),
                ));
            }
        }
    }
    let name: String = req
        .name
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "群聊".into())
        .chars()
        .take(50)
        .collect();
    let cmd = Command::AppChatCreate {
        agentid: call.app.agentid,
        chatid: req.chatid.filter(|c| !c.is_empty()),
        name,
        owner: req.owner.filter(|o| !o.is_empty()),
        members: req.userlist,
    };
    match propose(&state, &call, &cmd, Family::Chat).await? {
        Done::Created { id } => Ok(ok(json!({ "chatid": id }))),
        other => Err(err(code::BUSY, format!("unexpected outcome {other:?}"))),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatUpdateReq {
    chatid: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    add_user_list: Vec<String>,
    #[serde(default)]
    del_user_list: Vec<String>,
}

/// `POST appchat/update`
pub async fn chat_update(
    State(state): State<S>,
    call: AppCall,
    WeJson(req): WeJson<ChatUpdateReq>,
) -> WeResult {
    call.need(Scope::AppChat)?;
    let cmd = Command::AppChatUpdate {
        agentid: call.app.agentid,
        chatid: req.chatid,
        name: req.name.filter(|n| !n.is_empty()),
        owner: req.owner.filter(|o| !o.is_empty()),
        add: req.add_user_list,
        del: req.del_user_list,
    };
    propose(&state, &call, &cmd, Family::Chat).await?;
    Ok(ok(json!({})))
}

#[derive(Debug, Deserialize)]
pub struct ChatQuery {
    chatid: Option<String>,
}

/// `GET appchat/get?chatid=`
pub async fn chat_get(
    State(state): State<S>,
    call: AppCall,
    WeQuery(q): WeQuery<ChatQuery>,
) -> WeResult {
    call.need(Scope::AppChat)?;
    let Some(chatid) = q.chatid.filter(|c| !c.is_empty()) else {
        return Err(invalid("chatid is required"));
    };
    let view = state.view();
    let not_found = || err(code::CHAT_NOT_FOUND, format!("chat {chatid:?} not found"));
    if domain::query::app_chat_owner(&view, &chatid).map_err(store_error)? != Some(call.app.agentid)
    {
        return Err(not_found());
    }
    let conv = domain::keys::chat_conv_id(&chatid);
    let c = domain::query::conversation(&view, &conv)
        .map_err(store_error)?
        .filter(|c| !c.dissolved)
        .ok_or_else(not_found)?;
    let members =
        domain::query::conversation_members(&view, &conv, None, usize::MAX).map_err(store_error)?;
    let userlist: Vec<&str> = members.iter().map(|(u, _)| u.as_str()).collect();
    Ok(ok(json!({
        "chat_info": {
            "chatid": chatid,
            "name": c.name,
            "owner": c.owner,
            "userlist": userlist,
            "chat_type": 0,
        }
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatSendReq {
    chatid: String,
    #[serde(flatten)]
    content: ContentReq,
}

/// `POST appchat/send`
pub async fn chat_send(
    State(state): State<S>,
    call: AppCall,
    WeJson(raw): WeJson<Value>,
) -> WeResult {
    call.need(Scope::AppChat)?;
    const KEYS: &[&str] = &[
        "chatid", "msgtype", "text", "markdown", "textcard", "news", "safe", "image", "voice",
        "video", "file", "mpnews",
    ];
    match raw.as_object() {
        Some(obj) => {
            if let Some(k) = obj.keys().find(|k| !KEYS.contains(&k.as_str())) {
                return Err(invalid(format!("invalid parameter: unknown field `{k}`")));
            }
        }
        None => return Err(invalid("the body must be a JSON object")),
    }
    let req: ChatSendReq = serde_json::from_value(strip_content_unknowns(raw))
        .map_err(|e| invalid(format!("invalid parameter: {e}")))?;
    let cmd = Command::AppChatSend {
        agentid: call.app.agentid,
        chatid: req.chatid,
        content: content(&state, &call, req.content).await?,
    };
    propose(&state, &call, &cmd, Family::Chat).await?;
    Ok(ok(json!({})))
}
