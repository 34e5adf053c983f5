//! MQTT control packets as typed values, shared by 3.1, 3.1.1 and 5.0.
//! Fields that only exist in MQTT 5 are ignored when encoding for 3.x and
//! left at their defaults when decoding 3.x.

use std::sync::Arc;

use bytes::Bytes;

use super::properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
use super::reason::{ConnectReturnCode, ReasonCode};
use crate::qos::QoS;

/// MQTT protocol version, as negotiated by CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V31,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V311,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte sent in CONNECT.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V31 => 3,
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The protocol name sent in CONNECT.
    pub fn protocol_name(self) -> &'static str {
        match self {
            ProtocolVersion::V31 => "MQIsdp",
            ProtocolVersion::V311 | ProtocolVersion::V5 => "MQTT",
        }
    }

    /// Matches a CONNECT protocol name and level pair.
    pub fn from_name_and_level(name: &str, level: u8) -> Option<ProtocolVersion> {
        match (name, level) {
            ("MQIsdp", 3) => Some(ProtocolVersion::V31),
            ("MQTT", 4) => Some(ProtocolVersion::V311),
            ("MQTT", 5) => Some(ProtocolVersion::V5),
            _ => None,
        }
    }

    /// True for MQTT 5.
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

/// Any MQTT control packet.
#[derive(Debug, Clone, PartialEq)]
pub enum Packet {
    /// CONNECT (client → server).
    Connect(Connect),
    /// CONNACK (server → client).
    ConnAck(ConnAck),
    /// PUBLISH (both directions).
    Publish(Publish),
    /// PUBACK (QoS 1 acknowledgement).
    PubAck(PubResponse),
    /// PUBREC (QoS 2, part 1).
    PubRec(PubResponse),
    /// PUBREL (QoS 2, part 2).
    PubRel(PubResponse),
    /// PUBCOMP (QoS 2, part 3).
    PubComp(PubResponse),
    /// SUBSCRIBE (client → server).
    Subscribe(Subscribe),
    /// SUBACK (server → client).
    SubAck(SubAck),
    /// UNSUBSCRIBE (client → server).
    Unsubscribe(Unsubscribe),
    /// UNSUBACK (server → client).
    UnsubAck(UnsubAck),
    /// PINGREQ.
    PingReq,
    /// PINGRESP.
    PingResp,
    /// DISCONNECT (client → server; also server → client in MQTT 5).
    Disconnect(Disconnect),
    /// AUTH (MQTT 5 only).
    Auth(Auth),
}

impl Packet {
    /// The packet type name, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Packet::Connect(_) => "CONNECT",
            Packet::ConnAck(_) => "CONNACK",
            Packet::Publish(_) => "PUBLISH",
            Packet::PubAck(_) => "PUBACK",
            Packet::PubRec(_) => "PUBREC",
            Packet::PubRel(_) => "PUBREL",
            Packet::PubComp(_) => "PUBCOMP",
            Packet::Subscribe(_) => "SUBSCRIBE",
            Packet::SubAck(_) => "SUBACK",
            Packet::Unsubscribe(_) => "UNSUBSCRIBE",
            Packet::UnsubAck(_) => "UNSUBACK",
            Packet::PingReq => "PINGREQ",
            Packet::PingResp => "PINGRESP",
            Packet::Disconnect(_) => "DISCONNECT",
            Packet::Auth(_) => "AUTH",
        }
    }
}

/// CONNECT (§3.1).
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    /// Protocol version announced by the client (decides the CONNECT layout).
    pub protocol: ProtocolVersion,
    /// Clean Session (3.x) / Clean Start (5).
    pub clean_start: bool,
    /// Keep alive in seconds; 0 disables it.
    pub keep_alive: u16,
    /// Client identifier; may be empty.
    pub client_id: String,
    /// Will message, if the will flag is set.
    pub will: Option<LastWill>,
    /// User name, if the user name flag is set.
    pub username: Option<String>,
    /// Password, if the password flag is set.
    pub password: Option<Bytes>,
    /// CONNECT properties (MQTT 5).
    pub properties: ConnectProperties,
}

/// Will message carried in CONNECT (§3.1.3.2).
#[derive(Debug, Clone, PartialEq)]
pub struct LastWill {
    /// Will topic.
    pub topic: String,
    /// Will payload.
    pub payload: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Will properties (MQTT 5).
    pub properties: WillProperties,
}

/// CONNACK (§3.2).
#[derive(Debug, Clone, PartialEq)]
pub struct ConnAck {
    /// Session Present flag.
    pub session_present: bool,
    /// 3.x return code ([`ConnectReturnCode`]) or v5 reason code ([`ReasonCode`]) as a byte.
    pub code: u8,
    /// CONNACK properties (MQTT 5).
    pub properties: ConnAckProperties,
}

impl ConnAck {
    /// `code` read as an MQTT 5 reason code.
    pub fn reason_code(&self) -> Option<ReasonCode> {
        ReasonCode::from_u8(self.code)
    }

    /// `code` read as an MQTT 3.1/3.1.1 return code.
    pub fn return_code(&self) -> Option<ConnectReturnCode> {
        ConnectReturnCode::from_u8(self.code)
    }
}

/// PUBLISH (§3.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// DUP flag.
    pub dup: bool,
    /// QoS level.
    pub qos: QoS,
    /// RETAIN flag.
    pub retain: bool,
    /// Topic name; empty in MQTT 5 when a Topic Alias stands for it.
    pub topic: Arc<str>,
    /// Packet identifier; present exactly when QoS > 0.
    pub packet_id: Option<u16>,
    /// PUBLISH properties (MQTT 5).
    pub properties: PublishProperties,
    /// Application payload, sliced from the receive buffer without copying.
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4–3.7).
#[derive(Debug, Clone, PartialEq)]
pub struct PubResponse {
    /// Packet identifier.
    pub packet_id: u16,
    /// Reason code (MQTT 5; always Success in 3.x).
    pub reason: ReasonCode,
    /// Reason String and User Properties (MQTT 5).
    pub properties: AckProperties,
}

impl PubResponse {
    /// A successful response without properties.
    pub fn new(packet_id: u16) -> PubResponse {
        PubResponse {
            packet_id,
            reason: ReasonCode::Success,
            properties: AckProperties::default(),
        }
    }
}

/// MQTT 5 Retain Handling subscription option (§3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// 0: send retained messages at subscribe time.
    #[default]
    SendAtSubscribe = 0,
    /// 1: send retained messages only if the subscription is new.
    SendIfNew = 1,
    /// 2: do not send retained messages.
    DoNotSend = 2,
}

/// Subscription options byte (§3.8.3.1); 3.x uses `qos` only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// Maximum QoS.
    pub qos: QoS,
    /// No Local (MQTT 5).
    pub no_local: bool,
    /// Retain As Published (MQTT 5).
    pub retain_as_published: bool,
    /// Retain Handling (MQTT 5).
    pub retain_handling: RetainHandling,
}

/// SUBSCRIBE (§3.8).
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// Topic filters with their options; never empty on the wire.
    pub filters: Vec<(String, SubscriptionOptions)>,
    /// SUBSCRIBE properties (MQTT 5).
    pub properties: SubscribeProperties,
}

/// SUBACK (§3.9).
#[derive(Debug, Clone, PartialEq)]
pub struct SubAck {
    /// Packet identifier.
    pub packet_id: u16,
    /// One code per filter: granted QoS 0..2 or a failure (3.x: 0x80 only).
    pub reasons: Vec<ReasonCode>,
    /// Reason String and User Properties (MQTT 5).
    pub properties: AckProperties,
}

/// UNSUBSCRIBE (§3.10).
#[derive(Debug, Clone, PartialEq)]
pub struct Unsubscribe {
    /// Packet identifier.
    pub packet_id: u16,
    /// Topic filters; never empty on the wire.
    pub filters: Vec<String>,
    /// UNSUBSCRIBE properties (MQTT 5).
    pub properties: UnsubscribeProperties,
}

/// UNSUBACK (§3.11).
#[derive(Debug, Clone, PartialEq)]
pub struct UnsubAck {
    /// Packet identifier.
    pub packet_id: u16,
    /// One reason code per filter (MQTT 5); always empty in 3.x.
    pub reasons: Vec<ReasonCode>,
    /// Reason String and User Properties (MQTT 5).
    pub properties: AckProperties,
}

/// DISCONNECT (§3.14); 3.x has neither reason nor properties.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Disconnect {
    /// Reason code (MQTT 5).
    pub reason: ReasonCode,
    /// DISCONNECT properties (MQTT 5).
    pub properties: DisconnectProperties,
}

/// AUTH (§3.15, MQTT 5 only).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Auth {
    /// Reason code: Success, Continue authentication or Re-authenticate.
    pub reason: ReasonCode,
    /// AUTH properties.
    pub properties: AuthProperties,
}
