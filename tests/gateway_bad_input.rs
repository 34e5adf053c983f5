//! Bad input over real UDP: random and mutated datagrams from many
//! addresses, unknown topic ids, messages in the wrong state, a REGISTER
//! flood, oversize and truncated datagrams, and a PINGREQ spoofing someone
//! else's sleeping session. Each is handled as the MQTT-SN 1.2 digest's
//! checklist says, and a well-behaved sensor keeps working afterwards.

mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::{Sub, mosquitto_pub};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sn_sensor::{SnSensor, connect_msg, encoded};
use sngate::app::Sngate;
use sngate::mqttsn::codec::{Message, ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;

const WAIT: Duration = Duration::from_secs(5);

/// Base config with small limits so that floods reach them quickly.
async fn start() -> (Sngate, SocketAddr, SocketAddr) {
    let text = common::BASE_CONFIG.replace(
        "advertise_interval = 0",
        "advertise_interval = 0\nmax_topics_per_sensor = 20\nmax_message_size = 512\n\n\
         [[gateway.predefined]]\ntopic_id = 100\ntopic = \"pre/hundred\"\n",
    );
    let app = common::start_config(&text).await;
    let mqtt = app.mqtt_addr().expect("an MQTT listener");
    let gw = app.gateway_udp[0];
    (app, mqtt, gw)
}

/// A sensor that connects, registers, publishes QoS 1 (seen by `mosquitto_sub`)
/// and receives from `mosquitto_pub`: the gateway still works.
async fn well_behaved_sensor_still_works(mqtt: SocketAddr, gw: SocketAddr, id: &str) {
    let topic = format!("ok/{id}");
    let mut sub = Sub::start(mqtt, &["-t", &topic, "-F", "%t %p"]).await;
    let mut s = SnSensor::new(gw).await;
    assert_eq!(s.connect(id, 60, true).await, ReturnCode::Accepted);
    let t = s.register(&topic).await;
    assert_eq!(
        s.publish(
            SnQos::Level(QoS::AtLeastOnce),
            TopicRef::Normal(t),
            false,
            b"alive"
        )
        .await,
        Some(ReturnCode::Accepted)
    );
    assert_eq!(sub.line(WAIT).await, Some(format!("{topic} alive")));
    let cmd = format!("cmd/{id}");
    s.subscribe_name(&cmd, QoS::AtLeastOnce).await;
    mosquitto_pub(mqtt, &["-t", &cmd, "-m", "go", "-q", "1"]).await;
    assert_eq!(&s.next_publish().await.data[..], b"go");
    s.disconnect().await;
}

/// Valid datagrams of every kind a sensor sends, as seeds for mutation.
fn seeds() -> Vec<Vec<u8>> {
    let publish = |qos, topic| Message::Publish {
        dup: false,
        qos,
        retain: false,
        topic,
        msg_id: 7,
        data: Bytes::from_static(b"payload"),
    };
    [
        connect_msg("fuzzed", 30, true, false),
        connect_msg("fuzzed-will", 30, false, true),
        Message::SearchGw { radius: 1 },
        Message::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::from_static(b"a/b"),
        },
        publish(SnQos::Level(QoS::AtLeastOnce), TopicRef::Normal(1)),
        publish(SnQos::Level(QoS::ExactlyOnce), TopicRef::Predefined(100)),
        publish(SnQos::MinusOne, TopicRef::Short(*b"ab")),
        Message::PubRel { msg_id: 7 },
        Message::PingReq {
            client_id: Some(Bytes::from_static(b"victim")),
        },
        Message::Disconnect { duration: Some(5) },
    ]
    .iter()
    .map(encoded)
    .collect()
}

fn mutate(rng: &mut StdRng, seed: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    match rng.random_range(0..4) {
        0 => {
            let i = rng.random_range(0..d.len());
            d[i] = rng.random();
        }
        1 => d.truncate(rng.random_range(0..d.len())),
        2 => d.extend((0..rng.random_range(1..20)).map(|_| rng.random::<u8>())),
        _ => {
            // Length octet and type both random: any framing at all.
            d[0] = rng.random();
            if d.len() > 1 {
                d[1] = rng.random();
            }
        }
    }
    d
}

#[tokio::test]
async fn random_and_mutated_datagrams_from_many_addresses_leave_the_gateway_working() {
    let (app, mqtt, gw) = start().await;
    // A sensor connected before the storm must survive it too.
    let mut before = SnSensor::new(gw).await;
    before.connect("before-storm", 60, true).await;
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let seeds = seeds();
    let mut senders = Vec::new();
    for _ in 0..40 {
        senders.push(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    }
    for i in 0..4000usize {
        let d = if i % 2 == 0 {
            let len = rng.random_range(0..300);
            (0..len).map(|_| rng.random::<u8>()).collect::<Vec<u8>>()
        } else {
            let seed = &seeds[rng.random_range(0..seeds.len())];
            mutate(&mut rng, seed)
        };
        senders[i % senders.len()].send_to(&d, gw).await.unwrap();
        if i % 200 == 0 {
            // Let the gateway drain; UDP would drop what it cannot read anyway.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    before.ping().await;
    well_behaved_sensor_still_works(mqtt, gw, "after-storm").await;
    app.stop().await;
}

#[tokio::test]
async fn publish_with_an_unknown_topic_id_gets_puback_invalid_topic_id() {
    // G-37, G-40: nothing is forwarded.
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "#", "-F", "%t %p"]).await;
    let mut s = SnSensor::new(gw).await;
    s.connect("unknown-ids", 60, true).await;
    for topic in [TopicRef::Normal(0x4242), TopicRef::Predefined(0x4242)] {
        assert_eq!(
            s.publish(SnQos::Level(QoS::AtLeastOnce), topic, false, b"x")
                .await,
            Some(ReturnCode::InvalidTopicId)
        );
    }
    assert_eq!(sub.line(Duration::from_millis(500)).await, None);
    s.ping().await;
    app.stop().await;
}

#[tokio::test]
async fn session_messages_without_a_connection_are_answered_with_disconnect() {
    // G-75: REGISTER, PUBLISH, SUBSCRIBE before CONNECT; stale acks are dropped.
    let (app, mqtt, gw) = start().await;
    let s = SnSensor::new(gw).await;
    s.send(&Message::Register {
        topic_id: 0,
        msg_id: 1,
        topic_name: Bytes::from_static(b"a/b"),
    })
    .await;
    assert_eq!(s.recv().await, Message::Disconnect { duration: None });
    s.send(&Message::PubAck {
        topic_id: 1,
        msg_id: 1,
        code: ReturnCode::Accepted,
    })
    .await;
    s.send(&Message::WillMsg {
        message: Bytes::from_static(b"late"),
    })
    .await;
    assert!(
        s.silent_for(300).await,
        "stale acknowledgements are dropped"
    );
    well_behaved_sensor_still_works(mqtt, gw, "after-wrong-state").await;
    app.stop().await;
}

#[tokio::test]
async fn session_messages_while_asleep_get_disconnect_and_keep_the_session() {
    // Digest §4.15: while asleep only PINGREQ, DISCONNECT and acks are valid.
    let (app, mqtt, gw) = start().await;
    let mut s = SnSensor::new(gw).await;
    s.connect("dozy", 60, true).await;
    s.subscribe_name("cmd/dozy", QoS::AtLeastOnce).await;
    s.sleep(60).await;
    s.send(&Message::Register {
        topic_id: 0,
        msg_id: 9,
        topic_name: Bytes::from_static(b"x/y"),
    })
    .await;
    assert_eq!(s.recv().await, Message::Disconnect { duration: None });
    mosquitto_pub(mqtt, &["-t", "cmd/dozy", "-m", "kept", "-q", "1"]).await;
    s.send(&Message::PingReq {
        client_id: Some(Bytes::from_static(b"dozy")),
    })
    .await;
    assert_eq!(&s.next_publish().await.data[..], b"kept");
    assert_eq!(s.recv().await, Message::PingResp);
    app.stop().await;
}

#[tokio::test]
async fn will_answers_outside_the_connect_flow_are_ignored() {
    // Digest §4.15: WILLTOPIC/WILLMSG from an active client are not answered.
    let (app, _mqtt, gw) = start().await;
    let mut s = SnSensor::new(gw).await;
    s.connect("no-will", 60, true).await;
    s.send(&Message::WillMsg {
        message: Bytes::from_static(b"?"),
    })
    .await;
    assert!(s.silent_for(300).await);
    s.ping().await;
    app.stop().await;
}

#[tokio::test]
async fn register_flood_is_capped_at_the_topic_limit_with_regack_congestion() {
    // max_topics_per_sensor = 20: later REGISTERs get REGACK(0, 0x01); earlier ids keep working.
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "flood/#", "-F", "%t %p"]).await;
    let mut s = SnSensor::new(gw).await;
    s.connect("flooder", 60, true).await;
    let mut accepted = Vec::new();
    let mut congested = 0;
    for i in 0..500u16 {
        s.send(&Message::Register {
            topic_id: 0,
            msg_id: i + 1,
            topic_name: Bytes::from(format!("flood/{i}")),
        })
        .await;
        match s.recv().await {
            Message::RegAck {
                topic_id,
                msg_id,
                code,
            } => {
                assert_eq!(msg_id, i + 1);
                match code {
                    ReturnCode::Accepted => accepted.push(topic_id),
                    ReturnCode::Congestion => {
                        assert_eq!(topic_id, 0);
                        congested += 1
                    }
                    other => panic!("unexpected REGACK code {other:?}"),
                }
            }
            other => panic!("expected REGACK, got {other:?}"),
        }
    }
    assert_eq!(accepted.len(), 20);
    assert_eq!(congested, 480);
    s.publish(
        SnQos::Level(QoS::AtLeastOnce),
        TopicRef::Normal(accepted[0]),
        false,
        b"still",
    )
    .await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("flood/0 still"));
    well_behaved_sensor_still_works(mqtt, gw, "after-flood").await;
    app.stop().await;
}

#[tokio::test]
async fn oversize_datagram_is_dropped_without_reply() {
    // gateway.max_message_size = 512 here; a 602-octet PUBLISH is not forwarded.
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "pre/hundred", "-F", "%p"]).await;
    let mut s = SnSensor::new(gw).await;
    s.connect("big", 60, true).await;
    let big = encoded(&Message::Publish {
        dup: false,
        qos: SnQos::Level(QoS::AtLeastOnce),
        retain: false,
        topic: TopicRef::Predefined(100),
        msg_id: 1,
        data: Bytes::from(vec![b'x'; 593]),
    });
    assert!(big.len() > 512);
    s.send_raw(&big).await;
    assert!(s.silent_for(300).await, "no PUBACK for a dropped datagram");
    assert_eq!(sub.line(Duration::from_millis(300)).await, None);
    // A maximum-size UDP payload too.
    s.send_raw(&vec![0x01; 65_507]).await;
    s.ping().await;
    well_behaved_sensor_still_works(mqtt, gw, "after-oversize").await;
    app.stop().await;
}

#[tokio::test]
async fn truncated_and_length_mismatched_datagrams_are_dropped_without_reply() {
    // G-04, G-06.
    let (app, mqtt, gw) = start().await;
    let mut s = SnSensor::new(gw).await;
    s.connect("short", 60, true).await;
    s.send_raw(&[0x05, 0x0C, 0x00, 0x00, 0x64]).await; // 5-octet PUBLISH
    s.send_raw(&[0x09, 0x0C, 0x20, 0x00]).await; // Length says 9, 4 received
    s.send_raw(&[0x01, 0x00]).await; // long form cut short
    s.send_raw(&[]).await;
    assert!(s.silent_for(300).await);
    s.ping().await;
    well_behaved_sensor_still_works(mqtt, gw, "after-truncated").await;
    app.stop().await;
}

#[tokio::test]
async fn spoofed_pingreq_for_a_sleeping_session_rebinds_it_and_the_owner_takes_it_back() {
    // G-85: MQTT-SN 1.2 has no authentication, so a PINGREQ with the ClientId
    // of an asleep session from a new address moves the session there. The
    // owner's next PINGREQ from its own address moves it back, and nothing
    // is lost beyond what the spoofer acknowledged.
    let (app, mqtt, gw) = start().await;
    let mut owner = SnSensor::new(gw).await;
    owner.connect("victim", 60, true).await;
    owner.subscribe_name("cmd/victim", QoS::AtLeastOnce).await;
    owner.sleep(60).await;
    let spoofer = SnSensor::new(gw).await;
    spoofer
        .send(&Message::PingReq {
            client_id: Some(Bytes::from_static(b"victim")),
        })
        .await;
    assert_eq!(spoofer.recv().await, Message::PingResp);
    // A spoofed PINGREQ for a client that is not asleep is ignored.
    let mut active = SnSensor::new(gw).await;
    active.connect("awake-one", 60, true).await;
    let spoofer2 = SnSensor::new(gw).await;
    spoofer2
        .send(&Message::PingReq {
            client_id: Some(Bytes::from_static(b"awake-one")),
        })
        .await;
    assert!(spoofer2.silent_for(300).await);
    active.ping().await;
    // The owner wakes from its own address and gets what arrived meanwhile.
    mosquitto_pub(mqtt, &["-t", "cmd/victim", "-m", "for-owner", "-q", "1"]).await;
    owner
        .send(&Message::PingReq {
            client_id: Some(Bytes::from_static(b"victim")),
        })
        .await;
    assert_eq!(&owner.next_publish().await.data[..], b"for-owner");
    assert_eq!(owner.recv().await, Message::PingResp);
    assert!(spoofer.silent_for(200).await, "nothing goes to the spoofer");
    app.stop().await;
}
