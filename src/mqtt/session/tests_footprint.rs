//! What a session costs while idle: its inline size, and the state kept
//! behind a `Box` only while some connection actually needs it.

use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::auth::{AclFile, Authorizer};
use crate::broker::{Delivery, Message, Outbound, SubscribeResult};
use crate::mqtt::codec::{
    ConnectProperties, Publish, PublishProperties, Subscribe, SubscribeProperties,
    SubscriptionOptions,
};
use crate::qos::QoS;

fn connected(properties: ConnectProperties) -> (MqttSession, Instant) {
    let (outbox, _rx) = Outbox::channel();
    let now = Instant::now();
    let mut s = MqttSession::new(ConnId::next(), outbox, SessionSettings::default(), now);
    s.handle_packet(
        Packet::Connect(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 0,
            client_id: "c".into(),
            will: None,
            username: None,
            password: None,
            properties,
        }),
        now,
    );
    s.handle_outbound(
        Outbound::ConnAck {
            session_present: false,
        },
        now,
    );
    std::iter::from_fn(|| s.poll_packet()).for_each(drop);
    std::iter::from_fn(|| s.poll_command()).for_each(drop);
    (s, now)
}

fn publish(topic: &str, alias: Option<u16>) -> Publish {
    let properties = PublishProperties {
        topic_alias: alias,
        ..PublishProperties::default()
    };
    super::tests_v5::publish(topic, properties)
}

/// Every connection task holds its session inline, so this size is part of
/// what each idle connection costs (target: 2 KiB of broker RSS each).
#[test]
fn session_state_fits_in_224_bytes() {
    let size = std::mem::size_of::<MqttSession>();
    assert!(size <= 224, "MqttSession grew to {size} bytes");
}

#[test]
fn a_session_without_aliases_allocates_no_alias_tables() {
    let (mut s, now) = connected(ConnectProperties::default());
    s.handle_packet(Packet::Publish(publish("a/b", None)), now);
    s.handle_outbound(
        Outbound::Deliver(Delivery {
            packet_id: None,
            message: Message::new("a/b", bytes::Bytes::new(), QoS::AtMostOnce, false),
            dup: false,
            subscription_ids: vec![],
        }),
        now,
    );
    assert!(matches!(s.poll_packet(), Some(Packet::Publish(_))));
    assert!(s.aliases.is_none());
}

#[test]
fn the_first_inbound_alias_creates_the_tables() {
    let (mut s, now) = connected(ConnectProperties::default());
    s.handle_packet(Packet::Publish(publish("a/b", Some(1))), now);
    assert!(!s.is_closing());
    assert!(s.aliases.is_some());
}

#[test]
fn pending_refused_filters_are_freed_by_their_suback() {
    let acl = AclFile::parse("topic readwrite open/#").unwrap();
    let (mut s, now) = connected(ConnectProperties::default());
    s.set_authorizer(Arc::new(Authorizer::with_rules(true, None, Some(acl))));
    let options = SubscriptionOptions::default();
    s.handle_packet(
        Packet::Subscribe(Subscribe {
            packet_id: 3,
            filters: vec![("secret/#".into(), options), ("open/#".into(), options)],
            properties: SubscribeProperties::default(),
        }),
        now,
    );
    assert!(s.denied_filters.is_some());
    s.handle_outbound(
        Outbound::SubAck {
            packet_id: 3,
            results: vec![SubscribeResult::Granted(QoS::AtMostOnce)],
        },
        now,
    );
    match s.poll_packet() {
        Some(Packet::SubAck(a)) => assert_eq!(
            a.reasons,
            vec![ReasonCode::NotAuthorized, ReasonCode::Success]
        ),
        other => panic!("{other:?}"),
    }
    assert!(s.denied_filters.is_none());
}
