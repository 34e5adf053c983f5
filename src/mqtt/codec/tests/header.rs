//! Fixed header: remaining length edge cases and streaming behaviour.

use bytes::BytesMut;

use super::roundtrip::{all_packets_v5, as_v3};
use super::{NO_LIMIT, encode, hex};
use crate::mqtt::codec::{
    DecodeError, EncodeError, MAX_REMAINING_LENGTH, Packet, ProtocolVersion, PubResponse,
    decode_packet, encode_fixed_header, parse_fixed_header,
};

fn header_bytes(len: usize) -> Vec<u8> {
    let mut out = [0u8; 5];
    let n = encode_fixed_header(0x30, len, &mut out).unwrap();
    out[..n].to_vec()
}

#[test]
fn remaining_length_boundaries_use_the_shortest_form() {
    let cases: [(usize, &[u8]); 8] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for (len, encoded) in cases {
        let bytes = header_bytes(len);
        assert_eq!(&bytes[1..], encoded, "length {len}");
        let header = parse_fixed_header(&bytes).unwrap().unwrap();
        assert_eq!(header.remaining_length as usize, len);
        assert_eq!(header.header_len, bytes.len());
    }
}

#[test]
fn remaining_length_above_maximum_is_an_encode_error() {
    let mut out = [0u8; 5];
    assert_eq!(
        encode_fixed_header(0x30, MAX_REMAINING_LENGTH as usize + 1, &mut out),
        Err(EncodeError::PacketTooLarge(268_435_456))
    );
}

#[test]
fn fifth_length_byte_is_malformed() {
    assert_eq!(
        parse_fixed_header(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
        Err(DecodeError::MalformedRemainingLength)
    );
    // Known to be malformed before the fifth byte arrives.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x80][..]);
    assert_eq!(
        decode_packet(&mut buf, ProtocolVersion::V311, NO_LIMIT),
        Err(DecodeError::MalformedRemainingLength)
    );
}

#[test]
fn incomplete_length_waits_for_more_bytes() {
    assert_eq!(parse_fixed_header(&[]), Ok(None));
    assert_eq!(parse_fixed_header(&[0x30]), Ok(None));
    assert_eq!(parse_fixed_header(&[0x30, 0xFF, 0xFF]), Ok(None));
}

#[test]
fn packet_too_large_is_reported_from_the_header_alone() {
    // Declares 268,435,455 bytes but only the header is present.
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    let err = decode_packet(&mut buf, ProtocolVersion::V5, 1024).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 268_435_460,
            max: 1024
        }
    );
    assert_eq!(err.reason_code(), 0x95);
}

#[test]
fn maximum_packet_size_counts_the_fixed_header() {
    let bytes = hex("40 02 0007");
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(decode_packet(&mut buf, ProtocolVersion::V311, 3).is_err());
    let mut buf = BytesMut::from(&bytes[..]);
    assert!(
        decode_packet(&mut buf, ProtocolVersion::V311, 4)
            .unwrap()
            .is_some()
    );
}

#[test]
fn huge_declared_length_does_not_reserve_the_body() {
    let mut buf = BytesMut::from(&[0x30, 0xFF, 0xFF, 0xFF, 0x7F][..]);
    assert_eq!(
        decode_packet(&mut buf, ProtocolVersion::V5, NO_LIMIT),
        Ok(None)
    );
    assert!(buf.capacity() < 1024 * 1024);
}

#[test]
fn every_split_point_of_a_valid_packet_returns_none_then_the_packet() {
    let vectors = [
        (
            hex(
                "10 2c 0004 4d515454 05 ce 003c 08 11 0000001e 21 0014 0004 74657374 \
                 00 0001 77 0003 627965 0004 75736572 0002 7077",
            ),
            ProtocolVersion::V5,
        ),
        (hex("3b 09 0003 612f62 000a 6869"), ProtocolVersion::V311),
        (hex("82 09 0002 02 0b 07 0001 23 2d"), ProtocolVersion::V5),
    ];
    for (bytes, version) in vectors {
        let whole = {
            let mut buf = BytesMut::from(&bytes[..]);
            decode_packet(&mut buf, version, NO_LIMIT).unwrap().unwrap()
        };
        for split in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..split]);
            assert_eq!(
                decode_packet(&mut buf, version, NO_LIMIT),
                Ok(None),
                "split {split}"
            );
            assert_eq!(buf.len(), split, "nothing consumed at split {split}");
            buf.extend_from_slice(&bytes[split..]);
            assert_eq!(
                decode_packet(&mut buf, version, NO_LIMIT).unwrap().as_ref(),
                Some(&whole)
            );
            assert!(buf.is_empty());
        }
    }
}

#[test]
fn every_split_point_of_every_packet_type_returns_none() {
    let v5 = all_packets_v5();
    let v3 = v5.iter().cloned().filter_map(as_v3);
    let cases = v5
        .iter()
        .cloned()
        .map(|p| (p, ProtocolVersion::V5))
        .chain(v3.map(|p| (p, ProtocolVersion::V311)));
    for (packet, version) in cases {
        let bytes = encode(&packet, version);
        for split in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..split]);
            assert_eq!(
                decode_packet(&mut buf, version, NO_LIMIT),
                Ok(None),
                "{} split {split}",
                packet.name()
            );
        }
    }
}

#[test]
fn back_to_back_packets_decode_one_at_a_time() {
    let mut bytes = encode(&Packet::PingReq, ProtocolVersion::V311);
    bytes.extend(encode(
        &Packet::PubAck(PubResponse::new(5)),
        ProtocolVersion::V311,
    ));
    let mut buf = BytesMut::from(&bytes[..]);
    let v = ProtocolVersion::V311;
    assert_eq!(
        decode_packet(&mut buf, v, NO_LIMIT),
        Ok(Some(Packet::PingReq))
    );
    assert_eq!(
        decode_packet(&mut buf, v, NO_LIMIT),
        Ok(Some(Packet::PubAck(PubResponse::new(5))))
    );
    assert_eq!(decode_packet(&mut buf, v, NO_LIMIT), Ok(None));
}
