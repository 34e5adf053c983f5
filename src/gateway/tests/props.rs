//! Property tests: arbitrary datagrams from many peers never panic the
//! gateway, and a well-behaved sensor still connects and publishes after.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::mqttsn::codec::{ReturnCode, SnQos, TopicRef};

/// Datagrams that look like MQTT-SN often enough to reach deep states:
/// valid messages with one octet mutated, or random bytes.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = vec![
        vec![0x09, 0x04, 0x0C, 0x01, 0x00, 0x3C, b'c', b'l', b'1'],
        vec![0x09, 0x04, 0x04, 0x01, 0x00, 0x01, b'c', b'l', b'2'],
        vec![0x06, 0x07, 0x30, b'w', b'/', b't'],
        vec![0x05, 0x09, b'b', b'y', b'e'],
        vec![0x09, 0x0A, 0x00, 0x00, 0x00, 0x01, b'a', b'/', b'b'],
        vec![0x09, 0x0C, 0x20, 0x00, 0x07, 0x00, 0x02, b'h', b'i'],
        vec![0x09, 0x0C, 0x61, 0x00, 0x05, 0x00, 0x00, b'h', b'i'],
        vec![0x08, 0x12, 0x20, 0x00, 0x03, b'a', b'/', b'#'],
        vec![0x07, 0x0B, 0x00, 0x07, 0x00, 0x01, 0x00],
        vec![0x07, 0x0D, 0x00, 0x07, 0x00, 0x01, 0x02],
        vec![0x04, 0x0F, 0x00, 0x01],
        vec![0x04, 0x10, 0x00, 0x01],
        vec![0x04, 0x18, 0x00, 0x05],
        vec![0x05, 0x16, b'c', b'l', b'1'],
        vec![0x02, 0x18],
        vec![0x06, 0x1A, 0x00, b'x', b'/', b'y'],
        vec![0x05, 0xFE, 0x00, 0x12, 0x34, 0x02, 0x16],
        vec![0x03, 0x01, 0x00],
    ];
    prop_oneof![
        (
            prop::sample::select(seeds),
            any::<prop::sample::Index>(),
            any::<u8>()
        )
            .prop_map(|(mut v, i, b)| {
                let at = i.index(v.len());
                v[at] = b;
                v
            }),
        prop::collection::vec(any::<u8>(), 0..40),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Datagram(u16, Vec<u8>),
    Advance(u16),
    Deliver(u16, u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0u16..8, datagram()).prop_map(|(p, d)| Step::Datagram(p, d)),
        1 => (0u16..200).prop_map(Step::Advance),
        1 => (0u16..8, 0u8..3).prop_map(|(p, q)| Step::Deliver(p, q)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_datagrams_never_panic_and_a_good_sensor_still_works(steps in prop::collection::vec(step(), 0..60)) {
        let mut h = Harness::new();
        let mut conns: Vec<ConnId> = Vec::new();
        for s in steps {
            match s {
                Step::Datagram(p, d) => h.raw(p, &d),
                Step::Advance(secs) => h.advance(Duration::from_secs(u64::from(secs))),
                Step::Deliver(i, q) => {
                    if let Some(c) = conns.get(usize::from(i) % conns.len().max(1)) {
                        let qos = QoS::from_u8(q).unwrap();
                        let id = (qos != QoS::AtMostOnce).then_some(i + 1);
                        h.outbound(*c, delivery("a/b", b"x", qos, id));
                    }
                }
            }
            for c in h.play_broker() {
                if let Command::Connect(r) = c {
                    conns.push(r.conn);
                }
            }
            h.transmits();
        }
        // A fresh, well-behaved sensor on its own address.
        h.connect(100, "good", true);
        h.send(100, Message::Register { topic_id: 0, msg_id: 1, topic_name: Bytes::from_static(b"g/t") });
        let r = h.replies_to(100);
        let [Message::RegAck { topic_id, code: ReturnCode::Accepted, .. }] = r[..] else {
            panic!("{r:?}")
        };
        h.send(100, Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: TopicRef::Normal(topic_id),
            msg_id: 2,
            data: Bytes::from_static(b"ok"),
        });
        h.play_broker();
        prop_assert_eq!(h.replies_to(100), vec![Message::PubAck { topic_id, msg_id: 2, code: ReturnCode::Accepted }]);
    }
}
