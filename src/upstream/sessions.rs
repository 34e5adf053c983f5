//! Aggregating mode's persistent sensor sessions as a store sees them:
//! subscriptions, expiry and the messages queued or in flight to the sensor,
//! plus which pool connection holds each upstream subscription. The router
//! keeps the live state; a [`SessionStore`] writes it down so that a restart
//! finds it again. [`NoSessions`] (persistence off) writes nothing;
//! [`super::sessions_redb::RedbSessions`] writes to `upstream.redb`.

use std::collections::BTreeMap;

use crate::broker::Message;
use crate::qos::QoS;

/// Position of a stored message, increasing in arrival order.
pub type SessionSeq = u64;

/// A persistent sensor's session as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// Seconds the session outlives the connection.
    pub expiry_secs: u32,
    /// Unix ms at which the session of an away sensor expires; `None` while
    /// the sensor is connected (after a crash it counts as lost then).
    pub away_until_ms: Option<u64>,
    /// Filters with their granted QoS.
    pub subs: BTreeMap<String, QoS>,
}

/// One session read back, with its messages oldest first.
#[derive(Debug, Clone)]
pub struct RestoredSession {
    /// The sensor's client id.
    pub client_id: String,
    /// The session.
    pub session: StoredSession,
    /// Messages queued or delivered but not acknowledged, oldest first.
    pub messages: Vec<(SessionSeq, Message)>,
}

/// What a previous run left behind.
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// Persistent sensors' sessions.
    pub sessions: Vec<RestoredSession>,
    /// Upstream subscriptions of the pool: filter → pool connection client id.
    pub pool_filters: BTreeMap<String, String>,
}

/// Where aggregating mode writes persistent sessions down. Writes that
/// return `Result` must be on disk when they return `Ok`: the caller
/// acknowledges something (a SUBACK, a message from the upstream) right after.
pub trait SessionStore: Send {
    /// What a previous run left behind (read once, at start).
    fn restore(&mut self) -> Restored;
    /// Writes `client_id`'s session (replacing its subscriptions).
    fn save_session(&mut self, client_id: &str, session: &StoredSession) -> Result<(), String>;
    /// Forgets `client_id`'s session and every message stored for it.
    fn remove_session(&mut self, client_id: &str);
    /// Stores `message` once for each of `client_ids`, in one write; returns
    /// each one's sequence number, in the same order.
    fn push(&mut self, client_ids: &[&str], message: &Message) -> Result<Vec<SessionSeq>, String>;
    /// The sensor has the message (PUBACK, or PUBREC for QoS 2): forget it.
    fn remove_message(&mut self, client_id: &str, seq: SessionSeq);
    /// The pool subscribed `filter` on the connection `link_key`.
    fn save_filter(&mut self, filter: &str, link_key: &str);
    /// The pool unsubscribed `filter`.
    fn remove_filter(&mut self, filter: &str);
    /// True when what is written survives a restart.
    fn durable(&self) -> bool;
}

/// A [`SessionStore`] that keeps nothing (`[persistence] enabled = false`).
#[derive(Debug, Default)]
pub struct NoSessions;

impl SessionStore for NoSessions {
    fn restore(&mut self) -> Restored {
        Restored::default()
    }

    fn save_session(&mut self, _: &str, _: &StoredSession) -> Result<(), String> {
        Ok(())
    }

    fn remove_session(&mut self, _: &str) {}

    fn push(&mut self, _: &[&str], _: &Message) -> Result<Vec<SessionSeq>, String> {
        Ok(Vec::new())
    }

    fn remove_message(&mut self, _: &str, _: SessionSeq) {}

    fn save_filter(&mut self, _: &str, _: &str) {}

    fn remove_filter(&mut self, _: &str) {}

    fn durable(&self) -> bool {
        false
    }
}
