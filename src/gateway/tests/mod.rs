//! Unit tests of the sans-IO gateway, one behaviour per test, named after the
//! checklist item of the MQTT-SN 1.2 digest (section 7) they check.
//!
//! The harness plays the broker core by answering the gateway's commands with
//! the events the core's contract (`broker::api`) promises.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::{Gateway, GatewaySettings, PeerAddr, PredefinedTopic, Transmit};
use crate::broker::{
    Command, ConnId, Delivery, DisconnectKind, Message as BrokerMessage, Outbound, PublishOutcome,
    SubscribeResult, UnsubscribeResult,
};
use crate::mqttsn::codec::{self, Frame, Message};
use crate::qos::QoS;

mod connect;
mod discovery;
mod forwarder;
mod framing;
mod identity;
mod props;
mod publish;
mod register;
mod sleep;
mod subscribe;
mod will;

/// A UDP peer on loopback, numbered.
pub(crate) fn peer(n: u16) -> PeerAddr {
    PeerAddr::Udp(SocketAddr::from(([127, 0, 0, 1], 20_000 + n)))
}

/// Settings used by most tests: one global predefined topic (id 5) and one
/// for client "cl1" only (id 6).
pub(crate) fn settings() -> GatewaySettings {
    GatewaySettings {
        predefined: vec![
            PredefinedTopic {
                topic_id: 5,
                topic: "pre/five".into(),
                client_id: None,
            },
            PredefinedTopic {
                topic_id: 6,
                topic: "pre/six".into(),
                client_id: Some("cl1".into()),
            },
        ],
        ..GatewaySettings::default()
    }
}

/// The gateway plus a virtual clock.
pub(crate) struct Harness {
    pub gw: Gateway,
    pub now: Instant,
}

impl Harness {
    pub fn new() -> Harness {
        Harness::with(settings())
    }

    pub fn with(settings: GatewaySettings) -> Harness {
        let now = Instant::now();
        let mut gw = Gateway::new(settings);
        gw.start(now);
        Harness { gw, now }
    }

    /// Feeds raw octets from `p`.
    pub fn raw(&mut self, p: u16, bytes: &[u8]) {
        self.gw
            .handle_datagram(self.now, peer(p), Bytes::copy_from_slice(bytes));
    }

    /// Feeds a message from `p`.
    pub fn send(&mut self, p: u16, msg: Message) {
        let mut buf = BytesMut::new();
        codec::encode(&msg, &mut buf).unwrap();
        self.gw.handle_datagram(self.now, peer(p), buf.freeze());
    }

    pub fn transmits(&mut self) -> Vec<Transmit> {
        std::iter::from_fn(|| self.gw.poll_transmit()).collect()
    }

    /// Every datagram sent to `p` since the last call, decoded (others are discarded).
    pub fn replies_to(&mut self, p: u16) -> Vec<Message> {
        self.transmits()
            .into_iter()
            .filter(|t| t.peer == Some(peer(p)))
            .map(|t| match codec::decode(&t.payload).unwrap() {
                Frame::Message(m) => m,
                Frame::Encapsulated { message, .. } => message,
            })
            .collect()
    }

    /// Raw datagrams sent to `p`.
    pub fn raw_replies_to(&mut self, p: u16) -> Vec<Vec<u8>> {
        self.transmits()
            .into_iter()
            .filter(|t| t.peer == Some(peer(p)))
            .map(|t| t.payload.to_vec())
            .collect()
    }

    pub fn commands(&mut self) -> Vec<Command> {
        std::iter::from_fn(|| self.gw.poll_command()).collect()
    }

    pub fn outbound(&mut self, conn: ConnId, ev: Outbound) {
        self.gw.handle_outbound(self.now, conn, ev);
    }

    /// Advances the virtual clock and runs due timers.
    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        self.gw.handle_timeout(self.now);
    }

    /// Plays the broker core: answers every pending command as the core
    /// would when everything succeeds. Returns the commands seen.
    pub fn play_broker(&mut self) -> Vec<Command> {
        let cmds = self.commands();
        for c in &cmds {
            match c {
                Command::Connect(req) => self.outbound(
                    req.conn,
                    Outbound::ConnAck {
                        session_present: !req.clean_start,
                    },
                ),
                Command::Publish {
                    conn,
                    packet_id: Some(id),
                    message,
                } => {
                    let ev = if message.qos == QoS::ExactlyOnce {
                        Outbound::PubRec {
                            packet_id: *id,
                            outcome: PublishOutcome::Delivered,
                        }
                    } else {
                        Outbound::PubAck {
                            packet_id: *id,
                            outcome: PublishOutcome::Delivered,
                        }
                    };
                    self.outbound(*conn, ev)
                }
                Command::PubRel { conn, packet_id } => self.outbound(
                    *conn,
                    Outbound::PubComp {
                        packet_id: *packet_id,
                        found: true,
                    },
                ),
                Command::Subscribe {
                    conn,
                    packet_id,
                    filters,
                    ..
                } => self.outbound(
                    *conn,
                    Outbound::SubAck {
                        packet_id: *packet_id,
                        results: filters
                            .iter()
                            .map(|f| SubscribeResult::Granted(f.options.qos))
                            .collect(),
                    },
                ),
                Command::Unsubscribe {
                    conn, packet_id, ..
                } => self.outbound(
                    *conn,
                    Outbound::UnsubAck {
                        packet_id: *packet_id,
                        results: vec![UnsubscribeResult::Removed],
                    },
                ),
                _ => {}
            }
        }
        cmds
    }

    /// Connects client `id` from peer `p` without will; returns its broker connection.
    pub fn connect(&mut self, p: u16, id: &str, clean: bool) -> ConnId {
        self.send(p, connect_msg(id, clean, false, 60));
        let cmds = self.play_broker();
        let conn = cmds
            .iter()
            .find_map(|c| match c {
                Command::Connect(r) => Some(r.conn),
                _ => None,
            })
            .expect("Command::Connect");
        assert_eq!(
            self.replies_to(p),
            vec![Message::ConnAck {
                code: codec::ReturnCode::Accepted
            }]
        );
        conn
    }

    /// Connects and subscribes `filter` at `qos`; returns the conn and the SUBACK.
    pub fn connect_and_subscribe(
        &mut self,
        p: u16,
        id: &str,
        filter: &str,
        qos: QoS,
    ) -> (ConnId, Message) {
        let conn = self.connect(p, id, true);
        self.send(
            p,
            Message::Subscribe {
                dup: false,
                qos,
                msg_id: 1,
                topic: codec::TopicFilterRef::Name(Bytes::copy_from_slice(filter.as_bytes())),
            },
        );
        self.play_broker();
        let mut r = self.replies_to(p);
        assert_eq!(r.len(), 1);
        (conn, r.remove(0))
    }
}

pub(crate) fn connect_msg(id: &str, clean: bool, will: bool, keep_alive: u16) -> Message {
    Message::Connect {
        flags: codec::ConnectFlags {
            will,
            clean_session: clean,
        },
        protocol_id: 1,
        duration: keep_alive,
        client_id: Bytes::copy_from_slice(id.as_bytes()),
    }
}

/// A delivery as the core sends it.
pub(crate) fn delivery(topic: &str, payload: &[u8], qos: QoS, packet_id: Option<u16>) -> Outbound {
    Outbound::Deliver(Delivery {
        packet_id,
        message: BrokerMessage::new(topic, Bytes::copy_from_slice(payload), qos, false),
        dup: false,
        subscription_ids: vec![],
    })
}

/// True when `cmds` holds an abnormal disconnect (the core publishes the will).
pub(crate) fn has_abnormal_disconnect(cmds: &[Command]) -> bool {
    cmds.iter().any(|c| {
        matches!(
            c,
            Command::Disconnect {
                kind: DisconnectKind::Abnormal,
                ..
            }
        )
    })
}

/// True when `cmds` holds a graceful disconnect without will.
pub(crate) fn has_graceful_disconnect(cmds: &[Command]) -> bool {
    cmds.iter().any(|c| {
        matches!(
            c,
            Command::Disconnect {
                kind: DisconnectKind::Graceful {
                    publish_will: false,
                    ..
                },
                ..
            }
        )
    })
}
