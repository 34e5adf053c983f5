//! Interoperability with OpenSSL's command line: `openssl s_client -dtls1_2`
//! with a PSK or a client certificate completes a handshake with sngate, and
//! MQTT-SN CONNECT and PUBLISH written to its stdin reach mosquitto_sub.

mod common;
mod dtls_support;

use std::process::Stdio;
use std::time::Duration;

use common::{Sub, require_tool};
use dtls_support::pki::Pki;
use dtls_support::*;
use sngate::qos::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

#[tokio::test]
async fn openssl_s_client_with_a_psk_publishes_through_sngate() {
    require_tool("openssl");
    common::log_capture::install();
    let (app, _dir) = start(8).await;
    let gw = app.gateway_dtls[0];
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "os", "-v"]).await;
    // PSK-AES128-CCM8 is the suite sngate offers; OpenSSL leaves CCM8 out of DEFAULT.
    let mut child = Command::new("openssl")
        .args(["s_client", "-dtls1_2", "-cipher", "PSK-AES128-CCM8"])
        .args(["-psk", KEY1, "-psk_identity", "dev1"])
        .args(["-connect", &gw.to_string(), "-quiet", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();

    // s_client sends each read of stdin as one record: one message per write.
    stdin
        .write_all(&encoded(&connect_msg("sensor-1", true)))
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let mut connack = [0u8; 3];
    tokio::time::timeout(WAIT, stdout.read_exact(&mut connack))
        .await
        .expect("CONNACK within the wait")
        .unwrap();
    assert_eq!(connack, [0x03, 0x05, 0x00], "CONNACK accepted");

    stdin
        .write_all(&encoded(&publish(
            *b"os",
            QoS::AtMostOnce,
            0,
            b"from openssl",
        )))
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("os from openssl"));

    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = child.kill().await;
}

/// CONNECT as `client_id` and PUBLISH `data` to short topic `topic` through
/// a running `openssl s_client`, after checking the CONNACK.
async fn connect_and_publish(
    child: &mut tokio::process::Child,
    client_id: &str,
    topic: [u8; 2],
    data: &[u8],
) {
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // s_client sends each read of stdin as one record: one message per write.
    stdin
        .write_all(&encoded(&connect_msg(client_id, true)))
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let mut connack = [0u8; 3];
    tokio::time::timeout(WAIT, stdout.read_exact(&mut connack))
        .await
        .expect("CONNACK within the wait")
        .unwrap();
    assert_eq!(connack, [0x03, 0x05, 0x00], "CONNACK accepted");
    stdin
        .write_all(&encoded(&publish(topic, QoS::AtMostOnce, 0, data)))
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    child.stdin = Some(stdin);
    child.stdout = Some(stdout);
}

#[tokio::test]
async fn openssl_s_client_with_a_client_certificate_publishes_through_sngate() {
    require_tool("openssl");
    common::log_capture::install();
    let pki = Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let gw = app.gateway_dtls[0];
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "oc", "-v"]).await;
    let sensor = pki.client("sensor-os", "sensor-os");
    let mut child = Command::new("openssl")
        .args(["s_client", "-dtls1_2"])
        .arg("-cert")
        .arg(&sensor.cert)
        .arg("-key")
        .arg(&sensor.key)
        .arg("-CAfile")
        .arg(pki.ca_file())
        .args(["-verify_return_error", "-verify_ip", "127.0.0.1"])
        .args(["-connect", &gw.to_string(), "-quiet", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    connect_and_publish(&mut child, "sensor-os", *b"oc", b"from openssl").await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("oc from openssl"));
    assert!(
        common::log_capture::wait_for_line(
            &[
                "DTLS session established",
                "identity=sensor-os",
                "auth=\"certificate\""
            ],
            WAIT
        )
        .await
        .is_some()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _ = child.kill().await;
}

#[tokio::test]
async fn openssl_s_client_without_a_client_certificate_is_refused_with_a_log_line() {
    require_tool("openssl");
    common::log_capture::install();
    let pki = Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let gw = app.gateway_dtls[0];
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "ok"]).await;
    let certs = sensor_certificates(&pki, "sensor-1");
    let mut good =
        DtlsSensor::connect_cert(gw, certs, sngate::transport::dtls::client::DtlsVersion::V12)
            .await
            .unwrap();
    assert_eq!(
        good.mqtt_connect("sensor-1", true).await,
        sngate::mqttsn::codec::ReturnCode::Accepted
    );
    let mut child = Command::new("openssl")
        .args(["s_client", "-dtls1_2", "-CAfile"])
        .arg(pki.ca_file())
        .args(["-connect", &gw.to_string(), "-quiet", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    let line = common::log_capture::wait_for_line(
        &["DTLS handshake failed", "no client certificate received"],
        WAIT,
    )
    .await;
    let _ = child.kill().await;
    assert!(line.is_some(), "the refused handshake is logged");
    assert_eq!(
        good.publish_q1(*b"ok", b"still here").await,
        sngate::mqttsn::codec::ReturnCode::Accepted
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("still here"));
}

#[tokio::test]
async fn openssl_s_client_with_a_wrong_psk_is_refused_with_a_log_line() {
    require_tool("openssl");
    common::log_capture::install();
    let (app, _dir) = start(8).await;
    let gw = app.gateway_dtls[0];
    let mut child = Command::new("openssl")
        .args(["s_client", "-dtls1_2", "-cipher", "PSK-AES128-CCM8"])
        .args(["-psk", KEY2, "-psk_identity", "dev1"])
        .args(["-connect", &gw.to_string(), "-quiet", "-ign_eof"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    let line = common::log_capture::wait_for_line(&["wrong PSK", "identity=dev1"], WAIT).await;
    let _ = child.kill().await;
    assert!(line.is_some(), "the refused handshake is logged");
    let mut s = DtlsSensor::connect(gw, "dev2", KEY2).await.unwrap();
    assert_eq!(
        s.mqtt_connect("dev2", true).await,
        sngate::mqttsn::codec::ReturnCode::Accepted
    );
}
