//! SIGHUP with the real binary: the config file is re-read, checked as
//! `sngate check-config` checks it, and what can change at run time changes
//! while MQTT clients, MQTT-SN sensors and unchanged bridges stay connected.

mod bridge_support;
mod common;
mod dtls_support;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bridge_support::{Mosquitto, bridge_config, wait_state};
use common::{Sub, mosquitto_pub};
use dtls_support::{DtlsSensor, KEY1};
use sn_sensor::SnSensor;
use sngate::mqttsn::codec::{ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(10);

/// The config every test starts from: loopback, port 0 everywhere.
const BASE: &str = r#"
[log]
level = "info"

[broker]
sys_interval = 0

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0

[[gateway.udp]]
bind = "127.0.0.1:0"
"#;

/// A running `sngate -c FILE` whose log lines are collected.
struct Running {
    child: Child,
    config: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    mqtt: SocketAddr,
    udp: SocketAddr,
    /// Holds the config (and PSK) files while sngate runs.
    _dir: tempfile::TempDir,
}

impl Running {
    /// Starts sngate with `text` as its config file.
    async fn start(text: &str) -> Running {
        Running::start_in(tempfile::tempdir().unwrap(), text).await
    }

    /// As [`Running::start`], with files the test already put in `dir`.
    async fn start_in(dir: tempfile::TempDir, text: &str) -> Running {
        let config = dir.path().join("sngate.toml");
        std::fs::write(&config, text).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sngate"))
            .arg("-c")
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("sngate runs");
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                sink.lock().unwrap().push(line);
            }
        });
        let mut r = Running {
            child,
            config,
            log,
            mqtt: SocketAddr::from(([127, 0, 0, 1], 0)),
            udp: SocketAddr::from(([127, 0, 0, 1], 0)),
            _dir: dir,
        };
        let line = r.wait_line(0, &["Opening mqtt listen socket on"]).await;
        r.mqtt = addr_after(&line, "socket on ");
        let line = r.wait_line(0, &["MQTT-SN gateway listening (UDP)"]).await;
        r.udp = addr_after(&line, "addr=");
        r
    }

    /// The first DTLS socket's address.
    async fn dtls_addr(&self) -> SocketAddr {
        let line = self
            .wait_line(0, &["MQTT-SN gateway listening (DTLS)"])
            .await;
        addr_after(&line, "addr=")
    }

    /// How many log lines there are so far: later waits look after this mark.
    fn mark(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The first line after `from` containing every part, if any yet.
    fn find(&self, from: usize, parts: &[&str]) -> Option<String> {
        let log = self.log.lock().unwrap();
        log.iter()
            .skip(from)
            .find(|l| parts.iter().all(|p| l.contains(p)))
            .cloned()
    }

    /// Waits (bounded) for a line after `from` containing every part.
    async fn wait_line(&self, from: usize, parts: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(l) = self.find(from, parts) {
                return l;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {parts:?}; log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Writes `text` as the config file, sends SIGHUP and waits for the
    /// reload's outcome line ("Reloaded" or "Reload refused"); returns it.
    async fn reload(&self, text: &str) -> String {
        std::fs::write(&self.config, text).unwrap();
        let mark = self.mark();
        let pid = self.child.id().unwrap().to_string();
        let status = Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success());
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(l) = self
                .find(mark, &["Reloaded "])
                .or_else(|| self.find(mark, &["Reload refused"]))
            {
                return l;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no reload outcome; log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The config file's path as sngate names it.
    fn config_name(&self) -> String {
        self.config.display().to_string()
    }
}

/// The `host:port` right after `marker` in a log line.
fn addr_after(line: &str, marker: &str) -> SocketAddr {
    let at = line.find(marker).unwrap() + marker.len();
    let token: String = line[at..]
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
        .collect();
    token.trim_end_matches('.').parse().unwrap()
}

/// A subscriber on sngate that must keep receiving across reloads.
async fn subscriber(sngate: SocketAddr, topic: &str) -> Sub {
    Sub::start(sngate, &["-t", topic, "-q", "1", "-i", "survivor"]).await
}

/// Publishes `payload` on `topic` and checks the long-lived subscriber gets it.
async fn still_receives(sngate: SocketAddr, sub: &mut Sub, topic: &str, payload: &str) {
    mosquitto_pub(sngate, &["-t", topic, "-q", "1", "-m", payload]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some(payload));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_config_is_refused_naming_file_line_and_key_and_the_old_one_keeps_serving() {
    let sngate = Running::start(BASE).await;
    let mut sub = subscriber(sngate.mqtt, "t/#").await;
    let broken = format!("{BASE}\n[auth]\nallow_anonymus = true\n");
    let outcome = sngate.reload(&broken).await;
    let line = broken.lines().count();
    let expected = format!("{}:{line}:1: auth.allow_anonymus", sngate.config_name());
    assert!(
        outcome.contains("Reload refused") && outcome.contains(&expected),
        "{outcome}"
    );
    still_receives(sngate.mqtt, &mut sub, "t/1", "after-refusal").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_log_level_takes_effect_without_a_restart() {
    let sngate = Running::start(BASE).await;
    let mut sub = subscriber(sngate.mqtt, "t/#").await;
    // At info, a finished MQTT connection writes no debug line.
    let mark = sngate.mark();
    still_receives(sngate.mqtt, &mut sub, "t/1", "quiet").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sngate.find(mark, &["connection task ends"]), None);

    let outcome = sngate.reload(&BASE.replace("\"info\"", "\"debug\"")).await;
    assert!(outcome.contains("log level debug"), "{outcome}");
    let mark = sngate.mark();
    still_receives(sngate.mqtt, &mut sub, "t/1", "loud").await;
    sngate
        .wait_line(mark, &["DEBUG", "connection task ends"])
        .await;

    sngate.reload(BASE).await;
    let mark = sngate.mark();
    still_receives(sngate.mqtt, &mut sub, "t/1", "quiet-again").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sngate.find(mark, &["connection task ends"]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_the_log_down_still_reports_the_reload_and_then_hides_info_lines() {
    let sngate = Running::start(BASE).await;
    let outcome = sngate.reload(&BASE.replace("\"info\"", "\"warn\"")).await;
    assert!(outcome.contains("log level warn"), "{outcome}");
    // At warn the next reload's warnings show, its summary (info) does not.
    let quiet = BASE.replace("\"info\"", "\"warn\"");
    std::fs::write(
        &sngate.config,
        quiet.replacen("127.0.0.1:0", "127.0.0.2:0", 1),
    )
    .unwrap();
    let mark = sngate.mark();
    let pid = sngate.child.id().unwrap().to_string();
    Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .await
        .unwrap();
    sngate.wait_line(mark, &["WARN", "needs a restart"]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sngate.find(mark, &["Reloaded "]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_predefined_topic_id_works_for_a_sensor_connected_before_the_reload() {
    let sngate = Running::start(BASE).await;
    let mut sub = subscriber(sngate.mqtt, "pre/#").await;
    let mut sensor = SnSensor::new(sngate.udp).await;
    assert_eq!(sensor.connect("s1", 60, true).await, ReturnCode::Accepted);
    let q1 = SnQos::Level(QoS::AtLeastOnce);
    let unknown = sensor
        .publish(q1, TopicRef::Predefined(42), false, b"early")
        .await;
    assert_eq!(unknown, Some(ReturnCode::InvalidTopicId));

    let with_42 = format!("{BASE}\n[[gateway.predefined]]\ntopic_id = 42\ntopic = \"pre/42\"\n");
    let outcome = sngate.reload(&with_42).await;
    assert!(outcome.contains("predefined topics (1)"), "{outcome}");
    let code = sensor
        .publish(q1, TopicRef::Predefined(42), false, b"known")
        .await;
    assert_eq!(code, Some(ReturnCode::Accepted));
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("known"));
    // A sensor connecting after the reload gets the new table too.
    let mut late = SnSensor::new(sngate.udp).await;
    assert_eq!(late.connect("s2", 60, true).await, ReturnCode::Accepted);
    let code = late
        .publish(q1, TopicRef::Predefined(42), false, b"late")
        .await;
    assert_eq!(code, Some(ReturnCode::Accepted));
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("late"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_listener_address_is_logged_as_needing_a_restart_and_left_running() {
    let sngate = Running::start(BASE).await;
    let mut sub = subscriber(sngate.mqtt, "t/#").await;
    let moved = BASE.replacen("bind = \"127.0.0.1:0\"", "bind = \"127.0.0.2:0\"", 1);
    let mark = sngate.mark();
    let outcome = sngate.reload(&moved).await;
    assert!(
        outcome.contains("needs a restart: listener[0].bind"),
        "{outcome}"
    );
    sngate
        .wait_line(mark, &["listener[0].bind changed; it needs a restart"])
        .await;
    still_receives(sngate.mqtt, &mut sub, "t/1", "same-listener").await;
}

/// Writes a password file with one user, through `sngate passwd`.
async fn password_file(path: &std::path::Path, user: &str, password: &str) {
    let status = Command::new(env!("CARGO_BIN_EXE_sngate"))
        .args(["passwd", "-c", "-b"])
        .arg(path)
        .args([user, password])
        .status()
        .await
        .unwrap();
    assert!(status.success());
}

/// Whether `mosquitto_pub` as `user` is accepted.
async fn publishes_as(sngate: SocketAddr, user: &str, password: &str) -> bool {
    let status = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &sngate.port().to_string()])
        .args(["-u", user, "-P", password, "-t", "t/auth", "-m", user])
        .kill_on_drop(true)
        .status();
    tokio::time::timeout(WAIT, status)
        .await
        .unwrap()
        .unwrap()
        .success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_password_file_path_applies_to_new_connections_and_connected_clients_stay() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (dir.path().join("old.passwd"), dir.path().join("new.passwd"));
    password_file(&old, "ann", "pw-a").await;
    password_file(&new, "bob", "pw-b").await;
    let auth = |file: &std::path::Path| {
        format!(
            "{BASE}
[auth]
password_file = \"{}\"
",
            file.display()
        )
    };
    let sngate = Running::start_in(dir, &auth(&old)).await;
    let mut sub = Sub::start(sngate.mqtt, &["-t", "t/#", "-u", "ann", "-P", "pw-a"]).await;
    assert!(publishes_as(sngate.mqtt, "ann", "pw-a").await);
    assert!(!publishes_as(sngate.mqtt, "bob", "pw-b").await);

    let outcome = sngate.reload(&auth(&new)).await;
    assert!(outcome.contains("[auth] settings and files"), "{outcome}");
    assert!(publishes_as(sngate.mqtt, "bob", "pw-b").await);
    assert!(!publishes_as(sngate.mqtt, "ann", "pw-a").await);
    // ann's subscriber, connected under the old file, is still served.
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("ann"));
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("bob"));
}

/// Lines of Mosquitto's log file that record `client_id` connecting ("New
/// bridge connected" or "New client connected").
fn connects_of(upstream: &Mosquitto, client_id: &str) -> usize {
    let log = std::fs::read_to_string(upstream.path().join("mosquitto.log")).unwrap_or_default();
    log.lines()
        .filter(|l| l.contains(" connected from ") && l.contains(&format!(" as {client_id} ")))
        .count()
}

async fn mosquitto_with_log() -> Mosquitto {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "log_dest file {}\nlog_type all\n",
        dir.path().join("mosquitto.log").display()
    );
    Mosquitto::start_in(dir, &extra).await
}

fn out_bridge(name: &str, upstream: SocketAddr, prefix: &str) -> String {
    bridge_config(
        name,
        upstream,
        4,
        &format!("[[bridge.topics]]\npattern = \"{prefix}/#\"\ndirection = \"out\"\nqos = 1\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_bridge_starts_forwarding_and_a_removed_bridge_stops() {
    let upstream = mosquitto_with_log().await;
    let sngate = Running::start(BASE).await;
    let mut sub = subscriber(sngate.mqtt, "t/#").await;

    let with_bridge = format!("{BASE}\n{}", out_bridge("b1", upstream.addr, "up"));
    let outcome = sngate.reload(&with_bridge).await;
    assert!(outcome.contains("bridges: 1 started"), "{outcome}");
    wait_state(sngate.mqtt, "b1", "1", WAIT).await;
    let mut remote = Sub::start(upstream.addr, &["-t", "up/#", "-q", "1"]).await;
    mosquitto_pub(sngate.mqtt, &["-t", "up/x", "-q", "1", "-m", "forwarded"]).await;
    assert_eq!(remote.line(WAIT).await.as_deref(), Some("forwarded"));

    let outcome = sngate.reload(BASE).await;
    assert!(outcome.contains("1 stopped"), "{outcome}");
    wait_state(sngate.mqtt, "b1", "0", WAIT).await;
    mosquitto_pub(sngate.mqtt, &["-t", "up/x", "-q", "1", "-m", "kept-home"]).await;
    assert_eq!(remote.line(Duration::from_secs(2)).await, None);
    // A clean DISCONNECT, not a dropped link.
    let log = std::fs::read_to_string(upstream.path().join("mosquitto.log")).unwrap();
    assert!(
        log.contains("Client sngate-bridge-b1 disconnected."),
        "{log}"
    );
    still_receives(sngate.mqtt, &mut sub, "t/1", "after-bridges").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_bridge_keeps_its_connection_while_others_change() {
    let upstream = mosquitto_with_log().await;
    let two = format!(
        "{BASE}\n{}\n{}",
        out_bridge("keep", upstream.addr, "k"),
        out_bridge("drop", upstream.addr, "d")
    );
    let sngate = Running::start(&two).await;
    wait_state(sngate.mqtt, "keep", "1", WAIT).await;
    wait_state(sngate.mqtt, "drop", "1", WAIT).await;
    assert_eq!(connects_of(&upstream, "sngate-bridge-keep"), 1);

    // "drop" goes, "new" comes, the log level changes: "keep" is not touched.
    let changed = format!(
        "{}\n{}\n{}",
        BASE.replace("\"info\"", "\"debug\""),
        out_bridge("keep", upstream.addr, "k"),
        out_bridge("new", upstream.addr, "n")
    );
    let outcome = sngate.reload(&changed).await;
    assert!(
        outcome.contains("1 started, 1 stopped, 0 restarted, 1 unchanged"),
        "{outcome}"
    );
    wait_state(sngate.mqtt, "new", "1", WAIT).await;
    wait_state(sngate.mqtt, "drop", "0", WAIT).await;
    assert_eq!(connects_of(&upstream, "sngate-bridge-keep"), 1);
    let mut remote = Sub::start(upstream.addr, &["-t", "k/#", "-q", "1"]).await;
    mosquitto_pub(
        sngate.mqtt,
        &["-t", "k/x", "-q", "1", "-m", "still-bridged"],
    )
    .await;
    assert_eq!(remote.line(WAIT).await.as_deref(), Some("still-bridged"));
    assert_eq!(connects_of(&upstream, "sngate-bridge-keep"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_bridge_restarts_with_its_new_settings() {
    let upstream = mosquitto_with_log().await;
    let sngate = Running::start(&format!("{BASE}\n{}", out_bridge("b", upstream.addr, "a"))).await;
    wait_state(sngate.mqtt, "b", "1", WAIT).await;
    let outcome = sngate
        .reload(&format!("{BASE}\n{}", out_bridge("b", upstream.addr, "z")))
        .await;
    assert!(outcome.contains("1 restarted"), "{outcome}");
    wait_state(sngate.mqtt, "b", "1", WAIT).await;
    assert_eq!(connects_of(&upstream, "sngate-bridge-b"), 2);
    let mut remote = Sub::start(upstream.addr, &["-t", "#", "-q", "1"]).await;
    mosquitto_pub(sngate.mqtt, &["-t", "a/x", "-q", "1", "-m", "old-rule"]).await;
    mosquitto_pub(sngate.mqtt, &["-t", "z/x", "-q", "1", "-m", "new-rule"]).await;
    assert_eq!(remote.line(WAIT).await.as_deref(), Some("new-rule"));
}

const KEY3: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_psk_identity_can_handshake_after_a_reload_and_established_sessions_stay() {
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("psk.txt");
    std::fs::write(&psk, format!("dev1:{KEY1}:sensor-1\n")).unwrap();
    let text = format!(
        "{BASE}\n[[gateway.dtls]]\nbind = \"127.0.0.1:0\"\npsk_file = \"{}\"\n",
        psk.display()
    );
    let sngate = Running::start_in(dir, &text).await;
    let gw = sngate.dtls_addr().await;
    let mut sub = subscriber(sngate.mqtt, "#").await;
    let mut dev1 = DtlsSensor::connect(gw, "dev1", KEY1).await.unwrap();
    assert_eq!(
        dev1.mqtt_connect("sensor-1", true).await,
        ReturnCode::Accepted
    );

    std::fs::write(&psk, format!("dev3:{KEY3}:sensor-3\n")).unwrap();
    let outcome = sngate.reload(&text).await;
    assert!(
        outcome.contains("PSK files (1 DTLS listener(s), 1 identities)"),
        "{outcome}"
    );
    let mut dev3 = DtlsSensor::connect(gw, "dev3", KEY3)
        .await
        .expect("the new identity handshakes");
    assert_eq!(
        dev3.mqtt_connect("sensor-3", true).await,
        ReturnCode::Accepted
    );
    assert_eq!(
        dev3.publish_q1(*b"d3", b"from-dev3").await,
        ReturnCode::Accepted
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("from-dev3"));
    // dev1 left the file, but its established session stays until it ends.
    assert_eq!(
        dev1.publish_q1(*b"d1", b"from-dev1").await,
        ReturnCode::Accepted
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("from-dev1"));
    assert!(DtlsSensor::connect(gw, "dev1", KEY1).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_psk_file_on_reload_is_reported_and_the_old_keys_stay() {
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("psk.txt");
    std::fs::write(&psk, format!("dev1:{KEY1}:sensor-1\n")).unwrap();
    let text = format!(
        "{BASE}\n[[gateway.dtls]]\nbind = \"127.0.0.1:0\"\npsk_file = \"{}\"\n",
        psk.display()
    );
    let sngate = Running::start_in(dir, &text).await;
    let gw = sngate.dtls_addr().await;
    std::fs::write(&psk, "dev1:not-hex\n").unwrap();
    let mark = sngate.mark();
    let outcome = sngate.reload(&text).await;
    assert!(outcome.contains("failed: 1"), "{outcome}");
    sngate
        .wait_line(mark, &["WARN", "gateway.dtls[0]", "line 1"])
        .await;
    let mut dev1 = DtlsSensor::connect(gw, "dev1", KEY1)
        .await
        .expect("the old key still works");
    assert_eq!(
        dev1.mqtt_connect("sensor-1", true).await,
        ReturnCode::Accepted
    );
}
