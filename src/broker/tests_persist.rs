//! The core with a durable store: what survives a restart, and when
//! acknowledgements may go out. A restart is a new broker restored from a
//! clone of the same `MemoryStore`.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::api::*;
use super::core::{Broker, BrokerSettings};
use super::message::Message;
use super::metrics::Metrics;
use super::test_client::{Client, connect_request, payloads, subscribe};
use crate::qos::QoS;
use crate::store::{MemoryStore, Store};

/// Unix ms at the first start of every test.
const WALL: u64 = 1_700_000_000_000;

fn settings() -> BrokerSettings {
    BrokerSettings {
        sys_interval: Duration::ZERO,
        ..BrokerSettings::default()
    }
}

/// A broker restored from `store` at `now`, when the wall clock reads `wall`.
fn start(store: &MemoryStore, now: Instant, wall: u64) -> Broker {
    let snapshot = store.clone().load().unwrap();
    let mut b = Broker::new(settings(), Arc::new(Metrics::default()), now);
    b.restore(snapshot, now, wall);
    b
}

/// Ends a batch as the core task does: commit, then release.
fn commit(b: &mut Broker, store: &MemoryStore) {
    let ops = b.take_ops();
    match store.clone().commit(&ops, true) {
        Ok(_) => b.commit_succeeded(),
        Err(_) => b.commit_failed(),
    }
}

fn connect(b: &mut Broker, id: &str, clean: bool, expiry: u32, now: Instant) -> Client {
    let (outbox, rx) = Outbox::channel();
    let conn = ConnId::next();
    b.handle(
        Command::Connect(ConnectRequest {
            clean_start: clean,
            session_expiry: expiry,
            kind: ClientKind::Mqtt5,
            ..connect_request(conn, id, outbox)
        }),
        now,
    );
    Client { conn, rx }
}

fn publish(b: &mut Broker, c: &Client, topic: &str, payload: &str, qos: QoS, pid: Option<u16>) {
    publish_retained(b, c, topic, payload, qos, pid, false);
}

fn publish_retained(
    b: &mut Broker,
    c: &Client,
    topic: &str,
    payload: &str,
    qos: QoS,
    pid: Option<u16>,
    retain: bool,
) {
    b.handle(
        Command::Publish {
            conn: c.conn,
            packet_id: pid,
            message: Message::new(topic, Bytes::from(payload.to_string()), qos, retain),
        },
        Instant::now(),
    );
}

fn offline(b: &mut Broker, c: &Client, now: Instant) {
    b.handle(
        Command::Disconnect {
            conn: c.conn,
            kind: DisconnectKind::Graceful {
                publish_will: false,
                session_expiry: None,
            },
        },
        now,
    );
}

/// A subscriber "sub" with a persistent session, now offline, and a connected publisher.
fn offline_subscriber(b: &mut Broker, store: &MemoryStore, now: Instant) -> Client {
    let mut sub = connect(b, "sub", false, 3600, now);
    subscribe(b, &sub, "t/#", QoS::AtLeastOnce, now);
    commit(b, store);
    sub.events();
    offline(b, &sub, now);
    commit(b, store);
    connect(b, "pub", true, 0, now)
}

#[test]
fn persistent_session_and_its_queued_qos1_messages_survive_a_restart() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let mut publisher = offline_subscriber(&mut b, &store, now);
    publish(&mut b, &publisher, "t/1", "one", QoS::AtLeastOnce, Some(1));
    publish(&mut b, &publisher, "t/2", "two", QoS::AtLeastOnce, Some(2));
    commit(&mut b, &store);
    assert_eq!(publisher.events().len(), 3, "CONNACK and two PUBACKs");
    drop(b);

    let mut b = start(&store, now, WALL + 1000);
    let mut sub = connect(&mut b, "sub", false, 3600, now);
    commit(&mut b, &store);
    let events = sub.events();
    assert_eq!(
        events.first(),
        Some(&Outbound::ConnAck {
            session_present: true
        })
    );
    let resent: Vec<Delivery> = events
        .into_iter()
        .filter_map(|e| match e {
            Outbound::Deliver(d) => Some(d),
            _ => None,
        })
        .collect();
    assert_eq!(payloads(&resent), ["one", "two"]);
    // The subscription survived too: a new message still reaches "sub".
    publisher = connect(&mut b, "pub", true, 0, now);
    publish(
        &mut b,
        &publisher,
        "t/3",
        "three",
        QoS::AtLeastOnce,
        Some(3),
    );
    commit(&mut b, &store);
    assert_eq!(payloads(&sub.deliveries()), ["three"]);
}

#[test]
fn retained_message_survives_a_restart_and_its_removal_too() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let p = connect(&mut b, "pub", true, 0, now);
    publish_retained(&mut b, &p, "r/a", "kept", QoS::AtMostOnce, None, true);
    publish_retained(&mut b, &p, "r/b", "gone", QoS::AtLeastOnce, Some(1), true);
    publish_retained(&mut b, &p, "r/b", "", QoS::AtMostOnce, None, true);
    commit(&mut b, &store);
    drop(b);

    let mut b = start(&store, now, WALL);
    assert_eq!(b.retained_count(), 1);
    let mut s = connect(&mut b, "s", true, 0, now);
    subscribe(&mut b, &s, "r/#", QoS::AtLeastOnce, now);
    commit(&mut b, &store);
    assert_eq!(payloads(&s.deliveries()), ["kept"]);
}

#[test]
fn puback_is_held_until_the_batch_is_committed() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let mut p = offline_subscriber(&mut b, &store, now);
    commit(&mut b, &store);
    p.events();
    publish(&mut b, &p, "t/1", "x", QoS::AtLeastOnce, Some(7));
    assert!(p.events().is_empty(), "no PUBACK before the commit");
    let ops = b.take_ops();
    assert!(!ops.is_empty(), "the queued message is written");
    store.clone().commit(&ops, true).unwrap();
    assert_eq!(store.clone().load().unwrap().queues["sub"].len(), 1);
    b.commit_succeeded();
    assert_eq!(
        p.events(),
        [Outbound::PubAck {
            packet_id: 7,
            outcome: PublishOutcome::Delivered
        }]
    );
}

#[test]
fn failed_commit_refuses_qos1_with_quota_exceeded_while_qos0_still_flows() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let mut online = connect(&mut b, "online", true, 0, now);
    subscribe(&mut b, &online, "t/#", QoS::AtLeastOnce, now);
    let mut p = offline_subscriber(&mut b, &store, now);
    commit(&mut b, &store);
    online.events();
    p.events();

    store.fail_commits(Some(io::ErrorKind::StorageFull));
    publish(&mut b, &p, "t/1", "kept?", QoS::AtLeastOnce, Some(1));
    commit(&mut b, &store);
    assert_eq!(
        p.events(),
        [Outbound::PubAck {
            packet_id: 1,
            outcome: PublishOutcome::QuotaExceeded
        }]
    );
    assert!(b.store_failing());
    // While failing, QoS 1/2 publishes are refused up front; QoS 0 flows.
    publish(&mut b, &p, "t/2", "refused", QoS::AtLeastOnce, Some(2));
    publish(&mut b, &p, "t/3", "qos0", QoS::AtMostOnce, None);
    commit(&mut b, &store);
    assert_eq!(
        p.events(),
        [Outbound::PubAck {
            packet_id: 2,
            outcome: PublishOutcome::QuotaExceeded
        }]
    );
    let got = payloads(&online.deliveries());
    assert!(got.contains(&"qos0".to_string()), "{got:?}");
    assert!(!got.contains(&"refused".to_string()), "{got:?}");

    // The disk recovers: the next commit (the core task retries every
    // second) succeeds and publishes are accepted again.
    store.fail_commits(None);
    commit(&mut b, &store);
    publish(&mut b, &p, "t/4", "again", QoS::AtLeastOnce, Some(4));
    commit(&mut b, &store);
    assert!(!b.store_failing());
    assert_eq!(
        p.events(),
        [Outbound::PubAck {
            packet_id: 4,
            outcome: PublishOutcome::Delivered
        }]
    );
}

#[test]
fn failed_commit_frees_the_refused_qos2_packet_id() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let mut p = offline_subscriber(&mut b, &store, now);
    let _ = connect(&mut b, "p2", false, 60, now);
    commit(&mut b, &store);
    p.events();
    store.fail_commits(Some(io::ErrorKind::StorageFull));
    publish(&mut b, &p, "t/1", "a", QoS::ExactlyOnce, Some(9));
    commit(&mut b, &store);
    store.fail_commits(None);
    commit(&mut b, &store);
    p.events();
    // The same id now carries a new message: it must be routed, not taken
    // for a retransmission [MQTT-4.3.3-2].
    publish(&mut b, &p, "t/1", "b", QoS::ExactlyOnce, Some(9));
    commit(&mut b, &store);
    drop(b);
    let snapshot = store.clone().load().unwrap();
    let queued: Vec<_> = snapshot.queues["sub"]
        .iter()
        .map(|e| e.message.payload.clone())
        .collect();
    assert!(queued.contains(&Bytes::from_static(b"b")), "{queued:?}");
}

#[test]
fn offline_session_expiry_counts_wall_time_while_stopped() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let s = connect(&mut b, "s", false, 100, now);
    commit(&mut b, &store);
    offline(&mut b, &s, now);
    commit(&mut b, &store);
    drop(b);

    // 50 s later (wall clock), on a fresh monotonic clock: still there.
    let later = now + Duration::from_secs(5);
    let b = start(&store, later, WALL + 50_000);
    assert_eq!(b.clients_total(), 1);
    // It ends 50 s after that restart, not 100 s.
    let mut b = b;
    b.tick(later + Duration::from_secs(49));
    assert_eq!(b.clients_total(), 1);
    b.tick(later + Duration::from_secs(51));
    assert_eq!(b.clients_total(), 0);
    commit(&mut b, &store);
    assert!(store.clone().load().unwrap().sessions.is_empty());

    // Stopped for longer than the expiry: gone at start-up.
    let store = MemoryStore::new();
    let mut b = start(&store, now, WALL);
    let s = connect(&mut b, "s", false, 100, now);
    offline(&mut b, &s, now);
    commit(&mut b, &store);
    drop(b);
    let b = start(&store, now, WALL + 101_000);
    assert_eq!(b.clients_total(), 0);
}

#[test]
fn message_expiry_counts_wall_time_while_stopped() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let p = offline_subscriber(&mut b, &store, now);
    let mut m = Message::new("t/x", Bytes::from_static(b"short"), QoS::AtLeastOnce, false);
    m.expires_at = Some(now + Duration::from_secs(10));
    b.handle(
        Command::Publish {
            conn: p.conn,
            packet_id: Some(1),
            message: m,
        },
        now,
    );
    publish(&mut b, &p, "t/y", "long", QoS::AtLeastOnce, Some(2));
    commit(&mut b, &store);
    drop(b);

    let mut b = start(&store, now, WALL + 11_000);
    let mut sub = connect(&mut b, "sub", false, 3600, now);
    commit(&mut b, &store);
    assert_eq!(payloads(&sub.deliveries()), ["long"]);
}

#[test]
fn unacknowledged_qos2_delivery_is_resent_with_dup_and_its_packet_id_after_restart() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let mut sub = connect(&mut b, "sub", false, 3600, now);
    subscribe(&mut b, &sub, "t/#", QoS::ExactlyOnce, now);
    let p = connect(&mut b, "pub", true, 0, now);
    publish(&mut b, &p, "t/1", "once", QoS::ExactlyOnce, Some(1));
    commit(&mut b, &store);
    let first = sub.deliveries();
    assert_eq!(first.len(), 1);
    let id = first[0].packet_id;
    drop(b); // crash: "sub" never answered

    let mut b = start(&store, now, WALL);
    let mut sub = connect(&mut b, "sub", false, 3600, now);
    commit(&mut b, &store);
    let again = sub.deliveries();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].packet_id, again[0].dup), (id, true));
    // PUBREC after the restart: PUBREL, and after PUBCOMP nothing is left.
    let pid = id.unwrap();
    b.handle(
        Command::PubRec {
            conn: sub.conn,
            packet_id: pid,
        },
        now,
    );
    b.handle(
        Command::PubComp {
            conn: sub.conn,
            packet_id: pid,
        },
        now,
    );
    commit(&mut b, &store);
    assert!(store.clone().load().unwrap().queues.is_empty());
}

#[test]
fn incoming_qos2_id_survives_a_restart_so_a_resent_publish_is_not_delivered_twice() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let mut sub = offline_subscriber(&mut b, &store, now);
    let _ = &mut sub;
    let p = connect(&mut b, "p2", false, 3600, now);
    publish(&mut b, &p, "t/1", "once", QoS::ExactlyOnce, Some(4));
    commit(&mut b, &store);
    drop(b);

    let mut b = start(&store, now, WALL);
    let p = connect(&mut b, "p2", false, 3600, now);
    publish(&mut b, &p, "t/1", "once", QoS::ExactlyOnce, Some(4));
    commit(&mut b, &store);
    let mut s = connect(&mut b, "sub", false, 3600, now);
    commit(&mut b, &store);
    assert_eq!(payloads(&s.deliveries()), ["once"]);
}

#[test]
fn clean_sessions_write_nothing() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let mut s = connect(&mut b, "s", true, 0, now);
    subscribe(&mut b, &s, "t", QoS::AtLeastOnce, now);
    publish(&mut b, &s, "t", "x", QoS::AtLeastOnce, Some(1));
    assert!(b.take_ops().is_empty());
    b.release_held();
    assert_eq!(s.deliveries().len(), 1);
}

#[test]
fn without_persistence_events_are_not_held() {
    let now = Instant::now();
    let mut b = Broker::new(settings(), Arc::new(Metrics::default()), now);
    let mut s = connect(&mut b, "s", false, 3600, now);
    assert_eq!(s.events().len(), 1, "CONNACK at once");
    assert!(b.take_ops().is_empty());
}

#[test]
fn delayed_will_survives_a_restart() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let mut watcher = connect(&mut b, "w", false, 3600, now);
    subscribe(&mut b, &watcher, "will/#", QoS::AtLeastOnce, now);
    let (outbox, _rx) = Outbox::channel();
    let conn = ConnId::next();
    b.handle(
        Command::Connect(ConnectRequest {
            conn,
            client_id: "dying".into(),
            clean_start: true,
            session_expiry: 3600,
            will: Some(Will {
                message: Message::new(
                    "will/d",
                    Bytes::from_static(b"bye"),
                    QoS::AtLeastOnce,
                    false,
                ),
                delay: 30,
            }),
            receive_maximum: 10,
            username: None,
            kind: ClientKind::Mqtt5,
            outbox,
            queue_limits: None,
        }),
        now,
    );
    b.handle(
        Command::Disconnect {
            conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    commit(&mut b, &store);
    watcher.events();
    drop(b);

    let later = now + Duration::from_secs(1);
    let mut b = start(&store, later, WALL + 20_000);
    let mut watcher = connect(&mut b, "w", false, 3600, later);
    b.tick(later + Duration::from_secs(9));
    commit(&mut b, &store);
    assert!(
        watcher.deliveries().is_empty(),
        "due 10 s after the restart"
    );
    b.tick(later + Duration::from_secs(11));
    commit(&mut b, &store);
    assert_eq!(payloads(&watcher.deliveries()), ["bye"]);
}

#[test]
fn sensor_topic_ids_are_kept_with_a_persistent_session_and_dropped_with_it() {
    let store = MemoryStore::new();
    let now = Instant::now();
    let mut b = start(&store, now, WALL);
    let _s = connect(&mut b, "sensor", false, 3600, now);
    b.handle(
        Command::PersistSensorTopics {
            client_id: "sensor".into(),
            topics: vec![(1, "a/b".into()), (2, "c".into())],
        },
        now,
    );
    commit(&mut b, &store);
    let kept = store.clone().load().unwrap().sn_topics;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].topics,
        [(1, "a/b".to_string()), (2, "c".to_string())]
    );
    let _s = connect(&mut b, "sensor", true, 0, now);
    b.handle(
        Command::PersistSensorTopics {
            client_id: "sensor".into(),
            topics: vec![(1, "x".into())],
        },
        now,
    );
    commit(&mut b, &store);
    assert!(store.clone().load().unwrap().sn_topics.is_empty());
}
