//! A byte-level MQTT 5 client for tests that must send what no well-behaved
//! client library sends (duplicate properties, alias 0, ...) and read the
//! exact reason code that comes back.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Packet type nibbles (MQTT 5 §2.1.2).
pub const CONNACK: u8 = 2;
pub const PUBLISH: u8 = 3;
pub const SUBACK: u8 = 9;
pub const DISCONNECT: u8 = 14;

/// Appends a variable byte integer (MQTT 5 §1.5.5).
pub fn vbi(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

/// A length-prefixed UTF-8 string.
pub fn string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(s.as_bytes());
    out
}

/// A whole packet from its first byte and body.
pub fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    vbi(body.len(), &mut out);
    out.extend_from_slice(body);
    out
}

fn with_props(out: &mut Vec<u8>, props: &[u8]) {
    vbi(props.len(), out);
    out.extend_from_slice(props);
}

/// An MQTT 5 CONNECT with Clean Start and the given properties.
pub fn connect(client_id: &str, keep_alive: u16, props: &[u8]) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(5);
    body.push(0x02);
    body.extend_from_slice(&keep_alive.to_be_bytes());
    with_props(&mut body, props);
    body.extend_from_slice(&string(client_id));
    packet(0x10, &body)
}

/// An MQTT 5 PUBLISH.
pub fn publish(topic: &str, qos: u8, packet_id: u16, props: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut body = string(topic);
    if qos > 0 {
        body.extend_from_slice(&packet_id.to_be_bytes());
    }
    with_props(&mut body, props);
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1), &body)
}

/// An MQTT 5 SUBSCRIBE of one filter.
pub fn subscribe(packet_id: u16, filter: &str, options: u8) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    with_props(&mut body, &[]);
    body.extend_from_slice(&string(filter));
    body.push(options);
    packet(0x82, &body)
}

/// A connected raw client.
pub struct Raw {
    stream: TcpStream,
}

/// One packet as read: first byte and body.
pub type RawPacket = (u8, Vec<u8>);

impl Raw {
    /// Opens a connection and sends `first` (normally a CONNECT).
    pub async fn open(addr: SocketAddr, first: &[u8]) -> Raw {
        let mut stream = TcpStream::connect(addr).await.expect("connects");
        stream.write_all(first).await.expect("writes");
        Raw { stream }
    }

    /// Connects with `props` and expects CONNACK 0x00.
    pub async fn connected(addr: SocketAddr, client_id: &str, props: &[u8]) -> Raw {
        let mut raw = Raw::open(addr, &connect(client_id, 60, props)).await;
        let (kind, body) = raw.next_of(CONNACK).await.expect("CONNACK");
        assert_eq!(kind >> 4, CONNACK);
        assert_eq!(body.get(1), Some(&0), "CONNACK reason");
        raw
    }

    /// Sends bytes.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("writes");
    }

    /// Sends bytes; false if the socket refused them (reset by the peer).
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// The next packet, or `None` on close or after 5 s.
    pub async fn read(&mut self) -> Option<RawPacket> {
        tokio::time::timeout(Duration::from_secs(5), self.read_inner())
            .await
            .ok()
            .flatten()
    }

    async fn read_inner(&mut self) -> Option<RawPacket> {
        let first = self.stream.read_u8().await.ok()?;
        let mut len = 0usize;
        for shift in 0..4 {
            let b = self.stream.read_u8().await.ok()?;
            len |= usize::from(b & 0x7F) << (7 * shift);
            if b & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0; len];
        self.stream.read_exact(&mut body).await.ok()?;
        Some((first, body))
    }

    /// Reads until a packet of type `kind`.
    pub async fn next_of(&mut self, kind: u8) -> Option<RawPacket> {
        loop {
            let p = self.read().await?;
            if p.0 >> 4 == kind {
                return Some(p);
            }
        }
    }

    /// The reason code of the DISCONNECT the server sends, if any.
    pub async fn disconnect_reason(&mut self) -> Option<u8> {
        let (_, body) = self.next_of(DISCONNECT).await?;
        Some(body.first().copied().unwrap_or(0))
    }

    /// True once the server has closed the connection (EOF within 5 s).
    pub async fn closed(&mut self) -> bool {
        loop {
            match self.read().await {
                Some(_) => continue,
                None => {
                    let mut b = [0u8; 1];
                    return matches!(
                        tokio::time::timeout(Duration::from_secs(1), self.stream.read(&mut b))
                            .await,
                        Ok(Ok(0)) | Ok(Err(_))
                    );
                }
            }
        }
    }
}

/// The properties and payload of a PUBLISH body with `qos`.
pub fn publish_parts(first: u8, body: &[u8]) -> (String, Vec<u8>, Vec<u8>) {
    let qos = (first >> 1) & 3;
    let tlen = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let topic = String::from_utf8(body[2..2 + tlen].to_vec()).expect("utf-8 topic");
    let mut i = 2 + tlen + if qos > 0 { 2 } else { 0 };
    let mut plen = 0usize;
    for shift in 0..4 {
        let b = body[i];
        i += 1;
        plen |= usize::from(b & 0x7F) << (7 * shift);
        if b & 0x80 == 0 {
            break;
        }
    }
    let props = body[i..i + plen].to_vec();
    (topic, props, body[i + plen..].to_vec())
}
