//! The durable store: what is committed is what is loaded, across reopen,
//! damaged files, format versions, size limits and failing disks.

use std::collections::HashMap;
use std::path::Path;

use bytes::Bytes;
use sngate::store::{
    MemoryStore, MessageRecord, PropertiesRecord, QueueEntry, QueueState, RedbStore, STORE_FILE,
    STORE_FORMAT_VERSION, SessionRecord, SnTopicsRecord, Store, StoreError, StoreOp,
    SubscriptionRecord, WillRecord, move_aside,
};

fn message(topic: &str, payload: &[u8]) -> MessageRecord {
    MessageRecord {
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload),
        qos: 1,
        retain: false,
        properties: None,
        expires_at_ms: None,
        publisher: None,
    }
}

fn full_message() -> MessageRecord {
    MessageRecord {
        topic: "sensors/1/temp".into(),
        payload: Bytes::from_static(b"21.5"),
        qos: 2,
        retain: true,
        properties: Some(PropertiesRecord {
            payload_format_utf8: Some(true),
            content_type: Some("text/plain".into()),
            response_topic: Some("reply/1".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into()), ("k".into(), "w".into())],
        }),
        expires_at_ms: Some(1_900_000_000_000),
        publisher: Some("sensor-1".into()),
    }
}

fn session(client_id: &str) -> SessionRecord {
    SessionRecord {
        client_id: client_id.into(),
        kind: 1,
        username: Some("alice".into()),
        expiry_secs: 3600,
        expires_at_ms: Some(1_800_000_000_000),
        subscriptions: vec![SubscriptionRecord {
            filter: "a/+/c".into(),
            qos: 2,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2,
            subscription_id: Some(7),
        }],
        will: Some(WillRecord {
            message: message("will/topic", b"gone"),
            delay_secs: 30,
        }),
        will_due_ms: Some(1_800_000_030_000),
    }
}

fn entry(seq: u64, state: QueueState) -> QueueEntry {
    QueueEntry {
        seq,
        message: full_message(),
        subscription_ids: vec![7, 9],
        state,
    }
}

fn queue_put(client_id: &str, seq: u64) -> StoreOp {
    StoreOp::PutQueueEntry {
        client_id: client_id.into(),
        entry: entry(seq, QueueState::Queued),
    }
}

fn every_op_kind() -> Vec<StoreOp> {
    vec![
        StoreOp::PutSession(session("c1")),
        StoreOp::PutSession(session("gone")),
        StoreOp::DeleteSession("gone".into()),
        queue_put("c1", 2),
        StoreOp::PutQueueEntry {
            client_id: "c1".into(),
            entry: entry(1, QueueState::AwaitPubAck { packet_id: 10 }),
        },
        StoreOp::PutQueueEntry {
            client_id: "c1".into(),
            entry: entry(3, QueueState::AwaitPubRec { packet_id: 11 }),
        },
        StoreOp::PutQueueEntry {
            client_id: "c1".into(),
            entry: entry(4, QueueState::AwaitPubComp { packet_id: 12 }),
        },
        queue_put("c1", 5),
        StoreOp::DeleteQueueEntry {
            client_id: "c1".into(),
            seq: 5,
        },
        StoreOp::PutRetained(full_message()),
        StoreOp::PutRetained(message("cleared", b"x")),
        StoreOp::DeleteRetained("cleared".into()),
        StoreOp::PutIncomingQos2 {
            client_id: "c1".into(),
            packet_id: 40,
        },
        StoreOp::PutIncomingQos2 {
            client_id: "c1".into(),
            packet_id: 41,
        },
        StoreOp::DeleteIncomingQos2 {
            client_id: "c1".into(),
            packet_id: 41,
        },
        StoreOp::PutSnTopics(SnTopicsRecord {
            client_id: "sensor-1".into(),
            topics: vec![(1, "a/b".into()), (2, "c/d".into())],
        }),
        StoreOp::PutSnTopics(SnTopicsRecord {
            client_id: "sensor-2".into(),
            topics: vec![(1, "x".into())],
        }),
        StoreOp::DeleteSnTopics("sensor-2".into()),
        StoreOp::PutCounter {
            name: "next_seq".into(),
            value: 6,
        },
    ]
}

fn assert_every_op_kind_loaded(store: &mut dyn Store) {
    let snap = store.load().unwrap();
    assert_eq!(snap.sessions, vec![session("c1")]);
    let seqs: Vec<_> = snap.queues["c1"].iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    assert_eq!(
        snap.queues["c1"][0],
        entry(1, QueueState::AwaitPubAck { packet_id: 10 })
    );
    assert_eq!(
        snap.queues["c1"][3],
        entry(4, QueueState::AwaitPubComp { packet_id: 12 })
    );
    assert_eq!(snap.queues.len(), 1);
    assert_eq!(snap.retained, vec![full_message()]);
    assert_eq!(
        snap.incoming_qos2,
        HashMap::from([("c1".to_string(), vec![40])])
    );
    assert_eq!(
        snap.sn_topics,
        vec![SnTopicsRecord {
            client_id: "sensor-1".into(),
            topics: vec![(1, "a/b".into()), (2, "c/d".into())],
        }]
    );
    assert_eq!(snap.counters, HashMap::from([("next_seq".to_string(), 6)]));
}

fn delete_session_cascades(store: &mut dyn Store) {
    store
        .commit(
            &[
                StoreOp::PutSession(session("a")),
                StoreOp::PutSession(session("ab")),
                queue_put("a", 1),
                queue_put("a", 2),
                queue_put("ab", 1),
                StoreOp::PutIncomingQos2 {
                    client_id: "a".into(),
                    packet_id: 1,
                },
                StoreOp::PutIncomingQos2 {
                    client_id: "ab".into(),
                    packet_id: 1,
                },
            ],
            true,
        )
        .unwrap();
    store
        .commit(&[StoreOp::DeleteSession("a".into())], true)
        .unwrap();
    let snap = store.load().unwrap();
    assert_eq!(snap.sessions, vec![session("ab")]);
    assert_eq!(snap.queues.keys().collect::<Vec<_>>(), vec!["ab"]);
    assert_eq!(
        snap.incoming_qos2,
        HashMap::from([("ab".to_string(), vec![1])])
    );
}

#[test]
fn redb_commit_and_load_round_trip_every_op_kind() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path(), 0).unwrap();
    store.commit(&every_op_kind(), true).unwrap();
    assert_every_op_kind_loaded(&mut store);
}

#[test]
fn memory_commit_and_load_round_trip_every_op_kind() {
    let mut store = MemoryStore::new();
    store.commit(&every_op_kind(), true).unwrap();
    assert_every_op_kind_loaded(&mut store);
}

#[test]
fn redb_delete_session_removes_its_queue_and_qos2_ids_only() {
    let dir = tempfile::tempdir().unwrap();
    delete_session_cascades(&mut RedbStore::open(dir.path(), 0).unwrap());
}

#[test]
fn memory_delete_session_removes_its_queue_and_qos2_ids_only() {
    delete_session_cascades(&mut MemoryStore::new());
}

#[test]
fn memory_store_clones_share_contents_like_a_restart() {
    let mut first = MemoryStore::new();
    let mut second = first.clone();
    first.commit(&every_op_kind(), true).unwrap();
    drop(first);
    assert_every_op_kind_loaded(&mut second);
}

#[test]
fn memory_store_can_simulate_a_full_disk() {
    let mut store = MemoryStore::new();
    store.fail_commits(Some(std::io::ErrorKind::StorageFull));
    let err = store.commit(&[queue_put("c", 1)], true).unwrap_err();
    assert!(err.is_full(), "{err}");
    store.fail_commits(None);
    store.commit(&[queue_put("c", 1)], true).unwrap();
    assert_eq!(store.load().unwrap().queues["c"].len(), 1);
    assert_eq!(store.stats().failed_commits, 1);
}

#[test]
fn data_survives_closing_and_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path(), 0).unwrap();
        store.commit(&every_op_kind(), true).unwrap();
    }
    let mut store = RedbStore::open(dir.path(), 0).unwrap();
    assert_every_op_kind_loaded(&mut store);
}

#[test]
fn non_durable_commits_are_kept_by_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path(), 0).unwrap();
        store.commit(&every_op_kind(), false).unwrap();
    }
    assert_every_op_kind_loaded(&mut RedbStore::open(dir.path(), 0).unwrap());
}

#[test]
fn open_creates_a_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("var/lib/sngate");
    let store = RedbStore::open(&nested, 0).unwrap();
    assert_eq!(store.path(), nested.join(STORE_FILE));
    assert!(store.path().exists());
}

#[test]
fn a_second_open_of_the_same_store_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RedbStore::open(dir.path(), 0).unwrap();
    let err = RedbStore::open(dir.path(), 0).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
}

#[test]
fn a_durable_commit_fsyncs_and_a_non_durable_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path(), 0).unwrap();
    let lazy = store.commit(&[queue_put("c", 1)], false).unwrap();
    assert_eq!(lazy.syncs, 0);
    let durable = store.commit(&[queue_put("c", 2)], true).unwrap();
    assert!(durable.syncs >= 1);
    let stats = store.stats();
    assert_eq!((stats.commits, stats.durable_commits, stats.ops), (2, 1, 2));
    assert!(stats.bytes_written > 0 && stats.write_calls > 0);
}

// ---- damaged files -------------------------------------------------------

fn store_with_data(dir: &Path) {
    let mut store = RedbStore::open(dir, 0).unwrap();
    let ops: Vec<_> = (0..200).map(|seq| queue_put("c", seq)).collect();
    store.commit(&ops, true).unwrap();
    store.commit(&every_op_kind(), true).unwrap();
}

fn assert_corrupt_then_recoverable(dir: &Path) {
    let err = RedbStore::open(dir, 0).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{text}");
    assert!(
        text.contains(&dir.join(STORE_FILE).display().to_string()),
        "{text}"
    );
    assert!(text.contains("--reset-store"), "{text}");

    let moved = move_aside(dir).unwrap();
    assert!(moved.exists());
    assert!(
        moved
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("sngate.redb.damaged-")
    );
    let mut fresh = RedbStore::open(dir, 0).unwrap();
    assert_eq!(fresh.load().unwrap(), Default::default());
}

#[test]
fn overwritten_bytes_in_the_middle_make_the_store_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path());
    let path = dir.path().join(STORE_FILE);
    let mut raw = std::fs::read(&path).unwrap();
    // Damage every copy of a stored topic: data pages in the middle of the
    // file, leaving the header and commit slots intact.
    let needle = b"sensors/1/temp";
    let hits: Vec<usize> = raw
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| w == needle)
        .map(|(i, _)| i)
        .collect();
    assert!(!hits.is_empty() && hits[0] > 4096);
    for i in hits {
        raw[i] ^= 0x55;
    }
    std::fs::write(&path, raw).unwrap();
    assert_corrupt_then_recoverable(dir.path());
}

#[test]
fn a_truncated_file_makes_the_store_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    store_with_data(dir.path());
    let path = dir.path().join(STORE_FILE);
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 3).unwrap();
    drop(file);
    assert_corrupt_then_recoverable(dir.path());
}

#[test]
fn a_file_that_is_not_a_store_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join(STORE_FILE),
        b"[persistence]\nenabled = true\n",
    )
    .unwrap();
    assert_corrupt_then_recoverable(dir.path());
}

#[test]
fn move_aside_without_a_store_reports_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let err = move_aside(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
}

// ---- format versions -----------------------------------------------------

#[test]
fn a_store_from_a_newer_version_is_refused_with_both_versions() {
    let dir = tempfile::tempdir().unwrap();
    drop(RedbStore::open(dir.path(), 0).unwrap());
    {
        let db = redb::Database::open(dir.path().join(STORE_FILE)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");
            let mut table = txn.open_table(meta).unwrap();
            table
                .insert("format_version", STORE_FORMAT_VERSION + 1)
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let err = RedbStore::open(dir.path(), 0).unwrap_err();
    match &err {
        StoreError::UnsupportedVersion {
            found, expected, ..
        } => assert_eq!(
            (*found, *expected),
            (STORE_FORMAT_VERSION + 1, STORE_FORMAT_VERSION)
        ),
        other => panic!("expected UnsupportedVersion, got {other}"),
    }
    assert!(err.to_string().contains("newer sngate"), "{err}");
}

// ---- size limit and failing disks ------------------------------------------

#[test]
fn max_size_refuses_growth_whole_and_accepts_it_after_deleting() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path(), 4096).unwrap();
    store
        .commit(&[StoreOp::PutRetained(message("big", &[1; 3000]))], true)
        .unwrap();

    let err = store
        .commit(
            &[
                StoreOp::PutRetained(message("small", b"x")),
                StoreOp::PutRetained(message("big2", &[2; 3000])),
            ],
            true,
        )
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Full { max_size: 4096, .. }),
        "{err}"
    );
    assert!(err.is_full());
    let topics: Vec<_> = store
        .load()
        .unwrap()
        .retained
        .into_iter()
        .map(|m| m.topic)
        .collect();
    assert_eq!(topics, vec!["big"], "nothing of the refused commit is kept");

    store
        .commit(&[StoreOp::DeleteRetained("big".into())], true)
        .unwrap();
    store
        .commit(&[StoreOp::PutRetained(message("big2", &[2; 3000]))], true)
        .unwrap();
    assert!(store.live_bytes() <= 4096);
}

#[test]
fn max_size_counts_data_already_in_the_store_at_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut store = RedbStore::open(dir.path(), 0).unwrap();
        store
            .commit(&[StoreOp::PutRetained(message("big", &[1; 3000]))], true)
            .unwrap();
    }
    let mut store = RedbStore::open(dir.path(), 4096).unwrap();
    assert!(store.live_bytes() > 3000);
    let err = store
        .commit(&[StoreOp::PutRetained(message("big2", &[2; 3000]))], true)
        .unwrap_err();
    assert!(err.is_full(), "{err}");
}

#[test]
fn a_failing_disk_refuses_commits_and_recovers_when_writes_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = RedbStore::open(dir.path(), 0).unwrap();
    store.commit(&[queue_put("c", 1)], true).unwrap();

    store.inject_write_failure(Some(std::io::ErrorKind::StorageFull));
    let err = store.commit(&[queue_put("c", 2)], true).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(err.is_full(), "ENOSPC counts as full: {err}");
    // Still failing: the reopen itself cannot write.
    assert!(store.commit(&[queue_put("c", 3)], true).is_err());

    store.inject_write_failure(None);
    store.commit(&[queue_put("c", 4)], true).unwrap();
    let seqs: Vec<_> = store.load().unwrap().queues["c"]
        .iter()
        .map(|e| e.seq)
        .collect();
    assert!(seqs.contains(&1) && seqs.contains(&4), "{seqs:?}");
    assert_eq!(store.stats().failed_commits, 2);
}
