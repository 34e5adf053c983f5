//! latency: one publisher at a fixed rate → one subscriber; transit-time percentiles.

use anyhow::{Context, Result};
use bytes::BytesMut;
use sngate::mqtt::codec::Packet;
use tokio::io::AsyncWriteExt;
use tokio::time::{Duration, Instant, sleep_until};

use crate::Opts;
use crate::flood;
use crate::mqtt::{Client, Incoming, PublishTemplate, qos};
use crate::payload::{self, now_ns};
use crate::procstat::CpuMeter;
use crate::report::{Report, pct};
use crate::setup::run_tag;
use crate::stats::percentiles;

/// Runs the scenario and prints its report.
pub async fn run(o: &Opts) -> Result<()> {
    let tag = run_tag();
    let topic = format!("bench/{tag}/latency");
    let meter = CpuMeter::new(&o.broker_pid);
    let mut sub = Client::connect(o.addr()?, &format!("lat-sub-{tag}"), 0).await?;
    sub.subscribe(&topic, qos(o.qos)).await?;
    let publisher = Client::connect(o.addr()?, &format!("lat-pub-{tag}"), 0).await?;
    let start = Instant::now() + Duration::from_millis(100);
    let deadline = start + Duration::from_secs_f64(o.duration);
    let cpu_task = crate::procstat::spawn_window(meter.clone(), start, deadline);
    let sub_task = tokio::spawn(flood::subscribe(sub, 1, deadline, true));
    let tmpl = PublishTemplate::new(&topic, o.qos, o.payload)?;
    let pub_task = tokio::spawn(paced(publisher, tmpl, o.rate, start, deadline));
    sleep_until(start).await;
    let sent = pub_task.await.context("publisher task")??;
    let mut got = sub_task.await.context("subscriber task")??;
    let cpu = cpu_task.await.context("cpu task")?;
    let p = percentiles(&mut got.latencies);
    let lost = sent.saturating_sub(got.seq.received - got.seq.out_of_order);
    let mut r = Report::new("latency", &o.target);
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
    r.say(&format!(
        "qos{} {:.0} msg/s: p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs, lost {}, cpu tool {:.0}% broker {}",
        o.qos, o.rate, p.p50, p.p99, p.p999, p.max, lost, cpu.own_pct, pct(cpu.broker_pct)
    ));
    r.print();
    Ok(())
}

/// Publishes at `rate` msg/s from `start` to `deadline`, stamping the send time;
/// QoS 1 acknowledgements are read and discarded.
async fn paced(
    client: Client,
    tmpl: PublishTemplate,
    rate: f64,
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
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut buf = BytesMut::with_capacity(256);
    let mut sent = 0u64;
    let mut id: u16 = 0;
    loop {
        let due = start + period.mul_f64(sent as f64);
        if due >= deadline {
            break;
        }
        sleep_until(due).await;
        // Timer granularity is ~1 ms: send every message already due.
        buf.clear();
        let now = Instant::now();
        while start + period.mul_f64(sent as f64) <= now {
            id = id.wrapping_add(1).max(1);
            tmpl.put(id, &payload::header(0, sent, now_ns()), &mut buf);
            sent += 1;
        }
        writer.write_all(&buf).await?;
    }
    let _ = acks.await;
    Ok(sent)
}
