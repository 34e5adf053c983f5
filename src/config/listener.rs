//! `[[listener]]` and `[http]`: the TCP sockets MQTT clients and operators connect to.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use super::de::{opt_socket_addr, socket_addr};

/// The wire protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerProtocol {
    /// MQTT over plain TCP.
    #[default]
    Mqtt,
    /// MQTT over TLS.
    Mqtts,
    /// MQTT over WebSocket.
    Ws,
    /// MQTT over WebSocket over TLS.
    Wss,
}

impl ListenerProtocol {
    /// The conventional port, used when `bind` is left out.
    pub fn default_port(self) -> u16 {
        match self {
            ListenerProtocol::Mqtt => 1883,
            ListenerProtocol::Mqtts => 8883,
            ListenerProtocol::Ws => 8080,
            ListenerProtocol::Wss => 8443,
        }
    }

    /// Whether the listener terminates TLS.
    pub fn is_tls(self) -> bool {
        matches!(self, ListenerProtocol::Mqtts | ListenerProtocol::Wss)
    }

    /// Whether the listener speaks WebSocket.
    pub fn is_websocket(self) -> bool {
        matches!(self, ListenerProtocol::Ws | ListenerProtocol::Wss)
    }

    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerProtocol::Mqtt => "mqtt",
            ListenerProtocol::Mqtts => "mqtts",
            ListenerProtocol::Ws => "ws",
            ListenerProtocol::Wss => "wss",
        }
    }
}

/// One `[[listener]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(from = "RawListener")]
pub struct ListenerConfig {
    /// Wire protocol.
    pub protocol: ListenerProtocol,
    /// Address to listen on; defaults to `0.0.0.0` and the protocol's conventional port.
    pub bind: SocketAddr,
    /// HTTP path of the WebSocket endpoint (ws/wss only).
    pub path: String,
    /// PEM server certificate chain (mqtts/wss).
    pub certfile: Option<PathBuf>,
    /// PEM private key of `certfile` (mqtts/wss).
    pub keyfile: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to (with `require_certificate`).
    pub cafile: Option<PathBuf>,
    /// Whether clients must present a certificate signed by `cafile`.
    pub require_certificate: bool,
    /// Whether the client certificate's subject CN replaces the CONNECT username.
    pub use_identity_as_username: bool,
    /// Simultaneous connections on this listener; 0 = unlimited.
    pub max_connections: usize,
}

impl ListenerConfig {
    /// A listener with every optional key at its default.
    pub fn new(protocol: ListenerProtocol, bind: SocketAddr) -> Self {
        ListenerConfig {
            protocol,
            bind,
            path: default_ws_path(),
            certfile: None,
            keyfile: None,
            cafile: None,
            require_certificate: false,
            use_identity_as_username: false,
            max_connections: 0,
        }
    }
}

/// The listeners used when the file has no `listener` key: plain MQTT on 0.0.0.0:1883.
pub(super) fn default_listeners() -> Vec<ListenerConfig> {
    vec![ListenerConfig::new(
        ListenerProtocol::Mqtt,
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1883),
    )]
}

fn default_ws_path() -> String {
    "/mqtt".to_owned()
}

/// The listener as written; `bind`'s default depends on `protocol`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawListener {
    #[serde(default)]
    protocol: ListenerProtocol,
    #[serde(default, deserialize_with = "opt_socket_addr")]
    bind: Option<SocketAddr>,
    #[serde(default = "default_ws_path")]
    path: String,
    #[serde(default)]
    certfile: Option<PathBuf>,
    #[serde(default)]
    keyfile: Option<PathBuf>,
    #[serde(default)]
    cafile: Option<PathBuf>,
    #[serde(default)]
    require_certificate: bool,
    #[serde(default)]
    use_identity_as_username: bool,
    #[serde(default)]
    max_connections: usize,
}

impl From<RawListener> for ListenerConfig {
    fn from(raw: RawListener) -> Self {
        let bind = raw.bind.unwrap_or_else(|| {
            SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                raw.protocol.default_port(),
            )
        });
        ListenerConfig {
            protocol: raw.protocol,
            bind,
            path: raw.path,
            certfile: raw.certfile,
            keyfile: raw.keyfile,
            cafile: raw.cafile,
            require_certificate: raw.require_certificate,
            use_identity_as_username: raw.use_identity_as_username,
            max_connections: raw.max_connections,
        }
    }
}

/// `[http]`: metrics, health and status page; off unless the section is present.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address the HTTP server listens on.
    #[serde(deserialize_with = "socket_addr")]
    pub bind: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081),
        }
    }
}
