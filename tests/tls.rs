//! MQTT over TLS (`mqtts`) with Mosquitto's command-line clients and
//! certificates made by rcgen in the test.

mod certs;
mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use certs::Pki;
use common::Sub;
use sngate::app::Sngate;
use sngate::config::ListenerProtocol;
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(5);

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Starts sngate with one `mqtts` listener configured by `listener_keys`
/// and `extra` tables.
async fn start_tls(listener_keys: &str, extra: &str) -> (Sngate, SocketAddr) {
    let app = common::start_with(&format!(
        "[[listener]]\nprotocol = \"mqtts\"\nbind = \"127.0.0.1:0\"\n{listener_keys}\n{extra}"
    ))
    .await;
    let addr = app.listener_addr(ListenerProtocol::Mqtts).unwrap();
    (app, addr)
}

fn server_keys(pki: &Pki) -> String {
    let s = pki.server("server");
    format!(
        "certfile = \"{}\"\nkeyfile = \"{}\"\n",
        p(&s.cert),
        p(&s.key)
    )
}

/// Runs `mosquitto_pub` against `addr`; true if it exited 0.
async fn pub_ok(addr: SocketAddr, args: &[&str]) -> bool {
    common::require_tool("mosquitto_pub");
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("mosquitto_pub finishes")
    .expect("mosquitto_pub runs");
    out.status.success()
}

#[tokio::test]
async fn mosquitto_clients_talk_over_tls_with_a_cafile() {
    let pki = Pki::new("test CA");
    let (app, addr) = start_tls(&server_keys(&pki), "").await;
    let ca = p(&pki.ca_file());
    let mut sub = Sub::start(
        addr,
        &["--cafile", &ca, "-t", "tls/t", "-C", "1", "-W", "5"],
    )
    .await;
    assert!(
        pub_ok(
            addr,
            &["--cafile", &ca, "-t", "tls/t", "-m", "over tls", "-q", "1"]
        )
        .await
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("over tls"));
    app.stop().await;
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_server_certificate_cannot_connect() {
    let pki = Pki::new("test CA");
    let other = Pki::new("other CA");
    let (app, addr) = start_tls(&server_keys(&pki), "").await;
    assert!(
        !pub_ok(
            addr,
            &["--cafile", &p(&other.ca_file()), "-t", "t", "-m", "x"]
        )
        .await
    );
    app.stop().await;
}

#[tokio::test]
async fn require_certificate_refuses_a_client_without_a_certificate() {
    let pki = Pki::new("test CA");
    let ca = p(&pki.ca_file());
    let keys = format!(
        "{}cafile = \"{ca}\"\nrequire_certificate = true\n",
        server_keys(&pki)
    );
    let (app, addr) = start_tls(&keys, "").await;
    assert!(!pub_ok(addr, &["--cafile", &ca, "-t", "t", "-m", "no cert"]).await);
    let client = pki.client("dev", "device-1");
    let with_cert = [
        "--cafile",
        &ca,
        "--cert",
        &p(&client.cert),
        "--key",
        &p(&client.key),
        "-t",
        "t",
        "-m",
        "x",
    ];
    assert!(pub_ok(addr, &with_cert).await);
    app.stop().await;
}

#[tokio::test]
async fn require_certificate_refuses_a_certificate_from_another_ca() {
    let pki = Pki::new("test CA");
    let rogue = Pki::new("rogue CA").client("rogue", "alice");
    let ca = p(&pki.ca_file());
    let keys = format!(
        "{}cafile = \"{ca}\"\nrequire_certificate = true\n",
        server_keys(&pki)
    );
    let (app, addr) = start_tls(&keys, "").await;
    let args = [
        "--cafile",
        &ca,
        "--cert",
        &p(&rogue.cert),
        "--key",
        &p(&rogue.key),
        "-t",
        "t",
        "-m",
        "x",
    ];
    assert!(!pub_ok(addr, &args).await);
    app.stop().await;
}

#[tokio::test]
async fn use_identity_as_username_applies_the_acl_of_the_certificate_cn() {
    let pki = Pki::new("test CA");
    let ca = p(&pki.ca_file());
    let acl = pki.dir().join("acl");
    std::fs::write(&acl, "user alice\ntopic readwrite alice/#\n").unwrap();
    let keys = format!(
        "{}cafile = \"{ca}\"\nrequire_certificate = true\nuse_identity_as_username = true\n",
        server_keys(&pki)
    );
    let auth = format!("[auth]\nacl_file = \"{}\"\n", p(&acl));
    let (app, addr) = start_tls(&keys, &auth).await;
    let alice = pki.client("alice", "alice");
    let mallory = pki.client("mallory", "mallory");
    let cert_args = |c: &certs::CertFiles| {
        vec![
            "--cafile".to_string(),
            ca.clone(),
            "--cert".into(),
            p(&c.cert),
            "--key".into(),
            p(&c.key),
        ]
    };
    let alice_args = cert_args(&alice);
    let alice_ref: Vec<&str> = alice_args.iter().map(String::as_str).collect();
    let mut sub_args = alice_ref.clone();
    sub_args.extend(["-t", "alice/#", "-C", "1", "-W", "5"]);
    let mut sub = Sub::start(addr, &sub_args).await;

    // The CN "mallory" has no rule for alice/#: its publish is dropped (3.1.1).
    let mallory_args = cert_args(&mallory);
    let mut m: Vec<&str> = mallory_args.iter().map(String::as_str).collect();
    m.extend(["-t", "alice/x", "-m", "from mallory"]);
    assert!(pub_ok(addr, &m).await);
    let mut a = alice_ref.clone();
    a.extend(["-t", "alice/x", "-m", "from alice"]);
    assert!(pub_ok(addr, &a).await);
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("from alice"));
    app.stop().await;
}

#[tokio::test]
async fn reload_switches_certificates_without_dropping_connections() {
    let pki = Pki::new("first CA");
    let (app, addr) = start_tls(&server_keys(&pki), "").await;
    let first_ca = p(&pki.ca_file());
    let mut sub = Sub::start(
        addr,
        &["--cafile", &first_ca, "-t", "r/t", "-C", "1", "-W", "8"],
    )
    .await;

    // Renew: a certificate from another CA replaces the files in place.
    let second = Pki::new("second CA");
    let renewed = second.server("renewed");
    let current = pki.dir();
    std::fs::copy(&renewed.cert, current.join("server.crt")).unwrap();
    std::fs::copy(&renewed.key, current.join("server.key")).unwrap();
    app.reload().expect("reload succeeds");

    let second_ca = p(&second.ca_file());
    assert!(!pub_ok(addr, &["--cafile", &first_ca, "-t", "r/t", "-m", "old"]).await);
    assert!(
        pub_ok(
            addr,
            &["--cafile", &second_ca, "-t", "r/t", "-m", "after reload"]
        )
        .await
    );
    // The subscriber connected before the reload is still served.
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("after reload"));
    app.stop().await;
}

#[tokio::test]
async fn a_broken_certificate_on_reload_keeps_the_old_one() {
    let pki = Pki::new("test CA");
    let (app, addr) = start_tls(&server_keys(&pki), "").await;
    std::fs::write(pki.dir().join("server.crt"), "not a certificate").unwrap();
    assert!(app.reload().is_err());
    let ca = p(&pki.ca_file());
    assert!(pub_ok(addr, &["--cafile", &ca, "-t", "t", "-m", "still served"]).await);
    app.stop().await;
}
