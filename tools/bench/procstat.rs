//! CPU and memory of a process, read from /proc (Linux only).

use std::time::Instant;

/// Kernel clock ticks per second for /proc/*/stat times; USER_HZ is 100 on
/// every mainstream Linux build and is not configurable from user space.
const TICKS_PER_SEC: f64 = 100.0;

/// utime + stime of `/proc/<pid>/stat`, in ticks.
fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces or ')', so fields are counted after the last ')'.
    let rest = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// VmRSS of `/proc/<pid>/status`, in KiB.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A CPU-time sample of this process and of the broker processes, if given.
#[derive(Debug, Clone)]
pub struct CpuSample {
    at: Instant,
    own: Option<u64>,
    broker: Option<u64>,
}

/// Samples and diffs CPU use of the load tool and the broker (one or more pids,
/// summed: e.g. an MQTT-SN gateway plus the broker behind it).
#[derive(Debug, Clone, Default)]
pub struct CpuMeter {
    broker_pids: Vec<String>,
}

/// CPU use over an interval, in percent of one core.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuUse {
    /// The load tool's own CPU, percent of one core.
    pub own_pct: f64,
    /// The broker's CPU (all given pids summed), percent of one core; None without pids.
    pub broker_pct: Option<f64>,
    /// Broker CPU seconds used in the interval.
    pub broker_secs: Option<f64>,
}

impl CpuMeter {
    /// A meter for the given comma-separated pid list (may be empty).
    pub fn new(broker_pids: &str) -> CpuMeter {
        CpuMeter {
            broker_pids: broker_pids
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Sum of the brokers' RSS in KiB.
    pub fn broker_rss_kib(&self) -> Option<u64> {
        if self.broker_pids.is_empty() {
            return None;
        }
        self.broker_pids.iter().map(|p| rss_kib(p)).sum()
    }

    /// Takes a sample now.
    pub fn sample(&self) -> CpuSample {
        let broker = if self.broker_pids.is_empty() {
            None
        } else {
            self.broker_pids.iter().map(|p| cpu_ticks(p)).sum()
        };
        CpuSample {
            at: Instant::now(),
            own: cpu_ticks("self"),
            broker,
        }
    }

    /// CPU use between two samples.
    pub fn diff(&self, a: &CpuSample, b: &CpuSample) -> CpuUse {
        let wall = b.at.duration_since(a.at).as_secs_f64().max(1e-9);
        let secs = |x: Option<u64>, y: Option<u64>| match (x, y) {
            (Some(x), Some(y)) => Some(y.saturating_sub(x) as f64 / TICKS_PER_SEC),
            _ => None,
        };
        let own = secs(a.own, b.own).unwrap_or(0.0);
        let broker = secs(a.broker, b.broker);
        CpuUse {
            own_pct: own / wall * 100.0,
            broker_pct: broker.map(|s| s / wall * 100.0),
            broker_secs: broker,
        }
    }
}

/// Measures CPU use between `start` and `deadline` (the load phase only, so
/// that draining and grace periods do not dilute the figure).
pub fn spawn_window(
    meter: CpuMeter,
    start: tokio::time::Instant,
    deadline: tokio::time::Instant,
) -> tokio::task::JoinHandle<CpuUse> {
    tokio::spawn(async move {
        tokio::time::sleep_until(start).await;
        let a = meter.sample();
        tokio::time::sleep_until(deadline).await;
        meter.diff(&a, &meter.sample())
    })
}

/// The kernel's count of UDP datagrams dropped because a socket's receive
/// buffer was full (`RcvbufErrors` in /proc/net/snmp), machine-wide.
pub fn udp_rcvbuf_errors() -> Option<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp").ok()?;
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let i = names.iter().position(|n| *n == "RcvbufErrors")?;
    values.get(i)?.parse().ok()
}
