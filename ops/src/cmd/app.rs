//! `enclavectl app ...` (sysadmin; list and show: any operator): the
//! integrated applications that call the WeCom-compatible API.
//!
//! `create` and `rotate-secret` print the app's secret once; it is stored
//! only as a hash and cannot be shown again.

use clap::Subcommand;
use http::Method;
use serde_json::{Value, json};

use super::directory::call;
use super::{Output, print_json};
use crate::client::Client;

#[derive(Debug, Subcommand)]
pub enum AppCommand {
    /// Register an app: prints the corpid, its agentid and its secret
    /// (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// Comma-separated: directory:read, directory:write, message:send,
        /// appchat, oauth.
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Host (or host:port) sign-in redirects may go to, repeatable.
        #[arg(long = "trusted-domain")]
        trusted_domains: Vec<String>,
    },
    /// Every app, with its callback status.
    List,
    /// One app: scopes, domains, callback and its delivery status.
    Show { agentid: u32 },
    /// Disable an app: its tokens stop working at once, on every node.
    Disable { agentid: u32 },
    /// Enable a disabled app.
    Enable { agentid: u32 },
    /// Issue a new secret (shown once); the old secret and its tokens stop
    /// working.
    RotateSecret { agentid: u32 },
    /// Replace an app's scopes.
    SetScopes {
        agentid: u32,
        #[arg(long, value_delimiter = ',', required = true)]
        scopes: Vec<String>,
    },
    /// Replace the hosts sign-in redirects may go to.
    SetTrustedDomains {
        agentid: u32,
        #[arg(long = "domain")]
        domains: Vec<String>,
    },
    /// Set where events are POSTed (after WeCom's URL handshake), or
    /// `--clear` it. Token and key are generated unless given.
    SetCallback {
        agentid: u32,
        #[arg(long, required_unless_present = "clear")]
        url: Option<String>,
        #[arg(long)]
        token: Option<String>,
        /// The 43-character EncodingAESKey.
        #[arg(long)]
        aes_key: Option<String>,
        #[arg(long, conflicts_with_all = ["url", "token", "aes_key"])]
        clear: bool,
    },
}

fn app_lines(a: &Value) -> String {
    let cb = &a["callback"];
    let st = &a["callback_status"];
    let mut out = format!(
        "agentid      {}\nname         {}\nenabled      {}\nscopes       {}\ndomains      {}\ncorpid       {}\n",
        a["agentid"],
        a["name"].as_str().unwrap_or_default(),
        a["enabled"],
        join(&a["scopes"]),
        join(&a["trusted_domains"]),
        a["corpid"].as_str().unwrap_or_default(),
    );
    if cb.is_null() {
        out.push_str("callback     (none)");
    } else {
        out.push_str(&format!(
            "callback     {}\n  queued {}  delivered {}  dropped {}  failures {}{}",
            cb["url"].as_str().unwrap_or_default(),
            st["queued"],
            st["delivered"],
            st["dropped"],
            st["failures"],
            match st["last_error"].as_str() {
                Some(e) if !e.is_empty() => format!("\n  last error   {e}"),
                _ => String::new(),
            }
        ));
    }
    out
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// The three values an integration needs, once.
fn credentials(v: &Value, output: Output) -> anyhow::Result<()> {
    let c = json!({
        "corpid": v["corpid"],
        "agentid": v["agentid"],
        "secret": v["secret"],
    });
    match output {
        Output::Json => print_json(&c),
        Output::Text => {
            println!(
                "corpid   {}\nagentid  {}\nsecret   {}\n\nThe secret is shown only now: store it in the integration's configuration.",
                c["corpid"].as_str().unwrap_or_default(),
                c["agentid"],
                c["secret"].as_str().unwrap_or_default()
            );
            Ok(())
        }
    }
}

fn show(v: &Value, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => print_json(v),
        Output::Text => {
            println!("{}", app_lines(v));
            Ok(())
        }
    }
}

pub async fn run(cmd: AppCommand, client: &Client, output: Output) -> anyhow::Result<()> {
    let path = |id: u32, rest: &str| format!("/v1/apps/{id}{rest}");
    match cmd {
        AppCommand::Create {
            name,
            scopes,
            trusted_domains,
        } => {
            let body =
                json!({ "name": name, "scopes": scopes, "trusted_domains": trusted_domains });
            let v = call(client, Method::POST, "/v1/apps", Some(body)).await?;
            credentials(&v, output)
        }
        AppCommand::List => {
            let v = call(client, Method::GET, "/v1/apps", None).await?;
            match output {
                Output::Json => print_json(&v),
                Output::Text => {
                    println!(
                        "{:<10} {:<8} {:<24} {:<40} {:>7}",
                        "AGENTID", "ENABLED", "NAME", "SCOPES", "QUEUED"
                    );
                    for a in v["apps"].as_array().into_iter().flatten() {
                        println!(
                            "{:<10} {:<8} {:<24} {:<40} {:>7}",
                            a["agentid"],
                            a["enabled"],
                            a["name"].as_str().unwrap_or_default(),
                            join(&a["scopes"]),
                            a["callback_status"]["queued"]
                        );
                    }
                    Ok(())
                }
            }
        }
        AppCommand::Show { agentid } => show(
            &call(client, Method::GET, &path(agentid, ""), None).await?,
            output,
        ),
        AppCommand::Disable { agentid } => show(
            &call(client, Method::POST, &path(agentid, "/disable"), None).await?,
            output,
        ),
        AppCommand::Enable { agentid } => show(
            &call(client, Method::POST, &path(agentid, "/enable"), None).await?,
            output,
        ),
        AppCommand::RotateSecret { agentid } => {
            let v = call(client, Method::POST, &path(agentid, "/rotate-secret"), None).await?;
            credentials(&v, output)
        }
        AppCommand::SetScopes { agentid, scopes } => {
            let body = json!({ "scopes": scopes });
            show(
                &call(client, Method::PUT, &path(agentid, "/scopes"), Some(body)).await?,
                output,
            )
        }
        AppCommand::SetTrustedDomains { agentid, domains } => {
            let body = json!({ "trusted_domains": domains });
            let v = call(
                client,
                Method::PUT,
                &path(agentid, "/trusted-domains"),
                Some(body),
            )
            .await?;
            show(&v, output)
        }
        AppCommand::SetCallback {
            agentid,
            url,
            token,
            aes_key,
            clear,
        } => {
            if clear {
                let v = call(client, Method::DELETE, &path(agentid, "/callback"), None).await?;
                return show(&v, output);
            }
            let body = json!({ "url": url, "token": token, "aes_key": aes_key });
            let v = call(client, Method::PUT, &path(agentid, "/callback"), Some(body)).await?;
            match output {
                Output::Json => print_json(&v),
                Output::Text => {
                    println!(
                        "{}\n\nThe receiver needs these (shown now, masked later):\n  Token           {}\n  EncodingAESKey  {}",
                        app_lines(&v),
                        v["callback"]["token"].as_str().unwrap_or_default(),
                        v["callback"]["aes_key"].as_str().unwrap_or_default()
                    );
                    Ok(())
                }
            }
        }
    }
}
