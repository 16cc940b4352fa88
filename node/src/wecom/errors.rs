//! WeCom's error dialect: every answer is HTTP 200 with
//! `{"errcode": N, "errmsg": "..."}` (0 and "ok" on success), and the
//! codes are WeCom's for the cases it names. SDKs (wechatpy, WxJava) raise
//! on a non-zero errcode and retry on the token codes, so the codes matter
//! more than the messages.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::domain::{Code, Refusal};
use crate::http::ApiError;

/// Codes used here, by WeCom's numbering.
pub mod code {
    pub const BUSY: i64 = -1;
    pub const INVALID_SECRET: i64 = 40001;
    pub const INVALID_USERID: i64 = 40003;
    pub const INVALID_MEDIA_TYPE: i64 = 40004;
    pub const INVALID_FILE_TYPE: i64 = 40005;
    pub const INVALID_FILE_SIZE: i64 = 40006;
    pub const INVALID_MEDIA_ID: i64 = 40007;
    pub const INVALID_IMAGE_SIZE: i64 = 40009;
    pub const INVALID_VOICE_SIZE: i64 = 40010;
    pub const INVALID_MSG_TYPE: i64 = 40008;
    pub const INVALID_CORPID: i64 = 40013;
    pub const INVALID_TOKEN: i64 = 40014;
    pub const INVALID_CODE: i64 = 40029;
    pub const INVALID_AGENTID: i64 = 40056;
    pub const INVALID_PARAMETER: i64 = 40058;
    pub const INVALID_EXTERNAL_USERID: i64 = 40096;
    pub const NOT_DEPARTED: i64 = 40097;
    pub const CONTACT_LIMIT: i64 = 40099;
    pub const IN_TRANSFER: i64 = 40100;
    pub const SAME_FOLLOWER: i64 = 40130;
    pub const NOT_FOLLOWER: i64 = 40131;
    pub const MISSING_TOKEN: i64 = 41001;
    pub const MISSING_CORPID: i64 = 41002;
    pub const MISSING_SECRET: i64 = 41004;
    pub const MISSING_MEDIA: i64 = 41005;
    pub const MISSING_MEDIA_ID: i64 = 41006;
    pub const MISSING_USERID: i64 = 41009;
    pub const MISSING_AGENTID: i64 = 41011;
    pub const MISSING_EXTERNAL_USERID: i64 = 41035;
    pub const EXPIRED_TOKEN: i64 = 42001;
    pub const EXPIRED_CODE: i64 = 42003;
    pub const EMPTY_POST: i64 = 44002;
    pub const EMPTY_TEXT: i64 = 44004;
    pub const TOO_LARGE: i64 = 45002;
    pub const RATE_LIMITED: i64 = 45009;
    pub const JSON_FORMAT: i64 = 47001;
    pub const FORBIDDEN: i64 = 48002;
    pub const GROUP_DISSOLVED: i64 = 49008;
    pub const INVALID_CURSOR: i64 = 50100;
    pub const DEPT_NAME_INVALID: i64 = 60001;
    pub const DEPT_NOT_FOUND: i64 = 60003;
    pub const PARENT_NOT_FOUND: i64 = 60004;
    pub const DEPT_HAS_MEMBERS: i64 = 60005;
    pub const DEPT_HAS_CHILDREN: i64 = 60006;
    pub const ROOT_UNDELETABLE: i64 = 60007;
    pub const DEPT_EXISTS: i64 = 60008;
    pub const DEPT_CYCLE: i64 = 60010;
    pub const USERID_EXISTS: i64 = 60102;
    pub const USERID_NOT_FOUND: i64 = 60111;
    pub const NAME_INVALID: i64 = 60112;
    pub const ALL_INVALID: i64 = 81013;
    pub const CHAT_NOT_FOUND: i64 = 86003;
    pub const OWNER_NOT_DEPARTED: i64 = 90500;
    pub const NOT_CUSTOMER_GROUP: i64 = 90501;
    pub const OWNER_DEPARTED: i64 = 90502;
    pub const GROUP_FULL: i64 = 90503;
    pub const OWNER_UNCHANGED: i64 = 90504;
    pub const GROUP_IN_TRANSFER: i64 = 90507;
    pub const INVALID_PARAM_ALT: i64 = 301002;
}

/// A WeCom error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeErr {
    pub errcode: i64,
    pub errmsg: String,
}

pub fn err(errcode: i64, errmsg: impl Into<String>) -> WeErr {
    WeErr {
        errcode,
        errmsg: errmsg.into(),
    }
}

pub fn invalid(errmsg: impl Into<String>) -> WeErr {
    err(code::INVALID_PARAMETER, errmsg)
}

/// The errcode of an answer, for the call's audit record.
#[derive(Debug, Clone, Copy)]
pub struct Errcode(pub i64);

impl IntoResponse for WeErr {
    fn into_response(self) -> Response {
        let mut r = Json(json!({ "errcode": self.errcode, "errmsg": self.errmsg })).into_response();
        r.extensions_mut().insert(Errcode(self.errcode));
        r
    }
}

/// A failure of the shared layer (storage, cluster) in WeCom's dialect:
/// the caller may retry (-1, "system busy"), or it was a bad request.
impl From<ApiError> for WeErr {
    fn from(e: ApiError) -> WeErr {
        if e.status == http::StatusCode::TOO_MANY_REQUESTS
            || e.status == http::StatusCode::SERVICE_UNAVAILABLE
        {
            // Rendered as HTTP 200: tell the latency bound it is a refusal
            // (`admission::answered` only sees 429/503 statuses).
            crate::http::admission::latency::not_a_sample();
        }
        if e.status.is_server_error() || e.status == http::StatusCode::CONFLICT {
            err(
                code::BUSY,
                format!("system busy: {} ({})", e.message, e.code),
            )
        } else if e.status == http::StatusCode::TOO_MANY_REQUESTS {
            err(code::RATE_LIMITED, e.message)
        } else {
            invalid(e.message)
        }
    }
}

/// The families whose refusals map to different codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    User,
    Department,
    Message,
    Chat,
    Job,
    OAuth,
    /// Hand-overs of external contacts (`externalcontact/*transfer_customer`).
    External,
    /// Hand-overs of customer groups (`externalcontact/groupchat/*transfer`).
    CustomerGroup,
    Other,
}

/// A domain refusal as WeCom would phrase it for `family`.
pub fn refusal(r: Refusal, family: Family) -> WeErr {
    use Family::*;
    let c = match (r.code, family) {
        (Code::NotFound, User) => code::USERID_NOT_FOUND,
        (Code::AlreadyExists, User) => code::USERID_EXISTS,
        (Code::NotFound, Department) => code::DEPT_NOT_FOUND,
        (Code::AlreadyExists, Department) => code::DEPT_EXISTS,
        (Code::DepartmentNotEmpty, _) => code::DEPT_HAS_MEMBERS,
        (Code::Cycle, _) => code::DEPT_CYCLE,
        (Code::NotFound, Chat) => code::CHAT_NOT_FOUND,
        (Code::NotFound, Job) => code::INVALID_MEDIA_ID,
        (Code::Expired, Job) => code::INVALID_MEDIA_ID,
        (Code::NotFound, OAuth) => code::INVALID_CODE,
        (Code::NotFound, External) => code::NOT_FOLLOWER,
        (Code::AlreadyExists, External) => code::IN_TRANSFER,
        (Code::LimitExceeded, External) => code::CONTACT_LIMIT,
        (Code::NotFound, CustomerGroup) => code::NOT_CUSTOMER_GROUP,
        (Code::AlreadyExists, CustomerGroup) => code::GROUP_IN_TRANSFER,
        (Code::LimitExceeded, CustomerGroup) => code::GROUP_FULL,
        // A one-time code (sign-in, invitation) that was used already.
        (Code::AlreadyUsed, _) => code::INVALID_CODE,
        // A rolling upgrade is under way: retry later, like WeCom's -1.
        (Code::ClusterUpgrading, _) => code::BUSY,
        (Code::Expired, _) => code::EXPIRED_CODE,
        (Code::NotFound | Code::NotAMember | Code::AccountInactive, Message) => {
            code::USERID_NOT_FOUND
        }
        (Code::NotAMember | Code::AccountInactive, _) => code::USERID_NOT_FOUND,
        (Code::NoRecipients, _) => code::ALL_INVALID,
        (Code::AppDisabled, _) => code::INVALID_TOKEN,
        (Code::ScopeDenied | Code::Forbidden, _) => code::FORBIDDEN,
        (Code::LimitExceeded, _) => code::INVALID_PARAMETER,
        (Code::Stale, _) => code::BUSY,
        _ => code::INVALID_PARAMETER,
    };
    err(c, r.message)
}

/// A successful answer: `{"errcode":0,"errmsg":"ok", ...fields}`.
pub fn ok(fields: Value) -> Json<Value> {
    let mut v = json!({ "errcode": 0, "errmsg": "ok" });
    if let (Value::Object(m), Value::Object(f)) = (&mut v, fields) {
        m.extend(f);
    }
    Json(v)
}

pub type WeResult = Result<Json<Value>, WeErr>;

#[cfg(test)]
mod tests {
    use super::*;

    fn code_of(c: Code, f: Family) -> i64 {
        refusal(
            Refusal {
                code: c,
                message: "m".into(),
            },
            f,
        )
        .errcode
    }

    /// The refusals of log version 3: a rolling upgrade is "busy, retry"
    /// in every family; a used one-time code is an invalid code; the
    /// hand-over families speak WeCom's external-contact codes.
    #[test]
    fn newer_refusals_have_wecom_codes() {
        for f in [Family::User, Family::External, Family::Other] {
            assert_eq!(code_of(Code::ClusterUpgrading, f), code::BUSY);
            assert_eq!(code_of(Code::AlreadyUsed, f), code::INVALID_CODE);
        }
        assert_eq!(
            code_of(Code::NotFound, Family::External),
            code::NOT_FOLLOWER
        );
        assert_eq!(
            code_of(Code::AlreadyExists, Family::External),
            code::IN_TRANSFER
        );
        assert_eq!(
            code_of(Code::LimitExceeded, Family::External),
            code::CONTACT_LIMIT
        );
        assert_eq!(
            code_of(Code::AlreadyExists, Family::CustomerGroup),
            code::GROUP_IN_TRANSFER
        );
        assert_eq!(
            code_of(Code::AccountInactive, Family::External),
            code::USERID_NOT_FOUND
        );
    }
}
