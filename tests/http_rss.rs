//! Memory of a running sngate binary, idle and with 1,000 connected MQTT-SN
//! sensors, read from /proc/PID/status (VmRSS) and cross-checked with
//! `/metrics`. A measurement for docs/operations.md, so ignored by default:
//! `cargo test --test http_rss -- --ignored --nocapture`.

mod http_support;

use std::process::Stdio;
use std::time::Duration;

use http_support::{Sensor, eventually, get_json, scrape, value};

const SENSORS: usize = 1000;

fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn resident_memory_idle_and_with_a_thousand_sensors() {
    let (mqtt, sn, http) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sngate.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"warn\"\n[[listener]]\nprotocol = \"mqtt\"\nbind = \"127.0.0.1:{mqtt}\"\n\
             [gateway]\n[[gateway.udp]]\nbind = \"127.0.0.1:{sn}\"\n[http]\nbind = \"127.0.0.1:{http}\"\n"
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_sngate"))
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let http_addr = format!("127.0.0.1:{http}").parse().unwrap();
    let gw = format!("127.0.0.1:{sn}").parse().unwrap();
    eventually(Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(http_addr).await.ok()
    })
    .await
    .expect("sngate listens");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = vm_rss_kib(pid);

    let mut sensors = Vec::with_capacity(SENSORS);
    for i in 0..SENSORS {
        let mut s = Sensor::new(gw).await;
        s.connect(&format!("sensor-{i:04}"), 600).await;
        let id = s.register(&format!("site/sensor-{i:04}/value")).await;
        s.publish_qos1(id, b"1").await;
        sensors.push(s);
    }
    let status = eventually(Duration::from_secs(10), || async {
        let st = get_json(http_addr, "/api/status").await;
        (st["gateway"]["sensors_by_state"]["active"] == SENSORS).then_some(st)
    })
    .await
    .expect("all sensors active");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = vm_rss_kib(pid);
    let metrics = scrape(http_addr).await;
    let reported = value(&metrics, "sngate_process_resident_memory_bytes", &[]).unwrap();
    println!(
        "sngate RSS: idle {idle} KiB; with {SENSORS} sensors {loaded} KiB \
         ({:.1} KiB per sensor); /metrics says {:.0} KiB; /api/status rss_bytes {}",
        (loaded.saturating_sub(idle)) as f64 / SENSORS as f64,
        reported / 1024.0,
        status["rss_bytes"]
    );
    assert!((reported / 1024.0 - loaded as f64).abs() < 4096.0);
    assert!(loaded < 128 * 1024, "under 128 MiB with {SENSORS} sensors");
    child.kill().await.unwrap();
}
