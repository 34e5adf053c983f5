//! The upstream task's state: it answers the gateway's broker [`Command`]s
//! with [`Outbound`] events exactly as the built-in core does, but the
//! messages travel over MQTT connections to an external broker — one per
//! sensor (transparent mode) or a small shared pool (aggregating mode).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::UpstreamStats;
use super::connect::ConnectFactory;
use super::held::{HeldSeq, HeldStore};
use super::link::{LinkEvent, LinkHandle, LinkId, LinkSpec, spawn_link_after};
use super::sessions::SessionStore;
use crate::bridge::session::UpstreamSession;
use crate::broker::{
    ClientKind, Command, ConnId, ConnectRequest, DisconnectKind, Message, Outbound, Outbox,
    ServerDisconnect, Will,
};
use crate::mqtt::codec::{Disconnect, DisconnectProperties, ReasonCode};
use crate::qos::QoS;
use aggregate::{Away, FilterEntry, Queued, bucket};

#[path = "aggregate.rs"]
mod aggregate;
#[path = "events.rs"]
mod events;
#[path = "publish.rs"]
mod publish;
#[path = "restore.rs"]
mod restore;
#[path = "subscribe.rs"]
mod subscribe;
#[path = "will.rs"]
mod will;

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
    /// How a sensor's connection connects, kept to make it again with a new
    /// will (transparent mode).
    spec: Option<LinkSpec>,
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
    /// Filters to subscribe at the next CONNACK even if the upstream kept
    /// the session: restored ones it never had (aggregating mode).
    fresh: BTreeSet<Arc<str>>,
    /// Filters to unsubscribe at the next CONNACK if the upstream kept the
    /// session: nobody wants them any more (aggregating mode).
    stale: BTreeSet<Arc<str>>,
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
    /// Deliveries sent and not completed, with their send order and, until
    /// the sensor's PUBREC, the message (aggregating mode).
    out_inflight: HashMap<u16, (u64, Option<Queued>)>,
    /// Deliveries sent so far: orders `out_inflight`.
    sent: u64,
    /// Deliveries waiting for room in the window (aggregating mode).
    backlog: VecDeque<Queued>,
    next_packet_id: u16,
    receive_maximum: usize,
    /// Seconds a persistent session outlives the connection.
    session_expiry: u32,
}

/// What the router writes down: held sensor messages and persistent
/// sensor sessions.
pub struct Stores {
    /// Sensor messages waiting for the upstream.
    pub held: Box<dyn HeldStore>,
    /// Aggregating mode's persistent sensor sessions.
    pub sessions: Box<dyn SessionStore>,
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
    /// Persistent sensors' sessions on disk (aggregating mode).
    sessions: Box<dyn SessionStore>,
    available: watch::Sender<bool>,
    stats: Arc<UpstreamStats>,
    filters: HashMap<Arc<str>, FilterEntry>,
    /// Sessions of persistent sensors while they are away (aggregating).
    away: HashMap<Arc<str>, Away>,
    /// Bound of each away sensor's queue and each sensor's backlog.
    max_queued: usize,
    /// Upstream client id → resolves once its last connection has ended: a
    /// new connection of the same identity waits for it, so the broker sees
    /// the DISCONNECT (or the drop that publishes the will) before the new
    /// CONNECT, never a takeover.
    goodbyes: HashMap<String, oneshot::Receiver<()>>,
}

/// Goodbyes kept before the ones already said are swept out.
const GOODBYES_SWEEP: usize = 256;

impl Router {
    /// A router; `start` opens the pool.
    pub fn new(
        mode: Mode,
        factory: ConnectFactory,
        events: mpsc::Sender<LinkEvent>,
        stores: Stores,
        available: watch::Sender<bool>,
        stats: Arc<UpstreamStats>,
        shutdown: CancellationToken,
    ) -> Router {
        Router {
            mode,
            events,
            shutdown,
            links: HashMap::new(),
            next_link: 1,
            pool: Vec::new(),
            conns: HashMap::new(),
            by_client: HashMap::new(),
            held: stores.held,
            sessions: stores.sessions,
            available,
            stats,
            filters: HashMap::new(),
            away: HashMap::new(),
            goodbyes: HashMap::new(),
            max_queued: factory.max_queued(),
            factory,
        }
    }

    /// Opens the shared connections — the pool in aggregating mode, one
    /// connection for sessionless publishes (QoS −1) and the availability
    /// signal in transparent mode — and one connection for every other
    /// identity a previous run still held messages for, which ends once they
    /// are delivered. Aggregating mode then takes back the persistent
    /// sessions a previous run wrote down.
    pub fn start(&mut self, now: Instant) {
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
        if self.mode == Mode::Aggregating {
            self.restore_sessions(now);
        }
        let mut orphans = self.held.keys();
        orphans.retain(|k| !self.links.values().any(|l| &l.key == k));
        orphans.sort();
        for key in orphans {
            let spec = self
                .factory
                .drain_connect(&key)
                .and_then(|(c, creds)| self.factory.spec(0, c, creds.as_ref(), false));
            match spec {
                Ok(spec) => {
                    info!(client_id = %key, "delivering {} held message(s) of a previous run upstream", self.held.held(&key).len());
                    let id = self.open(spec, key, None);
                    if let Some(l) = self.links.get_mut(&id) {
                        l.closing = Some(Some(Disconnect::default()));
                    }
                }
                Err(why) => {
                    warn!(client_id = %key, "held messages of a previous run kept back: {why}");
                }
            }
        }
    }

    fn open(&mut self, mut spec: LinkSpec, key: String, owner: Option<ConnId>) -> LinkId {
        let id = self.next_link;
        self.next_link += 1;
        spec.id = id;
        let kept = owner.is_some().then(|| spec.clone());
        let after = self.goodbyes.remove(&key);
        let handle = spawn_link_after(spec, after, self.events.clone(), self.shutdown.clone());
        // Messages a previous connection of this identity still held go first.
        let queue = self.held.held(&key).into_iter().collect();
        let link = Link {
            handle,
            key,
            owner,
            spec: kept,
            up: false,
            session: UpstreamSession::new(self.factory.version(), self.factory.max_inflight()),
            queue,
            pending: HashMap::new(),
            next_control_id: u16::MAX,
            incoming_qos2: HashSet::new(),
            closing: None,
            fresh: BTreeSet::new(),
            stale: BTreeSet::new(),
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
            Command::Connect(req) => self.on_connect(now, req),
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
            Command::Status { .. } | Command::Filters { .. } => {}
            Command::Disconnect { conn, kind } => self.on_disconnect(now, conn, kind),
            Command::PublishInternal { message } => {
                let Some(&link) = self.pool.first() else {
                    return;
                };
                let _ = self.hold(now, link, message);
            }
        }
    }

    fn on_connect(&mut self, now: Instant, req: ConnectRequest) {
        if req.kind != ClientKind::MqttSn {
            tracing::debug!(client_id = %req.client_id, "upstream mode serves MQTT-SN sensors only");
        }
        // A sensor that reconnects before the gateway said goodbye: the old
        // connection ends without will, as a takeover does.
        if let Some(old) = self.by_client.get(&req.client_id).copied() {
            self.drop_conn(now, old, Some(Disconnect::default()), true);
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
                // The identity's previous connection, if still draining, hands
                // over; the new one connects once it has said goodbye.
                let draining: Vec<LinkId> = self
                    .links
                    .iter()
                    .filter(|(_, l)| l.key == key)
                    .map(|(id, _)| *id)
                    .collect();
                for id in draining {
                    if let Some(l) = self.links.remove(&id) {
                        self.close_link(&l, Some(Disconnect::default()));
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
            out_inflight: HashMap::new(),
            sent: 0,
            backlog: VecDeque::new(),
            next_packet_id: 1,
            receive_maximum: usize::from(req.receive_maximum.max(1)),
            session_expiry: req.session_expiry,
        };
        let mut queued = VecDeque::new();
        if self.mode == Mode::Aggregating {
            let resumed = self.resume(
                now,
                req.conn,
                &req.client_id,
                req.clean_start,
                req.session_expiry,
            );
            let session_present = resumed.is_some();
            if let Some(r) = resumed {
                conn.subs = r.subs;
                queued = r.queue;
            }
            conn.connacked = true;
            req.outbox
                .send(req.conn, Outbound::ConnAck { session_present });
        }
        self.by_client.insert(req.client_id.clone(), req.conn);
        self.conns.insert(req.conn, conn);
        // What arrived while it was away follows the CONNACK, in order.
        for m in queued {
            self.deliver(req.conn, m);
        }
    }

    /// Ends a link (already out of `links`) and notes when it has ended.
    fn close_link(&mut self, l: &Link, goodbye: Option<Disconnect>) {
        if self.goodbyes.len() >= GOODBYES_SWEEP {
            self.goodbyes
                .retain(|_, r| matches!(r.try_recv(), Err(oneshot::error::TryRecvError::Empty)));
        }
        let (done, wait) = oneshot::channel();
        l.handle.close_then(goodbye, done);
        self.goodbyes.insert(l.key.clone(), wait);
    }

    fn link_of(&self, conn: ConnId) -> Option<LinkId> {
        self.conns.get(&conn).map(|c| c.link)
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
                self.drop_conn(now, conn, goodbye, false);
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
                self.drop_conn(now, conn, None, true);
            }
        }
    }

    /// Forgets a sensor connection. Transparent: its upstream connection
    /// ends once what it holds is delivered; `goodbye` = None drops it so the
    /// upstream publishes the will. Aggregating: with `park`, a persistent
    /// sensor's session stays to collect messages until it returns.
    fn drop_conn(&mut self, now: Instant, conn: ConnId, goodbye: Option<Disconnect>, park: bool) {
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
                if park && !c.clean {
                    // Deliveries not yet acknowledged go again on return.
                    let mut backlog = c.backlog;
                    let mut unacked: Vec<_> = c.out_inflight.into_values().collect();
                    unacked.sort_by_key(|(n, _)| *n);
                    for (_, m) in unacked.into_iter().rev() {
                        if let Some(m) = m {
                            backlog.push_front(m);
                        }
                    }
                    self.park(now, conn, c.client_id, c.subs, backlog, c.session_expiry);
                } else {
                    for filter in c.subs.keys() {
                        self.remove_filter(conn, filter);
                    }
                    if !c.clean {
                        self.sessions.remove_session(&c.client_id);
                    }
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
