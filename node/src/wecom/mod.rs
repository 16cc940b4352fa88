//! The WeCom-compatible face (`/cgi-bin/...`) on the api port: what
//! integrations written against WeCom's server API (wechatpy, WxJava, Go
//! SDKs) call, mapped onto the same directory and messaging core.

pub mod crypto;
pub mod csv;
