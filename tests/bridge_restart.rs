//! The bridge's store-and-forward queue is durable: QoS 1 messages that
//! sngate acknowledged while the upstream broker was down survive sngate
//! being stopped (SIGTERM) and killed (SIGKILL), and reach the upstream in
//! order once it is back. sngate runs as a real process with persistence on.

mod bridge_support;
mod common;
mod persistence_support;

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use bridge_support::{Mosquitto, bridge_config};
use common::Sub;
use persistence_support::{Gate, Mqtt, config, write_config};

/// mosquitto.conf lines: keep sessions and their queues across its restarts.
fn mosquitto_persistence(dir: &Path) -> String {
    format!(
        "persistence true\npersistence_location {}/\n",
        dir.display()
    )
}

/// Publishes `from..=to` as QoS 1 on `seq/n` and waits for every PUBACK.
fn publish_numbered(gate: &Gate, from: u16, to: u16) {
    let mut c = Mqtt::connect(gate.mqtt, "numbered", false, true, 0).unwrap();
    for n in from..=to {
        c.publish("seq/n", n.to_string().as_bytes(), 1, n, false, false)
            .unwrap();
        let ack = c.expect(4, Duration::from_secs(5)).unwrap();
        assert_eq!(ack.id(), n, "PUBACK for message {n}");
    }
}

/// Collects distinct numbers in their order of first arrival, until `n` are
/// seen or `wait` passes. Duplicates are allowed for QoS 1.
async fn first_arrivals(sub: &mut Sub, n: usize, wait: Duration) -> Vec<u16> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    while seen.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(line) = sub.line(left).await else {
            break;
        };
        let n: u16 = line.trim().parse().unwrap();
        if seen.insert(n) {
            order.push(n);
        }
    }
    order
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_messages_survive_sngate_restarts_while_the_upstream_is_down() {
    let up_dir = tempfile::tempdir().unwrap();
    let persist = mosquitto_persistence(up_dir.path());
    let mut up = Mosquitto::start_in(up_dir, &persist).await;
    // A persistent verifier session upstream, offline while the messages
    // arrive: Mosquitto queues them for it.
    let verifier_args = [
        "-t", "up/seq/#", "-q", "1", "-c", "-i", "verifier", "-W", "60",
    ];
    Sub::start(up.addr, &verifier_args).await.kill().await;
    up.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n{}",
        config(dir.path(), "", ""),
        bridge_config(
            "b",
            up.addr,
            4,
            r#"topics = [{ pattern = "seq/#", direction = "out", qos = 1, remote_prefix = "up/" }]"#,
        )
    );
    let path = write_config(dir.path(), &text);

    let gate = Gate::start(&path, &[]);
    publish_numbered(&gate, 1, 30);
    gate.stop();
    let gate = Gate::start(&path, &[]);
    publish_numbered(&gate, 31, 60);
    gate.kill();
    let gate = Gate::start(&path, &[]);
    publish_numbered(&gate, 61, 80);
    assert!(
        gate.logged("bridge b: cannot connect"),
        "the upstream was down all along"
    );

    up.restart().await;
    let mut verifier = Sub::start(up.addr, &verifier_args).await;
    let arrived = first_arrivals(&mut verifier, 80, Duration::from_secs(30)).await;
    let want: Vec<u16> = (1..=80).collect();
    assert_eq!(arrived, want, "messages upstream, by first arrival");
    gate.stop();
}

#[tokio::test]
async fn qos0_messages_beyond_the_bound_drop_the_oldest_while_the_upstream_is_down() {
    let up_dir = tempfile::tempdir().unwrap();
    let persist = format!(
        "{}queue_qos0_messages true\n",
        mosquitto_persistence(up_dir.path())
    );
    let mut up = Mosquitto::start_in(up_dir, &persist).await;
    let verifier_args = [
        "-t",
        "up/q0/#",
        "-q",
        "1",
        "-c",
        "-i",
        "verifier0",
        "-W",
        "30",
    ];
    Sub::start(up.addr, &verifier_args).await.kill().await;
    up.stop().await;

    let gw = common::start_with(&bridge_config(
        "b",
        up.addr,
        4,
        r#"max_queued_qos0 = 3
topics = [{ pattern = "q0/#", direction = "out", qos = 0, remote_prefix = "up/" }]"#,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    for n in 1..=10 {
        common::mosquitto_pub(local, &["-t", "q0/n", "-m", &n.to_string(), "-q", "0"]).await;
    }
    // Give the core time to hand all ten to the bridge before the link is up.
    tokio::time::sleep(Duration::from_millis(300)).await;

    up.restart().await;
    let mut verifier = Sub::start(up.addr, &verifier_args).await;
    let got = verifier.lines(3, Duration::from_secs(15)).await;
    assert_eq!(got, ["8", "9", "10"], "the three newest QoS 0 messages");
    assert_eq!(
        verifier.line(Duration::from_millis(500)).await,
        None,
        "nothing older"
    );
    gw.stop().await;
}
