//! JSON renderings shared by the faces that show the same records.

use serde_json::{Value, json};

use crate::domain::Member;

/// A member as the native API and the admin API show it.
pub fn member_json(m: &Member) -> Value {
    json!({
        "userid": m.userid,
        "name": m.name,
        "departments": m.departments,
        "title": m.title,
        "email": m.email,
        "mobile": m.mobile,
        "status": m.status,
    })
}
