//! Hand-written byte vectors per packet type, checked against the spec layouts.
//! CONNECT vectors were captured from mosquitto_pub 2.0.

use std::sync::Arc;

use bytes::Bytes;

use super::{decode_one, encode, hex};
use crate::mqtt::codec::{
    AckProperties, Auth, AuthProperties, ConnAck, Connect, ConnectProperties, Disconnect,
    DisconnectProperties, LastWill, Packet, ProtocolVersion, PubResponse, Publish,
    PublishProperties, ReasonCode, RetainHandling, SubAck, Subscribe, SubscribeProperties,
    SubscriptionOptions, UnsubAck, Unsubscribe, UnsubscribeProperties, WillProperties,
};
use crate::qos::QoS;

use ProtocolVersion::{V5, V31, V311};

/// Decodes `bytes`, compares with `packet`, and checks the encoder produces the same bytes.
fn check(bytes: &str, version: ProtocolVersion, packet: Packet) {
    let bytes = hex(bytes);
    assert_eq!(decode_one(&bytes, version).unwrap(), packet);
    assert_eq!(encode(&packet, version), bytes);
}

fn connect(protocol: ProtocolVersion) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: "test".into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties::default(),
    }
}

#[test]
fn connect_v311_from_mosquitto_pub() {
    check(
        "10 10 0004 4d515454 04 02 003c 0004 74657374",
        V311,
        Packet::Connect(connect(V311)),
    );
}

#[test]
fn connect_v311_with_retained_qos2_will_and_credentials_from_mosquitto_pub() {
    let c = Connect {
        protocol: V311,
        clean_start: true,
        keep_alive: 30,
        client_id: "c1".into(),
        will: Some(LastWill {
            topic: "w/t".into(),
            payload: Bytes::from_static(b"x"),
            qos: QoS::ExactlyOnce,
            retain: true,
            properties: WillProperties::default(),
        }),
        username: Some("u".into()),
        password: Some(Bytes::from_static(b"p")),
        properties: ConnectProperties::default(),
    };
    check(
        "10 1c 0004 4d515454 04 f6 001e 0002 6331 0003 772f74 0001 78 0001 75 0001 70",
        V311,
        Packet::Connect(c),
    );
}

#[test]
fn connect_v31_uses_mqisdp_level_3() {
    check(
        "10 12 0006 4d5149736470 03 02 003c 0004 74657374",
        V311,
        Packet::Connect(connect(V31)),
    );
}

#[test]
fn connect_v5_with_will_credentials_and_properties_from_mosquitto_pub() {
    let mut c = connect(V5);
    c.properties.session_expiry_interval = Some(30);
    c.properties.receive_maximum = Some(20);
    c.will = Some(LastWill {
        topic: "w".into(),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: WillProperties::default(),
    });
    c.username = Some("user".into());
    c.password = Some(Bytes::from_static(b"pw"));
    // CONNECT is self-describing: decoding with the 3.1.1 default still yields v5.
    check(
        "10 2c 0004 4d515454 05 ce 003c 08 11 0000001e 21 0014 0004 74657374 \
         00 0001 77 0003 627965 0004 75736572 0002 7077",
        V311,
        Packet::Connect(c),
    );
}

#[test]
fn connack_v311_session_present_accepted() {
    check(
        "20 02 01 00",
        V311,
        Packet::ConnAck(ConnAck {
            session_present: true,
            code: 0,
            properties: Default::default(),
        }),
    );
}

#[test]
fn connack_v5_with_properties() {
    let mut ack = ConnAck {
        session_present: false,
        code: 0,
        properties: Default::default(),
    };
    ack.properties.maximum_qos = Some(1);
    ack.properties.assigned_client_identifier = Some("id".into());
    check(
        "20 0a 00 00 07 24 01 12 0002 6964",
        V5,
        Packet::ConnAck(ack),
    );
}

fn publish(qos: QoS, packet_id: Option<u16>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Arc::from("a/b"),
        packet_id,
        properties: PublishProperties::default(),
        payload: Bytes::from_static(b"hi"),
    }
}

#[test]
fn publish_v311_qos0_has_no_packet_id() {
    check(
        "30 07 0003 612f62 6869",
        V311,
        Packet::Publish(publish(QoS::AtMostOnce, None)),
    );
}

#[test]
fn publish_v311_qos1_retain_dup() {
    let mut p = publish(QoS::AtLeastOnce, Some(10));
    p.dup = true;
    p.retain = true;
    check("3b 09 0003 612f62 000a 6869", V311, Packet::Publish(p));
}

#[test]
fn publish_v5_with_topic_alias_and_empty_topic() {
    let mut p = publish(QoS::ExactlyOnce, Some(1));
    p.topic = Arc::from("");
    p.properties.topic_alias = Some(5);
    check("34 0a 0000 0001 03 23 0005 6869", V5, Packet::Publish(p));
}

#[test]
fn puback_v311_is_two_bytes() {
    check("40 02 0007", V311, Packet::PubAck(PubResponse::new(7)));
}

#[test]
fn pubrec_v5_short_form_and_reason_only() {
    check("50 02 0007", V5, Packet::PubRec(PubResponse::new(7)));
    let mut r = PubResponse::new(7);
    r.reason = ReasonCode::NoMatchingSubscribers;
    check("50 03 0007 10", V5, Packet::PubRec(r));
}

#[test]
fn pubrel_has_flags_0010() {
    check("62 02 0009", V311, Packet::PubRel(PubResponse::new(9)));
}

#[test]
fn pubcomp_v5_with_reason_string() {
    let r = PubResponse {
        packet_id: 9,
        reason: ReasonCode::PacketIdentifierNotFound,
        properties: AckProperties {
            reason_string: Some("x".into()),
            user_properties: vec![],
        },
    };
    check("70 08 0009 92 04 1f 0001 78", V5, Packet::PubComp(r));
}

#[test]
fn pubcomp_v5_reason_code_with_zero_property_length_decodes() {
    let p = decode_one(&hex("70 04 0009 00 00"), V5).unwrap();
    assert_eq!(p, Packet::PubComp(PubResponse::new(9)));
}

#[test]
fn subscribe_v311_two_filters() {
    let opts = |qos| SubscriptionOptions {
        qos,
        ..Default::default()
    };
    check(
        "82 0c 0001 0003 612f62 01 0001 23 02",
        V311,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters: vec![
                ("a/b".into(), opts(QoS::AtLeastOnce)),
                ("#".into(), opts(QoS::ExactlyOnce)),
            ],
            properties: SubscribeProperties::default(),
        }),
    );
}

#[test]
fn subscribe_v5_options_and_subscription_identifier() {
    let opts = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        no_local: true,
        retain_as_published: true,
        retain_handling: RetainHandling::DoNotSend,
    };
    check(
        "82 09 0002 02 0b 07 0001 23 2d",
        V5,
        Packet::Subscribe(Subscribe {
            packet_id: 2,
            filters: vec![("#".into(), opts)],
            properties: SubscribeProperties {
                subscription_identifier: Some(7),
                user_properties: vec![],
            },
        }),
    );
}

#[test]
fn suback_v311_granted_and_failure() {
    check(
        "90 04 0001 01 80",
        V311,
        Packet::SubAck(SubAck {
            packet_id: 1,
            reasons: vec![ReasonCode::GrantedQoS1, ReasonCode::UnspecifiedError],
            properties: Default::default(),
        }),
    );
}

#[test]
fn suback_v5_has_property_length() {
    check(
        "90 04 0001 00 a2",
        V5,
        Packet::SubAck(SubAck {
            packet_id: 1,
            reasons: vec![ReasonCode::WildcardSubscriptionsNotSupported],
            properties: Default::default(),
        }),
    );
}

#[test]
fn unsubscribe_v311() {
    check(
        "a2 07 0003 0003 612f62",
        V311,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 3,
            filters: vec!["a/b".into()],
            properties: UnsubscribeProperties::default(),
        }),
    );
}

#[test]
fn unsubscribe_v5_with_user_property() {
    check(
        "a2 0d 0003 07 26 0001 6b 0001 76 0001 23",
        V5,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 3,
            filters: vec!["#".into()],
            properties: UnsubscribeProperties {
                user_properties: vec![("k".into(), "v".into())],
            },
        }),
    );
}

#[test]
fn unsuback_v311_has_no_reason_codes() {
    check(
        "b0 02 0003",
        V311,
        Packet::UnsubAck(UnsubAck {
            packet_id: 3,
            reasons: vec![],
            properties: Default::default(),
        }),
    );
}

#[test]
fn unsuback_v5_reason_per_filter() {
    check(
        "b0 05 0003 00 00 11",
        V5,
        Packet::UnsubAck(UnsubAck {
            packet_id: 3,
            reasons: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
            properties: Default::default(),
        }),
    );
}

#[test]
fn pingreq_and_pingresp() {
    check("c0 00", V311, Packet::PingReq);
    check("d0 00", V5, Packet::PingResp);
}

#[test]
fn disconnect_v311_and_v5_normal_are_empty() {
    check("e0 00", V311, Packet::Disconnect(Disconnect::default()));
    check("e0 00", V5, Packet::Disconnect(Disconnect::default()));
}

#[test]
fn disconnect_v5_with_reason_and_session_expiry() {
    check(
        "e0 07 04 05 11 00000000",
        V5,
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::DisconnectWithWillMessage,
            properties: DisconnectProperties {
                session_expiry_interval: Some(0),
                ..Default::default()
            },
        }),
    );
}

#[test]
fn disconnect_v5_reason_only_decodes() {
    let p = decode_one(&hex("e0 01 8e"), V5).unwrap();
    assert_eq!(
        p,
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::SessionTakenOver,
            properties: Default::default(),
        })
    );
}

#[test]
fn auth_v5_continue_with_method() {
    check(
        "f0 08 18 06 15 0003 736372",
        V5,
        Packet::Auth(Auth {
            reason: ReasonCode::ContinueAuthentication,
            properties: AuthProperties {
                authentication_method: Some("scr".into()),
                ..Default::default()
            },
        }),
    );
    check("f0 00", V5, Packet::Auth(Auth::default()));
}
