//! The task that runs one bridge: a client of the local broker core on one
//! side, an MQTT client of the remote broker on the other, and the queue in
//! between. It reconnects with backoff, fails over across addresses and
//! returns to the first one when it is back.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::backoff::Backoff;
use super::echo::EchoFilter;
use super::link::{self, Connected, LinkError, encode, spawn_reader};
use super::queue::{BridgeQueue, PushOutcome};
use super::rules::{TopicRule, route_in, route_out};
use super::session::{AckEffect, UpstreamSession, from_publish};
use super::transport::{BoxStream, Connector};
use crate::broker::{
    BrokerHandle, Command, ConnId, DisconnectKind, Message, Outbound, OutboxReceiver,
    PublishOutcome, SubscribeResult,
};
use crate::mqtt::codec::{
    Connect, Disconnect, Packet, ProtocolVersion, PubResponse, Publish, ReasonCode, Subscribe,
    SubscriptionOptions,
};
use crate::qos::QoS;

/// A link that stays up this long resets the reconnect backoff.
const STABLE_LINK: Duration = Duration::from_secs(10);

type Attempt = Pin<Box<dyn Future<Output = Result<(usize, Connected), ()>> + Send>>;
type Probe = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Everything a bridge task needs, prepared by [`super::spawn_bridges`].
pub struct BridgeTask {
    pub(super) name: Arc<str>,
    pub(super) addresses: Arc<[String]>,
    pub(super) connect: Connect,
    pub(super) try_private: bool,
    pub(super) rules: Vec<TopicRule>,
    pub(super) connector: Connector,
    pub(super) connect_timeout: Duration,
    pub(super) primary_retry: Duration,
    pub(super) state_topic: Option<Arc<str>>,
    pub(super) notify_remote: bool,
    pub(super) broker: BrokerHandle,
    pub(super) conn: ConnId,
    pub(super) outbox: crate::broker::Outbox,
    pub(super) local_rx: OutboxReceiver,
    pub(super) queue: Box<dyn BridgeQueue>,
    pub(super) session: UpstreamSession,
    pub(super) backoff: Backoff,
    pub(super) shutdown: CancellationToken,
}

struct Link {
    write: WriteHalf<BoxStream>,
    rx: mpsc::Receiver<Result<Packet, LinkError>>,
    reader: JoinHandle<()>,
    index: usize,
    up_since: Instant,
    last_sent: Instant,
    ping_sent: Option<Instant>,
    echo: Option<EchoFilter>,
}

enum Event {
    Shutdown,
    Local(Option<(ConnId, Outbound)>),
    Attempt(Result<(usize, Connected), ()>),
    Retry,
    Upstream(Option<Result<Packet, LinkError>>),
    KeepAlive,
    ProbeTimer,
    Probe(bool),
}

/// Runtime state of a bridge task.
struct Run {
    t: BridgeTask,
    link: Option<Link>,
    attempt: Option<Attempt>,
    retry_at: Option<tokio::time::Instant>,
    probe_at: Option<tokio::time::Instant>,
    probe: Option<Probe>,
    /// Remote QoS 2 packet ids answered by the bridge itself (echoes, unrouted).
    own_qos2: HashSet<u16>,
    dropped_qos0: u64,
    rejected: u64,
    /// Set when a write failed; the loop then tears the link down.
    broken: Option<String>,
}

fn remaining(deadline: Option<tokio::time::Instant>) -> tokio::time::Sleep {
    tokio::time::sleep_until(
        deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400)),
    )
}

/// Logs at 1, 10, 100, … so a long outage does not flood the log.
fn worth_logging(n: u64) -> bool {
    n > 0 && 10u64.pow(n.ilog10()) == n
}

impl BridgeTask {
    /// Runs the bridge until shutdown.
    pub async fn run(self) {
        let mut run = Run {
            t: self,
            link: None,
            attempt: None,
            retry_at: Some(tokio::time::Instant::now()),
            probe_at: None,
            probe: None,
            own_qos2: HashSet::new(),
            dropped_qos0: 0,
            rejected: 0,
            broken: None,
        };
        run.publish_state(false).await;
        loop {
            let event = run.next_event().await;
            let keep_going = run.handle(event).await;
            if !keep_going {
                break;
            }
            run.pump().await;
            if let Some(why) = run.broken.take() {
                run.link_lost(&why).await;
            }
        }
        run.close().await;
    }
}

impl Run {
    fn name(&self) -> &str {
        &self.t.name
    }

    fn version(&self) -> ProtocolVersion {
        self.t.session.version()
    }

    async fn next_event(&mut self) -> Event {
        let keepalive = u64::from(self.t.connect.keep_alive);
        let ping_deadline = self.link.as_ref().filter(|_| keepalive > 0).map(|l| {
            let from = l.ping_sent.unwrap_or(l.last_sent);
            tokio::time::Instant::from_std(from + Duration::from_secs(keepalive))
        });
        let link_rx = self.link.as_mut().map(|l| &mut l.rx);
        tokio::select! {
            biased;
            _ = self.t.shutdown.cancelled() => Event::Shutdown,
            ev = self.t.local_rx.recv() => Event::Local(ev),
            p = async { match link_rx { Some(rx) => rx.recv().await, None => std::future::pending().await } } => Event::Upstream(p),
            r = async { match self.attempt.as_mut() { Some(a) => a.await, None => std::future::pending().await } } => Event::Attempt(r),
            ok = async { match self.probe.as_mut() { Some(p) => p.await, None => std::future::pending().await } } => Event::Probe(ok),
            _ = remaining(self.retry_at), if self.retry_at.is_some() => Event::Retry,
            _ = remaining(ping_deadline), if ping_deadline.is_some() => Event::KeepAlive,
            _ = remaining(self.probe_at), if self.probe_at.is_some() => Event::ProbeTimer,
        }
    }

    async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Shutdown => return false,
            Event::Local(None) => return false,
            Event::Local(Some((_, ev))) => return self.on_local(ev).await,
            Event::Retry => {
                self.retry_at = None;
                self.start_attempt();
            }
            Event::Attempt(result) => {
                self.attempt = None;
                match result {
                    Ok((index, connected)) => self.on_connected(index, connected).await,
                    Err(()) => self.schedule_retry("no address of the remote broker answered"),
                }
            }
            Event::Upstream(Some(Ok(packet))) => self.on_upstream(packet).await,
            Event::Upstream(Some(Err(e))) => self.link_lost(&e.to_string()).await,
            Event::Upstream(None) => self.link_lost("reader ended").await,
            Event::KeepAlive => self.on_keepalive().await,
            Event::ProbeTimer => {
                self.probe_at = None;
                let connector = self.t.connector.clone();
                let first = self.t.addresses.first().cloned().unwrap_or_default();
                self.probe = Some(Box::pin(
                    async move { connector.connect(&first).await.is_ok() },
                ));
            }
            Event::Probe(up) => {
                self.probe = None;
                if up && self.link.as_ref().is_some_and(|l| l.index > 0) {
                    info!(
                        "bridge {}: first address {} is reachable again; moving back to it",
                        self.name(),
                        self.t.addresses.first().map_or("", String::as_str)
                    );
                    self.send(Packet::Disconnect(Disconnect::default())).await;
                    self.drop_link().await;
                    self.retry_at = Some(tokio::time::Instant::now());
                } else if self.link.is_some() {
                    self.schedule_probe();
                }
            }
        }
        true
    }

    fn start_attempt(&mut self) {
        let connector = self.t.connector.clone();
        let addresses = self.t.addresses.clone();
        let connect = self.t.connect.clone();
        let bridge_flag = self.t.try_private;
        let timeout = self.t.connect_timeout;
        let name = self.t.name.clone();
        self.attempt = Some(Box::pin(async move {
            for (i, address) in addresses.iter().enumerate() {
                let mut result =
                    link::connect(&connector, address, &connect, bridge_flag, timeout).await;
                if bridge_flag && matches!(&result, Err(e) if e.is_protocol_level_refusal()) {
                    info!(
                        "bridge {name}: {address} does not accept the bridge flag; connecting as a plain client"
                    );
                    result = link::connect(&connector, address, &connect, false, timeout).await;
                }
                match result {
                    Ok(c) => return Ok((i, c)),
                    Err(e) => warn!("bridge {name}: cannot connect to {address}: {e}"),
                }
            }
            Err(())
        }));
    }

    fn schedule_retry(&mut self, why: &str) {
        let delay = self.t.backoff.next_delay(rand::random::<f64>());
        warn!(
            "bridge {}: {why}; retrying in {:.1} s",
            self.name(),
            delay.as_secs_f64()
        );
        self.retry_at = Some(tokio::time::Instant::now() + delay);
    }

    fn schedule_probe(&mut self) {
        if !self.t.primary_retry.is_zero() && self.link.as_ref().is_some_and(|l| l.index > 0) {
            self.probe_at = Some(tokio::time::Instant::now() + self.t.primary_retry);
        }
    }

    async fn on_connected(&mut self, index: usize, c: Connected) {
        let now = Instant::now();
        let version = self.version();
        let address = self.t.addresses.get(index).cloned().unwrap_or_default();
        info!(
            "bridge {}: connected to {address} (MQTT {}, session present: {}{})",
            self.name(),
            if version.is_v5() { "5" } else { "3.1.1" },
            c.connack.session_present,
            if c.bridge_flag { ", bridge flag" } else { "" }
        );
        let (rx, reader) = spawn_reader(c.read, version);
        // With MQTT 5 No Local or Mosquitto's bridge flag the remote holds back
        // our own messages; otherwise the bridge recognises its echoes itself.
        let echo = (!version.is_v5() && !c.bridge_flag)
            .then(|| EchoFilter::new(Duration::from_secs(30), 10_000));
        self.link = Some(Link {
            write: c.write,
            rx,
            reader,
            index,
            up_since: now,
            last_sent: now,
            ping_sent: None,
            echo,
        });
        self.own_qos2.clear();
        let filters: Vec<(String, SubscriptionOptions)> = self
            .t
            .rules
            .iter()
            .filter(|r| r.is_in())
            .map(|r| {
                (
                    r.remote_filter(),
                    SubscriptionOptions {
                        qos: r.qos,
                        // [MQTT-3.8.3-3] the remote does not send our own messages back.
                        no_local: true,
                        retain_as_published: true,
                        ..SubscriptionOptions::default()
                    },
                )
            })
            .collect();
        if !filters.is_empty() {
            self.send(Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters,
                properties: Default::default(),
            }))
            .await;
        }
        let resend = self.t.session.on_connected(
            c.connack.session_present,
            c.connack.properties.receive_maximum,
            now,
        );
        for p in resend {
            self.send(p).await;
        }
        self.publish_state(true).await;
        self.schedule_probe();
    }

    /// Writes one packet; a failed write ends the link.
    async fn send(&mut self, packet: Packet) -> bool {
        let version = self.version();
        let timeout = self.t.connect_timeout;
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        let result = match encode(&packet, version) {
            Ok(bytes) => match tokio::time::timeout(timeout, link.write.write_all(&bytes)).await {
                Ok(r) => r.map_err(LinkError::from),
                Err(_) => Err(LinkError::WriteTimeout),
            },
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => {
                link.last_sent = Instant::now();
                true
            }
            Err(e) => {
                self.broken.get_or_insert_with(|| e.to_string());
                false
            }
        }
    }

    async fn drop_link(&mut self) {
        if let Some(mut link) = self.link.take() {
            link.reader.abort();
            let _ = link.write.shutdown().await;
            if link.up_since.elapsed() >= STABLE_LINK {
                self.t.backoff.reset();
            }
        }
        self.probe_at = None;
        self.probe = None;
        self.publish_state(false).await;
    }

    async fn link_lost(&mut self, why: &str) {
        if self.link.is_none() {
            return;
        }
        warn!(
            "bridge {}: connection to the remote broker lost: {why}; {} message(s) held for it",
            self.name(),
            self.t.queue.len()
        );
        self.drop_link().await;
        self.schedule_retry("reconnecting");
    }

    async fn on_keepalive(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.ping_sent.is_some() {
            self.link_lost("no answer to PINGREQ within the keep-alive")
                .await;
            return;
        }
        link.ping_sent = Some(Instant::now());
        self.send(Packet::PingReq).await;
    }

    async fn publish_state(&mut self, up: bool) {
        let Some(topic) = self.t.state_topic.clone() else {
            return;
        };
        let payload = Bytes::from_static(if up { b"1" } else { b"0" });
        let message = Message::new(topic.clone(), payload.clone(), QoS::AtLeastOnce, true);
        let _ = self
            .t
            .broker
            .send(Command::PublishInternal { message })
            .await;
        if up && self.t.notify_remote {
            self.send(Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: true,
                topic,
                packet_id: None,
                properties: Default::default(),
                payload,
            }))
            .await;
        }
    }

    /// Moves queued messages to the remote while the window allows.
    async fn pump(&mut self) {
        while self.link.is_some() && self.t.session.can_send() {
            let Some((seq, message)) = self.t.queue.next() else {
                return;
            };
            let now = Instant::now();
            if let Some(echo) = self.link.as_mut().and_then(|l| l.echo.as_mut()) {
                echo.sent(&message.topic, &message.payload, now);
            }
            let (packet, done) = self.t.session.publish(seq, message, now);
            let written = self.send(packet).await;
            if let Some(seq) = done {
                // QoS 0 is done once written, or lost with the link: at most once.
                self.t.queue.ack(seq);
            }
            if !written {
                return;
            }
        }
    }

    async fn tell_core(&mut self, command: Command) -> bool {
        self.t.broker.send(command).await.is_ok()
    }

    async fn on_local(&mut self, ev: Outbound) -> bool {
        let conn = self.t.conn;
        match ev {
            Outbound::ConnAck { .. } => {}
            Outbound::Deliver(d) => {
                self.t.outbox.delivered();
                let local_qos = d.message.qos;
                if let Some((rule, remote)) = route_out(&self.t.rules, &d.message.topic, None) {
                    let mut message = d.message.clone();
                    message.topic = Arc::from(remote);
                    message.retain = message.retain && rule.retain;
                    self.enqueue(message);
                }
                let ack = match (local_qos, d.packet_id) {
                    (QoS::AtLeastOnce, Some(packet_id)) => {
                        Some(Command::PubAck { conn, packet_id })
                    }
                    (QoS::ExactlyOnce, Some(packet_id)) => {
                        Some(Command::PubRec { conn, packet_id })
                    }
                    _ => None,
                };
                if let Some(ack) = ack {
                    return self.tell_core(ack).await;
                }
            }
            Outbound::PubRel { packet_id } => {
                return self.tell_core(Command::PubComp { conn, packet_id }).await;
            }
            // Answers to what the bridge published locally on the remote's behalf.
            Outbound::PubAck { packet_id, outcome } => {
                let reason = local_reason(outcome);
                self.send_ack(Packet::PubAck, packet_id, reason).await;
            }
            Outbound::PubRec { packet_id, outcome } => {
                let reason = local_reason(outcome);
                self.send_ack(Packet::PubRec, packet_id, reason).await;
            }
            Outbound::PubComp { packet_id, .. } => {
                self.send_ack(Packet::PubComp, packet_id, ReasonCode::Success)
                    .await;
            }
            Outbound::SubAck { results, .. } => {
                for (rule, result) in self.t.rules.iter().filter(|r| r.is_out()).zip(results) {
                    if !matches!(result, SubscribeResult::Granted(_)) {
                        error!(
                            "bridge {}: local subscription to {:?} refused: {result:?}",
                            self.t.name,
                            rule.local_filter()
                        );
                    }
                }
            }
            Outbound::UnsubAck { .. } => {}
            Outbound::Disconnect(why) => {
                debug!(
                    "bridge {}: the local broker ends the bridge: {why:?}",
                    self.t.name
                );
                return false;
            }
        }
        true
    }

    fn enqueue(&mut self, message: Message) {
        let qos = message.qos;
        match self.t.queue.push(message) {
            PushOutcome::Queued { dropped_qos0: 0 } => {}
            PushOutcome::Queued { dropped_qos0 } => {
                let before = self.dropped_qos0;
                self.dropped_qos0 += dropped_qos0 as u64;
                if (before + 1..=self.dropped_qos0).any(worth_logging) {
                    warn!(
                        "bridge {}: QoS 0 queue bound reached, oldest QoS 0 messages dropped ({} so far)",
                        self.t.name, self.dropped_qos0
                    );
                }
            }
            PushOutcome::Rejected => {
                self.rejected += 1;
                if worth_logging(self.rejected) {
                    error!(
                        "bridge {}: queue full ({} messages); new QoS {} messages are dropped ({} so far)",
                        self.t.name,
                        self.t.queue.len(),
                        qos.as_u8(),
                        self.rejected
                    );
                }
            }
        }
    }

    async fn send_ack(
        &mut self,
        kind: fn(PubResponse) -> Packet,
        packet_id: u16,
        reason: ReasonCode,
    ) {
        let mut r = PubResponse::new(packet_id);
        if self.version().is_v5() {
            r.reason = reason;
        }
        self.send(kind(r)).await;
    }

    async fn on_upstream(&mut self, packet: Packet) {
        if let Some(link) = self.link.as_mut() {
            link.ping_sent = None;
        }
        match packet {
            Packet::Publish(p) => self.on_remote_publish(p).await,
            Packet::PubAck(ack) => {
                let effect = self.t.session.on_puback(&ack);
                self.apply(effect).await;
            }
            Packet::PubRec(ack) => {
                let effect = self.t.session.on_pubrec(&ack);
                self.apply(effect).await;
            }
            Packet::PubComp(ack) => {
                let effect = self.t.session.on_pubcomp(&ack);
                self.apply(effect).await;
            }
            Packet::PubRel(r) => {
                if self.own_qos2.remove(&r.packet_id) {
                    self.send_ack(Packet::PubComp, r.packet_id, ReasonCode::Success)
                        .await;
                } else {
                    let conn = self.t.conn;
                    self.tell_core(Command::PubRel {
                        conn,
                        packet_id: r.packet_id,
                    })
                    .await;
                }
            }
            Packet::SubAck(ack) => {
                let filters = self.t.rules.iter().filter(|r| r.is_in());
                for (rule, code) in filters.zip(ack.reasons) {
                    if code as u8 >= 0x80 {
                        error!(
                            "bridge {}: the remote broker refused the subscription to {:?} (0x{:02X})",
                            self.t.name,
                            rule.remote_filter(),
                            code as u8
                        );
                    }
                }
            }
            Packet::PingResp | Packet::UnsubAck(_) => {}
            Packet::Disconnect(d) => {
                let why = format!(
                    "the remote broker sent DISCONNECT ({:?}{})",
                    d.reason,
                    d.properties
                        .reason_string
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                );
                self.link_lost(&why).await;
            }
            other => {
                let why = LinkError::Unexpected(other.name()).to_string();
                self.link_lost(&why).await;
            }
        }
    }

    async fn apply(&mut self, effect: AckEffect) {
        match effect {
            AckEffect::Done { seq, refused } => {
                self.t.queue.ack(seq);
                if let Some(code) = refused {
                    warn!(
                        "bridge {}: the remote broker refused a message (reason 0x{code:02X}); dropped",
                        self.t.name
                    );
                }
            }
            AckEffect::SendPubRel(packet_id) => {
                self.send(Packet::PubRel(PubResponse::new(packet_id))).await;
            }
            AckEffect::Ignore => {}
        }
    }

    async fn on_remote_publish(&mut self, p: Publish) {
        let now = Instant::now();
        let echo = self
            .link
            .as_mut()
            .and_then(|l| l.echo.as_mut())
            .is_some_and(|e| e.is_echo(&p.topic, &p.payload, now));
        let routed = if echo {
            None
        } else {
            route_in(&self.t.rules, &p.topic, None)
        };
        let Some((rule, local)) = routed else {
            if !echo {
                debug!(
                    "bridge {}: no in rule for remote topic {:?}",
                    self.t.name, p.topic
                );
            }
            // Acknowledge it ourselves: the local broker never sees it.
            match (p.qos, p.packet_id) {
                (QoS::AtLeastOnce, Some(id)) => {
                    self.send_ack(Packet::PubAck, id, ReasonCode::Success).await;
                }
                (QoS::ExactlyOnce, Some(id)) => {
                    self.own_qos2.insert(id);
                    self.send_ack(Packet::PubRec, id, ReasonCode::Success).await;
                }
                _ => {}
            }
            return;
        };
        let mut message = from_publish(&p, Arc::from(local), p.qos, now);
        message.retain = message.retain && rule.retain;
        let conn = self.t.conn;
        self.tell_core(Command::Publish {
            conn,
            packet_id: p.packet_id,
            message,
        })
        .await;
    }

    async fn close(&mut self) {
        if self.link.is_some() {
            if self.t.notify_remote {
                // A clean DISCONNECT suppresses the will: say "down" ourselves.
                if let Some(topic) = self.t.state_topic.clone() {
                    self.send(Packet::Publish(Publish {
                        dup: false,
                        qos: QoS::AtMostOnce,
                        retain: true,
                        topic,
                        packet_id: None,
                        properties: Default::default(),
                        payload: Bytes::from_static(b"0"),
                    }))
                    .await;
                }
            }
            self.send(Packet::Disconnect(Disconnect::default())).await;
            if let Some(link) = self.link.take() {
                link.reader.abort();
            }
        }
        if !self.t.queue.is_empty() {
            warn!(
                "bridge {}: stopping with {} message(s) not delivered to the remote broker",
                self.t.name,
                self.t.queue.len()
            );
        }
        let conn = self.t.conn;
        let _ = self
            .t
            .broker
            .send(Command::Disconnect {
                conn,
                kind: DisconnectKind::Graceful {
                    publish_will: false,
                    session_expiry: None,
                },
            })
            .await;
    }
}

fn local_reason(outcome: PublishOutcome) -> ReasonCode {
    match outcome {
        PublishOutcome::Delivered => ReasonCode::Success,
        PublishOutcome::NoMatchingSubscribers => ReasonCode::NoMatchingSubscribers,
        PublishOutcome::NotAuthorized => ReasonCode::NotAuthorized,
        PublishOutcome::QuotaExceeded => ReasonCode::QuotaExceeded,
    }
}
