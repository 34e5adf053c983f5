//! fanin: P publishers → 1 wildcard subscriber; delivered msg/s and loss.

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

use crate::Opts;
use crate::flood::{self, Sent};
use crate::mqtt::{PublishTemplate, qos};
use crate::procstat::CpuMeter;
use crate::report::{Report, pct};
use crate::setup::{connect_many, run_tag};

/// Runs the scenario and prints its report.
pub async fn run(o: &Opts) -> Result<()> {
    let tag = run_tag();
    let meter = CpuMeter::new(&o.broker_pid);
    let mut sub = crate::mqtt::Client::connect(o.addr()?, &format!("fanin-sub-{tag}"), 0).await?;
    sub.subscribe(&format!("bench/{tag}/fanin/#"), qos(o.qos))
        .await?;
    let pubs = connect_many(o.addr()?, &format!("fanin-pub-{tag}"), o.pubs, 0).await?;
    let start = Instant::now() + Duration::from_millis(100);
    let deadline = start + Duration::from_secs_f64(o.duration);
    let cpu_task = crate::procstat::spawn_window(meter.clone(), start, deadline);
    let sub_task = tokio::spawn(flood::subscribe(sub, o.pubs, deadline, false));
    let mut set = JoinSet::new();
    for (i, c) in pubs.into_iter().enumerate() {
        let tmpl = PublishTemplate::new(&format!("bench/{tag}/fanin/{i}"), o.qos, o.payload)?;
        set.spawn(flood::publish(
            c, tmpl, i as u32, o.qos, o.inflight, start, deadline,
        ));
    }
    tokio::time::sleep_until(start).await;
    let mut sent = vec![Sent::default(); o.pubs];
    let mut total = Sent::default();
    let mut i = 0;
    while let Some(r) = set.join_next().await {
        let s = r.context("publisher task")??;
        total.sent += s.sent;
        total.acked += s.acked;
        if let Some(slot) = sent.get_mut(i) {
            *slot = s;
        }
        i += 1;
    }
    let got = sub_task.await.context("subscriber task")??;
    let cpu = cpu_task.await.context("cpu task")?;
    let elapsed = got
        .last
        .map_or(o.duration, |l| l.duration_since(start).as_secs_f64())
        .max(1e-3);
    let unique: u64 = (0..o.pubs).map(|s| got.seq.highest(s)).sum();
    // Loss counts what the publishers handed over (QoS 0) or had acknowledged (QoS 1).
    let handed = if o.qos == 0 { total.sent } else { total.acked };
    let lost = handed.saturating_sub(got.seq.received - got.seq.out_of_order);
    let rate = got.seq.received as f64 / elapsed;
    let mut r = Report::new("fanin", &o.target);
    r.int("qos", u64::from(o.qos))
        .int("pubs", o.pubs as u64)
        .int("payload", o.payload as u64)
        .num("duration_s", elapsed)
        .int("sent", total.sent)
        .int("acked", total.acked)
        .int("received", got.seq.received)
        .int("unique_in_order", unique)
        .int("lost", lost)
        .num("delivered_per_s", rate)
        .num("tool_cpu_pct", cpu.own_pct)
        .opt("broker_cpu_pct", cpu.broker_pct);
    r.say(&format!(
        "qos{} {} pubs: {:.0} msg/s delivered, sent {} acked {} received {} lost {}, cpu tool {:.0}% broker {}",
        o.qos, o.pubs, rate, total.sent, total.acked, got.seq.received, lost, cpu.own_pct, pct(cpu.broker_pct)
    ));
    r.print();
    Ok(())
}
