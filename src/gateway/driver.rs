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

use super::status::GatewayStatus;
use super::{Gateway, GatewaySettings, PeerAddr, Transmit};
use crate::broker::{BrokerClosed, BrokerHandle};
use crate::transport::udp::{MAX_DATAGRAM, UdpListener, UdpListenerSettings};

/// How often the status hook is refreshed.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Datagrams read ahead of the gateway before the socket readers wait.
const RECEIVE_QUEUE: usize = 1024;

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

/// Runs the gateway on already bound sockets until `shutdown` is cancelled.
pub async fn run_gateway_on(
    settings: GatewaySettings,
    sockets: Vec<UdpListener>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
) -> Result<(), GatewayError> {
    run_gateway_with_status(settings, sockets, broker, shutdown, None).await
}

/// [`run_gateway_on`], also publishing a [`GatewayStatus`] on `status` once a second.
pub async fn run_gateway_with_status(
    settings: GatewaySettings,
    sockets: Vec<UdpListener>,
    broker: BrokerHandle,
    shutdown: CancellationToken,
    status: Option<watch::Sender<GatewayStatus>>,
) -> Result<(), GatewayError> {
    let max_routes = settings.max_sensors.saturating_mul(4).max(1024);
    let mut gw = Gateway::new(settings);
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
        readers.spawn(read_loop(i, s.clone(), dgram_tx.clone()));
    }
    drop(dgram_tx);
    let mut out = Output {
        sockets,
        routes: HashMap::new(),
        max_routes,
    };
    gw.start(Instant::now());
    let mut status_tick = tokio::time::interval(STATUS_INTERVAL);
    let result = loop {
        if let Err(e) = flush(&mut gw, &broker, &mut out).await {
            break Err(e);
        }
        let deadline = gw.poll_timeout();
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break Ok(()),
            ev = outbox.recv() => {
                // The gateway holds a sender itself, so the channel never closes.
                if let Some((conn, ev)) = ev {
                    gw.handle_outbound(Instant::now(), conn, ev);
                }
            }
            d = dgram_rx.recv() => match d {
                Some((i, from, data)) => {
                    out.remember(from, i);
                    gw.handle_datagram(Instant::now(), PeerAddr::Udp(from), data);
                }
                None => break Ok(()),
            },
            () = timer => gw.handle_timeout(Instant::now()),
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

async fn read_loop(
    index: usize,
    socket: Arc<UdpListener>,
    tx: mpsc::Sender<(usize, SocketAddr, Bytes)>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buf).await {
            Ok((n, from)) => {
                let data = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                if tx.send((index, from, data)).await.is_err() {
                    return;
                }
            }
            // ICMP errors (e.g. port unreachable after a send) surface here on
            // some platforms; they say nothing about this socket's health.
            Err(e) => tracing::debug!(addr = %socket.local_addr(), error = %e, "UDP receive error"),
        }
    }
}

/// The sockets and which one each peer last talked to.
struct Output {
    sockets: Vec<Arc<UdpListener>>,
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
            None if t.broadcast => {
                for s in &self.sockets {
                    if let Err(e) = s.broadcast(&t.payload, t.radius).await {
                        tracing::debug!(error = %e, "multicast send failed");
                    }
                }
            }
            None => {}
        }
    }
}
