//! A read-only view of the gateway for the HTTP status page, `/metrics` and
//! the MQTT-SN `$SYS` topics. The driver publishes a [`GatewayStatus`] on a
//! `watch` channel about once a second; building it is sans-IO.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::address::PeerAddr;
use super::gateway::{Gateway, GatewayStats};
use super::session::State;
use crate::broker::Message as BrokerMessage;
use crate::qos::QoS;

/// A sensor's state as operators see it (MQTT-SN 1.2 §6.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SensorState {
    /// Connecting: CONNECT received, handshake not finished.
    Connecting,
    /// Connected and supervised by keep-alive.
    Active,
    /// Sleeping; deliveries are buffered.
    Asleep,
    /// Woken by PINGREQ; buffered deliveries are being flushed.
    Awake,
    /// Ended by DISCONNECT; its persistent session is kept.
    Disconnected,
    /// Keep-alive or sleep timer expired.
    Lost,
}

impl SensorState {
    /// Every state, in display order.
    pub const ALL: [SensorState; 6] = [
        SensorState::Connecting,
        SensorState::Active,
        SensorState::Asleep,
        SensorState::Awake,
        SensorState::Disconnected,
        SensorState::Lost,
    ];

    /// Lower-case name used in JSON, metrics labels and `$SYS` topics.
    pub fn as_str(self) -> &'static str {
        match self {
            SensorState::Connecting => "connecting",
            SensorState::Active => "active",
            SensorState::Asleep => "asleep",
            SensorState::Awake => "awake",
            SensorState::Disconnected => "disconnected",
            SensorState::Lost => "lost",
        }
    }
}

impl From<&State> for SensorState {
    fn from(s: &State) -> SensorState {
        match s {
            State::Connecting(_) => SensorState::Connecting,
            State::Active => SensorState::Active,
            State::Asleep => SensorState::Asleep,
            State::Awake => SensorState::Awake,
            State::Disconnected => SensorState::Disconnected,
            State::Lost => SensorState::Lost,
        }
    }
}

/// One sensor session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SensorStatus {
    /// ClientId.
    pub client_id: Arc<str>,
    /// Transport name ("udp" or "serial").
    pub transport: String,
    /// Address, with the forwarder node id when there is one.
    pub address: String,
    /// State.
    pub state: SensorState,
    /// Time since the last datagram from the sensor.
    pub last_seen: Duration,
    /// Keep-alive period (zero = not supervised).
    pub keep_alive: Duration,
    /// Sleep duration of the last DISCONNECT(Duration).
    pub sleep: Duration,
    /// Deliveries waiting (asleep, or behind a REGISTER).
    pub buffered: usize,
    /// Gateway messages awaiting the sensor's acknowledgement.
    pub inflight: usize,
    /// Normal topic ids, in id order.
    pub topics: Vec<(u16, Arc<str>)>,
}

/// The gateway at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GatewayStatus {
    /// Every session, in client-id order.
    pub sensors: Vec<SensorStatus>,
    /// Counters.
    pub stats: GatewayStats,
}

impl GatewayStatus {
    /// Sessions in `state`.
    pub fn count(&self, state: SensorState) -> usize {
        self.sensors.iter().filter(|s| s.state == state).count()
    }
}

impl Gateway {
    /// A snapshot of every session and the counters at `now`.
    pub fn status(&self, now: Instant) -> GatewayStatus {
        let mut sensors: Vec<SensorStatus> = self
            .sessions
            .values()
            .map(|s| SensorStatus {
                client_id: s.client_id.clone(),
                transport: match s.addr.peer {
                    PeerAddr::Udp(_) => "udp",
                    PeerAddr::Serial { .. } => "serial",
                    PeerAddr::Dtls { .. } => "dtls",
                }
                .to_string(),
                address: s.addr.to_string(),
                state: SensorState::from(&s.state),
                last_seen: now.saturating_duration_since(s.last_heard),
                keep_alive: s.keep_alive,
                sleep: s.sleep,
                buffered: s.queue.len(),
                inflight: s.retransmit.len(),
                topics: s.topics.entries(),
            })
            .collect();
        sensors.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        GatewayStatus {
            sensors,
            stats: self.stats,
        }
    }
}

/// States published under `$SYS/broker/mqttsn/sensors/`.
const SYS_STATES: [SensorState; 4] = [
    SensorState::Active,
    SensorState::Asleep,
    SensorState::Awake,
    SensorState::Lost,
];

impl GatewayStatus {
    /// The gateway's `$SYS` topics, retained, in the broker's `$SYS` layout.
    pub fn sys_messages(&self) -> Vec<BrokerMessage> {
        let mut entries: Vec<(String, String)> = SYS_STATES
            .iter()
            .map(|s| {
                (
                    format!("sensors/{}", s.as_str()),
                    self.count(*s).to_string(),
                )
            })
            .collect();
        entries.push((
            "messages/received".into(),
            self.stats.datagrams_in.to_string(),
        ));
        entries.push(("messages/sent".into(), self.stats.datagrams_out.to_string()));
        entries.push(("bytes/received".into(), self.stats.bytes_in.to_string()));
        entries.push(("bytes/sent".into(), self.stats.bytes_out.to_string()));
        entries
            .into_iter()
            .map(|(name, value)| {
                BrokerMessage::new(
                    format!("$SYS/broker/mqttsn/{name}"),
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

    fn sensor(id: &str, state: SensorState) -> SensorStatus {
        SensorStatus {
            client_id: id.into(),
            transport: "udp".into(),
            address: "udp:127.0.0.1:1".into(),
            state,
            last_seen: Duration::ZERO,
            keep_alive: Duration::from_secs(60),
            sleep: Duration::ZERO,
            buffered: 0,
            inflight: 0,
            topics: Vec::new(),
        }
    }

    #[test]
    fn sys_topics_count_sensors_by_state_and_are_retained() {
        let status = GatewayStatus {
            sensors: vec![
                sensor("a", SensorState::Active),
                sensor("b", SensorState::Asleep),
                sensor("c", SensorState::Asleep),
                sensor("d", SensorState::Lost),
            ],
            stats: GatewayStats {
                datagrams_in: 7,
                datagrams_out: 5,
                ..GatewayStats::default()
            },
        };
        let msgs = status.sys_messages();
        let value = |topic: &str| {
            msgs.iter()
                .find(|m| &*m.topic == topic)
                .map(|m| m.payload.clone())
        };
        assert!(msgs.iter().all(|m| m.retain));
        assert_eq!(value("$SYS/broker/mqttsn/sensors/active"), Some("1".into()));
        assert_eq!(value("$SYS/broker/mqttsn/sensors/asleep"), Some("2".into()));
        assert_eq!(value("$SYS/broker/mqttsn/sensors/awake"), Some("0".into()));
        assert_eq!(value("$SYS/broker/mqttsn/sensors/lost"), Some("1".into()));
        assert_eq!(
            value("$SYS/broker/mqttsn/messages/received"),
            Some("7".into())
        );
        assert_eq!(value("$SYS/broker/mqttsn/messages/sent"), Some("5".into()));
    }
}
