//! Every packet type round trips encode → decode in 3.1.1 and 5.0, with
//! every property set in 5.0; 5.0-only fields are dropped for 3.1.1.

use std::sync::Arc;

use bytes::Bytes;

use super::{decode_one, encode, round_trip};
use crate::mqtt::codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, LastWill, Packet, ProtocolVersion, PubResponse, Publish,
    PublishProperties, ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeProperties,
    SubscriptionOptions, UnsubAck, Unsubscribe, UnsubscribeProperties, WillProperties,
};
use crate::qos::QoS;

use ProtocolVersion::{V5, V31, V311};

fn users() -> Vec<(String, String)> {
    vec![("a".into(), "1".into()), ("a".into(), "2".into())]
}

fn ack_props() -> AckProperties {
    AckProperties {
        reason_string: Some("why".into()),
        user_properties: users(),
    }
}

fn full_connect(protocol: ProtocolVersion) -> Connect {
    Connect {
        protocol,
        clean_start: false,
        keep_alive: 300,
        client_id: "client-1".into(),
        will: Some(LastWill {
            topic: "will/t".into(),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(true),
                message_expiry_interval: Some(60),
                content_type: Some("text/plain".into()),
                response_topic: Some("resp".into()),
                correlation_data: Some(Bytes::from_static(b"\x00\x01")),
                user_properties: users(),
            },
        }),
        username: Some("user".into()),
        password: Some(Bytes::from_static(b"\xffpw")),
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(10),
            maximum_packet_size: Some(65_536),
            topic_alias_maximum: Some(8),
            request_response_information: Some(true),
            request_problem_information: Some(false),
            user_properties: users(),
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(b"data")),
        },
    }
}

fn full_connack() -> ConnAck {
    ConnAck {
        session_present: true,
        code: 0,
        properties: ConnAckProperties {
            session_expiry_interval: Some(10),
            receive_maximum: Some(100),
            maximum_qos: Some(1),
            retain_available: Some(false),
            maximum_packet_size: Some(1024),
            assigned_client_identifier: Some("auto-1".into()),
            topic_alias_maximum: Some(16),
            reason_string: Some("ok".into()),
            user_properties: users(),
            wildcard_subscription_available: Some(true),
            subscription_identifiers_available: Some(true),
            shared_subscription_available: Some(false),
            server_keep_alive: Some(30),
            response_information: Some("info".into()),
            server_reference: Some("other:1883".into()),
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(b"x")),
        },
    }
}

fn full_publish() -> Publish {
    Publish {
        dup: true,
        qos: QoS::AtLeastOnce,
        retain: true,
        topic: Arc::from("sensors/1/temp"),
        packet_id: Some(65_535),
        properties: PublishProperties {
            payload_format_indicator: Some(false),
            message_expiry_interval: Some(120),
            topic_alias: Some(3),
            response_topic: Some("r".into()),
            correlation_data: Some(Bytes::from_static(b"c")),
            user_properties: users(),
            subscription_identifiers: vec![1, 268_435_455],
            content_type: Some("json".into()),
        },
        payload: Bytes::from_static(b"{\"t\":21.5}"),
    }
}

fn full_subscribe() -> Subscribe {
    Subscribe {
        packet_id: 42,
        filters: vec![
            (
                "a/+/c".into(),
                SubscriptionOptions {
                    qos: QoS::ExactlyOnce,
                    no_local: true,
                    retain_as_published: false,
                    retain_handling: RetainHandling::SendIfNew,
                },
            ),
            ("$share/g/#".into(), SubscriptionOptions::default()),
        ],
        properties: SubscribeProperties {
            subscription_identifier: Some(16_384),
            user_properties: users(),
        },
    }
}

/// One packet of each type, carrying every v5 field.
pub(super) fn all_packets_v5() -> Vec<Packet> {
    let resp = |reason| PubResponse {
        packet_id: 7,
        reason,
        properties: ack_props(),
    };
    vec![
        Packet::Connect(full_connect(V5)),
        Packet::ConnAck(full_connack()),
        Packet::Publish(full_publish()),
        Packet::PubAck(resp(ReasonCode::QuotaExceeded)),
        Packet::PubRec(resp(ReasonCode::Success)),
        Packet::PubRel(resp(ReasonCode::PacketIdentifierNotFound)),
        Packet::PubComp(resp(ReasonCode::Success)),
        Packet::Subscribe(full_subscribe()),
        Packet::SubAck(SubAck {
            packet_id: 42,
            reasons: vec![ReasonCode::GrantedQoS2, ReasonCode::NotAuthorized],
            properties: ack_props(),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 43,
            filters: vec!["a/+/c".into(), "x".into()],
            properties: UnsubscribeProperties {
                user_properties: users(),
            },
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 43,
            reasons: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
            properties: ack_props(),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::ServerMoved,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                reason_string: Some("bye".into()),
                user_properties: users(),
                server_reference: Some("b:1883".into()),
            },
        }),
        Packet::Auth(Auth {
            reason: ReasonCode::ReAuthenticate,
            properties: AuthProperties {
                authentication_method: Some("SCRAM".into()),
                authentication_data: Some(Bytes::from_static(b"abc")),
                reason_string: Some("again".into()),
                user_properties: users(),
            },
        }),
    ]
}

#[test]
fn every_packet_type_round_trips_in_v5_with_every_property() {
    for p in all_packets_v5() {
        round_trip(&p, V5);
    }
}

/// What a v3 peer can carry of `p`: v5-only fields reset.
pub(super) fn as_v3(p: Packet) -> Option<Packet> {
    Some(match p {
        Packet::Connect(mut c) => {
            c.protocol = V311;
            c.properties = Default::default();
            // [MQTT-3.1.2-22]: no password without a user name before v5.
            if c.username.is_none() {
                c.password = None;
            }
            if let Some(w) = &mut c.will {
                w.properties = Default::default();
            }
            Packet::Connect(c)
        }
        Packet::ConnAck(mut c) => {
            c.properties = Default::default();
            Packet::ConnAck(c)
        }
        Packet::Publish(mut p) => {
            p.properties = Default::default();
            Packet::Publish(p)
        }
        Packet::PubAck(r) => Packet::PubAck(PubResponse::new(r.packet_id)),
        Packet::PubRec(r) => Packet::PubRec(PubResponse::new(r.packet_id)),
        Packet::PubRel(r) => Packet::PubRel(PubResponse::new(r.packet_id)),
        Packet::PubComp(r) => Packet::PubComp(PubResponse::new(r.packet_id)),
        Packet::Subscribe(mut s) => {
            s.properties = Default::default();
            for (_, o) in &mut s.filters {
                *o = SubscriptionOptions {
                    qos: o.qos,
                    ..Default::default()
                };
            }
            Packet::Subscribe(s)
        }
        Packet::SubAck(mut a) => {
            a.properties = Default::default();
            for r in &mut a.reasons {
                if r.is_error() {
                    *r = ReasonCode::UnspecifiedError;
                }
            }
            Packet::SubAck(a)
        }
        Packet::Unsubscribe(mut u) => {
            u.properties = Default::default();
            Packet::Unsubscribe(u)
        }
        Packet::UnsubAck(a) => Packet::UnsubAck(UnsubAck {
            packet_id: a.packet_id,
            reasons: vec![],
            properties: Default::default(),
        }),
        Packet::Disconnect(_) => Packet::Disconnect(Disconnect::default()),
        Packet::Auth(_) => return None,
        other => other,
    })
}

#[test]
fn every_packet_type_round_trips_in_v311() {
    for p in all_packets_v5().into_iter().filter_map(as_v3) {
        round_trip(&p, V311);
    }
}

#[test]
fn v5_only_fields_are_dropped_when_encoding_for_v311() {
    for p in all_packets_v5() {
        if matches!(p, Packet::Connect(_) | Packet::Auth(_)) {
            continue;
        }
        let bytes = encode(&p, V311);
        assert_eq!(Some(decode_one(&bytes, V311).unwrap()), as_v3(p));
    }
}

#[test]
fn v31_connect_round_trips() {
    let mut c = full_connect(V31);
    c.properties = Default::default();
    if let Some(w) = &mut c.will {
        w.properties = Default::default();
    }
    round_trip(&Packet::Connect(c), V311);
}

#[test]
fn v5_pub_response_uses_the_short_form_when_it_can() {
    let bytes = encode(&Packet::PubAck(PubResponse::new(7)), V5);
    assert_eq!(bytes, [0x40, 0x02, 0x00, 0x07]);
    let mut r = PubResponse::new(7);
    r.reason = ReasonCode::NoMatchingSubscribers;
    assert_eq!(
        encode(&Packet::PubAck(r), V5),
        [0x40, 0x03, 0x00, 0x07, 0x10]
    );
}

#[test]
fn payload_is_sliced_from_the_input_without_copying() {
    let bytes = encode(&Packet::Publish(full_publish()), V5);
    let mut buf = bytes::BytesMut::from(&bytes[..]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let Some(Packet::Publish(p)) =
        crate::mqtt::codec::decode_packet(&mut buf, V5, u32::MAX).unwrap()
    else {
        panic!("not a publish");
    };
    let at = p.payload.as_ptr() as usize;
    assert!(at >= start && at < end, "payload was copied");
}
