//! Interoperability with OpenSSL's command line: `openssl s_client -dtls1_2`
//! with a PSK completes a handshake with sngate, and MQTT-SN CONNECT and
//! PUBLISH written to its stdin reach mosquitto_sub.

mod common;
mod dtls_support;

use std::process::Stdio;
use std::time::Duration;

use common::{Sub, require_tool};
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
