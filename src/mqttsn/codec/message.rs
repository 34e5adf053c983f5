//! The MQTT-SN 1.2 message types (spec digest §2, §3).

use bytes::Bytes;

use crate::qos::QoS;

/// Return codes carried by CONNACK, REGACK, PUBACK, SUBACK, WILLTOPICRESP and
/// WILLMSGRESP (MQTT-SN 1.2 §5.3.10, digest §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReturnCode {
    /// 0x00
    Accepted,
    /// 0x01
    Congestion,
    /// 0x02
    InvalidTopicId,
    /// 0x03
    NotSupported,
    /// 0x04..=0xFF: reserved values are kept so that decoding is total.
    Reserved(u8),
}

/// QoS as carried in MQTT-SN flags, including QoS −1 (0b11, digest §2.3, §4.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SnQos {
    /// A QoS 0, 1 or 2 level.
    Level(QoS),
    /// QoS −1: publish without a connection (predefined ids and short names only).
    MinusOne,
}

/// The topic carried by PUBLISH (offsets 3–4), by TopicIdType (digest §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicRef {
    /// 0b00: a normal id obtained through REGISTER/REGACK or SUBACK.
    Normal(u16),
    /// 0b01: a predefined id configured on both sides.
    Predefined(u16),
    /// 0b10: a two-character short topic name.
    Short([u8; 2]),
}

/// The topic carried by SUBSCRIBE and UNSUBSCRIBE (offset 5..), digest §2.6.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicFilterRef {
    /// 0b00: a topic name or filter, raw bytes (UTF-8 is checked by the gateway).
    Name(Bytes),
    /// 0b01: a predefined id.
    Predefined(u16),
    /// 0b10: a two-character short topic name.
    Short([u8; 2]),
}

/// The flags of CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectFlags {
    /// Will: the client wants to be asked for a will topic and message.
    pub will: bool,
    /// CleanSession, extended to will data (digest §4.3).
    pub clean_session: bool,
}

/// Will topic carried by WILLTOPIC and WILLTOPICUPD when not empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WillTopic {
    /// Will QoS (QoS −1 is not a will QoS; the codec rejects 0b11 here).
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
    /// Raw topic bytes.
    pub topic: Bytes,
}

/// One MQTT-SN message (all 27 types of MQTT-SN 1.2 except the encapsulation,
/// which is [`Frame::Encapsulated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// 0x00 ADVERTISE
    Advertise {
        /// GwId
        gw_id: u8,
        /// Seconds until the next ADVERTISE.
        duration: u16,
    },
    /// 0x01 SEARCHGW
    SearchGw {
        /// Broadcast radius.
        radius: u8,
    },
    /// 0x02 GWINFO
    GwInfo {
        /// GwId
        gw_id: u8,
        /// GwAdd; empty when sent by a gateway.
        gw_add: Bytes,
    },
    /// 0x04 CONNECT
    Connect {
        /// Will and CleanSession flags.
        flags: ConnectFlags,
        /// ProtocolId; 0x01 is the only defined value (checked by the gateway).
        protocol_id: u8,
        /// Keep-alive duration in seconds.
        duration: u16,
        /// Raw client id bytes.
        client_id: Bytes,
    },
    /// 0x05 CONNACK
    ConnAck {
        /// Return code.
        code: ReturnCode,
    },
    /// 0x06 WILLTOPICREQ
    WillTopicReq,
    /// 0x07 WILLTOPIC; `None` is the empty WILLTOPIC (exactly 2 octets).
    WillTopic(Option<WillTopic>),
    /// 0x08 WILLMSGREQ
    WillMsgReq,
    /// 0x09 WILLMSG
    WillMsg {
        /// Will payload.
        message: Bytes,
    },
    /// 0x0A REGISTER
    Register {
        /// 0x0000 from a client; the assigned id from the gateway.
        topic_id: u16,
        /// MsgId
        msg_id: u16,
        /// Raw topic name bytes.
        topic_name: Bytes,
    },
    /// 0x0B REGACK
    RegAck {
        /// Topic id.
        topic_id: u16,
        /// MsgId of the REGISTER.
        msg_id: u16,
        /// Return code.
        code: ReturnCode,
    },
    /// 0x0C PUBLISH
    Publish {
        /// DUP flag.
        dup: bool,
        /// QoS, including −1.
        qos: SnQos,
        /// Retain flag.
        retain: bool,
        /// Topic by id type.
        topic: TopicRef,
        /// MsgId (0x0000 for QoS 0 and −1).
        msg_id: u16,
        /// Payload, possibly empty.
        data: Bytes,
    },
    /// 0x0D PUBACK
    PubAck {
        /// Topic id of the PUBLISH.
        topic_id: u16,
        /// MsgId of the PUBLISH.
        msg_id: u16,
        /// Return code.
        code: ReturnCode,
    },
    /// 0x0E PUBCOMP
    PubComp {
        /// MsgId
        msg_id: u16,
    },
    /// 0x0F PUBREC
    PubRec {
        /// MsgId
        msg_id: u16,
    },
    /// 0x10 PUBREL
    PubRel {
        /// MsgId
        msg_id: u16,
    },
    /// 0x12 SUBSCRIBE
    Subscribe {
        /// DUP flag.
        dup: bool,
        /// Requested QoS (0b11 is decoded as an error).
        qos: QoS,
        /// MsgId
        msg_id: u16,
        /// Topic by id type.
        topic: TopicFilterRef,
    },
    /// 0x13 SUBACK
    SubAck {
        /// Granted QoS.
        qos: QoS,
        /// Topic id (0x0000 for wildcards, rejections and short names).
        topic_id: u16,
        /// MsgId of the SUBSCRIBE.
        msg_id: u16,
        /// Return code.
        code: ReturnCode,
    },
    /// 0x14 UNSUBSCRIBE
    Unsubscribe {
        /// MsgId
        msg_id: u16,
        /// Topic by id type.
        topic: TopicFilterRef,
    },
    /// 0x15 UNSUBACK
    UnsubAck {
        /// MsgId
        msg_id: u16,
    },
    /// 0x16 PINGREQ; a client id is present when a sleeping client wakes.
    PingReq {
        /// Raw client id bytes, if any.
        client_id: Option<Bytes>,
    },
    /// 0x17 PINGRESP
    PingResp,
    /// 0x18 DISCONNECT; a duration means "going to sleep".
    Disconnect {
        /// Sleep duration in seconds, if any.
        duration: Option<u16>,
    },
    /// 0x1A WILLTOPICUPD; `None` deletes the will.
    WillTopicUpd(Option<WillTopic>),
    /// 0x1B WILLTOPICRESP
    WillTopicResp {
        /// Return code.
        code: ReturnCode,
    },
    /// 0x1C WILLMSGUPD
    WillMsgUpd {
        /// New will payload.
        message: Bytes,
    },
    /// 0x1D WILLMSGRESP
    WillMsgResp {
        /// Return code.
        code: ReturnCode,
    },
}

/// What one datagram holds: a plain message or a forwarder encapsulation
/// (0xFE, MQTT-SN 1.2 §5.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A plain message.
    Message(Message),
    /// A message relayed by a forwarder on behalf of a wireless node.
    Encapsulated {
        /// Ctrl octet: bits 0–1 carry the broadcast radius.
        ctrl: u8,
        /// Wireless node id of the originating node (opaque bytes).
        node_id: Bytes,
        /// The encapsulated message (never itself encapsulated).
        message: Message,
    },
}
