//! A subscriber slower than its QoS 1 publishers: sngate slows the publishers
//! (stops reading their sockets) instead of dropping what it acknowledged,
//! and an offline persistent session never stalls them. Real TCP sockets, a
//! subscriber with a small receive window; no timed assertions.

mod common;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::raw::{connect_with, publish, subscribe};
use common::start_with_broker;
use sngate::mqtt::codec::{Packet, ProtocolVersion, decode_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Far beyond what any step needs; only a hang hits it.
const WAIT: Duration = Duration::from_secs(60);
/// How long to keep listening when checking that nothing more arrives.
const QUIET: Duration = Duration::from_millis(300);
const BROKER: &str = "sys_interval = 0\nmax_queued_messages = 10\nmax_inflight_messages = 5";

/// An MQTT 3.1.1 client over a raw socket, decoding with sngate's codec.
struct Client {
    stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    /// Connects (`clean` sets Clean Session) with a receive buffer of `rcvbuf` bytes.
    async fn connect(addr: SocketAddr, id: &str, clean: bool, rcvbuf: u32) -> Client {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(rcvbuf).expect("SO_RCVBUF");
        let stream = socket.connect(addr).await.expect("TCP connect");
        let mut c = Client {
            stream,
            buf: BytesMut::new(),
        };
        let flags = if clean { 0x02 } else { 0x00 };
        c.send(&connect_with(4, flags, 60, id)).await;
        assert!(matches!(c.next().await, Some(Packet::ConnAck(_))));
        c
    }

    async fn subscribe_qos1(&mut self, filter: &str) {
        self.send(&subscribe(1, filter, 1)).await;
        assert!(matches!(self.next().await, Some(Packet::SubAck(_))));
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next packet; `None` if the server closed or nothing came within `WAIT`.
    async fn next(&mut self) -> Option<Packet> {
        self.next_within(WAIT).await
    }

    async fn next_within(&mut self, wait: Duration) -> Option<Packet> {
        loop {
            if let Some(p) = decode_packet(&mut self.buf, ProtocolVersion::V311, u32::MAX)
                .expect("server sends valid packets")
            {
                return Some(p);
            }
            match tokio::time::timeout(wait, self.stream.read_buf(&mut self.buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return None,
            }
        }
    }

    /// Receives QoS 1 PUBLISHes, acknowledging each, until `want` distinct
    /// payloads came; sleeps every few messages to be slower than the publishers.
    async fn receive_slowly(&mut self, want: usize) -> HashSet<String> {
        let mut got = HashSet::new();
        while got.len() < want {
            let Some(Packet::Publish(p)) = self.next().await else {
                break;
            };
            got.insert(String::from_utf8_lossy(&p.payload).into_owned());
            if let Some(id) = p.packet_id {
                let [hi, lo] = id.to_be_bytes();
                self.send(&[0x40, 0x02, hi, lo]).await;
            }
            if got.len() % 8 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        got
    }

    /// PINGREQ answered: the server still serves this connection.
    async fn is_served(&mut self) -> bool {
        self.send(&[0xC0, 0x00]).await;
        matches!(self.next().await, Some(Packet::PingResp))
    }
}

/// Publishes `n` QoS 1 messages "`tag`:0".. as fast as the socket takes them
/// and returns the publisher once every PUBACK came back, with their count.
async fn flood(addr: SocketAddr, tag: usize, n: u16) -> (Client, usize) {
    let mut c = Client::connect(addr, &format!("pub{tag}"), true, 64 * 1024).await;
    let mut batch = Vec::new();
    for id in 1..=n {
        let payload = format!("{tag}:{}", id - 1);
        batch.extend(publish(
            format!("bp/{tag}").as_bytes(),
            payload.as_bytes(),
            1,
            id,
        ));
    }
    let (mut rd, mut wr) = c.stream.into_split();
    let writer = tokio::spawn(async move {
        wr.write_all(&batch).await.expect("publisher writes");
        wr
    });
    let mut acked = HashSet::new();
    let mut buf = c.buf;
    while acked.len() < usize::from(n) {
        match decode_packet(&mut buf, ProtocolVersion::V311, u32::MAX).expect("valid") {
            Some(Packet::PubAck(a)) => {
                acked.insert(a.packet_id);
            }
            Some(other) => panic!("publisher got {other:?}"),
            None => match tokio::time::timeout(WAIT, rd.read_buf(&mut buf)).await {
                Ok(Ok(k)) if k > 0 => {}
                _ => break,
            },
        }
    }
    let wr = writer.await.expect("writer");
    c.stream = rd.reunite(wr).expect("same stream");
    c.buf = buf;
    (c, acked.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_subscriber_gets_every_acknowledged_qos1_message_and_publishers_are_not_disconnected()
{
    const PUBS: usize = 4;
    const EACH: u16 = 500;
    let gw = start_with_broker(BROKER).await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Client::connect(addr, "slow", true, 2048).await;
    sub.subscribe_qos1("bp/#").await;
    let publishers: Vec<_> = (0..PUBS)
        .map(|tag| tokio::spawn(flood(addr, tag, EACH)))
        .collect();
    let got = sub.receive_slowly(PUBS * usize::from(EACH)).await;
    for p in publishers {
        let (mut publ, acked) = p.await.expect("publisher task");
        assert_eq!(acked, usize::from(EACH), "every publish acknowledged");
        assert!(publ.is_served().await, "publisher still connected");
    }
    let expected: HashSet<String> = (0..PUBS)
        .flat_map(|tag| (0..EACH).map(move |i| format!("{tag}:{i}")))
        .collect();
    assert_eq!(got.len(), expected.len(), "acknowledged messages lost");
    assert_eq!(got, expected);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_persistent_session_keeps_its_bound_and_does_not_stall_publishers() {
    let gw = start_with_broker(BROKER).await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Client::connect(addr, "away", false, 64 * 1024).await;
    sub.subscribe_qos1("bp/#").await;
    sub.send(&[0xE0, 0x00]).await;
    // The server closes after handing the DISCONNECT to the core, so the
    // session is offline before the publisher's CONNECT reaches it.
    assert!(sub.next().await.is_none(), "server closes after DISCONNECT");
    let (mut publ, acked) = flood(addr, 0, 200).await;
    assert_eq!(acked, 200, "publisher not stalled by an offline session");
    assert!(publ.is_served().await);
    let mut back = Client::connect(addr, "away", false, 64 * 1024).await;
    let mut got = Vec::new();
    while let Some(Packet::Publish(p)) = back.next_within(QUIET).await {
        got.push(String::from_utf8_lossy(&p.payload).into_owned());
        let [hi, lo] = p.packet_id.expect("QoS 1").to_be_bytes();
        back.send(&[0x40, 0x02, hi, lo]).await;
    }
    let first: Vec<String> = (0..10).map(|i| format!("0:{i}")).collect();
    assert_eq!(got, first, "the queue kept its bound of 10, oldest first");
    gw.stop().await;
}
