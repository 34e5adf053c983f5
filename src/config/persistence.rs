//! `[persistence]` and `[auth]`: the durable store and client authentication.

use std::path::PathBuf;

use serde::Deserialize;

/// `[persistence]`: the embedded durable store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersistenceConfig {
    /// Whether sessions, queues and retained messages survive a restart.
    pub enabled: bool,
    /// Directory holding the store.
    pub path: PathBuf,
    /// When writes reach the disk.
    pub sync: SyncMode,
    /// Largest store size in bytes; 0 = unlimited.
    pub max_size: u64,
    /// With `sync = "interval"`: seconds between two fsyncs of the store.
    pub sync_interval: u64,
}

impl Default for PersistenceConfig {
    fn default() -> Self {
        PersistenceConfig {
            enabled: false,
            path: PathBuf::from("/var/lib/sngate"),
            sync: SyncMode::Always,
            max_size: 0,
            sync_interval: 1,
        }
    }
}

/// When the store flushes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Before a QoS 1/2 message is acknowledged: acked means on disk.
    #[default]
    Always,
    /// Periodically: faster, a crash may lose the last moments.
    Interval,
}

/// `[auth]`: who may connect.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawAuth")]
pub struct AuthConfig {
    /// Whether clients without a username are accepted.
    pub allow_anonymous: bool,
    /// Mosquitto-format password file.
    pub password_file: Option<PathBuf>,
    /// Mosquitto-format ACL file.
    pub acl_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            allow_anonymous: true,
            password_file: None,
            acl_file: None,
        }
    }
}

/// `[auth]` as written: `allow_anonymous`'s default depends on `password_file`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    #[serde(default)]
    allow_anonymous: Option<bool>,
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    acl_file: Option<PathBuf>,
}

impl From<RawAuth> for AuthConfig {
    fn from(raw: RawAuth) -> Self {
        // As Mosquitto does: configuring passwords means anonymous clients are
        // refused unless the file says otherwise.
        let allow_anonymous = raw.allow_anonymous.unwrap_or(raw.password_file.is_none());
        AuthConfig {
            allow_anonymous,
            password_file: raw.password_file,
            acl_file: raw.acl_file,
        }
    }
}
