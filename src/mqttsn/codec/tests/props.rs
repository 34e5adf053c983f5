//! Properties: decoding is total, and canonical values round trip exactly.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{encoded, encoded_frame};
use crate::mqttsn::codec::{
    ConnectFlags, Frame, Message, ReturnCode, SnQos, TopicFilterRef, TopicRef, WillTopic, decode,
    encode, encoded_len, peek_msg_type,
};
use crate::qos::QoS;

fn bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

/// Non-empty, because an empty client id or will topic has the `None` form.
fn nonempty_bytes(max: usize) -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 1..max).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn sn_qos() -> impl Strategy<Value = SnQos> {
    prop_oneof![qos().prop_map(SnQos::Level), Just(SnQos::MinusOne)]
}

/// Reserved(0..=3) is not canonical: it decodes as the named code.
fn return_code() -> impl Strategy<Value = ReturnCode> {
    prop_oneof![
        Just(ReturnCode::Accepted),
        Just(ReturnCode::Congestion),
        Just(ReturnCode::InvalidTopicId),
        Just(ReturnCode::NotSupported),
        (4u8..=255).prop_map(ReturnCode::Reserved),
    ]
}

fn topic_ref() -> impl Strategy<Value = TopicRef> {
    prop_oneof![
        any::<u16>().prop_map(TopicRef::Normal),
        any::<u16>().prop_map(TopicRef::Predefined),
        any::<[u8; 2]>().prop_map(TopicRef::Short),
    ]
}

fn topic_filter_ref() -> impl Strategy<Value = TopicFilterRef> {
    prop_oneof![
        bytes(40).prop_map(TopicFilterRef::Name),
        any::<u16>().prop_map(TopicFilterRef::Predefined),
        any::<[u8; 2]>().prop_map(TopicFilterRef::Short),
    ]
}

fn will_topic() -> impl Strategy<Value = Option<WillTopic>> {
    proptest::option::of(
        (qos(), any::<bool>(), nonempty_bytes(40)).prop_map(|(qos, retain, topic)| WillTopic {
            qos,
            retain,
            topic,
        }),
    )
}

/// Every canonical MQTT-SN message; PUBLISH data reaches past 255 octets so
/// that both length forms are exercised.
pub(super) fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        (any::<u8>(), any::<u16>())
            .prop_map(|(gw_id, duration)| Message::Advertise { gw_id, duration }),
        any::<u8>().prop_map(|radius| Message::SearchGw { radius }),
        (any::<u8>(), bytes(8)).prop_map(|(gw_id, gw_add)| Message::GwInfo { gw_id, gw_add }),
        (
            any::<bool>(),
            any::<bool>(),
            any::<u8>(),
            any::<u16>(),
            bytes(30)
        )
            .prop_map(|(will, clean_session, protocol_id, duration, client_id)| {
                Message::Connect {
                    flags: ConnectFlags {
                        will,
                        clean_session,
                    },
                    protocol_id,
                    duration,
                    client_id,
                }
            }),
        return_code().prop_map(|code| Message::ConnAck { code }),
        Just(Message::WillTopicReq),
        will_topic().prop_map(Message::WillTopic),
        Just(Message::WillMsgReq),
        bytes(40).prop_map(|message| Message::WillMsg { message }),
        (any::<u16>(), any::<u16>(), bytes(40)).prop_map(|(topic_id, msg_id, topic_name)| {
            Message::Register {
                topic_id,
                msg_id,
                topic_name,
            }
        }),
        (any::<u16>(), any::<u16>(), return_code()).prop_map(|(topic_id, msg_id, code)| {
            Message::RegAck {
                topic_id,
                msg_id,
                code,
            }
        }),
        (
            any::<bool>(),
            sn_qos(),
            any::<bool>(),
            topic_ref(),
            any::<u16>(),
            bytes(400)
        )
            .prop_map(|(dup, qos, retain, topic, msg_id, data)| Message::Publish {
                dup,
                qos,
                retain,
                topic,
                msg_id,
                data,
            }),
        (any::<u16>(), any::<u16>(), return_code()).prop_map(|(topic_id, msg_id, code)| {
            Message::PubAck {
                topic_id,
                msg_id,
                code,
            }
        }),
        any::<u16>().prop_map(|msg_id| Message::PubComp { msg_id }),
        any::<u16>().prop_map(|msg_id| Message::PubRec { msg_id }),
        any::<u16>().prop_map(|msg_id| Message::PubRel { msg_id }),
        (any::<bool>(), qos(), any::<u16>(), topic_filter_ref()).prop_map(
            |(dup, qos, msg_id, topic)| Message::Subscribe {
                dup,
                qos,
                msg_id,
                topic
            }
        ),
        (qos(), any::<u16>(), any::<u16>(), return_code()).prop_map(
            |(qos, topic_id, msg_id, code)| Message::SubAck {
                qos,
                topic_id,
                msg_id,
                code
            }
        ),
        (any::<u16>(), topic_filter_ref())
            .prop_map(|(msg_id, topic)| Message::Unsubscribe { msg_id, topic }),
        any::<u16>().prop_map(|msg_id| Message::UnsubAck { msg_id }),
        proptest::option::of(nonempty_bytes(30))
            .prop_map(|client_id| Message::PingReq { client_id }),
        Just(Message::PingResp),
        proptest::option::of(any::<u16>()).prop_map(|duration| Message::Disconnect { duration }),
        will_topic().prop_map(Message::WillTopicUpd),
        return_code().prop_map(|code| Message::WillTopicResp { code }),
        bytes(40).prop_map(|message| Message::WillMsgUpd { message }),
        return_code().prop_map(|code| Message::WillMsgResp { code }),
    ]
}

/// Plain messages and forwarder encapsulations.
pub(super) fn frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        message().prop_map(Frame::Message),
        (any::<u8>(), bytes(16), message()).prop_map(|(ctrl, node_id, message)| {
            Frame::Encapsulated {
                ctrl,
                node_id,
                message,
            }
        }),
    ]
}

/// A datagram with a correct 1-octet Length, so that decoding reaches the
/// per-type rules instead of stopping at the length check.
fn well_framed_message() -> impl Strategy<Value = Vec<u8>> {
    (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(t, body)| {
        let mut v = vec![(body.len() + 2) as u8, t % 0x20];
        v.extend_from_slice(&body);
        v
    })
}

/// A well-framed message, bare or behind a well-framed encapsulation header.
fn well_framed_datagram() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        well_framed_message().prop_map(Bytes::from),
        (
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..4),
            well_framed_message()
        )
            .prop_map(|(ctrl, node_id, inner)| {
                let mut v = vec![(node_id.len() + 3) as u8, 0xFE, ctrl];
                v.extend_from_slice(&node_id);
                v.extend_from_slice(&inner);
                Bytes::from(v)
            }),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(v in proptest::collection::vec(any::<u8>(), 0..300)) {
        let wire = Bytes::from(v);
        let _ = peek_msg_type(&wire);
        let _ = decode(&wire);
    }

    #[test]
    fn whatever_decodes_reencodes_to_the_same_value(wire in well_framed_datagram()) {
        if let Ok(frame) = decode(&wire) {
            prop_assert_eq!(decode(&encoded_frame(&frame)), Ok(frame));
        }
    }

    #[test]
    fn canonical_messages_round_trip_exactly(msg in message()) {
        let wire = encoded(&msg);
        prop_assert_eq!(wire.len(), encoded_len(&msg));
        prop_assert_eq!(peek_msg_type(&wire), Some(msg.msg_type().as_u8()));
        prop_assert_eq!(decode(&wire), Ok(Frame::Message(msg)));
    }

    #[test]
    fn frames_round_trip_exactly(frame in frame()) {
        let wire = encoded_frame(&frame);
        prop_assert_eq!(decode(&wire), Ok(frame));
    }

    #[test]
    fn encode_appends_after_existing_content(msg in message()) {
        let mut buf = BytesMut::from(&b"prefix"[..]);
        encode(&msg, &mut buf).unwrap();
        prop_assert_eq!(&buf[..6], b"prefix");
        prop_assert_eq!(&buf[6..], &encoded(&msg)[..]);
    }
}
