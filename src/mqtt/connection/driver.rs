//! The connection future: one hand-written state machine per client that
//! moves bytes between its stream and its [`MqttSession`], and commands and
//! events between the session and the broker core.
//!
//! Each poll runs the same steps until nothing can progress: finish a command
//! waiting for room in the core's queue, send the session's commands, encode
//! its packets, write them, then wait on (in priority order) the core's
//! events, the socket, one timer and — until the client is connected — the
//! process shutdown. Commands go out before anything the core says back is
//! written, so the core sees a client's packets in order.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::time::Sleep;
use tokio_util::sync::WaitForCancellationFutureOwned;
use tracing::{Span, debug, field, info, warn};

use super::ConnectionContext;
use super::stream::ConnStream;
use crate::broker::{BrokerClosed, ConnId, Outbox, OutboxQueue, Sent, TrySendError};
use crate::limits::{Limit, PublishThrottle};
use crate::mqtt::codec::{DecodeError, Packet, decode_packet, encode_packet};
use crate::mqtt::session::MqttSession;

/// How long a connection waits for the core's goodbye at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(200);
/// Read buffer growth step for a busy connection.
const READ_CHUNK: usize = 4096;
/// Read buffer of a connection that is waiting for its next packet on a
/// stream that cannot report readiness without reading (TLS, WebSocket).
const IDLE_READ: usize = 256;
/// How long a connection the server closes keeps reading (and discarding)
/// after its last packet: packets the client sent before it saw that last
/// packet then meet a half-closed socket instead of a reset, so the client
/// still reads the DISCONNECT's reason (lingering close).
const LINGER: Duration = Duration::from_millis(500);
/// Most a lingering connection reads before it closes regardless.
const LINGER_MAX_BYTES: usize = 64 * 1024;
/// Longest a publisher stops reading for a full subscriber queue before it
/// reads once more: keeps its keep-alive PINGREQs flowing and breaks a cycle
/// of clients each waiting for the other's acknowledgements.
const PAUSE_MAX: Duration = Duration::from_secs(1);

type SendFuture = Pin<Box<dyn Future<Output = Result<(), BrokerClosed>> + Send>>;

/// One client connection, polled by its tokio task until it ends.
pub(super) struct Connection<S> {
    stream: S,
    session: MqttSession,
    events: OutboxQueue,
    ctx: Arc<ConnectionContext>,
    peer: SocketAddr,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// A command waiting for room in the core's queue; nothing else moves
    /// until it is taken, as the core must see commands in order.
    sending: Option<SendFuture>,
    /// A command was applied in this task since the last round (the core
    /// was idle; see `SharedCore`).
    applied: bool,
    /// The one timer: the session's deadline, the shutdown grace, or the end
    /// of a read pause — whichever is first. Dropped while none is due.
    timer: Option<Pin<Box<Sleep>>>,
    /// Until the client is connected; after that the core says goodbye at
    /// shutdown (DISCONNECT 0x8B) like any other event.
    shutdown: Option<Pin<Box<WaitForCancellationFutureOwned>>>,
    throttle: Option<Box<PublishThrottle>>,
    stop_at: Option<Instant>,
    paused_until: Option<Instant>,
    busy: bool,
    announced: bool,
    /// The session has closed: flush, shut the stream down, end.
    closing: bool,
    /// The stream is shut down for writing; what is left is the linger.
    shut: bool,
    /// The peer closed or failed: nothing to linger for.
    peer_gone: bool,
    /// Bytes discarded while lingering.
    lingered: usize,
}

impl<S: ConnStream> Connection<S> {
    /// A connection that has not yet received CONNECT.
    pub(super) fn new(stream: S, peer: SocketAddr, ctx: Arc<ConnectionContext>) -> Connection<S> {
        let (outbox, events) = Outbox::queue();
        let now = Instant::now();
        let mut session = MqttSession::new(ConnId::next(), outbox, ctx.settings.clone(), now);
        if !ctx.authorizer.is_open() {
            session.set_authorizer(ctx.authorizer.clone());
        }
        if ctx.identity.is_some() {
            session.set_username(ctx.identity.clone());
        }
        let throttle = (ctx.max_publish_rate > 0)
            .then(|| Box::new(PublishThrottle::new(ctx.max_publish_rate, now)));
        let shutdown = Some(Box::pin(ctx.shutdown.clone().cancelled_owned()));
        Connection {
            stream,
            session,
            events,
            ctx,
            peer,
            rbuf: BytesMut::new(),
            wbuf: BytesMut::new(),
            sending: None,
            applied: false,
            timer: None,
            shutdown,
            throttle,
            stop_at: None,
            paused_until: None,
            busy: false,
            announced: false,
            closing: false,
            shut: false,
            peer_gone: false,
            lingered: 0,
        }
    }

    /// Sends the session's commands to the core. Pending only while a
    /// command waits for room in the core's queue.
    fn poll_commands(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            if let Some(f) = self.sending.as_mut() {
                let sent = ready!(f.as_mut().poll(cx));
                self.sending = None;
                if sent.is_err() {
                    self.session.connection_lost("broker shutting down");
                    if !self.closing {
                        return Poll::Ready(());
                    }
                }
            }
            let Some(cmd) = self.session.poll_command() else {
                return Poll::Ready(());
            };
            // A packet read while the client was idle (a short read) is
            // applied in this task if the core is idle too: one task switch
            // less on the way to its subscribers. A busy client's packets
            // go to the core task, which applies them in batches while this
            // task reads on, and lets the subscribers' tasks take turns
            // with the publishers instead of behind all of them.
            let sent = if self.busy {
                self.ctx.broker.try_enqueue(cmd)
            } else {
                self.ctx.broker.try_send(cmd)
            };
            match sent {
                Ok(Sent::Applied) => self.applied = true,
                Ok(Sent::Queued) => {}
                Err(TrySendError::Full(cmd)) => {
                    // Only a full queue costs a boxed future.
                    let broker = self.ctx.broker.clone();
                    self.sending = Some(Box::pin(async move { broker.send(cmd).await }));
                }
                Err(TrySendError::Closed(_)) => {
                    self.session.connection_lost("broker shutting down");
                    if !self.closing {
                        return Poll::Ready(());
                    }
                }
            }
        }
    }

    fn encode_packets(&mut self) {
        while let Some(packet) = self.session.poll_packet() {
            if let Err(e) = encode_packet(&packet, self.session.version(), &mut self.wbuf) {
                warn!("cannot encode {}: {e}", packet.name());
            }
        }
    }

    fn announce(&mut self) {
        if self.announced {
            return;
        }
        let Some(id) = self.session.client_id() else {
            return;
        };
        self.announced = true;
        // From here on the core's goodbye reaches this connection at shutdown.
        self.shutdown = None;
        // The connection runs inside its span (`Instrument`).
        Span::current().record("client_id", field::display(id));
        info!(
            "New client connected from {} as {id} (p{}, k{}).",
            self.peer,
            self.session.version().level(),
            self.session.keep_alive()
        );
    }

    /// Writes and flushes the write buffer; Pending while the peer is not
    /// taking bytes (nothing else moves meanwhile, as the order of packets
    /// on the wire is the order the session produced them).
    fn poll_write_out(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while self.wbuf.has_remaining() {
            let n = ready!(Pin::new(&mut self.stream).poll_write(cx, &self.wbuf))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.wbuf.advance(n);
            self.ctx.metrics.add_sent(n);
        }
        // Flush too: TLS and WebSocket streams buffer what they are given.
        ready!(Pin::new(&mut self.stream).poll_flush(cx))?;
        // An idle connection holds no write buffer; a busy one keeps a modest one.
        if !self.busy || self.wbuf.capacity() > READ_CHUNK * 4 {
            self.wbuf = BytesMut::new();
        } else {
            self.wbuf.clear();
        }
        Poll::Ready(Ok(()))
    }

    /// The closing steps: last commands (e.g. the will), last packets (e.g.
    /// a DISCONNECT), then shut the stream down. Errors no longer matter.
    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if !self.shut {
            ready!(self.poll_commands(cx));
            self.encode_packets();
            if ready!(self.poll_write_out(cx)).is_err() {
                self.wbuf = BytesMut::new();
                self.peer_gone = true;
            }
            let _ = ready!(Pin::new(&mut self.stream).poll_shutdown(cx));
            self.shut = true;
            // Not while the process stops: shutdown has its own grace.
            if self.peer_gone || self.stop_at.is_some() {
                return Poll::Ready(());
            }
            self.stop_at = Some(Instant::now() + LINGER);
            self.rbuf = BytesMut::new();
        }
        self.poll_linger(cx)
    }

    /// Reads and discards until the peer closes, `LINGER` passes or
    /// `LINGER_MAX_BYTES` arrive, whichever is first.
    fn poll_linger(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut scratch = [0u8; 1024];
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.stream).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {
                    self.lingered += buf.filled().len();
                    if self.lingered >= LINGER_MAX_BYTES {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Pending => break,
            }
        }
        self.poll_timer(cx, self.stop_at)
    }

    /// When reading must wait: a publish-rate pause, or the core holding
    /// this publisher back for a full subscriber queue (TCP flow control
    /// then slows the client; deliveries and acknowledgements still go out).
    /// The clock is read only when a pause is in force, not on every round.
    fn read_gate(&mut self, cx: &mut Context<'_>) -> Option<Instant> {
        if let Some(at) = self.throttle.as_ref().and_then(|t| t.resume_at())
            && Instant::now() < at
        {
            return Some(at);
        }
        let flow = self.session.outbox();
        if flow.is_blocked() {
            let now = Instant::now();
            let until = *self.paused_until.get_or_insert(now + PAUSE_MAX);
            if now < until && flow.poll_unblocked(cx).is_pending() {
                return Some(until);
            }
        }
        None
    }

    /// Reads what the stream has: Ready(Some(n)) after a read, Ready(None)
    /// once the stream has nothing now, Ready with an error or EOF (0).
    fn poll_read_in(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.rbuf.capacity() == 0 {
            // Idle: ask for readiness before taking a buffer.
            ready!(self.stream.poll_read_ready(cx))?;
        }
        let step = if self.busy { READ_CHUNK } else { IDLE_READ };
        if self.rbuf.capacity() - self.rbuf.len() < step / 4 {
            self.rbuf.reserve(step);
        }
        let read = tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.rbuf);
        if read.is_pending() && self.rbuf.is_empty() {
            // Nothing came after all: give the buffer back while waiting.
            self.rbuf = BytesMut::new();
        }
        read
    }

    /// Decodes and handles every whole packet read so far.
    fn handle_read(&mut self, n: usize, now: Instant) {
        self.paused_until = None;
        self.ctx.metrics.add_received(n);
        self.session.peek_connect(&self.rbuf);
        self.handle_buffered(now);
        // A short read that left nothing pending means the peer went quiet:
        // give the buffer back, so that the wait for its next packet holds none.
        self.busy = n >= IDLE_READ;
        if self.rbuf.is_empty() && (!self.busy || self.rbuf.capacity() > READ_CHUNK * 4) {
            self.rbuf = BytesMut::new();
        }
    }

    /// Decodes and handles the whole packets in the read buffer, stopping at
    /// a QoS 1 PUBLISH the Receive Maximum has no room for yet (it is taken
    /// once the core's PUBACKs arrive).
    fn handle_buffered(&mut self, now: Instant) {
        loop {
            if self.session.holds_back_publish(&self.rbuf) {
                break;
            }
            let max_packet = self.ctx.settings.max_packet_size;
            match decode_packet(&mut self.rbuf, self.session.version(), max_packet) {
                Ok(Some(p)) => {
                    if let (Some(t), Packet::Publish(_)) = (&mut self.throttle, &p)
                        && t.on_publish(now)
                    {
                        self.ctx.metrics.limits.hit(Limit::PublishRate);
                        info!(
                            "Client {} from {} publishes above max_publish_rate ({}/s); reading slowed.",
                            self.session.client_id().map_or("?", |c| &**c),
                            self.peer,
                            self.ctx.max_publish_rate
                        );
                    }
                    self.session.handle_packet(p, now);
                    if self.session.is_closing() {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    if matches!(e, DecodeError::PacketTooLarge { .. }) {
                        self.ctx.metrics.limits.hit(Limit::MaxPacketSize);
                    }
                    self.session.handle_decode_error(&e);
                    break;
                }
            }
        }
    }

    /// Arms the one timer for `deadline` (or drops it) and polls it.
    fn poll_timer(&mut self, cx: &mut Context<'_>, deadline: Option<Instant>) -> Poll<()> {
        let Some(at) = deadline else {
            self.timer = None;
            return Poll::Pending;
        };
        let at = tokio::time::Instant::from_std(at);
        match self.timer.as_mut() {
            // A keep-alive deadline moves later with every packet: a timer
            // armed for an earlier instant stays, fires early once and is
            // re-armed then, instead of being re-registered per packet.
            Some(t) if t.deadline() <= at && !t.is_elapsed() => {}
            Some(t) => t.as_mut().reset(at),
            None => self.timer = Some(Box::pin(tokio::time::sleep_until(at))),
        }
        match self.timer.as_mut() {
            Some(t) => t.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }

    fn on_timer(&mut self, now: Instant) {
        if self.stop_at.is_some_and(|at| now >= at) {
            self.session.connection_lost("server shutting down");
            return;
        }
        if self.session.poll_timeout().is_some_and(|at| now >= at) {
            let connecting = self.session.client_id().is_none() && !self.session.is_closing();
            self.session.handle_timeout(now);
            if connecting && self.session.is_closing() {
                self.ctx.metrics.limits.hit(Limit::ConnectTimeout);
            }
        }
    }

    /// One round: Ready if something happened and the caller should go
    /// round again, Pending once every source is waiting.
    fn poll_round(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        ready!(self.poll_commands(cx));
        if std::mem::take(&mut self.applied) && !self.events.is_empty() {
            // A command applied here answered this connection (a PUBACK)
            // and may have woken subscribers: let them run first, so they
            // write the message before this task writes the answer, as
            // Mosquitto delivers before it acknowledges. On loopback the
            // answer's write wakes the client's process and would hold the
            // delivery up by 10-25 µs.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.encode_packets();
        self.announce();
        if self.wbuf.has_remaining()
            && let Err(e) = ready!(self.poll_write_out(cx))
        {
            self.peer_gone = true;
            self.session.connection_lost(&format!("write failed: {e}"));
            self.wbuf = BytesMut::new();
        }
        if self.session.is_closing() {
            self.closing = true;
            return Poll::Ready(());
        }

        // The core's events first (biased, as deliveries free its queues).
        match self.events.poll_recv(cx) {
            Poll::Ready(Some((_, ev))) => {
                let now = Instant::now();
                self.session.handle_outbound(ev, now);
                while let Ok((_, ev)) = self.events.try_recv() {
                    self.session.handle_outbound(ev, now);
                }
                // PUBACKs may have made room for a publish held back.
                if !self.rbuf.is_empty() && !self.session.is_closing() {
                    self.handle_buffered(now);
                }
                return Poll::Ready(());
            }
            Poll::Ready(None) => {
                self.session.connection_lost("broker shutting down");
                return Poll::Ready(());
            }
            Poll::Pending => {}
        }

        // A publish held back for the Receive Maximum waits for the core's
        // PUBACKs (an event, above); nothing more is read meanwhile.
        let held = self.session.holds_back_publish(&self.rbuf);
        let gate = if held { None } else { self.read_gate(cx) };
        if gate.is_none() && !held {
            match self.poll_read_in(cx) {
                Poll::Ready(Ok(0)) => {
                    self.peer_gone = true;
                    self.session.connection_lost("closed by client");
                    return Poll::Ready(());
                }
                Poll::Ready(Ok(n)) => {
                    self.handle_read(n, Instant::now());
                    return Poll::Ready(());
                }
                Poll::Ready(Err(e)) => {
                    self.peer_gone = true;
                    self.session.connection_lost(&format!("read failed: {e}"));
                    return Poll::Ready(());
                }
                Poll::Pending => {}
            }
        }

        let deadline = [self.session.poll_timeout(), self.stop_at, gate]
            .into_iter()
            .flatten()
            .min();
        if self.poll_timer(cx, deadline).is_ready() {
            self.on_timer(Instant::now());
            return Poll::Ready(());
        }

        if let Some(s) = self.shutdown.as_mut()
            && s.as_mut().poll(cx).is_ready()
        {
            // The core says goodbye (DISCONNECT 0x8B) to every attached
            // client; give that a moment, then close whatever is left.
            self.shutdown = None;
            self.stop_at = Some(Instant::now() + SHUTDOWN_GRACE);
            return Poll::Ready(());
        }
        Poll::Pending
    }

    fn log_end(&self) {
        let session = &self.session;
        let reason = session
            .close_reason()
            .map_or("closed", |c| c.reason.as_str());
        let graceful = session.close_reason().is_some_and(|c| c.graceful);
        match session.client_id() {
            Some(id) if graceful => info!("Client {id} disconnected."),
            Some(id) => info!("Client {id} closed its connection: {reason}."),
            None => warn!(
                "Connection from {} closed before CONNECT completed: {reason}.",
                self.peer
            ),
        }
        debug!("connection task ends");
    }
}

/// What a connection holds between polls (for tests).
#[cfg(test)]
#[derive(Debug)]
pub(super) struct Footprint {
    pub read_buffer: usize,
    pub write_buffer: usize,
    /// The armed timer's deadline.
    pub timer: Option<tokio::time::Instant>,
    pub shutdown_wait: bool,
    pub sending: bool,
}

#[cfg(test)]
impl<S> Connection<S> {
    pub(super) fn idle_footprint(&self) -> Footprint {
        Footprint {
            read_buffer: self.rbuf.capacity(),
            write_buffer: self.wbuf.capacity(),
            timer: self.timer.as_ref().map(|t| t.deadline()),
            shutdown_wait: self.shutdown.is_some(),
            sending: self.sending.is_some(),
        }
    }
}

impl<S: ConnStream> Future for Connection<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if this.closing {
                ready!(this.poll_close(cx));
                this.log_end();
                return Poll::Ready(());
            }
            ready!(this.poll_round(cx));
        }
    }
}
