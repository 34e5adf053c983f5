//! Property tests: arbitrary bytes never panic the decoder, and arbitrary
//! valid packets round trip for 3.1.1 and 5.0.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;
use proptest::sample::select;

use super::roundtrip::as_v3;
use super::{NO_LIMIT, round_trip};
use crate::mqtt::codec::{
    AckProperties, Auth, AuthProperties, ConnAck, ConnAckProperties, Connect, ConnectProperties,
    Disconnect, DisconnectProperties, LastWill, Packet, ProtocolVersion, PubResponse, Publish,
    PublishProperties, ReasonCode, ReasonContext, RetainHandling, SubAck, Subscribe,
    SubscribeProperties, SubscriptionOptions, UnsubAck, Unsubscribe, UnsubscribeProperties,
    WillProperties, decode_packet, encode_packet,
};
use crate::qos::QoS;

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,8}"
}

fn blob() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..12).prop_map(Bytes::from)
}

fn users() -> impl Strategy<Value = Vec<(String, String)>> {
    vec((text(), text()), 0..3)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

fn sub_id() -> impl Strategy<Value = u32> {
    1..=268_435_455u32
}

fn reason(ctx: ReasonContext) -> impl Strategy<Value = ReasonCode> {
    let codes: Vec<ReasonCode> = ReasonCode::ALL
        .iter()
        .copied()
        .filter(|c| c.allowed_in(ctx))
        .collect();
    select(codes)
}

fn ack_props() -> impl Strategy<Value = AckProperties> {
    (of(text()), users()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

fn will() -> impl Strategy<Value = LastWill> {
    let props = (
        of(any::<u32>()),
        of(any::<bool>()),
        of(any::<u32>()),
        of(text()),
        of(text()),
        of(blob()),
        users(),
    )
        .prop_map(|(d, f, e, ct, rt, cd, u)| WillProperties {
            will_delay_interval: d,
            payload_format_indicator: f,
            message_expiry_interval: e,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: u,
        });
    (text(), blob(), qos(), any::<bool>(), props).prop_map(
        |(topic, payload, qos, retain, properties)| LastWill {
            topic,
            payload,
            qos,
            retain,
            properties,
        },
    )
}

fn connect() -> impl Strategy<Value = Connect> {
    let props = (
        of(any::<u32>()),
        of(1..=u16::MAX),
        of(1..=u32::MAX),
        of(any::<u16>()),
        of(any::<bool>()),
        of(any::<bool>()),
        users(),
        of(text()),
        of(blob()),
    )
        .prop_map(
            |(se, rm, mps, tam, rri, rpi, u, am, ad)| ConnectProperties {
                session_expiry_interval: se,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: u,
                authentication_method: am,
                authentication_data: ad,
            },
        );
    (
        any::<bool>(),
        any::<u16>(),
        text(),
        of(will()),
        of(text()),
        of(blob()),
        props,
    )
        .prop_map(
            |(clean_start, keep_alive, client_id, will, username, password, properties)| Connect {
                protocol: ProtocolVersion::V5,
                clean_start,
                keep_alive,
                client_id,
                will,
                username,
                password,
                properties,
            },
        )
}

fn connack() -> impl Strategy<Value = ConnAck> {
    let a = (
        of(any::<u32>()),
        of(1..=u16::MAX),
        of(0..=1u8),
        of(any::<bool>()),
        of(1..=u32::MAX),
        of(text()),
        of(any::<u16>()),
        of(text()),
        users(),
    );
    let b = (
        of(any::<bool>()),
        of(any::<bool>()),
        of(any::<bool>()),
        of(any::<u16>()),
        of(text()),
        of(text()),
        of(text()),
        of(blob()),
    );
    (any::<bool>(), reason(ReasonContext::ConnAck), a, b).prop_map(
        |(session_present, code, a, b)| ConnAck {
            session_present,
            // 3.x return codes are checked separately; Success is valid in both.
            code: code.as_u8(),
            properties: ConnAckProperties {
                session_expiry_interval: a.0,
                receive_maximum: a.1,
                maximum_qos: a.2,
                retain_available: a.3,
                maximum_packet_size: a.4,
                assigned_client_identifier: a.5,
                topic_alias_maximum: a.6,
                reason_string: a.7,
                user_properties: a.8,
                wildcard_subscription_available: b.0,
                subscription_identifiers_available: b.1,
                shared_subscription_available: b.2,
                server_keep_alive: b.3,
                response_information: b.4,
                server_reference: b.5,
                authentication_method: b.6,
                authentication_data: b.7,
            },
        },
    )
}

fn publish() -> impl Strategy<Value = Publish> {
    let props = (
        of(any::<bool>()),
        of(any::<u32>()),
        of(any::<u16>()),
        of(text()),
        of(blob()),
        users(),
        vec(sub_id(), 0..3),
        of(text()),
    )
        .prop_map(|(f, e, ta, rt, cd, u, sids, ct)| PublishProperties {
            payload_format_indicator: f,
            message_expiry_interval: e,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            user_properties: u,
            subscription_identifiers: sids,
            content_type: ct,
        });
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        text(),
        packet_id(),
        props,
        blob(),
    )
        .prop_map(|(dup, qos, retain, topic, id, properties, payload)| {
            let qos0 = qos == QoS::AtMostOnce;
            Publish {
                dup: dup && !qos0,
                qos,
                retain,
                topic: Arc::from(topic),
                packet_id: (!qos0).then_some(id),
                properties,
                payload,
            }
        })
}

fn pub_response(ctx: ReasonContext) -> impl Strategy<Value = PubResponse> {
    (packet_id(), reason(ctx), ack_props()).prop_map(|(packet_id, reason, properties)| {
        PubResponse {
            packet_id,
            reason,
            properties,
        }
    })
}

fn options() -> impl Strategy<Value = SubscriptionOptions> {
    let rh = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    (qos(), any::<bool>(), any::<bool>(), rh).prop_map(|(qos, nl, rap, rh)| SubscriptionOptions {
        qos,
        no_local: nl,
        retain_as_published: rap,
        retain_handling: rh,
    })
}

fn packet_v5() -> impl Strategy<Value = Packet> {
    prop_oneof![
        connect().prop_map(Packet::Connect),
        connack().prop_map(Packet::ConnAck),
        publish().prop_map(Packet::Publish),
        pub_response(ReasonContext::PubAck).prop_map(Packet::PubAck),
        pub_response(ReasonContext::PubRec).prop_map(Packet::PubRec),
        pub_response(ReasonContext::PubRel).prop_map(Packet::PubRel),
        pub_response(ReasonContext::PubComp).prop_map(Packet::PubComp),
        (
            packet_id(),
            vec((text(), options()), 1..4),
            of(sub_id()),
            users()
        )
            .prop_map(|(packet_id, filters, sid, u)| Packet::Subscribe(Subscribe {
                packet_id,
                filters,
                properties: SubscribeProperties {
                    subscription_identifier: sid,
                    user_properties: u,
                },
            })),
        (
            packet_id(),
            vec(reason(ReasonContext::SubAck), 0..4),
            ack_props()
        )
            .prop_map(|(packet_id, reasons, properties)| Packet::SubAck(SubAck {
                packet_id,
                reasons,
                properties,
            })),
        (packet_id(), vec(text(), 1..4), users()).prop_map(|(packet_id, filters, u)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties: UnsubscribeProperties { user_properties: u },
            })
        }),
        (
            packet_id(),
            vec(reason(ReasonContext::UnsubAck), 0..4),
            ack_props()
        )
            .prop_map(
                |(packet_id, reasons, properties)| Packet::UnsubAck(UnsubAck {
                    packet_id,
                    reasons,
                    properties,
                })
            ),
        Just(Packet::PingReq),
        Just(Packet::PingResp),
        (
            reason(ReasonContext::Disconnect),
            of(any::<u32>()),
            of(text()),
            users(),
            of(text())
        )
            .prop_map(|(reason, se, rs, u, sr)| Packet::Disconnect(Disconnect {
                reason,
                properties: DisconnectProperties {
                    session_expiry_interval: se,
                    reason_string: rs,
                    user_properties: u,
                    server_reference: sr,
                },
            })),
        (
            reason(ReasonContext::Auth),
            of(text()),
            of(blob()),
            of(text()),
            users()
        )
            .prop_map(|(reason, am, ad, rs, u)| Packet::Auth(Auth {
                reason,
                properties: AuthProperties {
                    authentication_method: am,
                    authentication_data: ad,
                    reason_string: rs,
                    user_properties: u,
                },
            })),
    ]
}

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V31),
        Just(ProtocolVersion::V311),
        Just(ProtocolVersion::V5)
    ]
}

/// Feeds `bytes` in `chunk`-sized pieces, decoding and re-encoding until an error.
fn feed(bytes: &[u8], chunk: usize, version: ProtocolVersion) {
    let mut buf = BytesMut::new();
    for piece in bytes.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match decode_packet(&mut buf, version, NO_LIMIT) {
                Ok(Some(packet)) => {
                    // Whatever decodes and re-encodes must decode to the same packet.
                    let mut out = BytesMut::new();
                    if encode_packet(&packet, version, &mut out).is_ok() {
                        let again = decode_packet(&mut out, version, NO_LIMIT).unwrap().unwrap();
                        assert_eq!(again, packet);
                        assert!(out.is_empty());
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..300),
        chunk in 1usize..32,
        version in version(),
    ) {
        feed(&bytes, chunk, version);
    }

    #[test]
    fn mutated_valid_packets_never_panic(
        packet in packet_v5(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        chunk in 1usize..16,
        version in version(),
    ) {
        let mut buf = BytesMut::new();
        encode_packet(&packet, ProtocolVersion::V5, &mut buf).unwrap();
        let mut bytes = buf.to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        feed(&bytes, chunk, version);
    }

    #[test]
    fn valid_v5_packets_round_trip(packet in packet_v5()) {
        round_trip(&packet, ProtocolVersion::V5);
    }

    #[test]
    fn valid_v311_packets_round_trip(packet in packet_v5()) {
        if let Some(packet) = as_v3(packet) {
            let packet = match packet {
                // CONNACK return codes differ between versions; keep 0..=5.
                Packet::ConnAck(mut c) => {
                    c.code %= 6;
                    Packet::ConnAck(c)
                }
                other => other,
            };
            round_trip(&packet, ProtocolVersion::V311);
        }
    }
}
