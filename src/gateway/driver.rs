//! The async task that runs the sans-IO [`Gateway`] on UDP sockets: it owns
//! the core, the sockets, a broker handle and the shared outbox receiver.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::access::{Admission, DatagramGate, GatewayAccess};
use super::status::GatewayStatus;
use super::{Gateway, GatewaySettings, PeerAddr, PeerIdentity, Transmit};
use crate::broker::{BrokerClosed, BrokerHandle, Metrics};
use crate::limits::{ByteRate, Limit};
use crate::transport::dtls::link::{DtlsTransport, SecureDatagram};
use crate::transport::serial::framing::{Destination, OutFrame};
use crate::transport::serial::port::{LinkEvent, SerialLink};
use crate::transport::udp::{MAX_DATAGRAM, UdpListener, UdpListenerSettings};

/// How often the status hook is refreshed.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Batches read ahead of the gateway before the socket readers wait.
const RECEIVE_QUEUE: usize = 1024;

/// Most datagrams one reader wake-up takes off its socket and hands on as one
/// batch: enough to pay one task hop per burst instead of one per datagram,
/// few enough that the reader soon yields to the other sockets' readers.
pub const READ_BATCH: usize = 64;

/// Why the gateway task stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A UDP socket could not be bound.
    #[error("cannot bind the MQTT-SN UDP socket {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The broker core stopped while the gateway was running.
    #[error(transparent)]
    BrokerClosed(#[from] BrokerClosed),
}

/// Binds every configured socket (tests bind port 0 and read the addresses
/// with [`UdpListener::local_addr`]). Needs a tokio runtime.
pub fn bind_udp(udp: &[UdpListenerSettings]) -> Result<Vec<UdpListener>, GatewayError> {
    udp.iter()
        .map(|s| {
            UdpListener::bind(s).map_err(|source| GatewayError::Bind {
                addr: s.bind,
                source,
            })
        })
        .collect()
}

/// Binds the sockets and runs the gateway until `shutdown` is cancelled.
pub async fn run_gateway(
    settings: GatewaySettings,
    udp: Vec<UdpListenerSettings>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    let sockets = bind_udp(&udp)?;
    run_gateway_on(settings, sockets, broker, shutdown).await
}

/// A serial radio link the gateway serves, as started by
/// [`crate::transport::serial::port::spawn_link`].
#[derive(Debug)]
pub struct SerialTransport {
    /// The device path, for log lines.
    pub device: String,
    /// Where frames to the link go.
    pub link: SerialLink,
    /// What the link reports.
    pub events: mpsc::Receiver<LinkEvent>,
    /// Garbage bytes per second above which the line is reported; 0 = never.
    pub max_garbage_rate: u32,
}

/// Datagrams from any transport: UDP ones come in batches per socket.
enum Input {
    Udp(usize, Vec<(SocketAddr, Bytes)>),
    Serial(u16, Option<u64>, Bytes),
    Dtls(u16, SecureDatagram),
}

/// Runs the gateway on already bound sockets until `shutdown` is cancelled.
pub async fn run_gateway_on(
    settings: GatewaySettings,
    sockets: Vec<UdpListener>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    run_gateway_with(
        settings,
        sockets,
        Vec::new(),
        broker,
        shutdown,
        GatewayAccess::default(),
    )
    .await
}

/// Runs the gateway on UDP sockets and serial links until `shutdown` is
/// cancelled: one gateway core, one set of sessions and topic tables for all,
/// admitting sensors and checking them by `access`.
pub async fn run_gateway_with(
    settings: GatewaySettings,
    sockets: Vec<UdpListener>,
    serial: Vec<SerialTransport>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
    access: GatewayAccess,
) -> Result<(), GatewayError> {
    run_gateway_full(
        settings,
        sockets,
        serial,
        broker,
        shutdown,
        GatewayExtras {
            access,
            ..GatewayExtras::default()
        },
    )
    .await
}

/// What a gateway run may have besides its transports, all optional.
#[derive(Debug, Default)]
pub struct GatewayExtras {
    /// Whether the broker behind the handle (an upstream broker) can take new
    /// sensors: while it reads false, new sensors get CONNACK "rejected:
    /// congestion" (MQTT-SN 1.2 §5.4.5, G-21).
    pub available: Option<watch::Receiver<bool>>,
    /// Sensor admission and ACL.
    pub access: GatewayAccess,
    /// Where a [`GatewayStatus`] is published once a second.
    pub status: Option<watch::Sender<GatewayStatus>>,
    /// DTLS listeners, whose sensors carry the identity their handshake
    /// authenticated (docs/dtls.md).
    pub dtls: Vec<DtlsTransport>,
    /// Changes from a config reload (SIGHUP), applied between datagrams.
    pub reload: Option<mpsc::Receiver<GatewayReload>>,
}

/// What a config reload changes in a running gateway; `None` keeps a part as is.
#[derive(Debug, Default)]
pub struct GatewayReload {
    /// The new predefined topic table (`[[gateway.predefined]]`).
    pub predefined: Option<Vec<super::PredefinedTopic>>,
    /// New sensor ACL user names (`[gateway] usernames`, PSK file bindings).
    pub access: Option<Arc<super::SensorAccess>>,
    /// Every identity of the reloaded PSK files: their client ids are bound anew.
    pub identities: Option<Vec<Arc<PeerIdentity>>>,
}

/// The next reload, or never when there is no reload channel (or it closed).
async fn next_reload(rx: &mut Option<mpsc::Receiver<GatewayReload>>) -> GatewayReload {
    if let Some(r) = rx {
        if let Some(change) = r.recv().await {
            return change;
        }
        *rx = None;
    }
    std::future::pending().await
}

fn apply_reload(gw: &mut Gateway, change: GatewayReload) {
    if let Some(table) = change.predefined {
        gw.set_predefined(&table);
    }
    if let Some(access) = change.access {
        gw.set_access(access);
    }
    if let Some(ids) = change.identities {
        gw.rebind_identities(ids);
    }
}

/// Runs the gateway on UDP sockets and serial links until `shutdown` is
/// cancelled, with the optional `extras`.
pub async fn run_gateway_full(
    settings: GatewaySettings,
    sockets: Vec<UdpListener>,
    serial: Vec<SerialTransport>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
    extras: GatewayExtras,
) -> Result<(), GatewayError> {
    let GatewayExtras {
        mut available,
        access,
        status,
        dtls,
        mut reload,
    } = extras;
    let max_routes = settings.max_sensors.saturating_mul(4).max(1024);
    let mut gw = Gateway::new(settings);
    gw.set_access(access.sensors.clone());
    gw.bind_identities(dtls.iter().flat_map(|t| t.identities.iter().cloned()));
    let Some(mut outbox) = gw.take_outbox_receiver() else {
        unreachable!("a new gateway has its outbox receiver");
    };
    let sockets: Vec<Arc<UdpListener>> = sockets.into_iter().map(Arc::new).collect();
    for s in &sockets {
        tracing::info!(addr = %s.local_addr(), group = ?s.multicast_group(), "MQTT-SN gateway listening (UDP)");
    }
    let (dgram_tx, mut dgram_rx) = mpsc::channel(RECEIVE_QUEUE);
    let mut readers = JoinSet::new();
    for (i, s) in sockets.iter().enumerate() {
        let gate = DatagramGate::new(
            s.local_addr(),
            access.listeners.get(i).cloned().unwrap_or_default(),
            access.max_datagram_rate,
            access.metrics.clone(),
        );
        readers.spawn(read_loop(i, s.clone(), gate, dgram_tx.clone()));
    }
    let mut links = Vec::with_capacity(serial.len());
    for (i, t) in serial.into_iter().enumerate() {
        let index = u16::try_from(i).unwrap_or(u16::MAX);
        let garbage = ByteRate::new(t.max_garbage_rate, Instant::now());
        let metrics = access.metrics.clone();
        readers.spawn(serial_loop(
            index,
            t.device,
            t.events,
            garbage,
            metrics,
            dgram_tx.clone(),
        ));
        links.push(t.link);
    }
    let mut secure = Vec::with_capacity(dtls.len());
    for (i, t) in dtls.into_iter().enumerate() {
        let index = u16::try_from(i).unwrap_or(u16::MAX);
        tracing::info!(addr = %t.local_addr, "MQTT-SN gateway listening (DTLS)");
        readers.spawn(dtls_loop(index, t.incoming, dgram_tx.clone()));
        secure.push(t.outgoing);
    }
    drop(dgram_tx);
    let mut out = Output {
        sockets,
        serial: links,
        dtls: secure,
        routes: HashMap::new(),
        max_routes,
    };
    gw.start(Instant::now());
    if let Some(a) = &mut available {
        let now_available = *a.borrow_and_update();
        gw.set_broker_available(Instant::now(), now_available);
    }
    let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
    // Both pinned once: a fresh shutdown wait or timer in every round would
    // join and leave a waiter list and the timer wheel around every datagram.
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut armed = false;
    let result = loop {
        if let Err(e) = flush(&mut gw, &broker, &mut out).await {
            break Err(e);
        }
        // Deadlines move later with every datagram (keep-alive): a timer
        // armed for an earlier instant stays, fires early once and is
        // re-armed then. An early `handle_timeout` finds nothing due.
        match gw.poll_timeout() {
            Some(at) => {
                let at = tokio::time::Instant::from_std(at);
                if !armed || timer.is_elapsed() || timer.deadline() > at {
                    timer.as_mut().reset(at);
                    armed = true;
                }
            }
            None => armed = false,
        }
        tokio::select! {
            biased;
            () = &mut cancelled => break Ok(()),
            ev = outbox.recv() => {
                // The gateway holds a sender itself, so the channel never closes.
                if let Some((conn, ev)) = ev {
                    gw.handle_outbound(Instant::now(), conn, ev);
                }
            }
            d = dgram_rx.recv() => match d {
                Some(Input::Udp(i, batch)) => {
                    for (from, data) in batch {
                        out.remember(from, i);
                        gw.handle_datagram(Instant::now(), PeerAddr::Udp(from), data);
                    }
                }
                Some(Input::Serial(link, radio, data)) => {
                    gw.handle_datagram(Instant::now(), PeerAddr::Serial { link, radio }, data);
                }
                Some(Input::Dtls(listener, d)) => {
                    let peer = PeerAddr::Dtls { listener, addr: d.addr };
                    let id: Arc<PeerIdentity> = d.identity;
                    gw.handle_datagram_with_identity(Instant::now(), peer, d.payload, Some(id));
                }
                None => break Ok(()),
            },
            () = &mut timer, if armed => {
                armed = false;
                gw.handle_timeout(Instant::now());
            }
            up = availability(&mut available) => gw.set_broker_available(Instant::now(), up),
            change = next_reload(&mut reload) => apply_reload(&mut gw, change),
            _ = status_tick.tick(), if status.is_some() => {
                if let Some(tx) = &status {
                    tx.send_replace(gw.status(Instant::now()));
                }
            }
        }
    };
    // Say goodbye where the core already did (ShuttingDown) without waiting on it.
    while let Ok((conn, ev)) = outbox.try_recv() {
        gw.handle_outbound(Instant::now(), conn, ev);
    }
    while let Some(t) = gw.poll_transmit() {
        out.send(t).await;
    }
    readers.abort_all();
    result
}

/// The next availability change; never resolves without a watch or after
/// its sender is gone.
async fn availability(available: &mut Option<watch::Receiver<bool>>) -> bool {
    match available {
        Some(a) => {
            if a.changed().await.is_err() {
                *available = None;
                return std::future::pending().await;
            }
            *a.borrow_and_update()
        }
        None => std::future::pending().await,
    }
}

/// Sends every command and datagram the gateway has produced.
async fn flush(
    gw: &mut Gateway,
    broker: &BrokerHandle,
    out: &mut Output,
) -> Result<(), GatewayError> {
    loop {
        let mut idle = true;
        while let Some(cmd) = gw.poll_command() {
            idle = false;
            // Waiting here is the back-pressure from a busy core to the sensors.
            broker.send(cmd).await?;
        }
        while let Some(t) = gw.poll_transmit() {
            idle = false;
            out.send(t).await;
        }
        if idle {
            return Ok(());
        }
    }
}

/// Reads one socket, admitting datagrams through its gate before they are
/// copied or queued, so a flood costs no memory and cannot crowd out others.
/// Each wake-up drains what has already arrived (at most [`READ_BATCH`]
/// datagrams) and hands it on in one hop.
async fn read_loop(
    index: usize,
    socket: Arc<UdpListener>,
    mut gate: DatagramGate,
    tx: mpsc::Sender<Input>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let first = socket.recv_from(&mut buf).await;
        let mut batch = Vec::new();
        admit(&socket, &mut gate, &buf, first, &mut batch).await;
        for _ in 1..READ_BATCH {
            match socket.try_recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                got => admit(&socket, &mut gate, &buf, got, &mut batch).await,
            }
        }
        if !batch.is_empty() && tx.send(Input::Udp(index, batch)).await.is_err() {
            return;
        }
    }
}

/// One receive result: a datagram the gate passes joins `batch`; one it
/// answers itself is answered here; a receive error is only logged.
async fn admit(
    socket: &UdpListener,
    gate: &mut DatagramGate,
    buf: &[u8],
    got: std::io::Result<(usize, SocketAddr)>,
    batch: &mut Vec<(SocketAddr, Bytes)>,
) {
    let (n, from) = match got {
        Ok(got) => got,
        // ICMP errors (e.g. port unreachable after a send) surface here on
        // some platforms; they say nothing about this socket's health.
        Err(e) => {
            tracing::debug!(addr = %socket.local_addr(), error = %e, "UDP receive error");
            return;
        }
    };
    let datagram = buf.get(..n).unwrap_or_default();
    match gate.admit(Instant::now(), from, datagram) {
        Admission::Pass => batch.push((from, Bytes::copy_from_slice(datagram))),
        Admission::Drop => {}
        Admission::Reply(answer) => {
            if let Err(e) = socket.send_to(&answer, from).await {
                tracing::debug!(peer = %from, error = %e, "UDP send failed");
            }
        }
    }
}

/// Turns a serial link's events into gateway input. Link up/down is logged by
/// the link itself; discarded octets are only worth a debug line each.
async fn serial_loop(
    index: u16,
    device: String,
    mut events: mpsc::Receiver<LinkEvent>,
    mut garbage: ByteRate,
    metrics: Arc<Metrics>,
    tx: mpsc::Sender<Input>,
) {
    while let Some(ev) = events.recv().await {
        match ev {
            LinkEvent::Frame(f) => {
                if tx
                    .send(Input::Serial(index, f.source, f.message))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            LinkEvent::Up => tracing::info!(%device, "MQTT-SN gateway serving serial link"),
            LinkEvent::Down { reason } => tracing::debug!(%device, %reason, "serial link down"),
            LinkEvent::DeliveryFailed { frame_id, status } => {
                tracing::debug!(%device, frame_id, status, "radio could not deliver a frame");
            }
            LinkEvent::FramingError(e) => {
                tracing::debug!(%device, error = %e, "serial octets discarded");
                // A flood of garbage is dropped by the framing either way; here
                // it becomes visible: one warning per episode and a counter.
                if garbage.add(Instant::now(), e.discarded_octets()) {
                    metrics.limits.hit(Limit::SerialGarbage);
                    tracing::warn!(
                        %device,
                        "serial line discards garbage above max_garbage_rate (noise, wrong baud rate or framing?)"
                    );
                }
            }
        }
    }
}

/// Decrypted datagrams of one DTLS listener into gateway input.
async fn dtls_loop(index: u16, mut rx: mpsc::Receiver<SecureDatagram>, tx: mpsc::Sender<Input>) {
    while let Some(d) = rx.recv().await {
        if tx.send(Input::Dtls(index, d)).await.is_err() {
            return;
        }
    }
}

/// The sockets and links, and which socket each UDP peer last talked to.
struct Output {
    sockets: Vec<Arc<UdpListener>>,
    serial: Vec<SerialLink>,
    dtls: Vec<mpsc::Sender<(SocketAddr, Bytes)>>,
    routes: HashMap<SocketAddr, usize>,
    max_routes: usize,
}

impl Output {
    fn remember(&mut self, peer: SocketAddr, socket: usize) {
        if self.routes.len() >= self.max_routes && !self.routes.contains_key(&peer) {
            // Bounded memory; a forgotten peer falls back to the family rule.
            self.routes.clear();
        }
        self.routes.insert(peer, socket);
    }

    fn socket_for(&self, peer: SocketAddr) -> Option<&Arc<UdpListener>> {
        if let Some(s) = self.routes.get(&peer).and_then(|&i| self.sockets.get(i)) {
            return Some(s);
        }
        self.sockets
            .iter()
            .find(|s| s.local_addr().is_ipv4() == peer.is_ipv4())
    }

    async fn send(&self, t: Transmit) {
        match t.peer {
            Some(PeerAddr::Udp(peer)) => {
                let Some(s) = self.socket_for(peer) else {
                    return;
                };
                if let Err(e) = s.send_to(&t.payload, peer).await {
                    tracing::debug!(%peer, error = %e, "UDP send failed");
                }
                if t.broadcast
                    && let Err(e) = s.broadcast(&t.payload, t.radius).await
                {
                    tracing::debug!(error = %e, "multicast send failed");
                }
            }
            Some(PeerAddr::Serial { link, radio }) => {
                let Some(l) = self.serial.get(usize::from(link)) else {
                    return;
                };
                let destination = radio.map_or(Destination::Peer, Destination::Radio);
                // Never wait on a slow radio: the gateway serves everyone else.
                if l.tx
                    .try_send(OutFrame {
                        message: t.payload,
                        destination,
                    })
                    .is_err()
                {
                    tracing::debug!(link, "serial link busy or down; frame dropped");
                }
            }
            Some(PeerAddr::Dtls { listener, addr }) => {
                let Some(l) = self.dtls.get(usize::from(listener)) else {
                    return;
                };
                // Never wait on the DTLS task: it may be busy with a handshake flood.
                if l.try_send((addr, t.payload)).is_err() {
                    tracing::debug!(%addr, "DTLS listener busy or stopped; datagram dropped");
                }
            }
            None if t.broadcast => {
                for s in &self.sockets {
                    if let Err(e) = s.broadcast(&t.payload, t.radius).await {
                        tracing::debug!(error = %e, "multicast send failed");
                    }
                }
                for l in &self.serial {
                    let _ = l.tx.try_send(OutFrame {
                        message: t.payload.clone(),
                        destination: Destination::Broadcast,
                    });
                }
            }
            None => {}
        }
    }
}
