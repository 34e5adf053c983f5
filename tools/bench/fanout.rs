//! fanout: 1 publisher → S subscribers on one topic; delivered msg/s.

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant};

use crate::Opts;
use crate::flood;
use crate::mqtt::{Client, PublishTemplate, qos};
use crate::procstat::CpuMeter;
use crate::report::{Report, pct};
use crate::setup::{connect_many, run_tag};

/// Runs the scenario and prints its report.
pub async fn run(o: &Opts) -> Result<()> {
    let tag = run_tag();
    let topic = format!("bench/{tag}/fanout");
    let meter = CpuMeter::new(&o.broker_pid);
    let mut subs = connect_many(o.addr()?, &format!("fanout-sub-{tag}"), o.subs, 0).await?;
    for s in &mut subs {
        s.subscribe(&topic, qos(o.qos)).await?;
    }
    let publisher = Client::connect(o.addr()?, &format!("fanout-pub-{tag}"), 0).await?;
    let start = Instant::now() + Duration::from_millis(100);
    let deadline = start + Duration::from_secs_f64(o.duration);
    let cpu_task = crate::procstat::spawn_window(meter.clone(), start, deadline);
    let mut set = JoinSet::new();
    for s in subs {
        set.spawn(flood::subscribe(s, 1, deadline, false));
    }
    let tmpl = PublishTemplate::new(&topic, o.qos, o.payload)?;
    let pub_task = tokio::spawn(flood::publish(
        publisher, tmpl, 0, o.qos, o.inflight, start, deadline,
    ));
    tokio::time::sleep_until(start).await;
    let sent = pub_task.await.context("publisher task")??;
    let mut received = 0u64;
    let mut dupes = 0u64;
    let mut last = start;
    let mut worst_lost = 0u64;
    let handed = if o.qos == 0 { sent.sent } else { sent.acked };
    while let Some(r) = set.join_next().await {
        let got = r.context("subscriber task")??;
        received += got.seq.received;
        dupes += got.seq.out_of_order;
        worst_lost = worst_lost.max(handed.saturating_sub(got.seq.received - got.seq.out_of_order));
        if let Some(l) = got.last {
            last = last.max(l);
        }
    }
    let cpu = cpu_task.await.context("cpu task")?;
    let elapsed = last.duration_since(start).as_secs_f64().max(1e-3);
    let expected = handed * o.subs as u64;
    let lost = expected.saturating_sub(received - dupes);
    let rate = received as f64 / elapsed;
    let mut r = Report::new("fanout", &o.target);
    r.int("qos", u64::from(o.qos))
        .int("subs", o.subs as u64)
        .int("payload", o.payload as u64)
        .num("duration_s", elapsed)
        .int("sent", sent.sent)
        .int("acked", sent.acked)
        .int("received", received)
        .int("lost", lost)
        .int("worst_sub_lost", worst_lost)
        .num("delivered_per_s", rate)
        .num("tool_cpu_pct", cpu.own_pct)
        .opt("broker_cpu_pct", cpu.broker_pct);
    r.say(&format!(
        "qos{} {} subs: {:.0} msg/s delivered, published {} received {} lost {}, cpu tool {:.0}% broker {}",
        o.qos, o.subs, rate, sent.sent, received, lost, cpu.own_pct, pct(cpu.broker_pct)
    ));
    r.print();
    Ok(())
}
