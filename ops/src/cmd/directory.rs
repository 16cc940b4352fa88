//! `enclavectl directory ...` (sysadmin) and `enclavectl policy ...`
//! (secadmin): the organization's departments and members, passwords,
//! lockouts, and the replicated messaging policy.
//!
//! Passwords are never taken on the command line (they would show in
//! `ps` and shell history): `--password-file FILE` or `--password-stdin`.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Value, json};

use super::{Output, print_json};
use crate::client::{Client, ClientError};

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Departments (the tree; id 1 is the root).
    #[command(subcommand)]
    Dept(DeptCommand),
    /// Members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Permissions granted to members (e.g. `notice:urgent`).
    #[command(subcommand)]
    Permission(PermissionCommand),
}

#[derive(Debug, Subcommand)]
pub enum PermissionCommand {
    /// Grant a permission to a member (sysadmin).
    Grant { userid: String, permission: String },
    /// Revoke a permission (sysadmin).
    Revoke { userid: String, permission: String },
    /// Who holds a permission.
    Holders { permission: String },
}

#[derive(Debug, Subcommand)]
pub enum DeptCommand {
    /// Create, rename or move a department.
    Put {
        id: u64,
        #[arg(long)]
        name: String,
        /// Parent department (omit only for the root, id 1).
        #[arg(long)]
        parent: Option<u64>,
        #[arg(long, default_value_t = 0)]
        order: i64,
        /// Department leaders (userids), repeatable.
        #[arg(long = "leader")]
        leaders: Vec<String>,
    },
    /// Delete an empty department.
    Delete { id: u64 },
    /// List every department.
    List,
}

#[derive(Debug, Args)]
pub struct PasswordSource {
    /// Read the password from the first line of this file.
    #[arg(long, conflicts_with = "password_stdin")]
    pub password_file: Option<PathBuf>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
}

impl PasswordSource {
    fn read(&self) -> anyhow::Result<Option<String>> {
        let raw = match (&self.password_file, self.password_stdin) {
            (Some(f), _) => std::fs::read_to_string(f)
                .with_context(|| format!("reading the password from {}", f.display()))?,
            (None, true) => {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("reading the password from standard input")?;
                s
            }
            (None, false) => return Ok(None),
        };
        let line = raw.lines().next().unwrap_or_default().to_string();
        if line.is_empty() {
            bail!("the password is empty");
        }
        Ok(Some(line))
    }
}

#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Add a member (optionally with an initial password they must change).
    Add {
        userid: String,
        #[arg(long)]
        name: String,
        /// Department id, repeatable.
        #[arg(long = "dept", required = true)]
        departments: Vec<u64>,
        #[arg(long, default_value = "")]
        title: String,
        #[arg(long, default_value = "")]
        email: String,
        #[arg(long, default_value = "")]
        mobile: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// List members: of one department (`--dept`), by name, full pinyin
    /// or initials (`--q`), or all; one page (`--limit`, `--cursor`).
    List {
        #[arg(long = "dept")]
        department: Option<u64>,
        #[arg(long)]
        q: Option<String>,
        #[arg(long)]
        cursor: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Show a member, with lockout state.
    Show { userid: String },
    /// Change a member's fields (only those given).
    Update {
        userid: String,
        #[arg(long)]
        name: Option<String>,
        /// Department id, repeatable (replaces the list).
        #[arg(long = "dept")]
        departments: Vec<u64>,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        email: Option<String>,
        #[arg(long)]
        mobile: Option<String>,
    },
    /// Set status: active, disabled or departed (disabling or departing
    /// revokes every session at once; departed is final).
    Status { userid: String, status: String },
    /// Set or reset a password; the member must change it at next login.
    SetPassword {
        userid: String,
        #[command(flatten)]
        password: PasswordSource,
    },
    /// Lift a login lockout.
    Unlock { userid: String },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the messaging policy.
    Show,
    /// Change policy fields (secadmin), e.g. `recall_window_ms=300000
    /// directory_visibility=own_departments`.
    Set {
        /// KEY=VALUE pairs.
        #[arg(required = true)]
        settings: Vec<String>,
    },
    /// Who besides `notice:urgent` holders may send urgent notices: show,
    /// or set with `--leaders-may-send true|false` (secadmin).
    Notices {
        #[arg(long)]
        leaders_may_send: Option<bool>,
    },
}

pub(crate) async fn call(
    client: &Client,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let (status, bytes) = client
        .request(
            method.clone(),
            path,
            body.map(|b| b.to_string().into_bytes()),
        )
        .await?;
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(ClientError::Api {
            method,
            path: path.to_string(),
            status,
            code: v["error"]["code"].as_str().unwrap_or("unknown").to_string(),
            message: v["error"]["message"]
                .as_str()
                .unwrap_or(&String::from_utf8_lossy(&bytes))
                .to_string(),
        }
        .into());
    }
    Ok(v)
}

/// One page of a listing: `GET path?params&limit=&cursor=`, a line per
/// item of `key` (`empty` when there are none) and how to ask for the next
/// page.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn page(
    client: &Client,
    output: Output,
    path: &str,
    params: &[(&str, &str)],
    limit: usize,
    cursor: Option<String>,
    key: &str,
    empty: &str,
    line: impl Fn(&Value) -> String,
) -> anyhow::Result<()> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        q.append_pair(k, v);
    }
    q.append_pair("limit", &limit.to_string());
    if let Some(c) = &cursor {
        q.append_pair("cursor", c);
    }
    let v = call(client, Method::GET, &format!("{path}?{}", q.finish()), None).await?;
    show(&v, output, |v| {
        let mut out: Vec<String> = v[key].as_array().into_iter().flatten().map(line).collect();
        if out.is_empty() {
            out.push(empty.to_string());
        }
        match &v["next_cursor"] {
            Value::String(c) => out.push(format!("more: --cursor {c}")),
            Value::Number(c) => out.push(format!("more: --cursor {c}")),
            _ => {}
        }
        out.join("\n")
    })
}

pub(crate) fn show(
    v: &Value,
    output: Output,
    text: impl FnOnce(&Value) -> String,
) -> anyhow::Result<()> {
    match output {
        Output::Json => print_json(v),
        Output::Text => {
            println!("{}", text(v));
            Ok(())
        }
    }
}

async fn set_permission(
    client: &Client,
    output: Output,
    userid: &str,
    permission: &str,
    grant: bool,
) -> anyhow::Result<()> {
    let v = call(
        client,
        if grant { Method::PUT } else { Method::DELETE },
        &format!("/v1/directory/members/{userid}/permissions/{permission}"),
        None,
    )
    .await?;
    show(&v, output, |_| {
        if grant {
            format!("{userid} now holds {permission}")
        } else {
            format!("{userid} no longer holds {permission}")
        }
    })
}

fn member_line(m: &Value) -> String {
    format!(
        "{}  {}  status={}  departments={}  title={:?}",
        m["userid"].as_str().unwrap_or_default(),
        m["name"].as_str().unwrap_or_default(),
        m["status"].as_str().unwrap_or_default(),
        m["departments"],
        m["title"].as_str().unwrap_or_default()
    )
}

pub async fn run(cmd: DirectoryCommand, client: &Client, output: Output) -> anyhow::Result<()> {
    match cmd {
        DirectoryCommand::Dept(DeptCommand::Put {
            id,
            name,
            parent,
            order,
            leaders,
        }) => {
            let v = call(
                client,
                Method::PUT,
                &format!("/v1/directory/departments/{id}"),
                Some(json!({ "name": name, "parent": parent, "order": order, "leaders": leaders })),
            )
            .await?;
            show(&v, output, |v| {
                format!(
                    "department {} {:?} saved (parent {})",
                    v["id"],
                    v["name"].as_str().unwrap_or_default(),
                    v["parent"]
                )
            })
        }
        DirectoryCommand::Dept(DeptCommand::Delete { id }) => {
            let v = call(
                client,
                Method::DELETE,
                &format!("/v1/directory/departments/{id}"),
                None,
            )
            .await?;
            show(&v, output, |_| format!("department {id} deleted"))
        }
        DirectoryCommand::Permission(PermissionCommand::Grant { userid, permission }) => {
            set_permission(client, output, &userid, &permission, true).await
        }
        DirectoryCommand::Permission(PermissionCommand::Revoke { userid, permission }) => {
            set_permission(client, output, &userid, &permission, false).await
        }
        DirectoryCommand::Permission(PermissionCommand::Holders { permission }) => {
            let mut holders: Vec<Value> = Vec::new();
            let mut cursor: Option<String> = None;
            loop {
                let mut q = form_urlencoded::Serializer::new(String::new());
                q.append_pair("limit", "1000");
                if let Some(c) = &cursor {
                    q.append_pair("cursor", c);
                }
                let v = call(
                    client,
                    Method::GET,
                    &format!("/v1/permissions/{permission}?{}", q.finish()),
                    None,
                )
                .await?;
                holders.extend(v["holders"].as_array().cloned().unwrap_or_default());
                match v["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
            let v = json!({ "permission": permission, "holders": holders });
            show(&v, output, |v| {
                let list: Vec<&str> = v["holders"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str())
                    .collect();
                if list.is_empty() {
                    format!("nobody holds {permission}")
                } else {
                    list.join("\n")
                }
            })
        }
        DirectoryCommand::Dept(DeptCommand::List) => {
            let v = call(client, Method::GET, "/v1/directory/departments", None).await?;
            show(&v, output, |v| {
                v["departments"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|d| {
                        format!(
                            "{:>6}  parent={:<6} {}",
                            d["id"],
                            d["parent"],
                            d["name"].as_str().unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            })
        }
        DirectoryCommand::Member(MemberCommand::Add {
            userid,
            name,
            departments,
            title,
            email,
            mobile,
            password,
        }) => {
            let pw = password.read()?;
            let v = call(
                client,
                Method::POST,
                "/v1/directory/members",
                Some(json!({ "userid": userid, "name": name, "departments": departments, "title": title, "email": email, "mobile": mobile, "password": pw })),
            )
            .await?;
            show(&v, output, |v| format!("added {}", member_line(v)))
        }
        DirectoryCommand::Member(MemberCommand::List {
            department,
            q,
            cursor,
            limit,
        }) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("limit", &limit.to_string());
            if let Some(d) = department {
                query.append_pair("department", &d.to_string());
            }
            if let Some(q) = q {
                query.append_pair("q", &q);
            }
            if let Some(c) = cursor {
                query.append_pair("cursor", &c);
            }
            let v = call(
                client,
                Method::GET,
                &format!("/v1/directory/members?{}", query.finish()),
                None,
            )
            .await?;
            show(&v, output, |v| {
                let mut out: Vec<String> = v["members"]
                    .as_array()
                    .map(|a| a.iter().map(member_line).collect())
                    .unwrap_or_default();
                if out.is_empty() {
                    out.push("no members".into());
                }
                if let Some(c) = v["next_cursor"].as_str() {
                    out.push(format!("more: --cursor {c}"));
                }
                out.join("\n")
            })
        }
        DirectoryCommand::Member(MemberCommand::Show { userid }) => {
            let v = call(
                client,
                Method::GET,
                &format!("/v1/directory/members/{userid}"),
                None,
            )
            .await?;
            show(&v, output, |v| {
                format!(
                    "{}\n  password set: {}  failed logins: {}  locked until (ms): {}\n  permissions: {}",
                    member_line(v),
                    v["has_password"],
                    v["failed_logins"],
                    v["locked_until_ms"],
                    v["permissions"]
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .map(|a| a
                            .iter()
                            .filter_map(|p| p.as_str())
                            .collect::<Vec<_>>()
                            .join(", "))
                        .unwrap_or_else(|| "none".into())
                )
            })
        }
        DirectoryCommand::Member(MemberCommand::Update {
            userid,
            name,
            departments,
            title,
            email,
            mobile,
        }) => {
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if !departments.is_empty() {
                body["departments"] = json!(departments);
            }
            if let Some(t) = title {
                body["title"] = json!(t);
            }
            if let Some(e) = email {
                body["email"] = json!(e);
            }
            if let Some(m) = mobile {
                body["mobile"] = json!(m);
            }
            let v = call(
                client,
                Method::PATCH,
                &format!("/v1/directory/members/{userid}"),
                Some(body),
            )
            .await?;
            show(&v, output, |v| format!("updated {}", member_line(v)))
        }
        DirectoryCommand::Member(MemberCommand::Status { userid, status }) => {
            if !["active", "disabled", "departed"].contains(&status.as_str()) {
                bail!("status must be active, disabled or departed (got {status:?})");
            }
            let v = call(
                client,
                Method::PUT,
                &format!("/v1/directory/members/{userid}/status"),
                Some(json!({ "status": status })),
            )
            .await?;
            show(&v, output, |v| format!("updated {}", member_line(v)))
        }
        DirectoryCommand::Member(MemberCommand::SetPassword { userid, password }) => {
            let Some(pw) = password.read()? else {
                bail!("give the new password with --password-file FILE or --password-stdin");
            };
            let v = call(
                client,
                Method::PUT,
                &format!("/v1/directory/members/{userid}/password"),
                Some(json!({ "password": pw })),
            )
            .await?;
            show(&v, output, |_| {
                format!(
                    "password of {userid} set; they must change it at next login, and their sessions were revoked"
                )
            })
        }
        DirectoryCommand::Member(MemberCommand::Unlock { userid }) => {
            let v = call(
                client,
                Method::POST,
                &format!("/v1/directory/members/{userid}/unlock"),
                Some(json!({})),
            )
            .await?;
            show(&v, output, |_| format!("{userid} unlocked"))
        }
    }
}

pub async fn run_policy(cmd: PolicyCommand, client: &Client, output: Output) -> anyhow::Result<()> {
    if let PolicyCommand::Notices { leaders_may_send } = cmd {
        let v = match leaders_may_send {
            Some(on) => {
                call(
                    client,
                    Method::PUT,
                    "/v1/policy/notices",
                    Some(json!({ "leaders_may_send": on })),
                )
                .await?
            }
            None => call(client, Method::GET, "/v1/policy/notices", None).await?,
        };
        return show(&v, output, |v| {
            format!(
                "leaders_may_send = {} (department leaders may send urgent notices to their own departments)",
                v["leaders_may_send"]
            )
        });
    }
    let mut policy = call(client, Method::GET, "/v1/policy", None).await?;
    if let PolicyCommand::Set { settings } = cmd {
        for s in settings {
            let Some((k, v)) = s.split_once('=') else {
                bail!("{s:?}: expected KEY=VALUE");
            };
            let Some(old) = policy.get(k) else {
                let keys: Vec<&String> = policy
                    .as_object()
                    .map(|m| m.keys().collect())
                    .unwrap_or_default();
                bail!("unknown policy key {k:?} (known: {keys:?})");
            };
            let new = if old.is_string() {
                json!(v)
            } else {
                serde_json::from_str::<Value>(v)
                    .with_context(|| format!("{k}: {v:?} is not a number"))?
            };
            policy[k] = new;
        }
        policy = call(client, Method::PUT, "/v1/policy", Some(policy)).await?;
    }
    show(&policy, output, |p| {
        p.as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k:<26} {v}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            })
            .unwrap_or_default()
    })
}
