//! The sans-IO gateway: datagrams, broker events and time in; datagrams and
//! broker commands out. Dispatch by client state follows digest §4.15.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::access::SensorAccess;
use super::address::{PeerAddr, SensorAddr};
use super::discovery::Advertiser;
use super::identity::PeerIdentity;
use super::session::{Session, State};
use super::settings::{GatewaySettings, PredefinedTopic};
use super::topic_registry::PredefinedTopics;
use crate::broker::{Command, ConnId, DisconnectKind, Outbound, OutboxReceiver};
use crate::mqttsn::codec::{self, Frame, Message};

/// A datagram for the transport to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination; `None` only for a broadcast with no particular asker (ADVERTISE).
    pub peer: Option<PeerAddr>,
    /// The whole datagram.
    pub payload: Bytes,
    /// Broadcast (ADVERTISE, GWINFO): the transport also sends it to its
    /// multicast group when one is configured.
    pub broadcast: bool,
    /// Broadcast radius from the SEARCHGW (0 = whole network), for the transport (G-12).
    pub radius: u8,
}

/// Counters for observability.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayStats {
    /// Datagrams that failed to decode.
    pub malformed: u64,
    /// QoS 0 deliveries dropped because a sleep buffer was full.
    pub dropped_qos0: u64,
    /// Deliveries abandoned (too big, topic rejected, table full).
    pub abandoned: u64,
    /// CONNECTs refused with congestion.
    pub refused_connects: u64,
    /// Publishes, subscriptions, wills and deliveries the ACL refused.
    pub denied: u64,
    /// Datagrams received.
    pub datagrams_in: u64,
    /// Bytes received in datagrams.
    pub bytes_in: u64,
    /// Datagrams handed to the transport.
    pub datagrams_out: u64,
    /// Bytes handed to the transport.
    pub bytes_out: u64,
}

/// Unsolicited DISCONNECTs to unknown senders allowed per second (digest §5.20).
const UNKNOWN_REPLIES_PER_SEC: u32 = 50;

/// Identifies a session inside the gateway.
pub(super) type Key = u64;

/// The MQTT-SN gateway core (sans-IO).
#[derive(Debug)]
pub struct Gateway {
    pub(super) settings: GatewaySettings,
    pub(super) predefined: PredefinedTopics,
    pub(super) sessions: HashMap<Key, Session>,
    next_key: Key,
    pub(super) by_client: HashMap<Arc<str>, Key>,
    pub(super) by_addr: HashMap<SensorAddr, Key>,
    pub(super) by_conn: HashMap<ConnId, Key>,
    pub(super) timers: BTreeSet<(Instant, Key)>,
    pub(super) advertiser: Advertiser,
    pub(super) broker_available: bool,
    pub(super) transmits: VecDeque<Transmit>,
    commands: VecDeque<Command>,
    pub(super) outbox_tx: mpsc::UnboundedSender<(ConnId, Outbound)>,
    outbox_rx: Option<OutboxReceiver>,
    unknown_replies: (Option<Instant>, u32),
    pub(super) stats: GatewayStats,
    /// The identity the transport authenticated for the datagram being handled.
    pub(super) identity: Option<Arc<PeerIdentity>>,
    /// Client ids bound to an identity (PSK file) → that identity's name.
    pub(super) bound_client_ids: HashMap<Arc<str>, Arc<str>>,
    /// Topic ids kept across a restart, until their sensor comes back.
    restored_topics: HashMap<Arc<str>, Vec<(u16, String)>>,
    pub(super) access: Arc<SensorAccess>,
}

impl Gateway {
    /// A gateway with no sessions; the broker is assumed reachable.
    pub fn new(settings: GatewaySettings) -> Gateway {
        let (outbox_tx, outbox_rx) = mpsc::unbounded_channel();
        let restored_topics = settings_restored(&settings);
        Gateway {
            predefined: PredefinedTopics::new(&settings.predefined),
            advertiser: Advertiser::new(settings.gateway_id, settings.advertise_interval),
            settings,
            sessions: HashMap::new(),
            next_key: 1,
            by_client: HashMap::new(),
            by_addr: HashMap::new(),
            by_conn: HashMap::new(),
            timers: BTreeSet::new(),
            broker_available: true,
            transmits: VecDeque::new(),
            commands: VecDeque::new(),
            outbox_tx,
            outbox_rx: Some(outbox_rx),
            unknown_replies: (None, 0),
            stats: GatewayStats::default(),
            identity: None,
            bound_client_ids: HashMap::new(),
            restored_topics,
            access: Arc::new(SensorAccess::default()),
        }
    }

    /// Holds sensors to these ACL rules from now on (default: everything allowed).
    pub fn set_access(&mut self, access: Arc<SensorAccess>) {
        self.access = access;
    }

    /// The receiving end of the shared outbox every sensor connection's
    /// events arrive on; `None` after the first call.
    pub fn take_outbox_receiver(&mut self) -> Option<OutboxReceiver> {
        self.outbox_rx.take()
    }

    /// Tells the gateway whether the broker is reachable: ADVERTISE only while
    /// it is (G-10), CONNACK 0x01 while it is not (G-21).
    pub fn set_broker_available(&mut self, now: Instant, available: bool) {
        self.broker_available = available;
        self.advertiser.set_enabled(now, available);
    }

    /// Starts the ADVERTISE timer (if configured); the first one goes out at `now`.
    pub fn start(&mut self, now: Instant) {
        self.advertiser.set_enabled(now, self.broker_available);
    }

    /// Counters.
    pub fn stats(&self) -> GatewayStats {
        self.stats
    }

    /// Sessions held (connected, asleep or persisted).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let t = self.transmits.pop_front()?;
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += t.payload.len() as u64;
        Some(t)
    }

    /// The next command for the broker core.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`Gateway::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let s = self.timers.first().map(|(t, _)| *t);
        match (s, self.advertiser.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Reserves each identity's client id for that identity: an
    /// unauthenticated sensor or another identity cannot CONNECT or wake
    /// with it, so the ACL user name bound to it cannot be borrowed.
    pub fn bind_identities(&mut self, identities: impl IntoIterator<Item = Arc<PeerIdentity>>) {
        for id in identities {
            self.bound_client_ids
                .insert(id.client_id.clone(), id.name.clone());
        }
    }

    /// Replaces the bound client ids with those of `identities` (a reloaded
    /// PSK file). A sensor connected under a dropped binding keeps its
    /// session, which stays owned by the identity that opened it.
    pub fn rebind_identities(&mut self, identities: impl IntoIterator<Item = Arc<PeerIdentity>>) {
        self.bound_client_ids.clear();
        self.bind_identities(identities);
    }

    /// Replaces the predefined topic ids (a reloaded config). Sessions
    /// created later allocate normal ids above the new highest predefined
    /// id; existing sessions keep their normal ids, which cannot be confused
    /// with predefined ones because the topic id type tells them apart
    /// (MQTT-SN 1.2 §5.3.4, §6.7).
    pub fn set_predefined(&mut self, entries: &[PredefinedTopic]) {
        self.predefined = PredefinedTopics::new(entries);
        self.settings.predefined = entries.to_vec();
    }

    /// The identity that owns `client_id`, if one does: the bound one, or the
    /// one that opened its session.
    pub(super) fn owner_of(&self, client_id: &str) -> Option<Arc<str>> {
        self.bound_client_ids.get(client_id).cloned().or_else(|| {
            self.by_client
                .get(client_id)
                .and_then(|k| self.sessions.get(k))
                .and_then(|s| s.identity.clone())
        })
    }

    /// Handles one datagram received from `peer`.
    pub fn handle_datagram(&mut self, now: Instant, peer: PeerAddr, datagram: Bytes) {
        self.handle_datagram_with_identity(now, peer, datagram, None);
    }

    /// Handles one datagram from a secure transport that authenticated its
    /// sender as `identity`: CONNECT must use the identity's client id, the
    /// broker sees its username, and a session it opened answers only to it.
    pub fn handle_datagram_with_identity(
        &mut self,
        now: Instant,
        peer: PeerAddr,
        datagram: Bytes,
        identity: Option<Arc<PeerIdentity>>,
    ) {
        self.identity = identity;
        self.handle_one(now, peer, datagram);
        self.identity = None;
    }

    fn handle_one(&mut self, now: Instant, peer: PeerAddr, datagram: Bytes) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        // `max_message_size` bounds what is accepted as well as what is sent:
        // an oversize datagram is dropped before any decoding or state change.
        if datagram.len() > self.settings.max_message_size {
            self.stats.malformed += 1;
            tracing::debug!(
                %peer,
                len = datagram.len(),
                max_message_size = self.settings.max_message_size,
                "dropping oversize datagram"
            );
            return;
        }
        let frame = match codec::decode(&datagram) {
            Ok(f) => f,
            Err(e) => {
                self.stats.malformed += 1;
                tracing::debug!(%peer, error = %e, "dropping malformed datagram");
                // A reply may still be due, behind a forwarder too (G-45, G-59, G-91).
                let (addr, e) = match codec::split_encapsulation(&datagram) {
                    Ok(Some(enc)) => match codec::decode_message(&enc.inner) {
                        Err(inner) => (
                            SensorAddr {
                                peer,
                                node_id: Some(enc.node_id),
                            },
                            inner,
                        ),
                        Ok(_) => return,
                    },
                    _ => (SensorAddr::direct(peer), e),
                };
                self.answer_undecodable(now, addr, e);
                return;
            }
        };
        // Ctrl from a forwarder carries nothing the gateway uses (§5.5).
        let (addr, msg) = match frame {
            Frame::Message(m) => (SensorAddr::direct(peer), m),
            Frame::Encapsulated {
                node_id, message, ..
            } => (
                SensorAddr {
                    peer,
                    node_id: Some(node_id),
                },
                message,
            ),
        };
        self.dispatch(now, addr, msg);
    }

    /// Handles one event the broker core sent to sensor connection `conn`.
    pub fn handle_outbound(&mut self, now: Instant, conn: ConnId, event: Outbound) {
        let Some(&key) = self.by_conn.get(&conn) else {
            tracing::trace!(?conn, "event for a connection the gateway no longer has");
            return;
        };
        self.with_session(key, |gw, s| gw.on_outbound(now, s, conn, event));
    }

    // ---- plumbing used by the other files of this module ----

    /// Runs `f` on the session `key` taken out of the table, then puts it back,
    /// updates the indexes and its timer; a session left `Lost`/`Disconnected`
    /// with a clean session (or expired) is removed.
    pub(super) fn with_session(&mut self, key: Key, f: impl FnOnce(&mut Self, &mut Session)) {
        let Some(mut s) = self.sessions.remove(&key) else {
            return;
        };
        let old_conn = s.conn;
        f(self, &mut s);
        // The durable store keeps the ids of persistent sessions; the command
        // precedes any publish that uses a new id, so a PUBACK for it implies
        // the id is on disk.
        if s.topics.take_changed() && !s.clean {
            self.command(Command::PersistSensorTopics {
                client_id: s.client_id.clone(),
                topics: s.topics.entries(),
            });
        }
        if let Some(c) = old_conn
            && s.conn != Some(c)
            && self.by_conn.get(&c) == Some(&key)
        {
            self.by_conn.remove(&c);
        }
        if let Some(c) = s.conn {
            self.by_conn.insert(c, key);
        }
        let gone = matches!(s.state, State::Disconnected | State::Lost) && s.expires_at.is_none();
        if gone {
            self.forget(key, s);
        } else {
            self.reschedule(key, &mut s);
            self.sessions.insert(key, s);
        }
    }

    fn forget(&mut self, key: Key, s: Session) {
        if let Some(at) = s.scheduled {
            self.timers.remove(&(at, key));
        }
        if self.by_client.get(&s.client_id) == Some(&key) {
            self.by_client.remove(&s.client_id);
        }
        if self.by_addr.get(&s.addr) == Some(&key) {
            self.by_addr.remove(&s.addr);
        }
        if let Some(c) = s.conn
            && self.by_conn.get(&c) == Some(&key)
        {
            self.by_conn.remove(&c);
        }
        tracing::debug!(client_id = %s.client_id, "session forgotten");
    }

    fn reschedule(&mut self, key: Key, s: &mut Session) {
        let want = s.deadline();
        if want == s.scheduled {
            return;
        }
        if let Some(at) = s.scheduled {
            self.timers.remove(&(at, key));
        }
        if let Some(at) = want {
            self.timers.insert((at, key));
        }
        s.scheduled = want;
    }

    /// Creates an empty session for `client_id` at `addr`.
    pub(super) fn create_session(
        &mut self,
        now: Instant,
        client_id: Arc<str>,
        addr: SensorAddr,
    ) -> Key {
        let key = self.next_key;
        self.next_key += 1;
        let mut topics = super::topic_registry::TopicRegistry::new(
            self.predefined.first_normal_id(),
            self.settings.max_topics_per_sensor,
        );
        for (id, name) in self.restored_topics.remove(&client_id).unwrap_or_default() {
            topics.restore(id, &name);
        }
        let s = Session::new(
            client_id.clone(),
            addr.clone(),
            now,
            topics,
            self.settings.max_buffered_messages,
        );
        self.by_client.insert(client_id, key);
        self.by_addr.insert(addr, key);
        self.sessions.insert(key, s);
        key
    }

    /// Moves session `key` to `addr` (address change, G-85).
    pub(super) fn rebind(&mut self, key: Key, s: &mut Session, addr: &SensorAddr) {
        if &s.addr == addr {
            return;
        }
        if self.by_addr.get(&s.addr) == Some(&key) {
            self.by_addr.remove(&s.addr);
        }
        s.addr = addr.clone();
        self.by_addr.insert(addr.clone(), key);
    }

    /// Queues a broker command.
    pub(super) fn command(&mut self, c: Command) {
        self.commands.push_back(c);
    }

    /// Sends `msg` to `addr`, encapsulated for nodes behind a forwarder (G-91).
    pub(super) fn send(&mut self, addr: &SensorAddr, msg: &Message) {
        self.send_ctrl(addr, msg, 0, false);
    }

    pub(super) fn send_ctrl(
        &mut self,
        addr: &SensorAddr,
        msg: &Message,
        radius: u8,
        broadcast: bool,
    ) {
        let mut buf = BytesMut::new();
        let r = match &addr.node_id {
            None => codec::encode(msg, &mut buf),
            // G-92: Ctrl bits 7–2 zero, bits 1–0 the broadcast radius.
            Some(node) => codec::encode_frame(
                &Frame::Encapsulated {
                    ctrl: radius & 0b11,
                    node_id: node.clone(),
                    message: msg.clone(),
                },
                &mut buf,
            ),
        };
        match r {
            Ok(()) => self.transmits.push_back(Transmit {
                peer: Some(addr.peer.clone()),
                payload: buf.freeze(),
                broadcast,
                radius,
            }),
            Err(e) => tracing::warn!(%addr, error = %e, "cannot encode a gateway message"),
        }
    }

    /// Answers DISCONNECT to a sender with no usable session, rate-limited (digest §5.20).
    pub(super) fn disconnect_unknown(&mut self, now: Instant, addr: &SensorAddr) {
        let (start, count) = &mut self.unknown_replies;
        if start.is_none_or(|s| now.saturating_duration_since(s) >= Duration::from_secs(1)) {
            *start = Some(now);
            *count = 0;
        }
        if *count >= UNKNOWN_REPLIES_PER_SEC {
            return;
        }
        *count += 1;
        self.send(addr, &Message::Disconnect { duration: None });
    }

    /// Ends the broker connection of `s`, if any.
    pub(super) fn detach(&mut self, s: &mut Session, kind: DisconnectKind) {
        if let Some(conn) = s.conn.take() {
            self.command(Command::Disconnect { conn, kind });
        }
        s.outbox = None;
        s.reset_connection_state();
    }

    /// The session ended (DISCONNECT or loss): a clean one is forgotten, a
    /// persistent one kept until `persistent_session_expiry` (digest §5.15).
    pub(super) fn end_session(
        &mut self,
        now: Instant,
        s: &mut Session,
        state: State,
        kind: DisconnectKind,
    ) {
        self.detach(s, kind);
        s.state = state;
        s.expires_at = (!s.clean).then(|| now + self.settings.persistent_session_expiry);
    }
}

pub(super) fn encode_plain(msg: &Message) -> Option<Bytes> {
    let mut buf = BytesMut::new();
    codec::encode(msg, &mut buf).ok()?;
    Some(buf.freeze())
}

/// The restored topic tables of the settings, by client id.
fn settings_restored(settings: &GatewaySettings) -> HashMap<Arc<str>, Vec<(u16, String)>> {
    settings
        .restored_topics
        .iter()
        .map(|(c, t)| (Arc::from(c.as_str()), t.clone()))
        .collect()
}
