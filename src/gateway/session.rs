//! One sensor's session as the gateway keeps it: its state in the MQTT-SN
//! client state machine (MQTT-SN 1.2 §6.14, digest §4.14), its will, topic
//! table, QoS bookkeeping and the deliveries waiting for it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::address::SensorAddr;
use super::retransmit::Retransmitter;
use super::sleep_buffer::SleepBuffer;
use super::topic_registry::TopicRegistry;
use crate::broker::{ConnId, Message as BrokerMessage, Outbox, Will};
use crate::qos::QoS;

/// Where a session is in the client state machine (digest §4.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// CONNECT received; will prompts or the broker's answer pending.
    Connecting(Handshake),
    /// Connected and supervised by keep-alive.
    Active,
    /// Sleeping; deliveries are buffered.
    Asleep,
    /// Woken by PINGREQ(ClientId); buffered deliveries are being flushed.
    Awake,
    /// Ended by DISCONNECT; kept only for a CleanSession=0 session.
    Disconnected,
    /// Keep-alive, sleep or retransmission timeout; the will was published.
    Lost,
}

/// The connection setup in progress (MQTT-SN 1.2 §6.3, digest §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// CleanSession flag of the CONNECT.
    pub clean: bool,
    /// Will flag of the CONNECT.
    pub will_flag: bool,
    /// Keep-alive of the CONNECT, seconds.
    pub keep_alive: u16,
    /// What the gateway waits for.
    pub stage: Stage,
    /// The will collected by the prompts so far (`None` after an empty WILLTOPIC).
    pub will: Option<WillData>,
    /// The session's broker connection stays (CleanSession=0 while connected or asleep).
    pub reuse_conn: bool,
    /// When the current prompt is resent.
    pub deadline: Instant,
    /// Prompts resent so far.
    pub retries: u32,
}

/// Handshake stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// WILLTOPICREQ sent.
    WillTopic,
    /// WILLMSGREQ sent.
    WillMsg,
    /// `Command::Connect` sent; waiting for `Outbound::ConnAck`.
    ConnAck,
}

/// A stored MQTT-SN will (MQTT-SN 1.2 §6.3, §6.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillData {
    /// Will topic.
    pub topic: Arc<str>,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain.
    pub retain: bool,
    /// Will message.
    pub message: Bytes,
}

impl WillData {
    /// The broker-core will; MQTT-SN wills have no delay.
    pub fn to_will(&self) -> Will {
        Will {
            message: BrokerMessage::new(
                self.topic.clone(),
                self.message.clone(),
                self.qos,
                self.retain,
            ),
            delay: 0,
        }
    }
}

/// A SUBSCRIBE waiting for the broker's SUBACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingSub {
    /// TopicId to put in the SUBACK.
    pub topic_id: u16,
    /// The id is a normal id the client learns from this SUBACK.
    pub normal: bool,
}

/// One sensor session.
#[derive(Debug)]
pub struct Session {
    /// ClientId.
    pub client_id: Arc<str>,
    /// Current address.
    pub addr: SensorAddr,
    /// The authenticated identity that opened the session, if any: only it
    /// may act for the session afterwards (DTLS, docs/dtls.md).
    pub identity: Option<Arc<str>>,
    /// The ACL user name that identity is bound to, if any (a client
    /// certificate's is not known before it connects); wins over the
    /// configured `[gateway] usernames`.
    pub username: Option<Arc<str>>,
    /// The broker connection, while attached.
    pub conn: Option<ConnId>,
    /// The outbox handed to the broker with `conn` (for its pending count).
    pub outbox: Option<Outbox>,
    /// State.
    pub state: State,
    /// CleanSession of the last accepted CONNECT.
    pub clean: bool,
    /// Keep-alive period; zero means no supervision (digest §5.12).
    pub keep_alive: Duration,
    /// Sleep duration of the last DISCONNECT(Duration).
    pub sleep: Duration,
    /// Last datagram from the client (keep-alive and sleep supervision, G-72).
    pub last_heard: Instant,
    /// Stored will.
    pub will: Option<WillData>,
    /// Normal topic ids.
    pub topics: TopicRegistry,
    /// Exact topic names the client refused in a REGACK (G-55).
    pub rejected: HashSet<Arc<str>>,
    /// SUBSCRIBEs waiting for the broker, by MsgId.
    pub pending_subs: HashMap<u16, PendingSub>,
    /// Client QoS 1/2 PUBLISHes waiting for the broker, MsgId → TopicId for the PUBACK.
    pub pending_pubs: HashMap<u16, u16>,
    /// Client QoS 2 MsgIds answered with PUBREC, waiting for PUBREL (G-35).
    pub awaiting_rel: HashSet<u16>,
    /// Deliveries PUBREC'd by the client, waiting for the broker's PubRel.
    pub awaiting_core_rel: HashSet<u16>,
    /// Abandoned QoS 2 deliveries: the broker's PubRel is answered at once.
    pub auto_complete: HashSet<u16>,
    /// Gateway messages in flight.
    pub retransmit: Retransmitter,
    /// Deliveries not yet sent (asleep, or behind a REGISTER).
    pub queue: SleepBuffer,
    /// The outstanding gateway REGISTER: MsgId and topic id.
    pub register: Option<(u16, u16)>,
    /// Last MsgId used for a gateway REGISTER.
    pub last_msg_id: u16,
    /// The last CONNACK 0x00: when, flags and keep-alive (G-25).
    pub connack: Option<(Instant, bool, bool, u16)>,
    /// When a persisted (disconnected or lost) session is forgotten.
    pub expires_at: Option<Instant>,
    /// The deadline currently registered with the gateway's timer set.
    pub scheduled: Option<Instant>,
}

impl Session {
    /// A new session in the `Disconnected` state.
    pub fn new(
        client_id: Arc<str>,
        addr: SensorAddr,
        now: Instant,
        topics: TopicRegistry,
        buffer: usize,
    ) -> Session {
        Session {
            client_id,
            addr,
            identity: None,
            username: None,
            conn: None,
            outbox: None,
            state: State::Disconnected,
            clean: true,
            keep_alive: Duration::ZERO,
            sleep: Duration::ZERO,
            last_heard: now,
            will: None,
            topics,
            rejected: HashSet::new(),
            pending_subs: HashMap::new(),
            pending_pubs: HashMap::new(),
            awaiting_rel: HashSet::new(),
            awaiting_core_rel: HashSet::new(),
            auto_complete: HashSet::new(),
            retransmit: Retransmitter::default(),
            queue: SleepBuffer::new(buffer),
            register: None,
            last_msg_id: 0,
            connack: None,
            expires_at: None,
            scheduled: None,
        }
    }

    /// A fresh MsgId for a gateway-originated message; never 0 (digest §5.17).
    pub fn next_msg_id(&mut self) -> u16 {
        self.last_msg_id = self.last_msg_id.checked_add(1).unwrap_or(1);
        self.last_msg_id
    }

    /// True while the broker connection is attached and usable for deliveries.
    pub fn is_live(&self) -> bool {
        self.conn.is_some() && matches!(self.state, State::Active | State::Asleep | State::Awake)
    }

    /// Forgets everything that belongs to one broker connection.
    pub fn reset_connection_state(&mut self) {
        self.pending_subs.clear();
        self.pending_pubs.clear();
        self.awaiting_rel.clear();
        self.awaiting_core_rel.clear();
        self.auto_complete.clear();
        self.retransmit.clear();
        self.queue.clear();
        self.register = None;
    }

    /// When something must happen to this session without any input.
    pub fn deadline(&self) -> Option<Instant> {
        let own = match &self.state {
            State::Connecting(h) => Some(h.deadline),
            State::Active => supervision_deadline(self.last_heard, self.keep_alive),
            State::Asleep | State::Awake => supervision_deadline(self.last_heard, self.sleep),
            State::Disconnected | State::Lost => self.expires_at,
        };
        let retx = match self.state {
            State::Active | State::Awake => self.retransmit.next_deadline(),
            _ => None,
        };
        match (own, retx) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// The supervision timeout: the period plus 10 % above one minute, 50 % up to
/// and including one minute (MQTT-SN 1.2 §7.2, digest §4.18, G-71, G-78).
pub fn tolerance(period: Duration) -> Duration {
    if period > Duration::from_secs(60) {
        period + period / 10
    } else {
        period + period / 2
    }
}

fn supervision_deadline(last: Instant, period: Duration) -> Option<Instant> {
    (!period.is_zero()).then(|| last + tolerance(period))
}
