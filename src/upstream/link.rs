//! One upstream MQTT connection as a task: connect (failover over the
//! addresses, reconnect with backoff), keep it alive with PINGREQ whatever
//! the sensor behind it does, write what the router sends and report what
//! the upstream broker sends.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bridge::backoff::Backoff;
use crate::bridge::link::{LinkError, connect, encode, spawn_reader};
use crate::bridge::transport::{BoxStream, Connector};
use crate::mqtt::codec::{Connect, Disconnect, Packet};

/// Identifies one upstream connection inside the upstream task.
pub type LinkId = u64;

/// Longest time one write to the upstream may take before the link is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How a link connects and how it retries.
#[derive(Debug, Clone)]
pub struct LinkSpec {
    /// This link.
    pub id: LinkId,
    /// `host:port` addresses tried in order.
    pub addresses: Arc<[String]>,
    /// TCP or TLS.
    pub connector: Connector,
    /// The CONNECT sent on every (re)connection.
    pub connect: Connect,
    /// Reconnect delays.
    pub backoff: (Duration, Duration),
    /// Give up (and report [`LinkEvent::Refused`]) when the very first attempt
    /// fails: a sensor waiting for CONNACK must hear now, not after an outage.
    pub fail_fast: bool,
}

/// What the router asks of a link.
#[derive(Debug)]
pub enum LinkCmd {
    /// Write a packet; dropped while the link is down (the router resends
    /// what matters when it hears [`LinkEvent::Up`]).
    Send(Box<Packet>),
    /// End the link: with a DISCONNECT, or by dropping the connection so the
    /// upstream broker publishes the will [MQTT-3.1.2-8]. The sender, if
    /// any, is dropped once the link has ended.
    Close(Option<Disconnect>, Option<oneshot::Sender<()>>),
}

/// What a link reports to the router.
#[derive(Debug)]
pub enum LinkEvent {
    /// CONNACK accepted the session.
    Up {
        /// The link.
        id: LinkId,
        /// Whether the upstream kept the session.
        session_present: bool,
        /// The upstream's Receive Maximum (MQTT 5).
        receive_maximum: Option<u16>,
    },
    /// A packet from the upstream broker.
    Packet(LinkId, Box<Packet>),
    /// The connection was lost; the link is reconnecting.
    Down(LinkId, String),
    /// The first attempt failed with `fail_fast`: the link has ended.
    Refused(LinkId, String),
}

/// The router's handle on a link task.
#[derive(Debug, Clone)]
pub struct LinkHandle {
    tx: mpsc::UnboundedSender<LinkCmd>,
}

impl LinkHandle {
    /// Queues a packet for the upstream.
    pub fn send(&self, packet: Packet) {
        let _ = self.tx.send(LinkCmd::Send(Box::new(packet)));
    }

    /// Ends the link.
    pub fn close(&self, disconnect: Option<Disconnect>) {
        let _ = self.tx.send(LinkCmd::Close(disconnect, None));
    }

    /// Ends the link; `done` is dropped once it has (its DISCONNECT written).
    pub fn close_then(&self, disconnect: Option<Disconnect>, done: oneshot::Sender<()>) {
        // A link already gone drops the command, and `done` with it.
        let _ = self.tx.send(LinkCmd::Close(disconnect, Some(done)));
    }
}

/// Starts the link task.
pub fn spawn_link(
    spec: LinkSpec,
    events: mpsc::Sender<LinkEvent>,
    shutdown: CancellationToken,
) -> LinkHandle {
    spawn_link_after(spec, None, events, shutdown)
}

/// Starts the link task, connecting only once `after` resolves or is
/// dropped: the same identity's previous connection must be gone first, or
/// the broker would see a takeover instead of a DISCONNECT.
pub fn spawn_link_after(
    spec: LinkSpec,
    after: Option<oneshot::Receiver<()>>,
    events: mpsc::Sender<LinkEvent>,
    shutdown: CancellationToken,
) -> LinkHandle {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        if let Some(after) = after {
            tokio::select! {
                _ = after => {}
                () = shutdown.cancelled() => return,
            }
        }
        run_link(spec, rx, events, shutdown).await;
    });
    LinkHandle { tx }
}

/// How a connected period ended.
enum Ended {
    /// The router closed the link or everything is shutting down.
    Closed,
    /// The connection failed; reconnect.
    Lost(String),
}

async fn run_link(
    spec: LinkSpec,
    mut rx: mpsc::UnboundedReceiver<LinkCmd>,
    events: mpsc::Sender<LinkEvent>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(spec.backoff.0, spec.backoff.1);
    let mut first = true;
    let timeout = spec.connector_timeout();
    loop {
        let attempt = tokio::select! {
            r = connect_any(&spec, timeout) => r,
            () = shutdown.cancelled() => return,
        };
        match attempt {
            Ok(c) => {
                first = false;
                backoff.reset();
                let up = LinkEvent::Up {
                    id: spec.id,
                    session_present: c.connack.session_present,
                    receive_maximum: c.connack.properties.receive_maximum,
                };
                if events.send(up).await.is_err() {
                    return;
                }
                let version = spec.connect.protocol;
                let (mut reader, task) = spawn_reader(c.read, version);
                let ended = serve(&spec, c.write, &mut reader, &mut rx, &events, &shutdown).await;
                task.abort();
                match ended {
                    Ended::Closed => return,
                    Ended::Lost(why) => {
                        if events.send(LinkEvent::Down(spec.id, why)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            Err(e) => {
                if first && spec.fail_fast {
                    let _ = events
                        .send(LinkEvent::Refused(spec.id, e.to_string()))
                        .await;
                    return;
                }
                first = false;
                tracing::debug!(link = spec.id, client_id = %spec.connect.client_id, error = %e, "upstream connection attempt failed");
            }
        }
        let delay = backoff.next_delay(rand::random::<f64>());
        // Commands while down: a close ends the link, anything else is stale.
        let wait = tokio::time::sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                () = shutdown.cancelled() => return,
                cmd = rx.recv() => match cmd {
                    None | Some(LinkCmd::Close(..)) => return,
                    Some(LinkCmd::Send(_)) => {}
                },
            }
        }
    }
}

impl LinkSpec {
    fn connector_timeout(&self) -> Duration {
        self.connector.timeout()
    }
}

async fn connect_any(
    spec: &LinkSpec,
    timeout: Duration,
) -> Result<crate::bridge::link::Connected, LinkError> {
    let mut last = LinkError::Closed;
    for address in spec.addresses.iter() {
        match connect(&spec.connector, address, &spec.connect, false, timeout).await {
            Ok(c) => return Ok(c),
            // A refusal is the broker's answer about this identity: another
            // address of the same cluster would answer the same.
            Err(e @ LinkError::Refused(_)) => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn write(
    w: &mut WriteHalf<BoxStream>,
    packet: &Packet,
    spec: &LinkSpec,
) -> Result<(), String> {
    let bytes = encode(packet, spec.connect.protocol).map_err(|e| e.to_string())?;
    match tokio::time::timeout(WRITE_TIMEOUT, w.write_all(&bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("write timed out".into()),
    }
}

async fn serve(
    spec: &LinkSpec,
    mut w: WriteHalf<BoxStream>,
    reader: &mut mpsc::Receiver<Result<Packet, LinkError>>,
    rx: &mut mpsc::UnboundedReceiver<LinkCmd>,
    events: &mpsc::Sender<LinkEvent>,
    shutdown: &CancellationToken,
) -> Ended {
    let keep_alive = Duration::from_secs(u64::from(spec.connect.keep_alive.max(1)));
    // [MQTT-3.1.2-24]: the client must send something within the keep-alive;
    // pinging at 3/4 of it leaves room for a slow loop.
    let mut ping = tokio::time::interval(keep_alive * 3 / 4);
    ping.tick().await;
    let mut awaiting_pong: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                let _ = write(&mut w, &Packet::Disconnect(Disconnect::default()), spec).await;
                return Ended::Closed;
            }
            cmd = rx.recv() => match cmd {
                Some(LinkCmd::Send(p)) => {
                    if let Err(e) = write(&mut w, &p, spec).await {
                        return Ended::Lost(e);
                    }
                }
                Some(LinkCmd::Close(d, _done)) => {
                    if let Some(d) = d {
                        let _ = write(&mut w, &Packet::Disconnect(d), spec).await;
                        let _ = w.shutdown().await;
                    }
                    // Without DISCONNECT the socket just closes: the upstream
                    // treats that as a network failure and publishes the will.
                    return Ended::Closed;
                }
                None => return Ended::Closed,
            },
            p = reader.recv() => match p {
                Some(Ok(Packet::PingResp)) => awaiting_pong = None,
                Some(Ok(p)) => {
                    if events.send(LinkEvent::Packet(spec.id, Box::new(p))).await.is_err() {
                        return Ended::Closed;
                    }
                }
                Some(Err(e)) => return Ended::Lost(e.to_string()),
                None => return Ended::Lost("reader ended".into()),
            },
            _ = ping.tick() => {
                if let Some(since) = awaiting_pong
                    && since.elapsed() >= keep_alive
                {
                    return Ended::Lost("no PINGRESP within the keep-alive".into());
                }
                if let Err(e) = write(&mut w, &Packet::PingReq, spec).await {
                    return Ended::Lost(e);
                }
                awaiting_pong.get_or_insert_with(tokio::time::Instant::now);
            }
        }
    }
}
