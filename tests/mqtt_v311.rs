//! MQTT 3.1.1 broker behaviour, driven by Mosquitto's clients and paho-mqtt.

mod common;

use std::time::Duration;

use common::{Sub, mosquitto_pub, start};

const WAIT: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_publish_reaches_wildcard_subscriber() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "sensors/#", "-v"]).await;
    mosquitto_pub(addr, &["-t", "sensors/kitchen/temp", "-m", "21.5"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("sensors/kitchen/temp 21.5"));
    gw.stop().await;
}
