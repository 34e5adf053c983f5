//! Back-pressure: a QoS 1/2 publisher that fills a subscriber's queue is
//! slowed, never acknowledged-then-dropped; offline sessions keep the
//! drop-when-full bound; MQTT-SN sensors are told "congestion".

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::api::*;
use super::core::{Broker, BrokerSettings};
use super::message::Message;
use super::metrics::Metrics;
use super::test_client::connect_request;
use crate::qos::QoS;

const MAX_QUEUED: usize = 4;

struct Client {
    conn: ConnId,
    rx: OutboxReceiver,
    outbox: Outbox,
}

impl Client {
    fn events(&mut self) -> Vec<Outbound> {
        let mut out = Vec::new();
        while let Ok((_, ev)) = self.rx.try_recv() {
            out.push(ev);
        }
        out
    }
}

fn broker() -> (Broker, Instant) {
    let now = Instant::now();
    let settings = BrokerSettings {
        sys_interval: Duration::ZERO,
        max_queued_messages: MAX_QUEUED,
        max_inflight_messages: 1,
        ..BrokerSettings::default()
    };
    (
        Broker::new(settings, Arc::new(Metrics::default()), now),
        now,
    )
}

fn connect(b: &mut Broker, id: &str, kind: ClientKind, expiry: u32, now: Instant) -> Client {
    let (outbox, rx) = Outbox::channel();
    let conn = ConnId::next();
    b.handle(
        Command::Connect(ConnectRequest {
            clean_start: false,
            session_expiry: expiry,
            kind,
            ..connect_request(conn, id, outbox.clone())
        }),
        now,
    );
    Client { conn, rx, outbox }
}

fn subscribe(b: &mut Broker, c: &mut Client, filter: &str, now: Instant) {
    b.handle(
        Command::Subscribe {
            conn: c.conn,
            packet_id: 1,
            filters: vec![SubscribeRequest {
                filter: filter.into(),
                options: SubscriptionOptions {
                    qos: QoS::AtLeastOnce,
                    ..SubscriptionOptions::default()
                },
            }],
            subscription_id: None,
        },
        now,
    );
    c.events();
}

/// An online MQTT 3.1.1 client "sub" with a QoS 1 subscription to `t/#`.
fn subscriber_to_all(b: &mut Broker, now: Instant) -> Client {
    let mut sub = connect(b, "sub", ClientKind::Mqtt3, 0, now);
    subscribe(b, &mut sub, "t/#", now);
    sub
}

/// Publishes QoS 1 messages "0".."n-1" and returns the acknowledgements.
fn publish_n(b: &mut Broker, c: &mut Client, n: u16, now: Instant) -> Vec<PublishOutcome> {
    for id in 1..=n {
        b.handle(
            Command::Publish {
                conn: c.conn,
                packet_id: Some(id),
                message: Message::new(
                    "t/x",
                    Bytes::from((id - 1).to_string()),
                    QoS::AtLeastOnce,
                    false,
                ),
            },
            now,
        );
    }
    c.events()
        .into_iter()
        .filter_map(|e| match e {
            Outbound::PubAck { outcome, .. } => Some(outcome),
            _ => None,
        })
        .collect()
}

/// Acknowledges every delivery until none are left; returns their payloads.
fn drain(b: &mut Broker, c: &mut Client, now: Instant) -> Vec<String> {
    let mut got = Vec::new();
    loop {
        let deliveries: Vec<Delivery> = c
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Outbound::Deliver(d) => Some(d),
                _ => None,
            })
            .collect();
        if deliveries.is_empty() {
            return got;
        }
        for d in deliveries {
            got.push(String::from_utf8_lossy(&d.message.payload).into_owned());
            if let Some(packet_id) = d.packet_id {
                b.handle(
                    Command::PubAck {
                        conn: c.conn,
                        packet_id,
                    },
                    now,
                );
            }
        }
    }
}

fn numbers(n: u16) -> Vec<String> {
    (0..n).map(|i| i.to_string()).collect()
}

#[test]
fn qos1_publish_beyond_a_full_online_queue_is_kept_and_blocks_the_publisher() {
    let (mut b, now) = broker();
    let mut sub = subscriber_to_all(&mut b, now);
    let mut publ = connect(&mut b, "pub", ClientKind::Mqtt3, 0, now);
    let acks = publish_n(&mut b, &mut publ, 20, now);
    assert_eq!(acks, vec![PublishOutcome::Delivered; 20]);
    assert!(publ.outbox.is_blocked());
    assert_eq!(b.stats().delivery.dropped, 0);
    assert_eq!(drain(&mut b, &mut sub, now), numbers(20));
}

#[test]
fn a_blocked_publisher_is_unblocked_once_the_queue_drains_to_half_its_bound() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", ClientKind::Mqtt5, 0, now);
    subscribe(&mut b, &mut sub, "t/#", now);
    let mut publ = connect(&mut b, "pub", ClientKind::Mqtt5, 0, now);
    publish_n(&mut b, &mut publ, 12, now);
    assert!(publ.outbox.is_blocked());
    drain(&mut b, &mut sub, now);
    assert!(!publ.outbox.is_blocked());
}

#[test]
fn a_subscriber_going_offline_unblocks_its_publishers() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", ClientKind::Mqtt3, u32::MAX, now);
    subscribe(&mut b, &mut sub, "t/#", now);
    let mut publ = connect(&mut b, "pub", ClientKind::Mqtt3, 0, now);
    publish_n(&mut b, &mut publ, 12, now);
    assert!(publ.outbox.is_blocked());
    b.handle(
        Command::Disconnect {
            conn: sub.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    assert!(!publ.outbox.is_blocked());
}

#[test]
fn an_offline_persistent_session_drops_when_full_and_never_blocks_publishers() {
    let (mut b, now) = broker();
    let mut sub = connect(&mut b, "sub", ClientKind::Mqtt3, u32::MAX, now);
    subscribe(&mut b, &mut sub, "t/#", now);
    b.handle(
        Command::Disconnect {
            conn: sub.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
    let mut publ = connect(&mut b, "pub", ClientKind::Mqtt3, 0, now);
    let acks = publish_n(&mut b, &mut publ, 10, now);
    assert_eq!(acks, vec![PublishOutcome::Delivered; 10]);
    assert!(!publ.outbox.is_blocked());
    assert_eq!(b.stats().delivery.dropped, 10 - MAX_QUEUED as u64);
    let mut back = connect(&mut b, "sub", ClientKind::Mqtt3, u32::MAX, now);
    assert_eq!(drain(&mut b, &mut back, now), numbers(MAX_QUEUED as u16));
}

#[test]
fn a_publisher_is_not_blocked_by_its_own_subscription() {
    let (mut b, now) = broker();
    let mut me = connect(&mut b, "me", ClientKind::Mqtt3, 0, now);
    subscribe(&mut b, &mut me, "t/#", now);
    for id in 1..=12u16 {
        b.handle(
            Command::Publish {
                conn: me.conn,
                packet_id: Some(id),
                message: Message::new("t/x", Bytes::from("m"), QoS::AtLeastOnce, false),
            },
            now,
        );
    }
    assert!(!me.outbox.is_blocked());
    assert_eq!(b.stats().delivery.dropped, 0);
}

#[test]
fn mqttsn_qos1_publish_meeting_a_full_queue_is_refused_not_dropped() {
    let (mut b, now) = broker();
    let mut sub = subscriber_to_all(&mut b, now);
    let mut sensor = connect(&mut b, "sensor", ClientKind::MqttSn, 0, now);
    let acks = publish_n(&mut b, &mut sensor, 10, now);
    // One in flight and MAX_QUEUED queued are accepted; the rest are refused
    // (the gateway answers "rejected: congestion", MQTT-SN 1.2 §5.4.12, G-44).
    let accepted = 1 + MAX_QUEUED;
    assert_eq!(
        acks,
        [
            vec![PublishOutcome::Delivered; accepted],
            vec![PublishOutcome::QuotaExceeded; 10 - accepted]
        ]
        .concat()
    );
    assert!(!sensor.outbox.is_blocked());
    assert_eq!(b.stats().delivery.dropped, 0);
    assert_eq!(drain(&mut b, &mut sub, now), numbers(accepted as u16));
}

#[test]
fn a_bridge_publisher_keeps_the_drop_when_full_rule() {
    let (mut b, now) = broker();
    let _sub = subscriber_to_all(&mut b, now);
    let mut bridge = connect(&mut b, "bridge", ClientKind::Bridge, 0, now);
    publish_n(&mut b, &mut bridge, 10, now);
    assert!(!bridge.outbox.is_blocked());
    assert_eq!(b.stats().delivery.dropped, 10 - 1 - MAX_QUEUED as u64);
}

#[test]
fn a_slowed_publisher_is_refused_not_acknowledged_and_dropped_at_the_hard_bound() {
    let (mut b, now) = broker();
    let mut sub = subscriber_to_all(&mut b, now);
    let mut publ = connect(&mut b, "pub", ClientKind::Mqtt3, 0, now);
    // One in flight, then the queue up to its hard bound; the next one would
    // be dropped after its PUBACK.
    let accepted = super::session::overflow_cap(MAX_QUEUED) + 1;
    let n = u16::try_from(accepted + 1).unwrap();
    let acks = publish_n(&mut b, &mut publ, n, now);
    assert_eq!(acks.len(), accepted + 1);
    assert!(
        acks[..accepted]
            .iter()
            .all(|a| *a == PublishOutcome::Delivered)
    );
    assert_eq!(acks[accepted], PublishOutcome::QuotaExceeded);
    assert_eq!(b.stats().delivery.dropped, 0);
    assert_eq!(b.stats().delivery.refused_at_cap, 1);
    assert_eq!(drain(&mut b, &mut sub, now), numbers(n - 1));
}
