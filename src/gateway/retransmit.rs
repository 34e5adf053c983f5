//! Retransmission of gateway-originated messages that expect an answer:
//! PUBLISH QoS 1/2, PUBREL and REGISTER (digest §4.13, G-66, G-69).

use std::time::{Duration, Instant};

use crate::mqttsn::codec::Message;

/// What an in-flight message waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Awaiting {
    /// PUBACK (QoS 1) or PUBREC (QoS 2) for a PUBLISH with this MsgId.
    PubAckOrRec(u16),
    /// PUBCOMP for a PUBREL with this MsgId.
    PubComp(u16),
    /// REGACK for a REGISTER with this MsgId.
    RegAck(u16),
}

#[derive(Debug, Clone)]
struct Inflight {
    awaiting: Awaiting,
    message: Message,
    deadline: Instant,
    retries: u32,
}

/// Retries ran out: the client is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("retransmissions exhausted")]
pub struct RetriesExhausted;

/// One client's in-flight gateway messages.
#[derive(Debug, Default)]
pub struct Retransmitter {
    inflight: Vec<Inflight>,
}

impl Retransmitter {
    /// Starts supervising `message`, sent at `now`.
    pub fn track(&mut self, now: Instant, retry: Duration, awaiting: Awaiting, message: Message) {
        self.inflight.retain(|i| i.awaiting != awaiting);
        self.inflight.push(Inflight {
            awaiting,
            message,
            deadline: now + retry,
            retries: 0,
        });
    }

    /// Stops supervising; returns the message if it was in flight.
    pub fn ack(&mut self, awaiting: Awaiting) -> Option<Message> {
        let pos = self.inflight.iter().position(|i| i.awaiting == awaiting)?;
        Some(self.inflight.remove(pos).message)
    }

    /// True while `awaiting` is in flight.
    pub fn contains(&self, awaiting: Awaiting) -> bool {
        self.inflight.iter().any(|i| i.awaiting == awaiting)
    }

    /// True when a REGISTER is outstanding (G-69: at most one per client).
    pub fn register_outstanding(&self) -> bool {
        self.inflight
            .iter()
            .any(|i| matches!(i.awaiting, Awaiting::RegAck(_)))
    }

    /// The earliest retransmission deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.inflight.iter().map(|i| i.deadline).min()
    }

    /// The messages due at `now`, marked DUP where the type has the flag;
    /// an error once any message has been retransmitted `max_retries` times.
    pub fn due(
        &mut self,
        now: Instant,
        retry: Duration,
        max_retries: u32,
    ) -> Result<Vec<Message>, RetriesExhausted> {
        let mut out = Vec::new();
        for i in &mut self.inflight {
            if i.deadline > now {
                continue;
            }
            if i.retries >= max_retries {
                return Err(RetriesExhausted);
            }
            i.retries += 1;
            i.deadline = now + retry;
            if let Message::Publish { dup, .. } = &mut i.message {
                *dup = true;
            }
            out.push(i.message.clone());
        }
        Ok(out)
    }

    /// Number of messages in flight.
    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Forgets everything in flight.
    pub fn clear(&mut self) {
        self.inflight.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmission_sets_dup_and_gives_up_after_max_retries() {
        let t0 = Instant::now();
        let r = Duration::from_secs(10);
        let mut x = Retransmitter::default();
        x.track(t0, r, Awaiting::PubComp(1), Message::PubRel { msg_id: 1 });
        assert!(x.due(t0, r, 2).unwrap().is_empty());
        assert_eq!(x.due(t0 + r, r, 2).unwrap().len(), 1);
        assert_eq!(x.due(t0 + r * 2, r, 2).unwrap().len(), 1);
        assert_eq!(x.due(t0 + r * 3, r, 2), Err(RetriesExhausted));
    }
}
