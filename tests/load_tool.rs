//! Smoke test of the load generator (`sngate-bench`): every scenario runs
//! briefly against sngate and prints its JSON line with the fields
//! `scripts/bench.sh` reads. It checks that the tool builds, talks to the
//! broker and counts correctly, never how fast anything is (performance is
//! measured by `scripts/bench.sh`, not by tests).

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

/// Bound on one run of the tool (its scenarios here last well under a second).
const WAIT: Duration = Duration::from_secs(60);

/// Runs `sngate-bench` with `args` and returns its JSON report.
async fn bench(args: &[&str]) -> Value {
    bench_all(args).await.remove(0)
}

/// Runs `sngate-bench` with `args` and returns every JSON report it prints.
async fn bench_all(args: &[&str]) -> Vec<Value> {
    let out = tokio::time::timeout(
        WAIT,
        Command::new(env!("CARGO_BIN_EXE_sngate-bench"))
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sngate-bench ends in time")
    .expect("sngate-bench runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "sngate-bench {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(!reports.is_empty(), "a JSON line in:\n{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("# ")).count(),
        reports.len(),
        "a human-readable line per report in:\n{stdout}"
    );
    reports
}

/// Runs `sngate-bench` with `args` against a fresh in-process sngate (its
/// MQTT and MQTT-SN ports, and this process as the broker whose CPU and RSS
/// are read) and returns its JSON report.
async fn bench_sngate(args: &[&str]) -> Value {
    let app = common::start().await;
    let port = |a: Option<SocketAddr>| a.map(|a| a.port().to_string()).unwrap_or_default();
    let (mqtt, sn) = (
        port(app.mqtt_addr()),
        port(app.gateway_udp.first().copied()),
    );
    let pid = std::process::id().to_string();
    let mut all = args.to_vec();
    all.extend(["--port", &mqtt, "--sn-port", &sn, "--broker-pid", &pid]);
    let report = bench(&all).await;
    app.stop().await;
    report
}

fn int(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("integer {key} in {v}"))
}

fn num(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("number {key} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanin_at_qos_1_delivers_every_acknowledged_message() {
    let r = bench_sngate(&["fanin", "--pubs", "3", "--qos", "1", "--duration", "0.3"]).await;
    assert_eq!(r["scenario"], "fanin");
    assert_eq!(int(&r, "pubs"), 3);
    assert!(int(&r, "acked") > 0, "{r}");
    assert_eq!(int(&r, "lost"), 0, "{r}");
    assert!(int(&r, "received") >= int(&r, "acked"), "{r}");
    assert!(num(&r, "delivered_per_s") > 0.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanin_at_qos_2_completes_the_four_packet_exchange() {
    let r = bench_sngate(&["fanin", "--pubs", "2", "--qos", "2", "--duration", "0.3"]).await;
    assert_eq!(int(&r, "qos"), 2);
    // `acked` counts PUBCOMPs: the publisher answered PUBREC with PUBREL.
    assert!(int(&r, "acked") > 0, "{r}");
    assert_eq!(int(&r, "lost"), 0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_each_message_to_every_subscriber() {
    let r = bench_sngate(&["fanout", "--subs", "3", "--qos", "1", "--duration", "0.3"]).await;
    assert_eq!(int(&r, "subs"), 3);
    assert!(int(&r, "acked") > 0, "{r}");
    assert!(int(&r, "received") >= 3 * int(&r, "acked"), "{r}");
    assert_eq!(int(&r, "lost"), 0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_reports_ordered_percentiles() {
    let r = bench_sngate(&["latency", "--rate", "200", "--duration", "0.5"]).await;
    let (p50, p99, max) = (num(&r, "p50_us"), num(&r, "p99_us"), num(&r, "max_us"));
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{r}");
    assert_eq!(int(&r, "lost"), 0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paired_latency_reports_each_broker_of_one_run() {
    let (first, second) = (common::start().await, common::start().await);
    let port = |app: &sngate::app::Sngate| app.mqtt_addr().map(|a| a.port().to_string());
    let (p1, p2) = (port(&first).unwrap(), port(&second).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let samples = dir.path().join("samples.csv");
    let reports = bench_all(&[
        "--samples-out",
        samples.to_str().unwrap(),
        "latency",
        "--qos",
        "1",
        "--rate",
        "200",
        "--duration",
        "0.5",
        "--port",
        &p1,
        "--target",
        "one",
        "--paired-port",
        &p2,
        "--paired-target",
        "two",
    ])
    .await;
    first.stop().await;
    second.stop().await;
    assert_eq!(reports.len(), 2, "{reports:?}");
    for (slot, (r, name)) in reports.iter().zip(["one", "two"]).enumerate() {
        assert_eq!(r["target"], name, "{r}");
        assert_eq!(int(r, "slot"), slot as u64, "{r}");
        assert!(int(r, "sent") >= 50, "{r}");
        assert_eq!(int(r, "received"), int(r, "sent"), "{r}");
        assert_eq!(int(r, "lost"), 0, "{r}");
        let (p50, p99, max) = (num(r, "p50_us"), num(r, "p99_us"), num(r, "max_us"));
        assert!(p50 > 0.0 && p50 <= p99 && p99 <= max, "{r}");
        // One sample line per delivery, the largest being the report's max.
        let text = std::fs::read_to_string(&samples).unwrap();
        let mine: Vec<f64> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&format!("{name},")))
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(mine.len() as u64, int(r, "samples"), "{r}");
        let top = mine.iter().copied().fold(0.0, f64::max);
        assert!((top - max).abs() < 1.0, "max {max} against samples' {top}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_2_is_refused_where_the_scenario_has_no_exchange_for_it() {
    let out = Command::new(env!("CARGO_BIN_EXE_sngate-bench"))
        .args(["latency", "--qos", "2", "--port", "1"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--qos 2 is for fanin and fanout"));
}

// sngate runs inside this test process: the RSS read is this process's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conns_opens_every_connection_and_reads_the_broker_rss() {
    let r = bench_sngate(&["conns", "--connections", "20"]).await;
    assert_eq!(int(&r, "connections"), 20, "{r}");
    assert!(num(&r, "connects_per_s") > 0.0, "{r}");
    assert!(num(&r, "rss_before_kib") > 0.0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sn_sensors_reach_the_mqtt_subscriber_without_loss() {
    let r = bench_sngate(&[
        "sn",
        "--sensors",
        "3",
        "--rate",
        "60",
        "--qos",
        "1",
        "--duration",
        "0.5",
    ])
    .await;
    assert_eq!(r["scenario"], "sn");
    assert!(int(&r, "pubacks") > 0, "{r}");
    assert!(int(&r, "delivered") >= int(&r, "pubacks"), "{r}");
    assert_eq!(int(&r, "lost"), 0, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_starts_the_broker_command_and_times_its_first_connack() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mqtt_port = free.local_addr().unwrap().port();
    drop(free);
    let config = dir.path().join("sngate.toml");
    std::fs::write(
        &config,
        format!(
            "[log]\nlevel = \"warn\"\n[gateway]\nenabled = false\n\
             [[listener]]\nprotocol = \"mqtt\"\nbind = \"127.0.0.1:{mqtt_port}\"\n"
        ),
    )
    .unwrap();
    let r = bench(&[
        "ready",
        "--port",
        &mqtt_port.to_string(),
        "--",
        env!("CARGO_BIN_EXE_sngate"),
        "-c",
        &config.display().to_string(),
    ])
    .await;
    assert!(num(&r, "ready_ms") > 0.0, "{r}");
    assert!(num(&r, "idle_rss_kib") > 0.0, "{r}");
}
