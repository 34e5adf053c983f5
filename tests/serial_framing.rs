//! Property tests of the serial framings: total on any input, and exact on
//! valid frames mixed with the kind of noise each framing can recover from.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sngate::config::XbeeApiMode;
use sngate::mqttsn::codec::{Message, SnQos, TopicRef, encode};
use sngate::qos::QoS;
use sngate::transport::serial::framing::{
    Decoded, Framing, OutFrame, RawFraming, SlipFraming, XbeeFraming,
};

const MAX: usize = 65_535;

fn decoders() -> Vec<Box<dyn Framing>> {
    vec![
        Box::new(RawFraming::new(MAX)),
        Box::new(SlipFraming::new(false, MAX)),
        Box::new(SlipFraming::new(true, MAX)),
        Box::new(XbeeFraming::new(XbeeApiMode::Unescaped, MAX)),
        Box::new(XbeeFraming::new(XbeeApiMode::Escaped, MAX)),
    ]
}

/// Feeds one chunk at `now` and returns the datagrams decoded.
fn feed(f: &mut dyn Framing, buf: &mut BytesMut, chunk: &[u8], now: Instant) -> Vec<Bytes> {
    buf.extend_from_slice(chunk);
    let mut out = Vec::new();
    while let Some(item) = f.decode(buf, now) {
        if let Ok(Decoded::Frame(frame)) = item {
            out.push(frame.message);
        }
    }
    out
}

fn message() -> impl Strategy<Value = Bytes> {
    (proptest::collection::vec(any::<u8>(), 0..300), any::<u16>()).prop_map(|(data, id)| {
        let mut b = BytesMut::new();
        let msg = Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: TopicRef::Normal(id),
            msg_id: id.max(1),
            data: Bytes::from(data),
        };
        encode(&msg, &mut b).unwrap();
        b.freeze()
    })
}

/// Receive Packet (0x90) as a remote radio's module would deliver it, mode 1.
fn receive_packet(rf: &[u8]) -> Vec<u8> {
    let mut data = vec![0x90, 0, 0x13, 0xA2, 0, 1, 2, 3, 4, 0xFF, 0xFE, 0x01];
    data.extend_from_slice(rf);
    let sum = data.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    let mut frame = vec![0x7E];
    frame.extend_from_slice(&(data.len() as u16).to_be_bytes());
    frame.extend_from_slice(&data);
    frame.push(0xFF - sum);
    frame
}

fn escape(frame: &[u8]) -> Vec<u8> {
    let mut out = vec![frame[0]];
    for &b in &frame[1..] {
        if matches!(b, 0x7E | 0x7D | 0x11 | 0x13) {
            out.extend([0x7D, b ^ 0x20]);
        } else {
            out.push(b);
        }
    }
    out
}

proptest! {
    #[test]
    fn any_byte_stream_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..8)) {
        let t0 = Instant::now();
        for mut f in decoders() {
            let mut buf = BytesMut::new();
            for (i, chunk) in chunks.iter().enumerate() {
                feed(f.as_mut(), &mut buf, chunk, t0 + Duration::from_millis(30 * i as u64));
                prop_assert!(buf.len() <= 3 * MAX + 64);
            }
        }
    }

    #[test]
    fn slip_with_crc_yields_exactly_the_valid_frames_among_noise(
        // Noise without END (0xC0): noise that happens to end in END after two octets matching
        // the CRC of what precedes them is a valid frame (a 2^-16 chance), which no receiver can
        // tell apart. Line noise between frames is dropped at the next frame's leading END.
        items in proptest::collection::vec((message(), proptest::collection::vec(
            any::<u8>().prop_filter("no END", |b| *b != 0xC0), 0..40)), 1..6)
    ) {
        let mut f = SlipFraming::new(true, MAX);
        let mut wire = BytesMut::new();
        for (m, noise) in &items {
            wire.extend_from_slice(noise);
            f.encode(&OutFrame::to_peer(m.clone()), &mut wire).unwrap();
        }
        let mut buf = BytesMut::new();
        let got = feed(&mut f, &mut buf, &wire, Instant::now());
        let want: Vec<Bytes> = items.into_iter().map(|(m, _)| m).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn xbee_yields_exactly_the_valid_frames_among_noise_without_delimiters(
        items in proptest::collection::vec((message(), proptest::collection::vec(any::<u8>().prop_filter("no 0x7E", |b| *b != 0x7E), 0..40)), 1..6),
        escaped in any::<bool>(),
    ) {
        let mode = if escaped { XbeeApiMode::Escaped } else { XbeeApiMode::Unescaped };
        let mut f = XbeeFraming::new(mode, MAX);
        let mut wire = Vec::new();
        for (m, noise) in &items {
            wire.extend_from_slice(noise);
            let frame = receive_packet(m);
            wire.extend(if escaped { escape(&frame) } else { frame });
        }
        let mut buf = BytesMut::new();
        let got = feed(&mut f, &mut buf, &wire, Instant::now());
        let want: Vec<Bytes> = items.into_iter().map(|(m, _)| m).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn raw_yields_exactly_the_valid_frames_when_noise_is_followed_by_a_pause(
        // Noise whose every octet, read as a MsgType, is reserved: it can never form a message.
        items in proptest::collection::vec((message(), proptest::collection::vec(
            prop_oneof![Just(0x00u8), Just(0x01u8), 0x1Eu8..=0xFD, Just(0xFFu8)], 0..40)), 1..6)
    ) {
        let mut f = RawFraming::new(MAX);
        let mut buf = BytesMut::new();
        let mut now = Instant::now();
        let mut got = Vec::new();
        for (m, noise) in &items {
            got.extend(feed(&mut f, &mut buf, m, now));
            got.extend(feed(&mut f, &mut buf, noise, now));
            now += Duration::from_millis(100);
        }
        got.extend(feed(&mut f, &mut buf, &[], now));
        let want: Vec<Bytes> = items.into_iter().map(|(m, _)| m).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn every_framing_round_trips_any_message_split_anywhere(m in message(), cut in any::<prop::sample::Index>()) {
        let encoders: Vec<Box<dyn Framing>> = vec![
            Box::new(RawFraming::new(MAX)),
            Box::new(SlipFraming::new(true, MAX)),
            Box::new(SlipFraming::new(false, MAX)),
        ];
        for mut f in encoders {
            let mut wire = BytesMut::new();
            f.encode(&OutFrame::to_peer(m.clone()), &mut wire).unwrap();
            let at = cut.index(wire.len() + 1);
            let mut buf = BytesMut::new();
            let now = Instant::now();
            let mut got = feed(f.as_mut(), &mut buf, &wire[..at], now);
            got.extend(feed(f.as_mut(), &mut buf, &wire[at..], now));
            prop_assert_eq!(got, vec![m.clone()]);
        }
    }
}
