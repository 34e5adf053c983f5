//! Interop with a third-party MQTT-SN 1.2 client: the `mqtt-sn-12` package
//! from PyPI (`mqtt_sn_pub`, `mqtt_sn_sub`) talks to sngate's gateway, and
//! Mosquitto's clients check what arrives on the MQTT side.
//!
//! That client waits for CONNACK without honouring its own `--timeout`, so
//! every run is wrapped in `timeout`; it defaults to port 2442, so `-p` is
//! always given.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::{Sub, mosquitto_pub, require_tool};
use sngate::app::Sngate;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(10);

const PREDEFINED: &str = r#"
[[gateway.predefined]]
topic_id = 100
topic = "pre/hundred"
"#;

async fn start() -> (Sngate, SocketAddr, SocketAddr) {
    let app = common::start_with(PREDEFINED).await;
    let mqtt = app.mqtt_addr().expect("an MQTT listener");
    let gw = app.gateway_udp[0];
    (app, mqtt, gw)
}

/// Runs `mqtt_sn_pub -h 127.0.0.1 -p PORT ARGS...` to completion (20 s at most).
async fn mqtt_sn_pub(gw: SocketAddr, args: &[&str]) {
    require_tool("mqtt_sn_pub");
    let out = Command::new("timeout")
        .args(["20", "mqtt_sn_pub", "-h", "127.0.0.1", "-p"])
        .arg(gw.port().to_string())
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("mqtt_sn_pub runs");
    assert!(
        out.status.success(),
        "mqtt_sn_pub {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `mqtt_sn_sub`; it prints one payload per line.
struct SnSub {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl SnSub {
    /// Starts `mqtt_sn_sub` and returns once it demonstrably receives: the
    /// MQTT side publishes `probe` on `probe_topic` until it shows up.
    async fn start(gw: SocketAddr, mqtt: SocketAddr, probe_topic: &str, args: &[&str]) -> SnSub {
        require_tool("mqtt_sn_sub");
        // Not wrapped in `timeout`: killing the wrapper would orphan the
        // client; the probe loop below bounds the wait instead.
        let mut child = Command::new("mqtt_sn_sub")
            .args(["-h", "127.0.0.1", "-p"])
            .arg(gw.port().to_string())
            .args(args)
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("mqtt_sn_sub runs");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut sub = SnSub {
            child,
            lines: BufReader::new(stdout).lines(),
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            assert!(
                tokio::time::Instant::now() < deadline,
                "mqtt_sn_sub never received the probe"
            );
            mosquitto_pub(mqtt, &["-t", probe_topic, "-m", "probe"]).await;
            if let Some(l) = sub.line(Duration::from_millis(500)).await {
                assert_eq!(l, "probe");
                break;
            }
        }
        // Late probes still in flight are skipped by `payloads`.
        sub
    }

    async fn line(&mut self, wait: Duration) -> Option<String> {
        match tokio::time::timeout(wait, self.lines.next_line()).await {
            Ok(Ok(line)) => line,
            _ => None,
        }
    }

    /// The next `n` payloads other than `probe`, waiting at most [`WAIT`].
    async fn payloads(&mut self, n: usize) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.line(left).await {
                Some(l) if l == "probe" => {}
                Some(l) => out.push(l),
                None => break,
            }
        }
        out
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

#[tokio::test]
async fn third_party_client_publishes_at_qos_0_1_2_to_a_registered_topic() {
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "interop/#", "-q", "2", "-F", "%t %p %q"]).await;
    for q in ["0", "1", "2"] {
        let payload = format!("q{q}");
        mqtt_sn_pub(gw, &["-q", q, "-t", "interop/temp", "-m", &payload]).await;
    }
    assert_eq!(
        sub.lines(3, WAIT).await,
        vec![
            "interop/temp q0 0",
            "interop/temp q1 1",
            "interop/temp q2 2"
        ]
    );
    assert_eq!(sub.line(Duration::from_millis(300)).await, None);
    app.stop().await;
}

#[tokio::test]
async fn third_party_client_publishes_at_qos_minus_one_to_a_predefined_id_and_short_topic() {
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "pre/hundred", "-t", "ab", "-F", "%t %p %q"]).await;
    mqtt_sn_pub(gw, &["-q", "-1", "-T", "100", "-m", "minus-one"]).await;
    mqtt_sn_pub(gw, &["-q", "-1", "-t", "ab", "-m", "short"]).await;
    assert_eq!(
        sub.lines(2, WAIT).await,
        vec!["pre/hundred minus-one 0", "ab short 0"]
    );
    app.stop().await;
}

#[tokio::test]
async fn third_party_client_publishes_connected_to_a_predefined_id_and_short_topic() {
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(
        mqtt,
        &["-t", "pre/hundred", "-t", "cd", "-q", "2", "-F", "%t %p %q"],
    )
    .await;
    mqtt_sn_pub(gw, &["-q", "1", "-T", "100", "-m", "pre"]).await;
    mqtt_sn_pub(gw, &["-q", "2", "-t", "cd", "-m", "short"]).await;
    assert_eq!(
        sub.lines(2, WAIT).await,
        vec!["pre/hundred pre 1", "cd short 2"]
    );
    app.stop().await;
}

#[tokio::test]
async fn third_party_client_subscribed_to_a_name_receives_from_mosquitto_pub() {
    let (app, mqtt, gw) = start().await;
    let mut s = SnSub::start(gw, mqtt, "interop/cmd", &["-q", "1", "-t", "interop/cmd"]).await;
    for m in ["a", "b", "c"] {
        mosquitto_pub(mqtt, &["-t", "interop/cmd", "-m", m, "-q", "1"]).await;
    }
    assert_eq!(s.payloads(3).await, vec!["a", "b", "c"]);
    s.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn third_party_client_subscribed_to_a_wildcard_receives_after_gateway_register() {
    let (app, mqtt, gw) = start().await;
    let mut s = SnSub::start(gw, mqtt, "interop/probe", &["-t", "interop/#"]).await;
    mosquitto_pub(mqtt, &["-t", "interop/room1/temp", "-m", "21"]).await;
    mosquitto_pub(mqtt, &["-t", "interop/room2/temp", "-m", "19"]).await;
    assert_eq!(s.payloads(2).await, vec!["21", "19"]);
    s.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn third_party_client_subscribed_to_a_predefined_id_receives_from_mosquitto_pub() {
    let (app, mqtt, gw) = start().await;
    let mut s = SnSub::start(gw, mqtt, "pre/hundred", &["-T", "100"]).await;
    mosquitto_pub(mqtt, &["-t", "pre/hundred", "-m", "hello"]).await;
    assert_eq!(s.payloads(1).await, vec!["hello"]);
    s.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn third_party_clients_talk_to_each_other_through_sngate() {
    // Both ends MQTT-SN: publish by one third-party client, received by another.
    let (app, mqtt, gw) = start().await;
    let mut s = SnSub::start(gw, mqtt, "sn/both", &["-q", "1", "-t", "sn/both"]).await;
    mqtt_sn_pub(gw, &["-q", "1", "-t", "sn/both", "-m", "peer"]).await;
    assert_eq!(s.payloads(1).await, vec!["peer"]);
    s.stop().await;
    app.stop().await;
}
