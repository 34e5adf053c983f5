//! `sngate sn pub/sub --psk-identity ID --psk HEX` against a running sngate:
//! the hand test of a DTLS deployment, automated.

mod common;
mod dtls_support;

use std::time::Duration;

use dtls_support::pki;
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

/// `--cafile/--cert/--key` for a sensor certificate with subject CN `cn`.
fn cert_args(pki: &pki::Pki, cn: &str) -> Vec<String> {
    let files = pki.client(cn, cn);
    [
        "--cafile".to_owned(),
        pki.ca_file().display().to_string(),
        "--cert".to_owned(),
        files.cert.display().to_string(),
        "--key".to_owned(),
        files.key.display().to_string(),
    ]
    .into()
}

#[tokio::test]
async fn sn_pub_with_a_certificate_reaches_sn_sub_with_a_certificate() {
    let pki = pki::Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let port = app.gateway_dtls[0].port().to_string();
    let sub_certs = cert_args(&pki, "listener");
    let mut sub_args = vec!["sub", "-p", &port, "-i", "listener", "-t", "c/#", "-v"];
    sub_args.extend(["-C", "1", "-W", "10"]);
    sub_args.extend(sub_certs.iter().map(String::as_str));
    let sub = sn(&sub_args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let pub_certs = cert_args(&pki, "sensor-c");
    let mut pub_args = vec!["pub", "-p", &port, "-i", "sensor-c", "-t", "c/d"];
    pub_args.extend(["-m", "certified", "-q", "1"]);
    pub_args.extend(pub_certs.iter().map(String::as_str));
    let status = sn(&pub_args).status().await.unwrap();
    assert!(status.success());
    let out = tokio::time::timeout(Duration::from_secs(10), sub.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "c/d certified\n");
}

#[tokio::test]
async fn sn_pub_with_a_certificate_and_another_client_id_is_refused() {
    let pki = pki::Pki::new("sensor CA");
    let app = start_certs(&pki, "", "").await;
    let port = app.gateway_dtls[0].port().to_string();
    let certs = cert_args(&pki, "sensor-c");
    let mut args = vec!["pub", "-p", &port, "-i", "impostor", "-t", "c/d", "-m", "x"];
    args.extend(certs.iter().map(String::as_str));
    let out = sn(&args).output().await.unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CONNECT refused"));
}

#[tokio::test]
async fn sn_pub_refuses_a_gateway_certificate_its_cafile_does_not_sign() {
    let (ours, theirs) = (pki::Pki::new("sensor CA"), pki::Pki::new("other CA"));
    let app = start_certs(&ours, "", "").await;
    let port = app.gateway_dtls[0].port().to_string();
    let files = ours.client("sensor-c", "sensor-c");
    let (ca, cert, key) = (
        theirs.ca_file().display().to_string(),
        files.cert.display().to_string(),
        files.key.display().to_string(),
    );
    let out = sn(&[
        "pub", "-p", &port, "-i", "sensor-c", "-t", "c/d", "-m", "x", "--cafile", &ca, "--cert",
        &cert, "--key", &key,
    ])
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("certificate is not accepted"), "{err}");
}

#[tokio::test]
async fn sn_cert_without_key_and_cafile_is_a_usage_error() {
    let out = sn(&["pub", "-t", "c/d", "-m", "x", "--cert", "c.pem"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
