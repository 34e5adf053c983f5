//! latency: one publisher at a fixed rate → one subscriber; transit-time percentiles.
//! With `--paired-port`, a second broker is measured in the same run, its
//! messages interleaved with the first one's.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use bytes::BytesMut;
use sngate::mqtt::codec::Packet;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio::time::{Duration, Instant, sleep_until};

use crate::Opts;
use crate::flood;
use crate::mqtt::{Client, Incoming, PublishTemplate, qos};
use crate::payload::{self, now_ns};
use crate::procstat::CpuMeter;
use crate::report::{Report, pct};
use crate::setup::run_tag;
use crate::stats::percentiles;

/// One broker under measurement.
struct Target {
    addr: SocketAddr,
    name: String,
    pids: String,
}

/// Runs the scenario and prints its report (one per broker with `--paired-port`).
pub async fn run(o: &Opts) -> Result<()> {
    let mut targets = vec![Target {
        addr: o.addr()?,
        name: o.target.clone(),
        pids: o.broker_pid.clone(),
    }];
    if let Some(addr) = o.paired_addr()? {
        targets.push(Target {
            addr,
            name: o.paired_target.clone(),
            pids: o.paired_pid.clone(),
        });
    }
    let tag = run_tag();
    let mut clients = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let topic = format!("bench/{tag}/latency/{i}");
        let mut sub = Client::connect(t.addr, &format!("lat-sub-{tag}-{i}"), 0).await?;
        sub.subscribe(&topic, qos(o.qos)).await?;
        let publisher = Client::connect(t.addr, &format!("lat-pub-{tag}-{i}"), 0).await?;
        clients.push((topic, sub, publisher));
    }
    let period = Duration::from_secs_f64(1.0 / o.rate.max(1.0));
    let start = Instant::now() + Duration::from_millis(100);
    let deadline = start + Duration::from_secs_f64(o.duration);
    let mut runs = Vec::new();
    for (i, (t, (topic, sub, publisher))) in targets.iter().zip(clients).enumerate() {
        // Paired brokers take turns: the second one's messages go out half a
        // period after the first one's, so neither waits for the other.
        let own_start = start + period.mul_f64(i as f64 / targets.len() as f64);
        let cpu = crate::procstat::spawn_window(CpuMeter::new(&t.pids), start, deadline);
        let received = tokio::spawn(flood::subscribe(sub, 1, deadline, true));
        let tmpl = PublishTemplate::new(&topic, o.qos, o.payload)?;
        let sent = tokio::spawn(paced(publisher, tmpl, period, own_start, deadline));
        runs.push((cpu, received, sent));
    }
    sleep_until(start).await;
    let paired = targets.len() > 1;
    let mut samples = String::new();
    for (i, (t, (cpu, received, sent))) in targets.iter().zip(runs).enumerate() {
        let sent = sent.await.context("publisher task")??;
        let mut got = received.await.context("subscriber task")??;
        let cpu = cpu.await.context("cpu task")?;
        if o.samples_out.is_some() {
            for (k, ns) in got.latencies.iter().enumerate() {
                let _ = writeln!(samples, "{},{k},{:.1}", t.name, *ns as f64 / 1e3);
            }
        }
        let p = percentiles(&mut got.latencies);
        let lost = sent.saturating_sub(got.seq.received - got.seq.out_of_order);
        let mut r = Report::new("latency", &t.name);
        r.int("qos", u64::from(o.qos))
            .num("rate", o.rate)
            .int("payload", o.payload as u64)
            .int("sent", sent)
            .int("received", got.seq.received)
            .int("lost", lost)
            .int("samples", p.count as u64)
            .num("p50_us", p.p50)
            .num("p99_us", p.p99)
            .num("p999_us", p.p999)
            .num("max_us", p.max)
            .num("tool_cpu_pct", cpu.own_pct)
            .opt("broker_cpu_pct", cpu.broker_pct);
        if paired {
            r.int("slot", i as u64);
        }
        r.say(&format!(
            "qos{} {:.0} msg/s: p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs, lost {}, cpu tool {:.0}% broker {}",
            o.qos, o.rate, p.p50, p.p99, p.p999, p.max, lost, cpu.own_pct, pct(cpu.broker_pct)
        ));
        r.print();
    }
    if let Some(path) = &o.samples_out {
        std::fs::write(path, samples).with_context(|| format!("{}", path.display()))?;
    }
    Ok(())
}

/// Publishes one message per `period` from `start` to `deadline`, stamping the send time;
/// QoS 1 acknowledgements are read and discarded.
async fn paced(
    client: Client,
    tmpl: PublishTemplate,
    period: Duration,
    start: Instant,
    deadline: Instant,
) -> Result<u64> {
    let Client {
        mut reader,
        mut writer,
    } = client;
    let acks = tokio::spawn(async move {
        let grace = deadline + flood::GRACE;
        while Instant::now() < grace {
            match tokio::time::timeout_at(grace, reader.next()).await {
                Ok(Ok(Incoming::Other(Packet::PubAck(_)))) | Ok(Ok(_)) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
    });
    let mut ticks = ticker(period, start, deadline);
    let mut buf = BytesMut::with_capacity(256);
    let mut sent = 0u64;
    let mut id: u16 = 0;
    while ticks.recv().await.is_some() {
        // A late wake-up sends every message already due, each stamped now.
        buf.clear();
        let now = Instant::now();
        loop {
            let due = start + period.mul_f64(sent as f64);
            if due > now || due >= deadline {
                break;
            }
            id = id.wrapping_add(1).max(1);
            tmpl.put(id, &payload::header(0, sent, now_ns()), &mut buf);
            sent += 1;
        }
        if !buf.is_empty() {
            writer.write_all(&buf).await?;
        }
    }
    let _ = acks.await;
    Ok(sent)
}

/// A signal at each `start + k * period` before `deadline`, from a thread of
/// its own: tokio's timers round up to whole milliseconds, which would send
/// two messages at once at 1,000 msg/s and put a paired broker's messages in
/// the same instant as the first one's.
fn ticker(period: Duration, start: Instant, deadline: Instant) -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let (start, deadline) = (start.into_std(), deadline.into_std());
    std::thread::spawn(move || {
        for k in 0u32.. {
            let due = start + period * k;
            if due >= deadline {
                break;
            }
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
            if tx.send(()).is_err() {
                break;
            }
        }
    });
    rx
}
