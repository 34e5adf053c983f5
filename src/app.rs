//! Wiring: builds the broker core, the listeners and the gateway from a
//! [`Config`], and shuts them down together. Tests start sngate in-process
//! through [`start`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::{AuthError, Authorizer};
use crate::broker::{self, BrokerHandle, BrokerSettings, Metrics};
use crate::config::{Config, GatewayMode, ListenerConfig, ListenerProtocol};
use crate::gateway::{
    GatewaySettings, PredefinedTopic, SerialTransport, bind_udp, run_gateway_secure,
};
use crate::mqtt::connection::{ConnectionContext, run_connection};
use crate::mqtt::session::SessionSettings;
use crate::transport::tls::{self, TlsError, TlsSettings};
use crate::transport::udp::UdpListenerSettings;
use crate::transport::{tcp, websocket};

/// Starts the `[[gateway.dtls]]` sockets (docs/dtls.md).
#[cfg(feature = "dtls")]
fn start_dtls(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<Vec<crate::transport::dtls::link::DtlsTransport>, StartError> {
    use crate::transport::dtls::listener::{DtlsListenerError, start_listeners};
    start_listeners(&config.gateway.dtls, config.gateway.max_sensors, shutdown).map_err(|e| match e
    {
        DtlsListenerError::Bind { addr, source } => StartError::Bind {
            addr,
            what: "mqtt-sn dtls",
            source,
        },
        other => StartError::Unsupported(other.to_string()),
    })
}

/// Without the `dtls` feature a `[[gateway.dtls]]` socket cannot start.
#[cfg(not(feature = "dtls"))]
fn start_dtls(
    config: &Config,
    _shutdown: &CancellationToken,
) -> Result<Vec<crate::transport::dtls::link::DtlsTransport>, StartError> {
    if config.gateway.dtls.is_empty() {
        return Ok(Vec::new());
    }
    Err(StartError::Unsupported(
        "[[gateway.dtls]] needs sngate built with the \"dtls\" feature".into(),
    ))
}

/// Why sngate could not start.
#[derive(Debug, Error)]
pub enum StartError {
    /// A listener could not bind its address.
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Which listener.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// A `[[bridge]]` cannot be set up (topic rule, template, TLS files).
    #[error(transparent)]
    Bridge(#[from] crate::bridge::BridgeError),
    /// The config asks for something this build does not do yet.
    #[error("{0}")]
    Unsupported(String),
    /// A TLS listener's certificate, key or CA file is unusable.
    #[error("listener {addr}: {source}")]
    Tls {
        /// The listener's configured address.
        addr: SocketAddr,
        /// What is wrong.
        source: TlsError,
    },
    /// The password or ACL file is unusable.
    #[error("[auth]: {0}")]
    Auth(#[from] AuthError),
}

/// What a reload (SIGHUP) could not apply; everything else was applied and
/// the failed parts keep their previous state.
#[derive(Debug, Error)]
#[error("reload incomplete: {}", .problems.join("; "))]
pub struct ReloadError {
    /// One line per file set that failed.
    pub problems: Vec<String>,
}

/// A running sngate.
#[derive(Debug)]
pub struct Sngate {
    /// Bound MQTT listeners (protocol, address), in config order.
    pub mqtt_listeners: Vec<(ListenerProtocol, SocketAddr)>,
    /// Bound MQTT-SN UDP sockets, in config order.
    pub gateway_udp: Vec<SocketAddr>,
    /// Bound MQTT-SN DTLS sockets, in config order.
    pub gateway_dtls: Vec<SocketAddr>,
    /// A handle to the broker core (for in-process clients).
    pub broker: BrokerHandle,
    /// Traffic counters.
    pub metrics: Arc<Metrics>,
    /// Password and ACL rules in force.
    pub authorizer: Arc<Authorizer>,
    tls: Vec<(SocketAddr, Arc<TlsSettings>)>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    core: JoinHandle<()>,
}

impl Sngate {
    /// The first plain MQTT listener's address.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        self.mqtt_listeners
            .iter()
            .find(|(p, _)| *p == ListenerProtocol::Mqtt)
            .map(|(_, a)| *a)
    }

    /// The first listener's address with this protocol.
    pub fn listener_addr(&self, protocol: ListenerProtocol) -> Option<SocketAddr> {
        self.mqtt_listeners
            .iter()
            .find(|(p, _)| *p == protocol)
            .map(|(_, a)| *a)
    }

    /// Re-reads TLS certificates, the password file and the ACL (SIGHUP).
    /// Connected clients stay; new connections and later checks use the new
    /// files. A file that fails to load is reported and its old version kept.
    pub fn reload(&self) -> Result<(), ReloadError> {
        let mut problems = Vec::new();
        for (addr, t) in &self.tls {
            match t.reload() {
                Ok(()) => info!("Reloaded TLS certificates of listener {addr}."),
                Err(e) => problems.push(format!("listener {addr}: {e}")),
            }
        }
        match self.authorizer.reload() {
            Ok(()) => info!("Reloaded password and ACL files."),
            Err(e) => problems.push(format!("[auth]: {e}")),
        }
        for p in &problems {
            warn!("Reload failed, keeping the previous version: {p}");
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ReloadError { problems })
        }
    }

    /// The token that stops everything when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, says goodbye to clients, and waits (bounded) for
    /// every task to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(5), self.tasks.wait())
            .await
            .is_err()
        {
            warn!("some connections did not close within 5 s");
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), self.core).await;
    }
}

fn broker_settings(config: &Config) -> BrokerSettings {
    let b = &config.broker;
    BrokerSettings {
        max_queued_messages: b.max_queued_messages,
        max_inflight_messages: b.max_inflight_messages,
        sys_interval: Duration::from_secs(b.sys_interval),
        retain_available: b.retain_available,
    }
}

/// Per-connection MQTT settings from `[broker]`.
pub fn session_settings(config: &Config) -> SessionSettings {
    let b = &config.broker;
    SessionSettings {
        max_keepalive: b.max_keepalive,
        max_packet_size: b.max_packet_size,
        max_topic_alias: b.max_topic_alias,
        receive_maximum: b.max_inflight_messages,
        retain_available: b.retain_available,
        allow_zero_length_clientid: b.allow_zero_length_clientid,
        connect_timeout: Duration::from_secs(b.connect_timeout),
    }
}

/// MQTT-SN gateway settings from `[gateway]`.
pub fn gateway_settings(config: &Config) -> GatewaySettings {
    let g = &config.gateway;
    GatewaySettings {
        gateway_id: g.gateway_id,
        advertise_interval: Duration::from_secs(u64::from(g.advertise_interval)),
        retry_interval: Duration::from_secs(g.retry_interval),
        max_retries: g.max_retries,
        allow_qos_minus_one: g.allow_qos_minus_one,
        max_sensors: g.max_sensors,
        max_topics_per_sensor: g.max_topics_per_sensor,
        max_buffered_messages: g.max_buffered_messages,
        max_message_size: g.max_message_size,
        max_client_id_len: g.max_client_id_len,
        persistent_session_expiry: Duration::from_secs(g.persistent_session_expiry),
        predefined: g
            .predefined
            .iter()
            .map(|p| PredefinedTopic {
                topic_id: p.topic_id,
                topic: p.topic.clone(),
                client_id: (p.client_id != "*").then(|| p.client_id.clone()),
            })
            .collect(),
    }
}

fn check_supported(config: &Config) -> Result<(), StartError> {
    if config.gateway.enabled && config.gateway.mode != GatewayMode::Broker {
        return Err(StartError::Unsupported(
            "gateway.mode other than \"broker\" is not available in this build yet".into(),
        ));
    }

    if config.persistence.enabled {
        return Err(StartError::Unsupported(
            "persistence.enabled = true is not available in this build yet; set it to false".into(),
        ));
    }
    Ok(())
}

/// Starts everything the config describes. Listeners are bound before this
/// returns, so their addresses (port 0 resolved) are known to the caller.
pub async fn start(config: &Config) -> Result<Sngate, StartError> {
    check_supported(config)?;
    crate::bridge::check(&config.bridge)?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let authorizer = Arc::new(Authorizer::from_config(&config.auth)?);
    // Certificates are loaded before anything runs, so a bad file stops the start.
    let mut listener_tls = Vec::new();
    for l in &config.listener {
        let settings = match l.protocol.is_tls() {
            true => Some(Arc::new(TlsSettings::load(l).map_err(|source| {
                StartError::Tls {
                    addr: l.bind,
                    source,
                }
            })?)),
            false => None,
        };
        listener_tls.push(settings);
    }
    let (broker, metrics, core) = broker::spawn(broker_settings(config), shutdown.clone());
    let ctx = ConnectionContext {
        broker: broker.clone(),
        metrics: metrics.clone(),
        settings: session_settings(config),
        shutdown: shutdown.clone(),
        authorizer: authorizer.clone(),
        identity: None,
    };
    let mut mqtt_listeners = Vec::new();
    let mut tls = Vec::new();
    for (l, l_tls) in config.listener.iter().zip(listener_tls) {
        let listener = tcp::bind(l.bind).map_err(|source| StartError::Bind {
            addr: l.bind,
            what: l.protocol.as_str(),
            source,
        })?;
        let local = listener.local_addr().unwrap_or(l.bind);
        info!("Opening {} listen socket on {local}.", l.protocol.as_str());
        mqtt_listeners.push((l.protocol, local));
        let max = if l.max_connections > 0 {
            l.max_connections
        } else {
            config.broker.max_connections
        };
        if let Some(t) = &l_tls {
            tls.push((local, t.clone()));
        }
        let serve = Arc::new(Listener::new(l, l_tls, ctx.clone()));
        tasks.spawn(tcp::accept_loop(
            listener,
            max,
            shutdown.clone(),
            tasks.clone(),
            move |stream, peer| serve.clone().serve(stream, peer),
        ));
    }
    let mut gateway_udp = Vec::new();
    let mut gateway_dtls = Vec::new();
    let serial_configured = config.gateway.enabled && !config.gateway.serial.is_empty();
    let dtls_configured = config.gateway.enabled && !config.gateway.dtls.is_empty();
    if config.gateway.enabled
        && (!config.gateway.udp.is_empty() || serial_configured || dtls_configured)
    {
        let udp: Vec<UdpListenerSettings> = config
            .gateway
            .udp
            .iter()
            .map(|u| UdpListenerSettings {
                bind: u.bind,
                multicast_group: u.multicast_group,
                multicast_ttl: u32::from(u.multicast_ttl),
            })
            .collect();
        let sockets = bind_udp(&udp).map_err(|e| match e {
            crate::gateway::GatewayError::Bind { addr, source } => StartError::Bind {
                addr,
                what: "mqtt-sn udp",
                source,
            },
            other => StartError::Unsupported(other.to_string()),
        })?;
        gateway_udp = sockets.iter().map(|s| s.local_addr()).collect();
        let dtls = start_dtls(config, &shutdown)?;
        gateway_dtls = dtls.iter().map(|t| t.local_addr).collect();
        let settings = gateway_settings(config);
        // A missing or unplugged radio never stops the start: its link logs
        // why and keeps reopening the device.
        let serial = config
            .gateway
            .serial
            .iter()
            .map(|c| {
                let (link, events) = crate::transport::serial::port::spawn_link(
                    c.clone(),
                    config.gateway.max_message_size,
                    shutdown.clone(),
                );
                SerialTransport {
                    device: c.device.display().to_string(),
                    link,
                    events,
                }
            })
            .collect();
        let broker = broker.clone();
        let stop = shutdown.clone();
        tasks.spawn(async move {
            if let Err(e) = run_gateway_secure(settings, sockets, serial, dtls, broker, stop).await
            {
                tracing::error!("MQTT-SN gateway stopped: {e}");
            }
        });
    }
    crate::bridge::spawn_bridges(&config.bridge, &broker, &shutdown, &tasks).await?;
    Ok(Sngate {
        mqtt_listeners,
        gateway_udp,
        gateway_dtls,
        broker,
        metrics,
        authorizer,
        tls,
        shutdown,
        tasks,
        core,
    })
}

/// How one listener turns an accepted TCP stream into an MQTT connection.
struct Listener {
    protocol: ListenerProtocol,
    tls: Option<Arc<TlsSettings>>,
    path: String,
    use_identity_as_username: bool,
    ctx: ConnectionContext,
}

impl Listener {
    fn new(l: &ListenerConfig, tls: Option<Arc<TlsSettings>>, ctx: ConnectionContext) -> Listener {
        Listener {
            protocol: l.protocol,
            tls,
            path: l.path.clone(),
            use_identity_as_username: l.use_identity_as_username,
            ctx,
        }
    }

    /// Handshakes (TLS, WebSocket) share the CONNECT deadline: a peer that
    /// stays silent is dropped as one that never sends CONNECT would be.
    fn handshake_timeout(&self) -> Duration {
        self.ctx.settings.connect_timeout
    }

    /// One WebSocket message may carry a whole packet plus framing.
    fn max_ws_message(&self) -> usize {
        usize::try_from(self.ctx.settings.max_packet_size)
            .unwrap_or(usize::MAX)
            .saturating_add(16)
    }

    async fn serve(self: Arc<Self>, stream: tokio::net::TcpStream, peer: SocketAddr) {
        let timeout = self.handshake_timeout();
        match (self.protocol, &self.tls) {
            (ListenerProtocol::Mqtt, _) => {
                run_connection(stream, peer, "tcp", self.ctx.clone()).await;
            }
            (ListenerProtocol::Ws, _) => {
                match websocket::accept(stream, &self.path, self.max_ws_message(), timeout).await {
                    Ok(ws) => run_connection(ws, peer, "ws", self.ctx.clone()).await,
                    Err(e) => warn!("WebSocket handshake with {peer} failed: {e}"),
                }
            }
            (ListenerProtocol::Mqtts | ListenerProtocol::Wss, Some(t)) => {
                let stream = match t.accept(stream, timeout).await {
                    Ok(s) => s,
                    Err(e) => return warn!("TLS handshake with {peer} failed: {e}"),
                };
                let mut ctx = self.ctx.clone();
                if self.use_identity_as_username {
                    match tls::client_common_name(&stream) {
                        Some(cn) => ctx.identity = Some(Arc::from(cn.as_str())),
                        None => {
                            return warn!(
                                "Connection from {peer} refused: no client certificate CN to use as user name."
                            );
                        }
                    }
                }
                if self.protocol == ListenerProtocol::Wss {
                    let max = self.max_ws_message();
                    match websocket::accept(stream, &self.path, max, timeout).await {
                        Ok(ws) => run_connection(ws, peer, "wss", ctx).await,
                        Err(e) => warn!("WebSocket handshake with {peer} failed: {e}"),
                    }
                } else {
                    run_connection(stream, peer, "tls", ctx).await;
                }
            }
            (_, None) => warn!("TLS listener without certificates; connection from {peer} dropped"),
        }
    }
}
