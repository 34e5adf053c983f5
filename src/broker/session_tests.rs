//! Unit tests of one session's delivery state.

use super::*;
use bytes::Bytes;

const LIMITS: SessionLimits = SessionLimits {
    max_queued: 3,
    max_queued_bytes: 0,
    max_inflight: 2,
    overflow: false,
};

#[test]
fn queued_bytes_beyond_max_queued_bytes_are_dropped_and_counted() {
    // Offline: everything queues. Each message is 1 topic + 1 payload byte.
    let mut s = Session::new("c".into(), ClientKind::Mqtt3);
    let limits = SessionLimits {
        max_queued: 100,
        max_queued_bytes: 5,
        max_inflight: 2,
        overflow: false,
    };
    let mut st = DeliveryStats::default();
    let now = Instant::now();
    for n in 0..4 {
        s.offer(
            msg(QoS::AtLeastOnce, n),
            vec![],
            now,
            &limits,
            &mut st,
            &mut Out::direct(),
        );
    }
    assert_eq!(s.queued_len(), 2);
    assert_eq!((st.dropped, st.dropped_queued_bytes), (2, 2));
}

fn online() -> (Session, crate::broker::api::OutboxReceiver) {
    let (outbox, rx) = Outbox::channel();
    let mut s = Session::new("c".into(), ClientKind::Mqtt3);
    s.link = Some(Link {
        conn: ConnId(1),
        outbox,
    });
    (s, rx)
}

fn msg(qos: QoS, n: u8) -> Message {
    Message::new("t", Bytes::from(vec![n]), qos, false)
}

fn delivered(rx: &mut crate::broker::api::OutboxReceiver) -> Vec<(Option<u16>, u8, bool)> {
    let mut out = Vec::new();
    while let Ok((_, ev)) = rx.try_recv() {
        if let Outbound::Deliver(d) = ev {
            out.push((d.packet_id, d.message.payload[0], d.dup));
        }
    }
    out
}

#[test]
fn qos1_beyond_window_waits_in_queue_until_acked() {
    let (mut s, mut rx) = online();
    let mut st = DeliveryStats::default();
    let now = Instant::now();
    for n in 0..3 {
        s.offer(
            msg(QoS::AtLeastOnce, n),
            vec![],
            now,
            &LIMITS,
            &mut st,
            &mut Out::direct(),
        );
    }
    assert_eq!(
        delivered(&mut rx),
        vec![(Some(1), 0, false), (Some(2), 1, false)]
    );
    assert_eq!(s.queued_len(), 1);
    assert!(s.puback(1));
    s.pump(now, &LIMITS, &mut st, &mut Out::direct());
    assert_eq!(delivered(&mut rx), vec![(Some(3), 2, false)]);
}

#[test]
fn queue_full_drops_and_counts() {
    let (mut s, _rx) = online();
    let mut st = DeliveryStats::default();
    let now = Instant::now();
    for n in 0..6 {
        s.offer(
            msg(QoS::AtLeastOnce, n),
            vec![],
            now,
            &LIMITS,
            &mut st,
            &mut Out::direct(),
        );
    }
    assert_eq!(st.dropped, 1);
    assert_eq!(s.queued_len(), 3);
}

#[test]
fn offline_session_queues_qos1_but_not_qos0() {
    let mut s = Session::new("c".into(), ClientKind::Mqtt3);
    let mut st = DeliveryStats::default();
    let now = Instant::now();
    s.offer(
        msg(QoS::AtMostOnce, 0),
        vec![],
        now,
        &LIMITS,
        &mut st,
        &mut Out::direct(),
    );
    s.offer(
        msg(QoS::AtLeastOnce, 1),
        vec![],
        now,
        &LIMITS,
        &mut st,
        &mut Out::direct(),
    );
    assert_eq!(s.queued_len(), 1);
}

#[test]
fn unacked_deliveries_are_resent_with_dup_in_order() {
    let (mut s, mut rx) = online();
    let mut st = DeliveryStats::default();
    let now = Instant::now();
    s.offer(
        msg(QoS::AtLeastOnce, 7),
        vec![],
        now,
        &LIMITS,
        &mut st,
        &mut Out::direct(),
    );
    s.offer(
        msg(QoS::ExactlyOnce, 8),
        vec![],
        now,
        &LIMITS,
        &mut st,
        &mut Out::direct(),
    );
    delivered(&mut rx);
    s.resend_inflight(&mut Out::direct());
    assert_eq!(
        delivered(&mut rx),
        vec![(Some(1), 7, true), (Some(2), 8, true)]
    );
}

#[test]
fn pubrec_moves_qos2_to_pubrel_which_is_resent_on_reconnect() {
    let (mut s, mut rx) = online();
    let mut st = DeliveryStats::default();
    let now = Instant::now();
    s.offer(
        msg(QoS::ExactlyOnce, 1),
        vec![],
        now,
        &LIMITS,
        &mut st,
        &mut Out::direct(),
    );
    delivered(&mut rx);
    s.pubrec(1, &mut Out::direct());
    assert!(matches!(
        rx.try_recv(),
        Ok((_, Outbound::PubRel { packet_id: 1 }))
    ));
    assert!(!s.puback(1), "a PUBACK does not complete a QoS 2 delivery");
    s.resend_inflight(&mut Out::direct());
    assert!(matches!(
        rx.try_recv(),
        Ok((_, Outbound::PubRel { packet_id: 1 }))
    ));
    assert!(s.pubcomp(1));
    assert_eq!(s.inflight_len(), 0);
}

#[test]
fn slow_consumer_qos0_is_dropped_past_queue_limit() {
    let (mut s, _rx) = online();
    let mut st = DeliveryStats::default();
    let now = Instant::now();
    for n in 0..5 {
        s.offer(
            msg(QoS::AtMostOnce, n),
            vec![],
            now,
            &LIMITS,
            &mut st,
            &mut Out::direct(),
        );
    }
    assert_eq!(st.sent, 3);
    assert_eq!(st.dropped, 2);
}

#[test]
fn own_limits_replace_the_broker_wide_ones() {
    let (mut s, mut rx) = online();
    s.own_limits = Some(Box::new(SessionLimits {
        max_queued: 1,
        max_queued_bytes: 0,
        max_inflight: 1,
        overflow: false,
    }));
    let broker_wide = SessionLimits {
        max_queued: 100,
        max_queued_bytes: 0,
        max_inflight: 100,
        overflow: true,
    };
    let mut st = DeliveryStats::default();
    let now = Instant::now();
    for n in 0..4 {
        s.offer(
            msg(QoS::AtLeastOnce, n),
            vec![],
            now,
            &broker_wide,
            &mut st,
            &mut Out::direct(),
        );
    }
    assert_eq!(delivered(&mut rx), vec![(Some(1), 0, false)], "window of 1");
    assert_eq!(s.queued_len(), 1, "queue of 1");
    assert_eq!(st.dropped, 2, "the newest two are refused and counted");
}

#[test]
fn an_idle_session_fits_in_256_bytes() {
    // Idle connections are the bulk of a large broker: every session pays
    // this size, so the rarely used state lives in lazily allocated boxes.
    let size = std::mem::size_of::<Session>();
    assert!(size <= 256, "Session is {size} bytes");
}

#[test]
fn a_session_without_a_will_allocates_no_will_state() {
    let mut s = Session::new("c".into(), ClientKind::Mqtt3);
    let now = Instant::now();
    s.set_will(None, now);
    assert!(s.will_state.is_none());
    s.set_will_due(None);
    assert!(s.will_state.is_none());
}

#[test]
fn a_taken_will_frees_its_box_and_keeps_when_it_was_set() {
    let mut s = Session::new("c".into(), ClientKind::Mqtt3);
    let now = Instant::now();
    let will = crate::broker::api::Will {
        message: msg(QoS::AtLeastOnce, 1),
        delay: 0,
    };
    s.set_will(Some(will), now);
    assert_eq!(s.will_since(), Some(now));
    let (_, since) = s.take_will().unwrap();
    assert_eq!(since, Some(now));
    assert!(s.will().is_none());
    assert!(s.will_state.is_none());
}
