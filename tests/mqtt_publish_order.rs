//! A client's messages keep their order through the core whichever way each
//! one reaches it: applied in the client's own task (its read was short and
//! the core idle) or queued for the core task (a long read, or a busy core).
//! Publishers mix bursts written at once with single packets sent a moment
//! later, on a multi-threaded runtime, so both paths run side by side and a
//! single packet often arrives while the burst before it is still queued.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::BytesMut;
use common::raw::{RawClient, publish, subscribe};
use sngate::mqtt::codec::{Packet, ProtocolVersion, PubResponse, decode_packet, encode_packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PUBLISHERS: usize = 6;
const PER_PUBLISHER: u32 = 4000;
/// Packets per write, in turn: 1 is a short read (the short cut when the
/// core is idle), the others long reads that queue for the core task.
const CHUNKS: [u32; 8] = [1, 40, 1, 1, 120, 7, 1, 60];

/// Publishes `PER_PUBLISHER` QoS 1 messages "p:seq" on `order/p`.
async fn publisher(addr: SocketAddr, p: usize) {
    let mut c = RawClient::connected(addr, &format!("order-pub-{p}")).await;
    let topic = format!("order/{p}");
    let mut seq = 0u32;
    let mut turn = 0;
    while seq < PER_PUBLISHER {
        let n = CHUNKS[turn % CHUNKS.len()].min(PER_PUBLISHER - seq);
        turn += 1;
        let mut bytes = Vec::new();
        for _ in 0..n {
            let id = (seq % 60_000 + 1) as u16;
            bytes.extend(publish(
                topic.as_bytes(),
                format!("{p}:{seq}").as_bytes(),
                1,
                id,
            ));
            seq += 1;
        }
        c.send(&bytes).await;
        if n == 1 {
            // Long enough for the read to be a short one of its own, short
            // enough that the burst before may still be in the core's queue.
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
    }
    // Every PUBACK (4 bytes each): all of it reached the core.
    let acks = c.read_exact(4 * PER_PUBLISHER as usize).await;
    assert!(acks.is_some(), "publisher {p}: not every PUBACK arrived");
}

/// Reads `total` QoS 1 deliveries, acknowledging each; per publisher, the
/// sequence numbers in arrival order.
async fn subscriber(mut c: RawClient, total: usize) -> Vec<Vec<u32>> {
    let mut got = vec![Vec::new(); PUBLISHERS];
    let mut count = 0;
    let mut buf = BytesMut::new();
    let mut acks = BytesMut::new();
    while count < total {
        let read = tokio::time::timeout(Duration::from_secs(20), c.stream.read_buf(&mut buf))
            .await
            .expect("deliveries keep coming")
            .expect("read");
        assert!(read > 0, "server closed the subscriber");
        while let Some(packet) =
            decode_packet(&mut buf, ProtocolVersion::V311, u32::MAX).expect("valid packet")
        {
            let Packet::Publish(m) = packet else { continue };
            let text = std::str::from_utf8(&m.payload).expect("utf-8 payload");
            let (p, seq) = text.split_once(':').expect("p:seq");
            let p: usize = p.parse().expect("publisher number");
            got[p].push(seq.parse().expect("sequence number"));
            count += 1;
            if let Some(id) = m.packet_id {
                let ack = Packet::PubAck(PubResponse::new(id));
                encode_packet(&ack, ProtocolVersion::V311, &mut acks).expect("encode PUBACK");
            }
        }
        if !acks.is_empty() {
            c.stream.write_all(&acks).await.expect("send PUBACKs");
            acks.clear();
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_publishers_messages_arrive_in_order_whichever_way_they_reach_the_core() {
    // Order is the point here, not the queue bound: the subscriber's queue
    // may hold every message, so a slow run (a loaded machine) never meets
    // the bound's refusal of a publish (tests/qos1_backpressure.rs has that).
    let text = common::BASE_CONFIG.replace(
        "sys_interval = 0",
        "sys_interval = 0\nmax_queued_messages = 30000",
    );
    let gw = common::start_config(&text).await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = RawClient::connected(addr, "order-sub").await;
    sub.send(&subscribe(1, "order/#", 1)).await;
    let suback = sub.read_exact(5).await.expect("SUBACK");
    assert_eq!(
        suback,
        [0x90, 0x03, 0x00, 0x01, 0x01],
        "SUBACK granting QoS 1"
    );

    let reader = tokio::spawn(subscriber(sub, PUBLISHERS * PER_PUBLISHER as usize));
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| tokio::spawn(publisher(addr, p)))
        .collect();
    for p in publishers {
        p.await.expect("publisher task");
    }
    let got = reader.await.expect("subscriber task");
    for (p, seqs) in got.iter().enumerate() {
        let expected: Vec<u32> = (0..PER_PUBLISHER).collect();
        if let Some(at) = seqs.iter().zip(&expected).position(|(a, b)| a != b) {
            panic!(
                "publisher {p}: message {} arrived where {} was due (around: {:?})",
                seqs[at],
                expected[at],
                &seqs[at.saturating_sub(3)..(at + 3).min(seqs.len())]
            );
        }
        assert_eq!(seqs.len(), expected.len(), "publisher {p}: all messages");
    }
    gw.stop().await;
}
