//! Framing rules the gateway relies on the codec for, seen end to end.

use super::*;

#[test]
fn long_form_pingreq_is_handled_like_the_short_form() {
    // G-01, G-02
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x01, 0x00, 0x04, 0x16]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x17]]);
}

#[test]
fn long_messages_are_sent_with_the_three_octet_length() {
    // G-03
    let mut h = Harness::new();
    let (conn, _) = h.connect_and_subscribe(1, "cl1", "a/b", QoS::AtMostOnce);
    h.outbound(conn, delivery("a/b", &[7u8; 291], QoS::AtMostOnce, None));
    let r = h.raw_replies_to(1);
    assert_eq!(r.len(), 1);
    assert_eq!(&r[0][..4], &[0x01, 0x01, 0x2C, 0x0C]);
    assert_eq!(r[0].len(), 300);
}

#[test]
fn length_mismatch_is_dropped_without_reply_or_state_change() {
    // G-04
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x03, 0x16]);
    h.raw(1, &[0x02, 0x16, 0x00]);
    assert!(h.transmits().is_empty());
    assert!(h.commands().is_empty());
}

#[test]
fn reserved_message_types_are_dropped_without_reply() {
    // G-05
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    for t in [0x03u8, 0x11, 0x19, 0x1E, 0x80, 0xFD, 0xFF] {
        h.raw(1, &[0x02, t]);
    }
    assert!(h.transmits().is_empty());
}

#[test]
fn truncated_publish_is_dropped_without_reply() {
    // G-06
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x05, 0x0C, 0x00, 0x00, 0x01]);
    assert!(h.transmits().is_empty());
    assert!(h.commands().is_empty());
}

#[test]
fn unused_flag_bits_are_ignored_and_sent_as_zero() {
    // G-07: CONNECT with DUP, QoS, retain and TopicIdType bits set.
    let mut h = Harness::new();
    h.raw(1, &[0x09, 0x04, 0xF7, 0x01, 0x00, 0x3C, b'c', b'l', b'1']);
    h.play_broker();
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x05, 0x00]]);
}

#[test]
fn qos2_acknowledgements_use_the_mqtt_sn_type_numbers() {
    // G-08: PUBREC 0x0F, PUBCOMP 0x0E, PUBREL 0x10.
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x07, 0x0C, 0x42, b'a', b'b', 0x03, 0x04]);
    h.play_broker();
    assert_eq!(h.raw_replies_to(1), vec![vec![0x04, 0x0F, 0x03, 0x04]]);
    h.raw(1, &[0x04, 0x10, 0x03, 0x04]);
    h.play_broker();
    assert_eq!(h.raw_replies_to(1), vec![vec![0x04, 0x0E, 0x03, 0x04]]);
}

#[test]
fn datagram_larger_than_max_message_size_is_dropped_without_reply_or_state_change() {
    // `max_message_size` bounds received datagrams too (config `gateway.max_message_size`).
    let mut h = Harness::with(GatewaySettings {
        max_message_size: 64,
        ..settings()
    });
    h.connect(1, "cl1", true);
    let mut big = vec![70u8, 0x0C, 0x62, 0x00, 0x05, 0x00, 0x00];
    big.resize(70, b'x');
    h.raw(1, &big);
    assert!(h.transmits().is_empty());
    assert!(h.commands().is_empty());
    assert_eq!(h.gw.stats().malformed, 1);
    // A datagram within the limit still gets through.
    h.raw(1, &[0x02, 0x16]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x17]]);
}
