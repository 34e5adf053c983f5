//! Transparent and aggregating modes reaching the upstream broker over MQTT
//! over WebSocket (`ws://`), the same transport bridges use.

mod bridge_support;
mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;
mod upstream_support;

use std::time::Duration;

use bridge_support::{Mosquitto, free_port};
use common::Sub;
use sngate::mqttsn::codec::{SnQos, TopicRef};
use sngate::qos::QoS;
use upstream_support::{config, sensor};

const WAIT: Duration = Duration::from_secs(8);

async fn sensor_publish_reaches_the_upstream_over_websocket(mode: &str) {
    let ws = free_port();
    let up = Mosquitto::start(&format!("listener {ws} 127.0.0.1\nprotocol websockets\n")).await;
    let text = config(mode, up.addr, "", "").replace(
        &format!("addresses = [\"{}\"]", up.addr),
        &format!("addresses = [\"ws://127.0.0.1:{ws}/mqtt\"]"),
    );
    assert!(text.contains("ws://"), "the address was replaced");
    let app = common::start_config(&text).await;
    let mut s = sensor(app.gateway_udp[0], "ws-1", 30).await;
    let mut sub = Sub::start(up.addr, &["-t", "site-a/#", "-F", "%t %p"]).await;
    let id = s.register("site-a/ws").await;
    s.publish(
        SnQos::Level(QoS::AtLeastOnce),
        TopicRef::Normal(id),
        false,
        b"over-ws",
    )
    .await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("site-a/ws over-ws"));
    app.stop().await;
}

#[tokio::test]
async fn transparent_mode_reaches_the_upstream_over_websocket() {
    sensor_publish_reaches_the_upstream_over_websocket("transparent").await;
}

#[tokio::test]
async fn aggregating_mode_reaches_the_upstream_over_websocket() {
    sensor_publish_reaches_the_upstream_over_websocket("aggregating").await;
}
