//! DTLS sensors with client certificates end to end: the certificate's
//! subject CN is the sensor's identity exactly as a PSK identity is (client
//! id, ACL username, wake-up), DTLS 1.2 and 1.3. Every refusal leaves a log
//! line and leaves the other sensors alone.

mod common;
mod dtls_support;

use std::net::SocketAddr;

use bytes::Bytes;
use common::Sub;
use common::log_capture::{install, wait_for_line};
use dimpl::ProtocolVersion;
use dtls_support::pki::Pki;
use dtls_support::*;
use sngate::mqttsn::codec::{Message, ReturnCode};
use sngate::transport::dtls::client::DtlsVersion;
use tokio::net::UdpSocket;

async fn established(gw: SocketAddr, pki: &Pki, cn: &str) -> DtlsSensor {
    let certs = sensor_certificates(pki, cn);
    let mut s = DtlsSensor::connect_cert(gw, certs, DtlsVersion::V12)
        .await
        .unwrap();
    assert_eq!(s.mqtt_connect(cn, true).await, ReturnCode::Accepted);
    s
}

#[tokio::test]
async fn a_dtls13_sensor_with_a_certificate_publishes_to_mosquitto_sub() {
    install();
    let pki = Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "c3"]).await;
    let certs = sensor_certificates(&pki, "sensor-13");
    let mut s = DtlsSensor::connect_cert(app.gateway_dtls[0], certs, DtlsVersion::Auto)
        .await
        .unwrap();
    assert_eq!(s.dtls.protocol_version(), Some(ProtocolVersion::DTLS1_3));
    assert_eq!(
        s.mqtt_connect("sensor-13", true).await,
        ReturnCode::Accepted
    );
    assert_eq!(
        s.publish_q1(*b"c3", b"over 1.3").await,
        ReturnCode::Accepted
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("over 1.3"));
    assert!(
        wait_for_line(
            &[
                "DTLS session established",
                "identity=sensor-13",
                "auth=\"certificate\"",
                "version=\"1.3\""
            ],
            WAIT
        )
        .await
        .is_some()
    );
}

#[tokio::test]
async fn a_dtls12_sensor_with_a_certificate_publishes_to_mosquitto_sub() {
    install();
    let pki = Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "c2"]).await;
    let mut s = established(app.gateway_dtls[0], &pki, "sensor-12").await;
    assert_eq!(s.dtls.protocol_version(), Some(ProtocolVersion::DTLS1_2));
    assert_eq!(
        s.publish_q1(*b"c2", b"over 1.2").await,
        ReturnCode::Accepted
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("over 1.2"));
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_is_refused_with_a_log_line_and_no_effect_on_others() {
    install();
    let (ours, theirs) = (Pki::new("sensor CA"), Pki::new("other CA"));
    let app = start_certs(&ours, "", "").await;
    let gw = app.gateway_dtls[0];
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "ok"]).await;
    let mut good = established(gw, &ours, "sensor-1").await;

    // The intruder trusts our gateway but holds a certificate of another CA.
    let files = theirs.client("intruder", "intruder");
    let certs = sngate::transport::dtls::certs::ClientCertificates::load(
        &files.cert,
        &files.key,
        &ours.ca_file(),
        "127.0.0.1",
    )
    .unwrap();
    let refused = DtlsSensor::connect_cert(gw, std::sync::Arc::new(certs), DtlsVersion::V12).await;
    assert!(refused.is_err());
    assert!(
        wait_for_line(&["client certificate not accepted"], WAIT)
            .await
            .is_some()
    );
    assert_eq!(
        good.publish_q1(*b"ok", b"still here").await,
        ReturnCode::Accepted
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("still here"));
}

#[tokio::test]
async fn a_sensor_refuses_a_gateway_certificate_from_another_ca() {
    let (ours, theirs) = (Pki::new("sensor CA"), Pki::new("other CA"));
    let app = start_certs(&ours, "", "").await;
    let files = ours.client("sensor-1", "sensor-1");
    let certs = sngate::transport::dtls::certs::ClientCertificates::load(
        &files.cert,
        &files.key,
        &theirs.ca_file(),
        "127.0.0.1",
    )
    .unwrap();
    let err = DtlsSensor::connect_cert(
        app.gateway_dtls[0],
        std::sync::Arc::new(certs),
        DtlsVersion::Auto,
    )
    .await
    .err()
    .expect("the handshake fails");
    assert!(
        err.to_string().contains("certificate is not accepted"),
        "{err}"
    );
}

#[tokio::test]
async fn connect_with_a_client_id_other_than_the_certificate_cn_gets_connack_0x03() {
    install();
    let pki = Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let certs = sensor_certificates(&pki, "sensor-5");
    let mut s = DtlsSensor::connect_cert(app.gateway_dtls[0], certs, DtlsVersion::Auto)
        .await
        .unwrap();
    assert_eq!(
        s.mqtt_connect("sensor-6", true).await,
        ReturnCode::NotSupported
    );
    assert!(
        wait_for_line(
            &["CONNECT refused", "client_id=sensor-6", "expected=sensor-5"],
            WAIT
        )
        .await
        .is_some()
    );
    assert_eq!(s.mqtt_connect("sensor-5", true).await, ReturnCode::Accepted);
}

#[tokio::test]
async fn the_acl_applies_with_the_certificate_cn_as_username() {
    install();
    let pki = Pki::new("sensor CA");
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    // Anonymous (mosquitto_sub) may read; user "sensor-7" may write "ki" only.
    std::fs::write(&acl, "topic read #\nuser sensor-7\ntopic write ki\n").unwrap();
    let app = start_certs(
        &pki,
        "use_identity_as_username = true",
        &format!("[auth]\nacl_file = \"{}\"\n", acl.display()),
    )
    .await;
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "#", "-v"]).await;
    let mut s = established(app.gateway_dtls[0], &pki, "sensor-7").await;
    // A denied publish is acknowledged and dropped, as Mosquitto does.
    s.publish_q1(*b"no", b"denied").await;
    assert_eq!(s.publish_q1(*b"ki", b"allowed").await, ReturnCode::Accepted);
    assert_eq!(
        sub.line(WAIT).await.as_deref(),
        Some("ki allowed"),
        "only the topic user sensor-7 may write reaches subscribers"
    );
}

#[tokio::test]
async fn without_use_identity_as_username_the_acl_sees_an_anonymous_sensor() {
    install();
    let pki = Pki::new("sensor CA");
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    std::fs::write(&acl, "topic read #\nuser sensor-7\ntopic write ki\n").unwrap();
    let app = start_certs(
        &pki,
        "",
        &format!("[auth]\nacl_file = \"{}\"\n", acl.display()),
    )
    .await;
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "#", "-v"]).await;
    let mut s = established(app.gateway_dtls[0], &pki, "sensor-7").await;
    s.publish_q1(*b"ki", b"denied").await;
    assert_eq!(sub.line(std::time::Duration::from_millis(800)).await, None);
}

#[tokio::test]
async fn a_plain_udp_pingreq_cannot_wake_a_certificate_sensor() {
    install();
    let pki = Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let mut s = established(app.gateway_dtls[0], &pki, "sensor-8").await;
    s.send(&Message::Disconnect {
        duration: Some(300),
    })
    .await;
    assert!(matches!(
        s.recv_within(WAIT).await,
        Some(Message::Disconnect { .. })
    ));
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let ping = encoded(&Message::PingReq {
        client_id: Some(Bytes::from_static(b"sensor-8")),
    });
    udp.send_to(&ping, app.gateway_udp[0]).await.unwrap();
    assert!(
        wait_for_line(&["wake-up refused", "client_id=sensor-8"], WAIT)
            .await
            .is_some()
    );
}

#[tokio::test]
async fn a_sleeping_certificate_sensor_woken_from_a_new_port_gets_its_buffered_messages() {
    install();
    let pki = Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let gw = app.gateway_dtls[0];
    let certs = sensor_certificates(&pki, "sleeper");
    let mut s = DtlsSensor::connect_cert(gw, certs.clone(), DtlsVersion::Auto)
        .await
        .unwrap();
    assert_eq!(s.mqtt_connect("sleeper", false).await, ReturnCode::Accepted);
    s.subscribe_short_and_sleep(*b"zz", 120).await;
    drop(s);
    common::mosquitto_pub(app.mqtt_addr().unwrap(), &["-t", "zz", "-m", "held"]).await;

    // The same certificate behind a NAT that gave it a new port.
    let mut woke = DtlsSensor::connect_cert(gw, certs, DtlsVersion::Auto)
        .await
        .unwrap();
    woke.send(&Message::PingReq {
        client_id: Some(Bytes::from_static(b"sleeper")),
    })
    .await;
    match woke.recv_within(WAIT).await {
        Some(Message::Publish { data, .. }) => assert_eq!(&data[..], b"held"),
        other => panic!("expected the buffered PUBLISH, got {other:?}"),
    }
    assert_eq!(woke.recv_within(WAIT).await, Some(Message::PingResp));
}
