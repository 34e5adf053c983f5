//! Held messages survive a crash of sngate: with `[persistence] enabled`,
//! QoS 1 messages sensors published (and saw acknowledged) while the
//! upstream was down are on disk; sngate is killed with SIGKILL, started
//! again, and delivers every one of them, in order, once the upstream is back.

mod bridge_support;
mod common;
mod persistence_support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use bridge_support::Mosquitto;
use common::Sub;
use persistence_support::{Gate, Sensor, write_config};

const N: usize = 20;
const SENSORS: [&str; 2] = ["c1", "c2"];

fn config(dir: &Path, mode: &str, upstream: SocketAddr) -> String {
    format!(
        r#"
[log]
level = "info"

[broker]
sys_interval = 0

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0
retry_interval = 1
mode = "{mode}"

[gateway.upstream]
addresses = ["{upstream}"]
client_id_prefix = "site-a/"
reconnect_min = 1
reconnect_max = 2
max_queued = 1000

[[gateway.udp]]
bind = "127.0.0.1:0"

[persistence]
enabled = true
path = "{}"
"#,
        dir.display()
    )
}

/// CONNECT (clean session 1), retrying while the gateway answers
/// "congestion" because its upstream connections are still coming up.
fn connect(s: &Sensor, id: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut d = vec![(6 + id.len()) as u8, 0x04, 0x04, 0x01];
        d.extend_from_slice(&60u16.to_be_bytes());
        d.extend_from_slice(id.as_bytes());
        s.send(&d);
        let ack = s.expect(0x05, Duration::from_secs(5));
        match ack[2] {
            0 => return,
            1 if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
            code => panic!("CONNACK {code}"),
        }
    }
}

async fn acknowledged_messages_survive_a_crash_of_sngate(mode: &str) {
    let dir = tempfile::tempdir().unwrap();
    let persist = format!(
        "persistence true\npersistence_location {}/\nautosave_interval 1\n",
        dir.path().display()
    );
    let mut up = Mosquitto::start_in(dir, &persist).await;
    let collector = ["-c", "-i", "collector", "-q", "1", "-t", "site-a/count/#"];
    Sub::start(up.addr, &[&collector[..], &["-E"]].concat())
        .await
        .wait_exit(Duration::from_secs(5))
        .await;
    let state = tempfile::tempdir().unwrap();
    let conf = write_config(state.path(), &config(state.path(), mode, up.addr));
    let gate = Gate::start(&conf, &[]);
    let mut sensors = Vec::new();
    for (i, name) in SENSORS.iter().enumerate() {
        let s = Sensor::new(gate.udp);
        connect(&s, name);
        let id = s.register(&format!("site-a/count/{name}"), 1 + i as u16);
        sensors.push((name, s, id));
    }
    up.stop().await;
    for n in 0..N {
        for (name, s, id) in &sensors {
            let code = s.publish_qos1(*id, 100 + n as u16, format!("{name}-{n}").as_bytes());
            assert_eq!(
                code, 0,
                "{name}-{n} acknowledged while the upstream is down"
            );
        }
    }
    gate.kill();
    let gate = Gate::start(&conf, &[]);
    up.restart().await;
    let mut sub = Sub::start(up.addr, &[&collector[..], &["-F", "%p"]].concat()).await;
    let got = sub.lines(SENSORS.len() * N, Duration::from_secs(20)).await;
    for name in SENSORS {
        let want: Vec<String> = (0..N).map(|n| format!("{name}-{n}")).collect();
        let mine: Vec<String> = got
            .iter()
            .filter(|l| l.starts_with(&format!("{name}-")))
            .cloned()
            .collect();
        assert_eq!(mine, want, "{name}: every acknowledged message, in order");
    }
    gate.stop();
}

#[tokio::test]
async fn transparent_acknowledged_messages_survive_a_crash_of_sngate() {
    acknowledged_messages_survive_a_crash_of_sngate("transparent").await;
}

#[tokio::test]
async fn aggregating_acknowledged_messages_survive_a_crash_of_sngate() {
    acknowledged_messages_survive_a_crash_of_sngate("aggregating").await;
}
