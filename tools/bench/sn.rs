//! sn: C MQTT-SN sensors over UDP connect, register a topic each and publish at
//! a fixed aggregate rate; an MQTT subscriber measures end-to-end delivery,
//! loss and latency. With `--find-capacity` the rate is raised step by step
//! until loss appears.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};
use bytes::{Bytes, BytesMut};
use sngate::mqttsn::codec::{
    ConnectFlags, Frame, Message, ReturnCode, SnQos, TopicRef, decode, encode,
};
use sngate::qos::QoS;
use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Duration, Instant, sleep, sleep_until};

use crate::Opts;
use crate::mqtt::{Client, Incoming, put_ack, qos};
use crate::payload::{self, now_ns};
use crate::procstat::{CpuMeter, CpuUse, udp_rcvbuf_errors};
use crate::report::{Report, pct};
use crate::setup::run_tag;
use crate::stats::percentiles;

/// Sensors set up at once.
const SETUP_CONCURRENCY: usize = 100;
/// A CONNECT or REGISTER unanswered for this long is sent again. MQTT-SN 1.2
/// §6.13 suggests 10-15 s; 2 s keeps setup quick while leaving a gateway that
/// opens a broker connection per sensor time to answer (the Paho gateway polls
/// a new broker socket only every 500 ms, and a CONNECT resent meanwhile makes
/// it drop and reopen that connection).
const RETRY: Duration = Duration::from_secs(2);
/// Tries per setup message.
const TRIES: usize = 4;
/// Most capacity steps.
const MAX_STEPS: usize = 14;

/// One connected sensor.
struct Sensor {
    sock: Arc<UdpSocket>,
    /// Pre-encoded PUBLISH; msg id and payload header are patched per message.
    tmpl: Vec<u8>,
    payload_at: usize,
}

/// Shared counters written by the receive tasks.
#[derive(Default)]
struct Counters {
    pubacks: AtomicU64,
    delivered: AtomicU64,
    latencies: Mutex<Vec<u64>>,
}

/// Runs the scenario (or the capacity search) and prints its report(s).
pub async fn run(o: &Opts) -> Result<()> {
    let tag = run_tag();
    let gw: SocketAddr = format!("{}:{}", o.host, o.sn_port).parse()?;
    let meter = CpuMeter::new(&o.broker_pid);
    let counters = Arc::new(Counters::default());

    let mut sub = Client::connect(o.addr()?, &format!("sn-sub-{tag}"), 0).await?;
    sub.subscribe(&format!("bench/{tag}/sn/#"), qos(o.qos))
        .await?;
    let sub_task = tokio::spawn(subscriber(sub, counters.clone()));

    let cpu_setup0 = meter.sample();
    let t0 = Instant::now();
    let sensors = setup_all(o, gw, &tag).await?;
    let setup_s = t0.elapsed().as_secs_f64();
    let setup_cpu = meter.diff(&cpu_setup0, &meter.sample());
    let mut acks = JoinSet::new();
    for s in &sensors {
        acks.spawn(count_pubacks(s.sock.clone(), counters.clone()));
    }

    let mut seq = vec![0u64; sensors.len()];
    let mut rate = o.rate;
    let mut best: Option<f64> = None;
    let steps = if o.find_capacity { MAX_STEPS } else { 1 };
    for step in 0..steps {
        let before_d = counters.delivered.load(Ordering::Relaxed);
        let before_a = counters.pubacks.load(Ordering::Relaxed);
        counters.latencies.lock().map(|mut l| l.clear()).ok();
        let cpu0 = meter.sample();
        let drops0 = udp_rcvbuf_errors();
        let t = Instant::now();
        let sent = drive(&sensors, &mut seq, o.qos, rate, o.duration, o.payload).await?;
        let send_s = t.elapsed().as_secs_f64();
        // Drain: wait until deliveries stop arriving (or 3 s).
        let drain_end = Instant::now() + Duration::from_secs(3);
        let mut last = counters.delivered.load(Ordering::Relaxed);
        while Instant::now() < drain_end {
            sleep(Duration::from_millis(200)).await;
            let now = counters.delivered.load(Ordering::Relaxed);
            if now - before_d >= sent || now == last {
                break;
            }
            last = now;
        }
        let cpu = meter.diff(&cpu0, &meter.sample());
        let udp_drops = match (drops0, udp_rcvbuf_errors()) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64),
            _ => None,
        };
        let delivered = counters.delivered.load(Ordering::Relaxed) - before_d;
        let pubacks = counters.pubacks.load(Ordering::Relaxed) - before_a;
        let lost = sent.saturating_sub(delivered);
        let achieved = sent as f64 / send_s.max(1e-6);
        let mut lat = counters
            .latencies
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        let p = percentiles(&mut lat);
        let scenario = if o.find_capacity { "sn-cap" } else { "sn" };
        let mut r = Report::new(scenario, &o.target);
        r.int("qos", u64::from(o.qos))
            .int("sensors", sensors.len() as u64)
            .int("step", step as u64)
            .num("rate", rate)
            .num("achieved_rate", achieved)
            .num("setup_s", setup_s)
            .int("sent", sent)
            .int("pubacks", pubacks)
            .int("delivered", delivered)
            .int("lost", lost)
            .opt("udp_rcvbuf_drops", udp_drops)
            .num("p50_us", p.p50)
            .num("p99_us", p.p99)
            .num("max_us", p.max)
            .num("tool_cpu_pct", cpu.own_pct)
            .opt("broker_cpu_pct", cpu.broker_pct)
            .opt("broker_cpu_s", cpu.broker_secs)
            .opt("setup_broker_cpu_pct", setup_cpu.broker_pct)
            .opt("broker_rss_kib", meter.broker_rss_kib().map(|v| v as f64));
        r.say(&human(
            o,
            sensors.len(),
            rate,
            achieved,
            setup_s,
            sent,
            delivered,
            lost,
            p.p99,
            &cpu,
        ));
        r.print();
        if !o.find_capacity {
            break;
        }
        // The tool itself cannot keep up: the result would measure the tool.
        if lost > 0 || achieved < rate * 0.9 {
            if achieved < rate * 0.9 && lost == 0 {
                eprintln!("# sn-cap: load tool reached its own limit at {achieved:.0} msg/s");
            }
            break;
        }
        best = Some(rate);
        rate *= 1.5;
    }
    if o.find_capacity {
        let mut r = Report::new("sn-capacity", &o.target);
        r.int("qos", u64::from(o.qos))
            .int("sensors", sensors.len() as u64)
            .opt("capacity_msg_s", best)
            .num("setup_s", setup_s)
            .opt("broker_rss_kib", meter.broker_rss_kib().map(|v| v as f64));
        r.say(&format!(
            "qos{} {} sensors: highest rate without loss {}",
            o.qos,
            sensors.len(),
            best.map_or("none".into(), |b| format!("{b:.0} msg/s"))
        ));
        r.print();
    }
    for s in &sensors {
        let mut buf = BytesMut::new();
        if encode(&Message::Disconnect { duration: None }, &mut buf).is_ok() {
            let _ = s.sock.try_send(&buf);
        }
    }
    acks.abort_all();
    sub_task.abort();
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn human(
    o: &Opts,
    n: usize,
    rate: f64,
    achieved: f64,
    setup_s: f64,
    sent: u64,
    delivered: u64,
    lost: u64,
    p99: f64,
    cpu: &CpuUse,
) -> String {
    format!(
        "qos{} {n} sensors at {rate:.0} msg/s (achieved {achieved:.0}): setup {:.3} s, sent {sent} delivered {delivered} lost {lost}, p99 {p99:.0} µs, cpu tool {:.0}% broker {}",
        o.qos,
        setup_s,
        cpu.own_pct,
        pct(cpu.broker_pct)
    )
}

/// Connects and registers every sensor.
async fn setup_all(o: &Opts, gw: SocketAddr, tag: &str) -> Result<Vec<Sensor>> {
    let gate = Arc::new(Semaphore::new(SETUP_CONCURRENCY));
    let mut set = JoinSet::new();
    for i in 0..o.sensors {
        let gate = gate.clone();
        // Fixed width: some gateways match client ids by prefix (the Paho
        // gateway compares with strncmp), so "…-1" would take over "…-10".
        let id = format!("sn-{tag}-{i:05}");
        let topic = format!("bench/{tag}/sn/{i}");
        let (q, payload_len) = (o.qos, o.payload);
        set.spawn(async move {
            let _p = gate.acquire_owned().await;
            setup_one(gw, &id, &topic, q, payload_len)
                .await
                .map(|s| (i, s))
        });
    }
    let mut out: Vec<Option<Sensor>> = (0..o.sensors).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, s) = r.context("sensor task")??;
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(s);
        }
    }
    out.into_iter()
        .map(|s| s.context("missing sensor"))
        .collect()
}

async fn setup_one(
    gw: SocketAddr,
    client_id: &str,
    topic: &str,
    qos_level: u8,
    payload_len: usize,
) -> Result<Sensor> {
    let sock = UdpSocket::bind("127.0.0.1:0").await?;
    sock.connect(gw).await?;
    let connect = Message::Connect {
        flags: ConnectFlags {
            will: false,
            clean_session: true,
        },
        protocol_id: 1,
        duration: 3600,
        client_id: Bytes::copy_from_slice(client_id.as_bytes()),
    };
    match request(&sock, &connect, |m| matches!(m, Message::ConnAck { .. })).await? {
        Message::ConnAck {
            code: ReturnCode::Accepted,
        } => {}
        other => bail!("CONNACK refused: {other:?}"),
    }
    let register = Message::Register {
        topic_id: 0,
        msg_id: 1,
        topic_name: Bytes::copy_from_slice(topic.as_bytes()),
    };
    let topic_id = match request(&sock, &register, |m| matches!(m, Message::RegAck { .. })).await? {
        Message::RegAck {
            topic_id,
            code: ReturnCode::Accepted,
            ..
        } => topic_id,
        other => bail!("REGACK refused: {other:?}"),
    };
    let q = if qos_level == 0 {
        SnQos::Level(QoS::AtMostOnce)
    } else {
        SnQos::Level(QoS::AtLeastOnce)
    };
    let publish = Message::Publish {
        dup: false,
        qos: q,
        retain: false,
        topic: TopicRef::Normal(topic_id),
        msg_id: if qos_level == 0 { 0 } else { 1 },
        data: Bytes::from(vec![0u8; payload_len]),
    };
    let mut buf = BytesMut::new();
    encode(&publish, &mut buf).context("encode PUBLISH")?;
    Ok(Sensor {
        sock: Arc::new(sock),
        payload_at: buf.len() - payload_len,
        tmpl: buf.to_vec(),
    })
}

/// Sends `msg` until a reply accepted by `want` arrives (with retries).
async fn request(
    sock: &UdpSocket,
    msg: &Message,
    want: impl Fn(&Message) -> bool,
) -> Result<Message> {
    let mut out = BytesMut::new();
    encode(msg, &mut out).context("encode")?;
    let mut buf = vec![0u8; 2048];
    for _ in 0..TRIES {
        sock.send(&out).await?;
        let until = Instant::now() + RETRY;
        while let Ok(r) = tokio::time::timeout_at(until, sock.recv(&mut buf)).await {
            let n = r?;
            if let Ok(Frame::Message(m)) = decode(&Bytes::copy_from_slice(&buf[..n]))
                && want(&m)
            {
                return Ok(m);
            }
        }
    }
    bail!("no answer to {msg:?}")
}

/// Counts PUBACKs arriving on a sensor's socket.
async fn count_pubacks(sock: Arc<UdpSocket>, c: Arc<Counters>) {
    let mut buf = vec![0u8; 2048];
    while let Ok(n) = sock.recv(&mut buf).await {
        // PUBACK: length 7, type 0x0D.
        if n >= 2 && buf[1] == 0x0D {
            c.pubacks.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Publishes at `rate` msg/s for `duration` s, round-robin over the sensors.
async fn drive(
    sensors: &[Sensor],
    seq: &mut [u64],
    qos_level: u8,
    rate: f64,
    duration: f64,
    payload_len: usize,
) -> Result<u64> {
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(duration);
    let period = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let mut sent = 0u64;
    let mut next = 0usize;
    let mut buf = Vec::with_capacity(256);
    let n = sensors.len().max(1);
    loop {
        let due = start + period.mul_f64(sent as f64);
        if due >= end {
            break;
        }
        sleep_until(due).await;
        let now = Instant::now();
        if now >= end {
            break;
        }
        while start + period.mul_f64(sent as f64) <= now {
            let i = next % n;
            next += 1;
            let (Some(s), Some(sq)) = (sensors.get(i), seq.get_mut(i)) else {
                continue;
            };
            buf.clear();
            buf.extend_from_slice(&s.tmpl);
            if qos_level > 0 {
                // MsgId sits just before the payload; 0 is not a valid QoS 1 id.
                let id = ((*sq % 65535) + 1) as u16;
                buf[s.payload_at - 2..s.payload_at].copy_from_slice(&id.to_be_bytes());
            }
            let h = payload::header(i as u32, *sq, now_ns());
            let k = h.len().min(payload_len);
            buf[s.payload_at..s.payload_at + k].copy_from_slice(&h[..k]);
            match s.sock.try_send(&buf) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    s.sock.send(&buf).await?;
                }
                Err(e) => return Err(e.into()),
            }
            *sq += 1;
            sent += 1;
        }
    }
    Ok(sent)
}

/// The MQTT subscriber: counts deliveries and their transit times.
async fn subscriber(mut client: Client, c: Arc<Counters>) -> Result<()> {
    let mut acks = BytesMut::new();
    loop {
        if !client.reader.fill().await? {
            return Ok(());
        }
        let now = now_ns();
        let mut n = 0u64;
        let mut lats = Vec::new();
        while let Some(f) = client.reader.frame()? {
            if let Incoming::Publish {
                qos,
                packet_id,
                payload,
            } = f
            {
                if qos == 1 {
                    put_ack(sngate::mqtt::codec::Packet::PubAck, packet_id, &mut acks)?;
                }
                if let Some((_, _, sent)) = payload::parse(&payload) {
                    n += 1;
                    lats.push(now.saturating_sub(sent));
                }
            }
        }
        c.delivered.fetch_add(n, Ordering::Relaxed);
        if let Ok(mut l) = c.latencies.lock() {
            l.extend_from_slice(&lats);
        }
        if !acks.is_empty() {
            client.writer.write_all(&acks).await?;
            acks.clear();
        }
    }
}
