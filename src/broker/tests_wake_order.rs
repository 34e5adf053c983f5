//! The order in which the core wakes connections: for an acknowledged
//! publish, subscribers must *run* before the publisher, so that they write
//! the message before the publisher writes its PUBACK. With a runtime that
//! runs tasks in wake order (`RUNS_IN_WAKE_ORDER`, the `sngate` binary) they
//! are woken first; with one that runs the task woken last first, last.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use bytes::Bytes;

use super::api::*;
use super::core::Broker;
use super::message::Message;
use super::out::RUNS_IN_WAKE_ORDER;
use super::outbox::OutboxQueue;
use super::test_client::{broker, connect_request};
use crate::qos::QoS;

/// Records the name of every connection woken, in order.
struct Named {
    name: &'static str,
    log: Arc<Mutex<Vec<&'static str>>>,
}

impl Wake for Named {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.log.lock().unwrap().push(self.name);
    }
}

struct Conn {
    conn: ConnId,
    queue: OutboxQueue,
}

impl Conn {
    /// Takes every queued event and leaves the connection waiting (its waker registered).
    fn drain_and_wait(
        &mut self,
        name: &'static str,
        log: &Arc<Mutex<Vec<&'static str>>>,
    ) -> Vec<Outbound> {
        let waker = Waker::from(Arc::new(Named {
            name,
            log: log.clone(),
        }));
        let mut cx = Context::from_waker(&waker);
        let mut events = Vec::new();
        while let Poll::Ready(Some((_, ev))) = self.queue.poll_recv(&mut cx) {
            events.push(ev);
        }
        events
    }
}

fn connect(b: &mut Broker, id: &str, now: Instant) -> Conn {
    let (outbox, queue) = Outbox::queue();
    let conn = ConnId::next();
    b.handle(Command::Connect(connect_request(conn, id, outbox)), now);
    Conn { conn, queue }
}

/// A publisher and a subscriber to `t` at `sub_qos`, both drained and waiting.
fn pair(
    b: &mut Broker,
    sub_qos: QoS,
    log: &Arc<Mutex<Vec<&'static str>>>,
    now: Instant,
) -> (Conn, Conn) {
    let mut publisher = connect(b, "pub", now);
    let mut subscriber = connect(b, "sub", now);
    b.handle(
        Command::Subscribe {
            conn: subscriber.conn,
            packet_id: 1,
            filters: vec![SubscribeRequest {
                filter: "t".into(),
                options: SubscriptionOptions {
                    qos: sub_qos,
                    ..SubscriptionOptions::default()
                },
            }],
            subscription_id: None,
        },
        now,
    );
    // With persistence on, the events above are held until released.
    b.release_held();
    publisher.drain_and_wait("publisher", log);
    subscriber.drain_and_wait("subscriber", log);
    log.lock().unwrap().clear();
    (publisher, subscriber)
}

fn publish(b: &mut Broker, c: &Conn, qos: QoS, packet_id: Option<u16>, now: Instant) {
    b.handle(
        Command::Publish {
            conn: c.conn,
            packet_id,
            message: Message::new("t", Bytes::from_static(b"m"), qos, false),
        },
        now,
    );
}

/// The wake order under which the subscriber runs before the publisher.
fn subscriber_runs_first() -> [&'static str; 2] {
    if RUNS_IN_WAKE_ORDER {
        ["subscriber", "publisher"]
    } else {
        ["publisher", "subscriber"]
    }
}

#[test]
fn qos1_subscriber_runs_before_its_publisher() {
    let (mut b, now) = broker();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (mut publisher, mut subscriber) = pair(&mut b, QoS::AtLeastOnce, &log, now);
    publish(&mut b, &publisher, QoS::AtLeastOnce, Some(7), now);
    assert_eq!(*log.lock().unwrap(), subscriber_runs_first());
    let acks = publisher.drain_and_wait("publisher", &log);
    assert!(
        matches!(acks[..], [Outbound::PubAck { packet_id: 7, .. }]),
        "{acks:?}"
    );
    let got = subscriber.drain_and_wait("subscriber", &log);
    assert!(matches!(got[..], [Outbound::Deliver(_)]), "{got:?}");
}

#[test]
fn qos2_subscriber_runs_before_its_publisher() {
    let (mut b, now) = broker();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (publisher, _subscriber) = pair(&mut b, QoS::ExactlyOnce, &log, now);
    publish(&mut b, &publisher, QoS::ExactlyOnce, Some(9), now);
    assert_eq!(*log.lock().unwrap(), subscriber_runs_first());
}

#[test]
fn qos0_subscriber_is_woken_once_and_the_publisher_not_at_all() {
    let (mut b, now) = broker();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (publisher, _subscriber) = pair(&mut b, QoS::AtMostOnce, &log, now);
    publish(&mut b, &publisher, QoS::AtMostOnce, None, now);
    assert_eq!(*log.lock().unwrap(), ["subscriber"]);
}

#[test]
fn a_delivery_after_an_acknowledged_publish_wakes_its_subscriber_at_once() {
    let (mut b, now) = broker();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (publisher, mut subscriber) = pair(&mut b, QoS::AtLeastOnce, &log, now);
    publish(&mut b, &publisher, QoS::AtLeastOnce, Some(1), now);
    subscriber.drain_and_wait("subscriber", &log);
    log.lock().unwrap().clear();
    // Deferral ends with the publish that started it.
    publish(&mut b, &publisher, QoS::AtMostOnce, None, now);
    assert_eq!(*log.lock().unwrap(), ["subscriber"]);
}

#[test]
fn with_persistence_a_committed_batch_runs_the_subscriber_before_its_publisher() {
    let (mut b, now) = broker();
    b.enable_persistence(now, 1_700_000_000_000);
    let log = Arc::new(Mutex::new(Vec::new()));
    let (publisher, _subscriber) = pair(&mut b, QoS::AtLeastOnce, &log, now);
    publish(&mut b, &publisher, QoS::AtLeastOnce, Some(3), now);
    assert!(
        log.lock().unwrap().is_empty(),
        "woken before the batch was committed"
    );
    let _ = b.take_ops();
    b.commit_succeeded();
    assert_eq!(*log.lock().unwrap(), subscriber_runs_first());
}
