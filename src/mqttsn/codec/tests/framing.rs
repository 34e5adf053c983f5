//! Length forms, length checks, forwarder encapsulation and encoding limits
//! (digest §2.1, §3.26; checklist G-01..G-04, G-90, G-91).

use bytes::{Bytes, BytesMut};

use super::{encoded, encoded_frame, hex};
use crate::mqttsn::codec::{
    DecodeError, EncodeError, Frame, Message, SnQos, TopicRef, decode, decode_message, encode,
    encode_frame, encoded_len, peek_msg_type, split_encapsulation,
};
use crate::qos::QoS;

fn qos0_publish(data: Bytes) -> Message {
    Message::Publish {
        dup: false,
        qos: SnQos::Level(QoS::AtMostOnce),
        retain: false,
        topic: TopicRef::Normal(1),
        msg_id: 0,
        data,
    }
}

#[test]
fn long_form_length_is_0x01_then_big_endian_total() {
    // G-01: digest §2.1 worked example, 300 octets with 291 octets of data.
    let data = Bytes::from(vec![0xAB; 291]);
    let mut wire = hex("01 01 2C 0C 00 00 01 00 00").to_vec();
    wire.extend_from_slice(&data);
    let wire = Bytes::from(wire);
    assert_eq!(
        decode(&wire),
        Ok(Frame::Message(qos0_publish(data.clone())))
    );
}

#[test]
fn messages_over_255_octets_are_encoded_in_long_form() {
    // G-03: total 300 > 255 ⇒ 01 01 2C.
    let msg = qos0_publish(Bytes::from(vec![0xAB; 291]));
    let wire = encoded(&msg);
    assert_eq!(wire.len(), 300);
    assert_eq!(&wire[..4], &[0x01, 0x01, 0x2C, 0x0C]);
    assert_eq!(encoded_len(&msg), 300);
}

#[test]
fn long_form_pingreq_is_accepted_like_its_short_form() {
    // G-02
    assert_eq!(
        decode(&hex("01 00 04 16")),
        Ok(Frame::Message(Message::PingReq { client_id: None }))
    );
}

#[test]
fn long_form_short_message_with_variable_part_is_accepted() {
    // G-02
    assert_eq!(
        decode(&hex("01 00 06 18 01 2C")),
        Ok(Frame::Message(Message::Disconnect {
            duration: Some(300)
        }))
    );
}

#[test]
fn total_of_255_octets_uses_the_one_octet_length() {
    // G-03: 7 header/fixed octets + 248 data = 255.
    let wire = encoded(&qos0_publish(Bytes::from(vec![0; 248])));
    assert_eq!(wire.len(), 255);
    assert_eq!(&wire[..2], &[0xFF, 0x0C]);
}

#[test]
fn total_that_would_be_256_switches_to_the_long_form() {
    // G-03: 249 data octets ⇒ 256 in short form ⇒ 258 in long form.
    let msg = qos0_publish(Bytes::from(vec![0; 249]));
    let wire = encoded(&msg);
    assert_eq!(wire.len(), 258);
    assert_eq!(&wire[..4], &[0x01, 0x01, 0x02, 0x0C]);
    assert_eq!(decode(&wire), Ok(Frame::Message(msg)));
}

#[test]
fn gateway_sent_short_messages_use_the_one_octet_length() {
    // G-03
    assert_eq!(encoded(&Message::PingReq { client_id: None }), hex("02 16"));
}

#[test]
fn length_shorter_than_datagram_is_rejected() {
    // G-04
    assert_eq!(
        decode(&hex("02 16 00")),
        Err(DecodeError::LengthMismatch {
            declared: 2,
            actual: 3
        })
    );
}

#[test]
fn length_longer_than_datagram_is_rejected() {
    // G-04
    assert_eq!(
        decode(&hex("04 18 01")),
        Err(DecodeError::LengthMismatch {
            declared: 4,
            actual: 3
        })
    );
}

#[test]
fn long_form_length_differing_from_datagram_is_rejected() {
    // G-04
    assert_eq!(
        decode(&hex("01 00 05 16")),
        Err(DecodeError::LengthMismatch {
            declared: 5,
            actual: 4
        })
    );
}

#[test]
fn encoding_a_message_over_65535_octets_fails_and_appends_nothing() {
    let msg = qos0_publish(Bytes::from(vec![0; 65536 - 9]));
    let mut buf = BytesMut::from(&b"keep"[..]);
    assert_eq!(
        encode(&msg, &mut buf),
        Err(EncodeError::TooLong { len: 65536 })
    );
    assert_eq!(&buf[..], b"keep");
}

#[test]
fn largest_encodable_message_is_65535_octets() {
    let msg = qos0_publish(Bytes::from(vec![0; 65535 - 9]));
    let wire = encoded(&msg);
    assert_eq!(&wire[..3], &[0x01, 0xFF, 0xFF]);
    assert_eq!(decode(&wire), Ok(Frame::Message(msg)));
}

#[test]
fn decoded_fields_are_slices_of_the_datagram() {
    let wire = hex("09 0C 20 00 01 00 02 68 69");
    let Ok(Frame::Message(Message::Publish { data, .. })) = decode(&wire) else {
        panic!("not a PUBLISH");
    };
    assert_eq!(data.as_ptr(), wire[7..].as_ptr());
}

#[test]
fn encapsulated_message_names_its_node_and_inner_message() {
    // G-90: digest §3.26 example, PINGREQ from node 0x1234.
    assert_eq!(
        decode(&hex("05 FE 00 12 34 02 16")),
        Ok(Frame::Encapsulated {
            ctrl: 0,
            node_id: Bytes::from_static(&[0x12, 0x34]),
            message: Message::PingReq { client_id: None },
        })
    );
}

#[test]
fn reply_to_encapsulated_client_is_wrapped_with_the_same_node_id() {
    // G-91: Length = 3 + k, inner message unchanged.
    let reply = Frame::Encapsulated {
        ctrl: 0,
        node_id: Bytes::from_static(&[0x12, 0x34]),
        message: Message::PingResp,
    };
    assert_eq!(encoded_frame(&reply), hex("05 FE 00 12 34 02 17"));
}

#[test]
fn encapsulation_keeps_ctrl_radius_bits() {
    // G-92: Ctrl is carried as given; bits 1–0 are the radius.
    let frame = Frame::Encapsulated {
        ctrl: 0x03,
        node_id: Bytes::from_static(&[0x07]),
        message: Message::SearchGw { radius: 3 },
    };
    let wire = encoded_frame(&frame);
    assert_eq!(wire, hex("04 FE 03 07 03 01 03"));
    assert_eq!(decode(&wire), Ok(frame));
}

#[test]
fn encapsulated_message_may_use_the_long_form() {
    assert_eq!(
        decode(&hex("03 FE 00 01 00 04 16")),
        Ok(Frame::Encapsulated {
            ctrl: 0,
            node_id: Bytes::new(),
            message: Message::PingReq { client_id: None },
        })
    );
}

#[test]
fn encapsulated_message_must_fill_the_rest_of_the_datagram() {
    // G-04 applies to the inner message.
    assert_eq!(
        decode(&hex("04 FE 00 12 02 16 00")),
        Err(DecodeError::LengthMismatch {
            declared: 2,
            actual: 3
        })
    );
}

#[test]
fn node_id_too_long_for_the_one_octet_length_fails_to_encode() {
    let frame = Frame::Encapsulated {
        ctrl: 0,
        node_id: Bytes::from(vec![0; 253]),
        message: Message::PingResp,
    };
    let mut buf = BytesMut::new();
    assert_eq!(
        encode_frame(&frame, &mut buf),
        Err(EncodeError::NodeIdTooLong { len: 256 })
    );
    assert!(buf.is_empty());
}

#[test]
fn decode_message_rejects_an_encapsulation() {
    assert_eq!(
        decode_message(&hex("05 FE 00 12 34 02 16")),
        Err(DecodeError::NestedEncapsulation)
    );
}

#[test]
fn peek_reads_the_type_in_both_length_forms() {
    assert_eq!(peek_msg_type(&hex("02 16")), Some(0x16));
    assert_eq!(peek_msg_type(&hex("01 00 04 16")), Some(0x16));
}

#[test]
fn peek_reads_the_type_of_undecodable_datagrams() {
    // A truncated PUBLISH and a reserved type still show their type.
    assert_eq!(peek_msg_type(&hex("05 0C 00 00 01")), Some(0x0C));
    assert_eq!(peek_msg_type(&hex("09 0C 23 00 01")), Some(0x0C));
    assert_eq!(peek_msg_type(&hex("02 03")), Some(0x03));
}

#[test]
fn peek_finds_no_type_without_a_header() {
    assert_eq!(peek_msg_type(&[]), None);
    assert_eq!(peek_msg_type(&hex("02")), None);
    assert_eq!(peek_msg_type(&hex("00 16")), None);
    assert_eq!(peek_msg_type(&hex("01 00 04")), None);
}

#[test]
fn split_encapsulation_keeps_node_id_of_an_undecodable_inner_message() {
    // G-45 behind a forwarder: the PUBACK 0x03 must be wrapped with node 0x1234 (G-91).
    let wire = hex("05 FE 01 12 34 09 0C 23 00 01 00 02 68 69");
    assert!(matches!(
        decode(&wire),
        Err(DecodeError::ReservedTopicIdType { .. })
    ));
    let split = split_encapsulation(&wire).unwrap().unwrap();
    assert_eq!(split.ctrl, 0x01);
    assert_eq!(split.node_id, hex("12 34"));
    assert_eq!(peek_msg_type(&split.inner), Some(0x0C));
}

#[test]
fn split_encapsulation_passes_plain_messages_through() {
    assert_eq!(split_encapsulation(&hex("02 16")), Ok(None));
}
