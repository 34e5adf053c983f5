//! `$SYS` topics in Mosquitto's layout, published retained every
//! `sys_interval` so that `mosquitto_sub -t '$SYS/#'` shows the same names.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::message::Message;
use crate::qos::QoS;

/// Numbers published under `$SYS`.
#[derive(Debug, Clone, Copy)]
pub struct SysSnapshot {
    /// Sessions with a connection.
    pub clients_connected: usize,
    /// All sessions.
    pub clients_total: usize,
    /// Most clients connected at once.
    pub clients_maximum: usize,
    /// Subscriptions.
    pub subscriptions: usize,
    /// Retained messages.
    pub retained: usize,
    /// PUBLISH received.
    pub messages_received: u64,
    /// Deliveries sent.
    pub messages_sent: u64,
    /// Deliveries dropped.
    pub messages_dropped: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Hits of each limit.
    pub limits: [(crate::limits::Limit, u64); crate::limits::Limit::ALL.len()],
}

impl Default for SysSnapshot {
    fn default() -> SysSnapshot {
        SysSnapshot {
            clients_connected: 0,
            clients_total: 0,
            clients_maximum: 0,
            subscriptions: 0,
            retained: 0,
            messages_received: 0,
            messages_sent: 0,
            messages_dropped: 0,
            bytes_received: 0,
            bytes_sent: 0,
            limits: crate::limits::Limit::ALL.map(|l| (l, 0)),
        }
    }
}

/// The `$SYS` publication schedule.
#[derive(Debug)]
pub struct SysTopics {
    started: Instant,
    interval: Duration,
    next: Option<Instant>,
}

impl SysTopics {
    /// Starts the schedule; a zero interval turns `$SYS` off.
    pub fn new(now: Instant, interval: Duration) -> SysTopics {
        SysTopics {
            started: now,
            interval,
            next: (!interval.is_zero()).then_some(now),
        }
    }

    /// The messages to publish if the period has elapsed.
    pub fn due(&mut self, now: Instant, snap: &SysSnapshot) -> Option<Vec<Message>> {
        let next = self.next?;
        if now < next {
            return None;
        }
        self.next = Some(now + self.interval);
        Some(self.messages(now, snap))
    }

    fn messages(&self, now: Instant, s: &SysSnapshot) -> Vec<Message> {
        let uptime = now.saturating_duration_since(self.started).as_secs();
        let disconnected = s.clients_total.saturating_sub(s.clients_connected);
        let entries: [(&str, String); 13] = [
            (
                "version",
                format!("sngate version {}", env!("CARGO_PKG_VERSION")),
            ),
            ("uptime", format!("{uptime} seconds")),
            ("clients/connected", s.clients_connected.to_string()),
            ("clients/disconnected", disconnected.to_string()),
            ("clients/total", s.clients_total.to_string()),
            ("clients/maximum", s.clients_maximum.to_string()),
            ("messages/received", s.messages_received.to_string()),
            ("messages/sent", s.messages_sent.to_string()),
            ("publish/messages/dropped", s.messages_dropped.to_string()),
            ("bytes/received", s.bytes_received.to_string()),
            ("bytes/sent", s.bytes_sent.to_string()),
            ("subscriptions/count", s.subscriptions.to_string()),
            ("retained messages/count", s.retained.to_string()),
        ];
        let limits = s
            .limits
            .map(|(l, n)| (format!("limits/{}", l.name()), n.to_string()));
        entries
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value))
            .chain(limits)
            .map(|(name, value)| {
                Message::new(
                    format!("$SYS/broker/{name}"),
                    Bytes::from(value),
                    QoS::AtMostOnce,
                    true,
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sys_topics_are_published_at_start_then_every_interval() {
        let t0 = Instant::now();
        let mut sys = SysTopics::new(t0, Duration::from_secs(10));
        let snap = SysSnapshot::default();
        let first = sys.due(t0, &snap).expect("published at start");
        assert!(first.iter().all(|m| m.retain));
        assert!(sys.due(t0 + Duration::from_secs(5), &snap).is_none());
        let later = sys.due(t0 + Duration::from_secs(12), &snap).expect("due");
        let uptime = later
            .iter()
            .find(|m| &*m.topic == "$SYS/broker/uptime")
            .expect("uptime topic");
        assert_eq!(uptime.payload, Bytes::from_static(b"12 seconds"));
    }

    #[test]
    fn zero_interval_turns_sys_off() {
        let t0 = Instant::now();
        let mut sys = SysTopics::new(t0, Duration::ZERO);
        assert!(sys.due(t0, &SysSnapshot::default()).is_none());
    }
}
