//! The client's side of a delivery: PUBACK, PUBREC and PUBCOMP, resending
//! after a reconnect, and taking back shared-subscription messages.

use super::{Awaiting, Delivery, Inflight, Out, Outbound, Session, Unacked};

impl Session {
    /// Re-sends unacknowledged deliveries after a reconnect, in their original
    /// order, PUBLISH with DUP set and PUBREL for those already PUBREC'd
    /// [MQTT-4.4.0-1].
    pub fn resend_inflight(&mut self, out: &mut Out) {
        let mut order: Vec<(u64, u16)> = self.inflight.iter().map(|(id, f)| (f.seq, *id)).collect();
        order.sort_unstable();
        for (_, packet_id) in order {
            let Some(f) = self.inflight.get(&packet_id) else {
                continue;
            };
            // Onward delivery has started, so an unacknowledged message is
            // resent even if it has expired since [MQTT-3.3.2-5, MQTT-4.4.0-1];
            // skipping it would also hold its window slot for ever.
            let event = match f.awaiting {
                Awaiting::PubComp => Outbound::PubRel { packet_id },
                _ => Outbound::Deliver(Delivery {
                    packet_id: Some(packet_id),
                    message: f.message.clone(),
                    dup: true,
                    subscription_ids: f.subscription_ids.clone(),
                }),
            };
            self.send(out, event);
        }
    }

    /// PUBACK from the client: the QoS 1 delivery is done.
    pub fn puback(&mut self, packet_id: u16) -> bool {
        self.complete(packet_id, Awaiting::PubAck)
    }

    /// PUBCOMP from the client: the QoS 2 delivery is done.
    pub fn pubcomp(&mut self, packet_id: u16) -> bool {
        self.complete(packet_id, Awaiting::PubComp)
    }

    fn complete(&mut self, packet_id: u16, expected: Awaiting) -> bool {
        match self.inflight.get(&packet_id) {
            Some(f) if f.awaiting == expected => {
                let seq = f.seq;
                self.inflight.remove(&packet_id);
                self.touch(seq);
                true
            }
            _ => false,
        }
    }

    /// PUBREC from the client: answer PUBREL and wait for PUBCOMP [MQTT-4.3.3-1].
    pub fn pubrec(&mut self, packet_id: u16, out: &mut Out) {
        if let Some(f) = self.inflight.get_mut(&packet_id)
            && f.awaiting != Awaiting::PubAck
        {
            f.awaiting = Awaiting::PubComp;
            let seq = f.seq;
            self.touch(seq);
        }
        self.send(out, Outbound::PubRel { packet_id });
    }

    /// Takes back every message that came through a shared subscription and
    /// that the client has not yet received: queued, or in flight without a
    /// PUBACK/PUBREC. Oldest first. (A PUBREC'd QoS 2 message has arrived and
    /// stays to finish its PUBREL/PUBCOMP exchange.)
    pub fn take_shared_unacked(&mut self) -> Vec<Unacked> {
        let mut ids: Vec<(u64, u16)> = self
            .inflight
            .iter()
            .filter(|(_, f)| f.shared.is_some() && f.awaiting != Awaiting::PubComp)
            .map(|(id, f)| (f.seq, *id))
            .collect();
        ids.sort_unstable();
        let mut out = Vec::new();
        for (_, id) in ids {
            if let Some(Inflight {
                seq,
                message,
                shared: Some(origin),
                ..
            }) = self.inflight.remove(&id)
            {
                self.touch(seq);
                out.push(Unacked { message, origin });
            }
        }
        let queue = std::mem::take(&mut self.queue);
        for q in queue {
            match q.shared {
                Some(origin) => {
                    self.touch(q.seq);
                    out.push(Unacked {
                        message: q.message,
                        origin,
                    });
                }
                None => self.queue.push_back(q),
            }
        }
        out
    }
}
