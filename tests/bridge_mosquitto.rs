//! Bridges against a real Mosquitto upstream started by each test: out, in
//! and both directions, MQTT 3.1.1 and 5, prefixes and templates, no loops,
//! the state topic, and MQTT-SN sensors at the far end.

mod bridge_support;
mod common;

use std::time::Duration;

use bridge_support::{Mosquitto, bridge_config, wait_state};
use common::{Sub, mosquitto_pub};

const WAIT: Duration = Duration::from_secs(10);

async fn sngate_with(bridge: &str) -> sngate::app::Sngate {
    common::start_with(bridge).await
}

async fn out_with_prefix(version: u8) {
    let up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        version,
        r#"topics = [{ pattern = "sensors/#", direction = "out", qos = 1, remote_prefix = "site1/" }]"#,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "b", "1", WAIT).await;
    let mut sub = Sub::start(up.addr, &["-t", "site1/#", "-v", "-W", "10"]).await;
    mosquitto_pub(local, &["-t", "sensors/t1", "-m", "21.5", "-q", "1"]).await;
    assert_eq!(
        sub.line(WAIT).await.as_deref(),
        Some("site1/sensors/t1 21.5")
    );
    gw.stop().await;
}

#[tokio::test]
async fn out_rule_with_remote_prefix_reaches_a_311_upstream() {
    out_with_prefix(4).await;
}

#[tokio::test]
async fn out_rule_with_remote_prefix_reaches_a_v5_upstream() {
    out_with_prefix(5).await;
}

async fn in_with_prefixes(version: u8) {
    let up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        version,
        r#"topics = [{ pattern = "cmd/#", direction = "in", qos = 1, remote_prefix = "cloud/", local_prefix = "local/" }]"#,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "b", "1", WAIT).await;
    let mut sub = Sub::start(local, &["-t", "local/#", "-v", "-W", "10"]).await;
    mosquitto_pub(up.addr, &["-t", "cloud/cmd/valve", "-m", "open", "-q", "1"]).await;
    assert_eq!(
        sub.line(WAIT).await.as_deref(),
        Some("local/cmd/valve open")
    );
    gw.stop().await;
}

#[tokio::test]
async fn in_rule_with_both_prefixes_from_a_311_upstream() {
    in_with_prefixes(4).await;
}

#[tokio::test]
async fn in_rule_with_both_prefixes_from_a_v5_upstream() {
    in_with_prefixes(5).await;
}

#[tokio::test]
async fn out_template_reuses_the_wildcard_level() {
    let up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        5,
        r#"topics = [{ pattern = "sensors/+/temp", direction = "out", qos = 1, remote_topic = "site1/{1}/temperature" }]"#,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "b", "1", WAIT).await;
    let mut sub = Sub::start(up.addr, &["-t", "site1/#", "-v", "-W", "10"]).await;
    mosquitto_pub(
        local,
        &["-t", "sensors/kitchen/temp", "-m", "19", "-q", "1"],
    )
    .await;
    assert_eq!(
        sub.line(WAIT).await.as_deref(),
        Some("site1/kitchen/temperature 19")
    );
    gw.stop().await;
}

#[tokio::test]
async fn retained_flag_travels_with_the_message() {
    let up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        4,
        r#"topics = [{ pattern = "r/#", direction = "out", qos = 1 }]"#,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "b", "1", WAIT).await;
    mosquitto_pub(local, &["-t", "r/x", "-m", "kept", "-q", "1", "-r"]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A subscriber that arrives later still gets it: it was retained upstream.
    assert_eq!(
        bridge_support::retained(up.addr, "r/x").await.as_deref(),
        Some("kept")
    );
    gw.stop().await;
}

/// Publishes `n` messages on each side of a `both` bridge on `#` and checks
/// that each side's subscriber sees exactly 2n messages, no more.
async fn both_without_loop(version: u8, keys: &str) {
    let up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        version,
        &format!(
            r##"{keys}
topics = [{{ pattern = "#", direction = "both", qos = 1 }}]"##
        ),
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "b", "1", WAIT).await;
    let mut local_sub = Sub::start(local, &["-t", "loop/#", "-v", "-W", "15"]).await;
    let mut up_sub = Sub::start(up.addr, &["-t", "loop/#", "-v", "-W", "15"]).await;
    let n = 5;
    for i in 0..n {
        mosquitto_pub(
            local,
            &["-t", "loop/local", "-m", &i.to_string(), "-q", "1"],
        )
        .await;
        mosquitto_pub(
            up.addr,
            &["-t", "loop/remote", "-m", &i.to_string(), "-q", "1"],
        )
        .await;
    }
    let mut seen_local = local_sub.lines(2 * n, WAIT).await;
    let mut seen_up = up_sub.lines(2 * n, WAIT).await;
    // Anything looping would show up as extra lines within a short while.
    seen_local.extend(local_sub.lines(1, Duration::from_secs(2)).await);
    seen_up.extend(up_sub.lines(1, Duration::from_secs(1)).await);
    seen_local.sort();
    seen_up.sort();
    let mut want: Vec<String> = (0..n)
        .flat_map(|i| [format!("loop/local {i}"), format!("loop/remote {i}")])
        .collect();
    want.sort();
    assert_eq!(seen_local, want, "messages seen on sngate");
    assert_eq!(seen_up, want, "messages seen upstream");
    gw.stop().await;
}

#[tokio::test]
async fn both_on_hash_does_not_loop_with_a_311_upstream_and_the_bridge_flag() {
    both_without_loop(4, "").await;
}

#[tokio::test]
async fn both_on_hash_does_not_loop_with_a_311_upstream_without_the_bridge_flag() {
    both_without_loop(4, "try_private = false").await;
}

#[tokio::test]
async fn both_on_hash_does_not_loop_with_a_v5_upstream() {
    both_without_loop(5, "").await;
}

#[tokio::test]
async fn state_topic_follows_the_upstream() {
    let mut up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        4,
        r#"topics = [{ pattern = "x/#", direction = "out" }]"#,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "b", "1", WAIT).await;
    up.stop().await;
    wait_state(local, "b", "0", WAIT).await;
    up.restart().await;
    wait_state(local, "b", "1", WAIT).await;
    gw.stop().await;
}

#[tokio::test]
async fn state_is_also_published_upstream_when_asked() {
    let up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        4,
        "notifications_remote = true\nnotification_topic = \"bridges/b/state\"\n\
         topics = [{ pattern = \"x/#\", direction = \"out\" }]",
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while bridge_support::retained(up.addr, "bridges/b/state")
        .await
        .as_deref()
        != Some("1")
    {
        assert!(tokio::time::Instant::now() < deadline, "no state upstream");
    }
    assert_eq!(
        bridge_support::retained(local, "bridges/b/state")
            .await
            .as_deref(),
        Some("1")
    );
    gw.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        bridge_support::retained(up.addr, "bridges/b/state")
            .await
            .as_deref(),
        Some("0")
    );
}

#[tokio::test]
async fn failover_uses_the_second_address_when_the_first_is_down() {
    let up = Mosquitto::start("").await;
    let dead = format!("127.0.0.1:{}", bridge_support::free_port());
    let gw = sngate_with(&format!(
        "[[bridge]]\nname = \"b\"\naddresses = [\"{dead}\", \"{}\"]\nreconnect_min = 1\nreconnect_max = 2\n\
         topics = [{{ pattern = \"f/#\", direction = \"out\", qos = 1 }}]\n",
        up.addr
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "b", "1", WAIT).await;
    let mut sub = Sub::start(up.addr, &["-t", "f/#", "-v", "-W", "10"]).await;
    mosquitto_pub(local, &["-t", "f/1", "-m", "via-second", "-q", "1"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("f/1 via-second"));
    gw.stop().await;
}

/// Runs an MQTT-SN command-line client under `timeout`.
async fn mqtt_sn(tool: &str, args: &[&str], secs: u32) -> tokio::process::Child {
    common::require_tool(tool);
    tokio::process::Command::new("timeout")
        .arg(secs.to_string())
        .arg(tool)
        .args(args)
        // Python buffers a piped stdout; `timeout` would lose it.
        .env("PYTHONUNBUFFERED", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("MQTT-SN client runs")
}

#[tokio::test]
async fn mqtt_sn_sensor_reaches_an_upstream_subscriber_and_back() {
    let up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        4,
        r#"topics = [
  { pattern = "sensors/#", direction = "out", qos = 1, remote_prefix = "site1/" },
  { pattern = "cmd/#", direction = "in", qos = 1, remote_prefix = "site1/" },
]"#,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    let udp = gw.gateway_udp[0].port().to_string();
    wait_state(local, "b", "1", WAIT).await;

    // Sensor → sngate (MQTT-SN over UDP) → bridge → Mosquitto subscriber.
    let mut sub = Sub::start(up.addr, &["-t", "site1/sensors/#", "-v", "-W", "10"]).await;
    let publisher = mqtt_sn(
        "mqtt_sn_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &udp,
            "-q",
            "1",
            "-t",
            "sensors/s1",
            "-m",
            "42",
        ],
        10,
    )
    .await;
    let _ = publisher.wait_with_output().await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("site1/sensors/s1 42"));

    // Mosquitto publisher → bridge → sngate → subscribed sensor.
    let sensor = mqtt_sn(
        "mqtt_sn_sub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &udp,
            "-q",
            "1",
            "-t",
            "cmd/s1",
            "-1",
        ],
        8,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mosquitto_pub(up.addr, &["-t", "site1/cmd/s1", "-m", "reboot", "-q", "1"]).await;
    let out = sensor.wait_with_output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reboot"), "sensor output: {text:?}");
    gw.stop().await;
}

#[tokio::test]
async fn client_id_template_files_each_publisher_under_its_own_remote_prefix() {
    let up = Mosquitto::start("").await;
    let gw = sngate_with(&bridge_config(
        "b",
        up.addr,
        4,
        r#"topics = [
  { pattern = "sensors/+/temp", direction = "out", qos = 1, remote_topic = "site1/{client_id}/{1}" },
  { pattern = "$SYS/broker/connection/+/state", direction = "out", qos = 1, remote_topic = "site1/{client_id}/state" },
]"#,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    let udp = gw.gateway_udp[0].port().to_string();
    wait_state(local, "b", "1", WAIT).await;

    let mut sub = Sub::start(up.addr, &["-t", "site1/#", "-v", "-W", "15"]).await;
    for (client, room, value) in [("alpha", "kitchen", "19"), ("beta", "hall", "20")] {
        let topic = format!("sensors/{room}/temp");
        mosquitto_pub(local, &["-i", client, "-t", &topic, "-m", value, "-q", "1"]).await;
    }
    let sensor = mqtt_sn(
        "mqtt_sn_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &udp,
            "-i",
            "node-sn",
            "-q",
            "1",
            "-t",
            "sensors/attic/temp",
            "-m",
            "21",
        ],
        10,
    )
    .await;
    let _ = sensor.wait_with_output().await;

    let mut got = sub.lines(3, WAIT).await;
    got.sort();
    assert_eq!(
        got,
        [
            "site1/alpha/kitchen 19",
            "site1/beta/hall 20",
            "site1/node-sn/attic 21"
        ]
    );
    // The broker's own state messages have no publisher: not forwarded.
    assert_eq!(sub.line(Duration::from_millis(700)).await, None);
    gw.stop().await;
}
