//! Routing: a published message to every matching session, and shared
//! subscription messages a member left unacknowledged to another member.

use std::time::Instant;

use tracing::debug;

use super::core::Broker;
use super::message::Message;
use super::session::{Link, Offered, Session, SessionLimits, SharedOrigin, Unacked};
use super::subscriptions::SessionKey;
use crate::qos::QoS;

impl Broker {
    /// Offers shared-subscription messages a member did not acknowledge to
    /// another member of the same group, preferring online ones (MQTT 5
    /// §4.8.2). With no other member they stay with `from` if its session
    /// lives on, and are dropped otherwise.
    pub(super) fn redistribute(&mut self, from: SessionKey, unacked: Vec<Unacked>, now: Instant) {
        let from_alive = self.sessions.contains_key(&from);
        for Unacked { message, origin } in unacked {
            let sessions = &self.sessions;
            let online = |k: SessionKey| sessions.get(&k).is_some_and(|s| s.is_online());
            let member = self
                .tree
                .pick_shared(&origin.filter, from, &online, !from_alive);
            let (target, ids, copy) = match member {
                Some(m) => {
                    let mut copy = message;
                    copy.qos = origin.qos.min(m.options.qos);
                    copy.retain = origin.retain && m.options.retain_as_published;
                    (m.session, m.subscription_id.into_iter().collect(), copy)
                }
                None if from_alive => (from, Vec::new(), message),
                None => {
                    debug!(filter = %origin.filter, topic = %message.topic,
                        "unacknowledged shared-subscription message dropped: no other member");
                    continue;
                }
            };
            if target != from {
                debug!(filter = %origin.filter, topic = %copy.topic,
                    "unacknowledged shared-subscription message offered to another member");
            }
            if let Some(s) = self.sessions.get_mut(&target) {
                s.offer_from(
                    copy,
                    ids,
                    Some(origin),
                    now,
                    &self.limits,
                    &mut self.stats.delivery,
                    &mut self.out,
                );
                if s.track {
                    self.mark_queue(target);
                }
            }
        }
    }

    /// Routes a message to every matching session; returns how many got it.
    pub fn route(&mut self, from: Option<SessionKey>, message: Message, now: Instant) -> usize {
        if message.is_expired(now) {
            return 0;
        }
        if message.retain && self.settings.retain_available {
            self.retained.apply(&message);
            if let Some(j) = self.journal.as_mut() {
                j.retained(&message);
            }
        }
        let mut matched = std::mem::take(&mut self.scratch);
        matched.clear();
        let sessions = &self.sessions;
        self.tree.matches(
            &message.topic,
            &|k| sessions.get(&k).is_some_and(|s| s.is_online()),
            &mut matched,
        );
        matched.retain(|sub| !(sub.options.no_local && Some(sub.session) == from));
        let mut delivered = 0;
        let limits = SessionLimits {
            overflow: self.pressure.is_some(),
            ..self.limits
        };
        // A shared subscription is a delivery of its own, even to a session
        // that also matches through an ordinary subscription (MQTT 5 §4.8.2).
        for sub in matched.iter().filter(|sub| sub.shared.is_some()) {
            if let Some(s) = self.sessions.get_mut(&sub.session) {
                let mut copy = message.clone();
                copy.qos = copy.qos.min(sub.options.qos);
                copy.retain = message.retain && sub.options.retain_as_published;
                let origin = sub.shared.clone().map(|filter| SharedOrigin {
                    filter,
                    qos: message.qos,
                    retain: message.retain,
                });
                let offered = s.offer_from(
                    copy,
                    sub.subscription_id.into_iter().collect(),
                    origin,
                    now,
                    &limits,
                    &mut self.stats.delivery,
                    &mut self.out,
                );
                hold_if_over(s, offered, sub.session, from, self.pressure.as_ref());
                if s.track
                    && let Some(j) = self.journal.as_mut()
                {
                    j.queues.insert(sub.session);
                }
                delivered += 1;
            }
        }
        matched.retain(|sub| sub.shared.is_none());
        // Overlapping subscriptions yield one copy at the highest QoS, carrying
        // every subscription identifier [MQTT-3.3.5-1, MQTT 5 §3.3.4].
        matched.sort_by_key(|sub| sub.session);
        let mut i = 0;
        while let Some(first) = matched.get(i) {
            let session = first.session;
            let mut qos = QoS::AtMostOnce;
            let mut retain_as_published = false;
            let mut ids = Vec::new();
            while let Some(sub) = matched.get(i).filter(|m| m.session == session) {
                qos = qos.max(sub.options.qos);
                retain_as_published |= sub.options.retain_as_published;
                if let Some(id) = sub.subscription_id {
                    ids.push(id);
                }
                i += 1;
            }
            if let Some(s) = self.sessions.get_mut(&session) {
                let mut copy = message.clone();
                copy.qos = copy.qos.min(qos);
                // Retain is cleared on normal forwarding unless Retain As
                // Published [MQTT-3.3.1-9, MQTT 5 §3.8.3.1].
                copy.retain = message.retain && retain_as_published;
                let offered = s.offer(
                    copy,
                    ids,
                    now,
                    &limits,
                    &mut self.stats.delivery,
                    &mut self.out,
                );
                hold_if_over(s, offered, session, from, self.pressure.as_ref());
                if s.track
                    && let Some(j) = self.journal.as_mut()
                {
                    j.queues.insert(session);
                }
                delivered += 1;
            }
        }
        self.scratch = matched;
        delivered
    }

    /// Whether a QoS 1/2 message from `from` would meet a full queue of an
    /// online subscriber (granted QoS 0 copies are never queued).
    pub(super) fn would_congest(&mut self, from: SessionKey, message: &Message) -> bool {
        self.would_meet_queue(from, message, Session::is_congested)
    }

    /// Whether a QoS 1/2 message from `from` would meet an online
    /// subscriber's queue at its hard bound, where even a slowed publisher's
    /// message would be dropped.
    pub(super) fn would_overflow(&mut self, from: SessionKey, message: &Message) -> bool {
        self.would_meet_queue(from, message, Session::is_at_overflow_cap)
    }

    fn would_meet_queue(
        &mut self,
        from: SessionKey,
        message: &Message,
        full: fn(&Session, &SessionLimits) -> bool,
    ) -> bool {
        let mut matched = std::mem::take(&mut self.scratch);
        matched.clear();
        let sessions = &self.sessions;
        self.tree.matches(
            &message.topic,
            &|k| sessions.get(&k).is_some_and(|s| s.is_online()),
            &mut matched,
        );
        let hit = matched.iter().any(|sub| {
            !(sub.options.no_local && sub.session == from)
                && sub.options.qos != QoS::AtMostOnce
                && sessions
                    .get(&sub.session)
                    .is_some_and(|s| full(s, &self.limits))
        });
        self.scratch = matched;
        hit
    }
}

/// Slows the publisher when its message took `session` past its queue bound.
/// A client's own subscription never pauses it: it could not then read the
/// acknowledgements that drain that very queue.
fn hold_if_over(
    s: &mut Session,
    offered: Offered,
    session: SessionKey,
    from: Option<SessionKey>,
    publisher: Option<&Link>,
) {
    if let (Offered::OverBound, Some(link)) = (offered, publisher)
        && Some(session) != from
    {
        s.hold_publisher(link);
    }
}
