//! Crash test: sngate is killed with SIGKILL at random moments while two
//! publishers send numbered messages to persistent, offline subscribers
//! (MQTT 3.1.1, MQTT 5, a sleeping MQTT-SN sensor) and to an MQTT 5
//! subscriber that stays online and reconnects after each restart. Whatever a publisher saw
//! acknowledged (PUBACK, or PUBREC for QoS 2) must reach every subscriber at
//! least once, in order; QoS 2 exactly once.

mod persistence_support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use persistence_support::{Gate, Gone, Mqtt, Sensor, config, signal, write_config};
use rand::Rng;

const KILLS: usize = 8;

/// The QoS 1 publisher (MQTT 3.1.1, clean session): each message once; after a
/// crash it goes on with the next number.
struct Qos1Publisher {
    next: u32,
    acked: Vec<u32>,
}

/// The QoS 2 publisher (MQTT 5, persistent session): after a crash it resumes
/// the open exchange as a client must [MQTT-4.4.0-1]: PUBLISH again with DUP
/// and the same packet id, or PUBREL again.
struct Qos2Publisher {
    next: u32,
    acked: Vec<u32>,
    open: Option<(u16, u32, bool)>, // (packet id, number, PUBREC seen)
}

fn id_of(n: u32) -> u16 {
    (n % 60000) as u16 + 1
}

fn run_qos1(c: &mut Mqtt, p: &mut Qos1Publisher) -> Result<(), Gone> {
    let n = p.next;
    p.next += 1;
    c.publish(
        "crash/a",
        n.to_string().as_bytes(),
        1,
        id_of(n),
        false,
        false,
    )?;
    let ack = c.expect(4, Duration::from_secs(5))?;
    assert_eq!(ack.id(), id_of(n));
    assert_eq!(Mqtt::reason(&ack), 0, "accepted");
    p.acked.push(n);
    Ok(())
}

fn run_qos2(c: &mut Mqtt, p: &mut Qos2Publisher) -> Result<(), Gone> {
    let (id, n, recd) = match p.open {
        Some(open) => open,
        None => {
            let n = p.next;
            p.next += 1;
            p.open = Some((id_of(n), n, false));
            c.publish(
                "crash/b",
                n.to_string().as_bytes(),
                2,
                id_of(n),
                false,
                false,
            )?;
            (id_of(n), n, false)
        }
    };
    if !recd {
        let rec = c.expect(5, Duration::from_secs(5))?;
        assert_eq!(rec.id(), id);
        assert!(Mqtt::reason(&rec) < 0x80, "accepted");
        p.acked.push(n);
        p.open = Some((id, n, true));
    }
    c.ack(0x62, id)?;
    let comp = c.expect(7, Duration::from_secs(5))?;
    assert_eq!(comp.id(), id);
    p.open = None;
    Ok(())
}

/// Resumes the QoS 2 exchange left open by a crash.
fn resume_qos2(c: &mut Mqtt, p: &mut Qos2Publisher) -> Result<(), Gone> {
    if let Some((id, n, recd)) = p.open {
        if !recd {
            c.publish("crash/b", n.to_string().as_bytes(), 2, id, false, true)?;
        }
        run_qos2(c, p)?;
    }
    Ok(())
}

fn numbers(msgs: impl Iterator<Item = (String, Vec<u8>)>, topic: &str) -> Vec<u32> {
    msgs.filter(|(t, _)| t == topic)
        .map(|(_, p)| String::from_utf8(p).unwrap().parse().unwrap())
        .collect()
}

/// Every acked number present, and first arrivals in publishing order.
fn check_in_order(who: &str, got: &[u32], acked: &[u32]) {
    let mut seen = HashMap::new();
    let mut firsts = Vec::new();
    for n in got {
        if seen.insert(*n, ()).is_none() {
            firsts.push(*n);
        }
    }
    for n in acked {
        assert!(
            seen.contains_key(n),
            "{who}: acknowledged message {n} lost; got {got:?}"
        );
    }
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "{who}: out of order: {firsts:?}"
    );
}

fn check_exactly_once(who: &str, got: &[u32], acked: &[u32]) {
    check_in_order(who, got, acked);
    let mut counts = HashMap::new();
    for n in got {
        *counts.entry(*n).or_insert(0) += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).collect();
    assert!(
        dups.is_empty(),
        "{who}: QoS 2 messages delivered twice: {dups:?}"
    );
}

/// An MQTT 5 subscriber that stays online through the crashes: it
/// reconnects (clean start 0) whenever sngate comes back, and receives QoS 2
/// as a receiver must: a PUBLISH whose id it has PUBREC'd and not yet seen
/// released is a resend, not a new message [MQTT-4.3.3-2].
struct Live {
    addr: Arc<Mutex<SocketAddr>>,
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<Received>>>,
}

/// A message as received: topic and payload.
type Received = (String, Vec<u8>);

impl Live {
    fn spawn(addr: SocketAddr) -> (Live, std::thread::JoinHandle<()>) {
        let live = Live {
            addr: Arc::new(Mutex::new(addr)),
            stop: Arc::new(AtomicBool::new(false)),
            got: Arc::new(Mutex::new(Vec::new())),
        };
        let (addr, stop, got) = (live.addr.clone(), live.stop.clone(), live.got.clone());
        let thread = std::thread::spawn(move || {
            let mut pending: HashSet<u16> = HashSet::new();
            while !stop.load(Ordering::SeqCst) {
                let at = *addr.lock().unwrap();
                let Ok(mut c) = Mqtt::connect(at, "live5", true, false, 3600) else {
                    std::thread::sleep(Duration::from_millis(30));
                    continue;
                };
                while !stop.load(Ordering::SeqCst) {
                    let Ok(p) = c.read(Duration::from_millis(100)) else {
                        break;
                    };
                    let Some(p) = p else { continue };
                    let ok = match p.kind() {
                        3 => {
                            let m = c.incoming(&p);
                            match m.qos {
                                2 => {
                                    if pending.insert(m.id) {
                                        got.lock().unwrap().push((m.topic, m.payload));
                                    }
                                    c.ack(0x50, m.id)
                                }
                                1 => {
                                    got.lock().unwrap().push((m.topic, m.payload));
                                    c.ack(0x40, m.id)
                                }
                                _ => Ok(()),
                            }
                        }
                        6 => {
                            pending.remove(&p.id());
                            c.ack(0x70, p.id())
                        }
                        _ => Ok(()),
                    };
                    if ok.is_err() {
                        break;
                    }
                }
            }
        });
        (live, thread)
    }
}

#[test]
fn acknowledged_messages_survive_sigkill_at_random_moments() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &config(&dir.path().join("store"), "", ""));
    let gate = Gate::start(&cfg, &[]);

    // Persistent subscribers, offline while the publishers run.
    let mut s3 = Mqtt::connect(gate.mqtt, "sub3", false, false, 0).unwrap();
    s3.subscribe("crash/#", 1).unwrap();
    s3.disconnect();
    let mut s5 = Mqtt::connect(gate.mqtt, "sub5", true, false, 3600).unwrap();
    s5.subscribe("crash/#", 2).unwrap();
    s5.disconnect();
    let mut sensor = Sensor::new(gate.udp);
    sensor.connect("sn1", false);
    sensor.subscribe("crash/a", 1, 1);
    sensor.sleep(3600);
    // A retained message and its topic's subscription must survive as well.
    let mut r = Mqtt::connect(gate.mqtt, "retainer", false, true, 0).unwrap();
    r.publish("crash/retained", b"kept", 1, 1, true, false)
        .unwrap();
    r.expect(4, Duration::from_secs(5)).unwrap();
    r.disconnect();

    // One more subscriber stays online through the crashes: its in-flight
    // deliveries must be resent after each restart.
    let mut s = Mqtt::connect(gate.mqtt, "live5", true, false, 3600).unwrap();
    s.subscribe("crash/#", 2).unwrap();
    s.disconnect();
    let (live, live_thread) = Live::spawn(gate.mqtt);

    let mut q1 = Qos1Publisher {
        next: 1,
        acked: Vec::new(),
    };
    let mut q2 = Qos2Publisher {
        next: 1,
        acked: Vec::new(),
        open: None,
    };
    let mut gate = gate;
    let mut rng = rand::rng();
    for round in 0..KILLS {
        let pid = gate.pid();
        let killed = Arc::new(AtomicBool::new(false));
        let flag = killed.clone();
        let delay = Duration::from_millis(rng.random_range(100..600));
        let killer = std::thread::spawn(move || {
            std::thread::sleep(delay);
            flag.store(true, Ordering::SeqCst);
            signal(pid, "KILL");
        });
        let result = (|| -> Result<(), Gone> {
            let mut a = Mqtt::connect(gate.mqtt, "pubA", false, true, 0)?;
            let mut b = Mqtt::connect(gate.mqtt, "pubB", true, false, 3600)?;
            resume_qos2(&mut b, &mut q2)?;
            loop {
                run_qos1(&mut a, &mut q1)?;
                run_qos2(&mut b, &mut q2)?;
            }
        })();
        assert!(result.is_err());
        killer.join().unwrap();
        assert!(
            killed.load(Ordering::SeqCst),
            "round {round}: the connection broke before the kill"
        );
        gate.reap();
        gate = Gate::start(&cfg, &[]);
        sensor.gw = gate.udp;
        *live.addr.lock().unwrap() = gate.mqtt;
    }
    // Settle the last open QoS 2 exchange.
    let mut b = Mqtt::connect(gate.mqtt, "pubB", true, false, 3600).unwrap();
    resume_qos2(&mut b, &mut q2).unwrap();
    b.disconnect();
    assert!(
        q1.acked.len() > 20 && q2.acked.len() > 20,
        "too few messages: {} {}",
        q1.acked.len(),
        q2.acked.len()
    );

    let quiet = Duration::from_millis(1500);
    let mut s3 = Mqtt::connect(gate.mqtt, "sub3", false, false, 0).unwrap();
    assert!(s3.session_present);
    let got3 = s3.drain(quiet).unwrap();
    let mut s5 = Mqtt::connect(gate.mqtt, "sub5", true, false, 3600).unwrap();
    assert!(s5.session_present);
    let got5 = s5.drain(quiet).unwrap();
    sensor.connect("sn1", false);
    let got_sn = sensor.drain(quiet);

    let pairs = |v: &[persistence_support::Incoming]| {
        v.iter()
            .map(|m| (m.topic.clone(), m.payload.clone()))
            .collect::<Vec<_>>()
    };
    check_in_order(
        "3.1.1 subscriber, QoS 1",
        &numbers(pairs(&got3).into_iter(), "crash/a"),
        &q1.acked,
    );
    check_in_order(
        "3.1.1 subscriber, QoS 2 downgraded",
        &numbers(pairs(&got3).into_iter(), "crash/b"),
        &q2.acked,
    );
    check_in_order(
        "v5 subscriber, QoS 1",
        &numbers(pairs(&got5).into_iter(), "crash/a"),
        &q1.acked,
    );
    check_exactly_once(
        "v5 subscriber, QoS 2",
        &numbers(pairs(&got5).into_iter(), "crash/b"),
        &q2.acked,
    );
    std::thread::sleep(quiet);
    live.stop.store(true, Ordering::SeqCst);
    live_thread.join().unwrap();
    let got_live = live.got.lock().unwrap().clone();
    check_in_order(
        "online v5 subscriber, QoS 1",
        &numbers(got_live.clone().into_iter(), "crash/a"),
        &q1.acked,
    );
    check_exactly_once(
        "online v5 subscriber, QoS 2",
        &numbers(got_live.into_iter(), "crash/b"),
        &q2.acked,
    );
    check_in_order(
        "sleeping MQTT-SN sensor",
        &numbers(got_sn.into_iter(), "crash/a"),
        &q1.acked,
    );

    // The retained message survived every crash.
    let mut fresh = Mqtt::connect(gate.mqtt, "late", false, true, 0).unwrap();
    fresh.subscribe("crash/retained", 1).unwrap();
    let got = fresh.drain(Duration::from_millis(500)).unwrap();
    assert!(
        got.iter().any(|m| m.retain && m.payload == b"kept"),
        "{got:?}"
    );
    gate.stop();
    eprintln!(
        "{KILLS} kills, {} QoS 1 and {} QoS 2 messages acknowledged, {:?}",
        q1.acked.len(),
        q2.acked.len(),
        started.elapsed()
    );
}
