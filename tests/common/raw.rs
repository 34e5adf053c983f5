//! Hand-built MQTT 3.1.1 packets and a raw TCP client, for the tests that must
//! send what no well-behaved client would (malformed input, protocol errors).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Appends an MQTT Variable Byte Integer (remaining length).
pub fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut byte = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if n == 0 {
            break;
        }
    }
}

/// Appends a length-prefixed byte string (an MQTT UTF-8 string when `s` is valid UTF-8).
pub fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(byte1: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![byte1];
    put_varint(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// A v3.1.1 CONNECT with clean session and the given keep-alive.
pub fn connect(client_id: &str, keep_alive: u16) -> Vec<u8> {
    connect_with(4, 0x02, keep_alive, client_id)
}

/// A CONNECT with "MQTT" as protocol name and the given level and flags
/// (no will, user name or password fields follow, whatever the flags say).
pub fn connect_with(level: u8, flags: u8, keep_alive: u16, client_id: &str) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.push(level);
    body.push(flags);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    put_str(&mut body, client_id.as_bytes());
    packet(0x10, &body)
}

/// A PUBLISH; `topic` is raw bytes so tests can send invalid UTF-8.
pub fn publish(topic: &[u8], payload: &[u8], qos: u8, packet_id: u16) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, topic);
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

/// A SUBSCRIBE with one filter.
pub fn subscribe(packet_id: u16, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    put_str(&mut body, filter.as_bytes());
    body.push(qos);
    packet(0x82, &body)
}

/// A raw TCP connection to the broker.
pub struct RawClient {
    /// The socket.
    pub stream: TcpStream,
}

impl RawClient {
    /// Opens a TCP connection (no MQTT yet).
    pub async fn open(addr: SocketAddr) -> RawClient {
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
            .await
            .expect("TCP connect within 5 s")
            .expect("TCP connect");
        RawClient { stream }
    }

    /// Opens a connection and completes a v3.1.1 CONNECT/CONNACK.
    pub async fn connected(addr: SocketAddr, client_id: &str) -> RawClient {
        let mut c = RawClient::open(addr).await;
        c.send(&connect(client_id, 60)).await;
        let mut connack = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(5), c.stream.read_exact(&mut connack))
            .await
            .expect("CONNACK within 5 s")
            .expect("CONNACK read");
        assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");
        c
    }

    /// Reads exactly `n` bytes (bounded wait); `None` if the server closed first.
    pub async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; n];
        match tokio::time::timeout(Duration::from_secs(5), self.stream.read_exact(&mut buf)).await {
            Ok(Ok(_)) => Some(buf),
            _ => None,
        }
    }

    /// Our end's address: the peer address the server logs.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.local_addr().expect("local addr")
    }

    /// Writes bytes (a write error is fine: the server may already have closed).
    pub async fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    /// Reads (and discards) until the server closes the connection; true if it
    /// did within `wait`. A reset counts as closed.
    pub async fn closed_within(&mut self, wait: Duration) -> bool {
        let mut buf = [0u8; 1024];
        let read_to_eof = async {
            loop {
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(wait, read_to_eof).await.is_ok()
    }
}
