//! The durable store under kill -9: a child process commits numbered batches
//! and reports each; whatever it reported is there after the kill.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::Rng;
use sngate::store::{MessageRecord, QueueEntry, QueueState, RedbStore, Store, StoreOp};

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

const CHILD_DIR: &str = "SNGATE_STORE_CRASH_DIR";
const CHILD_MODE: &str = "SNGATE_STORE_CRASH_MODE";

/// Not a test on its own: the body of the child process the crash tests kill.
#[test]
#[ignore = "run by the crash tests as a child process"]
fn crash_child() {
    let (Ok(dir), Ok(mode)) = (std::env::var(CHILD_DIR), std::env::var(CHILD_MODE)) else {
        return;
    };
    let mut store = RedbStore::open(Path::new(&dir), 0).unwrap();
    let next = store
        .load()
        .unwrap()
        .counters
        .get("next")
        .copied()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    // The harness has printed "test crash_child ... " without a newline.
    writeln!(out).unwrap();
    let batch = |i: u64| {
        vec![
            StoreOp::PutCounter {
                name: format!("batch-{i}"),
                value: i,
            },
            StoreOp::PutCounter {
                name: "next".into(),
                value: i + 1,
            },
            StoreOp::PutQueueEntry {
                client_id: "c".into(),
                entry: QueueEntry {
                    seq: i,
                    message: message("t", &[7; 200]),
                    subscription_ids: vec![],
                    state: QueueState::Queued,
                },
            },
        ]
    };
    if mode == "durable" {
        for i in next.. {
            store.commit(&batch(i), true).unwrap();
            writeln!(out, "committed {i}").unwrap();
            out.flush().unwrap();
        }
    } else {
        for i in next..next + 50 {
            store.commit(&batch(i), false).unwrap();
        }
        store.commit(&[], true).unwrap();
        for i in next..next + 50 {
            writeln!(out, "committed {i}").unwrap();
        }
        writeln!(out, "flushed").unwrap();
        out.flush().unwrap();
        loop {
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Runs the child until `until` says so, kills it with SIGKILL, and returns
/// the batch numbers it reported committed.
fn run_and_kill(dir: &Path, mode: &str, until: impl FnOnce(&Arc<Mutex<Vec<String>>>)) -> Vec<u64> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "crash_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR, dir)
        .env(CHILD_MODE, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let lines = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        })
    };
    until(&lines);
    child.kill().unwrap(); // SIGKILL on Unix
    child.wait().unwrap();
    reader.join().unwrap();
    let lines = lines.lock().unwrap();
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("committed "))
        .map(|n| n.parse().unwrap())
        .collect()
}

fn wait_for(lines: &Arc<Mutex<Vec<String>>>, pred: impl Fn(&[String]) -> bool) {
    for _ in 0..3000 {
        if pred(&lines.lock().unwrap()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    panic!("child never got there");
}

fn assert_all_present(dir: &Path, reported: &[u64]) {
    let mut store = RedbStore::open(dir, 0).unwrap();
    let snap = store.load().unwrap();
    let queued: std::collections::HashSet<u64> = snap
        .queues
        .get("c")
        .into_iter()
        .flatten()
        .map(|e| e.seq)
        .collect();
    for n in reported {
        assert_eq!(
            snap.counters.get(&format!("batch-{n}")),
            Some(n),
            "batch {n} lost"
        );
        assert!(queued.contains(n), "queue entry {n} lost");
    }
}

#[test]
fn kill_9_during_durable_commits_loses_no_reported_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rng();
    let mut reported = Vec::new();
    for _ in 0..20 {
        let delay = Duration::from_millis(rng.random_range(0..150));
        reported.extend(run_and_kill(dir.path(), "durable", |lines| {
            wait_for(lines, |l| !l.is_empty());
            std::thread::sleep(delay);
        }));
        assert_all_present(dir.path(), &reported);
    }
    assert!(reported.len() >= 20);
}

#[test]
fn kill_9_after_an_empty_durable_commit_keeps_earlier_non_durable_ones() {
    let dir = tempfile::tempdir().unwrap();
    let reported = run_and_kill(dir.path(), "lazy", |lines| {
        wait_for(lines, |l| l.iter().any(|l| l == "flushed"));
    });
    assert_eq!(reported.len(), 50);
    assert_all_present(dir.path(), &reported);
}
