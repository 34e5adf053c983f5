//! Store-and-forward: while a publisher sends numbered QoS 1 messages to
//! sngate, the upstream Mosquitto is stopped and started again twice; every
//! message still arrives upstream, in order, and the state topic follows.

mod bridge_support;
mod common;

use std::collections::HashSet;
use std::process::Stdio;
use std::time::Duration;

use bridge_support::{Mosquitto, bridge_config, wait_state};
use common::Sub;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

const N: u32 = 120;

#[tokio::test]
async fn qos1_messages_survive_two_upstream_restarts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let persist = format!(
        "persistence true\npersistence_location {}/\nautosave_interval 1\n",
        dir.path().display()
    );
    let mut up = Mosquitto::start_in(dir, &persist).await;
    let gw = common::start_with(&bridge_config(
        "b",
        up.addr,
        4,
        r#"topics = [{ pattern = "seq/#", direction = "out", qos = 1, remote_prefix = "up/" }]"#,
    )
    // Reconnects within 0.5–1 s, so the link is back before the second outage.
    .replace("reconnect_max = 2", "reconnect_max = 1"))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "b", "1", Duration::from_secs(10)).await;

    // The verifier keeps a persistent session upstream so that what arrives
    // while it reconnects after a restart is queued for it.
    let mut verifier = Sub::start(
        up.addr,
        &[
            "-t", "up/seq/#", "-q", "1", "-c", "-i", "verifier", "-W", "60",
        ],
    )
    .await;
    let mut states = Sub::start(local, &["-t", "$SYS/broker/connection/b/state"]).await;

    let mut publisher = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &common::port(local)])
        .args(["-t", "seq/n", "-q", "1", "-l", "-i", "numbered"])
        .stdin(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = publisher.stdin.take().unwrap();
    for i in 1..=N {
        stdin.write_all(format!("{i}\n").as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        match i {
            20 | 75 => up.stop().await,
            40 | 95 => up.restart().await,
            _ => {}
        }
    }
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(10), publisher.wait()).await;

    // Duplicates are allowed for QoS 1; loss and reordering are not.
    let mut first_seen = Vec::new();
    let mut seen = HashSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while seen.len() < N as usize {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(line) = verifier.line(left).await else {
            break;
        };
        let n: u32 = line.trim().parse().unwrap();
        if seen.insert(n) {
            first_seen.push(n);
        }
    }
    let want: Vec<u32> = (1..=N).collect();
    assert_eq!(first_seen, want, "messages upstream, by first arrival");

    let states = states.lines(5, Duration::from_secs(2)).await;
    assert_eq!(states, ["1", "0", "1", "0", "1"], "state topic history");
    gw.stop().await;
}
