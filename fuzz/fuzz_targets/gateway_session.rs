//! Feeds an arbitrary sequence of (peer, datagram, time advance) into the
//! sans-IO gateway, answering its broker commands as the core would; the
//! gateway must never panic.
//!
//! Input layout, repeated: `peer: u8, advance_secs: u8, len: u8, datagram[len]`.
#![no_main]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sngate::broker::{Command, Outbound, PublishOutcome, SubscribeResult, UnsubscribeResult};
use sngate::gateway::{Gateway, GatewaySettings, PeerAddr, PredefinedTopic};
use sngate::qos::QoS;

fuzz_target!(|data: &[u8]| {
    let mut now = Instant::now();
    let mut gw = Gateway::new(GatewaySettings {
        advertise_interval: Duration::from_secs(30),
        max_sensors: 16,
        max_buffered_messages: 4,
        predefined: vec![PredefinedTopic {
            topic_id: 5,
            topic: "pre/five".into(),
            client_id: None,
        }],
        ..GatewaySettings::default()
    });
    gw.start(now);
    let mut rest = data;
    while let [peer, advance, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (datagram, next) = tail.split_at(n);
        rest = next;
        now += Duration::from_secs(u64::from(*advance));
        gw.handle_timeout(now);
        let from = PeerAddr::Udp(SocketAddr::from((
            [127, 0, 0, 1],
            1000 + u16::from(peer % 8),
        )));
        gw.handle_datagram(now, from, Bytes::copy_from_slice(datagram));
        play_broker(&mut gw, now, *advance);
        while gw.poll_transmit().is_some() {}
    }
});

/// Answers commands like the core; an odd `seed` also delivers a message.
fn play_broker(gw: &mut Gateway, now: Instant, seed: u8) {
    let mut events = Vec::new();
    while let Some(c) = gw.poll_command() {
        match c {
            Command::Connect(r) => {
                events.push((
                    r.conn,
                    Outbound::ConnAck {
                        session_present: false,
                    },
                ));
                if seed % 2 == 1 {
                    let qos = QoS::from_u8(seed % 3).unwrap_or_default();
                    let topic = if seed % 5 == 0 { "pre/five" } else { "s/x" };
                    events.push((
                        r.conn,
                        Outbound::Deliver(sngate::broker::Delivery {
                            packet_id: (qos != QoS::AtMostOnce).then_some(u16::from(seed)),
                            message: sngate::broker::Message::new(
                                topic,
                                Bytes::from_static(b"v"),
                                qos,
                                false,
                            ),
                            dup: false,
                            subscription_ids: vec![],
                        }),
                    ));
                }
            }
            Command::Publish {
                conn,
                packet_id: Some(id),
                message,
            } => {
                let outcome = PublishOutcome::Delivered;
                let ev = if message.qos == QoS::ExactlyOnce {
                    Outbound::PubRec {
                        packet_id: id,
                        outcome,
                    }
                } else {
                    Outbound::PubAck {
                        packet_id: id,
                        outcome,
                    }
                };
                events.push((conn, ev));
            }
            Command::PubRel { conn, packet_id } => events.push((
                conn,
                Outbound::PubComp {
                    packet_id,
                    found: true,
                },
            )),
            Command::PubRec { conn, packet_id } => {
                events.push((conn, Outbound::PubRel { packet_id }))
            }
            Command::Subscribe {
                conn,
                packet_id,
                filters,
                ..
            } => events.push((
                conn,
                Outbound::SubAck {
                    packet_id,
                    results: filters
                        .iter()
                        .map(|f| SubscribeResult::Granted(f.options.qos))
                        .collect(),
                },
            )),
            Command::Unsubscribe {
                conn, packet_id, ..
            } => events.push((
                conn,
                Outbound::UnsubAck {
                    packet_id,
                    results: vec![UnsubscribeResult::Removed],
                },
            )),
            _ => {}
        }
    }
    for (conn, ev) in events {
        gw.handle_outbound(now, conn, ev);
    }
}
