//! Upstreams that misbehave: each failure is logged with the bridge's name,
//! reconnects back off, and the rest of sngate keeps working.

mod bridge_support;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bridge_support::{Mosquitto, bridge_config};
use common::log_capture::{install, wait_for_line};
use common::{Sub, mosquitto_pub};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

/// sngate's own clients still work while the bridge struggles.
async fn sngate_still_serves(local: SocketAddr, topic: &str) {
    let mut sub = Sub::start(local, &["-t", topic, "-W", "5"]).await;
    mosquitto_pub(local, &["-t", topic, "-m", "fine", "-q", "1"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("fine"));
}

#[tokio::test]
async fn wrong_credentials_are_logged_with_the_bridge_name() {
    install();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwd");
    let status = std::process::Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&pw)
        .args(["alice", "right"])
        .status()
        .unwrap();
    assert!(status.success());
    let conf = format!("allow_anonymous false\npassword_file {}\n", pw.display());
    let up = Mosquitto::start_in(dir, &conf).await;
    let gw = common::start_with(&bridge_config(
        "creds",
        up.addr,
        4,
        "username = \"alice\"\npassword = \"wrong\"\ntopics = [{ pattern = \"a/#\" }]",
    ))
    .await;
    let line = wait_for_line(&["bridge creds", "refused the connection"], WAIT).await;
    let line = line.expect("refusal logged");
    assert!(
        line.contains("not authorized") || line.contains("bad user name"),
        "{line}"
    );
    assert!(
        wait_for_line(&["bridge creds", "retrying in"], WAIT)
            .await
            .is_some()
    );
    sngate_still_serves(gw.mqtt_addr().unwrap(), "local/creds").await;
    gw.stop().await;
}

#[tokio::test]
async fn upstream_that_never_answers_times_out() {
    install();
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let gw = common::start_with(&bridge_config(
        "silent",
        addr,
        4,
        "connect_timeout = 1\ntopics = [{ pattern = \"a/#\" }]",
    ))
    .await;
    assert!(
        wait_for_line(&["bridge silent", "no CONNACK"], WAIT)
            .await
            .is_some()
    );
    assert!(
        wait_for_line(&["bridge silent", "retrying in"], WAIT)
            .await
            .is_some()
    );
    sngate_still_serves(gw.mqtt_addr().unwrap(), "local/silent").await;
    gw.stop().await;
    holder.abort();
}

#[tokio::test]
async fn upstream_that_hangs_up_at_once_is_retried_with_backoff() {
    install();
    let rude = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = rude.local_addr().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let closer = tokio::spawn(async move {
        while let Ok((s, _)) = rude.accept().await {
            let _ = tx.send(tokio::time::Instant::now());
            drop(s);
        }
    });
    let gw = common::start_with(&bridge_config(
        "rude",
        addr,
        4,
        "topics = [{ pattern = \"a/#\" }]",
    ))
    .await;
    assert!(
        wait_for_line(&["bridge rude", "closed the connection"], WAIT)
            .await
            .is_some()
    );
    sngate_still_serves(gw.mqtt_addr().unwrap(), "local/rude").await;
    // reconnect_min = 1, reconnect_max = 2: attempts are ≥ 0.5 s apart, never a tight loop.
    let mut times = Vec::new();
    while times.len() < 3 {
        times.push(
            tokio::time::timeout(WAIT, rx.recv())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for pair in times.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(450),
            "attempts {:?} apart",
            pair[1] - pair[0]
        );
    }
    gw.stop().await;
    closer.abort();
}

#[tokio::test]
async fn unreachable_upstream_does_not_stop_sngate() {
    install();
    let dead: SocketAddr = format!("127.0.0.1:{}", bridge_support::free_port())
        .parse()
        .unwrap();
    let gw = common::start_with(&bridge_config(
        "gone",
        dead,
        5,
        "topics = [{ pattern = \"a/#\" }]",
    ))
    .await;
    assert!(
        wait_for_line(&["bridge gone", "TCP connect failed"], WAIT)
            .await
            .is_some()
    );
    assert!(
        wait_for_line(&["bridge gone", "retrying in"], WAIT)
            .await
            .is_some()
    );
    sngate_still_serves(gw.mqtt_addr().unwrap(), "local/gone").await;
    gw.stop().await;
}
