//! Wiring: builds the broker core, the listeners and the gateway from a
//! [`Config`], and shuts them down together. Tests start sngate in-process
//! through [`start`].

mod logging;
mod open_files;
mod reload;
mod restart_keys;
mod settings;

pub use self::logging::{LevelChange, LogControl, init_logging};
pub use self::open_files::raise_open_files_limit;
pub use self::reload::{ConfigReloader, ReloadSummary};
use self::settings::{broker_settings, open_store};
pub use self::settings::{
    gateway_access, gateway_settings, predefined_topics, sensor_usernames, session_settings,
};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Either;
use thiserror::Error;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::auth::{AuthError, Authorizer};
use crate::broker::{self, BrokerHandle, Command, Message, Metrics};
use crate::config::{Config, ListenerConfig, ListenerProtocol};
use crate::gateway::{
    GatewayExtras, GatewayReload, GatewayStatus, SensorAccess, SerialTransport, bind_udp,
    run_gateway_full,
};
use crate::http::{self, HttpState};
use crate::mqtt::connection::{ConnectionContext, run_connection};
use crate::transport::dtls::psk::SharedPskTable;
use crate::transport::tls::{self, TlsError, TlsSettings};
use crate::transport::udp::UdpListenerSettings;
use crate::transport::{tcp, websocket};
use crate::upstream::UpstreamStats;

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
    /// The durable store cannot be opened or read (damaged, newer format,
    /// in use, unreadable); the message names the file and what to do.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
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
    /// `[gateway.upstream]` cannot be set up (TLS files, credentials file).
    #[error(transparent)]
    Upstream(#[from] crate::upstream::UpstreamError),
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
    /// The bound `[http]` address, when configured.
    pub http: Option<SocketAddr>,
    /// The gateway's status, refreshed about once a second (when the gateway
    /// runs and `[http]` or `$SYS` reads it).
    pub gateway_status: Option<watch::Receiver<GatewayStatus>>,
    /// A handle to the broker core (for in-process clients).
    pub broker: BrokerHandle,
    /// Traffic counters.
    pub metrics: Arc<Metrics>,
    /// Password and ACL rules in force.
    pub authorizer: Arc<Authorizer>,
    /// Counters of the upstream connections (`transparent`/`aggregating` modes).
    pub upstream: Option<Arc<UpstreamStats>>,
    tls: Vec<(SocketAddr, Arc<TlsSettings>)>,
    /// The config in force: what started, plus what reloads applied.
    config: Config,
    bridges: Vec<crate::bridge::BridgeHandle>,
    /// Where reloads send the gateway its new tables, while it runs.
    gateway_reload: Option<mpsc::Sender<GatewayReload>>,
    /// Each `[[gateway.dtls]]` listener's PSK table, in config order.
    psk: Vec<Arc<SharedPskTable>>,
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

/// Starts everything the config describes. Listeners are bound before this
/// returns, so their addresses (port 0 resolved) are known to the caller.
pub async fn start(config: &Config) -> Result<Sngate, StartError> {
    crate::bridge::check(&config.bridge)?;
    let started = std::time::Instant::now();
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
    // Everything stored is restored before the first listener opens.
    let (persistence, restored_topics) = open_store(config)?;
    let (broker, metrics, core) =
        broker::spawn_with(broker_settings(config), persistence, shutdown.clone());
    // Bridges subscribe before any listener opens: a message published in
    // the first moments must already find the bridge's out rules.
    let bridges = crate::bridge::spawn_bridges(&config.bridge, &broker, &shutdown, &tasks).await?;
    crate::bridge::retire_unconfigured(&config.bridge, &broker).await;
    let ctx = ConnectionContext {
        broker: broker.clone(),
        metrics: metrics.clone(),
        settings: session_settings(config),
        shutdown: shutdown.clone(),
        authorizer: authorizer.clone(),
        identity: None,
        max_publish_rate: config.broker.max_publish_rate,
    };
    let mut mqtt_listeners = Vec::new();
    let mut tls = Vec::new();
    let open_connections = Arc::new(http::OpenConnections::default());
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
        let (open, protocol) = (open_connections.clone(), l.protocol);
        tasks.spawn(tcp::accept_loop(
            listener,
            max,
            metrics.clone(),
            shutdown.clone(),
            tasks.clone(),
            move |stream, peer| {
                let counted = open.enter(protocol);
                // `map`, not an async block awaiting the connection: that
                // would store the connection future twice in the task.
                serve
                    .clone()
                    .serve(stream, peer)
                    .map(move |()| drop(counted))
            },
        ));
    }
    let mut gateway_udp = Vec::new();
    let mut gateway_dtls = Vec::new();
    let mut upstream_stats = None;
    let mut gateway_status = None;
    let mut gateway_reload = None;
    let mut psk = Vec::new();
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
        psk = dtls.iter().map(|t| t.psk.clone()).collect();
        let mut settings = gateway_settings(config);
        settings.restored_topics = restored_topics;
        let interval = Duration::from_secs(config.broker.sys_interval);
        // The per-second status snapshot is built only when someone reads it.
        let (status_tx, status_rx) = if config.http.is_some() || !interval.is_zero() {
            let (tx, rx) = watch::channel(GatewayStatus::default());
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        gateway_status = status_rx.clone();
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
                    max_garbage_rate: c.max_garbage_rate,
                }
            })
            .collect();
        // Upstream modes: the gateway talks to the upstream task, which
        // speaks the core's language; the core still serves MQTT listeners.
        let (gw_broker, available) = if config.gateway.mode.uses_upstream() {
            let up =
                crate::upstream::spawn(&config.gateway, &config.persistence, shutdown.clone())?;
            info!(
                "MQTT-SN gateway in {:?} mode, upstream {}.",
                config.gateway.mode,
                config.gateway.upstream.addresses.join(", ")
            );
            upstream_stats = Some(up.stats.clone());
            (up.broker, Some(up.available))
        } else {
            (broker.clone(), None)
        };
        let mut access = gateway_access(config, authorizer.clone(), metrics.clone());
        if !dtls.is_empty() {
            // DTLS identities name their ACL user; they win over [gateway] usernames.
            let ids = dtls.iter().flat_map(|t| t.identities.iter());
            let usernames = sensor_usernames(config, ids);
            access.sensors = Arc::new(SensorAccess::new(authorizer.clone(), usernames));
        }
        let (reload_tx, reload_rx) = mpsc::channel(4);
        gateway_reload = Some(reload_tx);
        let stop = shutdown.clone();
        tasks.spawn(async move {
            let extras = GatewayExtras {
                available,
                access,
                status: status_tx,
                dtls,
                reload: Some(reload_rx),
            };
            if let Err(e) =
                run_gateway_full(settings, sockets, serial, gw_broker, stop, extras).await
            {
                tracing::error!("MQTT-SN gateway stopped: {e}");
            }
        });
        if let Some(status_rx) = status_rx
            && !interval.is_zero()
        {
            tasks.spawn(publish_gateway_sys(
                status_rx,
                broker.clone(),
                interval,
                shutdown.clone(),
            ));
        }
    }
    let http = match &config.http {
        Some(h) => {
            let listener = http::bind(h.bind).map_err(|source| StartError::Bind {
                addr: h.bind,
                what: "http",
                source,
            })?;
            let local = listener.local_addr().unwrap_or(h.bind);
            info!("Opening http listen socket on {local}.");
            let state = Arc::new(HttpState::new(
                broker.clone(),
                metrics.clone(),
                open_connections.clone(),
                gateway_status.clone(),
                started,
                shutdown.clone(),
            ));
            tasks.spawn(http::serve(listener, state, tasks.clone()));
            Some(local)
        }
        None => None,
    };
    Ok(Sngate {
        mqtt_listeners,
        gateway_udp,
        gateway_dtls,
        http,
        gateway_status,
        broker,
        metrics,
        authorizer,
        upstream: upstream_stats,
        tls,
        config: config.clone(),
        bridges,
        gateway_reload,
        psk,
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
    ctx: Arc<ConnectionContext>,
}

impl Listener {
    fn new(l: &ListenerConfig, tls: Option<Arc<TlsSettings>>, ctx: ConnectionContext) -> Listener {
        Listener {
            protocol: l.protocol,
            tls,
            path: l.path.clone(),
            use_identity_as_username: l.use_identity_as_username,
            ctx: Arc::new(ctx),
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

    /// The connection future for one accepted stream. A plain MQTT
    /// connection is the hand-polled connection itself, stored in the task
    /// without a box; handshakes (TLS, WebSocket) get boxed futures of their
    /// own, so that a plain connection reserves no room for them.
    fn serve(
        self: Arc<Self>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) -> Either<impl Future<Output = ()> + Send, Pin<Box<dyn Future<Output = ()> + Send>>> {
        match (self.protocol, &self.tls) {
            (ListenerProtocol::Mqtt, _) => {
                Either::Left(run_connection(stream, peer, "tcp", self.ctx.clone()))
            }
            (ListenerProtocol::Ws, _) => Either::Right(Box::pin(async move {
                let timeout = self.handshake_timeout();
                let max = self.max_ws_message();
                match Box::pin(websocket::accept(stream, &self.path, max, timeout)).await {
                    Ok(ws) => run_connection(ws, peer, "ws", self.ctx.clone()).await,
                    Err(e) => warn!("WebSocket handshake with {peer} failed: {e}"),
                }
            })),
            (ListenerProtocol::Mqtts | ListenerProtocol::Wss, Some(t)) => {
                let t = t.clone();
                Either::Right(Box::pin(self.serve_tls(t, stream, peer)))
            }
            (_, None) => {
                warn!("TLS listener without certificates; connection from {peer} dropped");
                Either::Right(Box::pin(std::future::ready(())))
            }
        }
    }

    /// A TLS (or WebSocket over TLS) connection: handshake, then serve.
    async fn serve_tls(
        self: Arc<Self>,
        t: Arc<TlsSettings>,
        stream: tokio::net::TcpStream,
        peer: SocketAddr,
    ) {
        let timeout = self.handshake_timeout();
        let stream = match Box::pin(t.accept(stream, timeout)).await {
            Ok(s) => s,
            Err(e) => return warn!("TLS handshake with {peer} failed: {e}"),
        };
        let mut ctx = (*self.ctx).clone();
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
            match Box::pin(websocket::accept(stream, &self.path, max, timeout)).await {
                Ok(ws) => run_connection(ws, peer, "wss", Arc::new(ctx)).await,
                Err(e) => warn!("WebSocket handshake with {peer} failed: {e}"),
            }
        } else {
            run_connection(stream, peer, "tls", Arc::new(ctx)).await;
        }
    }
}

/// Publishes the gateway's `$SYS/broker/mqttsn/...` topics every `interval`,
/// beside the core's own `$SYS` topics.
async fn publish_gateway_sys(
    status: watch::Receiver<GatewayStatus>,
    broker: BrokerHandle,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first status arrives within a second of the gateway starting.
    tick.reset_after(Duration::from_millis(1500).min(interval));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let messages: Vec<Message> = status.borrow().sys_messages();
        for message in messages {
            if broker
                .send(Command::PublishInternal { message })
                .await
                .is_err()
            {
                return;
            }
        }
    }
}
