//! The upstream task's state: it answers the gateway's broker [`Command`]s
//! with [`Outbound`] events exactly as the built-in core does, but the
//! messages travel over MQTT connections to an external broker — one per
//! sensor (transparent mode) or a small shared pool (aggregating mode).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::UpstreamStats;
use super::connect::ConnectFactory;
use super::held::{HeldSeq, HeldStore};
use super::link::{LinkEvent, LinkHandle, LinkId, LinkSpec, spawn_link};
use crate::bridge::session::{UpstreamSession, to_publish};
use crate::broker::{
    ClientKind, Command, ConnId, ConnectRequest, DisconnectKind, Message, Outbound, Outbox,
    PublishOutcome, ServerDisconnect, SubscribeRequest, SubscribeResult, UnsubscribeResult, Will,
};
use crate::mqtt::codec::{
    Disconnect, DisconnectProperties, Packet, PubResponse, ReasonCode, SubAck, Subscribe,
    SubscribeProperties, SubscriptionOptions, Unsubscribe, UnsubscribeProperties,
};
use crate::qos::QoS;

#[path = "events.rs"]
mod events;

/// Which gateway mode the task serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One upstream connection per sensor.
    Transparent,
    /// Sensors share a pool of upstream connections.
    Aggregating,
}

/// Who waits for a SUBACK or UNSUBACK from the upstream.
#[derive(Debug, Clone)]
enum Pending {
    /// A sensor's SUBSCRIBE.
    Subscribe {
        conn: ConnId,
        packet_id: u16,
        filters: Vec<(Arc<str>, QoS)>,
    },
    /// A sensor's UNSUBSCRIBE.
    Unsubscribe { conn: ConnId, packet_id: u16 },
    /// The gateway's own (re)subscription: nobody to answer.
    Internal,
}

/// One upstream connection.
struct Link {
    handle: LinkHandle,
    /// Upstream client id: also the key of its held messages.
    key: String,
    /// The sensor behind it (transparent mode).
    owner: Option<ConnId>,
    up: bool,
    session: UpstreamSession,
    /// Held messages not yet sent, oldest first.
    queue: VecDeque<(HeldSeq, Message)>,
    pending: HashMap<u16, Pending>,
    next_control_id: u16,
    /// QoS 2 messages from the upstream awaiting PUBREL (aggregating mode).
    incoming_qos2: HashSet<u16>,
    /// Close once everything held is delivered (the sensor has gone).
    closing: Option<Option<Disconnect>>,
}

impl Link {
    fn control_id(&mut self) -> u16 {
        // SUBSCRIBE ids count down from the top so they rarely meet the
        // PUBLISH ids the session hands out from 1 upwards.
        loop {
            let id = self.next_control_id;
            self.next_control_id = match id.checked_sub(1) {
                Some(0) | None => u16::MAX,
                Some(n) => n,
            };
            if !self.pending.contains_key(&id) {
                return id;
            }
        }
    }
}

/// One sensor connection, as the gateway sees it.
struct Conn {
    client_id: Arc<str>,
    outbox: Outbox,
    link: LinkId,
    will: Option<Will>,
    clean: bool,
    connacked: bool,
    /// QoS 2 publishes held and PUBREC'd, awaiting the sensor's PUBREL.
    qos2_in: HashSet<u16>,
    /// Granted subscriptions, re-made when an upstream session was lost.
    subs: BTreeMap<Arc<str>, QoS>,
    /// Deliveries sent and not completed (aggregating mode).
    out_inflight: HashSet<u16>,
    next_packet_id: u16,
    receive_maximum: usize,
}

/// Conns subscribed to one filter on one pool link (aggregating mode).
struct FilterEntry {
    link: LinkId,
    conns: BTreeMap<ConnId, QoS>,
}

/// The upstream task's whole state.
pub struct Router {
    mode: Mode,
    factory: ConnectFactory,
    events: mpsc::Sender<LinkEvent>,
    shutdown: CancellationToken,
    links: HashMap<LinkId, Link>,
    next_link: LinkId,
    pool: Vec<LinkId>,
    conns: HashMap<ConnId, Conn>,
    by_client: HashMap<Arc<str>, ConnId>,
    held: Box<dyn HeldStore>,
    available: watch::Sender<bool>,
    stats: Arc<UpstreamStats>,
    filters: HashMap<Arc<str>, FilterEntry>,
    /// Subscriptions of persistent sensors while they are away (aggregating).
    parked: HashMap<Arc<str>, BTreeMap<Arc<str>, QoS>>,
}

fn bucket(key: &str, n: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    usize::try_from(h.finish() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
}

impl Router {
    /// A router; `start` opens the pool.
    pub fn new(
        mode: Mode,
        factory: ConnectFactory,
        events: mpsc::Sender<LinkEvent>,
        held: Box<dyn HeldStore>,
        available: watch::Sender<bool>,
        stats: Arc<UpstreamStats>,
        shutdown: CancellationToken,
    ) -> Router {
        Router {
            mode,
            factory,
            events,
            shutdown,
            links: HashMap::new(),
            next_link: 1,
            pool: Vec::new(),
            conns: HashMap::new(),
            by_client: HashMap::new(),
            held,
            available,
            stats,
            filters: HashMap::new(),
            parked: HashMap::new(),
        }
    }

    /// Opens the shared connections: the pool in aggregating mode, one
    /// connection for sessionless publishes (QoS −1) and the availability
    /// signal in transparent mode.
    pub fn start(&mut self) {
        let n = match self.mode {
            Mode::Aggregating => self.factory.pool_size(),
            Mode::Transparent => 1,
        };
        for i in 0..n {
            let connect = self.factory.pool_connect(i);
            let key = connect.client_id.clone();
            let spec = self.factory.spec(0, connect, None, false);
            if let Ok(spec) = spec {
                let id = self.open(spec, key, None);
                self.pool.push(id);
            }
        }
    }

    fn open(&mut self, mut spec: LinkSpec, key: String, owner: Option<ConnId>) -> LinkId {
        let id = self.next_link;
        self.next_link += 1;
        spec.id = id;
        let handle = spawn_link(spec, self.events.clone(), self.shutdown.clone());
        // Messages a previous connection of this identity still held go first.
        let queue = self.held.held(&key).into_iter().collect();
        let link = Link {
            handle,
            key,
            owner,
            up: false,
            session: UpstreamSession::new(self.factory.version(), self.factory.max_inflight()),
            queue,
            pending: HashMap::new(),
            next_control_id: u16::MAX,
            incoming_qos2: HashSet::new(),
            closing: None,
        };
        self.links.insert(id, link);
        id
    }

    fn update_availability(&mut self) {
        let up = self
            .pool
            .iter()
            .any(|id| self.links.get(id).is_some_and(|l| l.up));
        self.available.send_if_modified(|a| {
            let changed = *a != up;
            *a = up;
            changed
        });
    }

    fn reply(&self, conn: ConnId, event: Outbound) {
        if let Some(c) = self.conns.get(&conn) {
            c.outbox.send(conn, event);
        }
    }

    /// One command from the gateway.
    pub fn on_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Connect(req) => self.on_connect(req),
            Command::Publish {
                conn,
                packet_id,
                message,
            } => self.on_publish(now, conn, packet_id, message),
            Command::PubRel { conn, packet_id } => {
                let found = self
                    .conns
                    .get_mut(&conn)
                    .is_some_and(|c| c.qos2_in.remove(&packet_id));
                self.reply(conn, Outbound::PubComp { packet_id, found });
            }
            Command::PubAck { conn, packet_id } => self.on_delivery_ack(conn, packet_id, 1),
            Command::PubRec { conn, packet_id } => self.on_delivery_ack(conn, packet_id, 2),
            Command::PubComp { conn, packet_id } => self.on_delivery_ack(conn, packet_id, 3),
            Command::Subscribe {
                conn,
                packet_id,
                filters,
                ..
            } => self.on_subscribe(conn, packet_id, filters),
            Command::Unsubscribe {
                conn,
                packet_id,
                filters,
            } => self.on_unsubscribe(conn, packet_id, filters),
            Command::SetWill { conn, will } => self.on_set_will(conn, will),
            // Topic ids are the gateway's own business; the upstream broker
            // keeps nothing for them (the local store is the built-in core's).
            Command::PersistSensorTopics { .. } => {}
            // Status is answered by the built-in core only.
            Command::Status { .. } => {}
            Command::Disconnect { conn, kind } => self.on_disconnect(now, conn, kind),
            Command::PublishInternal { message } => {
                let Some(&link) = self.pool.first() else {
                    return;
                };
                let _ = self.hold(now, link, message);
            }
        }
    }

    fn on_connect(&mut self, req: ConnectRequest) {
        if req.kind != ClientKind::MqttSn {
            tracing::debug!(client_id = %req.client_id, "upstream mode serves MQTT-SN sensors only");
        }
        // A sensor that reconnects before the gateway said goodbye: the old
        // connection ends without will, as a takeover does.
        if let Some(old) = self.by_client.get(&req.client_id).copied() {
            self.drop_conn(old, Some(Disconnect::default()), false);
        }
        let link = match self.mode {
            Mode::Transparent => {
                let (connect, creds) = match self.factory.sensor_connect(&req) {
                    Ok(c) => c,
                    Err(why) => {
                        self.stats.refused_sensors.fetch_add(1, Ordering::Relaxed);
                        warn!(client_id = %req.client_id, "MQTT-SN client {} refused: {why}", req.client_id);
                        req.outbox.send(
                            req.conn,
                            Outbound::Disconnect(ServerDisconnect::ShuttingDown),
                        );
                        return;
                    }
                };
                let key = connect.client_id.clone();
                // The identity's previous connection, if still draining, hands over.
                let draining: Vec<LinkId> = self
                    .links
                    .iter()
                    .filter(|(_, l)| l.key == key)
                    .map(|(id, _)| *id)
                    .collect();
                for id in draining {
                    if let Some(l) = self.links.remove(&id) {
                        l.handle.close(Some(Disconnect::default()));
                    }
                }
                match self.factory.spec(0, connect, creds.as_ref(), true) {
                    Ok(spec) => self.open(spec, key, Some(req.conn)),
                    Err(why) => {
                        self.stats.refused_sensors.fetch_add(1, Ordering::Relaxed);
                        warn!(client_id = %req.client_id, "MQTT-SN client {} refused: {why}", req.client_id);
                        req.outbox.send(
                            req.conn,
                            Outbound::Disconnect(ServerDisconnect::ShuttingDown),
                        );
                        return;
                    }
                }
            }
            Mode::Aggregating => {
                let Some(&link) = self.pool.get(bucket(&req.client_id, self.pool.len())) else {
                    req.outbox.send(
                        req.conn,
                        Outbound::Disconnect(ServerDisconnect::ShuttingDown),
                    );
                    return;
                };
                link
            }
        };
        let mut conn = Conn {
            client_id: req.client_id.clone(),
            outbox: req.outbox.clone(),
            link,
            will: req.will,
            clean: req.clean_start,
            connacked: false,
            qos2_in: HashSet::new(),
            subs: BTreeMap::new(),
            out_inflight: HashSet::new(),
            next_packet_id: 1,
            receive_maximum: usize::from(req.receive_maximum.max(1)),
        };
        if self.mode == Mode::Aggregating {
            let parked = self.parked.remove(&req.client_id);
            let session_present = !req.clean_start && parked.is_some();
            if session_present {
                conn.subs = parked.unwrap_or_default();
                for (filter, qos) in conn.subs.clone() {
                    self.add_filter(req.conn, &filter, qos, link);
                }
            }
            conn.connacked = true;
            req.outbox
                .send(req.conn, Outbound::ConnAck { session_present });
        }
        self.by_client.insert(req.client_id.clone(), req.conn);
        self.conns.insert(req.conn, conn);
    }

    fn link_of(&self, conn: ConnId) -> Option<LinkId> {
        self.conns.get(&conn).map(|c| c.link)
    }

    /// Accepts a QoS 1/2 message for `link`: held until the upstream
    /// completes it. QoS 0 goes out at once, or is dropped while down.
    fn hold(&mut self, now: Instant, link: LinkId, message: Message) -> Result<(), PublishOutcome> {
        let Some(l) = self.links.get_mut(&link) else {
            return Err(PublishOutcome::QuotaExceeded);
        };
        if message.qos == QoS::AtMostOnce {
            if l.up {
                l.handle
                    .send(Packet::Publish(to_publish(&message, None, false, now)));
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.dropped_qos0.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(());
        }
        match self.held.push(&l.key, message.clone()) {
            Ok(seq) => {
                l.queue.push_back((seq, message));
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                self.pump(now, link);
                Ok(())
            }
            Err(full) => {
                self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
                warn!("upstream publish refused with congestion: {full}");
                Err(PublishOutcome::QuotaExceeded)
            }
        }
    }

    fn pump(&mut self, now: Instant, link: LinkId) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        while l.up && l.session.can_send() {
            let Some((seq, message)) = l.queue.pop_front() else {
                break;
            };
            let (packet, _) = l.session.publish(seq, message, now);
            l.handle.send(packet);
            self.stats.published.fetch_add(1, Ordering::Relaxed);
        }
        self.maybe_close(link);
    }

    fn maybe_close(&mut self, link: LinkId) {
        let done = self.links.get(&link).is_some_and(|l| {
            l.closing.is_some() && l.queue.is_empty() && l.session.inflight() == 0
        });
        if done && let Some(mut l) = self.links.remove(&link) {
            l.handle.close(l.closing.take().flatten());
        }
    }

    fn on_publish(&mut self, now: Instant, conn: ConnId, packet_id: Option<u16>, message: Message) {
        let Some(link) = self.link_of(conn) else {
            return;
        };
        let qos = message.qos;
        if qos == QoS::ExactlyOnce
            && let Some(id) = packet_id
            && self
                .conns
                .get(&conn)
                .is_some_and(|c| c.qos2_in.contains(&id))
        {
            // A retransmitted QoS 2 PUBLISH is already held (MQTT-SN 1.2 §6.7).
            self.reply(
                conn,
                Outbound::PubRec {
                    packet_id: id,
                    outcome: PublishOutcome::Delivered,
                },
            );
            return;
        }
        let outcome = match self.hold(now, link, message) {
            Ok(()) => PublishOutcome::Delivered,
            Err(o) => o,
        };
        let Some(packet_id) = packet_id else {
            return;
        };
        match qos {
            QoS::AtLeastOnce => self.reply(conn, Outbound::PubAck { packet_id, outcome }),
            QoS::ExactlyOnce => {
                if outcome.is_success()
                    && let Some(c) = self.conns.get_mut(&conn)
                {
                    c.qos2_in.insert(packet_id);
                }
                self.reply(conn, Outbound::PubRec { packet_id, outcome });
            }
            QoS::AtMostOnce => {}
        }
    }

    /// The sensor's answer to a delivery: step 1 PUBACK, 2 PUBREC, 3 PUBCOMP.
    fn on_delivery_ack(&mut self, conn: ConnId, packet_id: u16, step: u8) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match self.mode {
            Mode::Transparent => {
                let Some(l) = self.links.get(&c.link) else {
                    return;
                };
                let r = PubResponse::new(packet_id);
                l.handle.send(match step {
                    1 => Packet::PubAck(r),
                    2 => Packet::PubRec(r),
                    _ => Packet::PubComp(r),
                });
            }
            Mode::Aggregating => match step {
                2 => {
                    c.outbox.send(conn, Outbound::PubRel { packet_id });
                }
                _ => {
                    c.out_inflight.remove(&packet_id);
                }
            },
        }
    }

    fn on_subscribe(&mut self, conn: ConnId, packet_id: u16, filters: Vec<SubscribeRequest>) {
        let Some(link) = self.link_of(conn) else {
            return;
        };
        let link = match self.mode {
            Mode::Transparent => link,
            Mode::Aggregating => {
                let first = filters
                    .first()
                    .map(|f| f.filter.clone())
                    .unwrap_or_default();
                match self.filters.get(&first) {
                    Some(e) => e.link,
                    None => match self.pool.get(bucket(&first, self.pool.len())) {
                        Some(&l) => l,
                        None => return,
                    },
                }
            }
        };
        let Some(l) = self.links.get_mut(&link).filter(|l| l.up) else {
            let results = vec![SubscribeResult::QuotaExceeded; filters.len()];
            self.reply(conn, Outbound::SubAck { packet_id, results });
            return;
        };
        let wanted: Vec<(Arc<str>, QoS)> = filters
            .iter()
            .map(|f| (f.filter.clone(), f.options.qos))
            .collect();
        // Aggregating: the pool subscribes at QoS 2 and each sensor gets its own grant.
        let upstream_qos = |q: QoS| match self.mode {
            Mode::Transparent => q,
            Mode::Aggregating => QoS::ExactlyOnce,
        };
        let up_id = l.control_id();
        l.pending.insert(
            up_id,
            Pending::Subscribe {
                conn,
                packet_id,
                filters: wanted.clone(),
            },
        );
        l.handle.send(Packet::Subscribe(Subscribe {
            packet_id: up_id,
            filters: wanted
                .iter()
                .map(|(f, q)| {
                    (
                        f.to_string(),
                        SubscriptionOptions {
                            qos: upstream_qos(*q),
                            ..SubscriptionOptions::default()
                        },
                    )
                })
                .collect(),
            properties: SubscribeProperties::default(),
        }));
    }

    fn on_suback(&mut self, link: LinkId, ack: SubAck) {
        let Some(p) = self
            .links
            .get_mut(&link)
            .and_then(|l| l.pending.remove(&ack.packet_id))
        else {
            return;
        };
        let Pending::Subscribe {
            conn,
            packet_id,
            filters,
        } = p
        else {
            return;
        };
        let mut results = Vec::with_capacity(filters.len());
        for (i, (filter, wanted)) in filters.into_iter().enumerate() {
            let code = ack
                .reasons
                .get(i)
                .copied()
                .unwrap_or(ReasonCode::UnspecifiedError);
            let granted = match code {
                ReasonCode::Success => Some(QoS::AtMostOnce),
                ReasonCode::GrantedQoS1 => Some(QoS::AtLeastOnce),
                ReasonCode::GrantedQoS2 => Some(QoS::ExactlyOnce),
                _ => None,
            };
            let Some(granted) = granted else {
                results.push(match code {
                    ReasonCode::NotAuthorized => SubscribeResult::NotAuthorized,
                    ReasonCode::QuotaExceeded => SubscribeResult::QuotaExceeded,
                    _ => SubscribeResult::Failed,
                });
                continue;
            };
            let granted = match self.mode {
                Mode::Transparent => granted,
                Mode::Aggregating => granted.min(wanted),
            };
            if let Some(c) = self.conns.get_mut(&conn) {
                c.subs.insert(filter.clone(), granted);
            }
            if self.mode == Mode::Aggregating {
                self.add_filter(conn, &filter, granted, link);
            }
            results.push(SubscribeResult::Granted(granted));
        }
        self.reply(conn, Outbound::SubAck { packet_id, results });
    }

    fn add_filter(&mut self, conn: ConnId, filter: &Arc<str>, qos: QoS, link: LinkId) {
        self.filters
            .entry(filter.clone())
            .or_insert_with(|| FilterEntry {
                link,
                conns: BTreeMap::new(),
            })
            .conns
            .insert(conn, qos);
    }

    /// Removes `conn` from a filter; the pool unsubscribes once nobody is left.
    fn remove_filter(&mut self, conn: ConnId, filter: &Arc<str>) -> bool {
        let Some(e) = self.filters.get_mut(filter) else {
            return false;
        };
        let removed = e.conns.remove(&conn).is_some();
        if e.conns.is_empty() {
            let link = e.link;
            self.filters.remove(filter);
            if let Some(l) = self.links.get_mut(&link)
                && l.up
            {
                let id = l.control_id();
                l.pending.insert(id, Pending::Internal);
                l.handle.send(Packet::Unsubscribe(Unsubscribe {
                    packet_id: id,
                    filters: vec![filter.to_string()],
                    properties: UnsubscribeProperties::default(),
                }));
            }
        }
        removed
    }

    fn on_unsubscribe(&mut self, conn: ConnId, packet_id: u16, filters: Vec<Arc<str>>) {
        let Some(link) = self.link_of(conn) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            for f in &filters {
                c.subs.remove(f);
            }
        }
        match self.mode {
            Mode::Transparent => {
                if let Some(l) = self.links.get_mut(&link)
                    && l.up
                {
                    let id = l.control_id();
                    l.pending
                        .insert(id, Pending::Unsubscribe { conn, packet_id });
                    l.handle.send(Packet::Unsubscribe(Unsubscribe {
                        packet_id: id,
                        filters: filters.iter().map(|f| f.to_string()).collect(),
                        properties: UnsubscribeProperties::default(),
                    }));
                    return;
                }
                // Down: the subscription is not re-made when the link returns.
                let results = vec![UnsubscribeResult::Removed; filters.len()];
                self.reply(conn, Outbound::UnsubAck { packet_id, results });
            }
            Mode::Aggregating => {
                let results = filters
                    .iter()
                    .map(|f| match self.remove_filter(conn, f) {
                        true => UnsubscribeResult::Removed,
                        false => UnsubscribeResult::NoSubscriptionExisted,
                    })
                    .collect();
                self.reply(conn, Outbound::UnsubAck { packet_id, results });
            }
        }
    }

    fn on_set_will(&mut self, conn: ConnId, will: Option<Will>) {
        let mode = self.mode;
        if let Some(c) = self.conns.get_mut(&conn) {
            if mode == Mode::Transparent {
                // MQTT cannot change a will on a live connection; the
                // upstream keeps the one given at CONNECT until it reconnects.
                warn!(client_id = %c.client_id, "will update not applied upstream: MQTT fixes the will at CONNECT");
            }
            c.will = will;
        }
    }

    fn on_disconnect(&mut self, now: Instant, conn: ConnId, kind: DisconnectKind) {
        let (will, expiry) = match kind {
            DisconnectKind::Abnormal => (true, None),
            DisconnectKind::Graceful {
                publish_will,
                session_expiry,
            } => (publish_will, session_expiry),
        };
        match self.mode {
            Mode::Transparent => {
                // Dropping the socket (no DISCONNECT) makes the upstream
                // publish the will [MQTT-3.1.2-8]; otherwise say goodbye.
                let goodbye = (!will).then(|| Disconnect {
                    reason: ReasonCode::Success,
                    properties: DisconnectProperties {
                        session_expiry_interval: expiry.filter(|_| self.factory.version().is_v5()),
                        ..DisconnectProperties::default()
                    },
                });
                self.drop_conn(conn, goodbye, false);
            }
            Mode::Aggregating => {
                if will
                    && let Some(c) = self.conns.get(&conn)
                    && let Some(w) = c.will.clone()
                {
                    let link = c.link;
                    info!(client_id = %c.client_id, topic = %w.message.topic, "publishing the will of lost MQTT-SN client {}", c.client_id);
                    self.stats.wills.fetch_add(1, Ordering::Relaxed);
                    let _ = self.hold(now, link, w.message);
                }
                self.drop_conn(conn, None, true);
            }
        }
    }

    /// Forgets a sensor connection. Transparent: its upstream connection
    /// ends once what it holds is delivered; `goodbye` = None drops it so the
    /// upstream publishes the will.
    fn drop_conn(&mut self, conn: ConnId, goodbye: Option<Disconnect>, park: bool) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if self.by_client.get(&c.client_id) == Some(&conn) {
            self.by_client.remove(&c.client_id);
        }
        match self.mode {
            Mode::Transparent => {
                if let Some(l) = self.links.get_mut(&c.link) {
                    l.owner = None;
                    l.closing = Some(goodbye);
                }
                self.maybe_close(c.link);
            }
            Mode::Aggregating => {
                for filter in c.subs.keys() {
                    self.remove_filter(conn, filter);
                }
                if park && !c.clean {
                    self.parked.insert(c.client_id.clone(), c.subs);
                }
            }
        }
    }

    /// Shutdown: every sensor is told the broker is going away.
    pub fn shut_down(&mut self) {
        for (conn, c) in self.conns.drain() {
            c.outbox
                .send(conn, Outbound::Disconnect(ServerDisconnect::ShuttingDown));
        }
    }
}
