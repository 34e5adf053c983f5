//! Abuse: each test runs an attack while an established client publishes to
//! an established subscriber, and shows that those messages keep arriving.
//! The tests take turns (one lock), so file descriptors and RSS readings
//! belong to one attack at a time. Run with `--nocapture` to see the numbers.

mod common;
mod security_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::raw::{RawClient, connect, publish, subscribe};
use security_support::{Sensor, rss_kib};
use sngate::app::Sngate;
use sngate::limits::Limit;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// Longest an established client's message may take under attack.
const PROBE_WAIT: Duration = Duration::from_secs(2);

/// Reads one MQTT packet: (first byte, body).
async fn read_packet(s: &mut TcpStream, wait: Duration) -> Option<(u8, Vec<u8>)> {
    let read = async {
        let b1 = s.read_u8().await.ok()?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = s.read_u8().await.ok()?;
            len |= usize::from(b & 0x7F) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        s.read_exact(&mut body).await.ok()?;
        Some((b1, body))
    };
    tokio::time::timeout(wait, read).await.ok()?
}

/// A client publishing on `probe/<n>` and another subscribed to `probe/#`,
/// both connected before the attack starts.
struct Probe {
    publisher: RawClient,
    subscriber: RawClient,
    sent: u32,
    slowest: Duration,
}

impl Probe {
    async fn new(mqtt: SocketAddr) -> Probe {
        let publisher = RawClient::connected(mqtt, "probe-pub").await;
        let mut subscriber = RawClient::connected(mqtt, "probe-sub").await;
        subscriber.send(&subscribe(1, "probe/#", 0)).await;
        let (b1, _) = read_packet(&mut subscriber.stream, PROBE_WAIT)
            .await
            .expect("SUBACK");
        assert_eq!(b1, 0x90);
        Probe {
            publisher,
            subscriber,
            sent: 0,
            slowest: Duration::ZERO,
        }
    }

    /// Publishes one message and waits for it at the subscriber.
    async fn round_trip(&mut self) {
        self.sent += 1;
        let payload = self.sent.to_string();
        let started = Instant::now();
        self.publisher
            .send(&publish(b"probe/x", payload.as_bytes(), 0, 0))
            .await;
        let (b1, body) = read_packet(&mut self.subscriber.stream, PROBE_WAIT)
            .await
            .unwrap_or_else(|| panic!("probe message {} lost or late under attack", self.sent));
        assert_eq!(b1 & 0xF0, 0x30);
        assert!(body.ends_with(payload.as_bytes()), "{body:?}");
        self.slowest = self.slowest.max(started.elapsed());
    }

    /// Round trips every 100 ms for `period`.
    async fn keep_checking(&mut self, period: Duration) {
        let end = Instant::now() + period;
        while Instant::now() < end {
            self.round_trip().await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn start(broker: &str, gateway: &str) -> Sngate {
    common::start_config(&format!(
        r#"
[broker]
sys_interval = 0
{broker}

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0
{gateway}

[[gateway.udp]]
bind = "127.0.0.1:0"
"#
    ))
    .await
}

/// The soft RLIMIT_NOFILE, raised to the hard limit when it is lower than
/// `want` (with prlimit(1) on this process; no unsafe code in tests).
fn raise_nofile(want: u64) -> u64 {
    let read = || -> (u64, u64) {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let line = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .unwrap_or("");
        let nums: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        (
            nums.first().copied().unwrap_or(1024),
            nums.get(1).copied().unwrap_or(1024),
        )
    };
    let (soft, hard) = read();
    if soft < want && hard > soft {
        let _ = std::process::Command::new("prlimit")
            .args([
                "--pid",
                &std::process::id().to_string(),
                &format!("--nofile={hard}:{hard}"),
            ])
            .status();
    }
    read().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_connections_without_connect_do_not_disturb_a_client() {
    let _turn = SERIAL.lock().await;
    // Each connection costs two descriptors here: ours and sngate's.
    let limit = raise_nofile(4_400);
    let n = 2_000.min((limit.saturating_sub(300) / 2) as usize);
    if n < 2_000 {
        println!("RLIMIT_NOFILE is {limit}: opening {n} connections instead of 2000");
    }
    let gw = start("connect_timeout = 4", "").await;
    let mqtt = gw.mqtt_addr().unwrap();
    let mut probe = Probe::new(mqtt).await;
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut idle = Vec::with_capacity(n);
    for i in 0..n {
        idle.push(TcpStream::connect(mqtt).await.unwrap());
        if i.is_multiple_of(250) {
            probe.round_trip().await;
        }
    }
    let opened_in = started.elapsed();
    probe.keep_checking(Duration::from_secs(1)).await;
    let rss_during = rss_kib();
    // connect_timeout closes every one of them; the probe keeps working.
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metrics.limits.get(Limit::ConnectTimeout) < n as u64 && Instant::now() < deadline {
        probe.round_trip().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(gw.metrics.limits.get(Limit::ConnectTimeout), n as u64);
    let mut buf = [0u8; 1];
    for s in idle.iter_mut().step_by(97) {
        let r = tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await;
        assert!(matches!(r, Ok(Ok(0)) | Ok(Err(_))), "closed by sngate");
    }
    println!(
        "{n} idle connections opened in {opened_in:?}; RSS {rss_before} KiB before, {rss_during} KiB with them open; slowest probe {:?}",
        probe.slowest
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_publishing_above_its_rate_is_slowed_not_dropped() {
    let _turn = SERIAL.lock().await;
    let rate = 200u32;
    let gw = start(&format!("max_publish_rate = {rate}"), "").await;
    let mqtt = gw.mqtt_addr().unwrap();
    let mut probe = Probe::new(mqtt).await;
    let mut counter = RawClient::connected(mqtt, "flood-counter").await;
    counter.send(&subscribe(1, "flood", 0)).await;
    read_packet(&mut counter.stream, PROBE_WAIT)
        .await
        .expect("SUBACK");

    let mut flooder = TcpStream::connect(mqtt).await.unwrap();
    flooder.write_all(&connect("flooder", 60)).await.unwrap();
    let (b1, _) = read_packet(&mut flooder, PROBE_WAIT)
        .await
        .expect("CONNACK");
    assert_eq!(b1, 0x20);
    // As fast as it can: one write of 100,000 QoS 0 PUBLISH packets (8 MB,
    // more than the loopback socket buffers hold).
    let burst: Vec<u8> = (0..100_000u32)
        .flat_map(|i| {
            let mut payload = vec![b'.'; 60];
            payload.extend_from_slice(&i.to_be_bytes());
            publish(b"flood", &payload, 0, 0)
        })
        .collect();
    let (_flood_rd, mut flood_wr) = flooder.into_split();
    let writer = tokio::spawn(async move {
        let _ = flood_wr.write_all(&burst).await;
        flood_wr
    });
    let counting = tokio::spawn(async move {
        let mut got = Vec::new();
        let end = Instant::now() + Duration::from_secs(3);
        while let Some((_, body)) = read_packet(
            &mut counter.stream,
            end.saturating_duration_since(Instant::now()),
        )
        .await
        {
            got.push(u32::from_be_bytes(
                body[body.len() - 4..].try_into().unwrap(),
            ));
        }
        got
    });
    probe.keep_checking(Duration::from_secs(3)).await;
    let got = counting.await.unwrap();
    // One second's burst plus the rate for ~3 s, with room for timing.
    let bound = (rate * 5) as usize;
    assert!(
        !got.is_empty() && got.len() < bound,
        "{} delivered",
        got.len()
    );
    // Slowed, not dropped: what arrived is the start of the sequence, in order.
    assert!(got.iter().enumerate().all(|(i, n)| *n == i as u32));
    assert!(!writer.is_finished(), "the flooder is held back by TCP");
    assert_eq!(gw.metrics.limits.get(Limit::PublishRate), 1, "one episode");
    println!(
        "max_publish_rate {rate}/s: {} of 100000 delivered in 3 s; slowest probe {:?}",
        got.len(),
        probe.slowest
    );
    writer.abort();
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_flood_from_many_ports_does_not_disturb_sensors_or_clients() {
    let _turn = SERIAL.lock().await;
    let gw = start("", "max_datagram_rate = 100").await;
    let mqtt = gw.mqtt_addr().unwrap();
    let udp = gw.gateway_udp[0];
    let mut probe = Probe::new(mqtt).await;
    let sensor = Sensor::new(udp).await;
    sensor.connect("sensor-ok").await;
    assert_eq!(sensor.subscribe_code("probe/x", 1).await, 0x00);
    let rss_before = rss_kib();

    // 200 source ports on another loopback address, valid-looking and
    // garbage, sent from a thread of its own as an outside attacker would.
    let stop = Arc::new(AtomicBool::new(false));
    let flood = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let socks: Vec<std::net::UdpSocket> = (0..200)
                .map(|_| std::net::UdpSocket::bind("127.0.0.2:0").unwrap())
                .collect();
            let kinds: [Vec<u8>; 6] = [
                vec![0x0A, 0x04, 0x04, 0x01, 0x00, 0x3C, b'f', b'l', b'0', b'0'], // CONNECT
                vec![0x02, 0x16],                                                 // PINGREQ
                vec![0x09, 0x0C, 0x62, b'f', b'l', 0, 0, b'h', b'i'], // QoS -1, short topic
                vec![0x03, 0x01, 0x00],                               // SEARCHGW
                vec![0xFF; 40],                                       // garbage
                b"\x00\x01\x02 not mqtt-sn at all".to_vec(),          // garbage
            ];
            let mut sent = 0u64;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let mut d = kinds[i % kinds.len()].clone();
                if i.is_multiple_of(kinds.len()) {
                    // A different client id each time.
                    d[8] = b'0' + (i / 6 % 10) as u8;
                    d[9] = b'0' + (i / 60 % 10) as u8;
                }
                if socks[i % socks.len()].send_to(&d, udp).is_ok() {
                    sent += 1;
                }
                i += 1;
            }
            sent
        })
    };
    let end = Instant::now() + Duration::from_secs(3);
    let mut sensor_got = 0;
    while Instant::now() < end {
        probe.round_trip().await;
        let (topic, payload) = sensor
            .next_publish(PROBE_WAIT)
            .await
            .expect("the sensor's message arrives under the flood");
        assert_eq!(topic, "#1", "SUBACK gave the sensor topic id 1");
        assert_eq!(payload, probe.sent.to_string().into_bytes());
        sensor_got += 1;
        // Upstream too: PINGREQ answered. The flood may overrun the kernel's
        // socket buffer, so the sensor retries as MQTT-SN senders do (§6.13).
        let mut answered = false;
        for _ in 0..5 {
            sensor.send(&[0x02, 0x16]).await;
            if sensor.recv_within(Duration::from_millis(400)).await == Some(vec![0x02, 0x17]) {
                answered = true;
                break;
            }
        }
        assert!(answered, "PINGRESP under the flood");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().unwrap();
    let dropped = gw.metrics.limits.get(Limit::DatagramRate);
    assert!(dropped > 0, "the rate limit dropped part of the flood");
    let rss_after = rss_kib();
    println!(
        "UDP flood: {sent} datagrams sent, {dropped} dropped by max_datagram_rate; sensor got {sensor_got} messages; RSS {rss_before} -> {rss_after} KiB; slowest probe {:?}",
        probe.slowest
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_never_reads_has_a_bounded_queue_and_flat_memory() {
    let _turn = SERIAL.lock().await;
    let gw = start("max_queued_bytes = 1048576", "").await;
    let mqtt = gw.mqtt_addr().unwrap();
    let mut probe = Probe::new(mqtt).await;
    let mut stuck = RawClient::connected(mqtt, "never-reads").await;
    stuck.send(&subscribe(1, "bulk/#", 1)).await;
    read_packet(&mut stuck.stream, PROBE_WAIT)
        .await
        .expect("SUBACK");
    // From here on `stuck` is never read again.

    let publisher = TcpStream::connect(mqtt).await.unwrap();
    let (mut rd, mut wr) = publisher.into_split();
    wr.write_all(&connect("bulk-pub", 60)).await.unwrap();
    // Drain CONNACK and PUBACKs so that only the subscriber is slow.
    let acks = tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    });
    let payload = vec![b'x'; 8192];
    let count = 10_000u16;
    let rss_before = rss_kib();
    let mut rss_peak = rss_before;
    for i in 1..=count {
        wr.write_all(&publish(b"bulk/data", &payload, 1, i))
            .await
            .unwrap();
        if i.is_multiple_of(1000) {
            probe.round_trip().await;
            rss_peak = rss_peak.max(rss_kib());
        }
    }
    // The core reports queued-bytes drops to the shared counters each second.
    probe.keep_checking(Duration::from_millis(1500)).await;
    let rss_after = rss_kib();
    rss_peak = rss_peak.max(rss_after);
    let published_kib = u64::from(count) * 8;
    let dropped = gw.metrics.limits.get(Limit::MaxQueuedBytes);
    println!(
        "never-reading subscriber: {published_kib} KiB published at it; RSS {rss_before} KiB before, peak {rss_peak} KiB, after {rss_after} KiB; {dropped} deliveries dropped by max_queued_bytes; slowest probe {:?}",
        probe.slowest
    );
    assert!(dropped > 0, "the queue hit max_queued_bytes");
    // 80 MiB went to the stuck client; what sngate holds for it is its queue
    // (1 MiB), its in-flight window and socket buffers.
    assert!(
        rss_peak.saturating_sub(rss_before) < 32 * 1024,
        "RSS grew by {} KiB",
        rss_peak - rss_before
    );
    acks.abort();
    drop(stuck);
    gw.stop().await;
}
