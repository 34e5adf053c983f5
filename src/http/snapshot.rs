//! One consistent look at the whole process: the broker core's snapshot, the
//! gateway's latest status and a few process facts.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, watch};

use super::connections::OpenConnections;
use super::process::resident_memory_bytes;
use crate::broker::{BrokerHandle, Command, Metrics, StatusSnapshot};
use crate::gateway::GatewayStatus;

/// How long a request waits for the core before answering 503.
const CORE_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything the metrics, the JSON API and the page show.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The broker core.
    pub broker: StatusSnapshot,
    /// The MQTT-SN gateway, when it runs.
    pub gateway: Option<GatewayStatus>,
    /// Since sngate started.
    pub uptime: Duration,
    /// Resident memory, bytes.
    pub rss_bytes: Option<u64>,
    /// Bytes read from MQTT connections.
    pub mqtt_bytes_received: u64,
    /// Bytes written to MQTT connections.
    pub mqtt_bytes_sent: u64,
    /// MQTT connections refused or dropped for an error, a limit or a timeout.
    pub mqtt_connections_refused: u64,
    /// Open MQTT network connections by transport ("tcp", "tls", "ws", "wss").
    pub mqtt_open_connections: Vec<(&'static str, usize)>,
}

/// Where snapshots come from.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The broker core.
    pub broker: BrokerHandle,
    /// Its byte counters.
    pub metrics: Arc<Metrics>,
    /// Open connections per listener kind.
    pub open: Arc<OpenConnections>,
    /// The gateway's status channel, when the gateway runs.
    pub gateway: Option<watch::Receiver<GatewayStatus>>,
    /// When sngate started.
    pub started: Instant,
}

impl Sources {
    /// Asks the core for its snapshot; `None` if it has stopped or is stuck.
    pub async fn take(&self) -> Option<Snapshot> {
        let (reply, rx) = oneshot::channel();
        let asked = self.broker.send(Command::Status { reply });
        let broker = tokio::time::timeout(CORE_TIMEOUT, async {
            asked.await.ok()?;
            rx.await.ok()
        })
        .await
        .ok()
        .flatten()?;
        Some(Snapshot {
            broker,
            gateway: self.gateway.as_ref().map(|g| g.borrow().clone()),
            uptime: self.started.elapsed(),
            rss_bytes: resident_memory_bytes(),
            mqtt_bytes_received: Metrics::get(&self.metrics.bytes_received),
            mqtt_bytes_sent: Metrics::get(&self.metrics.bytes_sent),
            mqtt_connections_refused: Metrics::get(&self.metrics.connections_refused),
            mqtt_open_connections: self.open.snapshot(),
        })
    }

    /// True while the core answers and the gateway task (if any) runs.
    pub fn gateway_alive(&self) -> bool {
        self.gateway
            .as_ref()
            .is_none_or(|g| g.has_changed().is_ok())
    }
}
