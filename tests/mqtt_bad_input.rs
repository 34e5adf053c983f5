//! Bad input on one connection closes that connection, is logged with the
//! peer's address, and does not disturb anyone else: a `mosquitto_sub`
//! subscribed before keeps receiving afterwards.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::raw::{self, RawClient};
use common::{Sub, log_capture, mosquitto_pub, start, start_with_broker};
use sngate::app::Sngate;

const WAIT: Duration = Duration::from_secs(5);

/// A running sngate with a well-behaved subscriber on `ok/t`.
struct Bystander {
    gw: Sngate,
    addr: SocketAddr,
    sub: Sub,
}

impl Bystander {
    async fn start(gw: Sngate) -> Bystander {
        let addr = gw.mqtt_addr().expect("mqtt listener");
        let sub = Sub::start(addr, &["-t", "ok/t", "-v"]).await;
        Bystander { gw, addr, sub }
    }

    /// The subscriber still gets a fresh publish; then stops sngate.
    async fn still_served(mut self) {
        mosquitto_pub(self.addr, &["-t", "ok/t", "-m", "after"]).await;
        assert_eq!(self.sub.line(WAIT).await.as_deref(), Some("ok/t after"));
        self.gw.stop().await;
    }
}

async fn bystander() -> Bystander {
    log_capture::install();
    Bystander::start(start().await).await
}

/// Sends `bytes` on `client`, expects the server to close the connection and
/// to log a line naming the connection's address.
async fn expect_closed_and_logged(mut client: RawClient, bytes: &[u8]) {
    let peer = client.local_addr().to_string();
    client.send(bytes).await;
    assert!(client.closed_within(WAIT).await, "server closes {peer}");
    let line = log_capture::wait_for_line(&[&peer, "closed"], Duration::from_secs(2)).await;
    assert!(line.is_some(), "a log line names {peer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_close_the_connection() {
    let b = bystander().await;
    let client = RawClient::open(b.addr).await;
    expect_closed_and_logged(client, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_over_max_packet_size_closes_the_connection() {
    log_capture::install();
    let b =
        Bystander::start(start_with_broker("sys_interval = 0\nmax_packet_size = 1024").await).await;
    let client = RawClient::connected(b.addr, "big-1").await;
    expect_closed_and_logged(client, &raw::publish(b"ok/t", &[b'x'; 2000], 0, 0)).await;
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_publish_is_not_delivered() {
    log_capture::install();
    let mut b =
        Bystander::start(start_with_broker("sys_interval = 0\nmax_packet_size = 1024").await).await;
    let mut client = RawClient::connected(b.addr, "big-2").await;
    client
        .send(&raw::publish(b"ok/t", &[b'x'; 2000], 0, 0))
        .await;
    assert!(client.closed_within(WAIT).await);
    mosquitto_pub(b.addr, &["-t", "ok/t", "-m", "small"]).await;
    assert_eq!(b.sub.line(WAIT).await.as_deref(), Some("ok/t small"));
    b.gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connect_closes_the_connection() {
    // [MQTT-3.1.0-2]
    let b = bystander().await;
    let client = RawClient::connected(b.addr, "twice-1").await;
    expect_closed_and_logged(client, &raw::connect("twice-1", 60)).await;
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_before_connect_closes_the_connection() {
    // [MQTT-3.1.0-1]
    let b = bystander().await;
    let client = RawClient::open(b.addr).await;
    expect_closed_and_logged(client, &raw::publish(b"ok/t", b"early", 0, 0)).await;
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_topic_closes_the_connection() {
    // [MQTT-1.5.3-1]
    let b = bystander().await;
    let client = RawClient::connected(b.addr, "utf8-1").await;
    expect_closed_and_logged(client, &raw::publish(b"ok/\xc3\x28", b"x", 0, 0)).await;
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_byte_remaining_length_closes_the_connection() {
    // MQTT 3.1.1 §2.2.3: at most four bytes.
    let b = bystander().await;
    let client = RawClient::connected(b.addr, "varint-1").await;
    expect_closed_and_logged(client, &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]).await;
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_without_connect_is_closed_after_connect_timeout() {
    log_capture::install();
    let b =
        Bystander::start(start_with_broker("sys_interval = 0\nconnect_timeout = 1").await).await;
    let mut client = RawClient::open(b.addr).await;
    let peer = client.local_addr().to_string();
    let opened = Instant::now();
    assert!(client.closed_within(Duration::from_secs(4)).await, "closed");
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(900) && after < Duration::from_millis(2500),
        "closed after {after:?}, expected ~1 s"
    );
    let line = log_capture::wait_for_line(&[&peer, "closed"], Duration::from_secs(2)).await;
    assert!(line.is_some(), "a log line names {peer}");
    b.still_served().await;
}

/// Valid packets whose mutations the property test sends.
fn seeds() -> Vec<Vec<u8>> {
    let connect = raw::connect("fuzz-1", 30);
    let with = |rest: Vec<u8>| [connect.clone(), rest].concat();
    vec![
        connect.clone(),
        with(raw::publish(b"fz/t", b"payload", 1, 7)),
        with(raw::publish(b"fz/t", b"payload", 2, 8)),
        with(raw::subscribe(3, "fz/#", 1)),
        with(raw::subscribe(4, "+/+/#", 2)),
        raw::publish(b"fz/t", b"early", 0, 0),
    ]
}

/// Bytes to send: random, or a seed with a few bytes changed, inserted or cut off.
fn input() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    use proptest::sample::Index;
    let mutated = (
        proptest::sample::select(seeds()),
        proptest::collection::vec((any::<Index>(), any::<u8>(), any::<bool>()), 1..4),
        proptest::option::of(any::<Index>()),
    )
        .prop_map(|(mut bytes, edits, cut)| {
            for (at, byte, insert) in edits {
                let i = at.index(bytes.len() + 1);
                if insert || i == bytes.len() {
                    bytes.insert(i, byte);
                } else {
                    bytes[i] = byte;
                }
            }
            if let Some(cut) = cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            bytes
        });
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..300), mutated]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_packets_leave_other_clients_served() {
    use proptest::test_runner::{Config, TestCaseError, TestRunner};
    let b = bystander().await;
    let addr = b.addr;
    // Blocking sockets keep the property closure synchronous; the broker runs
    // on the runtime's other worker meanwhile.
    let result = tokio::task::block_in_place(|| {
        let mut runner = TestRunner::new(Config {
            cases: 200,
            failure_persistence: None,
            max_shrink_iters: 64,
            ..Config::default()
        });
        runner.run(&input(), |bytes| {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr)
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))
                .expect("timeout");
            let _ = s.write_all(&bytes);
            // Half-close: whatever the bytes were, the server must now end the connection.
            let _ = s.shutdown(std::net::Shutdown::Write);
            let mut buf = [0u8; 512];
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Err(TestCaseError::fail("server kept the connection open"));
                    }
                    Err(_) => return Ok(()),
                }
            }
        })
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_a_wildcard_topic_closes_the_connection() {
    // [MQTT-3.3.2-2]
    let b = bystander().await;
    let client = RawClient::connected(b.addr, "wild-1").await;
    expect_closed_and_logged(client, &raw::publish(b"ok/#", b"x", 0, 0)).await;
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_with_qos_3_closes_the_connection() {
    // [MQTT-3.8.3-4]
    let b = bystander().await;
    let client = RawClient::connected(b.addr, "qos3-1").await;
    expect_closed_and_logged(client, &raw::subscribe(1, "ok/#", 3)).await;
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_without_clean_session_is_refused_with_connack_2() {
    // [MQTT-3.1.3-8]
    let b = bystander().await;
    let mut client = RawClient::open(b.addr).await;
    client.send(&raw::connect_with(4, 0x00, 60, "")).await;
    assert_eq!(
        client.read_exact(4).await,
        Some(vec![0x20, 0x02, 0x00, 0x02])
    );
    assert!(client.closed_within(WAIT).await);
    b.still_served().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsupported_protocol_level_is_refused_with_connack_1() {
    // [MQTT-3.1.2-2]
    let b = bystander().await;
    let mut client = RawClient::open(b.addr).await;
    client
        .send(&raw::connect_with(9, 0x02, 60, "level-9"))
        .await;
    assert_eq!(
        client.read_exact(4).await,
        Some(vec![0x20, 0x02, 0x00, 0x01])
    );
    assert!(client.closed_within(WAIT).await);
    b.still_served().await;
}
