//! The broker core state machine. One owner (the core task) calls
//! [`Broker::handle`] for each command and [`Broker::tick`] about once a
//! second; time is passed in, so the whole core is testable without tokio.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::api::{ClientKind, Command, ConnId, Outbound, PublishOutcome, ServerDisconnect, Will};
use super::counter_map::CounterMap;
use super::message::Message;
use super::metrics::Metrics;
use super::out::Out;
use super::persist::Journal;
use super::retained::RetainedStore;
use super::session::{DeliveryStats, Link, Session, SessionLimits};
use super::subscriptions::{SessionKey, Subscriber, SubscriptionTree};
use super::sys::SysTopics;
use crate::qos::QoS;

/// Settings of the broker core (mapped from `[broker]` in the config).
#[derive(Debug, Clone)]
pub struct BrokerSettings {
    /// Per-session queue limit.
    pub max_queued_messages: usize,
    /// Per-session in-flight window cap.
    pub max_inflight_messages: u16,
    /// `$SYS` publish period; zero turns `$SYS` off.
    pub sys_interval: Duration,
    /// Whether retained messages are stored.
    pub retain_available: bool,
    /// Per session: bytes queued behind the window; 0 = unlimited.
    pub max_queued_bytes: usize,
    /// Per client: subscriptions held; 0 = unlimited.
    pub max_subscriptions: usize,
}

impl Default for BrokerSettings {
    fn default() -> BrokerSettings {
        BrokerSettings {
            max_queued_messages: 1000,
            max_inflight_messages: 20,
            sys_interval: Duration::from_secs(10),
            retain_available: true,
            max_queued_bytes: 0,
            max_subscriptions: 0,
        }
    }
}

/// A will with its session's client id as the publisher: it is the client's message.
pub(super) fn stamped(mut will: Will, client_id: &Arc<str>) -> Will {
    will.message.publisher = Some(client_id.clone());
    will
}

/// Counters kept by the core for `$SYS`.
#[derive(Debug, Default, Clone, Copy)]
pub struct CoreStats {
    /// PUBLISH messages received from clients.
    pub messages_received: u64,
    /// Deliveries and drops.
    pub delivery: DeliveryStats,
    /// Most clients connected at once.
    pub clients_maximum: usize,
}

/// The broker core.
#[derive(Debug)]
pub struct Broker {
    pub(super) settings: BrokerSettings,
    pub(super) limits: SessionLimits,
    /// Boxed: a hash table inline would reserve a whole `Session` for every
    /// empty slot too (up to half the table). Keyed by a local counter.
    pub(super) sessions: CounterMap<SessionKey, Box<Session>>,
    /// Keyed by the session's own `client_id` (the same `Arc`); client ids
    /// come from peers, so this map keeps SipHash with random keys.
    pub(super) by_client: HashMap<Arc<str>, SessionKey>,
    pub(super) by_conn: CounterMap<ConnId, SessionKey>,
    pub(super) next_key: u64,
    pub(super) tree: SubscriptionTree,
    pub(super) retained: RetainedStore,
    pub(super) stats: CoreStats,
    pub(super) metrics: Arc<Metrics>,
    sys: SysTopics,
    pub(super) scratch: Vec<Subscriber>,
    /// Outbound events: direct, or held while persistence is on.
    pub(super) out: Out,
    /// State changes for the durable store; `None` when persistence is off.
    pub(super) journal: Option<Journal>,
    /// The last commit failed: QoS 1/2 publishes are refused until one succeeds.
    pub(super) store_failing: bool,
    /// While a client's QoS 1/2 publish is routed: its connection, which a
    /// full subscriber queue slows instead of dropping the message.
    pub(super) pressure: Option<Link>,
}

impl Broker {
    /// A new, empty broker.
    pub fn new(settings: BrokerSettings, metrics: Arc<Metrics>, now: Instant) -> Broker {
        let limits = SessionLimits {
            max_queued: settings.max_queued_messages,
            max_inflight: settings.max_inflight_messages,
            max_queued_bytes: settings.max_queued_bytes,
            overflow: false,
        };
        let sys = SysTopics::new(now, settings.sys_interval);
        Broker {
            settings,
            limits,
            sessions: CounterMap::default(),
            by_client: HashMap::new(),
            by_conn: CounterMap::default(),
            next_key: 1,
            tree: SubscriptionTree::new(),
            retained: RetainedStore::new(),
            stats: CoreStats::default(),
            metrics,
            sys,
            scratch: Vec::new(),
            out: Out::direct(),
            journal: None,
            store_failing: false,
            pressure: None,
        }
    }

    /// Number of sessions with a connection attached.
    pub fn clients_connected(&self) -> usize {
        self.by_conn.len()
    }

    /// Number of sessions, attached or not.
    pub fn clients_total(&self) -> usize {
        self.sessions.len()
    }

    /// Number of subscriptions.
    pub fn subscription_count(&self) -> usize {
        self.tree.len()
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    /// Core counters.
    pub fn stats(&self) -> CoreStats {
        self.stats
    }

    /// Applies one command.
    pub fn handle(&mut self, command: Command, now: Instant) {
        match command {
            Command::Connect(req) => self.connect(req, now),
            Command::Publish {
                conn,
                packet_id,
                message,
            } => self.client_publish(conn, packet_id, message, now),
            Command::PubAck { conn, packet_id } => {
                self.with_session(conn, now, |s, _| {
                    s.puback(packet_id);
                });
            }
            Command::PubRec { conn, packet_id } => {
                self.with_session(conn, now, |s, out| s.pubrec(packet_id, out));
            }
            Command::PubComp { conn, packet_id } => {
                self.with_session(conn, now, |s, _| {
                    s.pubcomp(packet_id);
                });
            }
            Command::PubRel { conn, packet_id } => self.client_pubrel(conn, packet_id),
            Command::Subscribe {
                conn,
                packet_id,
                filters,
                subscription_id,
            } => self.subscribe(conn, packet_id, filters, subscription_id, now),
            Command::Unsubscribe {
                conn,
                packet_id,
                filters,
            } => self.unsubscribe(conn, packet_id, &filters),
            Command::SetWill { conn, will } => {
                if let Some(&key) = self.by_conn.get(&conn)
                    && let Some(s) = self.sessions.get_mut(&key)
                {
                    let will = will.map(|w| stamped(w, &s.client_id));
                    s.set_will(will, now);
                    self.mark_record(key);
                }
            }
            Command::Disconnect { conn, kind } => self.disconnect(conn, kind, now),
            Command::PublishInternal { message } => {
                self.route(None, message, now);
            }
            Command::PersistSensorTopics { client_id, topics } => {
                self.persist_sensor_topics(&client_id, topics);
            }
            Command::Filters { conn, reply } => {
                let filters = self
                    .by_conn
                    .get(&conn)
                    .and_then(|key| self.sessions.get(key))
                    .map(|s| s.subscriptions.keys().cloned().collect())
                    .unwrap_or_default();
                let _ = reply.send(filters);
            }
            Command::Status { reply } => {
                let _ = reply.send(self.status());
            }
        }
    }

    /// Runs session expiry, delayed wills and `$SYS`. Call about once a second.
    pub fn tick(&mut self, now: Instant) {
        self.run_timers(now);
        // Sessions count queued-bytes drops in the core's stats; the shared
        // counters see them once a tick.
        let dropped = self.stats.delivery.dropped_queued_bytes;
        let reported = crate::limits::Limit::MaxQueuedBytes;
        let new = dropped.saturating_sub(self.metrics.limits.get(reported));
        self.metrics.limits.add(reported, new);
        if let Some(messages) = self.sys.due(now, &self.snapshot()) {
            for m in messages {
                self.route(None, m, now);
            }
        }
    }

    /// Publishes due delayed wills and ends expired sessions.
    pub(super) fn run_timers(&mut self, now: Instant) {
        let mut due_wills = Vec::new();
        let mut expired = Vec::new();
        for (key, s) in &mut self.sessions {
            if let Some((at, _)) = s.will_due()
                && *at <= now
                && let Some((_, will)) = s.take_will_due()
            {
                due_wills.push((*key, will));
                if let Some(j) = self.journal.as_mut() {
                    j.records.insert(*key);
                }
            }
            if s.expires_at.is_some_and(|at| at <= now) {
                expired.push(*key);
            }
        }
        for (key, will) in due_wills {
            self.route(Some(key), will.message, now);
        }
        for key in expired {
            self.end_session(key, now);
        }
    }

    fn snapshot(&self) -> super::sys::SysSnapshot {
        super::sys::SysSnapshot {
            clients_connected: self.clients_connected(),
            clients_total: self.clients_total(),
            clients_maximum: self.stats.clients_maximum,
            subscriptions: self.subscription_count(),
            retained: self.retained_count(),
            messages_received: self.stats.messages_received,
            messages_sent: self.stats.delivery.sent,
            messages_dropped: self.stats.delivery.dropped,
            bytes_received: Metrics::get(&self.metrics.bytes_received),
            bytes_sent: Metrics::get(&self.metrics.bytes_sent),
            limits: self.metrics.limits.snapshot(),
        }
    }

    /// A read-only snapshot for the status page and metrics.
    pub fn status(&self) -> super::status::StatusSnapshot {
        let mut clients: Vec<_> = self
            .sessions
            .values()
            .map(|s| super::status::ClientStatus {
                client_id: s.client_id.clone(),
                kind: s.kind,
                connected: s.is_online(),
                subscriptions: s.subscriptions.len(),
                queued: s.queued_len(),
                inflight: s.inflight_len(),
            })
            .collect();
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        super::status::StatusSnapshot {
            clients,
            subscriptions: self.subscription_count(),
            retained: self.retained_count(),
            messages_received: self.stats.messages_received,
            messages_sent: self.stats.delivery.sent,
            messages_dropped: self.stats.delivery.dropped,
            clients_maximum: self.stats.clients_maximum,
        }
    }

    /// Tells every connection the broker is going away.
    pub fn shutdown(&mut self) {
        for s in self.sessions.values_mut() {
            if let Some(link) = s.link.take() {
                self.out.send(
                    &link.outbox,
                    link.conn,
                    Outbound::Disconnect(ServerDisconnect::ShuttingDown),
                );
            }
        }
        self.by_conn.clear();
    }

    fn with_session(&mut self, conn: ConnId, now: Instant, f: impl FnOnce(&mut Session, &mut Out)) {
        let Some(key) = self.by_conn.get(&conn) else {
            debug!(
                conn = conn.0,
                "command for a connection without a session ignored"
            );
            return;
        };
        let key = *key;
        if let Some(s) = self.sessions.get_mut(&key) {
            f(s, &mut self.out);
            s.pump(now, &self.limits, &mut self.stats.delivery, &mut self.out);
            if s.track {
                self.mark_queue(key);
            }
        }
    }

    fn client_publish(
        &mut self,
        conn: ConnId,
        packet_id: Option<u16>,
        mut message: Message,
        now: Instant,
    ) {
        let Some(&key) = self.by_conn.get(&conn) else {
            debug!(
                conn = conn.0,
                "publish from a connection without a session ignored"
            );
            return;
        };
        // Who published travels with the message (bridges' `{client_id}` templates).
        message.publisher = self.sessions.get(&key).map(|s| s.client_id.clone());
        self.stats.messages_received += 1;
        let qos = message.qos;
        let acknowledged = qos != QoS::AtMostOnce && packet_id.is_some();
        if acknowledged {
            // Deliver before acknowledging (see `Out::defer_delivery_wakes`).
            self.out.defer_delivery_wakes();
        }
        let outcome = if qos != QoS::AtMostOnce && self.store_failing {
            // The store cannot keep what we would acknowledge: refuse rather
            // than promise (MQTT 5 reason 0x97; a 3.1.1 client is disconnected).
            PublishOutcome::QuotaExceeded
        } else {
            self.publish_with_pressure(key, packet_id, message, now)
        };
        if let (Some(packet_id), Some(s)) = (packet_id, self.sessions.get(&key))
            && let Some(link) = &s.link
        {
            let event = match qos {
                QoS::AtMostOnce => None,
                QoS::AtLeastOnce => Some(Outbound::PubAck { packet_id, outcome }),
                QoS::ExactlyOnce => Some(Outbound::PubRec { packet_id, outcome }),
            };
            if let Some(event) = event {
                self.out.send(&link.outbox, link.conn, event);
            }
        }
        if acknowledged {
            self.out.wake_deliveries();
        }
    }

    /// Routes a client's publish. A QoS 1/2 publish that meets a full
    /// subscriber queue is never acknowledged-then-dropped: an MQTT
    /// publisher's connection is slowed (it stops reading its socket until
    /// the queue drains) and the message queued past the bound; an MQTT-SN
    /// sensor, which shares the gateway's socket, is refused with
    /// "congestion" before anything is routed (MQTT-SN 1.2 §5.4.12, G-44).
    fn publish_with_pressure(
        &mut self,
        key: SessionKey,
        packet_id: Option<u16>,
        message: Message,
        now: Instant,
    ) -> PublishOutcome {
        let qos = message.qos;
        let publisher = self.sessions.get(&key).filter(|_| qos != QoS::AtMostOnce);
        let kind = publisher.map(|s| s.kind);
        let link = publisher.and_then(|s| s.link.clone());
        let retransmitted = |s: &Session| {
            qos == QoS::ExactlyOnce && packet_id.is_some_and(|id| s.incoming_qos2.contains(&id))
        };
        let retransmission = publisher.is_some_and(|s| retransmitted(s));
        if kind == Some(ClientKind::MqttSn) && !retransmission && self.would_congest(key, &message)
        {
            self.stats.delivery.congested += 1;
            return PublishOutcome::QuotaExceeded;
        }
        // Only a connection that reads its own socket can be slowed; bridges
        // and the gateway keep the drop-when-full rule.
        let link = link.filter(|_| matches!(kind, Some(ClientKind::Mqtt3 | ClientKind::Mqtt5)));
        // A slowed publisher still reads a little (its pause ends after a
        // while, for keep-alive). Once a subscriber's queue is at its hard
        // bound the message would be dropped after its PUBACK: refuse it
        // instead (MQTT 5: PUBACK 0x97; 3.1.1, which cannot refuse, closes
        // without PUBACK, so the client sends it again), never acknowledge
        // and lose it. Before the QoS 2 id is noted, so the resent one counts.
        // Only for a publisher being slowed: the look-up advances shared
        // subscriptions' round-robin, which an ordinary publish must not see.
        let slowed = link.as_ref().is_some_and(|l| l.outbox.is_blocked());
        if slowed && !retransmission && self.would_overflow(key, &message) {
            self.stats.delivery.refused_at_cap += 1;
            return PublishOutcome::QuotaExceeded;
        }
        let duplicate_qos2 = qos == QoS::ExactlyOnce
            && packet_id.is_some_and(|id| !self.note_incoming_qos2(key, id));
        // A QoS 2 packet id seen before PUBREL is a retransmission: acknowledge
        // it again but do not deliver twice [MQTT-4.3.3-2].
        if duplicate_qos2 {
            return PublishOutcome::Delivered;
        }
        self.pressure = link;
        let routed = self.route(Some(key), message, now);
        self.pressure = None;
        if routed > 0 {
            PublishOutcome::Delivered
        } else {
            PublishOutcome::NoMatchingSubscribers
        }
    }

    /// The will a session would publish if its connection dropped now (tests, status).
    pub fn will_of(&self, client_id: &str) -> Option<&Will> {
        let key = self.by_client.get(client_id)?;
        self.sessions.get(key)?.will()
    }
}
