//! `[gateway]`: the MQTT-SN gateway, its UDP sockets, upstream and predefined topics.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;

use super::bridge::BridgeTlsConfig;
use super::de::{opt_socket_addr, ranged, socket_addr};
use super::serial::SerialConfig;
use crate::limits::Cidr;

/// How the gateway connects sensors to MQTT (MQTT-SN 1.2 §4: transparent and aggregating gateways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GatewayMode {
    /// Sensors are clients of the built-in broker core.
    #[default]
    Broker,
    /// One upstream MQTT connection per sensor.
    Transparent,
    /// One upstream MQTT connection shared by all sensors.
    Aggregating,
}

impl GatewayMode {
    /// Whether the mode needs `[gateway.upstream]`.
    pub fn uses_upstream(self) -> bool {
        !matches!(self, GatewayMode::Broker)
    }
}

/// MQTT protocol version spoken to a remote broker: 4 (3.1.1) or 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "i64")]
pub enum ProtocolVersion {
    /// MQTT 3.1.1 (protocol level 4).
    #[default]
    V311,
    /// MQTT 5.0 (protocol level 5).
    V5,
}

impl ProtocolVersion {
    /// The CONNECT protocol level byte.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }
}

impl TryFrom<i64> for ProtocolVersion {
    type Error = String;

    fn try_from(value: i64) -> Result<Self, String> {
        match value {
            4 => Ok(ProtocolVersion::V311),
            5 => Ok(ProtocolVersion::V5),
            other => Err(format!(
                "invalid protocol version {other}, expected 4 (MQTT 3.1.1) or 5 (MQTT 5)"
            )),
        }
    }
}

/// `[gateway]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// Whether the MQTT-SN gateway runs at all.
    pub enabled: bool,
    /// GwId sent in ADVERTISE and GWINFO (MQTT-SN 1.2 §5.4.2).
    #[serde(deserialize_with = "ranged::<_, _, 0, 255>")]
    pub gateway_id: u8,
    /// ADVERTISE period T_ADV in seconds; 0 = never advertise (MQTT-SN 1.2 §6.1).
    #[serde(deserialize_with = "ranged::<_, _, 0, 65535>")]
    pub advertise_interval: u16,
    /// Where sensor traffic goes.
    pub mode: GatewayMode,
    /// T_retry: seconds before an unacknowledged message to a sensor is resent (MQTT-SN 1.2 §6.13).
    #[serde(deserialize_with = "ranged::<_, _, 1, 86400>")]
    pub retry_interval: u64,
    /// N_retry: resends before the sensor is considered lost (MQTT-SN 1.2 §6.13).
    #[serde(deserialize_with = "ranged::<_, _, 0, 255>")]
    pub max_retries: u32,
    /// Whether PUBLISH with QoS −1 from unconnected sensors is accepted (MQTT-SN 1.2 §6.8).
    pub allow_qos_minus_one: bool,
    /// Sensor sessions held at once.
    #[serde(deserialize_with = "ranged::<_, _, 1, 4294967295>")]
    pub max_sensors: usize,
    /// Registered topic ids per sensor.
    #[serde(deserialize_with = "ranged::<_, _, 1, 65535>")]
    pub max_topics_per_sensor: usize,
    /// Messages kept for one sleeping sensor (MQTT-SN 1.2 §6.14).
    #[serde(deserialize_with = "ranged::<_, _, 0, 4294967295>")]
    pub max_buffered_messages: usize,
    /// Largest MQTT-SN message accepted or sent, in bytes.
    #[serde(deserialize_with = "ranged::<_, _, 16, 65535>")]
    pub max_message_size: usize,
    /// Longest accepted client id (MQTT-SN 1.2 §5.3.1 says 1..=23; longer ones are common).
    #[serde(deserialize_with = "ranged::<_, _, 1, 65535>")]
    pub max_client_id_len: usize,
    /// Seconds a clean_session=0 sensor's session survives without the sensor.
    pub persistent_session_expiry: u64,
    /// External broker for `transparent` and `aggregating` modes.
    pub upstream: UpstreamConfig,
    /// UDP sockets sensors reach the gateway on.
    pub udp: Vec<UdpConfig>,
    /// Serial radios sensors reach the gateway through.
    pub serial: Vec<SerialConfig>,
    /// DTLS sockets: sensors authenticated by a pre-shared key (docs/dtls.md).
    pub dtls: Vec<DtlsConfig>,
    /// Topic ids known to sensors without REGISTER (MQTT-SN 1.2 §3 "pre-defined topic ids").
    pub predefined: Vec<PredefinedTopicConfig>,
    /// Datagrams per second accepted from one source IP address; 0 = unlimited.
    pub max_datagram_rate: u32,
    /// Client id → user name the ACL knows the sensor by (`user` blocks, `%u`).
    pub usernames: BTreeMap<String, String>,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            enabled: true,
            gateway_id: 1,
            advertise_interval: 900,
            mode: GatewayMode::Broker,
            retry_interval: 10,
            max_retries: 5,
            allow_qos_minus_one: true,
            max_sensors: 10_000,
            max_topics_per_sensor: 1000,
            max_buffered_messages: 100,
            max_message_size: 65535,
            max_client_id_len: 64,
            persistent_session_expiry: 86_400,
            upstream: UpstreamConfig::default(),
            udp: default_udp(),
            serial: Vec::new(),
            dtls: Vec::new(),
            predefined: Vec::new(),
            max_datagram_rate: 0,
            usernames: BTreeMap::new(),
        }
    }
}

/// The UDP sockets used when the file has no `gateway.udp` key: IPv4 with the
/// conventional multicast group, and IPv6.
fn default_udp() -> Vec<UdpConfig> {
    vec![
        UdpConfig {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1884),
            multicast_group: Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::new(225, 1, 1, 1)),
                1884,
            )),
            multicast_ttl: 1,
            allow_client_ids: Vec::new(),
            allow_networks: Vec::new(),
        },
        UdpConfig {
            bind: SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 1884),
            multicast_group: None,
            multicast_ttl: 1,
            allow_client_ids: Vec::new(),
            allow_networks: Vec::new(),
        },
    ]
}

/// `[gateway.upstream]`: the external broker of `transparent`/`aggregating` modes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Addresses tried in order: `"host:port"` or `mqtt(s)://` / `ws(s)://host[:port][/path]` URLs.
    pub addresses: Vec<String>,
    /// MQTT version spoken upstream.
    pub protocol_version: ProtocolVersion,
    /// Prefix of the upstream client ids the gateway makes up; unique per gateway.
    pub client_id_prefix: String,
    /// Upstream username shared by all sensors (and the pool connections).
    pub username: Option<String>,
    /// Upstream password shared by all sensors.
    pub password: Option<String>,
    /// TOML file mapping a sensor's client id to its own upstream username and
    /// password (or client certificate and key); sensors not in it are refused.
    pub credentials_file: Option<PathBuf>,
    /// TLS to the upstream broker; absent = plain TCP.
    pub tls: Option<BridgeTlsConfig>,
    /// Upstream connections shared by all sensors in `aggregating` mode.
    #[serde(deserialize_with = "ranged::<_, _, 1, 64>")]
    pub pool_size: usize,
    /// Most QoS 1/2 sensor messages held for the upstream (outage or in flight);
    /// past it sensors get PUBACK "rejected: congestion".
    #[serde(deserialize_with = "ranged::<_, _, 1, 100_000_000>")]
    pub max_queued: usize,
    /// Keep-alive of every upstream connection, seconds; sngate sends the
    /// PINGREQs, also while a sensor sleeps.
    #[serde(deserialize_with = "ranged::<_, _, 5, 65535>")]
    pub keepalive: u16,
    /// Seconds allowed for TCP, TLS and CONNACK when connecting.
    #[serde(deserialize_with = "ranged::<_, _, 1, 3600>")]
    pub connect_timeout: u64,
    /// First reconnect delay, seconds; doubles up to `reconnect_max`.
    #[serde(deserialize_with = "ranged::<_, _, 1, 86400>")]
    pub reconnect_min: u64,
    /// Longest reconnect delay, seconds.
    #[serde(deserialize_with = "ranged::<_, _, 1, 86400>")]
    pub reconnect_max: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            addresses: Vec::new(),
            protocol_version: ProtocolVersion::V311,
            client_id_prefix: "sngate-".to_owned(),
            username: None,
            password: None,
            credentials_file: None,
            tls: None,
            pool_size: 2,
            max_queued: 10_000,
            keepalive: 60,
            connect_timeout: 10,
            reconnect_min: 1,
            reconnect_max: 30,
        }
    }
}

/// One `[[gateway.udp]]` socket.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// Address the socket binds to.
    #[serde(deserialize_with = "socket_addr", default = "default_udp_bind")]
    pub bind: SocketAddr,
    /// Group joined for SEARCHGW and sent ADVERTISE to (MQTT-SN 1.2 §6.1); absent = no multicast.
    #[serde(default, deserialize_with = "opt_socket_addr")]
    pub multicast_group: Option<SocketAddr>,
    /// Hop limit of multicast datagrams sent.
    #[serde(
        default = "default_multicast_ttl",
        deserialize_with = "ranged::<_, _, 1, 255>"
    )]
    pub multicast_ttl: u8,
    /// Client ids admitted (exact, or globs with `*` and `?`); empty = all.
    #[serde(default)]
    pub allow_client_ids: Vec<String>,
    /// Source networks admitted (`"192.168.1.0/24"`, `"::1/128"`); empty = all.
    #[serde(default)]
    pub allow_networks: Vec<Cidr>,
}

fn default_udp_bind() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1884)
}

fn default_multicast_ttl() -> u8 {
    1
}

/// One `[[gateway.dtls]]` socket (DTLS 1.2, PSK).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DtlsConfig {
    /// Address the socket binds to.
    #[serde(deserialize_with = "socket_addr", default = "default_dtls_bind")]
    pub bind: SocketAddr,
    /// `identity:hexkey[:client_id[:username]]` lines (Mosquitto's psk_file plus bindings).
    pub psk_file: Option<PathBuf>,
    /// Server certificate (PEM) for certificate-based DTLS; not available yet.
    pub certfile: Option<PathBuf>,
    /// Private key of `certfile` (PEM); not available yet.
    pub keyfile: Option<PathBuf>,
    /// CA that signs sensor certificates (PEM); not available yet.
    pub cafile: Option<PathBuf>,
    /// Handshakes past the cookie exchange in progress at once.
    #[serde(
        default = "default_max_handshakes",
        deserialize_with = "ranged::<_, _, 1, 65535>"
    )]
    pub max_handshakes: usize,
}

fn default_dtls_bind() -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 1885)
}

fn default_max_handshakes() -> usize {
    64
}

/// One `[[gateway.predefined]]` topic id.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredefinedTopicConfig {
    /// The id sensors use; 0 and 0xFFFF are reserved (MQTT-SN 1.2 §5.3.11).
    #[serde(deserialize_with = "ranged::<_, _, 1, 65534>")]
    pub topic_id: u16,
    /// The MQTT topic name the id stands for; no wildcards.
    pub topic: String,
    /// The sensor the id applies to, or `"*"` for every sensor.
    #[serde(default = "any_client")]
    pub client_id: String,
}

fn any_client() -> String {
    "*".to_owned()
}
