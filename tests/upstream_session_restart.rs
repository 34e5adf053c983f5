//! Aggregating mode keeps a persistent sensor's session across a crash of
//! sngate: with `[persistence] enabled`, a sensor that subscribed with clean
//! session 0 and went away gets, after sngate was killed with SIGKILL and
//! started again, every QoS 1 message the upstream published for it —
//! before the kill (queued by sngate, on disk), while sngate was down (kept
//! by the upstream in the pool's persistent session) and after — in order.
//! A clean-session sensor's subscriptions are not brought back, nor is a
//! session that expired while sngate was down.

mod bridge_support;
mod common;
mod persistence_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bridge_support::Mosquitto;
use common::mosquitto_pub_stdin;
use persistence_support::{Gate, Sensor, write_config};

const KEPT: &str = "site-a/kept";
const PASSING: &str = "site-a/passing";

fn config(dir: &Path, upstream: SocketAddr, version: u8, gateway_keys: &str) -> String {
    format!(
        r#"
[log]
level = "info"

[broker]
sys_interval = 0

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0
retry_interval = 1
mode = "aggregating"
{gateway_keys}

[gateway.upstream]
addresses = ["{upstream}"]
client_id_prefix = "site-a/"
protocol_version = {version}
reconnect_min = 1
reconnect_max = 2

[[gateway.udp]]
bind = "127.0.0.1:0"

[persistence]
enabled = true
path = "{}"
"#,
        dir.display()
    )
}

/// A sensor CONNECTed as `id`, retrying while the gateway answers
/// "congestion" because its pool is still coming up.
fn connect(gw: SocketAddr, id: &str, clean: bool) -> Sensor {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = Sensor::new(gw);
        let mut d = vec![
            (6 + id.len()) as u8,
            0x04,
            if clean { 0x04 } else { 0 },
            0x01,
        ];
        d.extend_from_slice(&60u16.to_be_bytes());
        d.extend_from_slice(id.as_bytes());
        s.send(&d);
        let ack = s.expect(0x05, Duration::from_secs(5));
        match ack[2] {
            0 => return s,
            1 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            code => panic!("CONNACK {code}"),
        }
    }
}

/// SUBSCRIBE to a topic name at `qos`, retrying while the gateway answers
/// "congestion" (MQTT-SN 1.2 §6.9: the client tries again later) because a
/// pool connection is still coming up.
fn subscribe(s: &Sensor, name: &str, qos: u8, msg_id: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = vec![(5 + name.len()) as u8, 0x12, qos << 5];
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        s.send(&d);
        let r = s.expect(0x13, Duration::from_secs(5));
        match r[7] {
            0 => return,
            1 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            code => panic!("SUBACK {code}"),
        }
    }
}

/// DISCONNECT without a sleep duration: the sensor goes away.
fn disconnect(s: &Sensor) {
    s.send(&[2, 0x18]);
    s.expect(0x18, Duration::from_secs(5));
}

/// Publishes `topic` = "n" for each n in `range`, QoS 1, in order, on one
/// upstream connection.
async fn publish(up: SocketAddr, topic: &str, range: std::ops::Range<usize>) {
    let lines: String = range.map(|n| format!("{n}\n")).collect();
    mosquitto_pub_stdin(up, &["-t", topic, "-q", "1", "-l"], lines.as_bytes()).await;
}

/// The payloads a sensor with one subscription got (its topic id came
/// with the SUBACK, so no REGISTER names it).
fn payloads(got: &[(String, Vec<u8>)]) -> Vec<String> {
    got.iter()
        .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
        .collect()
}

async fn a_persistent_sensor_gets_every_message_across_a_crash(version: u8) {
    let up = Mosquitto::start("").await;
    let state = tempfile::tempdir().unwrap();
    let conf = write_config(state.path(), &config(state.path(), up.addr, version, ""));
    let gate = Gate::start(&conf, &[]);
    let kept = connect(gate.udp, "kept", false);
    subscribe(&kept, KEPT, 1, 1);
    disconnect(&kept);
    // A clean sensor, connected and subscribed when sngate is killed.
    let passing = connect(gate.udp, "passing", true);
    subscribe(&passing, PASSING, 1, 1);

    publish(up.addr, KEPT, 0..5).await;
    publish(up.addr, PASSING, 0..5).await;
    let before = passing.drain(Duration::from_millis(1500));
    assert_eq!(payloads(&before), ["0", "1", "2", "3", "4"]);
    gate.kill();

    publish(up.addr, KEPT, 5..10).await;
    publish(up.addr, PASSING, 5..10).await;
    let gate = Gate::start(&conf, &[]);
    assert!(
        gate.logged("1 persistent MQTT-SN session(s) with 5 message(s) restored"),
        "the persistent sensor's session, and only that one, is restored with what was queued"
    );
    // The returning clean sensor asks for its session: there is none.
    let passing = connect(gate.udp, "passing", false);
    publish(up.addr, KEPT, 10..15).await;
    publish(up.addr, PASSING, 10..15).await;

    let kept = connect(gate.udp, "kept", false);
    let got = kept.drain(Duration::from_secs(3));
    let want: Vec<String> = (0..15).map(|n| n.to_string()).collect();
    assert_eq!(payloads(&got), want, "every message, in order");
    let after = passing.drain(Duration::from_millis(500));
    assert_eq!(
        payloads(&after),
        Vec::<String>::new(),
        "a clean sensor's subscription is not restored"
    );
    gate.stop();
}

#[tokio::test]
async fn a_persistent_sensor_gets_every_message_across_a_crash_over_mqtt_3_1_1() {
    a_persistent_sensor_gets_every_message_across_a_crash(4).await;
}

#[tokio::test]
async fn a_persistent_sensor_gets_every_message_across_a_crash_over_mqtt_5() {
    a_persistent_sensor_gets_every_message_across_a_crash(5).await;
}

#[tokio::test]
async fn deliveries_a_connected_sensor_did_not_acknowledge_come_again_after_a_crash() {
    let up = Mosquitto::start("").await;
    let state = tempfile::tempdir().unwrap();
    let conf = write_config(state.path(), &config(state.path(), up.addr, 4, ""));
    let gate = Gate::start(&conf, &[]);
    let kept = connect(gate.udp, "kept", false);
    subscribe(&kept, KEPT, 1, 1);
    publish(up.addr, KEPT, 0..3).await;
    // The first delivery arrives and is never acknowledged.
    let first = kept.expect(0x0C, Duration::from_secs(5));
    assert_eq!(&first[7..], b"0");
    gate.kill();

    let gate = Gate::start(&conf, &[]);
    assert!(gate.logged("1 persistent MQTT-SN session(s)"));
    let kept = connect(gate.udp, "kept", false);
    let got = kept.drain(Duration::from_secs(3));
    assert_eq!(payloads(&got), ["0", "1", "2"]);
    gate.stop();
}

#[tokio::test]
async fn a_session_that_expired_while_sngate_was_down_is_not_restored() {
    let up = Mosquitto::start("").await;
    let state = tempfile::tempdir().unwrap();
    let keys = "persistent_session_expiry = 1";
    let conf = write_config(state.path(), &config(state.path(), up.addr, 4, keys));
    let gate = Gate::start(&conf, &[]);
    let kept = connect(gate.udp, "kept", false);
    subscribe(&kept, KEPT, 1, 1);
    disconnect(&kept);
    // The gateway core tells the upstream task after answering the sensor.
    std::thread::sleep(Duration::from_millis(300));
    gate.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let gate = Gate::start(&conf, &[]);
    assert!(gate.logged("expired while sngate was down"));
    let kept = connect(gate.udp, "kept", false);
    publish(up.addr, KEPT, 0..3).await;
    let got = kept.drain(Duration::from_millis(1500));
    assert_eq!(payloads(&got), Vec::<String>::new(), "no subscription left");
    gate.stop();
}
