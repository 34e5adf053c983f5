//! Benchmark (ignored by default): throughput of QoS 1 messages queued for a
//! persistent offline subscriber, and fsyncs per message, for sngate with
//! `sync = "always"` and `sync = "interval"`, side by side with Mosquitto
//! (`persistence true`, default `autosave_interval`). fsyncs are counted with
//! `strace -f --seccomp-bpf -c` for every broker alike.
//!
//! Run: `cargo test --release --test persistence_bench -- --ignored --nocapture`
//! (BENCH_MESSAGES, BENCH_PUBLISHERS, BENCH_WINDOW override the workload).

mod persistence_support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use persistence_support::{Mqtt, config, signal, write_config};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A broker under strace; `strace -c` writes its summary to `trace` on exit.
struct Traced {
    strace: Child,
}

impl Traced {
    fn start(trace: &Path, program: &str, args: &[&str]) -> Traced {
        let strace = Command::new("strace")
            .args([
                "-f",
                "--seccomp-bpf",
                "-c",
                "-e",
                "trace=fsync,fdatasync,sync_file_range,msync",
                "-o",
            ])
            .arg(trace)
            .arg(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strace is installed");
        Traced { strace }
    }

    fn stop(mut self) {
        // The traced broker is strace's child; SIGTERM it, strace then exits.
        let children =
            std::fs::read_to_string(format!("/proc/{0}/task/{0}/children", self.strace.id()))
                .unwrap_or_default();
        for pid in children.split_whitespace() {
            signal(pid.parse().unwrap(), "TERM");
        }
        self.strace.wait().unwrap();
    }
}

fn fsyncs(trace: &Path) -> u64 {
    let text = std::fs::read_to_string(trace).unwrap_or_default();
    text.lines()
        .filter(|l| {
            l.contains("fsync")
                || l.contains("fdatasync")
                || l.contains("sync_file_range")
                || l.contains("msync")
        })
        .filter_map(|l| l.split_whitespace().nth(3)?.parse::<u64>().ok())
        .sum()
}

fn wait_port(addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "broker on {addr} did not come up"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Publishes `messages` QoS 1 messages from `publishers` connections with up
/// to `window` unacknowledged each; returns the elapsed time.
fn load(addr: SocketAddr, messages: usize, publishers: usize, window: usize) -> Duration {
    let mut sub = Mqtt::connect(addr, "bench-sub", false, false, 0).unwrap();
    sub.subscribe("bench/#", 1).unwrap();
    sub.disconnect();
    let per = messages / publishers;
    let started = Instant::now();
    let threads: Vec<_> = (0..publishers)
        .map(|i| {
            std::thread::spawn(move || {
                let mut c = Mqtt::connect(addr, &format!("bench-pub-{i}"), false, true, 0).unwrap();
                let payload = [b'x'; 100];
                let (mut sent, mut acked) = (0usize, 0usize);
                while acked < per {
                    while sent < per && sent - acked < window {
                        let id = (sent % 65000) as u16 + 1;
                        c.publish(&format!("bench/{i}"), &payload, 1, id, false, false)
                            .unwrap();
                        sent += 1;
                    }
                    c.expect(4, Duration::from_secs(30)).unwrap();
                    acked += 1;
                }
                c.disconnect();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    started.elapsed()
}

fn report(name: &str, messages: usize, elapsed: Duration, fsyncs: u64) {
    println!(
        "{name:<32} {messages:>6} msgs  {:>8.0} msg/s  {:>6} fsyncs  {:>6.3} fsyncs/msg",
        messages as f64 / elapsed.as_secs_f64(),
        fsyncs,
        fsyncs as f64 / messages as f64
    );
}

fn bench_sngate(sync: &str, messages: usize, publishers: usize, window: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = config(&dir.path().join("store"), &format!("sync = \"{sync}\""), "")
        .replace(
            "127.0.0.1:0\"\n\n[gateway]",
            &format!("127.0.0.1:{port}\"\n\n[gateway]"),
        )
        .replace("level = \"info\"", "level = \"warn\"");
    let cfg = write_config(dir.path(), &text);
    let trace = dir.path().join("strace.txt");
    let b = Traced::start(
        &trace,
        env!("CARGO_BIN_EXE_sngate"),
        &["-c", cfg.to_str().unwrap()],
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_port(addr);
    let elapsed = load(addr, messages, publishers, window);
    b.stop();
    report(
        &format!("sngate sync={sync}"),
        messages,
        elapsed,
        fsyncs(&trace),
    );
}

fn bench_mosquitto(messages: usize, publishers: usize, window: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\nmax_queued_messages 1000000\nmax_inflight_messages 0\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let trace = dir.path().join("strace.txt");
    let b = Traced::start(&trace, "mosquitto", &["-c", conf.to_str().unwrap()]);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_port(addr);
    let elapsed = load(addr, messages, publishers, window);
    b.stop();
    report(
        "mosquitto persistence=true",
        messages,
        elapsed,
        fsyncs(&trace),
    );
}

#[test]
#[ignore = "benchmark: run by hand with --ignored --nocapture"]
fn persistent_qos1_throughput_and_fsyncs_per_message() {
    let messages = env("BENCH_MESSAGES", 4000);
    let publishers = env("BENCH_PUBLISHERS", 4);
    let window = env("BENCH_WINDOW", 32);
    println!(
        "{messages} QoS 1 messages of 100 bytes, {publishers} publishers, {window} in flight each, one persistent offline subscriber"
    );
    bench_sngate("always", messages, publishers, window);
    bench_sngate("interval", messages, publishers, window);
    bench_mosquitto(messages, publishers, window);
    // A single publisher waiting for each PUBACK: latency-bound.
    println!("-- one publisher, one message in flight --");
    bench_sngate("always", messages / 10, 1, 1);
    bench_sngate("interval", messages / 10, 1, 1);
    bench_mosquitto(messages / 10, 1, 1);
}
