//! Configuration: the TOML schema, defaults and validation.
//!
//! Every section and key has a default, so an empty file is a working config;
//! `config/sngate.toml` spells the defaults out and is what [`Config::builtin`]
//! parses. Errors name the file, the line and column, and the key path.

mod bridge;
mod broker;
mod de;
mod endpoint;
mod error;
mod gateway;
mod listener;
mod locate;
mod persistence;
mod serial;
mod validate;

use std::path::Path;

use serde::Deserialize;
use toml::de::DeTable;

pub use bridge::{BridgeConfig, BridgeDirection, BridgeTlsConfig, BridgeTopicConfig};
pub use broker::{BrokerConfig, LogConfig, LogLevel};
pub use endpoint::{Endpoint, Scheme};
pub use error::{ConfigError, Diagnostic};
pub use gateway::{
    DtlsConfig, GatewayConfig, GatewayMode, PredefinedTopicConfig, ProtocolVersion, UdpConfig,
    UpstreamConfig,
};
pub use listener::{HttpConfig, ListenerConfig, ListenerProtocol};
pub use persistence::{AuthConfig, PersistenceConfig, SyncMode};
pub use serial::{DataBits, FlowControl, Framing, Parity, SerialConfig, StopBits, XbeeApiMode};

use locate::KeyPath;

/// The default config file, embedded so the binary and the file cannot disagree.
pub const BUILTIN_TOML: &str = include_str!("../../config/sngate.toml");

/// The whole sngate configuration, one field per top-level TOML key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `[log]`.
    pub log: LogConfig,
    /// `[broker]`.
    pub broker: BrokerConfig,
    /// `[[listener]]`; absent = one MQTT listener on 0.0.0.0:1883, `listener = []` = none.
    pub listener: Vec<ListenerConfig>,
    /// `[gateway]`.
    pub gateway: GatewayConfig,
    /// `[persistence]`.
    pub persistence: PersistenceConfig,
    /// `[auth]`.
    pub auth: AuthConfig,
    /// `[[bridge]]`; none by default.
    pub bridge: Vec<BridgeConfig>,
    /// `[http]`; absent = no HTTP server.
    pub http: Option<HttpConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            log: LogConfig::default(),
            broker: BrokerConfig::default(),
            listener: listener::default_listeners(),
            gateway: GatewayConfig::default(),
            persistence: PersistenceConfig::default(),
            auth: AuthConfig::default(),
            bridge: Vec::new(),
            http: None,
        }
    }
}

impl Config {
    /// The built-in default: parses the embedded config/sngate.toml (include_str!), so the two can never differ.
    pub fn builtin() -> Config {
        // The embedded file is part of the program, and a unit test parses it.
        Config::from_toml_str(BUILTIN_TOML, "sngate.toml (built-in)")
            .unwrap_or_else(|e| panic!("embedded config/sngate.toml is invalid: {e}"))
    }

    /// Reads, parses and validates the file at `path`; messages name it as given.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::read(&origin, e))?;
        Config::from_toml_str(&text, &origin)
    }

    /// Parses and validates TOML text; `origin` names the file in messages.
    pub fn from_toml_str(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let document = DeTable::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let key = locate::key_at(text, span.start).to_string();
            let message = format!("invalid TOML: {}", e.message().trim_end());
            ConfigError::Syntax(Diagnostic::at(origin, text, span, key, message))
        })?;

        let deserializer = toml::Deserializer::from(document.clone());
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let mut path = KeyPath::from_serde(e.path());
            let inner = e.inner();
            let message = in_toml_terms(inner.message().trim_end());
            // Name the missing key itself, not only the table lacking it.
            if let Some(missing) = backticked(&message, "missing field `") {
                path = path.key(missing);
            }
            let span = inner
                .span()
                .or_else(|| path.locate(&document))
                .unwrap_or(0..0);
            ConfigError::Invalid(Diagnostic::at(
                origin,
                text,
                span,
                path.to_string(),
                message,
            ))
        })?;

        validate::validate(&config).map_err(|invalid| {
            let span = invalid.path.locate(&document).unwrap_or(0..0);
            ConfigError::Invalid(Diagnostic::at(
                origin,
                text,
                span,
                invalid.path.to_string(),
                invalid.message,
            ))
        })?;
        Ok(config)
    }
}

/// Rewrites serde's Rust vocabulary ("struct GatewayConfig", "a sequence") into TOML's.
fn in_toml_terms(message: &str) -> String {
    let message = message.replace("expected a sequence", "expected an array");
    match message.find("expected struct ") {
        Some(at) => {
            let rest = &message[at + "expected struct ".len()..];
            let name_end = rest
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .unwrap_or(rest.len());
            format!("{}expected a table{}", &message[..at], &rest[name_end..])
        }
        None => message,
    }
}

/// The name in `` prefix`name` ``, as serde writes field names in messages.
fn backticked<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(name, _)| name)
}

#[cfg(test)]
mod tests;
