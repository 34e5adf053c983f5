//! Transparent and aggregating modes against a real Mosquitto as the
//! upstream broker: publishes both ways, sleeping sensors, wills, predefined
//! and short topic ids, QoS −1.

mod bridge_support;
mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;
mod upstream_support;

use std::time::Duration;

use bridge_support::Mosquitto;
use bytes::Bytes;
use common::{Sub, mosquitto_pub};
use sngate::mqttsn::codec::{Message, SnQos, TopicRef};
use sngate::qos::QoS;
use upstream_support::{sensor, start};

const WAIT: Duration = Duration::from_secs(8);

async fn sensor_publishes_at_qos_0_1_2_reach_the_upstream(mode: &str) {
    let up = Mosquitto::start("").await;
    let app = start(mode, up.addr, "", "").await;
    let mut s = sensor(app.gateway_udp[0], "pub-1", 30).await;
    let mut sub = Sub::start(up.addr, &["-t", "site-a/#", "-q", "2", "-F", "%t %p %q"]).await;
    let id = s.register("site-a/pub").await;
    for (qos, body) in [
        (QoS::AtMostOnce, "q0"),
        (QoS::AtLeastOnce, "q1"),
        (QoS::ExactlyOnce, "q2"),
    ] {
        s.publish(
            SnQos::Level(qos),
            TopicRef::Normal(id),
            false,
            body.as_bytes(),
        )
        .await;
    }
    assert_eq!(
        sub.lines(3, WAIT).await,
        ["site-a/pub q0 0", "site-a/pub q1 1", "site-a/pub q2 2"]
    );
    app.stop().await;
}

#[tokio::test]
async fn transparent_sensor_publishes_at_qos_0_1_2_reach_the_upstream() {
    sensor_publishes_at_qos_0_1_2_reach_the_upstream("transparent").await;
}

#[tokio::test]
async fn aggregating_sensor_publishes_at_qos_0_1_2_reach_the_upstream() {
    sensor_publishes_at_qos_0_1_2_reach_the_upstream("aggregating").await;
}

async fn predefined_short_and_qos_minus_one_publishes_reach_the_upstream(mode: &str) {
    let up = Mosquitto::start("").await;
    let app = start(mode, up.addr, "", "").await;
    // The connected sensor also proves the upstream connection is up.
    let mut s = sensor(app.gateway_udp[0], "pub-2", 30).await;
    let mut sub = Sub::start(
        up.addr,
        &["-t", "site-a/#", "-t", "ab", "-q", "1", "-F", "%t %p"],
    )
    .await;
    let ack = SnQos::Level(QoS::AtLeastOnce);
    s.publish(ack, TopicRef::Predefined(7), false, b"pre").await;
    s.publish(ack, TopicRef::Short(*b"ab"), false, b"short")
        .await;
    let anonymous = sn_sensor::SnSensor::new(app.gateway_udp[0]).await;
    anonymous
        .send(&Message::Publish {
            dup: false,
            qos: SnQos::MinusOne,
            retain: false,
            topic: TopicRef::Predefined(7),
            msg_id: 0,
            data: Bytes::from_static(b"minus-one"),
        })
        .await;
    // QoS −1 travels on the gateway's shared connection, the others on the
    // sensor's: no order between them.
    let mut got = sub.lines(3, WAIT).await;
    got.sort();
    assert_eq!(
        got,
        [
            "ab short",
            "site-a/predefined minus-one",
            "site-a/predefined pre"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn transparent_predefined_short_and_qos_minus_one_publishes_reach_the_upstream() {
    predefined_short_and_qos_minus_one_publishes_reach_the_upstream("transparent").await;
}

#[tokio::test]
async fn aggregating_predefined_short_and_qos_minus_one_publishes_reach_the_upstream() {
    predefined_short_and_qos_minus_one_publishes_reach_the_upstream("aggregating").await;
}

async fn upstream_publishes_reach_an_awake_and_a_sleeping_sensor(mode: &str) {
    let up = Mosquitto::start("").await;
    let app = start(mode, up.addr, "", "").await;
    let gw = app.gateway_udp[0];
    let mut awake = sensor(gw, "awake", 30).await;
    let mut sleepy = sensor(gw, "sleepy", 30).await;
    awake.subscribe_name("site-a/cmd/#", QoS::ExactlyOnce).await;
    let (_, sleepy_id, _) = sleepy
        .subscribe_name("site-a/cmd/sleepy", QoS::AtLeastOnce)
        .await;
    sleepy.sleep(120).await;
    mosquitto_pub(
        up.addr,
        &["-t", "site-a/cmd/sleepy", "-m", "wake-1", "-q", "1"],
    )
    .await;
    mosquitto_pub(up.addr, &["-t", "site-a/cmd/other", "-m", "two", "-q", "2"]).await;
    let got = awake.next_publish().await;
    assert_eq!(
        (got.name.as_deref(), &got.data[..]),
        (Some("site-a/cmd/sleepy"), &b"wake-1"[..])
    );
    let got = awake.next_publish().await;
    assert_eq!(
        (got.name.as_deref(), &got.data[..], got.qos),
        (
            Some("site-a/cmd/other"),
            &b"two"[..],
            SnQos::Level(QoS::ExactlyOnce)
        )
    );
    assert!(
        sleepy.silent_for(500).await,
        "nothing reaches a sleeping sensor"
    );
    sleepy
        .send(&Message::PingReq {
            client_id: Some(Bytes::from_static(b"sleepy")),
        })
        .await;
    let got = sleepy.next_publish().await;
    assert_eq!(got.topic, TopicRef::Normal(sleepy_id));
    assert_eq!(&got.data[..], b"wake-1");
    assert_eq!(sleepy.recv().await, Message::PingResp);
    app.stop().await;
}

#[tokio::test]
async fn transparent_upstream_publishes_reach_an_awake_and_a_sleeping_sensor() {
    upstream_publishes_reach_an_awake_and_a_sleeping_sensor("transparent").await;
}

#[tokio::test]
async fn aggregating_upstream_publishes_reach_an_awake_and_a_sleeping_sensor() {
    upstream_publishes_reach_an_awake_and_a_sleeping_sensor("aggregating").await;
}

async fn a_silent_sensor_has_its_will_published_upstream(mode: &str) {
    let up = Mosquitto::start("").await;
    let app = start(mode, up.addr, "", "").await;
    let gw = app.gateway_udp[0];
    // Wait for the upstream through a first sensor, then connect with a will.
    sensor(gw, "probe", 30).await.disconnect().await;
    let mut sub = Sub::start(up.addr, &["-t", "site-a/will/#", "-q", "1", "-F", "%t %p"]).await;
    let mut s = sn_sensor::SnSensor::new(gw).await;
    let code = s
        .connect_with_will("mortal", 2, "site-a/will/mortal", QoS::AtLeastOnce, b"gone")
        .await;
    assert_eq!(code, sngate::mqttsn::codec::ReturnCode::Accepted);
    // No PINGREQ: the gateway declares it lost after 1.5 × keep-alive.
    assert_eq!(
        sub.line(Duration::from_secs(10)).await.as_deref(),
        Some("site-a/will/mortal gone")
    );
    app.stop().await;
}

#[tokio::test]
async fn transparent_a_silent_sensor_has_its_will_published_by_the_upstream() {
    a_silent_sensor_has_its_will_published_upstream("transparent").await;
}

#[tokio::test]
async fn aggregating_a_silent_sensor_has_its_will_published_by_sngate() {
    a_silent_sensor_has_its_will_published_upstream("aggregating").await;
}

#[tokio::test]
async fn transparent_mode_holds_one_upstream_connection_per_sensor() {
    let up = Mosquitto::start("sys_interval 1").await;
    let app = start("transparent", up.addr, "", "").await;
    let gw = app.gateway_udp[0];
    let _a = sensor(gw, "boiler-7", 30).await;
    let _b = sensor(gw, "boiler-8", 30).await;
    // The shared connection plus one per sensor.
    upstream_support::wait_clients(up.addr, 3, Duration::from_secs(10)).await;
    app.stop().await;
}
