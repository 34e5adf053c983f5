//! A session's owed deliveries as the durable store sees them: a view of
//! each entry by its seq, the seqs changed since the last commit, and the
//! way back from stored entries after a restart.

use super::{Awaiting, Inflight, Message, Queued, Session};
use crate::store::QueueState;

/// One QoS 1/2 delivery owed to a session, as the store sees it.
#[derive(Debug, Clone, Copy)]
pub struct EntryView<'a> {
    /// Position in the session's queue.
    pub seq: u64,
    /// The message.
    pub message: &'a Message,
    /// Subscription identifiers to send with it.
    pub subscription_ids: &'a [u32],
    /// Where the delivery stands.
    pub state: QueueState,
}

fn queue_state(packet_id: u16, awaiting: Awaiting) -> QueueState {
    match awaiting {
        Awaiting::PubAck => QueueState::AwaitPubAck { packet_id },
        Awaiting::PubRec => QueueState::AwaitPubRec { packet_id },
        Awaiting::PubComp => QueueState::AwaitPubComp { packet_id },
    }
}

impl Session {
    /// Seqs of deliveries changed since the last call (may repeat).
    pub fn take_dirty(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.dirty)
    }

    /// The delivery `seq`, if it is still owed.
    pub fn entry(&self, seq: u64) -> Option<EntryView<'_>> {
        if let Some((id, f)) = self.inflight.iter().find(|(_, f)| f.seq == seq) {
            return Some(EntryView {
                seq,
                message: &f.message,
                subscription_ids: &f.subscription_ids,
                state: queue_state(*id, f.awaiting),
            });
        }
        // The queue is in seq order: seqs only grow.
        let i = self.queue.binary_search_by_key(&seq, |q| q.seq).ok()?;
        let q = self.queue.get(i)?;
        Some(EntryView {
            seq,
            message: &q.message,
            subscription_ids: &q.subscription_ids,
            state: QueueState::Queued,
        })
    }

    /// Seqs of every delivery owed, in flight first.
    pub fn seqs(&self) -> Vec<u64> {
        let mut seqs: Vec<u64> = self.inflight.values().map(|f| f.seq).collect();
        seqs.extend(self.queue.iter().map(|q| q.seq));
        seqs
    }

    /// Puts back a delivery read from the store; entries must come in seq order.
    pub fn restore_entry(
        &mut self,
        seq: u64,
        message: Message,
        subscription_ids: Vec<u32>,
        state: QueueState,
    ) {
        self.next_seq = self.next_seq.max(seq);
        let (packet_id, awaiting) = match state {
            QueueState::Queued => {
                self.queue.push_back(Queued {
                    seq,
                    message,
                    subscription_ids,
                    shared: None,
                });
                return;
            }
            QueueState::AwaitPubAck { packet_id } => (packet_id, Awaiting::PubAck),
            QueueState::AwaitPubRec { packet_id } => (packet_id, Awaiting::PubRec),
            QueueState::AwaitPubComp { packet_id } => (packet_id, Awaiting::PubComp),
        };
        self.inflight.insert(
            packet_id,
            Inflight {
                seq,
                message,
                subscription_ids,
                awaiting,
                shared: None,
            },
        );
    }
}
