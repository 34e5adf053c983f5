//! End to end through the whole program: sngate started from a config, real
//! UDP sensors on one side and Mosquitto's command-line clients on the MQTT
//! side of the built-in broker.

mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;

use std::time::Duration;

use bytes::Bytes;
use common::{Sub, mosquitto_pub};
use sn_sensor::SnSensor;
use sngate::app::Sngate;
use sngate::mqttsn::codec::{Message, ReturnCode, SnQos, TopicFilterRef, TopicRef};
use sngate::qos::QoS;

const WAIT: Duration = Duration::from_secs(5);

/// Predefined ids 100 → `pre/hundred` for everyone and 101 → `pre/mine` for `sensor-p` only.
const PREDEFINED: &str = r#"
[[gateway.predefined]]
topic_id = 100
topic = "pre/hundred"

[[gateway.predefined]]
topic_id = 101
topic = "pre/mine"
client_id = "sensor-p"
"#;

async fn start() -> (Sngate, std::net::SocketAddr, std::net::SocketAddr) {
    let app = common::start_with(PREDEFINED).await;
    let mqtt = app.mqtt_addr().expect("an MQTT listener");
    let gw = app.gateway_udp[0];
    (app, mqtt, gw)
}

/// A connected sensor.
async fn sensor(gw: std::net::SocketAddr, id: &str) -> SnSensor {
    let mut s = SnSensor::new(gw).await;
    assert_eq!(s.connect(id, 60, true).await, ReturnCode::Accepted);
    s
}

#[tokio::test]
async fn sensor_publishes_at_qos_0_1_2_reach_mosquitto_sub() {
    // G-32, G-33, G-34 with a real MQTT subscriber.
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "sensors/#", "-q", "2", "-F", "%t %p %q"]).await;
    let mut s = sensor(gw, "sensor-1").await;
    let t = s.register("sensors/temp").await;
    assert_eq!(
        s.publish(
            SnQos::Level(QoS::AtMostOnce),
            TopicRef::Normal(t),
            false,
            b"q0"
        )
        .await,
        None
    );
    assert_eq!(
        s.publish(
            SnQos::Level(QoS::AtLeastOnce),
            TopicRef::Normal(t),
            false,
            b"q1"
        )
        .await,
        Some(ReturnCode::Accepted)
    );
    assert_eq!(
        s.publish(
            SnQos::Level(QoS::ExactlyOnce),
            TopicRef::Normal(t),
            false,
            b"q2"
        )
        .await,
        None
    );
    assert_eq!(
        sub.lines(3, WAIT).await,
        vec![
            "sensors/temp q0 0",
            "sensors/temp q1 1",
            "sensors/temp q2 2"
        ]
    );
    assert_eq!(
        sub.line(Duration::from_millis(300)).await,
        None,
        "QoS 2 once"
    );
    app.stop().await;
}

#[tokio::test]
async fn qos_minus_one_publishes_with_predefined_id_and_short_topic_reach_mosquitto_sub() {
    // G-47, G-48: no CONNECT at all, no reply.
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "pre/hundred", "-t", "ab", "-F", "%t %p %q"]).await;
    let mut s = SnSensor::new(gw).await;
    s.publish(SnQos::MinusOne, TopicRef::Predefined(100), false, b"m1")
        .await;
    s.publish(SnQos::MinusOne, TopicRef::Short(*b"ab"), false, b"m2")
        .await;
    assert_eq!(
        sub.lines(2, WAIT).await,
        vec!["pre/hundred m1 0", "ab m2 0"]
    );
    assert!(s.silent_for(200).await, "QoS -1 gets no reply");
    app.stop().await;
}

#[tokio::test]
async fn connected_sensor_publishes_to_predefined_and_short_topics_without_register() {
    // G-41, G-42 end to end, including a client-specific predefined id.
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "pre/#", "-t", "xy", "-q", "1", "-F", "%t %p"]).await;
    let mut s = sensor(gw, "sensor-p").await;
    let ack = SnQos::Level(QoS::AtLeastOnce);
    assert_eq!(
        s.publish(ack, TopicRef::Predefined(100), false, b"a").await,
        Some(ReturnCode::Accepted)
    );
    assert_eq!(
        s.publish(ack, TopicRef::Predefined(101), false, b"b").await,
        Some(ReturnCode::Accepted)
    );
    assert_eq!(
        s.publish(ack, TopicRef::Short(*b"xy"), false, b"c").await,
        Some(ReturnCode::Accepted)
    );
    assert_eq!(
        sub.lines(3, WAIT).await,
        vec!["pre/hundred a", "pre/mine b", "xy c"]
    );
    app.stop().await;
}

#[tokio::test]
async fn mosquitto_pub_reaches_a_sensor_subscribed_to_a_plain_name() {
    // G-51, G-52, G-65: the PUBLISH carries the SUBACK's id, QoS = min(pub, granted).
    let (app, mqtt, gw) = start().await;
    let mut s = sensor(gw, "sensor-2").await;
    let (granted, id, code) = s.subscribe_name("cmd/sensor-2", QoS::AtLeastOnce).await;
    assert_eq!((granted, code), (QoS::AtLeastOnce, ReturnCode::Accepted));
    assert_ne!(id, 0);
    mosquitto_pub(mqtt, &["-t", "cmd/sensor-2", "-m", "on", "-q", "2"]).await;
    let r = s.next_publish().await;
    assert_eq!(r.topic, TopicRef::Normal(id));
    assert_eq!(r.qos, SnQos::Level(QoS::AtLeastOnce));
    assert_eq!(&r.data[..], b"on");
    app.stop().await;
}

#[tokio::test]
async fn mosquitto_pub_reaches_a_wildcard_subscribed_sensor_after_gateway_register() {
    // G-53, G-54: REGISTER first, PUBLISH after REGACK.
    let (app, mqtt, gw) = start().await;
    let mut s = sensor(gw, "sensor-3").await;
    let (_, id, code) = s.subscribe_name("cmd/+/set", QoS::AtMostOnce).await;
    assert_eq!((id, code), (0, ReturnCode::Accepted));
    mosquitto_pub(mqtt, &["-t", "cmd/lamp/set", "-m", "1"]).await;
    let Message::Register {
        topic_id,
        msg_id,
        topic_name,
    } = s.recv().await
    else {
        panic!("REGISTER expected before the PUBLISH")
    };
    assert_eq!(&topic_name[..], b"cmd/lamp/set");
    assert!(s.silent_for(200).await, "PUBLISH waits for the REGACK");
    s.send(&Message::RegAck {
        topic_id,
        msg_id,
        code: ReturnCode::Accepted,
    })
    .await;
    let r = s.next_publish().await;
    assert_eq!(r.topic, TopicRef::Normal(topic_id));
    assert_eq!(&r.data[..], b"1");
    app.stop().await;
}

#[tokio::test]
async fn mosquitto_pub_reaches_sensors_subscribed_by_predefined_id_and_short_name() {
    // G-56, G-58.
    let (app, mqtt, gw) = start().await;
    let mut s = sensor(gw, "sensor-4").await;
    let (_, id, code) = s
        .subscribe(TopicFilterRef::Predefined(100), QoS::AtMostOnce)
        .await;
    assert_eq!((id, code), (100, ReturnCode::Accepted));
    let (_, _, code) = s
        .subscribe(TopicFilterRef::Short(*b"zz"), QoS::AtMostOnce)
        .await;
    assert_eq!(code, ReturnCode::Accepted);
    mosquitto_pub(mqtt, &["-t", "pre/hundred", "-m", "p"]).await;
    let r = s.next_publish().await;
    assert_eq!(
        (r.topic, &r.data[..]),
        (TopicRef::Predefined(100), &b"p"[..])
    );
    mosquitto_pub(mqtt, &["-t", "zz", "-m", "s"]).await;
    let r = s.next_publish().await;
    assert_eq!((r.topic, &r.data[..]), (TopicRef::Short(*b"zz"), &b"s"[..]));
    app.stop().await;
}

#[tokio::test]
async fn asleep_sensor_gets_buffered_messages_on_pingreq_then_pingresp() {
    // G-76, G-77, G-80, G-81 with a real MQTT publisher.
    let (app, mqtt, gw) = start().await;
    let mut s = sensor(gw, "sleepy").await;
    let (_, id, _) = s.subscribe_name("cmd/sleepy", QoS::AtLeastOnce).await;
    s.sleep(300).await;
    for m in ["one", "two"] {
        mosquitto_pub(mqtt, &["-t", "cmd/sleepy", "-m", m, "-q", "1"]).await;
    }
    assert!(s.silent_for(300).await, "nothing is sent while asleep");
    s.send(&Message::PingReq {
        client_id: Some(Bytes::from_static(b"sleepy")),
    })
    .await;
    let mut got = Vec::new();
    for _ in 0..2 {
        let Message::Publish {
            topic,
            msg_id,
            data,
            ..
        } = s.recv().await
        else {
            panic!("buffered PUBLISH expected")
        };
        assert_eq!(topic, TopicRef::Normal(id));
        got.push(data);
        s.send(&Message::PubAck {
            topic_id: id,
            msg_id,
            code: ReturnCode::Accepted,
        })
        .await;
    }
    assert_eq!(got, vec![&b"one"[..], &b"two"[..]]);
    assert_eq!(s.recv().await, Message::PingResp);
    app.stop().await;
}

#[tokio::test]
async fn silent_sensors_will_reaches_mosquitto_sub_after_keep_alive_expiry() {
    // G-15, G-71: keep-alive 1 s ⇒ lost after 1.5 s; the will is published.
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "wills/#", "-F", "%t %p"]).await;
    let mut s = SnSensor::new(gw).await;
    assert_eq!(
        s.connect_with_will("dying", 1, "wills/dying", QoS::AtLeastOnce, b"gone")
            .await,
        ReturnCode::Accepted
    );
    assert_eq!(
        sub.line(Duration::from_secs(4)).await.as_deref(),
        Some("wills/dying gone")
    );
    app.stop().await;
}

#[tokio::test]
async fn graceful_disconnect_publishes_no_will() {
    // G-73 with a real subscriber.
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "wills/#", "-F", "%t %p"]).await;
    let mut s = SnSensor::new(gw).await;
    s.connect_with_will("polite", 1, "wills/polite", QoS::AtMostOnce, b"gone")
        .await;
    s.disconnect().await;
    assert_eq!(sub.line(Duration::from_secs(3)).await, None);
    app.stop().await;
}

#[tokio::test]
async fn connected_sensors_count_in_sys_clients_connected() {
    let text = format!(
        "{}\n",
        common::BASE_CONFIG.replace("sys_interval = 0", "sys_interval = 1")
    );
    let app = common::start_config(&text).await;
    let mqtt = app.mqtt_addr().unwrap();
    let gw = app.gateway_udp[0];
    let _a = sensor(gw, "sys-a").await;
    let _b = sensor(gw, "sys-b").await;
    let mut sub = Sub::start(mqtt, &["-t", "$SYS/broker/clients/connected", "-F", "%p"]).await;
    // Two sensors plus mosquitto_sub itself; the value is republished every second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let mut last = None;
    while tokio::time::Instant::now() < deadline {
        last = sub.line(Duration::from_secs(2)).await;
        if last.as_deref() == Some("3") {
            break;
        }
    }
    assert_eq!(last.as_deref(), Some("3"));
    app.stop().await;
}

#[tokio::test]
async fn retained_message_reaches_a_sensor_when_it_subscribes() {
    // G-43 in reverse: a retained MQTT message is delivered on SUBSCRIBE,
    // and a sensor's retain flag reaches MQTT.
    let (app, mqtt, gw) = start().await;
    mosquitto_pub(mqtt, &["-t", "conf/rate", "-m", "10", "-r", "-q", "1"]).await;
    let mut s = sensor(gw, "sensor-r").await;
    let (_, id, _) = s.subscribe_name("conf/rate", QoS::AtLeastOnce).await;
    let r = s.next_publish().await;
    assert_eq!(r.topic, TopicRef::Normal(id));
    assert!(r.retain, "retained flag set on the first delivery");
    assert_eq!(&r.data[..], b"10");

    let t = s.register("state/sensor-r").await;
    s.publish(
        SnQos::Level(QoS::AtLeastOnce),
        TopicRef::Normal(t),
        true,
        b"up",
    )
    .await;
    let mut sub = Sub::start(mqtt, &["-t", "state/#", "-F", "%t %p %r", "-C", "1"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("state/sensor-r up 1"));
    app.stop().await;
}

#[tokio::test]
async fn gateway_port_answers_searchgw_with_gwinfo() {
    // G-11 through the app's UDP socket.
    let (app, _mqtt, gw) = start().await;
    let s = SnSensor::new(gw).await;
    s.send(&Message::SearchGw { radius: 0 }).await;
    assert_eq!(
        s.recv().await,
        Message::GwInfo {
            gw_id: 1,
            gw_add: Bytes::new()
        }
    );
    app.stop().await;
}

#[tokio::test]
async fn sensor_receives_nothing_after_unsubscribe() {
    // G-62, G-63 through the real core: UNSUBACK, then no further PUBLISH.
    let (app, mqtt, gw) = start().await;
    let mut s = sensor(gw, "sensor-u").await;
    s.subscribe_name("cmd/u", QoS::AtMostOnce).await;
    mosquitto_pub(mqtt, &["-t", "cmd/u", "-m", "before"]).await;
    assert_eq!(&s.next_publish().await.data[..], b"before");
    let msg_id = s.msg_id();
    s.send(&Message::Unsubscribe {
        msg_id,
        topic: TopicFilterRef::Name(Bytes::from_static(b"cmd/u")),
    })
    .await;
    assert_eq!(s.recv().await, Message::UnsubAck { msg_id });
    mosquitto_pub(mqtt, &["-t", "cmd/u", "-m", "after"]).await;
    assert!(s.silent_for(500).await, "no PUBLISH after UNSUBACK");
    app.stop().await;
}
