//! Will prompts during setup and will updates.

use std::time::Duration;

use super::*;
use crate::broker::Will;

fn connect_will(h: &mut Harness) {
    h.raw(1, &[0x09, 0x04, 0x0C, 0x01, 0x00, 0x3C, b'c', b'l', b'1']);
}

fn connect_request_will(cmds: &[Command]) -> Option<Will> {
    cmds.iter().find_map(|c| match c {
        Command::Connect(r) => Some(r.will.clone()),
        _ => None,
    })?
}

#[test]
fn will_flow_prompts_for_topic_then_message_then_connack() {
    // G-15
    let mut h = Harness::new();
    connect_will(&mut h);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x06]]);
    h.raw(1, &[0x06, 0x07, 0x30, b'w', b'/', b't']);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x02, 0x08]]);
    h.raw(1, &[0x05, 0x09, b'b', b'y', b'e']);
    h.play_broker();
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x05, 0x00]]);
}

#[test]
fn will_qos_and_retain_come_from_willtopic_flags() {
    // G-16: 0x30 = QoS 1, retain.
    let mut h = Harness::new();
    connect_will(&mut h);
    h.raw(1, &[0x06, 0x07, 0x30, b'w', b'/', b't']);
    h.raw(1, &[0x05, 0x09, b'b', b'y', b'e']);
    let will = connect_request_will(&h.commands()).expect("will");
    assert_eq!(will.message.qos, QoS::AtLeastOnce);
    assert!(will.message.retain);
    assert_eq!(&*will.message.topic, "w/t");
    assert_eq!(&will.message.payload[..], b"bye");
    assert_eq!(will.delay, 0);
}

#[test]
fn empty_willtopic_removes_the_will() {
    // G-17
    let mut h = Harness::new();
    connect_will(&mut h);
    h.raw(1, &[0x02, 0x07]);
    assert!(connect_request_will(&h.commands()).is_none());
}

#[test]
fn empty_willtopic_is_followed_directly_by_connack() {
    // G-18
    let mut h = Harness::new();
    connect_will(&mut h);
    h.replies_to(1);
    h.raw(1, &[0x02, 0x07]);
    h.play_broker();
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x05, 0x00]]);
}

#[test]
fn unanswered_will_prompt_is_repeated_after_t_retry() {
    // Digest §4.2
    let mut h = Harness::new();
    connect_will(&mut h);
    h.replies_to(1);
    h.advance(Duration::from_secs(10));
    assert_eq!(h.replies_to(1), vec![Message::WillTopicReq]);
}

fn connected_with_will(h: &mut Harness) -> ConnId {
    connect_will(h);
    h.raw(1, &[0x06, 0x07, 0x30, b'w', b'/', b't']);
    h.raw(1, &[0x05, 0x09, b'b', b'y', b'e']);
    let cmds = h.play_broker();
    h.replies_to(1);
    cmds.iter()
        .find_map(|c| match c {
            Command::Connect(r) => Some(r.conn),
            _ => None,
        })
        .unwrap()
}

fn set_will(cmds: &[Command]) -> Option<Option<Will>> {
    cmds.iter().find_map(|c| match c {
        Command::SetWill { will, .. } => Some(will.clone()),
        _ => None,
    })
}

#[test]
fn willtopicupd_replaces_topic_qos_retain_and_keeps_message() {
    // G-86
    let mut h = Harness::new();
    connected_with_will(&mut h);
    h.raw(1, &[0x06, 0x1A, 0x00, b'x', b'/', b'y']);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x1B, 0x00]]);
    let will = set_will(&h.commands()).unwrap().unwrap();
    assert_eq!(&*will.message.topic, "x/y");
    assert_eq!(will.message.qos, QoS::AtMostOnce);
    assert!(!will.message.retain);
    assert_eq!(&will.message.payload[..], b"bye");
}

#[test]
fn empty_willtopicupd_deletes_the_will() {
    // G-87
    let mut h = Harness::new();
    connected_with_will(&mut h);
    h.raw(1, &[0x02, 0x1A]);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x1B, 0x00]]);
    assert_eq!(set_will(&h.commands()), Some(None));
}

#[test]
fn willmsgupd_replaces_the_message() {
    // G-88
    let mut h = Harness::new();
    connected_with_will(&mut h);
    h.raw(1, &[0x03, 0x1C, b'z']);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x1D, 0x00]]);
    let will = set_will(&h.commands()).unwrap().unwrap();
    assert_eq!(&will.message.payload[..], b"z");
    assert_eq!(&*will.message.topic, "w/t");
}

#[test]
fn willmsgupd_without_will_topic_is_not_supported() {
    // G-89
    let mut h = Harness::new();
    h.connect(1, "cl1", true);
    h.raw(1, &[0x03, 0x1C, b'z']);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x1D, 0x03]]);
    assert_eq!(set_will(&h.commands()), None);
}

#[test]
fn willtopic_with_qos_minus_one_refuses_the_connection() {
    // Digest §5.9: QoS −1 is not a will QoS; CONNACK 0x03 instead of silence.
    let mut h = Harness::new();
    connect_will(&mut h);
    h.replies_to(1);
    h.raw(1, &[0x06, 0x07, 0x60, b'w', b'/', b't']);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x05, 0x03]]);
    assert!(connect_request_will(&h.commands()).is_none());
    h.advance(Duration::from_secs(10));
    assert!(h.replies_to(1).is_empty(), "no further will prompt");
}

#[test]
fn willtopicupd_with_qos_minus_one_is_not_supported_and_keeps_the_will() {
    // Digest §5.9
    let mut h = Harness::new();
    connected_with_will(&mut h);
    h.raw(1, &[0x06, 0x1A, 0x60, b'x', b'/', b'y']);
    assert_eq!(h.raw_replies_to(1), vec![vec![0x03, 0x1B, 0x03]]);
    assert_eq!(set_will(&h.commands()), None);
}
