//! A session's life in the core: CONNECT (new, resumed or taken over),
//! DISCONNECT with its will and expiry, and the end of a session.

use std::time::{Duration, Instant};

use tracing::{debug, info};

use super::api::{ConnId, ConnectRequest, DisconnectKind, Outbound, ServerDisconnect};
use super::core::{Broker, stamped};
use super::message::Message;
use super::session::{Link, Session};
use super::subscriptions::SessionKey;

impl Broker {
    pub(super) fn connect(&mut self, req: ConnectRequest, now: Instant) {
        let existing = self.by_client.get(&req.client_id).copied();
        if let Some(key) = existing {
            self.take_over(key, req.clean_start, now);
        }
        let (key, session_present) = match existing {
            Some(key) if !req.clean_start => (key, true),
            Some(key) => {
                self.end_session(key, now);
                (self.new_session(&req), false)
            }
            None => (self.new_session(&req), false),
        };
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.kind = req.kind;
        s.username = req.username;
        s.expiry = req.session_expiry;
        s.expires_at = None;
        let will = req.will.map(|w| stamped(w, &s.client_id));
        s.set_will(will, now);
        // A new connection to the session cancels a delayed will (MQTT 5 §3.1.3.2.2).
        s.set_will_due(None);
        s.receive_maximum = req.receive_maximum;
        s.own_limits = req.queue_limits.map(Box::new);
        s.link = Some(Link {
            conn: req.conn,
            outbox: req.outbox.clone(),
        });
        s.track = self.journal.is_some() && s.expiry > 0;
        self.by_conn.insert(req.conn, key);
        self.stats.clients_maximum = self.stats.clients_maximum.max(self.by_conn.len());
        self.out
            .send(&req.outbox, req.conn, Outbound::ConnAck { session_present });
        if session_present {
            s.resend_inflight(&mut self.out);
            s.pump(now, &self.limits, &mut self.stats.delivery, &mut self.out);
        }
        self.mark_record(key);
        self.mark_queue(key);
    }

    pub(super) fn new_session(&mut self, req: &ConnectRequest) -> SessionKey {
        let key = SessionKey(self.next_key);
        self.next_key += 1;
        self.sessions
            .insert(key, Box::new(Session::new(req.client_id.clone(), req.kind)));
        self.by_client.insert(req.client_id.clone(), key);
        key
    }

    /// A second connection with the same client id replaces the first
    /// [MQTT-3.1.4-2]; the old connection's will follows the abnormal-close rule.
    pub(super) fn take_over(&mut self, key: SessionKey, clean_start: bool, now: Instant) {
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let Some(link) = s.link.take() else {
            return;
        };
        s.release_publishers();
        info!(client_id = %s.client_id, "session taken over by a new connection");
        self.out.send(
            &link.outbox,
            link.conn,
            Outbound::Disconnect(ServerDisconnect::SessionTakenOver),
        );
        if let Some(j) = self.journal.as_mut() {
            j.records.insert(key);
        }
        self.by_conn.remove(&link.conn);
        if let Some((will, since)) = s.take_will()
            && (will.delay == 0 || clean_start)
        {
            let message = will_message(will.message, since, now);
            self.route(Some(key), message, now);
        }
    }

    pub(super) fn disconnect(&mut self, conn: ConnId, kind: DisconnectKind, now: Instant) {
        let Some(key) = self.by_conn.remove(&conn) else {
            return;
        };
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        s.link = None;
        s.release_publishers();
        let unacked = s.take_shared_unacked();
        self.redistribute(key, unacked, now);
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        let (publish_will, new_expiry) = match kind {
            DisconnectKind::Graceful {
                publish_will,
                session_expiry,
            } => (publish_will, session_expiry),
            DisconnectKind::Abnormal => (true, None),
        };
        if let Some(expiry) = new_expiry {
            s.expiry = expiry;
            s.track = s.track && expiry > 0;
        }
        if let Some(j) = self.journal.as_mut() {
            j.records.insert(key);
        }
        let will = s.take_will().filter(|_| publish_will);
        let mut will_now = None;
        if let Some((mut will, since)) = will {
            if will.delay > 0 && s.expiry > 0 {
                let delay = will.delay.min(s.expiry);
                let due = now + Duration::from_secs(u64::from(delay));
                will.message = will_message(will.message, since, due);
                s.set_will_due(Some((due, will)));
            } else {
                will_now = Some(will_message(will.message, since, now));
            }
        }
        if s.expiry == 0 {
            if let Some(will) = will_now {
                self.route(Some(key), will, now);
            }
            self.end_session(key, now);
            return;
        }
        if s.expiry != u32::MAX {
            s.expires_at = Some(now + Duration::from_secs(u64::from(s.expiry)));
        }
        if let Some(will) = will_now {
            self.route(Some(key), will, now);
        }
    }

    /// Removes a session and its subscriptions; a pending delayed will is
    /// published now because the session ends first (MQTT 5 §3.1.3.2.2).
    pub(super) fn end_session(&mut self, key: SessionKey, now: Instant) {
        let Some(mut s) = self.sessions.remove(&key) else {
            return;
        };
        if self.by_client.get(&s.client_id) == Some(&key) {
            self.by_client.remove(&s.client_id);
        }
        if let Some(link) = &s.link {
            self.by_conn.remove(&link.conn);
        }
        for filter in s.subscriptions.keys() {
            self.tree.remove(filter, key);
        }
        if s.persisted
            && let Some(j) = self.journal.as_mut()
        {
            j.forget_session(&s);
        }
        let unacked = s.take_shared_unacked();
        s.clear_delivery_state();
        self.redistribute(key, unacked, now);
        if let Some((due, will)) = s.take_will_due() {
            // Published before its due time: its expiry starts now, not then.
            let mut message = will.message;
            let early = due.saturating_duration_since(now);
            message.expires_at = message
                .expires_at
                .map(|at| at.checked_sub(early).unwrap_or(now));
            self.route(Some(key), message, now);
        }
        debug!(client_id = %s.client_id, "session ended");
    }
}

/// A will's message as published at `now`: its expiry interval, set at
/// `since`, starts counting now (MQTT 5 §3.1.3.2.4).
fn will_message(mut message: Message, since: Option<Instant>, now: Instant) -> Message {
    if let (Some(at), Some(since)) = (message.expires_at, since) {
        message.expires_at = Some(now + at.saturating_duration_since(since));
    }
    message
}
