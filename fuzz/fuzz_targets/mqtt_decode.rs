//! Streaming MQTT decode with arbitrary chunking for 3.1, 3.1.1 and 5.0.
//! The first input byte picks the version (low two bits) and the chunk size
//! (upper six bits); every decoded packet is re-encoded, and whatever encodes
//! must decode back to the same packet.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sngate::mqtt::codec::{ProtocolVersion, decode_packet, encode_packet};

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let version = match control & 0x03 {
        0 => ProtocolVersion::V31,
        1 => ProtocolVersion::V311,
        _ => ProtocolVersion::V5,
    };
    let chunk = usize::from(control >> 2) + 1;
    let mut buf = BytesMut::new();
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decode_packet(&mut buf, version, u32::MAX) {
                Ok(Some(packet)) => {
                    let mut out = BytesMut::new();
                    if encode_packet(&packet, version, &mut out).is_ok() {
                        let again = decode_packet(&mut out, version, u32::MAX)
                            .expect("re-encoded packet decodes")
                            .expect("re-encoded packet is whole");
                        assert_eq!(again, packet, "encode/decode round trip");
                        assert!(out.is_empty());
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
