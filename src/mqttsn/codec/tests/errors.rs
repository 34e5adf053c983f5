//! One test per decode rule, each with the smallest datagram that breaks it
//! (digest §2.1–§2.7, §5.23; checklist G-05..G-07 and codec parts of G-19..G-59).

use bytes::Bytes;

use super::hex;
use crate::mqttsn::codec::{
    ConnectFlags, DecodeError, Frame, Message, SnQos, TopicRef, WillTopic, decode,
};
use crate::qos::QoS;

#[test]
fn empty_datagram_is_rejected() {
    assert_eq!(decode(&Bytes::new()), Err(DecodeError::Empty));
}

#[test]
fn single_octet_datagram_is_rejected() {
    assert_eq!(
        decode(&hex("02")),
        Err(DecodeError::TruncatedHeader { actual: 1 })
    );
}

#[test]
fn long_form_datagram_ending_before_msgtype_is_rejected() {
    assert_eq!(
        decode(&hex("01 00 04")),
        Err(DecodeError::TruncatedHeader { actual: 3 })
    );
}

#[test]
fn zero_length_octet_is_rejected() {
    assert_eq!(decode(&hex("00 16")), Err(DecodeError::ZeroLength));
}

#[test]
fn long_form_value_below_4_is_rejected() {
    assert_eq!(
        decode(&hex("01 00 03 16")),
        Err(DecodeError::LongFormTooSmall { declared: 3 })
    );
}

#[test]
fn reserved_message_types_are_rejected() {
    // G-05
    for t in [0x03, 0x11, 0x19, 0x1E, 0x80, 0xFD, 0xFF] {
        let wire = Bytes::from(vec![0x02, t]);
        assert_eq!(
            decode(&wire),
            Err(DecodeError::ReservedType(t)),
            "type {t:#04x}"
        );
    }
}

#[test]
fn datagram_shorter_than_the_fixed_part_of_its_type_is_rejected() {
    // G-06: a 5-octet PUBLISH.
    assert_eq!(
        decode(&hex("05 0C 00 00 01")),
        Err(DecodeError::Truncated {
            msg_type: 0x0C,
            min: 5,
            actual: 3
        })
    );
}

#[test]
fn connect_without_duration_is_truncated() {
    // G-06
    assert_eq!(
        decode(&hex("04 04 04 01")),
        Err(DecodeError::Truncated {
            msg_type: 0x04,
            min: 4,
            actual: 2
        })
    );
}

#[test]
fn fixed_size_message_with_extra_octets_is_rejected() {
    // Digest §5.23: PINGRESP is exactly 2 octets.
    assert_eq!(
        decode(&hex("03 17 00")),
        Err(DecodeError::InvalidSize {
            msg_type: 0x17,
            expected: "0",
            actual: 1
        })
    );
}

#[test]
fn disconnect_of_3_octets_is_rejected() {
    assert_eq!(
        decode(&hex("03 18 01")),
        Err(DecodeError::InvalidSize {
            msg_type: 0x18,
            expected: "0 or 2",
            actual: 1
        })
    );
}

#[test]
fn disconnect_of_5_octets_is_rejected() {
    assert_eq!(
        decode(&hex("05 18 00 01 02")),
        Err(DecodeError::InvalidSize {
            msg_type: 0x18,
            expected: "0 or 2",
            actual: 3
        })
    );
}

#[test]
fn subscribe_by_predefined_id_needs_exactly_two_id_octets() {
    // Digest §2.6: 0b01/0b10 topics are exactly 2 octets (7-octet message).
    assert_eq!(
        decode(&hex("08 12 01 00 04 00 07 00")),
        Err(DecodeError::InvalidSize {
            msg_type: 0x12,
            expected: "5",
            actual: 6
        })
    );
    assert_eq!(
        decode(&hex("06 12 02 00 04 61")),
        Err(DecodeError::Truncated {
            msg_type: 0x12,
            min: 5,
            actual: 4
        })
    );
}

#[test]
fn publish_with_topic_id_type_0b11_keeps_ids_for_the_puback() {
    // G-45: the gateway answers PUBACK(TopicId, MsgId, 0x03).
    assert_eq!(
        decode(&hex("09 0C 23 00 01 00 02 68 69")),
        Err(DecodeError::ReservedTopicIdType {
            msg_type: 0x0C,
            flags: 0x23,
            topic_id: 1,
            msg_id: 2,
        })
    );
}

#[test]
fn subscribe_with_topic_id_type_0b11_keeps_msg_id_for_the_suback() {
    // G-59
    assert_eq!(
        decode(&hex("07 12 03 00 05 61 62")),
        Err(DecodeError::ReservedTopicIdType {
            msg_type: 0x12,
            flags: 0x03,
            topic_id: 0,
            msg_id: 5,
        })
    );
}

#[test]
fn unsubscribe_with_topic_id_type_0b11_keeps_msg_id_for_the_unsuback() {
    // Digest §5.2: UNSUBACK, no action.
    assert_eq!(
        decode(&hex("07 14 03 00 06 61 62")),
        Err(DecodeError::ReservedTopicIdType {
            msg_type: 0x14,
            flags: 0x03,
            topic_id: 0,
            msg_id: 6,
        })
    );
}

#[test]
fn subscribe_with_qos_minus_one_is_rejected_with_its_msg_id() {
    // Digest §5.9: SUBACK 0x03.
    assert_eq!(
        decode(&hex("07 12 61 00 04 00 07")),
        Err(DecodeError::QosMinusOneNotAllowed {
            msg_type: 0x12,
            msg_id: Some(4)
        })
    );
}

#[test]
fn will_topic_with_qos_minus_one_is_rejected() {
    // Digest §5.9: CONNACK 0x03.
    assert_eq!(
        decode(&hex("06 07 60 77 2F 74")),
        Err(DecodeError::QosMinusOneNotAllowed {
            msg_type: 0x07,
            msg_id: None
        })
    );
    assert_eq!(
        decode(&hex("06 1A 60 78 2F 79")),
        Err(DecodeError::QosMinusOneNotAllowed {
            msg_type: 0x1A,
            msg_id: None
        })
    );
}

#[test]
fn suback_with_qos_minus_one_is_rejected() {
    assert_eq!(
        decode(&hex("08 13 60 00 00 00 03 00")),
        Err(DecodeError::QosMinusOneNotAllowed {
            msg_type: 0x13,
            msg_id: Some(3)
        })
    );
}

#[test]
fn nested_encapsulation_is_rejected() {
    assert_eq!(
        decode(&hex("03 FE 00 05 FE 00 12 34 02 16")),
        Err(DecodeError::NestedEncapsulation)
    );
}

#[test]
fn encapsulation_with_long_form_length_is_rejected() {
    // MQTT-SN 1.2 §5.5: the encapsulation Length is always 1 octet.
    assert_eq!(
        decode(&hex("01 00 05 FE 00 02 16")),
        Err(DecodeError::LongFormEncapsulation)
    );
}

#[test]
fn encapsulation_without_ctrl_is_truncated() {
    assert_eq!(
        decode(&hex("02 FE 02 16")),
        Err(DecodeError::Truncated {
            msg_type: 0xFE,
            min: 1,
            actual: 0
        })
    );
}

#[test]
fn encapsulation_without_inner_message_is_truncated() {
    assert_eq!(
        decode(&hex("05 FE 00 12 34")),
        Err(DecodeError::Truncated {
            msg_type: 0xFE,
            min: 5,
            actual: 3
        })
    );
}

#[test]
fn unused_flag_bits_are_ignored_on_receipt_and_zero_when_sent() {
    // G-07: DUP/QoS/Retain/TopicIdType are unused in CONNECT.
    let wire = hex("09 04 FF 01 00 3C 63 6C 31");
    let msg = Message::Connect {
        flags: ConnectFlags {
            will: true,
            clean_session: true,
        },
        protocol_id: 1,
        duration: 60,
        client_id: Bytes::from_static(b"cl1"),
    };
    assert_eq!(decode(&wire), Ok(Frame::Message(msg.clone())));
    assert_eq!(super::encoded(&msg), hex("09 04 0C 01 00 3C 63 6C 31"));
}

#[test]
fn will_and_clean_session_bits_in_publish_are_ignored() {
    // G-07
    assert_eq!(
        decode(&hex("07 0C 2C 00 01 00 02")),
        Ok(Frame::Message(Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: TopicRef::Normal(1),
            msg_id: 2,
            data: Bytes::new(),
        }))
    );
}

#[test]
fn connect_with_unknown_protocol_id_is_left_to_the_gateway() {
    // G-19: the gateway answers CONNACK 0x03, so the codec keeps the value.
    let Ok(Frame::Message(Message::Connect { protocol_id, .. })) =
        decode(&hex("09 04 04 02 00 3C 63 6C 31"))
    else {
        panic!("not a CONNECT");
    };
    assert_eq!(protocol_id, 2);
}

#[test]
fn connect_with_empty_client_id_is_left_to_the_gateway() {
    // G-20: the gateway answers CONNACK 0x03.
    let Ok(Frame::Message(Message::Connect { client_id, .. })) = decode(&hex("06 04 04 01 00 3C"))
    else {
        panic!("not a CONNECT");
    };
    assert!(client_id.is_empty());
}

#[test]
fn invalid_utf8_topic_names_are_kept_raw() {
    // Digest §2.7: UTF-8 is checked by the gateway, which picks the reply.
    assert_eq!(
        decode(&hex("08 0A 00 00 00 01 FF 00")),
        Ok(Frame::Message(Message::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::from_static(&[0xFF, 0x00]),
        }))
    );
}

#[test]
fn willtopic_with_flags_but_no_topic_is_the_empty_form() {
    // Digest §3.7 [REC]: a 3-octet WILLTOPIC is treated like `02 07`.
    assert_eq!(
        decode(&hex("03 07 30")),
        Ok(Frame::Message(Message::WillTopic(None)))
    );
    assert_eq!(
        decode(&hex("03 1A 00")),
        Ok(Frame::Message(Message::WillTopicUpd(None)))
    );
}

#[test]
fn will_qos_and_retain_come_from_the_willtopic_flags() {
    // G-16: QoS bits 6–5 and Retain bit 4.
    assert_eq!(
        decode(&hex("04 07 50 77")),
        Ok(Frame::Message(Message::WillTopic(Some(WillTopic {
            qos: QoS::ExactlyOnce,
            retain: true,
            topic: Bytes::from_static(b"w"),
        }))))
    );
}

#[test]
fn qos0_publish_with_nonzero_msg_id_is_accepted() {
    // G-46: MsgId is kept, the gateway ignores it.
    assert_eq!(
        decode(&hex("07 0C 00 00 01 12 34")),
        Ok(Frame::Message(Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtMostOnce),
            retain: false,
            topic: TopicRef::Normal(1),
            msg_id: 0x1234,
            data: Bytes::new(),
        }))
    );
}
