//! MsgType values, Flags bits and return codes (digest §2.2–§2.4).

use crate::qos::QoS;

use super::message::{Message, ReturnCode, SnQos};

/// The MsgType octet of every defined MQTT-SN 1.2 message (digest §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MsgType {
    /// 0x00
    Advertise = 0x00,
    /// 0x01
    SearchGw = 0x01,
    /// 0x02
    GwInfo = 0x02,
    /// 0x04
    Connect = 0x04,
    /// 0x05
    ConnAck = 0x05,
    /// 0x06
    WillTopicReq = 0x06,
    /// 0x07
    WillTopic = 0x07,
    /// 0x08
    WillMsgReq = 0x08,
    /// 0x09
    WillMsg = 0x09,
    /// 0x0A
    Register = 0x0A,
    /// 0x0B
    RegAck = 0x0B,
    /// 0x0C
    Publish = 0x0C,
    /// 0x0D
    PubAck = 0x0D,
    /// 0x0E (not the MQTT order, G-08)
    PubComp = 0x0E,
    /// 0x0F
    PubRec = 0x0F,
    /// 0x10
    PubRel = 0x10,
    /// 0x12
    Subscribe = 0x12,
    /// 0x13
    SubAck = 0x13,
    /// 0x14
    Unsubscribe = 0x14,
    /// 0x15
    UnsubAck = 0x15,
    /// 0x16
    PingReq = 0x16,
    /// 0x17
    PingResp = 0x17,
    /// 0x18
    Disconnect = 0x18,
    /// 0x1A
    WillTopicUpd = 0x1A,
    /// 0x1B
    WillTopicResp = 0x1B,
    /// 0x1C
    WillMsgUpd = 0x1C,
    /// 0x1D
    WillMsgResp = 0x1D,
    /// 0xFE: forwarder encapsulation.
    Encapsulated = 0xFE,
}

impl MsgType {
    /// Parses a MsgType octet; reserved values give `None` (G-05).
    pub fn from_u8(v: u8) -> Option<MsgType> {
        use MsgType::*;
        Some(match v {
            0x00 => Advertise,
            0x01 => SearchGw,
            0x02 => GwInfo,
            0x04 => Connect,
            0x05 => ConnAck,
            0x06 => WillTopicReq,
            0x07 => WillTopic,
            0x08 => WillMsgReq,
            0x09 => WillMsg,
            0x0A => Register,
            0x0B => RegAck,
            0x0C => Publish,
            0x0D => PubAck,
            0x0E => PubComp,
            0x0F => PubRec,
            0x10 => PubRel,
            0x12 => Subscribe,
            0x13 => SubAck,
            0x14 => Unsubscribe,
            0x15 => UnsubAck,
            0x16 => PingReq,
            0x17 => PingResp,
            0x18 => Disconnect,
            0x1A => WillTopicUpd,
            0x1B => WillTopicResp,
            0x1C => WillMsgUpd,
            0x1D => WillMsgResp,
            0xFE => Encapsulated,
            _ => return None,
        })
    }

    /// The wire value.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

impl Message {
    /// The MsgType of this message.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Message::Advertise { .. } => MsgType::Advertise,
            Message::SearchGw { .. } => MsgType::SearchGw,
            Message::GwInfo { .. } => MsgType::GwInfo,
            Message::Connect { .. } => MsgType::Connect,
            Message::ConnAck { .. } => MsgType::ConnAck,
            Message::WillTopicReq => MsgType::WillTopicReq,
            Message::WillTopic(_) => MsgType::WillTopic,
            Message::WillMsgReq => MsgType::WillMsgReq,
            Message::WillMsg { .. } => MsgType::WillMsg,
            Message::Register { .. } => MsgType::Register,
            Message::RegAck { .. } => MsgType::RegAck,
            Message::Publish { .. } => MsgType::Publish,
            Message::PubAck { .. } => MsgType::PubAck,
            Message::PubComp { .. } => MsgType::PubComp,
            Message::PubRec { .. } => MsgType::PubRec,
            Message::PubRel { .. } => MsgType::PubRel,
            Message::Subscribe { .. } => MsgType::Subscribe,
            Message::SubAck { .. } => MsgType::SubAck,
            Message::Unsubscribe { .. } => MsgType::Unsubscribe,
            Message::UnsubAck { .. } => MsgType::UnsubAck,
            Message::PingReq { .. } => MsgType::PingReq,
            Message::PingResp => MsgType::PingResp,
            Message::Disconnect { .. } => MsgType::Disconnect,
            Message::WillTopicUpd(_) => MsgType::WillTopicUpd,
            Message::WillTopicResp { .. } => MsgType::WillTopicResp,
            Message::WillMsgUpd { .. } => MsgType::WillMsgUpd,
            Message::WillMsgResp { .. } => MsgType::WillMsgResp,
        }
    }
}

/// Flags bit 7: DUP (digest §2.3).
pub const FLAG_DUP: u8 = 0x80;
/// Flags bits 6–5: QoS.
pub const FLAG_QOS_MASK: u8 = 0x60;
/// Shift of the QoS bits.
pub const FLAG_QOS_SHIFT: u8 = 5;
/// Flags bit 4: Retain.
pub const FLAG_RETAIN: u8 = 0x10;
/// Flags bit 3: Will (CONNECT).
pub const FLAG_WILL: u8 = 0x08;
/// Flags bit 2: CleanSession (CONNECT).
pub const FLAG_CLEAN_SESSION: u8 = 0x04;
/// Flags bits 1–0: TopicIdType.
pub const FLAG_TOPIC_ID_TYPE_MASK: u8 = 0x03;

/// TopicIdType 0b00: normal id (PUBLISH) or topic name (SUBSCRIBE/UNSUBSCRIBE).
pub const TOPIC_ID_TYPE_NORMAL: u8 = 0b00;
/// TopicIdType 0b01: predefined id.
pub const TOPIC_ID_TYPE_PREDEFINED: u8 = 0b01;
/// TopicIdType 0b10: short topic name.
pub const TOPIC_ID_TYPE_SHORT: u8 = 0b10;
/// TopicIdType 0b11: reserved (digest §5.2).
pub const TOPIC_ID_TYPE_RESERVED: u8 = 0b11;

/// The only defined CONNECT ProtocolId (digest §2.5).
pub const PROTOCOL_ID: u8 = 0x01;

/// First octet announcing the 3-octet long-form Length (digest §2.1, G-01).
pub const LONG_FORM_MARKER: u8 = 0x01;

impl ReturnCode {
    /// The wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            ReturnCode::Accepted => 0x00,
            ReturnCode::Congestion => 0x01,
            ReturnCode::InvalidTopicId => 0x02,
            ReturnCode::NotSupported => 0x03,
            ReturnCode::Reserved(v) => v,
        }
    }

    /// Parses any octet; 0x04..=0xFF become `Reserved` so decoding stays total.
    pub fn from_u8(v: u8) -> ReturnCode {
        match v {
            0x00 => ReturnCode::Accepted,
            0x01 => ReturnCode::Congestion,
            0x02 => ReturnCode::InvalidTopicId,
            0x03 => ReturnCode::NotSupported,
            v => ReturnCode::Reserved(v),
        }
    }
}

impl SnQos {
    /// The two-bit wire value; QoS −1 is 0b11.
    pub fn to_bits(self) -> u8 {
        match self {
            SnQos::Level(q) => q.as_u8(),
            SnQos::MinusOne => 0b11,
        }
    }

    /// Parses the two QoS bits (only the low two bits of `bits` are read).
    pub fn from_bits(bits: u8) -> SnQos {
        match QoS::from_u8(bits & 0b11) {
            Some(q) => SnQos::Level(q),
            None => SnQos::MinusOne,
        }
    }
}
