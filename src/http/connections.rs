//! Open MQTT network connections per listener kind, counted where the
//! listeners accept them (the broker core knows clients, not transports).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::ListenerProtocol;

/// Every listener kind, with its metrics label.
const KINDS: [(ListenerProtocol, &str); 4] = [
    (ListenerProtocol::Mqtt, "tcp"),
    (ListenerProtocol::Mqtts, "tls"),
    (ListenerProtocol::Ws, "ws"),
    (ListenerProtocol::Wss, "wss"),
];

/// Open connections by listener kind.
#[derive(Debug, Default)]
pub struct OpenConnections {
    counts: [AtomicUsize; 4],
}

/// Decrements its count when the connection ends.
#[derive(Debug)]
pub struct ConnectionGuard {
    owner: Arc<OpenConnections>,
    index: usize,
}

impl OpenConnections {
    fn index(protocol: ListenerProtocol) -> usize {
        KINDS.iter().position(|(p, _)| *p == protocol).unwrap_or(0)
    }

    /// Counts one connection on a `protocol` listener until the guard drops.
    pub fn enter(self: &Arc<Self>, protocol: ListenerProtocol) -> ConnectionGuard {
        let index = Self::index(protocol);
        if let Some(c) = self.counts.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        ConnectionGuard {
            owner: self.clone(),
            index,
        }
    }

    /// (transport label, open connections) for every listener kind.
    pub fn snapshot(&self) -> Vec<(&'static str, usize)> {
        KINDS
            .iter()
            .zip(&self.counts)
            .map(|((_, label), c)| (*label, c.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(c) = self.owner.counts.get(self.index) {
            c.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_counted_until_its_guard_drops() {
        let open = Arc::new(OpenConnections::default());
        let ws = open.enter(ListenerProtocol::Ws);
        let tcp = open.enter(ListenerProtocol::Mqtt);
        let _tcp2 = open.enter(ListenerProtocol::Mqtt);
        drop(tcp);
        assert_eq!(
            open.snapshot(),
            vec![("tcp", 1), ("tls", 0), ("ws", 1), ("wss", 0)]
        );
        drop(ws);
        assert_eq!(open.snapshot()[2], ("ws", 0));
    }
}
