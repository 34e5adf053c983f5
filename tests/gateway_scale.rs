//! Scale: 1,000 simulated sensors, each on its own UDP source port, connect,
//! register and publish at QoS 1 concurrently through one running sngate;
//! `mosquitto_sub` must see every message exactly once. The process RSS is
//! printed before and after, and clean-session churn must not grow it.
//!
//! Run with `--nocapture` to see the numbers.

mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Sub;
use sn_sensor::{SnSensor, connect_msg};
use sngate::app::Sngate;
use sngate::mqttsn::codec::{Message, ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;
use tokio::sync::{Barrier, Semaphore};

const SENSORS: usize = 1000;
const MESSAGES_PER_SENSOR: u16 = 5;
/// Request/response exchanges in flight at once: keeps the burst within the
/// loopback socket buffers so that loss (and hence QoS 1 duplicates) is rare.
const IN_FLIGHT: usize = 100;
const ATTEMPTS: usize = 8;

/// The tests of this file share one process, so RSS readings are only
/// meaningful when they run one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resident set size of this process in KiB, from /proc/self/status.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

async fn start() -> (Sngate, SocketAddr, SocketAddr) {
    // mosquitto_sub must be able to hold the whole burst in its session queue.
    let text = common::BASE_CONFIG.replace(
        "sys_interval = 0",
        "sys_interval = 0\nmax_queued_messages = 100000\nmax_inflight_messages = 1000",
    );
    let app = common::start_config(&text).await;
    let mqtt = app.mqtt_addr().expect("an MQTT listener");
    let gw = app.gateway_udp[0];
    (app, mqtt, gw)
}

/// Retransmission counters, by message kind.
#[derive(Default)]
struct Resends {
    connect: AtomicUsize,
    register: AtomicUsize,
    publish: AtomicUsize,
    disconnect: AtomicUsize,
}

/// Sends `msg` and waits for a reply accepted by `want`, resending (with
/// `dup` set where the message has it) after 1 s, at most `ATTEMPTS` times.
async fn exchange<T>(
    s: &SnSensor,
    mut msg: Message,
    counter: &AtomicUsize,
    want: impl Fn(&Message) -> Option<T>,
) -> T {
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            counter.fetch_add(1, Ordering::Relaxed);
            if let Message::Publish { dup, .. } = &mut msg {
                *dup = true;
            }
        }
        s.send(&msg).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match s.recv_within(left).await {
                Some(m) => {
                    if let Some(t) = want(&m) {
                        return t;
                    }
                }
                None => break,
            }
        }
    }
    panic!("no answer to {msg:?} after {ATTEMPTS} attempts");
}

/// One sensor's life: connect, register `scale/<n>`, publish QoS 1
/// messages numbered 0.., wait for everyone, disconnect.
async fn sensor_life(
    gw: SocketAddr,
    n: usize,
    gate: Arc<Semaphore>,
    all_published: Arc<Barrier>,
    resends: Arc<Resends>,
) {
    let s = SnSensor::new(gw).await;
    let id = format!("scale-{n}");
    {
        let _p = gate.acquire().await.unwrap();
        exchange(
            &s,
            connect_msg(&id, 120, true, false),
            &resends.connect,
            |m| {
                matches!(
                    m,
                    Message::ConnAck {
                        code: ReturnCode::Accepted
                    }
                )
                .then_some(())
            },
        )
        .await;
    }
    let topic_id = {
        let _p = gate.acquire().await.unwrap();
        let reg = Message::Register {
            topic_id: 0,
            msg_id: 1,
            topic_name: Bytes::from(format!("scale/{n}")),
        };
        exchange(&s, reg, &resends.register, |m| match m {
            Message::RegAck {
                topic_id,
                msg_id: 1,
                code: ReturnCode::Accepted,
            } => Some(*topic_id),
            _ => None,
        })
        .await
    };
    for seq in 0..MESSAGES_PER_SENSOR {
        let _p = gate.acquire().await.unwrap();
        let msg_id = seq + 2;
        let publish = Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: TopicRef::Normal(topic_id),
            msg_id,
            data: Bytes::from(seq.to_string()),
        };
        exchange(&s, publish, &resends.publish, |m| match m {
            Message::PubAck {
                msg_id: m,
                code: ReturnCode::Accepted,
                ..
            } if *m == msg_id => Some(()),
            _ => None,
        })
        .await;
    }
    // All 1,000 sessions are held at the same time before anyone leaves.
    all_published.wait().await;
    let _p = gate.acquire().await.unwrap();
    exchange(
        &s,
        Message::Disconnect { duration: None },
        &resends.disconnect,
        |m| matches!(m, Message::Disconnect { .. }).then_some(()),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_sensors_publish_qos1_concurrently_and_each_message_arrives_exactly_once() {
    let _serial = SERIAL.lock().await;
    let (app, mqtt, gw) = start().await;
    let mut sub = Sub::start(mqtt, &["-t", "scale/#", "-q", "1", "-F", "%t %p"]).await;
    let rss_before = rss_kib();
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let barrier = Arc::new(Barrier::new(SENSORS + 1));
    let resends = Arc::new(Resends::default());
    let mut tasks = Vec::new();
    for n in 0..SENSORS {
        tasks.push(tokio::spawn(sensor_life(
            gw,
            n,
            gate.clone(),
            barrier.clone(),
            resends.clone(),
        )));
    }
    let total = SENSORS * usize::from(MESSAGES_PER_SENSOR);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut received = 0;
    while received < total {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(line) = sub.line(left).await else {
            break;
        };
        received += 1;
        *seen.entry(line).or_default() += 1;
    }
    let publish_time = started.elapsed();
    barrier.wait().await;
    let rss_connected = rss_kib();
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    // Anything late would be a duplicate.
    while let Some(line) = sub.line(Duration::from_millis(500)).await {
        *seen.entry(line).or_default() += 1;
    }
    let rss_after = rss_kib();
    let resent_publishes = resends.publish.load(Ordering::Relaxed);
    println!(
        "scale: {SENSORS} sensors x {MESSAGES_PER_SENSOR} QoS 1 messages: all received in {:.2} s, \
         run complete in {:.2} s; RSS before {} KiB, with {SENSORS} sessions {} KiB, after disconnect {} KiB; \
         resends: connect {}, register {}, publish {}, disconnect {}",
        publish_time.as_secs_f64(),
        elapsed.as_secs_f64(),
        rss_before,
        rss_connected,
        rss_after,
        resends.connect.load(Ordering::Relaxed),
        resends.register.load(Ordering::Relaxed),
        resent_publishes,
        resends.disconnect.load(Ordering::Relaxed),
    );
    let mut missing = Vec::new();
    for n in 0..SENSORS {
        for seq in 0..MESSAGES_PER_SENSOR {
            let line = format!("scale/{n} {seq}");
            if !seen.contains_key(&line) {
                missing.push(line);
            }
        }
    }
    assert!(missing.is_empty(), "missing: {missing:?}");
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    assert_eq!(seen.len(), total, "nothing unexpected arrived");
    // QoS 1 allows a duplicate only when a PUBACK was lost and the sensor resent.
    assert!(
        duplicates <= resent_publishes,
        "{duplicates} duplicates with {resent_publishes} resent publishes"
    );
    if resent_publishes == 0 {
        assert_eq!(duplicates, 0, "exactly once");
    }
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_sessions_coming_and_going_do_not_grow_memory() {
    // Clean sessions are dropped on DISCONNECT: rounds of 500 sensors
    // connecting, subscribing, publishing and leaving keep RSS flat.
    let _serial = SERIAL.lock().await;
    let (app, mqtt, gw) = start().await;
    let _sub = Sub::start(mqtt, &["-t", "churn/#"]).await;
    let mut rss = Vec::new();
    for round in 0..6 {
        let gate = Arc::new(Semaphore::new(IN_FLIGHT));
        let resends = Arc::new(Resends::default());
        let mut tasks = Vec::new();
        for n in 0..500 {
            let gate = gate.clone();
            let resends = resends.clone();
            tasks.push(tokio::spawn(async move {
                let _p = gate.acquire().await.unwrap();
                let mut s = SnSensor::new(gw).await;
                let id = format!("churn-{round}-{n}");
                exchange(
                    &s,
                    connect_msg(&id, 60, true, false),
                    &resends.connect,
                    |m| matches!(m, Message::ConnAck { .. }).then_some(()),
                )
                .await;
                let t = s.register(&format!("churn/{n}")).await;
                s.subscribe_name(&format!("cmd/{id}"), QoS::AtLeastOnce)
                    .await;
                s.publish(
                    SnQos::Level(QoS::AtMostOnce),
                    TopicRef::Normal(t),
                    false,
                    b"x",
                )
                .await;
                s.disconnect().await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        rss.push(rss_kib());
    }
    println!("churn: RSS after each round of 500 clean sessions (KiB): {rss:?}");
    // The first rounds warm up allocator arenas and tables; later rounds
    // must not keep adding what 500 sessions would cost.
    let growth = rss[5].saturating_sub(rss[1]);
    assert!(growth < 8 * 1024, "RSS grew by {growth} KiB: {rss:?}");
    app.stop().await;
}
