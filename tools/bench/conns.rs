//! conns: N idle connections; connection rate and the broker's RSS per connection.
//! ready: how soon a freshly started broker accepts an MQTT session, and its idle RSS.

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use tokio::time::{Duration, Instant, sleep};

use crate::Opts;
use crate::mqtt::Client;
use crate::procstat::{CpuMeter, rss_kib};
use crate::report::Report;
use crate::setup::{connect_many, run_tag};

/// Runs the conns scenario and prints its report.
pub async fn run(o: &Opts) -> Result<()> {
    let tag = run_tag();
    let meter = CpuMeter::new(&o.broker_pid);
    let rss0 = meter.broker_rss_kib();
    let cpu0 = meter.sample();
    let t0 = Instant::now();
    let (clients, sockets) = if o.tcp_only {
        (Vec::new(), tcp_many(o.addr()?, o.connections).await?)
    } else {
        let c = connect_many(o.addr()?, &format!("idle-{tag}"), o.connections, 0).await?;
        (c, Vec::new())
    };
    let setup = t0.elapsed().as_secs_f64();
    let cpu = meter.diff(&cpu0, &meter.sample());
    // Let the broker settle (buffers shrink, allocator returns memory) before reading RSS.
    sleep(Duration::from_millis(500)).await;
    let rss1 = meter.broker_rss_kib();
    let n = (clients.len() + sockets.len()) as f64;
    let per_conn = match (rss0, rss1) {
        (Some(a), Some(b)) => Some((b.saturating_sub(a) as f64 * 1024.0) / n.max(1.0)),
        _ => None,
    };
    drop(clients);
    drop(sockets);
    let rate = n / setup.max(1e-6);
    let mut r = Report::new("conns", &o.target);
    r.int("connections", clients_len(n))
        .int("tcp_only", u64::from(o.tcp_only))
        .num("setup_s", setup)
        .num("connects_per_s", rate)
        .opt("rss_before_kib", rss0.map(|v| v as f64))
        .opt("rss_after_kib", rss1.map(|v| v as f64))
        .opt("rss_per_conn_bytes", per_conn)
        .num("tool_cpu_pct", cpu.own_pct)
        .opt("broker_cpu_pct", cpu.broker_pct);
    r.say(&format!(
        "{} idle connections in {:.2} s ({:.0}/s), broker RSS {} → {} KiB, {} per connection",
        n,
        setup,
        rate,
        rss0.map_or("-".into(), |v| v.to_string()),
        rss1.map_or("-".into(), |v| v.to_string()),
        per_conn.map_or("-".into(), |v| format!("{v:.0} B"))
    ));
    r.print();
    Ok(())
}

/// Opens `n` plain TCP connections (no MQTT), waiting briefly so the broker has accepted them.
async fn tcp_many(addr: SocketAddr, n: usize) -> Result<Vec<tokio::net::TcpStream>> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(tokio::net::TcpStream::connect(addr).await?);
    }
    Ok(out)
}

fn clients_len(n: f64) -> u64 {
    n as u64
}

/// Starts `cmd`, polls until it answers CONNECT with CONNACK, reports the delay
/// and the idle RSS, then stops it.
pub async fn ready(o: &Opts, cmd: &[String]) -> Result<()> {
    let (prog, args) = cmd
        .split_first()
        .context("ready needs a command after --")?;
    let addr: SocketAddr = o.addr()?;
    let t0 = Instant::now();
    let mut child = Command::new(prog)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {prog}"))?;
    let pid = child.id().to_string();
    let mut ready_ms = None;
    while t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            bail!("{prog} exited before accepting");
        }
        if let Ok(c) = Client::connect(addr, &format!("ready-{}", run_tag()), 0).await {
            ready_ms = Some(t0.elapsed().as_secs_f64() * 1000.0);
            drop(c);
            break;
        }
        sleep(Duration::from_millis(1)).await;
    }
    sleep(Duration::from_millis(300)).await;
    let rss = rss_kib(&pid);
    let _ = child.kill();
    let _ = child.wait();
    let mut r = Report::new("ready", &o.target);
    r.opt("ready_ms", ready_ms)
        .opt("idle_rss_kib", rss.map(|v| v as f64));
    r.say(&format!(
        "accepting after {} ms, idle RSS {} KiB",
        ready_ms.map_or("-".into(), |v| format!("{v:.1}")),
        rss.map_or("-".into(), |v| v.to_string())
    ));
    r.print();
    Ok(())
}
