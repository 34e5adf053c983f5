//! [`Message`] / [`Frame`] → octets.
//!
//! Encoding is exact for canonical values: `decode(encode(m)) == m`. Values
//! that have another canonical form decode to that form instead: an empty
//! `PingReq` client id (→ `None`), a `WillTopic` with an empty topic (→ `None`),
//! and `ReturnCode::Reserved(0..=3)` (→ the named code).

use bytes::{BufMut, BytesMut};

use super::error::EncodeError;
use super::header::{LONG_FORM_MAX, SHORT_FORM_MAX, total_len};
use super::message::{Frame, Message, TopicFilterRef, TopicRef, WillTopic};
use super::msg_type::{
    FLAG_CLEAN_SESSION, FLAG_DUP, FLAG_QOS_SHIFT, FLAG_RETAIN, FLAG_WILL, LONG_FORM_MARKER,
    MsgType, TOPIC_ID_TYPE_NORMAL, TOPIC_ID_TYPE_PREDEFINED, TOPIC_ID_TYPE_SHORT,
};

/// Total octets `msg` takes on the wire, Length field included (G-03).
pub fn encoded_len(msg: &Message) -> usize {
    total_len(body_len(msg))
}

/// Appends the encoding of `msg` (1-octet length when total <= 255, else 0x01 + u16, G-03).
///
/// On error nothing is appended.
pub fn encode(msg: &Message, buf: &mut BytesMut) -> Result<(), EncodeError> {
    let body = body_len(msg);
    let total = total_len(body);
    if total > LONG_FORM_MAX {
        return Err(EncodeError::TooLong { len: total });
    }
    buf.reserve(total);
    let t = msg.msg_type().as_u8();
    if total <= SHORT_FORM_MAX {
        buf.put_u8(total as u8);
    } else {
        buf.put_u8(LONG_FORM_MARKER);
        buf.put_u16(total as u16);
    }
    buf.put_u8(t);
    put_body(msg, buf);
    Ok(())
}

/// Appends the encoding of `frame`; an encapsulation gets its 1-octet header
/// (3 + node id length, MQTT-SN 1.2 §5.5, G-91) followed by the inner message.
///
/// On error nothing is appended.
pub fn encode_frame(frame: &Frame, buf: &mut BytesMut) -> Result<(), EncodeError> {
    match frame {
        Frame::Message(msg) => encode(msg, buf),
        Frame::Encapsulated {
            ctrl,
            node_id,
            message,
        } => {
            let header = 3 + node_id.len();
            if header > SHORT_FORM_MAX {
                return Err(EncodeError::NodeIdTooLong { len: header });
            }
            let inner = encoded_len(message);
            if inner > LONG_FORM_MAX {
                return Err(EncodeError::TooLong { len: inner });
            }
            buf.reserve(header + inner);
            buf.put_u8(header as u8);
            buf.put_u8(MsgType::Encapsulated.as_u8());
            buf.put_u8(*ctrl);
            buf.put_slice(node_id);
            encode(message, buf)
        }
    }
}

/// Octets after the MsgType.
fn body_len(msg: &Message) -> usize {
    match msg {
        Message::Advertise { .. } => 3,
        Message::SearchGw { .. } => 1,
        Message::GwInfo { gw_add, .. } => 1 + gw_add.len(),
        Message::Connect { client_id, .. } => 4 + client_id.len(),
        Message::ConnAck { .. } => 1,
        Message::WillTopicReq | Message::WillMsgReq | Message::PingResp => 0,
        Message::WillTopic(will) | Message::WillTopicUpd(will) => {
            will.as_ref().map_or(0, |w| 1 + w.topic.len())
        }
        Message::WillMsg { message } | Message::WillMsgUpd { message } => message.len(),
        Message::Register { topic_name, .. } => 4 + topic_name.len(),
        Message::RegAck { .. } | Message::PubAck { .. } => 5,
        Message::Publish { data, .. } => 5 + data.len(),
        Message::PubComp { .. }
        | Message::PubRec { .. }
        | Message::PubRel { .. }
        | Message::UnsubAck { .. } => 2,
        Message::Subscribe { topic, .. } | Message::Unsubscribe { topic, .. } => {
            3 + match topic {
                TopicFilterRef::Name(name) => name.len(),
                TopicFilterRef::Predefined(_) | TopicFilterRef::Short(_) => 2,
            }
        }
        Message::SubAck { .. } => 6,
        Message::PingReq { client_id } => client_id.as_ref().map_or(0, |c| c.len()),
        Message::Disconnect { duration } => duration.map_or(0, |_| 2),
        Message::WillTopicResp { .. } | Message::WillMsgResp { .. } => 1,
    }
}

fn put_body(msg: &Message, buf: &mut BytesMut) {
    match msg {
        Message::Advertise { gw_id, duration } => {
            buf.put_u8(*gw_id);
            buf.put_u16(*duration);
        }
        Message::SearchGw { radius } => buf.put_u8(*radius),
        Message::GwInfo { gw_id, gw_add } => {
            buf.put_u8(*gw_id);
            buf.put_slice(gw_add);
        }
        Message::Connect {
            flags,
            protocol_id,
            duration,
            client_id,
        } => {
            let mut f = 0;
            if flags.will {
                f |= FLAG_WILL;
            }
            if flags.clean_session {
                f |= FLAG_CLEAN_SESSION;
            }
            buf.put_u8(f);
            buf.put_u8(*protocol_id);
            buf.put_u16(*duration);
            buf.put_slice(client_id);
        }
        Message::ConnAck { code }
        | Message::WillTopicResp { code }
        | Message::WillMsgResp { code } => buf.put_u8(code.to_u8()),
        Message::WillTopicReq | Message::WillMsgReq | Message::PingResp => {}
        Message::WillTopic(will) | Message::WillTopicUpd(will) => {
            if let Some(WillTopic { qos, retain, topic }) = will {
                buf.put_u8(qos.as_u8() << FLAG_QOS_SHIFT | retain_bit(*retain));
                buf.put_slice(topic);
            }
        }
        Message::WillMsg { message } | Message::WillMsgUpd { message } => buf.put_slice(message),
        Message::Register {
            topic_id,
            msg_id,
            topic_name,
        } => {
            buf.put_u16(*topic_id);
            buf.put_u16(*msg_id);
            buf.put_slice(topic_name);
        }
        Message::RegAck {
            topic_id,
            msg_id,
            code,
        }
        | Message::PubAck {
            topic_id,
            msg_id,
            code,
        } => {
            buf.put_u16(*topic_id);
            buf.put_u16(*msg_id);
            buf.put_u8(code.to_u8());
        }
        Message::Publish {
            dup,
            qos,
            retain,
            topic,
            msg_id,
            data,
        } => {
            let (id_type, raw) = match topic {
                TopicRef::Normal(id) => (TOPIC_ID_TYPE_NORMAL, *id),
                TopicRef::Predefined(id) => (TOPIC_ID_TYPE_PREDEFINED, *id),
                TopicRef::Short(name) => (TOPIC_ID_TYPE_SHORT, u16::from_be_bytes(*name)),
            };
            buf.put_u8(
                dup_bit(*dup) | qos.to_bits() << FLAG_QOS_SHIFT | retain_bit(*retain) | id_type,
            );
            buf.put_u16(raw);
            buf.put_u16(*msg_id);
            buf.put_slice(data);
        }
        Message::PubComp { msg_id }
        | Message::PubRec { msg_id }
        | Message::PubRel { msg_id }
        | Message::UnsubAck { msg_id } => buf.put_u16(*msg_id),
        Message::Subscribe {
            dup,
            qos,
            msg_id,
            topic,
        } => {
            buf.put_u8(dup_bit(*dup) | qos.as_u8() << FLAG_QOS_SHIFT | topic_id_type(topic));
            buf.put_u16(*msg_id);
            put_filter(topic, buf);
        }
        Message::Unsubscribe { msg_id, topic } => {
            buf.put_u8(topic_id_type(topic));
            buf.put_u16(*msg_id);
            put_filter(topic, buf);
        }
        Message::SubAck {
            qos,
            topic_id,
            msg_id,
            code,
        } => {
            buf.put_u8(qos.as_u8() << FLAG_QOS_SHIFT);
            buf.put_u16(*topic_id);
            buf.put_u16(*msg_id);
            buf.put_u8(code.to_u8());
        }
        Message::PingReq { client_id } => {
            if let Some(id) = client_id {
                buf.put_slice(id);
            }
        }
        Message::Disconnect { duration } => {
            if let Some(d) = duration {
                buf.put_u16(*d);
            }
        }
    }
}

fn dup_bit(dup: bool) -> u8 {
    if dup { FLAG_DUP } else { 0 }
}

fn retain_bit(retain: bool) -> u8 {
    if retain { FLAG_RETAIN } else { 0 }
}

fn topic_id_type(topic: &TopicFilterRef) -> u8 {
    match topic {
        TopicFilterRef::Name(_) => TOPIC_ID_TYPE_NORMAL,
        TopicFilterRef::Predefined(_) => TOPIC_ID_TYPE_PREDEFINED,
        TopicFilterRef::Short(_) => TOPIC_ID_TYPE_SHORT,
    }
}

fn put_filter(topic: &TopicFilterRef, buf: &mut BytesMut) {
    match topic {
        TopicFilterRef::Name(name) => buf.put_slice(name),
        TopicFilterRef::Predefined(id) => buf.put_u16(*id),
        TopicFilterRef::Short(name) => buf.put_slice(name),
    }
}
