//! The upstream task's side of the link reports: connections coming up
//! (resend, resubscribe, CONNACK), packets from the upstream broker
//! (acknowledgements, deliveries, fan-out in aggregating mode) and losses.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::{info, warn};

use super::{Mode, Pending, Router};
use crate::bridge::session::{AckEffect, from_publish};
use crate::broker::{Delivery, Outbound, ServerDisconnect, UnsubscribeResult};
use crate::mqtt::codec::{
    Packet, PubResponse, Subscribe, SubscribeProperties, SubscriptionOptions, Unsubscribe,
    UnsubscribeProperties,
};
use crate::qos::QoS;
use crate::upstream::link::{LinkEvent, LinkId};

impl Router {
    /// One report from a link task.
    pub fn on_link_event(&mut self, now: Instant, ev: LinkEvent) {
        match ev {
            LinkEvent::Up {
                id,
                session_present,
                receive_maximum,
            } => self.on_link_up(now, id, session_present, receive_maximum),
            LinkEvent::Down(id, why) => {
                let Some(l) = self.links.get_mut(&id) else {
                    return;
                };
                l.up = false;
                self.stats.links_up.fetch_sub(1, Ordering::Relaxed);
                self.stats.link_losses.fetch_add(1, Ordering::Relaxed);
                warn!(client_id = %l.key, "upstream connection lost: {why}; reconnecting");
                if let Some(mut l) = self.links.remove(&id) {
                    self.fail_pending(&mut l);
                    self.links.insert(id, l);
                }
                self.update_availability();
            }
            LinkEvent::Refused(id, why) => {
                let Some(l) = self.links.remove(&id) else {
                    return;
                };
                self.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
                if let Some(conn) = l.owner
                    && let Some(c) = self.conns.remove(&conn)
                {
                    self.stats.refused_sensors.fetch_add(1, Ordering::Relaxed);
                    warn!(client_id = %c.client_id, "MQTT-SN client {} refused: upstream connection failed: {why}", c.client_id);
                    if self.by_client.get(&c.client_id) == Some(&conn) {
                        self.by_client.remove(&c.client_id);
                    }
                    c.outbox
                        .send(conn, Outbound::Disconnect(ServerDisconnect::ShuttingDown));
                }
            }
            LinkEvent::Packet(id, p) => self.on_packet(now, id, *p),
        }
    }

    fn on_link_up(&mut self, now: Instant, id: LinkId, session_present: bool, rm: Option<u16>) {
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        l.up = true;
        self.stats.links_up.fetch_add(1, Ordering::Relaxed);
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        let is_pool = self.pool.contains(&id);
        if is_pool {
            info!(client_id = %l.key, "upstream connection up (session present: {session_present})");
        } else {
            tracing::debug!(client_id = %l.key, "upstream connection up (session present: {session_present})");
        }
        for p in l.session.on_connected(session_present, rm, now) {
            l.handle.send(p);
        }
        // What to subscribe again: the upstream lost the session.
        let resubscribe: Vec<(Arc<str>, QoS)> = match (self.mode, l.owner) {
            (Mode::Transparent, Some(conn)) => match self.conns.get_mut(&conn) {
                Some(c) if !c.connacked => {
                    c.connacked = true;
                    c.outbox.send(conn, Outbound::ConnAck { session_present });
                    Vec::new()
                }
                Some(c) if !session_present => {
                    c.subs.iter().map(|(f, q)| (f.clone(), *q)).collect()
                }
                _ => Vec::new(),
            },
            (Mode::Aggregating, _) if !session_present => {
                l.fresh.clear();
                // A new session holds nothing stale.
                for f in std::mem::take(&mut l.stale) {
                    if !self.filters.contains_key(&f) {
                        self.sessions.remove_filter(&f);
                    }
                }
                self.filters
                    .iter()
                    .filter(|(_, e)| e.link == id)
                    .map(|(f, _)| (f.clone(), QoS::ExactlyOnce))
                    .collect()
            }
            (Mode::Aggregating, _) => {
                // The upstream kept the pool's session: it lacks only the
                // restored filters it never had, and still has those nobody
                // wants any more.
                let fresh = std::mem::take(&mut l.fresh);
                let stale = std::mem::take(&mut l.stale);
                let stale: Vec<String> = stale
                    .into_iter()
                    .filter(|f| !self.filters.contains_key(f))
                    .map(|f| f.to_string())
                    .collect();
                if !stale.is_empty() {
                    for f in &stale {
                        self.sessions.remove_filter(f);
                    }
                    let unsub_id = l.control_id();
                    l.pending.insert(unsub_id, Pending::Internal);
                    l.handle.send(Packet::Unsubscribe(Unsubscribe {
                        packet_id: unsub_id,
                        filters: stale,
                        properties: UnsubscribeProperties::default(),
                    }));
                }
                fresh
                    .into_iter()
                    .filter(|f| self.filters.get(f).is_some_and(|e| e.link == id))
                    .map(|f| (f, QoS::ExactlyOnce))
                    .collect()
            }
            _ => Vec::new(),
        };
        if !resubscribe.is_empty() {
            let sub_id = l.control_id();
            l.pending.insert(sub_id, Pending::Internal);
            l.handle.send(Packet::Subscribe(Subscribe {
                packet_id: sub_id,
                filters: resubscribe
                    .into_iter()
                    .map(|(f, qos)| {
                        (
                            f.to_string(),
                            SubscriptionOptions {
                                qos,
                                ..SubscriptionOptions::default()
                            },
                        )
                    })
                    .collect(),
                properties: SubscribeProperties::default(),
            }));
        }
        self.update_availability();
        self.pump(now, id);
    }

    fn on_packet(&mut self, now: Instant, id: LinkId, p: Packet) {
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        let effect = match p {
            Packet::PubAck(r) => l.session.on_puback(&r),
            Packet::PubRec(r) => l.session.on_pubrec(&r),
            Packet::PubComp(r) => l.session.on_pubcomp(&r),
            Packet::SubAck(s) => {
                self.on_suback(id, s);
                return;
            }
            Packet::UnsubAck(u) => {
                if let Some(Pending::Unsubscribe { conn, packet_id }) =
                    l.pending.remove(&u.packet_id)
                {
                    self.reply(
                        conn,
                        Outbound::UnsubAck {
                            packet_id,
                            results: vec![UnsubscribeResult::Removed],
                        },
                    );
                }
                return;
            }
            Packet::Publish(publish) => {
                self.on_upstream_publish(now, id, publish);
                return;
            }
            Packet::PubRel(r) => {
                match (self.mode, l.owner) {
                    (Mode::Transparent, Some(conn)) => {
                        self.reply(
                            conn,
                            Outbound::PubRel {
                                packet_id: r.packet_id,
                            },
                        );
                    }
                    _ => {
                        l.incoming_qos2.remove(&r.packet_id);
                        l.handle
                            .send(Packet::PubComp(PubResponse::new(r.packet_id)));
                    }
                }
                return;
            }
            Packet::Disconnect(d) => {
                warn!(client_id = %l.key, reason = ?d.reason, "upstream broker sent DISCONNECT");
                return;
            }
            other => {
                tracing::debug!(client_id = %l.key, packet = other.name(), "ignored packet from the upstream broker");
                return;
            }
        };
        match effect {
            AckEffect::Done { seq, refused } => {
                if let Some(code) = refused {
                    // The sensor was already acknowledged; the upstream's
                    // refusal (e.g. its ACL) can only be logged and counted.
                    warn!(client_id = %l.key, "upstream refused a held message: reason 0x{code:02X}");
                    self.stats.refused_upstream.fetch_add(1, Ordering::Relaxed);
                }
                let key = l.key.clone();
                self.held.remove(&key, seq);
                self.pump(now, id);
            }
            AckEffect::SendPubRel(pid) => l.handle.send(Packet::PubRel(PubResponse::new(pid))),
            AckEffect::Ignore => {}
        }
    }

    fn on_upstream_publish(
        &mut self,
        now: Instant,
        id: LinkId,
        publish: crate::mqtt::codec::Publish,
    ) {
        let Some(l) = self.links.get_mut(&id) else {
            return;
        };
        self.stats.received.fetch_add(1, Ordering::Relaxed);
        let message = from_publish(&publish, publish.topic.clone(), publish.qos, now);
        if let (Mode::Transparent, Some(conn)) = (self.mode, l.owner) {
            // The upstream's packet id is this sensor's: acknowledgements map 1:1.
            self.stats.delivered.fetch_add(1, Ordering::Relaxed);
            self.reply(
                conn,
                Outbound::Deliver(Delivery {
                    packet_id: publish.packet_id,
                    message,
                    dup: publish.dup,
                    subscription_ids: Vec::new(),
                }),
            );
            return;
        }
        if self.mode == Mode::Transparent {
            // A sensor's connection with the sensor gone (delivering what is
            // held, or a previous run's): left unacknowledged, the message
            // stays in the sensor's upstream session and comes again when
            // the sensor does [MQTT-4.4.0-1].
            tracing::debug!(client_id = %l.key, topic = %message.topic, "message for an absent sensor left with the upstream");
            return;
        }
        // The gateway takes the message over from the upstream: stored for
        // persistent sensors first (fan_out), acknowledged after, so that a
        // message the upstream has let go of is never lost in a crash.
        let handle = l.handle.clone();
        let ack = match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(pid)) => Some(Packet::PubAck(PubResponse::new(pid))),
            (QoS::ExactlyOnce, Some(pid)) => {
                if !l.incoming_qos2.insert(pid) {
                    // [MQTT-4.3.3-10] a resent QoS 2 message is delivered once
                    handle.send(Packet::PubRec(PubResponse::new(pid)));
                    return;
                }
                Some(Packet::PubRec(PubResponse::new(pid)))
            }
            _ => None,
        };
        if self.mode != Mode::Aggregating {
            return;
        }
        if self.fan_out(now, id, message) {
            if let Some(ack) = ack {
                handle.send(ack);
            }
        } else if let (QoS::ExactlyOnce, Some(pid)) = (publish.qos, publish.packet_id)
            && let Some(l) = self.links.get_mut(&id)
        {
            // Unacknowledged, the upstream sends it again [MQTT-4.4.0-1]:
            // it must not then count as a duplicate.
            l.incoming_qos2.remove(&pid);
        }
    }
}
