//! Codec tests: spec-digest byte vectors, one test per decode rule, properties.

mod errors;
mod framing;
mod props;
mod vectors;

use bytes::{Bytes, BytesMut};

use super::{Frame, Message, decode, encode, encode_frame};

/// Parses "05 00 01" style hex as written in the spec digest.
pub(super) fn hex(s: &str) -> Bytes {
    let digits: Vec<u8> = s
        .split_whitespace()
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect();
    Bytes::from(digits)
}

/// Encodes one message into fresh bytes.
pub(super) fn encoded(msg: &Message) -> Bytes {
    let mut buf = BytesMut::new();
    encode(msg, &mut buf).unwrap();
    buf.freeze()
}

/// Encodes one frame into fresh bytes.
pub(super) fn encoded_frame(frame: &Frame) -> Bytes {
    let mut buf = BytesMut::new();
    encode_frame(frame, &mut buf).unwrap();
    buf.freeze()
}

/// Asserts that the digest's bytes decode to `expected` and encode back identically.
pub(super) fn assert_vector(bytes: &str, expected: Message) {
    let wire = hex(bytes);
    assert_eq!(
        decode(&wire),
        Ok(Frame::Message(expected.clone())),
        "decoding {bytes}"
    );
    assert_eq!(encoded(&expected), wire, "encoding {expected:?}");
}
