//! The two halves of the throughput scenarios: a publisher that sends as fast
//! as the broker takes (QoS 0 in batches, QoS 1 and 2 within a window of
//! unfinished messages) and a subscriber that counts deliveries per source.

use std::time::Duration;

use anyhow::Result;
use bytes::BytesMut;
use sngate::mqtt::codec::Packet;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, sleep_until, timeout};

use crate::mqtt::{Client, Incoming, PublishTemplate, put_ack};
use crate::payload::{self, now_ns};
use crate::stats::SeqTracker;

/// QoS 0 messages written per write call.
const BATCH: usize = 32;
/// How long to wait for outstanding acks or deliveries after the deadline.
pub const GRACE: Duration = Duration::from_secs(3);
/// A subscriber stops after this long without a delivery once the deadline is past.
const IDLE: Duration = Duration::from_millis(700);

/// What one publisher did.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    /// Messages completely written.
    pub sent: u64,
    /// QoS 1 messages acknowledged (PUBACK), QoS 2 messages completed (PUBCOMP).
    pub acked: u64,
}

/// Publishes from `start` until `deadline`; `source` goes into each payload.
pub async fn publish(
    mut client: Client,
    tmpl: PublishTemplate,
    source: u32,
    qos: u8,
    window: usize,
    start: Instant,
    deadline: Instant,
) -> Result<Sent> {
    sleep_until(start).await;
    let mut out = Sent::default();
    let mut buf = BytesMut::with_capacity(BATCH * 128);
    let mut outstanding = 0usize;
    let mut next_id: u16 = 0;
    while Instant::now() < deadline {
        buf.clear();
        let room = if qos == 0 {
            BATCH
        } else {
            window.saturating_sub(outstanding)
        };
        for _ in 0..room {
            next_id = next_id.wrapping_add(1).max(1);
            let h = payload::header(source, out.sent, now_ns());
            tmpl.put(next_id, &h, &mut buf);
            out.sent += 1;
        }
        if !buf.is_empty() {
            let left = (deadline + GRACE).saturating_duration_since(Instant::now());
            match timeout(left, client.writer.write_all(&buf)).await {
                Ok(r) => r?,
                Err(_) => {
                    out.sent -= room as u64;
                    break;
                }
            }
            outstanding += room;
        }
        if qos > 0 {
            out.acked += read_acks(&mut client, &mut outstanding, deadline + GRACE).await?;
        }
    }
    let end = deadline + GRACE;
    while qos > 0 && outstanding > 0 && Instant::now() < end {
        out.acked += read_acks(&mut client, &mut outstanding, end).await?;
    }
    Ok(out)
}

/// Waits for at least one read and counts the PUBACKs (QoS 1) or PUBCOMPs
/// (QoS 2) it brought, answering each PUBREC with PUBREL.
async fn read_acks(client: &mut Client, outstanding: &mut usize, until: Instant) -> Result<u64> {
    let left = until.saturating_duration_since(Instant::now());
    match timeout(left, client.reader.fill()).await {
        Ok(r) => {
            r?;
        }
        Err(_) => return Ok(0),
    }
    let mut acked = 0;
    let mut rels = BytesMut::new();
    while let Some(f) = client.reader.frame()? {
        match f {
            Incoming::Other(Packet::PubAck(_) | Packet::PubComp(_)) => {
                acked += 1;
                *outstanding = outstanding.saturating_sub(1);
            }
            Incoming::Other(Packet::PubRec(r)) => put_ack(Packet::PubRel, r.packet_id, &mut rels)?,
            _ => {}
        }
    }
    if !rels.is_empty() {
        client.writer.write_all(&rels).await?;
    }
    Ok(acked)
}

/// What one subscriber saw.
#[derive(Debug, Clone, Default)]
pub struct Received {
    /// Per-source sequence tracking.
    pub seq: SeqTracker,
    /// Time of the last delivery.
    pub last: Option<Instant>,
    /// Transit times in nanoseconds (kept only when asked).
    pub latencies: Vec<u64>,
}

/// Counts deliveries until the stream is idle after `deadline` (or `GRACE` past it).
pub async fn subscribe(
    mut client: Client,
    sources: usize,
    deadline: Instant,
    keep_latency: bool,
) -> Result<Received> {
    let mut r = Received {
        seq: SeqTracker::new(sources),
        ..Received::default()
    };
    let mut acks = BytesMut::with_capacity(4096);
    let hard_end = deadline + GRACE;
    loop {
        let now = Instant::now();
        if now >= hard_end {
            break;
        }
        let wait = if now < deadline {
            (deadline - now) + IDLE
        } else {
            IDLE.min(hard_end - now)
        };
        match timeout(wait, client.reader.fill()).await {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => break,
            Err(_) => {
                if Instant::now() >= deadline {
                    break;
                }
                continue;
            }
            Ok(Err(e)) => return Err(e),
        }
        let now_n = now_ns();
        let mut got = false;
        while let Some(f) = client.reader.frame()? {
            match f {
                Incoming::Publish {
                    qos,
                    packet_id,
                    payload,
                } => {
                    got = true;
                    match qos {
                        1 => put_ack(Packet::PubAck, packet_id, &mut acks)?,
                        2 => put_ack(Packet::PubRec, packet_id, &mut acks)?,
                        _ => {}
                    }
                    if let Some((src, seq, sent)) = payload::parse(&payload) {
                        r.seq.record(src as usize, seq);
                        if keep_latency {
                            r.latencies.push(now_n.saturating_sub(sent));
                        }
                    }
                }
                Incoming::Other(Packet::PubRel(r)) => {
                    put_ack(Packet::PubComp, r.packet_id, &mut acks)?
                }
                Incoming::Other(_) => {}
            }
        }
        if got {
            r.last = Some(Instant::now());
        }
        if !acks.is_empty() {
            client.writer.write_all(&acks).await?;
            acks.clear();
        }
    }
    Ok(r)
}
