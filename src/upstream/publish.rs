//! Sensor publishes on their way upstream: held (QoS 1/2) until the
//! upstream completes them, sent in order within each connection's window;
//! and the sensors' answers to deliveries.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tracing::warn;

use super::{Mode, Router};
use crate::bridge::session::to_publish;
use crate::broker::{ConnId, Message, Outbound, PublishOutcome};
use crate::mqtt::codec::{Packet, PubResponse};
use crate::qos::QoS;
use crate::upstream::link::LinkId;

impl Router {
    /// Accepts a QoS 1/2 message for `link`: held until the upstream
    /// completes it. QoS 0 goes out at once, or is dropped while down.
    pub(super) fn hold(
        &mut self,
        now: Instant,
        link: LinkId,
        message: Message,
    ) -> Result<(), PublishOutcome> {
        let Some(l) = self.links.get_mut(&link) else {
            return Err(PublishOutcome::QuotaExceeded);
        };
        if message.qos == QoS::AtMostOnce {
            if l.up {
                l.handle
                    .send(Packet::Publish(to_publish(&message, None, false, now)));
                self.stats.published.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.dropped_qos0.fetch_add(1, Ordering::Relaxed);
            }
            return Ok(());
        }
        match self.held.push(&l.key, message.clone()) {
            Ok(seq) => {
                l.queue.push_back((seq, message));
                self.stats.held.fetch_add(1, Ordering::Relaxed);
                self.pump(now, link);
                Ok(())
            }
            Err(full) => {
                self.stats.refused_full.fetch_add(1, Ordering::Relaxed);
                warn!("upstream publish refused with congestion: {full}");
                Err(PublishOutcome::QuotaExceeded)
            }
        }
    }

    pub(super) fn pump(&mut self, now: Instant, link: LinkId) {
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        while l.up && l.session.can_send() {
            let Some((seq, message)) = l.queue.pop_front() else {
                break;
            };
            let (packet, _) = l.session.publish(seq, message, now);
            l.handle.send(packet);
            self.stats.published.fetch_add(1, Ordering::Relaxed);
        }
        self.maybe_close(link);
    }

    pub(super) fn maybe_close(&mut self, link: LinkId) {
        let done = self.links.get(&link).is_some_and(|l| {
            l.closing.is_some() && l.queue.is_empty() && l.session.inflight() == 0
        });
        if done && let Some(mut l) = self.links.remove(&link) {
            let goodbye = l.closing.take().flatten();
            self.close_link(&l, goodbye);
        }
    }

    pub(super) fn on_publish(
        &mut self,
        now: Instant,
        conn: ConnId,
        packet_id: Option<u16>,
        message: Message,
    ) {
        let Some(link) = self.link_of(conn) else {
            return;
        };
        let qos = message.qos;
        if qos == QoS::ExactlyOnce
            && let Some(id) = packet_id
            && self
                .conns
                .get(&conn)
                .is_some_and(|c| c.qos2_in.contains(&id))
        {
            // A retransmitted QoS 2 PUBLISH is already held (MQTT-SN 1.2 §6.7).
            self.reply(
                conn,
                Outbound::PubRec {
                    packet_id: id,
                    outcome: PublishOutcome::Delivered,
                },
            );
            return;
        }
        let outcome = match self.hold(now, link, message) {
            Ok(()) => PublishOutcome::Delivered,
            Err(o) => o,
        };
        let Some(packet_id) = packet_id else {
            return;
        };
        match qos {
            QoS::AtLeastOnce => self.reply(conn, Outbound::PubAck { packet_id, outcome }),
            QoS::ExactlyOnce => {
                if outcome.is_success()
                    && let Some(c) = self.conns.get_mut(&conn)
                {
                    c.qos2_in.insert(packet_id);
                }
                self.reply(conn, Outbound::PubRec { packet_id, outcome });
            }
            QoS::AtMostOnce => {}
        }
    }

    /// The sensor's answer to a delivery: step 1 PUBACK, 2 PUBREC, 3 PUBCOMP.
    pub(super) fn on_delivery_ack(&mut self, conn: ConnId, packet_id: u16, step: u8) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        match self.mode {
            Mode::Transparent => {
                let Some(l) = self.links.get(&c.link) else {
                    return;
                };
                let r = PubResponse::new(packet_id);
                l.handle.send(match step {
                    1 => Packet::PubAck(r),
                    2 => Packet::PubRec(r),
                    _ => Packet::PubComp(r),
                });
            }
            Mode::Aggregating => match step {
                2 => {
                    c.outbox.send(conn, Outbound::PubRel { packet_id });
                    // Received by the sensor: never to be sent again.
                    self.delivery_received(conn, packet_id);
                }
                _ => self.delivery_done(conn, packet_id),
            },
        }
    }
}
