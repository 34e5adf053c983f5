//! MQTT 5 properties and reason codes: every identifier round trips, the
//! at-most-once rule, placement rules and value checks.

use bytes::BytesMut;

use super::{NO_LIMIT, decode_one, encode, hex};
use crate::mqtt::codec::properties::{PropContext, PropType, allowed, prop_type};
use crate::mqtt::codec::{
    AckProperties, Auth, ConnAck, DecodeError, Disconnect, Packet, ProtocolVersion, PubResponse,
    ReasonCode, ReasonContext, SubAck, UnsubAck, decode_packet, property_id as id,
};

const CONTEXTS: [PropContext; 9] = [
    PropContext::Connect,
    PropContext::Will,
    PropContext::ConnAck,
    PropContext::Publish,
    PropContext::Ack,
    PropContext::Subscribe,
    PropContext::Unsubscribe,
    PropContext::Disconnect,
    PropContext::Auth,
];

/// A packet whose only property section (for `ctx`) is `props` (without its length).
fn packet_with(ctx: PropContext, props: &[u8]) -> Vec<u8> {
    let mut section = vec![u8::try_from(props.len()).unwrap()];
    section.extend_from_slice(props);
    let (byte1, mut body) = match ctx {
        PropContext::Connect => (0x10, hex("0004 4d515454 05 02 003c")),
        PropContext::Will => (0x10, hex("0004 4d515454 05 06 003c 00 0000")),
        PropContext::ConnAck => (0x20, hex("00 00")),
        PropContext::Publish => (0x30, hex("0001 61")),
        PropContext::Ack => (0x40, hex("0001 00")),
        PropContext::Subscribe => (0x82, hex("0001")),
        PropContext::Unsubscribe => (0xa2, hex("0001")),
        PropContext::Disconnect => (0xe0, hex("00")),
        PropContext::Auth => (0xf0, hex("18")),
    };
    body.extend_from_slice(&section);
    match ctx {
        PropContext::Connect => body.extend(hex("0000")),
        PropContext::Will => body.extend(hex("0001 77 0000")),
        PropContext::Subscribe => body.extend(hex("0001 61 00")),
        PropContext::Unsubscribe => body.extend(hex("0001 61")),
        _ => {}
    }
    let mut out = vec![byte1, u8::try_from(body.len()).unwrap()];
    out.extend(body);
    out
}

/// One property with a valid sample value of its type.
fn sample(pid: u8) -> Vec<u8> {
    let mut out = vec![pid];
    out.extend(match prop_type(pid).unwrap() {
        PropType::Byte => hex("01"),
        PropType::TwoByte => hex("0102"),
        PropType::FourByte => hex("01020304"),
        PropType::VarInt => hex("ac02"),
        PropType::Utf8 => hex("0002 6162"),
        PropType::Binary => hex("0001 ff"),
        PropType::Pair => hex("0001 6b 0001 76"),
    });
    out
}

fn all_ids() -> Vec<u8> {
    (0u8..=0x7F).filter(|p| prop_type(*p).is_some()).collect()
}

fn decode_v5(bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    decode_packet(&mut BytesMut::from(bytes), ProtocolVersion::V5, NO_LIMIT)
}

#[test]
fn the_spec_defines_27_property_identifiers() {
    assert_eq!(all_ids().len(), 27);
}

#[test]
fn every_property_round_trips_in_every_packet_that_allows_it() {
    for pid in all_ids() {
        let mut used = false;
        for ctx in CONTEXTS.into_iter().filter(|c| allowed(pid, *c)) {
            used = true;
            let bytes = packet_with(ctx, &sample(pid));
            let packet = decode_one(&bytes, ProtocolVersion::V5)
                .unwrap_or_else(|e| panic!("0x{pid:02X} in {ctx:?}: {e}"));
            assert_eq!(
                encode(&packet, ProtocolVersion::V5),
                bytes,
                "0x{pid:02X} {ctx:?}"
            );
        }
        assert!(used, "0x{pid:02X} allowed nowhere");
    }
}

#[test]
fn property_outside_its_packets_is_malformed() {
    for pid in all_ids() {
        for ctx in CONTEXTS.into_iter().filter(|c| !allowed(pid, *c)) {
            let err = decode_v5(&packet_with(ctx, &sample(pid))).unwrap_err();
            assert!(
                matches!(err, DecodeError::PropertyNotAllowed { id, .. } if id == pid),
                "0x{pid:02X} in {ctx:?}: {err}"
            );
            assert_eq!(err.reason_code(), 0x81);
        }
    }
}

#[test]
fn spec_placement_examples() {
    assert!(!allowed(id::TOPIC_ALIAS, PropContext::Connect));
    assert!(!allowed(id::WILL_DELAY_INTERVAL, PropContext::Publish));
    assert!(!allowed(id::REASON_STRING, PropContext::Connect));
    assert!(!allowed(id::SUBSCRIPTION_IDENTIFIER, PropContext::ConnAck));
    assert!(allowed(id::SERVER_REFERENCE, PropContext::Disconnect));
    assert!(allowed(
        id::SESSION_EXPIRY_INTERVAL,
        PropContext::Disconnect
    ));
}

#[test]
fn duplicate_property_is_a_protocol_error() {
    for pid in all_ids().into_iter().filter(|p| *p != id::USER_PROPERTY) {
        for ctx in CONTEXTS.into_iter().filter(|c| allowed(pid, *c)) {
            if pid == id::SUBSCRIPTION_IDENTIFIER && ctx == PropContext::Publish {
                continue;
            }
            let mut props = sample(pid);
            props.extend(sample(pid));
            let err = decode_v5(&packet_with(ctx, &props)).unwrap_err();
            assert_eq!(err, DecodeError::DuplicateProperty(pid), "{ctx:?}");
            assert_eq!(err.reason_code(), 0x82);
        }
    }
}

#[test]
fn user_property_and_publish_subscription_identifier_may_repeat() {
    let mut props = sample(id::USER_PROPERTY);
    props.extend(sample(id::USER_PROPERTY));
    props.extend(hex("0b 01 0b 02"));
    let Packet::Publish(p) = decode_one(
        &packet_with(PropContext::Publish, &props),
        ProtocolVersion::V5,
    )
    .unwrap() else {
        panic!("not a publish");
    };
    assert_eq!(p.properties.user_properties.len(), 2);
    assert_eq!(p.properties.subscription_identifiers, vec![1, 2]);
}

#[test]
fn unknown_property_identifier_is_malformed() {
    let err = decode_v5(&packet_with(PropContext::Publish, &hex("04 00"))).unwrap_err();
    assert_eq!(err, DecodeError::UnknownProperty(0x04));
    assert_eq!(err.reason_code(), 0x81);
}

#[test]
fn forbidden_property_values_are_protocol_errors() {
    let cases = [
        (PropContext::Connect, "21 0000"),     // Receive Maximum 0
        (PropContext::ConnAck, "21 0000"),     // Receive Maximum 0
        (PropContext::Connect, "27 00000000"), // Maximum Packet Size 0
        (PropContext::ConnAck, "24 02"),       // Maximum QoS 2
        (PropContext::ConnAck, "25 02"),       // Retain Available 2
        (PropContext::Connect, "17 02"),       // Request Problem Information 2
        (PropContext::Connect, "19 02"),       // Request Response Information 2
        (PropContext::Publish, "01 02"),       // Payload Format Indicator 2
        (PropContext::Subscribe, "0b 00"),     // Subscription Identifier 0
        (PropContext::Publish, "0b 00"),       // Subscription Identifier 0
        (PropContext::ConnAck, "28 05"),       // Wildcard Subscription Available 5
    ];
    for (ctx, props) in cases {
        let err = decode_v5(&packet_with(ctx, &hex(props))).unwrap_err();
        assert!(
            matches!(err, DecodeError::InvalidPropertyValue { .. }),
            "{ctx:?} {props}: {err}"
        );
        assert_eq!(err.reason_code(), 0x82);
    }
}

#[test]
fn property_length_overrunning_the_packet_is_malformed() {
    // PUBLISH whose property length claims 10 bytes but 2 remain.
    let err = decode_v5(&hex("30 05 0001 61 0a 01")).unwrap_err();
    assert_eq!(err, DecodeError::PropertyLengthOverrun);
    // A property value running past its section.
    let err = decode_v5(&hex("30 07 0001 61 02 02 0000 00")).unwrap_err();
    assert_eq!(err, DecodeError::UnexpectedEnd);
}

#[test]
fn every_reason_code_value_round_trips_through_its_byte() {
    assert_eq!(ReasonCode::ALL.len(), 43);
    for code in ReasonCode::ALL {
        assert_eq!(ReasonCode::from_u8(code.as_u8()), Some(*code));
    }
    let defined = (0..=255u8)
        .filter(|v| ReasonCode::from_u8(*v).is_some())
        .count();
    assert_eq!(defined, ReasonCode::ALL.len());
}

fn packet_for(code: ReasonCode, ctx: ReasonContext) -> Packet {
    let resp = PubResponse {
        packet_id: 1,
        reason: code,
        properties: AckProperties::default(),
    };
    match ctx {
        ReasonContext::ConnAck => Packet::ConnAck(ConnAck {
            session_present: false,
            code: code.as_u8(),
            properties: Default::default(),
        }),
        ReasonContext::PubAck => Packet::PubAck(resp),
        ReasonContext::PubRec => Packet::PubRec(resp),
        ReasonContext::PubRel => Packet::PubRel(resp),
        ReasonContext::PubComp => Packet::PubComp(resp),
        ReasonContext::SubAck => Packet::SubAck(SubAck {
            packet_id: 1,
            reasons: vec![code],
            properties: Default::default(),
        }),
        ReasonContext::UnsubAck => Packet::UnsubAck(UnsubAck {
            packet_id: 1,
            reasons: vec![code],
            properties: Default::default(),
        }),
        ReasonContext::Disconnect => Packet::Disconnect(Disconnect {
            reason: code,
            properties: Default::default(),
        }),
        ReasonContext::Auth => Packet::Auth(Auth {
            reason: code,
            properties: Default::default(),
        }),
    }
}

const REASON_CONTEXTS: [ReasonContext; 9] = [
    ReasonContext::ConnAck,
    ReasonContext::PubAck,
    ReasonContext::PubRec,
    ReasonContext::PubRel,
    ReasonContext::PubComp,
    ReasonContext::SubAck,
    ReasonContext::UnsubAck,
    ReasonContext::Disconnect,
    ReasonContext::Auth,
];

#[test]
fn every_reason_code_round_trips_in_every_packet_that_allows_it() {
    for code in ReasonCode::ALL {
        let mut used = false;
        for ctx in REASON_CONTEXTS {
            let packet = packet_for(*code, ctx);
            let bytes = encode(&packet, ProtocolVersion::V5);
            if code.allowed_in(ctx) {
                used = true;
                assert_eq!(decode_one(&bytes, ProtocolVersion::V5).unwrap(), packet);
            } else {
                let err = decode_v5(&bytes).unwrap_err();
                assert!(
                    matches!(err, DecodeError::InvalidReasonCode { .. }),
                    "{code:?} in {ctx:?}"
                );
            }
        }
        assert!(used, "{code:?} allowed nowhere");
    }
}

#[test]
fn v311_connack_return_codes_0_to_5_only() {
    for rc in 0..=5u8 {
        let bytes = [0x20, 0x02, 0x00, rc];
        assert!(decode_one(&bytes, ProtocolVersion::V311).is_ok());
    }
    let mut buf = BytesMut::from(&[0x20, 0x02, 0x00, 0x06][..]);
    assert!(decode_packet(&mut buf, ProtocolVersion::V311, NO_LIMIT).is_err());
}
