//! Who a certificate belongs to. The role travels in the certificate as a
//! SAN URI (`enclave://role/<role>`) so that identity is always taken from a
//! verified certificate, never from a claim in a request body or header.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// URI scheme prefix for roles carried in certificates.
pub const ROLE_URI_PREFIX: &str = "enclave://role/";
/// URI scheme prefix for the node name carried in node certificates.
pub const NODE_URI_PREFIX: &str = "enclave://node/";
/// URI scheme prefix for the user id carried in device certificates.
pub const USER_URI_PREFIX: &str = "enclave://user/";

/// The role a certificate grants. One per certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A cluster node: peer port (server and client) and server side of api/admin.
    Node,
    /// System administrator (directory, cluster, backups).
    Sysadmin,
    /// Security administrator (roles, certificates, security policy).
    Secadmin,
    /// Auditor: reads and exports the audit trail, nothing else.
    Auditor,
    /// Monitoring system: metrics and health only.
    Monitor,
    /// An employee's device, for sites that require device certificates.
    Device,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Node,
        Role::Sysadmin,
        Role::Secadmin,
        Role::Auditor,
        Role::Monitor,
        Role::Device,
    ];
    /// Roles an operator certificate may carry.
    pub const OPERATOR: [Role; 4] = [Role::Sysadmin, Role::Secadmin, Role::Auditor, Role::Monitor];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Node => "node",
            Role::Sysadmin => "sysadmin",
            Role::Secadmin => "secadmin",
            Role::Auditor => "auditor",
            Role::Monitor => "monitor",
            Role::Device => "device",
        }
    }

    pub fn uri(self) -> String {
        format!("{ROLE_URI_PREFIX}{}", self.as_str())
    }

    pub fn is_operator(self) -> bool {
        Role::OPERATOR.contains(&self)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role {s:?} (expected one of node, sysadmin, secadmin, auditor, monitor, device)")
            })
    }
}

/// The verified identity of a TLS peer, extracted from its leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// The certificate's common name (node name, operator name or user id).
    pub name: String,
    pub role: Role,
    /// Certificate serial number, lower-case hex.
    pub serial: String,
}

impl Identity {
    /// Parse the identity out of a DER certificate. Returns `None` when the
    /// certificate carries no (or more than one) Enclave role.
    pub fn from_der(der: &[u8]) -> Option<Identity> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut role = None;
        let mut name = None;
        let mut role_count = 0;
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for gn in &san.value.general_names {
                if let x509_parser::extensions::GeneralName::URI(uri) = gn {
                    if let Some(r) = uri.strip_prefix(ROLE_URI_PREFIX) {
                        role = r.parse::<Role>().ok();
                        role_count += 1;
                    } else if let Some(n) = uri
                        .strip_prefix(NODE_URI_PREFIX)
                        .or_else(|| uri.strip_prefix(USER_URI_PREFIX))
                    {
                        name = Some(n.to_string());
                    }
                }
            }
        }
        if role_count != 1 {
            return None;
        }
        let name = name.or_else(|| {
            cert.subject()
                .iter_common_name()
                .next()
                .and_then(|cn| cn.as_str().ok())
                .map(str::to_string)
        })?;
        Some(Identity {
            name,
            role: role?,
            serial: hex::encode(cert.raw_serial()),
        })
    }
}

/// Validate a name used in certificates and file names: node names, operator
/// names and user ids. Conservative on purpose: it ends up in URIs and paths.
pub fn validate_name(what: &'static str, name: &str) -> crate::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        && !name.starts_with('.')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(crate::CertError::InvalidInput {
            what,
            detail: format!(
                "{name:?}: use 1-64 characters from a-z A-Z 0-9 - _ . @, not starting with '.' or '-'"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_their_names() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }

    #[test]
    fn names_that_could_escape_a_path_are_refused() {
        for bad in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-flag",
            "a b",
            &"x".repeat(65),
        ] {
            assert!(validate_name("name", bad).is_err(), "{bad:?} accepted");
        }
        for good in ["node-1", "alice@corp", "ops_team.2"] {
            assert!(validate_name("name", good).is_ok(), "{good:?} refused");
        }
    }
}
