//! `/metrics`: the Prometheus text format, and counters that move with MQTT
//! and MQTT-SN traffic.

mod common;
mod http_support;

use std::time::Duration;

use http_support::{Sensor, eventually, scrape, value};

#[tokio::test]
async fn metrics_are_prometheus_text_with_help_and_type() {
    let s = http_support::start(0).await;
    let r = http_support::get(http_support::http_addr(&s), "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(
        r.headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers
    );
    let samples = http_support::parse_prometheus(&r.body);
    for name in [
        "sngate_uptime_seconds",
        "sngate_process_resident_memory_bytes",
        "sngate_messages_received_total",
        "sngate_messages_sent_total",
        "sngate_queued_messages",
        "sngate_inflight_messages",
        "sngate_mqttsn_messages_received_total",
    ] {
        assert!(samples.iter().any(|x| x.name == name), "{name} missing");
        assert!(
            r.body.contains(&format!("# TYPE {name} ")),
            "{name} has no TYPE"
        );
    }
    assert!(value(&samples, "sngate_process_resident_memory_bytes", &[]).unwrap() > 1e6);
    for state in ["active", "asleep", "awake", "lost"] {
        assert_eq!(
            value(&samples, "sngate_mqttsn_sensors", &[("state", state)]),
            Some(0.0)
        );
    }
    s.stop().await;
}

#[tokio::test]
async fn mqtt_publishes_move_message_and_byte_counters() {
    let s = http_support::start(0).await;
    let http = http_support::http_addr(&s);
    let before = scrape(http).await;
    let received = |x: &[http_support::Sample]| value(x, "sngate_messages_received_total", &[]);
    let bytes_in = |x: &[http_support::Sample]| {
        value(x, "sngate_received_bytes_total", &[("protocol", "mqtt")])
    };
    assert_eq!(received(&before), Some(0.0));
    let mqtt = s.mqtt_addr().unwrap();
    for i in 0..3 {
        common::mosquitto_pub(mqtt, &["-t", "m/x", "-m", &format!("hello {i}")]).await;
    }
    let after = scrape(http).await;
    assert_eq!(received(&after), Some(3.0));
    assert!(bytes_in(&after).unwrap() > bytes_in(&before).unwrap() + 30.0);
    s.stop().await;
}

#[tokio::test]
async fn mqttsn_sensor_shows_as_active_connection_and_its_datagrams_are_counted() {
    let s = http_support::start(0).await;
    let http = http_support::http_addr(&s);
    let mut sensor = Sensor::new(s.gateway_udp[0]).await;
    sensor.connect("meter-1", 60).await;
    let topic = sensor.register("meters/1").await;
    sensor.publish_qos1(topic, b"42").await;
    // The gateway's status is refreshed once a second.
    let samples = eventually(Duration::from_secs(5), || async {
        let x = scrape(http).await;
        // Taken after the PUBACK went out: three datagrams each way.
        let settled = value(&x, "sngate_mqttsn_sensors", &[("state", "active")]) == Some(1.0)
            && value(&x, "sngate_mqttsn_messages_sent_total", &[]) >= Some(3.0);
        settled.then_some(x)
    })
    .await
    .expect("the sensor is counted as active");
    assert_eq!(
        value(
            &samples,
            "sngate_connections",
            &[("protocol", "mqtt-sn"), ("transport", "udp")]
        ),
        Some(1.0)
    );
    // CONNECT, REGISTER, PUBLISH in; CONNACK, REGACK, PUBACK out.
    assert_eq!(
        value(&samples, "sngate_mqttsn_messages_received_total", &[]),
        Some(3.0)
    );
    assert_eq!(
        value(&samples, "sngate_mqttsn_messages_sent_total", &[]),
        Some(3.0)
    );
    assert!(
        value(
            &samples,
            "sngate_received_bytes_total",
            &[("protocol", "mqtt-sn")]
        )
        .unwrap()
            >= 10.0
    );
    assert_eq!(
        value(&samples, "sngate_messages_received_total", &[]),
        Some(1.0)
    );
    s.stop().await;
}

#[tokio::test]
async fn qos0_messages_beyond_a_sleepers_buffer_are_counted_as_dropped() {
    let config = http_support::config_text(0)
        .replace("[gateway]\n", "[gateway]\nmax_buffered_messages = 1\n");
    let s = common::start_config(&config).await;
    let http = http_support::http_addr(&s);
    let mut sensor = Sensor::new(s.gateway_udp[0]).await;
    sensor.connect("sleepy", 60).await;
    sensor
        .send(&sngate::mqttsn::codec::Message::Subscribe {
            dup: false,
            qos: sngate::qos::QoS::AtMostOnce,
            msg_id: 9,
            topic: sngate::mqttsn::codec::TopicFilterRef::Name(bytes::Bytes::from_static(
                b"cmd/sleepy",
            )),
        })
        .await;
    assert!(matches!(
        sensor.recv().await,
        sngate::mqttsn::codec::Message::SubAck { .. }
    ));
    sensor.sleep(300).await;
    let mqtt = s.mqtt_addr().unwrap();
    for i in 0..3 {
        common::mosquitto_pub(mqtt, &["-t", "cmd/sleepy", "-m", &format!("c{i}")]).await;
    }
    let samples = eventually(Duration::from_secs(5), || async {
        let x = scrape(http).await;
        let dropped = value(
            &x,
            "sngate_messages_dropped_total",
            &[("reason", "sleep_buffer_full")],
        );
        (dropped == Some(2.0)).then_some(x)
    })
    .await
    .expect("two of three QoS 0 messages dropped for a buffer of one");
    assert_eq!(
        value(&samples, "sngate_mqttsn_buffered_messages", &[]),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "sngate_mqttsn_sensors", &[("state", "asleep")]),
        Some(1.0)
    );
    s.stop().await;
}

#[tokio::test]
async fn an_mqtt_subscriber_counts_as_a_tcp_connection_and_a_connected_client() {
    let s = http_support::start(0).await;
    let http = http_support::http_addr(&s);
    let sub = common::Sub::start(s.mqtt_addr().unwrap(), &["-t", "a/b", "-V", "mqttv311"]).await;
    let tcp = [("protocol", "mqtt"), ("transport", "tcp")];
    let samples = eventually(Duration::from_secs(5), || async {
        let x = scrape(http).await;
        (value(&x, "sngate_clients_connected", &[("protocol", "mqtt3")]) == Some(1.0)).then_some(x)
    })
    .await
    .expect("the subscriber is a connected MQTT 3.1.1 client");
    assert_eq!(value(&samples, "sngate_connections", &tcp), Some(1.0));
    assert_eq!(
        value(&samples, "sngate_connections", &[("transport", "ws")]),
        Some(0.0)
    );
    sub.kill().await;
    let gone = eventually(Duration::from_secs(5), || async {
        let x = scrape(http).await;
        (value(&x, "sngate_connections", &tcp) == Some(0.0)).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the closed connection is no longer counted");
    s.stop().await;
}
