//! Arbitrary datagrams through the MQTT-SN decoder: it must never panic, and
//! whatever it accepts must survive an encode/decode round trip unchanged.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sngate::mqttsn::codec::{decode, encode_frame, peek_msg_type};

fuzz_target!(|data: &[u8]| {
    let _ = peek_msg_type(data);
    let datagram = Bytes::copy_from_slice(data);
    if let Ok(frame) = decode(&datagram) {
        let mut buf = BytesMut::new();
        encode_frame(&frame, &mut buf).expect("a decoded frame always fits its encoding");
        assert_eq!(decode(&buf.freeze()), Ok(frame));
    }
});
