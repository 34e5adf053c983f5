//! sngate-bench: a load generator for MQTT brokers and MQTT-SN gateways.
//!
//! Every scenario prints one JSON line and one human-readable line (starting
//! with `#`). The tool runs on a single-threaded runtime so that, pinned to one
//! core, it measures the broker rather than scheduler overhead; it reports its
//! own CPU use next to the broker's (`--broker-pid`, read from /proc).

mod conns;
mod fanin;
mod fanout;
mod flood;
mod latency;
mod mqtt;
mod payload;
mod procstat;
mod report;
mod setup;
mod sn;
mod stats;

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

/// Which scenario to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// P publishers → 1 wildcard subscriber.
    Fanin,
    /// 1 publisher → S subscribers on one topic.
    Fanout,
    /// Fixed-rate publisher → 1 subscriber; latency percentiles.
    Latency,
    /// N idle connections; connection rate and broker RSS per connection.
    Conns,
    /// MQTT-SN sensors over UDP → MQTT subscriber.
    Sn,
    /// Start the broker command given after `--` and time until it accepts.
    Ready,
}

/// Command-line options.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "sngate-bench",
    about = "Load generator for MQTT / MQTT-SN brokers"
)]
pub struct Opts {
    /// Scenario to run.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Broker host (MQTT and MQTT-SN).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// MQTT TCP port.
    #[arg(long, default_value_t = 1883)]
    pub port: u16,
    /// MQTT-SN UDP port of the gateway.
    #[arg(long, default_value_t = 1884)]
    pub sn_port: u16,
    /// Publishers (fanin).
    #[arg(long, default_value_t = 100)]
    pub pubs: usize,
    /// Subscribers (fanout).
    #[arg(long, default_value_t = 100)]
    pub subs: usize,
    /// QoS of publications and subscriptions (0 or 1; fanin and fanout also 2).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    pub qos: u8,
    /// Messages per second (latency, sn; the starting rate with --find-capacity).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of load per run (per step with --find-capacity).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Payload bytes (at least 20: source, sequence number and send time).
    #[arg(long = "payload", default_value_t = 64, value_parser = clap::value_parser!(u16).range(20..))]
    payload_arg: u16,
    /// Unacknowledged QoS 1 messages per publisher (fanin, fanout).
    #[arg(long, default_value_t = 20)]
    pub inflight: usize,
    /// Idle connections (conns).
    #[arg(long, default_value_t = 10_000)]
    pub connections: usize,
    /// conns: open TCP connections without sending CONNECT (isolates the
    /// per-socket cost from the per-session cost).
    #[arg(long)]
    pub tcp_only: bool,
    /// MQTT-SN sensors (sn).
    #[arg(long, default_value_t = 100)]
    pub sensors: usize,
    /// sn: raise the rate ×1.5 per step until loss appears.
    #[arg(long)]
    pub find_capacity: bool,
    /// Broker pid(s), comma-separated, whose CPU and RSS are reported (summed).
    #[arg(long, default_value = "")]
    pub broker_pid: String,
    /// Label for the target in the output.
    #[arg(long, default_value = "broker")]
    pub target: String,
    /// latency: a second broker's MQTT port, measured in the same run; its
    /// messages go out half a period after the first broker's, so both see the
    /// same moments of the machine.
    #[arg(long)]
    pub paired_port: Option<u16>,
    /// Label for the second broker (`--paired-port`).
    #[arg(long, default_value = "paired")]
    pub paired_target: String,
    /// Pid(s) of the second broker (`--paired-port`), for its CPU use.
    #[arg(long, default_value = "")]
    pub paired_pid: String,
    /// latency: write every transit time, in arrival order, to this file
    /// (CSV: target, arrival index, microseconds), to look at the tail's shape.
    #[arg(long)]
    pub samples_out: Option<std::path::PathBuf>,
    /// For `ready`: the broker command line.
    #[arg(last = true)]
    pub command: Vec<String>,
    /// Payload bytes, copied from `payload_arg`.
    #[arg(skip)]
    pub payload: usize,
}

impl Opts {
    /// The MQTT address.
    pub fn addr(&self) -> Result<SocketAddr> {
        format!("{}:{}", self.host, self.port)
            .parse()
            .context("--host/--port")
    }

    /// The second broker's MQTT address, when `--paired-port` is given.
    pub fn paired_addr(&self) -> Result<Option<SocketAddr>> {
        self.paired_port
            .map(|port| {
                format!("{}:{port}", self.host)
                    .parse()
                    .context("--host/--paired-port")
            })
            .transpose()
    }
}

fn main() -> Result<()> {
    let mut o = Opts::parse();
    o.payload = usize::from(o.payload_arg);
    payload::now_ns();
    if o.qos == 2 && !matches!(o.scenario, Scenario::Fanin | Scenario::Fanout) {
        anyhow::bail!("--qos 2 is for fanin and fanout");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match o.scenario {
            Scenario::Fanin => fanin::run(&o).await,
            Scenario::Fanout => fanout::run(&o).await,
            Scenario::Latency => latency::run(&o).await,
            Scenario::Conns => conns::run(&o).await,
            Scenario::Sn => sn::run(&o).await,
            Scenario::Ready => conns::ready(&o, &o.command).await,
        }
    })
}
