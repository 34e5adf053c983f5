//! MQTT 5 scenarios of the broker core with a hand-driven clock: session and
//! message expiry, will delay, Receive Maximum and shared subscriptions.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::api::*;
use super::core::Broker;
use super::message::Message;
use super::test_client::{Client, broker, connect_request};
use crate::qos::QoS;

struct Opts {
    clean: bool,
    expiry: u32,
    will: Option<Will>,
    receive_maximum: u16,
}

const CLEAN: Opts = Opts {
    clean: true,
    expiry: 0,
    will: None,
    receive_maximum: u16::MAX,
};

fn connect(b: &mut Broker, id: &str, o: Opts, now: Instant) -> Client {
    let (outbox, rx) = Outbox::channel();
    let conn = ConnId::next();
    b.handle(
        Command::Connect(ConnectRequest {
            clean_start: o.clean,
            session_expiry: o.expiry,
            will: o.will,
            receive_maximum: o.receive_maximum,
            kind: ClientKind::Mqtt5,
            ..connect_request(conn, id, outbox)
        }),
        now,
    );
    Client { conn, rx }
}

fn persistent(expiry: u32) -> Opts {
    Opts {
        clean: false,
        expiry,
        ..CLEAN
    }
}

fn subscribe(b: &mut Broker, c: &mut Client, filter: &str, qos: QoS, now: Instant) {
    b.handle(
        Command::Subscribe {
            conn: c.conn,
            packet_id: 1,
            filters: vec![SubscribeRequest {
                filter: filter.into(),
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            }],
            subscription_id: None,
        },
        now,
    );
    c.events();
}

fn message(topic: &str, payload: &str, qos: QoS) -> Message {
    Message::new(topic, Bytes::from(payload.to_string()), qos, false)
}

fn publish(b: &mut Broker, c: &Client, m: Message, now: Instant) {
    let packet_id = (m.qos != QoS::AtMostOnce).then_some(1);
    b.handle(
        Command::Publish {
            conn: c.conn,
            packet_id,
            message: m,
        },
        now,
    );
}

fn drop_connection(b: &mut Broker, c: &Client, now: Instant) {
    b.handle(
        Command::Disconnect {
            conn: c.conn,
            kind: DisconnectKind::Abnormal,
        },
        now,
    );
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn message_expiry_counts_down_while_queued_for_an_offline_session() {
    let (mut b, now) = broker();
    let mut s = connect(&mut b, "s", persistent(u32::MAX), now);
    subscribe(&mut b, &mut s, "t", QoS::AtLeastOnce, now);
    drop_connection(&mut b, &s, now);
    let p = connect(&mut b, "p", CLEAN, now);
    let mut m = message("t", "x", QoS::AtLeastOnce);
    m.expires_at = Some(now + secs(10));
    publish(&mut b, &p, m, now);

    let later = now + secs(4);
    let mut s = connect(&mut b, "s", persistent(u32::MAX), later);
    let d = s.deliveries();
    assert_eq!(d.len(), 1);
    // MQTT 5 §3.3.2.3.3: forwarded with the time that is left.
    assert_eq!(d[0].message.remaining_expiry(later), Some(6));
}

#[test]
fn message_that_expired_while_queued_is_not_delivered() {
    let (mut b, now) = broker();
    let mut s = connect(&mut b, "s", persistent(u32::MAX), now);
    subscribe(&mut b, &mut s, "t", QoS::AtLeastOnce, now);
    drop_connection(&mut b, &s, now);
    let p = connect(&mut b, "p", CLEAN, now);
    let mut short = message("t", "short", QoS::AtLeastOnce);
    short.expires_at = Some(now + secs(2));
    publish(&mut b, &p, short, now);
    publish(&mut b, &p, message("t", "forever", QoS::AtLeastOnce), now);
    let mut s = connect(&mut b, "s", persistent(u32::MAX), now + secs(3));
    assert_eq!(s.payloads(), vec!["forever"]);
}

#[test]
fn session_expiry_set_at_disconnect_replaces_the_connect_value() {
    let (mut b, now) = broker();
    let s = connect(&mut b, "s", persistent(3600), now);
    b.handle(
        Command::Disconnect {
            conn: s.conn,
            kind: DisconnectKind::Graceful {
                publish_will: false,
                session_expiry: Some(5),
            },
        },
        now,
    );
    b.tick(now + secs(4));
    assert_eq!(b.clients_total(), 1);
    b.tick(now + secs(6));
    assert_eq!(b.clients_total(), 0);
}

#[test]
fn session_expiry_of_0xffffffff_never_expires() {
    let (mut b, now) = broker();
    let s = connect(&mut b, "s", persistent(u32::MAX), now);
    drop_connection(&mut b, &s, now);
    b.tick(now + secs(u64::from(u32::MAX) + 10));
    assert_eq!(b.clients_total(), 1);
}

#[test]
fn session_expiry_zero_ends_the_session_with_the_connection() {
    let (mut b, now) = broker();
    let s = connect(&mut b, "s", persistent(0), now);
    drop_connection(&mut b, &s, now);
    assert_eq!(b.clients_total(), 0);
}

#[test]
fn will_goes_out_when_the_session_ends_before_the_will_delay() {
    let (mut b, now) = broker();
    let mut w = connect(&mut b, "w", CLEAN, now);
    subscribe(&mut b, &mut w, "will", QoS::AtLeastOnce, now);
    let will = Will {
        message: message("will", "gone", QoS::AtLeastOnce),
        delay: 30,
    };
    let c = connect(
        &mut b,
        "c",
        Opts {
            will: Some(will),
            ..persistent(5)
        },
        now,
    );
    drop_connection(&mut b, &c, now);
    b.tick(now + secs(4));
    assert!(w.payloads().is_empty());
    b.tick(now + secs(5));
    assert_eq!(w.payloads(), vec!["gone"]);
    assert_eq!(b.clients_total(), 1, "only the watcher's session is left");
}

#[test]
fn delivery_window_honours_the_clients_receive_maximum() {
    let (mut b, now) = broker();
    let mut s = connect(
        &mut b,
        "s",
        Opts {
            receive_maximum: 2,
            ..CLEAN
        },
        now,
    );
    subscribe(&mut b, &mut s, "t", QoS::AtLeastOnce, now);
    let p = connect(&mut b, "p", CLEAN, now);
    for n in 0..4 {
        publish(
            &mut b,
            &p,
            message("t", &n.to_string(), QoS::AtLeastOnce),
            now,
        );
    }
    let first = s.deliveries();
    assert_eq!(first.len(), 2);
    let Some(packet_id) = first[0].packet_id else {
        panic!("QoS 1 delivery without packet id");
    };
    b.handle(
        Command::PubAck {
            conn: s.conn,
            packet_id,
        },
        now,
    );
    assert_eq!(s.payloads(), vec!["2"]);
}

/// Two members of `$share/g/t`, and which of them got the first message.
fn shared_pair(b: &mut Broker, expiry: u32, qos: QoS, now: Instant) -> (Client, Client, Client) {
    let mut a = connect(b, "a", persistent(expiry), now);
    let mut c = connect(b, "c", persistent(expiry), now);
    subscribe(b, &mut a, "$share/g/t", qos, now);
    subscribe(b, &mut c, "$share/g/t", qos, now);
    let p = connect(b, "p", CLEAN, now);
    publish(b, &p, message("t", "m1", qos), now);
    let (got, other) = if a.deliveries().len() == 1 {
        (a, c)
    } else {
        assert_eq!(c.deliveries().len(), 1);
        (c, a)
    };
    (got, other, p)
}

#[test]
fn shared_subscription_delivers_round_robin_to_one_member() {
    let (mut b, now) = broker();
    let (mut got, mut other, p) = shared_pair(&mut b, 0, QoS::AtMostOnce, now);
    publish(&mut b, &p, message("t", "m2", QoS::AtMostOnce), now);
    publish(&mut b, &p, message("t", "m3", QoS::AtMostOnce), now);
    assert_eq!(other.payloads(), vec!["m2"]);
    assert_eq!(got.payloads(), vec!["m3"]);
}

#[test]
fn unacked_shared_qos1_goes_to_another_member_when_the_session_ends() {
    let (mut b, now) = broker();
    let (got, mut other, _p) = shared_pair(&mut b, 0, QoS::AtLeastOnce, now);
    drop_connection(&mut b, &got, now);
    let d = other.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(&d[0].message.payload[..], b"m1");
    assert_eq!(d[0].message.qos, QoS::AtLeastOnce);
}

#[test]
fn unacked_shared_qos2_goes_to_another_member_when_one_goes_offline() {
    let (mut b, now) = broker();
    let (got, mut other, _p) = shared_pair(&mut b, 3600, QoS::ExactlyOnce, now);
    drop_connection(&mut b, &got, now);
    assert_eq!(other.payloads(), vec!["m1"]);
    // The member that went away does not get it again on reconnect.
    let mut back = connect(&mut b, "a", persistent(3600), now);
    let mut back2 = connect(&mut b, "c", persistent(3600), now);
    let again = back.payloads().len() + back2.payloads().len();
    assert_eq!(again, 1, "only the member now holding it resends it");
}

#[test]
fn acknowledged_shared_message_is_not_redelivered() {
    let (mut b, now) = broker();
    let (got, mut other, _p) = shared_pair(&mut b, 0, QoS::AtLeastOnce, now);
    b.handle(
        Command::PubAck {
            conn: got.conn,
            packet_id: 1,
        },
        now,
    );
    drop_connection(&mut b, &got, now);
    assert!(other.payloads().is_empty());
}

#[test]
fn pubrecd_shared_qos2_stays_with_its_member() {
    let (mut b, now) = broker();
    let (got, mut other, _p) = shared_pair(&mut b, 0, QoS::ExactlyOnce, now);
    b.handle(
        Command::PubRec {
            conn: got.conn,
            packet_id: 1,
        },
        now,
    );
    drop_connection(&mut b, &got, now);
    assert!(other.payloads().is_empty());
}

#[test]
fn shared_and_ordinary_subscription_of_one_client_get_a_copy_each() {
    let (mut b, now) = broker();
    let mut c = connect(&mut b, "c", CLEAN, now);
    subscribe(&mut b, &mut c, "$share/g/t", QoS::AtMostOnce, now);
    subscribe(&mut b, &mut c, "t", QoS::AtMostOnce, now);
    let p = connect(&mut b, "p", CLEAN, now);
    publish(&mut b, &p, message("t", "x", QoS::AtMostOnce), now);
    // MQTT 5 §4.8.2: one copy by the ordinary subscription, one by the shared.
    assert_eq!(c.payloads(), vec!["x", "x"]);
}

#[test]
fn will_message_expiry_counts_from_publication_not_from_connect() {
    let (mut b, now) = broker();
    let mut w = connect(&mut b, "w", CLEAN, now);
    subscribe(&mut b, &mut w, "will", QoS::AtLeastOnce, now);
    let mut m = message("will", "gone", QoS::AtLeastOnce);
    m.expires_at = Some(now + secs(10));
    let c = connect(
        &mut b,
        "c",
        Opts {
            will: Some(Will {
                message: m,
                delay: 0,
            }),
            ..CLEAN
        },
        now,
    );
    let later = now + secs(100);
    drop_connection(&mut b, &c, later);
    let d = w.deliveries();
    assert_eq!(
        d.len(),
        1,
        "a will connected long ago is not already expired"
    );
    assert_eq!(d[0].message.remaining_expiry(later), Some(10));
}

#[test]
fn unacknowledged_delivery_is_resent_after_reconnect_even_if_expired_since() {
    let (mut b, now) = broker();
    let mut s = connect(&mut b, "s", persistent(u32::MAX), now);
    subscribe(&mut b, &mut s, "t", QoS::AtLeastOnce, now);
    let p = connect(&mut b, "p", CLEAN, now);
    let mut m = message("t", "x", QoS::AtLeastOnce);
    m.expires_at = Some(now + secs(2));
    publish(&mut b, &p, m, now);
    assert_eq!(s.deliveries().len(), 1);
    drop_connection(&mut b, &s, now);
    let mut s = connect(&mut b, "s", persistent(u32::MAX), now + secs(5));
    let d = s.deliveries();
    assert_eq!(d.len(), 1);
    assert!(d[0].dup);
}
