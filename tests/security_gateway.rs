//! MQTT-SN sensors have no credentials: each UDP listener admits them by
//! source network and client id, and the ACL applies to them by client id
//! (`%c`) and by the user name `[gateway] usernames` maps their id to.

mod common;
mod security_support;

use std::time::Duration;

use common::{Sub, mosquitto_pub};
use security_support::{Sensor, write_file};
use sngate::app::Sngate;
use sngate::limits::Limit;

/// sngate with one MQTT listener and one MQTT-SN socket; `udp` and
/// `gateway`/`auth` keys are spliced into their tables.
async fn start(udp: &str, gateway: &str, auth: &str) -> Sngate {
    common::start_config(&format!(
        r#"
[broker]
sys_interval = 0

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0
{gateway}

[[gateway.udp]]
bind = "127.0.0.1:0"
{udp}

[auth]
{auth}
"#
    ))
    .await
}

const SHORT: Duration = Duration::from_millis(600);

#[tokio::test]
async fn a_client_id_outside_allow_client_ids_gets_connack_not_supported() {
    let gw = start(
        r#"allow_client_ids = ["sensor-*", "gateway-probe"]"#,
        "",
        "",
    )
    .await;
    let addr = gw.gateway_udp[0];
    let good = Sensor::new(addr).await;
    assert_eq!(good.connect_code("sensor-12", SHORT).await, Some(0x00));
    let exact = Sensor::new(addr).await;
    assert_eq!(exact.connect_code("gateway-probe", SHORT).await, Some(0x00));
    let bad = Sensor::new(addr).await;
    // MQTT-SN 1.2 §2.4: 0x03 "not supported", the refusal that invites no retry.
    assert_eq!(bad.connect_code("intruder", SHORT).await, Some(0x03));
    assert_eq!(gw.metrics.limits.get(Limit::SensorRefused), 1);
    gw.stop().await;
}

#[tokio::test]
async fn datagrams_from_outside_allow_networks_are_dropped_unanswered() {
    let gw = start(r#"allow_networks = ["127.0.0.2/32", "::1/128"]"#, "", "").await;
    let addr = gw.gateway_udp[0];
    let outside = Sensor::on("127.0.0.1", addr).await;
    assert_eq!(outside.connect_code("s1", SHORT).await, None);
    let inside = Sensor::on("127.0.0.2", addr).await;
    assert_eq!(inside.connect_code("s1", SHORT).await, Some(0x00));
    assert_eq!(gw.metrics.limits.get(Limit::SensorRefused), 1);
    gw.stop().await;
}

fn acl_auth(dir: &tempfile::TempDir, acl: &str) -> String {
    let path = write_file(dir, "acl", acl);
    format!("acl_file = \"{path}\"")
}

#[tokio::test]
async fn a_publish_the_acl_denies_gets_puback_not_supported_and_goes_nowhere() {
    let dir = tempfile::tempdir().unwrap();
    let acl = "pattern write sensors/%c/#\ntopic read #\n";
    let gw = start("", "", &acl_auth(&dir, acl)).await;
    let mqtt = gw.mqtt_addr().unwrap();
    let mut sub = Sub::start(mqtt, &["-t", "sensors/#", "-v"]).await;
    let s = Sensor::new(gw.gateway_udp[0]).await;
    s.connect("s7").await;
    let own = s.register("sensors/s7/t", 1).await;
    let other = s.register("sensors/s8/t", 2).await;
    // Digest §2.4: 0x03; 0x02 would make the sensor re-register in vain.
    assert_eq!(s.publish_qos1(other, 3, b"forged").await, 0x03);
    assert_eq!(s.publish_qos1(own, 4, b"21.5").await, 0x00);
    assert_eq!(
        sub.line(Duration::from_secs(5)).await.as_deref(),
        Some("sensors/s7/t 21.5")
    );
    sub.kill().await;
    gw.stop().await;
}

#[tokio::test]
async fn a_subscription_the_acl_denies_gets_suback_not_supported() {
    let dir = tempfile::tempdir().unwrap();
    let acl = "pattern read cmd/%c/#\n";
    let gw = start("", "", &acl_auth(&dir, acl)).await;
    let s = Sensor::new(gw.gateway_udp[0]).await;
    s.connect("s7").await;
    assert_eq!(s.subscribe_code("cmd/s8/#", 1).await, 0x03);
    assert_eq!(s.subscribe_code("cmd/s7/#", 2).await, 0x00);
    gw.stop().await;
}

#[tokio::test]
async fn a_mapped_user_name_gives_the_sensor_its_user_rules_and_denied_deliveries_are_not_sent() {
    let dir = tempfile::tempdir().unwrap();
    // Anonymous clients (mosquitto_pub here) may write; the user reads.
    let acl =
        "topic write kitchen/#\nuser kitchen\ntopic read kitchen/#\ntopic deny kitchen/secret\n";
    let gw = start(
        "",
        r#"usernames = { "sensor-7" = "kitchen" }"#,
        &acl_auth(&dir, acl),
    )
    .await;
    let mqtt = gw.mqtt_addr().unwrap();
    let mapped = Sensor::new(gw.gateway_udp[0]).await;
    mapped.connect("sensor-7").await;
    assert_eq!(mapped.subscribe_code("kitchen/#", 1).await, 0x00);
    let unmapped = Sensor::new(gw.gateway_udp[0]).await;
    unmapped.connect("sensor-8").await;
    assert_eq!(unmapped.subscribe_code("kitchen/#", 1).await, 0x03);

    mosquitto_pub(mqtt, &["-t", "kitchen/secret", "-m", "hidden"]).await;
    mosquitto_pub(mqtt, &["-t", "kitchen/light", "-m", "on"]).await;
    let got = mapped.next_publish(Duration::from_secs(5)).await;
    assert_eq!(got, Some(("kitchen/light".to_owned(), b"on".to_vec())));
    gw.stop().await;
}

#[tokio::test]
async fn a_will_topic_the_acl_denies_refuses_the_connection() {
    let dir = tempfile::tempdir().unwrap();
    let acl = "pattern write sensors/%c/#\n";
    let gw = start("", "", &acl_auth(&dir, acl)).await;
    let s = Sensor::new(gw.gateway_udp[0]).await;
    // CONNECT with Will=1, then WILLTOPIC for a topic of another sensor.
    s.send(&[0x08, 0x04, 0x0C, 0x01, 0x00, 0x3C, b's', b'7'])
        .await;
    assert_eq!(s.recv().await, vec![0x02, 0x06], "WILLTOPICREQ");
    let mut wt = vec![0, 0x07, 0x00];
    wt.extend_from_slice(b"sensors/s8/will");
    wt[0] = wt.len() as u8;
    s.send(&wt).await;
    assert_eq!(s.recv().await, vec![0x03, 0x05, 0x03]);
    gw.stop().await;
}
