//! `sngate sn pub/sub --psk-identity ID --psk HEX` against a running sngate:
//! the hand test of a DTLS deployment, automated.

mod common;
mod dtls_support;

use std::time::Duration;

use dtls_support::*;
use tokio::process::Command;

const SNGATE: &str = env!("CARGO_BIN_EXE_sngate");

fn sn(args: &[&str]) -> Command {
    let mut c = Command::new(SNGATE);
    c.arg("sn").args(args).kill_on_drop(true);
    c
}

#[tokio::test]
async fn sn_pub_over_dtls_reaches_sn_sub_over_dtls() {
    let (app, _dir) = start(8).await;
    let port = app.gateway_dtls[0].port().to_string();
    let sub = sn(&[
        "sub",
        "-p",
        &port,
        "--psk-identity",
        "dev2",
        "--psk",
        KEY2,
        "-i",
        "dev2",
        "-t",
        "a/#",
        "-v",
        "-C",
        "1",
        "-W",
        "10",
    ])
    .stdout(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = sn(&[
        "pub",
        "-p",
        &port,
        "--psk-identity",
        "dev1",
        "--psk",
        KEY1,
        "-i",
        "sensor-1",
        "-t",
        "a/b",
        "-m",
        "over dtls",
        "-q",
        "1",
    ])
    .status()
    .await
    .unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(10), sub.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "a/b over dtls\n");
}

#[tokio::test]
async fn sn_pub_with_a_wrong_psk_fails_with_a_message() {
    let (app, _dir) = start(8).await;
    let port = app.gateway_dtls[0].port().to_string();
    let out = sn(&[
        "pub",
        "-p",
        &port,
        "--psk-identity",
        "dev1",
        "--psk",
        KEY2,
        "-i",
        "sensor-1",
        "-t",
        "a/b",
        "-m",
        "x",
    ])
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DTLS handshake"));
}

#[tokio::test]
async fn sn_pub_with_a_client_id_other_than_the_identity_binding_is_refused() {
    let (app, _dir) = start(8).await;
    let port = app.gateway_dtls[0].port().to_string();
    let out = sn(&[
        "pub",
        "-p",
        &port,
        "--psk-identity",
        "dev1",
        "--psk",
        KEY1,
        "-i",
        "impostor",
        "-t",
        "a/b",
        "-m",
        "x",
    ])
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONNECT refused"));
}
