//! The tokio task of one MQTT connection: bytes from the socket go through the
//! codec into the sans-IO [`MqttSession`]; its packets are encoded back to the
//! socket and its commands go to the broker core. Generic over the stream, so
//! TCP, TLS and WebSocket connections share it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, field, info, info_span, warn};

use super::codec::{DecodeError, Packet, decode_packet, encode_packet};
use super::session::{MqttSession, SessionSettings};
use crate::auth::Authorizer;
use crate::broker::{BrokerClosed, BrokerHandle, Command, ConnId, Metrics, Outbox, TrySendError};
use crate::limits::{Limit, PublishThrottle};

/// How long a connection waits for the core's goodbye at shutdown.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_millis(200);
/// Read buffer growth step for a busy connection.
const READ_CHUNK: usize = 4096;
/// Read buffer of a connection that is waiting for its next packet: most idle
/// connections' next packet is a PINGREQ, and 10,000 idle connections would
/// otherwise hold 40 MB of empty read buffers.
const IDLE_READ: usize = 256;
/// Longest a publisher stops reading for a full subscriber queue before it
/// reads once more: keeps its keep-alive PINGREQs flowing and breaks a cycle
/// of clients each waiting for the other's acknowledgements.
const PAUSE_MAX: std::time::Duration = std::time::Duration::from_secs(1);

/// Everything a connection needs from the rest of the process.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    /// The broker core.
    pub broker: BrokerHandle,
    /// Traffic counters.
    pub metrics: Arc<Metrics>,
    /// Protocol settings.
    pub settings: SessionSettings,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Password and ACL rules.
    pub authorizer: Arc<Authorizer>,
    /// User name fixed by the transport (TLS client certificate identity);
    /// it replaces the CONNECT user name and needs no password.
    pub identity: Option<Arc<str>>,
    /// PUBLISH packets per second before reads are slowed; 0 = unlimited.
    pub max_publish_rate: u32,
}

/// Serves one client connection until it ends.
pub async fn run_connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: &'static str,
    ctx: ConnectionContext,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = info_span!("mqtt", transport, %peer, client_id = field::Empty);
    serve(stream, peer, ctx).instrument(span).await;
}

async fn serve<S>(stream: S, peer: SocketAddr, ctx: ConnectionContext)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (outbox, mut rx) = Outbox::queue();
    let conn = ConnId::next();
    let max_packet = ctx.settings.max_packet_size;
    let flow = outbox.clone();
    let mut session = MqttSession::new(conn, outbox, ctx.settings.clone(), Instant::now());
    if !ctx.authorizer.is_open() {
        session.set_authorizer(ctx.authorizer.clone());
    }
    if ctx.identity.is_some() {
        session.set_username(ctx.identity.clone());
    }
    let mut rbuf = BytesMut::new();
    let mut busy = false;
    let mut wbuf = BytesMut::new();
    let mut announced = false;
    let mut stop_at: Option<Instant> = None;
    let mut paused_until: Option<Instant> = None;
    let mut throttle = (ctx.max_publish_rate > 0)
        .then(|| PublishThrottle::new(ctx.max_publish_rate, Instant::now()));
    loop {
        // Commands first, so the core sees a client's packets in order before
        // anything it says back is written.
        while let Some(cmd) = session.poll_command() {
            if send_command(&ctx.broker, cmd).await.is_err() {
                session.connection_lost("broker shutting down");
                break;
            }
        }
        while let Some(packet) = session.poll_packet() {
            if let Err(e) = encode_packet(&packet, session.version(), &mut wbuf) {
                warn!("cannot encode {}: {e}", packet.name());
            }
        }
        if !announced && let Some(id) = session.client_id() {
            announced = true;
            tracing::Span::current().record("client_id", field::display(id));
            info!(
                "New client connected from {peer} as {id} (p{}, k{}).",
                session.version().level(),
                session.keep_alive()
            );
        }
        if !wbuf.is_empty() {
            let n = wbuf.len();
            // Flush too: TLS and WebSocket streams buffer what they are given.
            let written = match wr.write_all(&wbuf).await {
                Ok(()) => wr.flush().await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                session.connection_lost(&format!("write failed: {e}"));
            }
            wbuf.clear();
            ctx.metrics.add_sent(n);
        }
        if session.is_closing() {
            // Flush what the session queued last (e.g. a DISCONNECT) and drain
            // its final commands (e.g. the will) before closing.
            while let Some(cmd) = session.poll_command() {
                let _ = send_command(&ctx.broker, cmd).await;
            }
            while let Some(packet) = session.poll_packet() {
                let _ = encode_packet(&packet, session.version(), &mut wbuf);
            }
            if !wbuf.is_empty() && wr.write_all(&wbuf).await.is_ok() {
                let _ = wr.flush().await;
            }
            let _ = wr.shutdown().await;
            break;
        }
        // An idle connection holds no write buffer; a busy one keeps a
        // modest one between writes.
        if wbuf.capacity() > READ_CHUNK * 4 || (!busy && wbuf.capacity() > 0) {
            wbuf = BytesMut::new();
        }
        if flow.is_blocked() {
            paused_until.get_or_insert_with(|| Instant::now() + PAUSE_MAX);
        }
        let deadline = match (session.poll_timeout(), stop_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        tokio::select! {
            biased;
            event = rx.recv() => {
                let now = Instant::now();
                match event {
                    Some((_, ev)) => {
                        session.handle_outbound(ev, now);
                        while let Ok((_, ev)) = rx.try_recv() {
                            session.handle_outbound(ev, now);
                        }
                    }
                    None => session.connection_lost("broker shutting down"),
                }
            }
            read = read_paced(&mut rd, &mut rbuf, busy, throttle.and_then(|t| t.resume_at()), &flow, paused_until) => {
                let now = Instant::now();
                paused_until = None;
                match read {
                    Ok(0) => session.connection_lost("closed by client"),
                    Ok(n) => {
                        ctx.metrics.add_received(n);
                        session.peek_connect(&rbuf);
                        loop {
                            match decode_packet(&mut rbuf, session.version(), max_packet) {
                                Ok(Some(p)) => {
                                    if let (Some(t), Packet::Publish(_)) = (&mut throttle, &p)
                                        && t.on_publish(now)
                                    {
                                        ctx.metrics.limits.hit(Limit::PublishRate);
                                        info!(
                                            "Client {} from {peer} publishes above max_publish_rate ({}/s); reading slowed.",
                                            session.client_id().map_or("?", |c| &**c),
                                            ctx.max_publish_rate
                                        );
                                    }
                                    session.handle_packet(p, now);
                                    if session.is_closing() { break; }
                                }
                                Ok(None) => break,
                                Err(e) => {
                                    if matches!(e, DecodeError::PacketTooLarge { .. }) {
                                        ctx.metrics.limits.hit(Limit::MaxPacketSize);
                                    }
                                    session.handle_decode_error(&e);
                                    break;
                                }
                            }
                        }
                        // A short read that left nothing pending means the peer
                        // went quiet: give the buffer back, so that the wait for
                        // its next packet holds IDLE_READ bytes, not READ_CHUNK.
                        busy = n >= IDLE_READ;
                        if rbuf.is_empty() && (!busy || rbuf.capacity() > READ_CHUNK * 4) {
                            rbuf = BytesMut::new();
                        }
                    }
                    Err(e) => session.connection_lost(&format!("read failed: {e}")),
                }
            }
            () = sleep_until(deadline) => {
                let now = Instant::now();
                if stop_at.is_some_and(|at| now >= at) {
                    session.connection_lost("server shutting down");
                } else {
                    let connecting = session.client_id().is_none() && !session.is_closing();
                    session.handle_timeout(now);
                    if connecting && session.is_closing() {
                        ctx.metrics.limits.hit(Limit::ConnectTimeout);
                    }
                }
            }
            () = ctx.shutdown.cancelled(), if stop_at.is_none() => {
                // The core says goodbye (DISCONNECT 0x8B) to every attached
                // client; give that a moment, then close whatever is left.
                stop_at = Some(Instant::now() + SHUTDOWN_GRACE);
            }
        }
    }
    let reason = session
        .close_reason()
        .map_or("closed", |c| c.reason.as_str())
        .to_string();
    let graceful = session.close_reason().is_some_and(|c| c.graceful);
    match session.client_id() {
        Some(id) if graceful => info!("Client {id} disconnected."),
        Some(id) => info!("Client {id} closed its connection: {reason}."),
        None => warn!("Connection from {peer} closed before CONNECT completed: {reason}."),
    }
    debug!(conn = conn.0, "connection task ends");
}

/// Sends a command to the core; only when its queue is full does the
/// connection wait, in a boxed future, so that the connection task does not
/// reserve the waiting future's ~700 bytes while idle.
async fn send_command(broker: &BrokerHandle, cmd: Command) -> Result<(), BrokerClosed> {
    match broker.try_send(cmd) {
        Ok(()) => Ok(()),
        Err(TrySendError::Full(cmd)) => Box::pin(broker.send(cmd)).await,
        Err(TrySendError::Closed(closed)) => Err(closed),
    }
}

/// Reads after `resume_at` (publish-rate pause) and, while the core blocks
/// this publisher for a full subscriber queue, after it is unblocked or
/// `paused_until` passes; TCP flow control then slows the client. The
/// caller's `select!` keeps writing deliveries and acknowledgements meanwhile.
async fn read_paced<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    busy: bool,
    resume_at: Option<Instant>,
    flow: &Outbox,
    paused_until: Option<Instant>,
) -> std::io::Result<usize> {
    if let Some(at) = resume_at {
        tokio::time::sleep_until(at.into()).await;
    }
    if let Some(until) = paused_until {
        let _ = tokio::time::timeout_at(until.into(), flow.unblocked()).await;
    }
    read_some(rd, buf, busy).await
}

async fn read_some<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    busy: bool,
) -> std::io::Result<usize> {
    let step = if busy { READ_CHUNK } else { IDLE_READ };
    if buf.capacity() - buf.len() < step / 4 {
        buf.reserve(step);
    }
    rd.read_buf(buf).await
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
