//! Arbitrary bytes, decoded as a client's packets, drive one `MqttSession`
//! against a stand-in core that answers every command as the real one would
//! (CONNACK, acks, echoed deliveries), with time advancing between steps. The
//! session must never panic, whatever the order or content of the packets.
#![no_main]

use std::time::{Duration, Instant};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sngate::broker::{
    Command, ConnId, Delivery, Outbound, Outbox, PublishOutcome, SubscribeResult, UnsubscribeResult,
};
use sngate::mqtt::codec::{decode_packet, encode_packet};
use sngate::mqtt::session::{MqttSession, SessionSettings};
use sngate::qos::QoS;

/// Answers the session's commands like the broker core.
fn answer(session: &mut MqttSession, next_id: &mut u16, now: Instant) {
    while let Some(cmd) = session.poll_command() {
        let reply = match cmd {
            Command::Connect(_) => vec![Outbound::ConnAck {
                session_present: false,
            }],
            Command::Publish {
                packet_id, message, ..
            } => {
                let mut out = Vec::new();
                match (message.qos, packet_id) {
                    (QoS::AtLeastOnce, Some(packet_id)) => out.push(Outbound::PubAck {
                        packet_id,
                        outcome: PublishOutcome::Delivered,
                    }),
                    (QoS::ExactlyOnce, Some(packet_id)) => out.push(Outbound::PubRec {
                        packet_id,
                        outcome: PublishOutcome::Delivered,
                    }),
                    _ => {}
                }
                // Echo the message back, as if the client were subscribed.
                let packet_id = (message.qos != QoS::AtMostOnce).then(|| {
                    *next_id = next_id.wrapping_add(1).max(1);
                    *next_id
                });
                out.push(Outbound::Deliver(Delivery {
                    packet_id,
                    message,
                    dup: false,
                    subscription_ids: Vec::new(),
                }));
                out
            }
            Command::PubRel { packet_id, .. } => vec![Outbound::PubComp {
                packet_id,
                found: true,
            }],
            Command::PubRec { packet_id, .. } => vec![Outbound::PubRel { packet_id }],
            Command::Subscribe {
                packet_id, filters, ..
            } => vec![Outbound::SubAck {
                packet_id,
                results: filters
                    .iter()
                    .map(|f| SubscribeResult::Granted(f.options.qos))
                    .collect(),
            }],
            Command::Unsubscribe {
                packet_id, filters, ..
            } => vec![Outbound::UnsubAck {
                packet_id,
                results: vec![UnsubscribeResult::Removed; filters.len()],
            }],
            _ => Vec::new(),
        };
        for event in reply {
            session.handle_outbound(event, now);
        }
    }
}

fn drain_packets(session: &mut MqttSession) {
    let mut out = BytesMut::new();
    while let Some(packet) = session.poll_packet() {
        // Encoding may refuse (e.g. over the client's maximum); it must not panic.
        let _ = encode_packet(&packet, session.version(), &mut out);
    }
}

fuzz_target!(|data: &[u8]| {
    let (outbox, _rx) = Outbox::channel();
    let settings = SessionSettings {
        max_packet_size: 4096,
        max_topic_alias: 4,
        receive_maximum: 4,
        ..SessionSettings::default()
    };
    let mut now = Instant::now();
    let mut session = MqttSession::new(ConnId::next(), outbox, settings, now);
    let mut next_id = 0u16;
    let mut rbuf = BytesMut::new();
    // Each step is an op byte: mostly "the client sent these bytes" (then a
    // length byte and that many bytes), sometimes "time passes" or "the
    // connection drops".
    let mut rest = data;
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 8 {
            0..=5 => {
                let (&len, tail) = rest.split_first().unwrap_or((&0, &[]));
                let n = usize::from(len).min(tail.len());
                rbuf.extend_from_slice(&tail[..n]);
                rest = &tail[n..];
                loop {
                    match decode_packet(&mut rbuf, session.version(), 4096) {
                        Ok(Some(packet)) => session.handle_packet(packet, now),
                        Ok(None) => break,
                        Err(e) => {
                            session.handle_decode_error(&e);
                            rbuf.clear();
                            break;
                        }
                    }
                    if session.is_closing() {
                        break;
                    }
                }
            }
            6 => {
                let (&step, tail) = rest.split_first().unwrap_or((&0, &[]));
                rest = tail;
                now += Duration::from_millis(u64::from(step) * 50);
                if session.poll_timeout().is_some_and(|t| now >= t) {
                    session.handle_timeout(now);
                }
            }
            _ => session.connection_lost("fuzz: connection dropped"),
        }
        answer(&mut session, &mut next_id, now);
        drain_packets(&mut session);
    }
    session.connection_lost("fuzz: end of input");
    answer(&mut session, &mut next_id, now);
    drain_packets(&mut session);
});
