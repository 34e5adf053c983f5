//! How the upstream connections introduce themselves: client ids, wills,
//! clean-session/session-expiry mapping, credentials and transports.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::credentials::{CredentialsMap, SensorCredentials};
use super::link::LinkSpec;
use crate::bridge::transport::{Connector, TlsSetupError};
use crate::broker::{ConnectRequest, Will};
use crate::config::{BridgeTlsConfig, ProtocolVersion as ConfigVersion, UpstreamConfig};
use crate::mqtt::codec::{Connect, ConnectProperties, LastWill, ProtocolVersion, WillProperties};

/// QoS 1/2 messages one upstream connection has in flight at once
/// (Mosquitto's default `max_inflight_messages`).
const MAX_INFLIGHT: u16 = 20;

/// Builds CONNECT packets and link specs from `[gateway.upstream]`.
#[derive(Debug)]
pub struct ConnectFactory {
    config: UpstreamConfig,
    addresses: Arc<[String]>,
    connector: Connector,
    credentials: Option<CredentialsMap>,
    /// MQTT 5 session expiry of a connection that delivers a previous run's
    /// held messages: the gateway's `persistent_session_expiry`.
    drain_expiry: u32,
    /// Pool connections keep their upstream session (clean_start = 0).
    persistent_pool: bool,
}

impl ConnectFactory {
    /// Loads TLS material and the credentials file.
    pub fn new(
        config: &UpstreamConfig,
        credentials: Option<CredentialsMap>,
    ) -> Result<ConnectFactory, TlsSetupError> {
        let connector = Connector::new(
            "gateway.upstream",
            config.tls.as_ref(),
            Duration::from_secs(config.connect_timeout),
        )?;
        Ok(ConnectFactory {
            addresses: config.addresses.clone().into(),
            config: config.clone(),
            connector,
            credentials,
            drain_expiry: 0,
            persistent_pool: false,
        })
    }

    /// Sets the session expiry of connections made for held messages alone.
    pub fn set_drain_expiry(&mut self, seconds: u32) {
        self.drain_expiry = seconds;
    }

    /// Makes the pool's upstream sessions persistent: clean_start = 0 and,
    /// with MQTT 5, the drain expiry as session expiry. Only worth it when
    /// sngate's own sessions survive a restart too (`[persistence]`):
    /// otherwise nobody would want what the upstream kept.
    pub fn set_persistent_pool(&mut self, persistent: bool) {
        self.persistent_pool = persistent;
    }

    /// Bound on held messages, and on each sensor's delivery queue.
    pub fn max_queued(&self) -> usize {
        self.config.max_queued
    }

    /// Pool connections (aggregating mode).
    pub fn pool_size(&self) -> usize {
        self.config.pool_size
    }

    /// The MQTT version spoken upstream.
    pub fn version(&self) -> ProtocolVersion {
        match self.config.protocol_version {
            ConfigVersion::V311 => ProtocolVersion::V311,
            ConfigVersion::V5 => ProtocolVersion::V5,
        }
    }

    /// In-flight window of each connection.
    pub fn max_inflight(&self) -> u16 {
        MAX_INFLIGHT
    }

    fn base(&self, client_id: String, clean_start: bool) -> Connect {
        Connect {
            protocol: self.version(),
            clean_start,
            keep_alive: self.config.keepalive,
            client_id,
            will: None,
            username: self.config.username.clone(),
            password: self.config.password.clone().map(Bytes::from),
            properties: ConnectProperties::default(),
        }
    }

    /// The CONNECT of pool connection `i`: the gateway's own identity. A
    /// persistent pool keeps its subscriptions and what they match at the
    /// upstream while sngate is down [MQTT-3.1.2-4], [MQTT-3.1.2-5].
    pub fn pool_connect(&self, i: usize) -> Connect {
        let mut c = self.base(
            format!("{}pool-{i}", self.config.client_id_prefix),
            !self.persistent_pool,
        );
        if self.persistent_pool && self.version().is_v5() {
            // MQTT 5 §3.1.2.11.2: without an expiry the session ends with the connection.
            c.properties.session_expiry_interval = Some(self.drain_expiry.max(1));
        }
        c
    }

    /// The CONNECT of one sensor's own connection (transparent mode), and
    /// its own credentials when a credentials file is configured.
    pub fn sensor_connect(
        &self,
        req: &ConnectRequest,
    ) -> Result<(Connect, Option<SensorCredentials>), String> {
        self.identity_connect(
            &req.client_id,
            req.clean_start,
            req.will.as_ref(),
            req.session_expiry,
        )
    }

    /// The CONNECT of a connection that only delivers what a previous run
    /// held for `key`: the pool's identity, or the sensor's without a will.
    /// clean_start = 0, so a persistent sensor's session at the upstream
    /// survives it.
    pub fn drain_connect(&self, key: &str) -> Result<(Connect, Option<SensorCredentials>), String> {
        let Some(client_id) = key.strip_prefix(self.config.client_id_prefix.as_str()) else {
            return Err("client id does not carry this gateway's client_id_prefix".into());
        };
        if client_id.starts_with("pool-") {
            return Ok((self.base(key.to_owned(), true), None));
        }
        self.identity_connect(client_id, false, None, self.drain_expiry)
    }

    fn identity_connect(
        &self,
        client_id: &str,
        clean_start: bool,
        will: Option<&Will>,
        session_expiry: u32,
    ) -> Result<(Connect, Option<SensorCredentials>), String> {
        let mut c = self.base(
            format!("{}{}", self.config.client_id_prefix, client_id),
            clean_start,
        );
        c.will = will.map(last_will);
        if self.version().is_v5() {
            // MQTT-SN clean session 0 → a session that outlives the
            // connection for `persistent_session_expiry` (MQTT 5 §3.1.2.11.2).
            c.properties.session_expiry_interval = (session_expiry > 0).then_some(session_expiry);
        }
        let creds = match &self.credentials {
            None => None,
            Some(map) => {
                let Some(creds) = map.get(client_id) else {
                    return Err("no upstream credentials for this client id".into());
                };
                c.username = creds.username.clone();
                c.password = creds.password.clone().map(Bytes::from);
                Some(creds.clone())
            }
        };
        Ok((c, creds))
    }

    /// A link spec for `connect`, with a per-sensor TLS identity if given.
    pub fn spec(
        &self,
        id: u64,
        connect: Connect,
        creds: Option<&SensorCredentials>,
        fail_fast: bool,
    ) -> Result<LinkSpec, String> {
        let connector = match creds {
            Some(SensorCredentials {
                certfile: Some(cert),
                keyfile: Some(key),
                ..
            }) => {
                let Some(tls) = &self.config.tls else {
                    return Err("a client certificate needs gateway.upstream.tls".into());
                };
                let tls = BridgeTlsConfig {
                    certfile: Some(cert.clone()),
                    keyfile: Some(key.clone()),
                    ..tls.clone()
                };
                Connector::new(&connect.client_id, Some(&tls), self.connector.timeout())
                    .map_err(|e| e.to_string())?
            }
            _ => self.connector.clone(),
        };
        Ok(LinkSpec {
            id,
            addresses: self.addresses.clone(),
            connector,
            connect,
            backoff: (
                Duration::from_secs(self.config.reconnect_min),
                Duration::from_secs(self.config.reconnect_max),
            ),
            fail_fast,
        })
    }
}

/// A broker will as the CONNECT's will (MQTT 3.1.1 §3.1.2.5, MQTT 5 §3.1.3.2).
pub fn last_will(w: &Will) -> LastWill {
    let m = &w.message;
    let mut properties = WillProperties {
        will_delay_interval: (w.delay > 0).then_some(w.delay),
        ..WillProperties::default()
    };
    if let Some(p) = &m.properties {
        properties.payload_format_indicator = p.payload_format_utf8;
        properties.content_type = p.content_type.as_deref().map(str::to_owned);
        properties.response_topic = p.response_topic.as_deref().map(str::to_owned);
        properties.correlation_data = p.correlation_data.clone();
    }
    LastWill {
        topic: m.topic.to_string(),
        payload: m.payload.clone(),
        qos: m.qos,
        retain: m.retain,
        properties,
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn factory(version: ConfigVersion) -> ConnectFactory {
        let config = UpstreamConfig {
            client_id_prefix: "site-a/".into(),
            protocol_version: version,
            ..UpstreamConfig::default()
        };
        let creds = CredentialsMap::parse(
            "[\"s1\"]\nusername = \"u1\"\npassword = \"p1\"\n",
            Path::new("f"),
        )
        .unwrap();
        let mut f = ConnectFactory::new(&config, Some(creds)).unwrap();
        f.set_drain_expiry(3600);
        f
    }

    #[test]
    fn held_messages_of_a_pool_connection_go_out_under_the_pool_identity() {
        let (c, creds) = factory(ConfigVersion::V311)
            .drain_connect("site-a/pool-1")
            .unwrap();
        assert_eq!(c.client_id, "site-a/pool-1");
        assert!(creds.is_none());
    }

    #[test]
    fn held_messages_of_a_sensor_go_out_under_its_identity_keeping_its_session() {
        let (c, creds) = factory(ConfigVersion::V5)
            .drain_connect("site-a/s1")
            .unwrap();
        assert_eq!(c.client_id, "site-a/s1");
        assert!(
            !c.clean_start,
            "a persistent session at the upstream survives"
        );
        assert!(c.will.is_none());
        assert_eq!(c.properties.session_expiry_interval, Some(3600));
        assert_eq!(creds.unwrap().username.as_deref(), Some("u1"));
    }

    #[test]
    fn pool_connections_are_clean_unless_the_pool_is_persistent() {
        let mut f = factory(ConfigVersion::V5);
        let c = f.pool_connect(0);
        assert!(c.clean_start);
        assert_eq!(c.properties.session_expiry_interval, None);
        f.set_persistent_pool(true);
        let c = f.pool_connect(0);
        assert!(!c.clean_start, "the upstream keeps the pool's session");
        assert_eq!(c.properties.session_expiry_interval, Some(3600));
    }

    #[test]
    fn held_messages_of_an_unknown_identity_are_kept_back() {
        let f = factory(ConfigVersion::V311);
        assert!(f.drain_connect("other-prefix/s1").is_err());
        assert!(f.drain_connect("site-a/stranger").is_err());
    }
}
