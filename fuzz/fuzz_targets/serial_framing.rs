//! Fuzz target: arbitrary bytes, in arbitrary chunks, to every serial framing decoder.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sngate::config::XbeeApiMode;
use sngate::transport::serial::framing::{Framing, RawFraming, SlipFraming, XbeeFraming};

fuzz_target!(|data: &[u8]| {
    // The first octet picks the chunk size, so that splits inside frames are explored too.
    let Some((&chunk, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(chunk).max(1);
    let decoders: Vec<Box<dyn Framing>> = vec![
        Box::new(RawFraming::new(1024)),
        Box::new(SlipFraming::new(false, 1024)),
        Box::new(SlipFraming::new(true, 1024)),
        Box::new(XbeeFraming::new(XbeeApiMode::Unescaped, 1024)),
        Box::new(XbeeFraming::new(XbeeApiMode::Escaped, 1024)),
    ];
    let t0 = Instant::now();
    for mut f in decoders {
        let mut buf = BytesMut::new();
        for (i, piece) in rest.chunks(chunk).enumerate() {
            buf.extend_from_slice(piece);
            let now = t0 + Duration::from_millis(20 * i as u64);
            while f.decode(&mut buf, now).is_some() {}
            assert!(buf.len() <= 4 * 1024 + 64, "decoder buffered without bound");
        }
    }
});
