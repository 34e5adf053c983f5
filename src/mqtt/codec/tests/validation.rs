//! Syntactic checks: each malformed input is rejected with its rule.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::{NO_LIMIT, decode_one, hex};
use crate::mqtt::codec::{
    Auth, DecodeError, EncodeError, Packet, ProtocolVersion, Publish, Subscribe, decode_packet,
    encode_packet, encoded_len,
};
use crate::qos::QoS;

use ProtocolVersion::{V5, V311};

fn err(bytes: &str, version: ProtocolVersion) -> DecodeError {
    let mut buf = BytesMut::from(&hex(bytes)[..]);
    decode_packet(&mut buf, version, NO_LIMIT).unwrap_err()
}

#[test]
fn reserved_fixed_header_flags_are_malformed() {
    assert_eq!(err("60 02 0001", V311), DecodeError::InvalidFlags("PUBREL"));
    assert_eq!(
        err("80 05 0001 0001 23 00", V311),
        DecodeError::InvalidFlags("SUBSCRIBE")
    );
    assert_eq!(
        err("a0 04 0001 0001 23", V5),
        DecodeError::InvalidFlags("UNSUBSCRIBE")
    );
    assert_eq!(err("41 02 0001", V311), DecodeError::InvalidFlags("PUBACK"));
    assert_eq!(err("c1 00", V311), DecodeError::InvalidFlags("PINGREQ"));
    assert_eq!(err("11 00", V311), DecodeError::InvalidFlags("CONNECT"));
    assert_eq!(err("e2 00", V5), DecodeError::InvalidFlags("DISCONNECT"));
    assert_eq!(err("e2 00", V5).reason_code(), 0x81);
}

#[test]
fn reserved_packet_types_are_malformed() {
    assert_eq!(err("00 00", V311), DecodeError::ReservedPacketType(0));
    assert_eq!(err("f0 00", V311), DecodeError::ReservedPacketType(15));
    assert_eq!(
        decode_one(&hex("f0 00"), V5).unwrap(),
        Packet::Auth(Auth::default())
    );
}

#[test]
fn publish_qos_3_is_malformed() {
    assert_eq!(err("36 05 0001 61 0001", V311), DecodeError::InvalidQoS);
}

#[test]
fn publish_dup_with_qos_0_is_malformed() {
    assert_eq!(err("38 03 0001 61", V311), DecodeError::DupWithQoS0);
}

#[test]
fn strings_must_be_well_formed_utf8_without_nul() {
    assert_eq!(err("30 04 0002 c328", V311), DecodeError::InvalidUtf8);
    // Encoded surrogate U+D800 is not well-formed UTF-8.
    assert_eq!(err("30 05 0003 eda080", V311), DecodeError::InvalidUtf8);
    assert_eq!(err("30 04 0002 6100", V311), DecodeError::NullCharacter);
}

#[test]
fn packet_id_zero_is_malformed() {
    assert_eq!(err("32 05 0001 61 0000", V311), DecodeError::ZeroPacketId);
    assert_eq!(err("40 02 0000", V5), DecodeError::ZeroPacketId);
    assert_eq!(
        err("82 06 0000 0001 23 00", V311),
        DecodeError::ZeroPacketId
    );
    assert_eq!(err("b0 02 0000", V311), DecodeError::ZeroPacketId);
}

#[test]
fn subscribe_and_unsubscribe_need_a_filter() {
    assert_eq!(err("82 02 0001", V311), DecodeError::EmptySubscribe);
    assert_eq!(err("82 03 0001 00", V5), DecodeError::EmptySubscribe);
    assert_eq!(err("a2 02 0001", V311), DecodeError::EmptyUnsubscribe);
    assert_eq!(err("a2 03 0001 00", V5), DecodeError::EmptyUnsubscribe);
}

#[test]
fn subscription_option_reserved_bits_are_malformed() {
    // 3.1.1: bits 7..2 reserved.
    assert_eq!(
        err("82 06 0001 0001 23 04", V311),
        DecodeError::InvalidSubscriptionOptions
    );
    // 5.0: bits 7..6 reserved.
    let e = err("82 07 0001 00 0001 23 40", V5);
    assert_eq!(e, DecodeError::InvalidSubscriptionOptions);
    assert_eq!(e.reason_code(), 0x81);
}

#[test]
fn retain_handling_3_is_a_protocol_error() {
    let e = err("82 07 0001 00 0001 23 30", V5);
    assert_eq!(e, DecodeError::InvalidRetainHandling);
    assert_eq!(e.reason_code(), 0x82);
}

#[test]
fn subscribe_qos_3_is_rejected() {
    assert_eq!(
        err("82 06 0001 0001 23 03", V311),
        DecodeError::InvalidSubscribeQoS
    );
    assert_eq!(err("82 07 0001 00 0001 23 03", V5).reason_code(), 0x82);
}

const CONNECT_HEAD: &str = "0004 4d515454 04";

fn connect_with_flags(flags: u8, rest: &str) -> String {
    let body = format!("{CONNECT_HEAD} {flags:02x} 003c 0000 {rest}");
    let len = hex(&body).len();
    format!("10 {len:02x} {body}")
}

#[test]
fn connect_reserved_flag_is_malformed() {
    assert_eq!(
        err(&connect_with_flags(0x03, ""), V311),
        DecodeError::ConnectReservedFlag
    );
}

#[test]
fn will_qos_and_retain_need_the_will_flag() {
    assert_eq!(
        err(&connect_with_flags(0x0a, ""), V311),
        DecodeError::WillQoSWithoutWill
    );
    assert_eq!(
        err(&connect_with_flags(0x22, ""), V311),
        DecodeError::WillRetainWithoutWill
    );
    assert_eq!(
        err(&connect_with_flags(0x1e, "0001 77 0000"), V311),
        DecodeError::InvalidWillQoS
    );
}

#[test]
fn v311_password_without_username_is_malformed_but_v5_allows_it() {
    assert_eq!(
        err(&connect_with_flags(0x42, "0002 7077"), V311),
        DecodeError::PasswordWithoutUsername
    );
    let v5 = "10 11 0004 4d515454 05 42 003c 00 0000 0002 7077";
    let Packet::Connect(c) = decode_one(&hex(v5), V311).unwrap() else {
        panic!("not a connect");
    };
    assert_eq!(c.password, Some(Bytes::from_static(b"pw")));
    assert_eq!(c.username, None);
}

#[test]
fn unknown_protocol_level_or_name_is_unsupported_protocol_version() {
    let e = err("10 0c 0004 4d515454 06 02 003c 0000", V311);
    assert_eq!(
        e,
        DecodeError::UnsupportedProtocolVersion {
            name: "MQTT".into(),
            level: 6
        }
    );
    assert_eq!(e.reason_code(), 0x84);
    let e = err("10 0c 0004 4d515858 04 02 003c 0000", V311);
    assert!(matches!(
        e,
        DecodeError::UnsupportedProtocolVersion { level: 4, .. }
    ));
    // "MQIsdp" is only valid with level 3.
    let e = err("10 0e 0006 4d5149736470 04 02 003c 0000", V311);
    assert!(matches!(e, DecodeError::UnsupportedProtocolVersion { .. }));
}

#[test]
fn remaining_length_longer_than_contents_is_malformed() {
    assert_eq!(err("40 03 0001 00", V311), DecodeError::TrailingBytes);
    assert_eq!(err("c0 01 00", V311), DecodeError::TrailingBytes);
    assert_eq!(err("e0 01 00", V311), DecodeError::TrailingBytes);
    assert_eq!(err("20 03 00 00 00", V311), DecodeError::TrailingBytes);
    assert_eq!(err("b0 03 0001 00", V311), DecodeError::TrailingBytes);
    assert_eq!(
        err(&connect_with_flags(0x02, "00"), V311),
        DecodeError::TrailingBytes
    );
}

#[test]
fn remaining_length_shorter_than_contents_is_malformed() {
    assert_eq!(err("40 01 00", V311), DecodeError::UnexpectedEnd);
    assert_eq!(err("10 06 0004 4d515454", V311), DecodeError::UnexpectedEnd);
    assert_eq!(err("30 02 0005", V311), DecodeError::UnexpectedEnd);
    assert_eq!(err("20 01 00", V5), DecodeError::UnexpectedEnd);
}

#[test]
fn connack_reserved_acknowledge_flags_are_malformed() {
    assert_eq!(err("20 02 02 00", V311), DecodeError::ConnAckReservedFlags);
}

fn publish(topic: &str, qos: QoS, packet_id: Option<u16>, payload: Bytes) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from(topic),
        packet_id,
        properties: Default::default(),
        payload,
    })
}

#[test]
fn encoding_a_string_over_65535_bytes_fails() {
    let long = "a".repeat(65_536);
    let p = publish(&long, QoS::AtMostOnce, None, Bytes::new());
    let mut buf = BytesMut::new();
    assert_eq!(
        encode_packet(&p, V311, &mut buf),
        Err(EncodeError::FieldTooLong(65_536))
    );
    assert!(buf.is_empty());
}

#[test]
fn encoding_a_packet_over_the_remaining_length_limit_fails() {
    // Zeroed allocations are lazily mapped, so this does not touch 256 MiB.
    let payload = Bytes::from(vec![0u8; 268_435_456]);
    let p = publish("a", QoS::AtMostOnce, None, payload);
    assert!(matches!(
        encoded_len(&p, V5),
        Err(EncodeError::PacketTooLarge(_))
    ));
}

#[test]
fn encoding_qos1_publish_without_packet_id_fails() {
    let p = publish("a", QoS::AtLeastOnce, None, Bytes::new());
    assert_eq!(encoded_len(&p, V311), Err(EncodeError::MissingPacketId));
    let p = publish("a", QoS::AtLeastOnce, Some(0), Bytes::new());
    assert_eq!(encoded_len(&p, V311), Err(EncodeError::MissingPacketId));
}

#[test]
fn encoding_auth_for_v311_fails() {
    assert_eq!(
        encoded_len(&Packet::Auth(Auth::default()), V311),
        Err(EncodeError::NotInVersion("AUTH"))
    );
}

#[test]
fn encoding_subscribe_without_filters_fails() {
    let s = Packet::Subscribe(Subscribe {
        packet_id: 1,
        filters: vec![],
        properties: Default::default(),
    });
    assert_eq!(encoded_len(&s, V5), Err(EncodeError::NoFilters));
}

#[test]
fn connect_version_can_be_peeked_before_decoding() {
    use crate::mqtt::codec::peek_connect_version;
    let v5 = hex("10 0c 0004 4d515454 05 02 003c 0000");
    assert_eq!(peek_connect_version(&v5), Some(V5));
    assert_eq!(peek_connect_version(&v5[..9]), Some(V5));
    assert_eq!(peek_connect_version(&v5[..8]), None);
    let v31 = hex("10 0e 0006 4d5149736470 03 02 003c 0000");
    assert_eq!(peek_connect_version(&v31), Some(ProtocolVersion::V31));
    assert_eq!(peek_connect_version(&hex("10 0c 0004 4d515454 06")), None);
    assert_eq!(peek_connect_version(&hex("30 03 0001 61")), None);
}

#[test]
fn encoder_clears_dup_on_qos0() {
    let Packet::Publish(mut p) = publish("a", QoS::AtMostOnce, None, Bytes::new()) else {
        unreachable!()
    };
    p.dup = true;
    let mut buf = BytesMut::new();
    encode_packet(&Packet::Publish(p), V311, &mut buf).unwrap();
    assert_eq!(buf[0], 0x30);
}

#[test]
fn connack_code_reads_as_either_version() {
    let Packet::ConnAck(ack) = decode_one(&hex("20 02 00 05"), V311).unwrap() else {
        panic!("not a connack");
    };
    assert_eq!(
        ack.return_code(),
        Some(crate::mqtt::codec::ConnectReturnCode::NotAuthorized)
    );
    let Packet::ConnAck(ack) = decode_one(&hex("20 03 00 87 00"), V5).unwrap() else {
        panic!("not a connack");
    };
    assert_eq!(
        ack.reason_code(),
        Some(crate::mqtt::codec::ReasonCode::NotAuthorized)
    );
}
