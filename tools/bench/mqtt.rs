//! A minimal MQTT 3.1.1 client on sngate's own codec, tuned for load: publishes
//! are stamped into a pre-encoded template and received PUBLISH frames are
//! parsed in place, so the tool spends little CPU per message.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::{Buf, Bytes, BytesMut};
use sngate::mqtt::codec::{
    Connect, Packet, ProtocolVersion, PubResponse, Publish, Subscribe, SubscriptionOptions,
    decode_packet, encode_packet, parse_fixed_header,
};
use sngate::qos::QoS;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

const V: ProtocolVersion = ProtocolVersion::V311;
const READ_CHUNK: usize = 64 * 1024;

/// QoS from the command line's 0/1/2.
pub fn qos(level: u8) -> QoS {
    QoS::from_u8(level).unwrap_or(QoS::AtMostOnce)
}

/// Appends `packet` (MQTT 3.1.1) to `buf`.
pub fn put(packet: &Packet, buf: &mut BytesMut) -> Result<()> {
    encode_packet(packet, V, buf).context("encode")
}

/// One frame read from the server.
// `Other` is rare (acks and control packets) and short-lived; boxing it would
// cost an allocation per PUBACK on the publisher's hot path.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Incoming {
    /// A PUBLISH: QoS, packet id (0 for QoS 0) and payload, parsed in place.
    Publish {
        /// QoS level 0..2.
        qos: u8,
        /// Packet identifier (0 for QoS 0).
        packet_id: u16,
        /// Payload bytes.
        payload: Bytes,
    },
    /// Any other packet, fully decoded.
    Other(Packet),
}

/// Buffered frame reader over a TCP read half.
#[derive(Debug)]
pub struct FrameReader {
    rd: OwnedReadHalf,
    buf: BytesMut,
}

impl FrameReader {
    /// Reads more bytes; returns false at end of stream.
    pub async fn fill(&mut self) -> Result<bool> {
        self.buf.reserve(READ_CHUNK);
        Ok(self.rd.read_buf(&mut self.buf).await? > 0)
    }

    /// The next whole frame already buffered, if any.
    pub fn frame(&mut self) -> Result<Option<Incoming>> {
        let Some(h) = parse_fixed_header(&self.buf)? else {
            return Ok(None);
        };
        let total = h.header_len + h.remaining_length as usize;
        if self.buf.len() < total {
            return Ok(None);
        }
        if h.byte1 >> 4 != 3 {
            let p = decode_packet(&mut self.buf, V, u32::MAX)?.context("short frame")?;
            return Ok(Some(Incoming::Other(p)));
        }
        let qos = (h.byte1 >> 1) & 3;
        let mut body = self.buf.split_to(total).freeze();
        body.advance(h.header_len);
        if body.len() < 2 {
            bail!("short PUBLISH");
        }
        let tlen = usize::from(body.get_u16());
        if body.len() < tlen {
            bail!("short PUBLISH topic");
        }
        body.advance(tlen);
        let packet_id = if qos > 0 {
            if body.len() < 2 {
                bail!("short PUBLISH id");
            }
            body.get_u16()
        } else {
            0
        };
        Ok(Some(Incoming::Publish {
            qos,
            packet_id,
            payload: body,
        }))
    }

    /// Waits for the next frame.
    pub async fn next(&mut self) -> Result<Incoming> {
        loop {
            if let Some(f) = self.frame()? {
                return Ok(f);
            }
            if !self.fill().await? {
                bail!("connection closed");
            }
        }
    }
}

/// A connected client: a frame reader and the write half.
#[derive(Debug)]
pub struct Client {
    /// Read side.
    pub reader: FrameReader,
    /// Write side.
    pub writer: OwnedWriteHalf,
}

impl Client {
    /// Connects, sends CONNECT (clean session) and waits for a successful CONNACK.
    pub async fn connect(addr: SocketAddr, client_id: &str, keep_alive: u16) -> Result<Client> {
        let stream = TcpStream::connect(addr).await.context("tcp connect")?;
        stream.set_nodelay(true)?;
        let (rd, writer) = stream.into_split();
        let mut c = Client {
            reader: FrameReader {
                rd,
                buf: BytesMut::with_capacity(READ_CHUNK),
            },
            writer,
        };
        let connect = Packet::Connect(Connect {
            protocol: V,
            clean_start: true,
            keep_alive,
            client_id: client_id.to_owned(),
            will: None,
            username: None,
            password: None,
            properties: Default::default(),
        });
        c.send(&connect).await?;
        match c.reader.next().await? {
            Incoming::Other(Packet::ConnAck(a)) if a.code == 0 => Ok(c),
            Incoming::Other(Packet::ConnAck(a)) => bail!("CONNACK refused: {}", a.code),
            other => bail!("expected CONNACK, got {other:?}"),
        }
    }

    /// Encodes and writes one packet.
    pub async fn send(&mut self, packet: &Packet) -> Result<()> {
        let mut buf = BytesMut::new();
        put(packet, &mut buf)?;
        self.writer.write_all(&buf).await?;
        Ok(())
    }

    /// Subscribes to `filter` and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<()> {
        let sub = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![(
                filter.to_owned(),
                SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            )],
            properties: Default::default(),
        });
        self.send(&sub).await?;
        loop {
            match self.reader.next().await? {
                Incoming::Other(Packet::SubAck(a)) => {
                    if a.reasons.iter().any(|r| r.as_u8() >= 0x80) {
                        bail!("SUBACK refused");
                    }
                    return Ok(());
                }
                Incoming::Publish { .. } => {}
                other => bail!("expected SUBACK, got {other:?}"),
            }
        }
    }
}

/// Appends an acknowledgement (`Packet::PubAck`, `PubRec`, `PubRel` or
/// `PubComp`) for `packet_id`.
pub fn put_ack(ack: fn(PubResponse) -> Packet, packet_id: u16, buf: &mut BytesMut) -> Result<()> {
    put(&ack(PubResponse::new(packet_id)), buf)
}

/// A pre-encoded PUBLISH whose packet id and payload header are patched per message.
#[derive(Debug, Clone)]
pub struct PublishTemplate {
    bytes: Vec<u8>,
    id_at: Option<usize>,
    payload_at: usize,
}

impl PublishTemplate {
    /// Encodes a PUBLISH of `payload_len` bytes on `topic`.
    pub fn new(topic: &str, qos_level: u8, payload_len: usize) -> Result<PublishTemplate> {
        let q = qos(qos_level);
        let publish = Packet::Publish(Publish {
            dup: false,
            qos: q,
            retain: false,
            topic: topic.into(),
            packet_id: (q != QoS::AtMostOnce).then_some(1),
            properties: Default::default(),
            payload: Bytes::from(vec![0u8; payload_len]),
        });
        let mut buf = BytesMut::new();
        put(&publish, &mut buf)?;
        let payload_at = buf.len() - payload_len;
        Ok(PublishTemplate {
            bytes: buf.to_vec(),
            id_at: (q != QoS::AtMostOnce).then(|| payload_at - 2),
            payload_at,
        })
    }

    /// Appends the PUBLISH with `packet_id` and the payload's leading bytes set to `head`.
    pub fn put(&self, packet_id: u16, head: &[u8], buf: &mut BytesMut) {
        let start = buf.len();
        buf.extend_from_slice(&self.bytes);
        let out = &mut buf[start..];
        if let Some(at) = self.id_at {
            out[at..at + 2].copy_from_slice(&packet_id.to_be_bytes());
        }
        let n = head.len().min(out.len() - self.payload_at);
        out[self.payload_at..self.payload_at + n].copy_from_slice(&head[..n]);
    }
}
