//! Aggregating mode's own session handling against a real Mosquitto: sngate
//! queues for persistent sensors that are away, supervises each sensor's
//! keep-alive and sleep duration, and publishes the will of a lost sensor.

mod bridge_support;
mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;
mod upstream_support;

use std::time::Duration;

use bridge_support::Mosquitto;
use common::{Sub, mosquitto_pub};
use sn_sensor::SnSensor;
use sngate::mqttsn::codec::ReturnCode;
use sngate::qos::QoS;
use upstream_support::{sensor, start};

async fn reconnect(gw: std::net::SocketAddr, name: &str, clean: bool) -> SnSensor {
    let mut s = SnSensor::new(gw).await;
    assert_eq!(s.connect(name, 30, clean).await, ReturnCode::Accepted);
    s
}

/// A sensor subscribed to `site-a/away/<name>` that has disconnected, and
/// three QoS 1 messages published upstream while it is away.
async fn away_with_three_messages(up: &Mosquitto, gw: std::net::SocketAddr, name: &str) {
    // The first sensor also waits for the pool to come up.
    sensor(gw, "probe", 30).await.disconnect().await;
    let s = reconnect(gw, name, false).await;
    let mut s = s;
    let topic = format!("site-a/away/{name}");
    s.subscribe_name(&topic, QoS::AtLeastOnce).await;
    s.disconnect().await;
    for body in ["m1", "m2", "m3"] {
        mosquitto_pub(up.addr, &["-t", &topic, "-m", body, "-q", "1"]).await;
    }
    // They reach the pool before the sensor returns.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_persistent_sensor_gets_what_arrived_while_it_was_disconnected() {
    let up = Mosquitto::start("").await;
    let app = start("aggregating", up.addr, "", "").await;
    let gw = app.gateway_udp[0];
    away_with_three_messages(&up, gw, "kept").await;
    let mut s = reconnect(gw, "kept", false).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(String::from_utf8(s.next_publish().await.data.to_vec()).unwrap());
    }
    assert_eq!(got, ["m1", "m2", "m3"]);
    // Still subscribed: a new message arrives too.
    mosquitto_pub(up.addr, &["-t", "site-a/away/kept", "-m", "m4", "-q", "1"]).await;
    assert_eq!(&s.next_publish().await.data[..], b"m4");
    app.stop().await;
}

#[tokio::test]
async fn a_clean_reconnect_ends_the_session_and_its_queue() {
    let up = Mosquitto::start("").await;
    let app = start("aggregating", up.addr, "", "").await;
    let gw = app.gateway_udp[0];
    away_with_three_messages(&up, gw, "fresh").await;
    let mut s = reconnect(gw, "fresh", true).await;
    assert!(
        s.next_publish_within(Duration::from_secs(1))
            .await
            .is_none(),
        "clean session 1 discards what was queued"
    );
    mosquitto_pub(up.addr, &["-t", "site-a/away/fresh", "-m", "m4", "-q", "1"]).await;
    assert!(
        s.next_publish_within(Duration::from_secs(1))
            .await
            .is_none(),
        "and the subscription"
    );
    app.stop().await;
}

async fn sensor_with_will(gw: std::net::SocketAddr, name: &str, keep_alive: u16) -> SnSensor {
    sensor(gw, "probe", 30).await.disconnect().await;
    let mut s = SnSensor::new(gw).await;
    let topic = format!("site-a/will/{name}");
    let code = s
        .connect_with_will(name, keep_alive, &topic, QoS::AtLeastOnce, b"gone")
        .await;
    assert_eq!(code, ReturnCode::Accepted);
    s
}

#[tokio::test]
async fn a_sensor_that_pings_within_its_keep_alive_is_not_declared_lost() {
    let up = Mosquitto::start("").await;
    let app = start("aggregating", up.addr, "", "keepalive = 60").await;
    let gw = app.gateway_udp[0];
    let mut sub = Sub::start(up.addr, &["-t", "site-a/will/#", "-q", "1", "-F", "%t %p"]).await;
    let s = sensor_with_will(gw, "pinger", 2).await;
    // Six seconds = twice 1.5 × its 2 s keep-alive, pinging every second.
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        s.ping().await;
    }
    assert_eq!(sub.line(Duration::from_millis(200)).await, None);
    // Then silent: its own keep-alive, not the upstream's 60 s, runs out.
    assert_eq!(
        sub.line(Duration::from_secs(6)).await.as_deref(),
        Some("site-a/will/pinger gone")
    );
    app.stop().await;
}

#[tokio::test]
async fn a_sensor_that_oversleeps_has_its_will_published_by_sngate() {
    let up = Mosquitto::start("").await;
    let app = start("aggregating", up.addr, "", "").await;
    let gw = app.gateway_udp[0];
    let mut sub = Sub::start(up.addr, &["-t", "site-a/will/#", "-q", "1", "-F", "%t %p"]).await;
    let s = sensor_with_will(gw, "sleeper", 30).await;
    s.sleep(2).await;
    // Asleep within its sleep duration: not lost.
    assert_eq!(sub.line(Duration::from_millis(1500)).await, None);
    // Never wakes: lost once 1.5 × the sleep duration has passed.
    assert_eq!(
        sub.line(Duration::from_secs(6)).await.as_deref(),
        Some("site-a/will/sleeper gone")
    );
    app.stop().await;
}
