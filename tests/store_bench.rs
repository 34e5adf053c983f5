//! Store cost per QoS 1 message: commits/s, fsyncs and bytes written per
//! message, for group commits of N queue-entry puts. Not a timed test: run
//! `cargo test --test store_bench -- --ignored --nocapture` and read the table.

use std::time::Instant;

use bytes::Bytes;
use sngate::store::{MessageRecord, QueueEntry, QueueState, RedbStore, Store, StoreOp};

fn put(seq: u64) -> StoreOp {
    StoreOp::PutQueueEntry {
        client_id: "sensor-42".into(),
        entry: QueueEntry {
            seq,
            message: MessageRecord {
                topic: "building/3/room/12/temperature".into(),
                payload: Bytes::from_static(&[b'x'; 64]),
                qos: 1,
                retain: false,
                properties: None,
                expires_at_ms: None,
                publisher: None,
            },
            subscription_ids: vec![],
            state: QueueState::Queued,
        },
    }
}

fn delete(seq: u64) -> StoreOp {
    StoreOp::DeleteQueueEntry {
        client_id: "sensor-42".into(),
        seq,
    }
}

/// Commits `rounds` batches of `batch` puts; with `ack`, each batch also
/// deletes the previous batch's entries (delivered and acknowledged), which
/// is the steady state of a queue that keeps up.
fn run(batch: u64, durable: bool, ack: bool, rounds: u64) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path(), 0).unwrap();
    let before = store.stats();
    let start = Instant::now();
    for round in 0..rounds {
        let first = round * batch;
        let mut ops: Vec<_> = (first..first + batch).map(put).collect();
        if ack && round > 0 {
            ops.extend((first - batch..first).map(delete));
        }
        store.commit(&ops, durable).unwrap();
    }
    // Interval mode ends each period with one durable commit.
    if !durable {
        store.commit(&[], true).unwrap();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let stats = store.stats();
    let messages = (batch * rounds) as f64;
    println!(
        "batch {batch:>4} durable {durable:<5} ack {ack:<5} | {:>8.0} commits/s {:>9.0} msg/s | \
         fsyncs/msg {:>6.3} | writes/msg {:>6.2} | KiB written/msg {:>7.2} | file {:>6} KiB, live {:>6} KiB",
        rounds as f64 / elapsed,
        messages / elapsed,
        (stats.syncs - before.syncs) as f64 / messages,
        (stats.write_calls - before.write_calls) as f64 / messages,
        (stats.bytes_written - before.bytes_written) as f64 / messages / 1024.0,
        store.size_bytes() / 1024,
        store.live_bytes() / 1024,
    );
}

#[test]
#[ignore = "benchmark: prints numbers, asserts nothing"]
fn store_cost_per_qos1_message() {
    for durable in [true, false] {
        for batch in [1, 10, 100] {
            run(batch, durable, false, 2000 / batch.max(10) * 2);
        }
        run(10, durable, true, 200);
    }
}
