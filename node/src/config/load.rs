//! Layering: built-in defaults → file → environment → flags, remembering
//! where each value came from so that errors can name it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Config, ConfigError, ENV_PREFIX, NOT_CONFIG, RawConfig, validate};

/// Where the values came from, so errors can say so.
#[derive(Debug, Default, Clone)]
pub struct Sources {
    file: Option<(PathBuf, toml::Table)>,
    /// key → environment variable name
    env: BTreeMap<String, String>,
    /// key → flag name
    flags: BTreeMap<String, String>,
}

impl Sources {
    pub fn origin(&self, key: &str) -> String {
        if let Some(flag) = self.flags.get(key) {
            return format!("command-line flag {flag}");
        }
        if let Some(var) = self.env.get(key) {
            return format!("environment variable {var}");
        }
        if let Some((path, table)) = &self.file
            && lookup(table, key)
        {
            return format!("file {}", path.display());
        }
        "built-in default".into()
    }
}

/// First key of `table` (dotted) that `known` does not have.
fn unknown_key(table: &toml::Table, known: &toml::Table, prefix: &str) -> Option<String> {
    for (k, v) in table {
        let full = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match (v, known.get(k)) {
            (_, None) => return Some(full),
            (toml::Value::Table(t), Some(toml::Value::Table(kt))) => {
                if let Some(u) = unknown_key(t, kt, &full) {
                    return Some(u);
                }
            }
            _ => {}
        }
    }
    None
}

/// The known keys in the section of `key`, for error messages.
fn known_keys(known: &toml::Table, key: &str) -> String {
    let section = key.split('.').next().unwrap_or_default();
    match known.get(section).and_then(|v| v.as_table()) {
        Some(t) if key.contains('.') => t
            .keys()
            .map(|k| format!("{section}.{k}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => known
            .keys()
            .map(|k| format!("[{k}]"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

fn lookup(table: &toml::Table, key: &str) -> bool {
    let mut parts = key.split('.');
    let Some(first) = parts.next() else {
        return false;
    };
    let mut cur = table.get(first);
    for p in parts {
        cur = cur.and_then(|v| v.as_table()).and_then(|t| t.get(p));
    }
    cur.is_some()
}

/// Everything `load` needs besides the process environment.
#[derive(Debug, Default, Clone)]
pub struct LoadOptions {
    pub file: Option<PathBuf>,
    /// Defaults to layer under the file (dev mode's loopback defaults).
    pub defaults: Option<RawConfig>,
    /// (key, value, flag name) from the command line.
    pub overrides: Vec<(String, String, String)>,
}

/// Load and validate the configuration from `opts` and the `ENCLAVE_*`
/// variables in `env`.
pub fn load(
    opts: &LoadOptions,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut sources = Sources::default();
    let defaults = opts.defaults.clone().unwrap_or_default();
    let mut builder = config::Config::builder().add_source(
        config::Config::try_from(&defaults).map_err(|e| ConfigError::Load(e.to_string()))?,
    );
    if let Some(path) = &opts.file {
        // Absolute, so every message names the file the same way wherever
        // the daemon was started from.
        let path = &std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.clone(),
            message: format!("cannot read: {e}"),
        })?;
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::File {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let known =
            toml::Table::try_from(&defaults).map_err(|e| ConfigError::Load(e.to_string()))?;
        if let Some(key) = unknown_key(&table, &known, "") {
            return Err(ConfigError::Invalid {
                key: key.clone(),
                value: "…".into(),
                origin: format!("file {}", path.display()),
                message: format!("unknown key (known: {})", known_keys(&known, &key)),
            });
        }
        sources.file = Some((path.clone(), table));
        builder =
            builder.add_source(config::File::from(path.as_path()).format(config::FileFormat::Toml));
    }
    let env: BTreeMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| {
            k.starts_with(&format!("{ENV_PREFIX}_")) && !NOT_CONFIG.contains(&k.as_str())
        })
        .collect();
    let known = toml::Table::try_from(&defaults).map_err(|e| ConfigError::Load(e.to_string()))?;
    for (var, value) in &env {
        let key = var[ENV_PREFIX.len() + 1..]
            .to_ascii_lowercase()
            .replace("__", ".");
        if !lookup(&known, &key) || key.split('.').count() != 2 {
            return Err(ConfigError::Invalid {
                key: key.clone(),
                value: format!("{value:?}"),
                origin: format!("environment variable {var}"),
                message: format!(
                    "unknown setting (ENCLAVE_<SECTION>__<KEY>, e.g. ENCLAVE_LISTEN__API; known: {})",
                    known_keys(&known, &key)
                ),
            });
        }
        sources.env.insert(key, var.clone());
    }
    builder = builder.add_source(
        config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(Some(env.into_iter().collect())),
    );
    for (key, value, flag) in &opts.overrides {
        builder = builder
            .set_override(key.as_str(), value.as_str())
            .map_err(|e| ConfigError::Load(e.to_string()))?;
        sources.flags.insert(key.clone(), flag.clone());
    }
    // The config crate names files relative to the working directory;
    // add the absolute path so the message is unambiguous wherever the
    // daemon was started from.
    let file_note = sources
        .file
        .as_ref()
        .map(|(p, _)| format!(" (configuration file {})", p.display()))
        .unwrap_or_default();
    let raw: RawConfig = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Load(format!("{e}{file_note}")))?;
    validate(&raw, &sources)
}
