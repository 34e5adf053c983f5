//! Forwarder encapsulation (digest §3.26, §4.16).

use super::*;

/// `<len> FE 00 <node> <inner>`
fn wrap(node: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut v = vec![3 + node.len() as u8, 0xFE, 0x00];
    v.extend_from_slice(node);
    v.extend_from_slice(inner);
    v
}

const CONNECT_CL1: [u8; 9] = [0x09, 0x04, 0x04, 0x01, 0x00, 0x3C, b'c', b'l', b'1'];
const CONNECT_CL2: [u8; 9] = [0x09, 0x04, 0x04, 0x01, 0x00, 0x3C, b'c', b'l', b'2'];

#[test]
fn encapsulated_message_is_processed_for_the_node() {
    // G-90
    let mut h = Harness::new();
    h.raw(1, &wrap(&[0x12, 0x34], &CONNECT_CL1));
    let cmds = h.play_broker();
    assert!(matches!(&cmds[..], [Command::Connect(r)] if &*r.client_id == "cl1"));
}

#[test]
fn replies_to_a_node_are_wrapped_with_its_node_id() {
    // G-91: `05 FE 00 12 34 02 17`
    let mut h = Harness::new();
    h.raw(1, &wrap(&[0x12, 0x34], &CONNECT_CL1));
    h.play_broker();
    assert_eq!(
        h.raw_replies_to(1),
        vec![wrap(&[0x12, 0x34], &[0x03, 0x05, 0x00])]
    );
    h.raw(1, &wrap(&[0x12, 0x34], &[0x02, 0x16]));
    assert_eq!(
        h.raw_replies_to(1),
        vec![vec![0x05, 0xFE, 0x00, 0x12, 0x34, 0x02, 0x17]]
    );
}

#[test]
fn encapsulated_gwinfo_carries_the_radius_in_ctrl() {
    // G-92
    let mut h = Harness::new();
    h.raw(1, &wrap(&[0x01], &[0x03, 0x01, 0x07]));
    let r = h.raw_replies_to(1);
    assert_eq!(r, vec![vec![0x04, 0xFE, 0x03, 0x01, 0x03, 0x02, 0x01]]);
}

#[test]
fn nodes_behind_one_forwarder_have_independent_sessions() {
    // G-93
    let mut h = Harness::new();
    h.raw(1, &wrap(&[0x01], &CONNECT_CL1));
    h.raw(1, &wrap(&[0x02], &CONNECT_CL2));
    h.play_broker();
    h.transmits();
    assert_eq!(h.gw.session_count(), 2);
    h.raw(1, &wrap(&[0x01], &[0x02, 0x18]));
    assert_eq!(h.raw_replies_to(1), vec![wrap(&[0x01], &[0x02, 0x18])]);
    assert_eq!(h.gw.session_count(), 1);
    h.raw(1, &wrap(&[0x02], &[0x02, 0x16]));
    assert_eq!(h.raw_replies_to(1), vec![wrap(&[0x02], &[0x02, 0x17])]);
}

#[test]
fn undecodable_publish_from_a_node_is_answered_through_the_forwarder() {
    // G-45 with G-91
    let mut h = Harness::new();
    h.raw(1, &wrap(&[0x09], &CONNECT_CL1));
    h.play_broker();
    h.transmits();
    h.raw(
        1,
        &wrap(
            &[0x09],
            &[0x09, 0x0C, 0x23, 0x00, 0x01, 0x00, 0x05, b'h', b'i'],
        ),
    );
    assert_eq!(
        h.raw_replies_to(1),
        vec![wrap(&[0x09], &[0x07, 0x0D, 0x00, 0x01, 0x00, 0x05, 0x03])]
    );
}
