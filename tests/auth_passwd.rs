//! Password files shared with Mosquitto: files written by `mosquitto_passwd`
//! work in sngate, and files written by `sngate passwd` work in `mosquitto`.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::Command;

fn s(path: &Path) -> String {
    path.display().to_string()
}

async fn run(cmd: &str, args: &[&str]) -> std::process::Output {
    common::require_tool(cmd);
    tokio::time::timeout(
        Duration::from_secs(15),
        Command::new(cmd).args(args).kill_on_drop(true).output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{cmd} finishes"))
    .unwrap_or_else(|e| panic!("{cmd} runs: {e}"))
}

fn mqtt_string(out: &mut Vec<u8>, v: &str) {
    out.extend_from_slice(&(v.len() as u16).to_be_bytes());
    out.extend_from_slice(v.as_bytes());
}

/// Sends a CONNECT (3.1.1 when `v5` is false) and returns the CONNACK
/// return code / reason code.
async fn connack_code(addr: SocketAddr, v5: bool, user: Option<&str>, pass: Option<&str>) -> u8 {
    let mut flags = 0x02;
    if user.is_some() {
        flags |= 0x80;
    }
    if pass.is_some() {
        flags |= 0x40;
    }
    let mut body = vec![
        0,
        4,
        b'M',
        b'Q',
        b'T',
        b'T',
        if v5 { 5 } else { 4 },
        flags,
        0,
        60,
    ];
    if v5 {
        body.push(0); // no properties
    }
    mqtt_string(&mut body, "raw-client");
    if let Some(u) = user {
        mqtt_string(&mut body, u);
    }
    if let Some(p) = pass {
        mqtt_string(&mut body, p);
    }
    let mut packet = vec![0x10, u8::try_from(body.len()).unwrap()];
    packet.extend(body);
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&packet).await.unwrap();
    let mut head = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut head))
        .await
        .expect("CONNACK in time")
        .expect("CONNACK read");
    assert_eq!(head[0], 0x20, "CONNACK expected, got {head:?}");
    head[3]
}

async fn start_with_password_file(file: &Path) -> sngate::app::Sngate {
    common::start_with(&format!("[auth]\npassword_file = \"{}\"\n", s(file))).await
}

#[tokio::test]
async fn a_mosquitto_passwd_file_accepts_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let out = run(
        "mosquitto_passwd",
        &["-c", "-b", &s(&file), "alice", "s3cret"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let app = start_with_password_file(&file).await;
    let addr = app.mqtt_addr().unwrap();
    let mut sub = common::Sub::start(
        addr,
        &[
            "-u", "alice", "-P", "s3cret", "-t", "p/t", "-C", "1", "-W", "5",
        ],
    )
    .await;
    common::mosquitto_pub(
        addr,
        &["-u", "alice", "-P", "s3cret", "-t", "p/t", "-m", "welcome"],
    )
    .await;
    assert_eq!(
        sub.line(Duration::from_secs(5)).await.as_deref(),
        Some("welcome")
    );
    assert_eq!(
        connack_code(addr, false, Some("alice"), Some("s3cret")).await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_wrong_password_gets_connack_4_on_311_and_0x86_on_5() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    run(
        "mosquitto_passwd",
        &["-c", "-b", &s(&file), "alice", "s3cret"],
    )
    .await;
    let app = start_with_password_file(&file).await;
    let addr = app.mqtt_addr().unwrap();
    assert_eq!(
        connack_code(addr, false, Some("alice"), Some("wrong")).await,
        4
    );
    assert_eq!(
        connack_code(addr, true, Some("alice"), Some("wrong")).await,
        0x86
    );
    assert_eq!(
        connack_code(addr, false, Some("nobody"), Some("s3cret")).await,
        4
    );
    let out = run(
        "mosquitto_pub",
        &[
            "-h",
            "127.0.0.1",
            "-p",
            &common::port(addr),
            "-u",
            "alice",
            "-P",
            "wrong",
            "-t",
            "t",
            "-m",
            "x",
        ],
    )
    .await;
    assert!(!out.status.success());
    app.stop().await;
}

#[tokio::test]
async fn missing_credentials_get_connack_5_on_311_and_0x87_on_5() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    run(
        "mosquitto_passwd",
        &["-c", "-b", &s(&file), "alice", "s3cret"],
    )
    .await;
    let app = start_with_password_file(&file).await;
    let addr = app.mqtt_addr().unwrap();
    assert_eq!(connack_code(addr, false, None, None).await, 5);
    assert_eq!(connack_code(addr, true, None, None).await, 0x87);
    app.stop().await;
}

#[tokio::test]
async fn the_older_sha512_form_from_mosquitto_passwd_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let out = run(
        "mosquitto_passwd",
        &["-H", "sha512", "-c", "-b", &s(&file), "bob", "hunter2"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .starts_with("bob:$6$")
    );
    let app = start_with_password_file(&file).await;
    let addr = app.mqtt_addr().unwrap();
    assert_eq!(
        connack_code(addr, false, Some("bob"), Some("hunter2")).await,
        0
    );
    assert_eq!(
        connack_code(addr, false, Some("bob"), Some("hunter3")).await,
        4
    );
    app.stop().await;
}

#[tokio::test]
async fn reload_picks_up_a_changed_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    run("mosquitto_passwd", &["-c", "-b", &s(&file), "alice", "old"]).await;
    let app = start_with_password_file(&file).await;
    let addr = app.mqtt_addr().unwrap();
    run("mosquitto_passwd", &["-b", &s(&file), "alice", "new"]).await;
    app.reload().expect("reload succeeds");
    assert_eq!(
        connack_code(addr, false, Some("alice"), Some("old")).await,
        4
    );
    assert_eq!(
        connack_code(addr, false, Some("alice"), Some("new")).await,
        0
    );
    // A broken file is reported and the previous one stays in force.
    std::fs::write(&file, "alice:plaintext\n").unwrap();
    assert!(app.reload().is_err());
    assert_eq!(
        connack_code(addr, false, Some("alice"), Some("new")).await,
        0
    );
    app.stop().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_file_from_sngate_passwd_is_accepted_by_mosquitto() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("passwd");
    let sngate = env!("CARGO_BIN_EXE_sngate");
    let out = run(sngate, &["passwd", "-c", "-b", &s(&file), "carol", "pa55"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = run(sngate, &["passwd", "-b", &s(&file), "dave", "other"]).await;
    assert!(out.status.success(), "{out:?}");

    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\npassword_file {}\nallow_anonymous false\n\
             persistence false\nuser root\nlog_dest stderr\n",
            s(&file)
        ),
    )
    .unwrap();
    common::require_tool("mosquitto");
    let mut broker = Command::new("mosquitto")
        .args(["-c", &s(&conf)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto runs");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "mosquitto did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = port.to_string();
    let base = ["-h", "127.0.0.1", "-p", p.as_str(), "-t", "t", "-m", "x"];
    let ok = run(
        "mosquitto_pub",
        &[&base[..], &["-u", "carol", "-P", "pa55"]].concat(),
    )
    .await;
    assert!(ok.status.success(), "{ok:?}");
    let ok = run(
        "mosquitto_pub",
        &[&base[..], &["-u", "dave", "-P", "other"]].concat(),
    )
    .await;
    assert!(ok.status.success(), "{ok:?}");
    let bad = run(
        "mosquitto_pub",
        &[&base[..], &["-u", "carol", "-P", "nope"]].concat(),
    )
    .await;
    assert!(!bad.status.success());
    let _ = broker.kill().await;
}
