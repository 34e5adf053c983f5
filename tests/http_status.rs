//! `/healthz`, the `/api` JSON, the `/api/events` stream, the embedded status
//! page and the gateway's `$SYS` topics, with a sensor over real UDP.

mod common;
mod http_support;

use std::time::Duration;

use http_support::{Events, Sensor, eventually, get, get_json};
use serde_json::Value;

fn sensor_named<'a>(sensors: &'a Value, id: &str) -> Option<&'a Value> {
    sensors.as_array()?.iter().find(|s| s["client_id"] == id)
}

#[tokio::test]
async fn healthz_is_ok_while_listeners_are_up() {
    let s = http_support::start(0).await;
    let r = get(http_support::http_addr(&s), "/healthz").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "ok\n");
    s.stop().await;
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let s = http_support::start(0).await;
    let http = http_support::http_addr(&s);
    assert_eq!(get(http, "/nope").await.status, 404);
    assert_eq!(get(http, "/api/sensors/nobody").await.status, 404);
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(http).await.unwrap();
    c.write_all(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 405"), "{out}");
    s.stop().await;
}

#[tokio::test]
async fn garbage_request_gets_400() {
    let s = http_support::start(0).await;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut c = tokio::net::TcpStream::connect(http_support::http_addr(&s))
        .await
        .unwrap();
    c.write_all(b"\x16\x03\x01 hello\r\n\r\n").await.unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    s.stop().await;
}

#[tokio::test]
async fn api_shows_a_sensor_with_its_topic_table_then_its_change_to_asleep() {
    let s = http_support::start(0).await;
    let http = http_support::http_addr(&s);
    let mut sensor = Sensor::new(s.gateway_udp[0]).await;
    sensor.connect("probe-7", 30).await;
    let topic = sensor.register("field/probe-7/temp").await;
    sensor.publish_qos1(topic, b"21.5").await;

    let active = eventually(Duration::from_secs(5), || async {
        let sensors = get_json(http, "/api/sensors").await;
        // The status is refreshed once a second: wait for one taken after the publish.
        sensor_named(&sensors, "probe-7")
            .filter(|x| x["state"] == "active" && x["topics"] != serde_json::json!([]))
            .cloned()
    })
    .await
    .expect("the sensor appears as active");
    assert_eq!(active["transport"], "udp");
    assert_eq!(
        active["address"],
        format!("udp {}", sensor.local_addr()).as_str()
    );
    assert_eq!(active["keep_alive_seconds"], 30);
    assert_eq!(active["buffered"], 0);
    assert_eq!(
        active["topics"],
        serde_json::json!([{ "id": topic, "name": "field/probe-7/temp" }])
    );
    assert!(active["last_seen_seconds"].as_f64().unwrap() < 5.0);

    sensor.sleep(120).await;
    let asleep = eventually(Duration::from_secs(5), || async {
        let one = get(http, "/api/sensors/probe-7").await;
        let v: Value = serde_json::from_str(&one.body).ok()?;
        (v["state"] == "asleep").then_some(v)
    })
    .await
    .expect("the sensor's state changes to asleep");
    assert_eq!(asleep["sleep_seconds"], 120);

    // The sensor's broker session is listed among the clients.
    let clients = get_json(http, "/api/clients").await;
    let c = sensor_named(&clients, "probe-7").expect("broker session listed");
    assert_eq!(c["protocol"], "mqtt-sn");
    s.stop().await;
}

#[tokio::test]
async fn api_clients_lists_an_mqtt_subscriber_with_its_subscriptions() {
    let s = http_support::start(0).await;
    let http = http_support::http_addr(&s);
    let sub = common::Sub::start(
        s.mqtt_addr().unwrap(),
        &["-i", "dash-1", "-t", "a/#", "-t", "b/c", "-V", "mqttv5"],
    )
    .await;
    let c = eventually(Duration::from_secs(5), || async {
        let clients = get_json(http, "/api/clients").await;
        sensor_named(&clients, "dash-1")
            .filter(|c| c["subscriptions"] == 2)
            .cloned()
    })
    .await
    .expect("the subscriber is listed with its two subscriptions");
    assert_eq!(c["protocol"], "mqtt5");
    assert_eq!(c["connected"], true);
    let status = get_json(http, "/api/status").await;
    assert_eq!(status["broker"]["subscriptions"], 2);
    sub.kill().await;
    s.stop().await;
}

#[tokio::test]
async fn event_stream_delivers_a_sensors_state_change() {
    let s = http_support::start(0).await;
    let http = http_support::http_addr(&s);
    let mut events = Events::open(http).await;
    assert_eq!(events.content_type, "text/event-stream");
    let first = events
        .next_status(Duration::from_secs(5))
        .await
        .expect("an update at once");
    assert_eq!(first["sensors"], serde_json::json!([]));

    let mut sensor = Sensor::new(s.gateway_udp[0]).await;
    sensor.connect("ev-1", 60).await;
    sensor.sleep(60).await;
    let mut seen = None;
    for _ in 0..8 {
        let update = events
            .next_status(Duration::from_secs(3))
            .await
            .expect("updates keep coming");
        if let Some(x) = sensor_named(&update["sensors"], "ev-1")
            && x["state"] == "asleep"
        {
            seen = Some(update);
            break;
        }
    }
    let update = seen.expect("an update shows the sensor asleep");
    assert_eq!(update["gateway"]["sensors_by_state"]["asleep"], 1);
    s.stop().await;
}

#[tokio::test]
async fn status_page_and_its_assets_are_embedded() {
    let s = http_support::start(0).await;
    let http = http_support::http_addr(&s);
    let page = get(http, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-type"].starts_with("text/html"));
    assert!(page.body.contains("<script src=\"/app.js\">"));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "no CDN"
    );
    let js = get(http, "/app.js").await;
    assert_eq!(js.status, 200);
    assert!(js.body.contains("EventSource(\"/api/events\")"));
    assert_eq!(get(http, "/style.css").await.status, 200);
    s.stop().await;
}

#[tokio::test]
async fn sys_topics_count_mqttsn_sensors_by_state() {
    let s = http_support::start(1).await;
    let mut sensor = Sensor::new(s.gateway_udp[0]).await;
    sensor.connect("sys-1", 60).await;
    sensor.sleep(60).await;
    let mut sub = common::Sub::start(
        s.mqtt_addr().unwrap(),
        &["-v", "-t", "$SYS/broker/mqttsn/#"],
    )
    .await;
    let mut asleep = None;
    let mut received = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(6);
    while let Some(line) = sub
        .line(deadline.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        if let Some(v) = line.strip_prefix("$SYS/broker/mqttsn/sensors/asleep ") {
            asleep = Some(v.to_string());
        }
        if let Some(v) = line.strip_prefix("$SYS/broker/mqttsn/messages/received ") {
            received = Some(v.parse::<u64>().unwrap());
        }
        // Retained values from an earlier period may come first.
        if asleep.as_deref() == Some("1") && received.is_some_and(|n| n >= 2) {
            break;
        }
    }
    assert_eq!(asleep.as_deref(), Some("1"));
    assert!(
        received.is_some_and(|n| n >= 2),
        "CONNECT and DISCONNECT counted: {received:?}"
    );
    sub.kill().await;
    s.stop().await;
}
