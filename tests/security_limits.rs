//! Per-client limits configured in `[broker]`, and the `$SYS/broker/limits/...`
//! counters every limit hit is published under.

mod common;

use std::time::Duration;

use common::raw::{RawClient, subscribe};
use common::{Sub, start_with_broker};
use sngate::limits::Limit;

async fn suback(c: &mut RawClient, packet_id: u16) -> u8 {
    let r = c.read_exact(5).await.expect("SUBACK");
    assert_eq!(
        &r[..4],
        &[0x90, 0x03, (packet_id >> 8) as u8, packet_id as u8]
    );
    r[4]
}

#[tokio::test]
async fn a_subscription_beyond_max_subscriptions_gets_suback_failure() {
    let gw = start_with_broker("sys_interval = 0\nmax_subscriptions = 2").await;
    let mut c = RawClient::connected(gw.mqtt_addr().unwrap(), "subs").await;
    for (id, filter) in [(1, "a"), (2, "b")] {
        c.send(&subscribe(id, filter, 1)).await;
        assert_eq!(suback(&mut c, id).await, 0x01);
    }
    // [MQTT-3.9.3-2]: 3.1.1 has only 0x80 Failure (MQTT 5 gets 0x97 Quota exceeded).
    c.send(&subscribe(3, "c", 1)).await;
    assert_eq!(suback(&mut c, 3).await, 0x80);
    // Subscribing again to a filter held only replaces it.
    c.send(&subscribe(4, "a", 0)).await;
    assert_eq!(suback(&mut c, 4).await, 0x00);
    assert_eq!(gw.metrics.limits.get(Limit::MaxSubscriptions), 1);
    gw.stop().await;
}

#[tokio::test]
async fn limit_hits_are_published_under_sys_broker_limits() {
    let gw = start_with_broker("sys_interval = 1\nmax_subscriptions = 1").await;
    let mqtt = gw.mqtt_addr().unwrap();
    let mut c = RawClient::connected(mqtt, "subs").await;
    c.send(&subscribe(1, "a", 0)).await;
    assert_eq!(suback(&mut c, 1).await, 0x00);
    c.send(&subscribe(2, "b", 0)).await;
    assert_eq!(suback(&mut c, 2).await, 0x80);
    let mut sys = Sub::start(mqtt, &["-t", "$SYS/broker/limits/+", "-v"]).await;
    // The retained values arrive at once, then fresh ones every second.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match sys.line(Duration::from_secs(2)).await {
            Some(l) if l == "$SYS/broker/limits/max_subscriptions 1" => {
                seen.push(l);
                break;
            }
            Some(l) => seen.push(l),
            None => break,
        }
    }
    assert!(
        seen.iter()
            .any(|l| l == "$SYS/broker/limits/max_subscriptions 1"),
        "{seen:?}"
    );
    for name in [
        "max_connections",
        "connect_timeout",
        "max_datagram_rate",
        "max_publish_rate",
    ] {
        assert!(
            seen.iter()
                .any(|l| l.starts_with(&format!("$SYS/broker/limits/{name} "))),
            "{name} in {seen:?}"
        );
    }
    sys.kill().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_packet_above_max_packet_size_closes_the_connection_and_is_counted() {
    let gw = start_with_broker("sys_interval = 0\nmax_packet_size = 100").await;
    let mut c = RawClient::connected(gw.mqtt_addr().unwrap(), "big").await;
    c.send(&common::raw::publish(b"t", &[0u8; 200], 0, 0)).await;
    assert!(c.closed_within(Duration::from_secs(3)).await);
    assert_eq!(gw.metrics.limits.get(Limit::MaxPacketSize), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_bad_network_in_allow_networks_is_a_config_error_naming_the_key() {
    let text = "[[gateway.udp]]\nbind = \"127.0.0.1:0\"\nallow_networks = [\"10.0.0.0/33\"]\n";
    let err = sngate::config::Config::from_toml_str(text, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("allow_networks"), "{err}");
    assert!(err.contains("10.0.0.0/33"), "{err}");
}

#[tokio::test]
async fn a_connection_beyond_max_connections_is_closed_and_counted() {
    let gw = start_with_broker("sys_interval = 0\nmax_connections = 1").await;
    let mqtt = gw.mqtt_addr().unwrap();
    let _first = RawClient::connected(mqtt, "first").await;
    let mut second = RawClient::open(mqtt).await;
    assert!(second.closed_within(Duration::from_secs(3)).await);
    assert_eq!(gw.metrics.limits.get(Limit::MaxConnections), 1);
    gw.stop().await;
}

#[tokio::test]
async fn a_connection_without_connect_is_closed_after_connect_timeout_and_counted() {
    let gw = start_with_broker("sys_interval = 0\nconnect_timeout = 1").await;
    let mut c = RawClient::open(gw.mqtt_addr().unwrap()).await;
    assert!(c.closed_within(Duration::from_secs(3)).await);
    assert_eq!(gw.metrics.limits.get(Limit::ConnectTimeout), 1);
    gw.stop().await;
}
