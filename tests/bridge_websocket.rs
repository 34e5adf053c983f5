//! Bridges over MQTT-over-WebSocket to a real Mosquitto websockets listener:
//! `ws://` in both directions, `wss://` with a CA and a required client
//! certificate, and an address that does not speak WebSocket.

mod bridge_support;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bridge_support::certs::make_certs;
use bridge_support::{Mosquitto, free_port, wait_state};
use common::log_capture::{install, wait_for_line};
use common::{Sub, mosquitto_pub};

const WAIT: Duration = Duration::from_secs(10);

fn ws_bridge(name: &str, address: &str, version: u8, extra: &str) -> String {
    format!(
        "[[bridge]]\nname = \"{name}\"\naddresses = [\"{address}\"]\nprotocol_version = {version}\n\
         reconnect_min = 1\nreconnect_max = 2\nconnect_timeout = 3\nclean_start = true\n{extra}\n\
         topics = [\n  {{ pattern = \"sensors/#\", direction = \"out\", qos = 1, remote_prefix = \"site1/\" }},\n  \
         {{ pattern = \"commands/#\", direction = \"in\", qos = 1 }},\n]\n"
    )
}

/// Mosquitto with a plain listener (its `addr`) and a websockets listener.
async fn ws_mosquitto() -> (Mosquitto, u16) {
    let ws = free_port();
    let up = Mosquitto::start(&format!("listener {ws} 127.0.0.1\nprotocol websockets\n")).await;
    (up, ws)
}

/// Mosquitto with a plain listener (its `addr`) and a secure websockets
/// listener for "localhost" that requires a client certificate; also returns
/// that listener's port and the directory holding ca.pem, client.pem/key.
async fn wss_mosquitto() -> (Mosquitto, u16, String) {
    let dir = tempfile::tempdir().unwrap();
    make_certs(dir.path(), "localhost");
    let d = dir.path().display().to_string();
    let wss = free_port();
    let up = Mosquitto::start_in(
        dir,
        &format!(
            "listener {wss} 127.0.0.1\nprotocol websockets\ncafile {d}/ca.pem\n\
             certfile {d}/server.pem\nkeyfile {d}/server.key\nrequire_certificate true\n"
        ),
    )
    .await;
    (up, wss, d)
}

async fn ws_both_directions(version: u8) {
    install();
    let (up, ws) = ws_mosquitto().await;
    let name = format!("ws{version}");
    let gw = common::start_with(&ws_bridge(
        &name,
        &format!("ws://127.0.0.1:{ws}/mqtt"),
        version,
        "",
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, &name, "1", WAIT).await;

    let mut remote_sub = Sub::start(up.addr, &["-t", "site1/#", "-v", "-W", "10"]).await;
    mosquitto_pub(local, &["-t", "sensors/t1", "-m", "21.5", "-q", "1"]).await;
    assert_eq!(
        remote_sub.line(WAIT).await.as_deref(),
        Some("site1/sensors/t1 21.5")
    );

    let mut local_sub = Sub::start(local, &["-t", "commands/#", "-v", "-W", "10"]).await;
    mosquitto_pub(up.addr, &["-t", "commands/valve", "-m", "open", "-q", "1"]).await;
    assert_eq!(
        local_sub.line(WAIT).await.as_deref(),
        Some("commands/valve open")
    );
    gw.stop().await;
}

#[tokio::test]
async fn ws_bridge_to_a_311_upstream_carries_both_directions() {
    ws_both_directions(4).await;
}

#[tokio::test]
async fn ws_bridge_to_a_v5_upstream_carries_both_directions() {
    ws_both_directions(5).await;
}

#[tokio::test]
async fn wss_bridge_with_a_client_certificate_reaches_mosquitto() {
    install();
    let (up, wss, d) = wss_mosquitto().await;
    let tls = format!(
        "tls = {{ cafile = \"{d}/ca.pem\", certfile = \"{d}/client.pem\", keyfile = \"{d}/client.key\" }}"
    );
    let gw = common::start_with(&ws_bridge(
        "wss",
        &format!("wss://localhost:{wss}/mqtt"),
        4,
        &tls,
    ))
    .await;
    let local = gw.mqtt_addr().unwrap();
    wait_state(local, "wss", "1", WAIT).await;
    let mut remote_sub = Sub::start(up.addr, &["-t", "site1/#", "-v", "-W", "10"]).await;
    mosquitto_pub(local, &["-t", "sensors/secure", "-m", "yes", "-q", "1"]).await;
    assert_eq!(
        remote_sub.line(WAIT).await.as_deref(),
        Some("site1/sensors/secure yes")
    );
    gw.stop().await;
}

#[tokio::test]
async fn wss_without_the_required_client_certificate_is_refused_and_logged() {
    install();
    let (_up, wss, d) = wss_mosquitto().await;
    let gw = common::start_with(&ws_bridge(
        "wssnocert",
        &format!("wss://localhost:{wss}/mqtt"),
        4,
        &format!("tls = {{ cafile = \"{d}/ca.pem\" }}"),
    ))
    .await;
    assert!(
        wait_for_line(&["bridge wssnocert", "cannot connect"], WAIT)
            .await
            .is_some()
    );
    assert_eq!(
        bridge_support::retained(
            gw.mqtt_addr().unwrap(),
            "$SYS/broker/connection/wssnocert/state"
        )
        .await
        .as_deref(),
        Some("0")
    );
    gw.stop().await;
}

#[tokio::test]
async fn ws_address_that_does_not_speak_websocket_is_logged_with_the_bridge_name() {
    install();
    // A plain MQTT listener answers an HTTP upgrade request by closing.
    let up = Mosquitto::start("").await;
    let gw = common::start_with(&ws_bridge(
        "notws",
        &format!("ws://{}/mqtt", up.addr),
        4,
        "",
    ))
    .await;
    let line = wait_for_line(&["bridge notws", "WebSocket handshake failed"], WAIT)
        .await
        .expect("the failed upgrade is logged");
    assert!(line.contains(&up.addr.to_string()), "{line}");
    // The rest of sngate keeps serving.
    let local: SocketAddr = gw.mqtt_addr().unwrap();
    let mut sub = Sub::start(local, &["-t", "still/here", "-C", "1", "-W", "5"]).await;
    mosquitto_pub(local, &["-t", "still/here", "-m", "ok"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("ok"));
    gw.stop().await;
}
