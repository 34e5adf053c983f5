//! Datagram → [`Frame`] / [`Message`]. Total: arbitrary bytes never panic.

use bytes::Bytes;

use crate::qos::QoS;

use super::error::DecodeError;
use super::header::parse_header;
use super::message::{
    ConnectFlags, Frame, Message, ReturnCode, SnQos, TopicFilterRef, TopicRef, WillTopic,
};
use super::msg_type::{
    FLAG_CLEAN_SESSION, FLAG_DUP, FLAG_QOS_MASK, FLAG_QOS_SHIFT, FLAG_RETAIN,
    FLAG_TOPIC_ID_TYPE_MASK, FLAG_WILL, MsgType, TOPIC_ID_TYPE_NORMAL, TOPIC_ID_TYPE_PREDEFINED,
    TOPIC_ID_TYPE_SHORT,
};

/// Decodes one datagram. Zero-copy: Bytes fields are slices of `datagram`.
///
/// Length must equal the datagram size (G-04) except for the forwarder
/// encapsulation, whose 1-octet Length covers only its own header and whose
/// inner message must then fill the rest of the datagram exactly.
pub fn decode(datagram: &Bytes) -> Result<Frame, DecodeError> {
    match split_encapsulation(datagram)? {
        None => decode_message(datagram).map(Frame::Message),
        Some(Encapsulation {
            ctrl,
            node_id,
            inner,
        }) => Ok(Frame::Encapsulated {
            ctrl,
            node_id,
            message: decode_message(&inner)?,
        }),
    }
}

/// The outer layer of a forwarder encapsulation, with the inner message still raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encapsulation {
    /// Ctrl octet: bits 1–0 carry the broadcast radius.
    pub ctrl: u8,
    /// Wireless Node Id (opaque bytes).
    pub node_id: Bytes,
    /// The inner message, undecoded (at least its 2-octet header long).
    pub inner: Bytes,
}

/// Splits a forwarder encapsulation (MQTT-SN 1.2 §5.5) from its inner message;
/// `Ok(None)` for a datagram that is not encapsulated.
///
/// For the gateway when [`decode`] rejected the inner message: the node id is
/// what a reply (e.g. PUBACK 0x03, G-45) must be wrapped with (G-91), and
/// [`peek_msg_type`](super::peek_msg_type) on `inner` gives the inner type.
pub fn split_encapsulation(datagram: &Bytes) -> Result<Option<Encapsulation>, DecodeError> {
    let header = parse_header(datagram)?;
    let type_octet = MsgType::Encapsulated.as_u8();
    if header.msg_type != type_octet {
        return Ok(None);
    }
    // MQTT-SN 1.2 §5.5: the encapsulation Length is always one octet.
    if header.header_len != 2 {
        return Err(DecodeError::LongFormEncapsulation);
    }
    if header.total < 3 {
        return Err(DecodeError::Truncated {
            msg_type: type_octet,
            min: 1,
            actual: header.total.saturating_sub(2),
        });
    }
    // The inner message needs at least its own 2-octet header.
    if datagram.len() < header.total + 2 {
        return Err(DecodeError::Truncated {
            msg_type: type_octet,
            min: header.total,
            actual: datagram.len().saturating_sub(2),
        });
    }
    Ok(Some(Encapsulation {
        ctrl: datagram.get(2).copied().unwrap_or_default(),
        node_id: datagram.slice(3..header.total),
        inner: datagram.slice(header.total..),
    }))
}

/// Decodes one message that is not encapsulated (used for the inner message of 0xFE too).
///
/// Left to the gateway on purpose: ProtocolId ≠ 0x01, UTF-8 validity of names
/// and client ids, ClientId length, wildcards, MsgId 0 — all have replies of
/// their own (digest §2.7, §5.22). A 3-octet WILLTOPIC/WILLTOPICUPD (Flags but
/// no topic) decodes as the empty form (digest §3.7).
pub fn decode_message(datagram: &Bytes) -> Result<Message, DecodeError> {
    let header = parse_header(datagram)?;
    if header.msg_type == MsgType::Encapsulated.as_u8() {
        return Err(DecodeError::NestedEncapsulation);
    }
    // MQTT-SN 1.2 §5.2.1, G-04 (digest's resolution): Length must match exactly.
    if header.total != datagram.len() {
        return Err(DecodeError::LengthMismatch {
            declared: header.total,
            actual: datagram.len(),
        });
    }
    // G-05: reserved types are dropped.
    let msg_type =
        MsgType::from_u8(header.msg_type).ok_or(DecodeError::ReservedType(header.msg_type))?;
    let body = datagram.slice(header.header_len..);
    decode_body(msg_type, &body)
}

fn decode_body(msg_type: MsgType, body: &Bytes) -> Result<Message, DecodeError> {
    let t = msg_type.as_u8();
    let b: &[u8] = body;
    let truncated = |min: usize| DecodeError::Truncated {
        msg_type: t,
        min,
        actual: b.len(),
    };
    let invalid = |expected: &'static str| DecodeError::InvalidSize {
        msg_type: t,
        expected,
        actual: b.len(),
    };
    // Fixed-size types: shorter is truncated (G-06), longer is malformed (digest §5.23).
    let exact = |n: usize| -> Result<(), DecodeError> {
        match b.len().cmp(&n) {
            std::cmp::Ordering::Less => Err(truncated(n)),
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Greater => Err(invalid(exact_size_text(n))),
        }
    };
    let at_least = |n: usize| -> Result<(), DecodeError> {
        if b.len() < n {
            Err(truncated(n))
        } else {
            Ok(())
        }
    };

    let msg = match msg_type {
        MsgType::Advertise => {
            exact(3)?;
            Message::Advertise {
                gw_id: byte(b, 0),
                duration: be16(b, 1),
            }
        }
        MsgType::SearchGw => {
            exact(1)?;
            Message::SearchGw { radius: byte(b, 0) }
        }
        MsgType::GwInfo => {
            at_least(1)?;
            Message::GwInfo {
                gw_id: byte(b, 0),
                gw_add: body.slice(1..),
            }
        }
        MsgType::Connect => {
            at_least(4)?;
            let flags = byte(b, 0);
            Message::Connect {
                flags: ConnectFlags {
                    will: flags & FLAG_WILL != 0,
                    clean_session: flags & FLAG_CLEAN_SESSION != 0,
                },
                protocol_id: byte(b, 1),
                duration: be16(b, 2),
                client_id: body.slice(4..),
            }
        }
        MsgType::ConnAck => {
            exact(1)?;
            Message::ConnAck {
                code: ReturnCode::from_u8(byte(b, 0)),
            }
        }
        MsgType::WillTopicReq => {
            exact(0)?;
            Message::WillTopicReq
        }
        MsgType::WillTopic => Message::WillTopic(will_topic(t, body)?),
        MsgType::WillMsgReq => {
            exact(0)?;
            Message::WillMsgReq
        }
        MsgType::WillMsg => Message::WillMsg {
            message: body.clone(),
        },
        MsgType::Register => {
            at_least(4)?;
            Message::Register {
                topic_id: be16(b, 0),
                msg_id: be16(b, 2),
                topic_name: body.slice(4..),
            }
        }
        MsgType::RegAck => {
            exact(5)?;
            Message::RegAck {
                topic_id: be16(b, 0),
                msg_id: be16(b, 2),
                code: ReturnCode::from_u8(byte(b, 4)),
            }
        }
        MsgType::Publish => {
            at_least(5)?;
            let flags = byte(b, 0);
            let raw_topic = be16(b, 1);
            let msg_id = be16(b, 3);
            let topic = match flags & FLAG_TOPIC_ID_TYPE_MASK {
                TOPIC_ID_TYPE_NORMAL => TopicRef::Normal(raw_topic),
                TOPIC_ID_TYPE_PREDEFINED => TopicRef::Predefined(raw_topic),
                TOPIC_ID_TYPE_SHORT => TopicRef::Short(raw_topic.to_be_bytes()),
                // Digest §5.2, G-45: the gateway answers PUBACK 0x03, so keep the ids.
                _ => {
                    return Err(DecodeError::ReservedTopicIdType {
                        msg_type: t,
                        flags,
                        topic_id: raw_topic,
                        msg_id,
                    });
                }
            };
            Message::Publish {
                dup: flags & FLAG_DUP != 0,
                qos: SnQos::from_bits(flags >> FLAG_QOS_SHIFT),
                retain: flags & FLAG_RETAIN != 0,
                topic,
                msg_id,
                data: body.slice(5..),
            }
        }
        MsgType::PubAck => {
            exact(5)?;
            Message::PubAck {
                topic_id: be16(b, 0),
                msg_id: be16(b, 2),
                code: ReturnCode::from_u8(byte(b, 4)),
            }
        }
        MsgType::PubComp => {
            exact(2)?;
            Message::PubComp { msg_id: be16(b, 0) }
        }
        MsgType::PubRec => {
            exact(2)?;
            Message::PubRec { msg_id: be16(b, 0) }
        }
        MsgType::PubRel => {
            exact(2)?;
            Message::PubRel { msg_id: be16(b, 0) }
        }
        MsgType::Subscribe => {
            at_least(3)?;
            let flags = byte(b, 0);
            let msg_id = be16(b, 1);
            let topic = topic_filter(t, flags, msg_id, body)?;
            // Digest §5.9: QoS −1 is not a subscription QoS; the gateway answers SUBACK 0x03.
            let qos = QoS::from_u8((flags & FLAG_QOS_MASK) >> FLAG_QOS_SHIFT).ok_or(
                DecodeError::QosMinusOneNotAllowed {
                    msg_type: t,
                    msg_id: Some(msg_id),
                },
            )?;
            Message::Subscribe {
                dup: flags & FLAG_DUP != 0,
                qos,
                msg_id,
                topic,
            }
        }
        MsgType::SubAck => {
            exact(6)?;
            let flags = byte(b, 0);
            let msg_id = be16(b, 3);
            let qos = QoS::from_u8((flags & FLAG_QOS_MASK) >> FLAG_QOS_SHIFT).ok_or(
                DecodeError::QosMinusOneNotAllowed {
                    msg_type: t,
                    msg_id: Some(msg_id),
                },
            )?;
            Message::SubAck {
                qos,
                topic_id: be16(b, 1),
                msg_id,
                code: ReturnCode::from_u8(byte(b, 5)),
            }
        }
        MsgType::Unsubscribe => {
            at_least(3)?;
            let flags = byte(b, 0);
            let msg_id = be16(b, 1);
            // G-07: the QoS and DUP bits are unused in UNSUBSCRIBE and ignored.
            Message::Unsubscribe {
                msg_id,
                topic: topic_filter(t, flags, msg_id, body)?,
            }
        }
        MsgType::UnsubAck => {
            exact(2)?;
            Message::UnsubAck { msg_id: be16(b, 0) }
        }
        MsgType::PingReq => Message::PingReq {
            // MQTT-SN 1.2 §5.4.19: the ClientId is present only when a sleeping client wakes.
            client_id: (!b.is_empty()).then(|| body.clone()),
        },
        MsgType::PingResp => {
            exact(0)?;
            Message::PingResp
        }
        MsgType::Disconnect => match b {
            [] => Message::Disconnect { duration: None },
            [hi, lo] => Message::Disconnect {
                duration: Some(u16::from_be_bytes([*hi, *lo])),
            },
            _ => return Err(invalid("0 or 2")),
        },
        MsgType::WillTopicUpd => Message::WillTopicUpd(will_topic(t, body)?),
        MsgType::WillTopicResp => {
            exact(1)?;
            Message::WillTopicResp {
                code: ReturnCode::from_u8(byte(b, 0)),
            }
        }
        MsgType::WillMsgUpd => Message::WillMsgUpd {
            message: body.clone(),
        },
        MsgType::WillMsgResp => {
            exact(1)?;
            Message::WillMsgResp {
                code: ReturnCode::from_u8(byte(b, 0)),
            }
        }
        MsgType::Encapsulated => return Err(DecodeError::NestedEncapsulation),
    };
    Ok(msg)
}

/// Human-readable exact variable-part sizes of the fixed-size types.
fn exact_size_text(n: usize) -> &'static str {
    match n {
        0 => "0",
        1 => "1",
        2 => "2",
        3 => "3",
        5 => "5",
        6 => "6",
        _ => "a fixed number of",
    }
}

/// WILLTOPIC / WILLTOPICUPD: the empty form is exactly 2 octets (digest §3.7, §3.22);
/// Flags without a topic is read as the empty form too (digest §3.7, [REC]).
fn will_topic(t: u8, body: &Bytes) -> Result<Option<WillTopic>, DecodeError> {
    let &[flags, _, ..] = &body[..] else {
        return Ok(None);
    };
    // Digest §5.9: QoS −1 is not a Will QoS; the gateway answers 0x03.
    let qos = QoS::from_u8((flags & FLAG_QOS_MASK) >> FLAG_QOS_SHIFT).ok_or(
        DecodeError::QosMinusOneNotAllowed {
            msg_type: t,
            msg_id: None,
        },
    )?;
    Ok(Some(WillTopic {
        qos,
        retain: flags & FLAG_RETAIN != 0,
        topic: body.slice(1..),
    }))
}

/// The topic of SUBSCRIBE / UNSUBSCRIBE from offset 5 (digest §2.6, §3.15).
fn topic_filter(
    t: u8,
    flags: u8,
    msg_id: u16,
    body: &Bytes,
) -> Result<TopicFilterRef, DecodeError> {
    let rest = body.get(3..).unwrap_or_default();
    let two = || -> Result<[u8; 2], DecodeError> {
        match rest {
            [a, b] => Ok([*a, *b]),
            [] | [_] => Err(DecodeError::Truncated {
                msg_type: t,
                min: 5,
                actual: body.len(),
            }),
            _ => Err(DecodeError::InvalidSize {
                msg_type: t,
                expected: "5",
                actual: body.len(),
            }),
        }
    };
    match flags & FLAG_TOPIC_ID_TYPE_MASK {
        TOPIC_ID_TYPE_NORMAL => Ok(TopicFilterRef::Name(body.slice(3..))),
        TOPIC_ID_TYPE_PREDEFINED => Ok(TopicFilterRef::Predefined(u16::from_be_bytes(two()?))),
        TOPIC_ID_TYPE_SHORT => Ok(TopicFilterRef::Short(two()?)),
        // Digest §5.2, G-59: SUBSCRIBE gets SUBACK 0x03, UNSUBSCRIBE gets UNSUBACK.
        _ => Err(DecodeError::ReservedTopicIdType {
            msg_type: t,
            flags,
            topic_id: 0,
            msg_id,
        }),
    }
}

/// The octet at `i`; callers have checked the length, 0 is never observed.
fn byte(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or_default()
}

/// The big-endian u16 at `i`; callers have checked the length.
fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([byte(b, i), byte(b, i + 1)])
}
