//! A bridge's local session in the broker core outlives configuration
//! changes (it is the durable store-and-forward queue), so it must follow
//! them: rules removed from a bridge stop collecting messages, and a bridge
//! removed from the configuration (by a reload, or between two runs) has its
//! session discarded instead of filling for nobody.

mod bridge_support;
mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;

use std::sync::Arc;
use std::time::Duration;

use bridge_support::free_port;
use sn_sensor::SnSensor;
use sngate::app::Sngate;
use sngate::broker::{ClientStatus, Command};
use sngate::config::Config;
use sngate::mqttsn::codec::{ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;

/// A bridge to a port nobody listens on, so everything it forwards waits.
fn bridge(name: &str, port: u16, pattern: &str) -> String {
    format!(
        "[[bridge]]\nname = \"{name}\"\naddresses = [\"127.0.0.1:{port}\"]\nreconnect_min = 60\n\
         reconnect_max = 60\nmax_inflight = 1\ntopics = [{{ pattern = \"{pattern}\", direction = \"out\", qos = 1 }}]\n"
    )
}

fn config(persistence: Option<&std::path::Path>, bridges: &str) -> Config {
    let persistence = persistence
        .map(|p| {
            format!(
                "[persistence]\nenabled = true\npath = \"{}\"\n",
                p.display()
            )
        })
        .unwrap_or_default();
    let text = format!("{}\n{persistence}\n{bridges}", common::BASE_CONFIG);
    Config::from_toml_str(&text, "test.toml").unwrap()
}

async fn bridge_session(app: &Sngate, name: &str) -> Option<ClientStatus> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    app.broker.send(Command::Status { reply }).await.unwrap();
    let snapshot = answer.await.unwrap();
    let id: Arc<str> = Arc::from(format!("$bridge/{name}"));
    snapshot.clients.into_iter().find(|c| c.client_id == id)
}

/// Waits (bounded) until the bridge's session matches `want`.
async fn wait_session(app: &Sngate, name: &str, want: impl Fn(Option<&ClientStatus>) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let s = bridge_session(app, name).await;
        if want(s.as_ref()) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bridge session {name} is {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn publish(app: &Sngate, topic: &str) {
    common::mosquitto_pub(
        app.mqtt_addr().unwrap(),
        &["-t", topic, "-m", "x", "-q", "1"],
    )
    .await;
}

#[tokio::test]
async fn a_changed_bridge_stops_collecting_for_rules_it_no_longer_has() {
    let port = free_port();
    let mut app = sngate::app::start(&config(None, &bridge("b", port, "old/#")))
        .await
        .unwrap();
    publish(&app, "old/1").await;
    wait_session(&app, "b", |s| s.is_some_and(|s| s.queued + s.inflight == 1)).await;

    app.apply_config(&config(None, &bridge("b", port, "new/#")))
        .await;
    // Only the new rule's filter is left; what the old rule held is dropped
    // when it comes round again (no rule forwards it any more).
    wait_session(&app, "b", |s| s.is_some_and(|s| s.subscriptions == 1)).await;
    publish(&app, "new/1").await;
    wait_session(&app, "b", |s| s.is_some_and(|s| s.queued + s.inflight == 1)).await;
    // With one message in flight to the (absent) remote, anything still
    // subscribed would queue behind it.
    publish(&app, "old/2").await;
    publish(&app, "new/2").await;
    wait_session(&app, "b", |s| {
        s.is_some_and(|s| s.queued == 1 && s.inflight == 1)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let s = bridge_session(&app, "b").await.unwrap();
    assert_eq!((s.queued, s.inflight), (1, 1), "old/2 was not collected");
    app.stop().await;
}

#[tokio::test]
async fn a_bridge_removed_by_a_reload_has_its_session_discarded() {
    let port = free_port();
    let mut app = sngate::app::start(&config(None, &bridge("gone", port, "t/#")))
        .await
        .unwrap();
    publish(&app, "t/1").await;
    wait_session(&app, "gone", |s| {
        s.is_some_and(|s| s.queued + s.inflight == 1)
    })
    .await;
    app.apply_config(&config(None, "")).await;
    wait_session(&app, "gone", |s| s.is_none()).await;
    app.stop().await;
}

#[tokio::test]
async fn a_bridge_removed_between_two_runs_has_its_stored_session_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let app = sngate::app::start(&config(
        Some(dir.path()),
        &format!(
            "{}{}",
            bridge("kept", port, "k/#"),
            bridge("old", port, "o/#")
        ),
    ))
    .await
    .unwrap();
    publish(&app, "o/1").await;
    publish(&app, "k/1").await;
    wait_session(&app, "old", |s| {
        s.is_some_and(|s| s.queued + s.inflight == 1)
    })
    .await;
    wait_session(&app, "kept", |s| {
        s.is_some_and(|s| s.queued + s.inflight == 1)
    })
    .await;
    app.stop().await;

    let app = sngate::app::start(&config(Some(dir.path()), &bridge("kept", port, "k/#")))
        .await
        .unwrap();
    wait_session(&app, "old", |s| s.is_none()).await;
    // The configured bridge keeps what it held for the remote broker.
    wait_session(&app, "kept", |s| {
        s.is_some_and(|s| s.queued + s.inflight == 1)
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_sensor_publishing_into_a_full_bridge_queue_gets_congestion_not_a_lost_puback() {
    let port = free_port();
    let bridges = bridge("full", port, "s/#")
        .replace("max_inflight = 1\n", "max_inflight = 1\nmax_queued = 2\n");
    let app = sngate::app::start(&config(None, &bridges)).await.unwrap();
    let mut sensor = SnSensor::new(app.gateway_udp[0]).await;
    assert_eq!(
        sensor.connect("sensor-full", 60, true).await,
        ReturnCode::Accepted
    );
    let id = sensor.register("s/t").await;
    let mut codes = Vec::new();
    for n in 0..5u8 {
        let code = sensor
            .publish(
                SnQos::Level(QoS::AtLeastOnce),
                TopicRef::Normal(id),
                false,
                &[n],
            )
            .await;
        codes.push(code);
    }
    // One in flight to the (absent) remote and two queued are accepted; the
    // queue is then full, and the sensor is told so instead of being acknowledged.
    assert_eq!(
        codes,
        [
            Some(ReturnCode::Accepted),
            Some(ReturnCode::Accepted),
            Some(ReturnCode::Accepted),
            Some(ReturnCode::Congestion),
            Some(ReturnCode::Congestion),
        ]
    );
    let s = bridge_session(&app, "full").await.unwrap();
    assert_eq!(
        (s.queued, s.inflight),
        (2, 1),
        "every accepted message is held"
    );
    app.stop().await;
}
