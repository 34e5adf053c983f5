//! MQTT and MQTT-SN codec micro-benchmarks: the per-message work on the hot
//! path (PUBLISH encode/decode with a 64-byte payload, MQTT-SN REGISTER and
//! PUBLISH) and a CONNECT for reference.

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use sngate::mqtt::codec::{
    Connect, Packet, ProtocolVersion, Publish, decode_packet, encode_packet,
};
use sngate::mqttsn::codec::{Message, SnQos, TopicRef, decode, encode};
use sngate::qos::QoS;

fn mqtt_publish(qos: QoS) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: "site/7/dev/42/temperature".into(),
        packet_id: (qos != QoS::AtMostOnce).then_some(42),
        properties: Default::default(),
        payload: Bytes::from(vec![0x5A; 64]),
    })
}

fn mqtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("mqtt");
    for (name, version) in [("v311", ProtocolVersion::V311), ("v5", ProtocolVersion::V5)] {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
            let p = mqtt_publish(qos);
            let mut buf = BytesMut::with_capacity(256);
            g.bench_function(format!("encode_publish_{name}_q{}", qos.as_u8()), |b| {
                b.iter(|| {
                    buf.clear();
                    encode_packet(black_box(&p), version, &mut buf).ok();
                    black_box(buf.len())
                })
            });
            let mut wire = BytesMut::new();
            encode_packet(&p, version, &mut wire).ok();
            let wire = wire.freeze();
            g.bench_function(format!("decode_publish_{name}_q{}", qos.as_u8()), |b| {
                b.iter(|| {
                    let mut buf = BytesMut::from(black_box(&wire[..]));
                    black_box(decode_packet(&mut buf, version, u32::MAX).ok())
                })
            });
        }
    }
    // 100 back-to-back PUBLISH packets in one read, as a busy connection sees them.
    let mut stream = BytesMut::new();
    for _ in 0..100 {
        encode_packet(
            &mqtt_publish(QoS::AtMostOnce),
            ProtocolVersion::V311,
            &mut stream,
        )
        .ok();
    }
    let stream = stream.freeze();
    g.bench_function("decode_100_publish_stream_v311", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&stream[..]);
            let mut n = 0;
            while let Ok(Some(p)) = decode_packet(&mut buf, ProtocolVersion::V311, u32::MAX) {
                black_box(&p);
                n += 1;
            }
            n
        })
    });
    let connect = Packet::Connect(Connect {
        protocol: ProtocolVersion::V311,
        clean_start: true,
        keep_alive: 60,
        client_id: "sensor-hub-0042".into(),
        will: None,
        username: None,
        password: None,
        properties: Default::default(),
    });
    let mut wire = BytesMut::new();
    encode_packet(&connect, ProtocolVersion::V311, &mut wire).ok();
    let wire = wire.freeze();
    g.bench_function("decode_connect_v311", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(black_box(&wire[..]));
            black_box(decode_packet(&mut buf, ProtocolVersion::V311, u32::MAX).ok())
        })
    });
    g.finish();
}

fn mqttsn(c: &mut Criterion) {
    let mut g = c.benchmark_group("mqttsn");
    let publish = Message::Publish {
        dup: false,
        qos: SnQos::Level(QoS::AtLeastOnce),
        retain: false,
        topic: TopicRef::Normal(7),
        msg_id: 42,
        data: Bytes::from(vec![0x5A; 64]),
    };
    let register = Message::Register {
        topic_id: 0,
        msg_id: 1,
        topic_name: Bytes::from_static(b"site/7/dev/42/temperature"),
    };
    for (name, m) in [("publish_q1", &publish), ("register", &register)] {
        let mut buf = BytesMut::with_capacity(256);
        g.bench_function(format!("encode_{name}"), |b| {
            b.iter(|| {
                buf.clear();
                encode(black_box(m), &mut buf).ok();
                black_box(buf.len())
            })
        });
        let mut wire = BytesMut::new();
        encode(m, &mut wire).ok();
        let wire = wire.freeze();
        g.bench_function(format!("decode_{name}"), |b| {
            b.iter(|| black_box(decode(black_box(&wire)).ok()))
        });
    }
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the benchmark machine is shared.
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = mqtt, mqttsn
}
criterion_main!(benches);
