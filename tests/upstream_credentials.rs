//! Per-sensor upstream credentials in transparent mode: a Mosquitto with a
//! password file and an ACL admits each sensor under its own identity and
//! refuses a sensor that has none.

mod bridge_support;
mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;
mod upstream_support;

use std::time::Duration;

use bridge_support::Mosquitto;
use common::Sub;
use sn_sensor::{SnSensor, connect_msg};
use sngate::mqttsn::codec::{Message, ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;
use upstream_support::{passwd, sensor, start};

/// Mosquitto with users `gw` (the gateway's shared connection), `u1`, `u2`
/// and `admin`; each sensor user may only write below its own topic.
async fn upstream_with_identities() -> Mosquitto {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwd");
    for (u, p) in [
        ("gw", "gwpass"),
        ("u1", "p1"),
        ("u2", "p2"),
        ("admin", "adminpass"),
    ] {
        passwd(&pw, u, p).await;
    }
    let acl = dir.path().join("acl");
    std::fs::write(
        &acl,
        "user admin\ntopic read #\n\nuser u1\ntopic write site-a/s1/#\n\nuser u2\ntopic write site-a/s2/#\n\nuser gw\ntopic readwrite site-a/#\n",
    )
    .unwrap();
    let extra = format!(
        "allow_anonymous false\npassword_file {}\nacl_file {}\n",
        pw.display(),
        acl.display()
    );
    Mosquitto::start_in(dir, &extra).await
}

fn credentials_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("sensors.toml");
    std::fs::write(
        &path,
        "[\"s1\"]\nusername = \"u1\"\npassword = \"p1\"\n\n[\"s2\"]\nusername = \"u2\"\npassword = \"p2\"\n\n[\"s9\"]\nusername = \"u2\"\npassword = \"wrong\"\n",
    )
    .unwrap();
    path
}

fn keys(up: &Mosquitto) -> String {
    format!(
        "username = \"gw\"\npassword = \"gwpass\"\ncredentials_file = \"{}\"\n",
        credentials_file(up.path()).display()
    )
}

#[tokio::test]
async fn each_sensor_publishes_under_its_own_upstream_identity() {
    let up = upstream_with_identities().await;
    let app = start("transparent", up.addr, "", &keys(&up)).await;
    let gw = app.gateway_udp[0];
    let mut sub = Sub::start(
        up.addr,
        &[
            "-u",
            "admin",
            "-P",
            "adminpass",
            "-t",
            "site-a/#",
            "-q",
            "1",
            "-F",
            "%t %p",
        ],
    )
    .await;
    let ack = SnQos::Level(QoS::AtLeastOnce);
    let mut s1 = sensor(gw, "s1", 30).await;
    let mut s2 = sensor(gw, "s2", 30).await;
    let own1 = s1.register("site-a/s1/temp").await;
    let foreign = s1.register("site-a/s2/temp").await;
    let own2 = s2.register("site-a/s2/temp").await;
    s1.publish(ack, TopicRef::Normal(foreign), false, b"forged")
        .await;
    s1.publish(ack, TopicRef::Normal(own1), false, b"from-s1")
        .await;
    s2.publish(ack, TopicRef::Normal(own2), false, b"from-s2")
        .await;
    let mut got = sub.lines(2, Duration::from_secs(5)).await;
    got.sort();
    // The ACL applied to u1 drops what s1 wrote under s2's topic.
    assert_eq!(got, ["site-a/s1/temp from-s1", "site-a/s2/temp from-s2"]);
    assert_eq!(sub.line(Duration::from_millis(500)).await, None);
    app.stop().await;
}

async fn refused(gw: std::net::SocketAddr, client_id: &str) -> Message {
    // Make sure the gateway's shared connection is up first.
    sensor(gw, "s2", 30).await.disconnect().await;
    let s = SnSensor::new(gw).await;
    s.send(&connect_msg(client_id, 30, true, false)).await;
    s.recv().await
}

#[tokio::test]
async fn a_sensor_without_credentials_is_refused() {
    let up = upstream_with_identities().await;
    let app = start("transparent", up.addr, "", &keys(&up)).await;
    assert_eq!(
        refused(app.gateway_udp[0], "stranger").await,
        Message::ConnAck {
            code: ReturnCode::NotSupported
        }
    );
    assert_eq!(
        app.upstream
            .as_ref()
            .unwrap()
            .refused_sensors
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn a_sensor_whose_credentials_the_upstream_rejects_is_refused() {
    let up = upstream_with_identities().await;
    let app = start("transparent", up.addr, "", &keys(&up)).await;
    assert_eq!(
        refused(app.gateway_udp[0], "s9").await,
        Message::ConnAck {
            code: ReturnCode::NotSupported
        }
    );
    app.stop().await;
}
