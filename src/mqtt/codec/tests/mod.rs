//! Codec tests: spec byte vectors, round trips, limits, properties, property tests.

mod header;
mod properties;
mod proptests;
mod roundtrip;
mod validation;
mod vectors;

use bytes::BytesMut;

use super::{DecodeError, Packet, ProtocolVersion, decode_packet, encode_packet, encoded_len};

const NO_LIMIT: u32 = u32::MAX;

/// Hex string (spaces allowed) to bytes.
fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).unwrap(), 16).unwrap())
        .collect()
}

/// Decodes exactly one packet that must take all of `bytes`.
fn decode_one(bytes: &[u8], version: ProtocolVersion) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = decode_packet(&mut buf, version, NO_LIMIT)?.expect("whole packet");
    assert!(buf.is_empty(), "decoder left {} bytes", buf.len());
    Ok(packet)
}

fn encode(packet: &Packet, version: ProtocolVersion) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_packet(packet, version, &mut buf).unwrap();
    assert_eq!(buf.len(), encoded_len(packet, version).unwrap());
    buf.to_vec()
}

/// Encodes, checks `encoded_len`, decodes and compares.
fn round_trip(packet: &Packet, version: ProtocolVersion) {
    let bytes = encode(packet, version);
    let decoded = decode_one(&bytes, version).unwrap();
    assert_eq!(&decoded, packet);
}
