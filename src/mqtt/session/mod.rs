//! One MQTT connection's protocol state, sans-IO: decoded packets and broker
//! events in, packets and broker commands out, time passed in. The tokio task
//! in `mqtt::connection` only moves bytes.

mod access;
mod aliases;
mod connect;
mod convert;
mod inbound;
mod outbound;
mod packet_ids;
mod settings;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::aliases::AliasTables;
pub use self::aliases::{AliasError, InboundAliases, OutboundAliases, OutboundTopic};
use self::packet_ids::PacketIds;
use self::settings::Limits;
pub use self::settings::SessionSettings;
use crate::auth::Authorizer;
use crate::broker::{ClientKind, Command, ConnId, ConnectRequest, DisconnectKind, Outbox};
use crate::mqtt::codec::{
    ConnAck, ConnAckProperties, Connect, DecodeError, Disconnect, DisconnectProperties, Packet,
    ProtocolVersion, ReasonCode,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitConnect,
    /// CONNECT sent to the core; packets that follow are processed in order.
    Attaching,
    Connected,
    Closed,
}

/// Why and how a connection is being closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Human-readable reason for the log line.
    pub reason: String,
    /// True for a normal end (client DISCONNECT), false for errors and timeouts.
    pub graceful: bool,
}

/// Per-connection MQTT protocol state.
///
/// Held inline by every connection task, so its size is part of what an idle
/// connection costs: state only some connections need (topic aliases, refused
/// filters, the close reason) lives behind a `Box` created on first use.
#[derive(Debug)]
pub struct MqttSession {
    limits: Limits,
    conn: ConnId,
    outbox: Outbox,
    state: State,
    version: ProtocolVersion,
    client_id: Option<Arc<str>>,
    assigned_id: bool,
    username: Option<Arc<str>>,
    keep_alive: u16,
    requested_keep_alive: u16,
    session_expiry: u32,
    client_max_packet: u32,
    /// The client's Topic Alias Maximum (0 until an MQTT 5 CONNECT sets it).
    client_topic_alias_max: u16,
    /// Both alias directions, created by the first alias used.
    aliases: Option<Box<AliasTables>>,
    /// Client QoS 1/2 publishes not yet fully acknowledged (Receive Maximum).
    incoming_unacked: PacketIds,
    /// The CONNECT deadline while awaiting CONNECT, afterwards the time the
    /// last packet arrived: a packet received while awaiting CONNECT always
    /// leaves that state, so the two are never needed at once.
    timer: Instant,
    packets: VecDeque<Packet>,
    commands: VecDeque<Command>,
    close: Option<Box<Close>>,
    /// The core knows this connection and must hear when it ends.
    attached: bool,
    /// Password and ACL checks; `None` allows everything.
    authorizer: Option<Arc<Authorizer>>,
    /// SUBSCRIBE packet id → positions of filters the ACL refused; only
    /// while such a SUBSCRIBE awaits its SUBACK.
    #[allow(clippy::box_collection)] // the point: 8 bytes inline instead of 48
    denied_filters: Option<Box<HashMap<u16, Vec<usize>>>>,
}

impl MqttSession {
    /// A new connection that has not yet sent CONNECT.
    pub fn new(
        conn: ConnId,
        outbox: Outbox,
        settings: SessionSettings,
        now: Instant,
    ) -> MqttSession {
        MqttSession {
            limits: Limits::from(&settings),
            conn,
            outbox,
            state: State::AwaitConnect,
            version: ProtocolVersion::V311,
            client_id: None,
            assigned_id: false,
            username: None,
            keep_alive: 0,
            requested_keep_alive: 0,
            session_expiry: 0,
            client_max_packet: u32::MAX,
            client_topic_alias_max: 0,
            aliases: None,
            incoming_unacked: PacketIds::default(),
            timer: now + settings.connect_timeout,
            packets: VecDeque::new(),
            commands: VecDeque::new(),
            close: None,
            attached: false,
            authorizer: None,
            denied_filters: None,
        }
    }

    /// This connection's outbox, which carries the core's back-pressure state.
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// The protocol version packets are encoded with.
    pub fn version(&self) -> ProtocolVersion {
        self.version
    }

    /// The client id, once CONNECT has been accepted.
    pub fn client_id(&self) -> Option<&Arc<str>> {
        self.client_id.as_ref()
    }

    /// The effective keep-alive in seconds.
    pub fn keep_alive(&self) -> u16 {
        self.keep_alive
    }

    /// The largest packet the client accepts.
    pub fn client_max_packet(&self) -> u32 {
        self.client_max_packet
    }

    /// Sets the authenticated user name (the connection layer authenticates).
    pub fn set_username(&mut self, username: Option<Arc<str>>) {
        self.username = username;
    }

    /// True once the session has decided to close.
    pub fn is_closing(&self) -> bool {
        self.close.is_some()
    }

    /// Why the session closed, if it has.
    pub fn close_reason(&self) -> Option<&Close> {
        self.close.as_deref()
    }

    /// The next packet to write. Once drained the queue gives its memory
    /// back: a `Packet` is ~400 bytes, and an idle connection should hold none.
    pub fn poll_packet(&mut self) -> Option<Packet> {
        let next = self.packets.pop_front();
        if next.is_none() && self.packets.capacity() > 0 {
            self.packets = VecDeque::new();
        }
        next
    }

    /// The next command for the broker core (its queue, too, is freed once drained).
    pub fn poll_command(&mut self) -> Option<Command> {
        let next = self.commands.pop_front();
        if next.is_none() && self.commands.capacity() > 0 {
            self.commands = VecDeque::new();
        }
        next
    }

    /// When [`MqttSession::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::AwaitConnect => Some(self.timer),
            State::Attaching | State::Connected if self.keep_alive > 0 => {
                Some(self.timer + keep_alive_limit(self.keep_alive))
            }
            _ => None,
        }
    }

    /// Checks the CONNECT deadline and keep-alive.
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::AwaitConnect if now >= self.timer => {
                self.close_error("no CONNECT received in time", None);
            }
            State::Attaching | State::Connected
                if self.keep_alive > 0 && now >= self.timer + keep_alive_limit(self.keep_alive) =>
            {
                // [MQTT-3.1.2-24]: one and a half keep-alive periods without a packet.
                self.close_error("exceeded timeout", Some(ReasonCode::KeepAliveTimeout));
            }
            _ => {}
        }
    }

    /// The network connection is gone (EOF or error).
    pub fn connection_lost(&mut self, why: &str) {
        if self.close.is_none() {
            self.close_error(why, None);
        }
    }

    /// Whether the next packet in `buf` (not yet decoded) is a QoS 1 PUBLISH
    /// that the MQTT 5 Receive Maximum has no room for. The connection then
    /// leaves it unread until the core's PUBACKs free the window, and TCP
    /// slows the client, instead of closing with 0x93: some clients (MQTT.js,
    /// which Node-RED uses) ignore the server's Receive Maximum, and a broker
    /// that acknowledges QoS 1 at once (Mosquitto) never sees the window
    /// full. A QoS 2 PUBLISH is not held: its window is freed by the client's
    /// own PUBRELs, which may be queued behind it, so it still gets 0x93
    /// (MQTT 5 §4.9, [MQTT-3.3.4-7]).
    pub fn holds_back_publish(&self, buf: &[u8]) -> bool {
        const PUBLISH_QOS1: u8 = 0x32;
        buf.first().is_some_and(|b| b & 0xF6 == PUBLISH_QOS1) && self.receive_window_full()
    }

    /// MQTT 5: as many of the client's QoS 1/2 publishes unacknowledged as
    /// the Receive Maximum allows [MQTT-3.3.4-9].
    fn receive_window_full(&self) -> bool {
        self.version.is_v5()
            && self.incoming_unacked.len() >= usize::from(self.limits.receive_maximum)
    }

    /// Looks at the raw bytes of a CONNECT that is not yet decoded, so that a
    /// decode error can be answered in the client's protocol version.
    pub fn peek_connect(&mut self, buf: &[u8]) {
        if self.state == State::AwaitConnect
            && let Some(version) = crate::mqtt::codec::peek_connect_version(buf)
        {
            self.version = version;
        }
    }

    /// A packet that failed to decode: close with the reason the spec names.
    pub fn handle_decode_error(&mut self, err: &DecodeError) {
        if self.close.is_some() {
            return;
        }
        let reason = ReasonCode::from_u8(err.reason_code()).unwrap_or(ReasonCode::MalformedPacket);
        if self.state == State::AwaitConnect
            && let DecodeError::UnsupportedProtocolVersion { level, .. } = err
        {
            // [MQTT-3.1.2-2]: CONNACK 0x01 (v3) / 0x84 (v5), then close.
            self.version = if *level == 5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V311
            };
            self.send_connack_refusal(1, ReasonCode::UnsupportedProtocolVersion);
            self.close_error(&err.to_string(), None);
            return;
        }
        if self.state == State::AwaitConnect && self.version.is_v5() {
            // A bad MQTT 5 CONNECT is answered with a CONNACK carrying the
            // reason (MQTT 5 §4.13.1, [MQTT-3.2.2-8]).
            self.send_connack_refusal(0, reason);
            self.close_error(&format!("{err} (CONNACK 0x{:02X})", reason.as_u8()), None);
            return;
        }
        let connected = self.state != State::AwaitConnect;
        self.close_error(&err.to_string(), connected.then_some(reason));
    }

    /// Applies one decoded packet from the client.
    pub fn handle_packet(&mut self, packet: Packet, now: Instant) {
        if self.close.is_some() {
            return;
        }
        // Ends the CONNECT deadline too: every branch below leaves AwaitConnect.
        self.timer = now;
        if self.state == State::AwaitConnect {
            match packet {
                Packet::Connect(c) => self.handle_connect(c, now),
                other => self.close_error(
                    &format!(
                        "[MQTT-3.1.0-1] first packet is {} not CONNECT",
                        other.name()
                    ),
                    None,
                ),
            }
            return;
        }
        match packet {
            // Closed without a DISCONNECT, as Mosquitto does: a client that sent
            // CONNECT reads for a CONNACK, and one whose receiver thread reads
            // the same socket can split a DISCONNECT between the two readers
            // and wait forever for the rest (the Paho interoperability client
            // does); a plain close reads as end of stream to both.
            Packet::Connect(_) => self.close_error("[MQTT-3.1.0-2] second CONNECT", None),
            Packet::Publish(p) => self.handle_publish(p, now),
            Packet::PubAck(r) => self.command(Command::PubAck {
                conn: self.conn,
                packet_id: r.packet_id,
            }),
            Packet::PubRec(r) => {
                // A PUBREC with an error reason ends the QoS 2 flow (MQTT 5 §4.3.3).
                let cmd = if r.reason.is_error() {
                    Command::PubComp {
                        conn: self.conn,
                        packet_id: r.packet_id,
                    }
                } else {
                    Command::PubRec {
                        conn: self.conn,
                        packet_id: r.packet_id,
                    }
                };
                self.command(cmd);
            }
            Packet::PubRel(r) => self.command(Command::PubRel {
                conn: self.conn,
                packet_id: r.packet_id,
            }),
            Packet::PubComp(r) => self.command(Command::PubComp {
                conn: self.conn,
                packet_id: r.packet_id,
            }),
            Packet::Subscribe(s) => self.handle_subscribe(s),
            Packet::Unsubscribe(u) => {
                let filters = u.filters.iter().map(|f| Arc::from(f.as_str())).collect();
                self.command(Command::Unsubscribe {
                    conn: self.conn,
                    packet_id: u.packet_id,
                    filters,
                });
            }
            Packet::PingReq => self.packets.push_back(Packet::PingResp),
            Packet::Disconnect(d) => self.handle_disconnect(&d),
            Packet::Auth(_) => self.protocol_error("AUTH without an authentication method"),
            other => self.protocol_error(&format!("{} is not sent by clients", other.name())),
        }
    }

    fn command(&mut self, cmd: Command) {
        self.commands.push_back(cmd);
    }

    /// The alias tables, created on first use with both maximums: the
    /// client's is known by then, since aliases only flow after CONNECT.
    fn aliases(&mut self) -> &mut AliasTables {
        let (inbound_max, outbound_max) =
            (self.limits.max_topic_alias, self.client_topic_alias_max);
        self.aliases.get_or_insert_with(|| {
            Box::new(AliasTables {
                inbound: InboundAliases::new(inbound_max),
                outbound: OutboundAliases::new(outbound_max),
            })
        })
    }

    fn handle_connect(&mut self, c: Connect, now: Instant) {
        self.version = c.protocol;
        if c.properties.authentication_method.is_some() {
            // Extended authentication is not supported (MQTT 5 §4.12).
            self.send_connack_refusal(5, ReasonCode::BadAuthenticationMethod);
            self.close_error("extended authentication is not supported", None);
            return;
        }
        let (client_id, assigned) = match connect::client_identifier(&c, &self.limits) {
            Ok(v) => v,
            Err(r) => return self.refuse(&r),
        };
        let will = match connect::will(&c, &self.limits, now) {
            Ok(w) => w,
            Err(r) => return self.refuse(&r),
        };
        if let Err(r) = self.check_credentials(&c, &client_id) {
            return self.refuse(&r);
        }
        self.requested_keep_alive = c.keep_alive;
        self.keep_alive = connect::keep_alive(c.keep_alive, self.limits.max_keepalive);
        let v5 = self.version.is_v5();
        self.session_expiry = if v5 {
            c.properties.session_expiry_interval.unwrap_or(0)
        } else if c.clean_start {
            0
        } else {
            u32::MAX
        };
        let receive_maximum = if v5 {
            c.properties.receive_maximum.unwrap_or(u16::MAX)
        } else {
            u16::MAX
        };
        if v5 {
            self.client_max_packet = c.properties.maximum_packet_size.unwrap_or(u32::MAX);
            self.client_topic_alias_max = c.properties.topic_alias_maximum.unwrap_or(0);
        }
        if self.username.is_none() {
            self.username = c.username.as_deref().map(Arc::from);
        }
        self.client_id = Some(client_id.clone());
        self.assigned_id = assigned;
        self.state = State::Attaching;
        self.attached = true;
        let kind = if v5 {
            ClientKind::Mqtt5
        } else {
            ClientKind::Mqtt3
        };
        self.command(Command::Connect(ConnectRequest {
            conn: self.conn,
            client_id,
            clean_start: c.clean_start,
            session_expiry: self.session_expiry,
            will,
            receive_maximum,
            username: self.username.clone(),
            kind,
            outbox: self.outbox.clone(),
            queue_limits: None,
        }));
    }

    fn refuse(&mut self, r: &connect::Refusal) {
        self.send_connack_refusal(r.v3_code, r.v5_reason);
        self.close_error(&r.why, None);
    }

    fn send_connack_refusal(&mut self, v3_code: u8, v5_reason: ReasonCode) {
        let code = if self.version.is_v5() {
            v5_reason.as_u8()
        } else {
            v3_code
        };
        self.packets.push_back(Packet::ConnAck(ConnAck {
            session_present: false,
            code,
            properties: ConnAckProperties::default(),
        }));
    }

    fn connack(&mut self, session_present: bool) {
        let mut properties = ConnAckProperties::default();
        if self.version.is_v5() {
            properties.receive_maximum = Some(self.limits.receive_maximum);
            // Absence means "the protocol's limit"; a larger value than a
            // remaining length can express is refused by clients (paho-mqtt
            // accepts 1..=268,435,455), so it is left out (MQTT 5 §3.2.2.3.6).
            properties.maximum_packet_size =
                Some(self.limits.max_packet_size).filter(|&n| n <= MAX_ADVERTISED_PACKET_SIZE);
            properties.topic_alias_maximum = Some(self.limits.max_topic_alias);
            properties.retain_available = Some(self.limits.retain_available);
            properties.wildcard_subscription_available = Some(true);
            properties.subscription_identifiers_available = Some(true);
            properties.shared_subscription_available = Some(true);
            if self.assigned_id {
                properties.assigned_client_identifier =
                    self.client_id.as_deref().map(str::to_string);
            }
            if self.keep_alive != self.requested_keep_alive {
                properties.server_keep_alive = Some(self.keep_alive);
            }
        }
        self.packets.push_back(Packet::ConnAck(ConnAck {
            session_present,
            code: 0,
            properties,
        }));
        self.state = State::Connected;
    }

    fn handle_disconnect(&mut self, d: &Disconnect) {
        let mut session_expiry = None;
        if self.version.is_v5()
            && let Some(e) = d.properties.session_expiry_interval
        {
            if self.session_expiry == 0 && e != 0 {
                return self.protocol_error(
                    "[MQTT-3.14.2-2] session expiry set at DISCONNECT after connecting with 0",
                );
            }
            session_expiry = Some(e);
        }
        let publish_will = d.reason == ReasonCode::DisconnectWithWillMessage;
        if self.attached {
            self.command(Command::Disconnect {
                conn: self.conn,
                kind: DisconnectKind::Graceful {
                    publish_will,
                    session_expiry,
                },
            });
            self.attached = false;
        }
        self.state = State::Closed;
        self.close = Some(Box::new(Close {
            reason: "disconnected by client".into(),
            graceful: true,
        }));
    }

    fn protocol_error(&mut self, why: &str) {
        self.close_error(why, Some(ReasonCode::ProtocolError));
    }

    /// Closes for an error: MQTT 5 clients get a DISCONNECT with `reason`
    /// first; the core publishes the will.
    fn close_error(&mut self, why: &str, reason: Option<ReasonCode>) {
        if self.close.is_some() {
            return;
        }
        let mut why = why.to_string();
        if let Some(reason) = reason
            && self.version.is_v5()
            && self.state != State::AwaitConnect
        {
            self.packets.push_back(Packet::Disconnect(Disconnect {
                reason,
                properties: DisconnectProperties::default(),
            }));
            why = format!("{why} (DISCONNECT 0x{:02X})", reason.as_u8());
        }
        if self.attached {
            self.command(Command::Disconnect {
                conn: self.conn,
                kind: DisconnectKind::Abnormal,
            });
            self.attached = false;
        }
        self.state = State::Closed;
        self.close = Some(Box::new(Close {
            reason: why,
            graceful: false,
        }));
    }
}

/// The largest Maximum Packet Size put in a CONNACK: the largest remaining length.
const MAX_ADVERTISED_PACKET_SIZE: u32 = 268_435_455;

fn keep_alive_limit(keep_alive: u16) -> Duration {
    Duration::from_millis(u64::from(keep_alive) * 1500)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_footprint;
#[cfg(test)]
mod tests_v5;
