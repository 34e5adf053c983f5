//! The task that runs one bridge: a client of the local broker core on one
//! side ([`super::local`]), an MQTT client of the remote broker on the other
//! ([`super::upstream`]), and the [`OutQueue`] in between. It reconnects with
//! backoff, fails over across addresses and returns to the first one when it
//! is back.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::WriteHalf;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::backoff::Backoff;
use super::echo::EchoFilter;
use super::link::{Connected, LinkError};
use super::queue::OutQueue;
use super::rules::TopicRule;
use super::session::UpstreamSession;
use super::transport::{BoxStream, Connector};
use crate::broker::{
    BrokerHandle, Command, ConnId, DisconnectKind, Outbound, Outbox, OutboxReceiver,
};
use crate::mqtt::codec::{Connect, Disconnect, Packet, ProtocolVersion, Publish};
use crate::qos::QoS;

/// A link that stays up this long resets the reconnect backoff.
pub(super) const STABLE_LINK: Duration = Duration::from_secs(10);

pub(super) type Attempt = Pin<Box<dyn Future<Output = Result<(usize, Connected), ()>> + Send>>;
pub(super) type Probe = Pin<Box<dyn Future<Output = bool> + Send>>;

/// Everything a bridge task needs, prepared by [`super::spawn_bridges`].
pub struct BridgeTask {
    pub(super) name: Arc<str>,
    pub(super) addresses: Arc<[String]>,
    pub(super) connect: Connect,
    pub(super) try_private: bool,
    pub(super) rules: Vec<TopicRule>,
    pub(super) connector: Connector,
    pub(super) connect_timeout: Duration,
    pub(super) primary_retry: Duration,
    pub(super) state_topic: Option<Arc<str>>,
    pub(super) notify_remote: bool,
    pub(super) broker: BrokerHandle,
    pub(super) conn: ConnId,
    pub(super) outbox: Outbox,
    pub(super) local_rx: OutboxReceiver,
    pub(super) queue: OutQueue,
    pub(super) session: UpstreamSession,
    pub(super) backoff: Backoff,
    pub(super) shutdown: CancellationToken,
}

/// The connection to the remote broker while it is up.
pub(super) struct Link {
    pub(super) write: WriteHalf<BoxStream>,
    pub(super) rx: mpsc::Receiver<Result<Packet, LinkError>>,
    pub(super) reader: JoinHandle<()>,
    pub(super) index: usize,
    pub(super) up_since: Instant,
    pub(super) last_sent: Instant,
    pub(super) ping_sent: Option<Instant>,
    pub(super) echo: Option<EchoFilter>,
}

enum Event {
    Shutdown,
    Local(Option<(ConnId, Outbound)>),
    Attempt(Result<(usize, Connected), ()>),
    Retry,
    Upstream(Option<Result<Packet, LinkError>>),
    KeepAlive,
    ProbeTimer,
    Probe(bool),
}

/// Runtime state of a bridge task.
pub(super) struct Run {
    pub(super) t: BridgeTask,
    pub(super) link: Option<Link>,
    pub(super) attempt: Option<Attempt>,
    pub(super) retry_at: Option<tokio::time::Instant>,
    pub(super) probe_at: Option<tokio::time::Instant>,
    pub(super) probe: Option<Probe>,
    /// Remote QoS 2 packet ids answered by the bridge itself (echoes, unrouted).
    pub(super) own_qos2: HashSet<u16>,
    pub(super) dropped_qos0: u64,
    pub(super) unnamed: u64,
    /// Set when a write failed; the loop then tears the link down.
    pub(super) broken: Option<String>,
}

fn remaining(deadline: Option<tokio::time::Instant>) -> tokio::time::Sleep {
    tokio::time::sleep_until(
        deadline.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(86400)),
    )
}

/// Logs at 1, 10, 100, … so a long outage does not flood the log.
pub(super) fn worth_logging(n: u64) -> bool {
    n > 0 && 10u64.pow(n.ilog10()) == n
}

impl BridgeTask {
    /// Runs the bridge until shutdown.
    pub async fn run(self) {
        let mut run = Run {
            t: self,
            link: None,
            attempt: None,
            retry_at: Some(tokio::time::Instant::now()),
            probe_at: None,
            probe: None,
            own_qos2: HashSet::new(),
            dropped_qos0: 0,
            unnamed: 0,
            broken: None,
        };
        run.publish_state(false).await;
        loop {
            let event = run.next_event().await;
            let keep_going = run.handle(event).await;
            if !keep_going {
                break;
            }
            run.pump().await;
            if let Some(why) = run.broken.take() {
                run.link_lost(&why).await;
            }
        }
        run.close().await;
    }
}

impl Run {
    pub(super) fn name(&self) -> &str {
        &self.t.name
    }

    pub(super) fn version(&self) -> ProtocolVersion {
        self.t.session.version()
    }

    async fn next_event(&mut self) -> Event {
        let keepalive = u64::from(self.t.connect.keep_alive);
        let ping_deadline = self.link.as_ref().filter(|_| keepalive > 0).map(|l| {
            let from = l.ping_sent.unwrap_or(l.last_sent);
            tokio::time::Instant::from_std(from + Duration::from_secs(keepalive))
        });
        let link_rx = self.link.as_mut().map(|l| &mut l.rx);
        tokio::select! {
            biased;
            _ = self.t.shutdown.cancelled() => Event::Shutdown,
            ev = self.t.local_rx.recv() => Event::Local(ev),
            p = async { match link_rx { Some(rx) => rx.recv().await, None => std::future::pending().await } } => Event::Upstream(p),
            r = async { match self.attempt.as_mut() { Some(a) => a.await, None => std::future::pending().await } } => Event::Attempt(r),
            ok = async { match self.probe.as_mut() { Some(p) => p.await, None => std::future::pending().await } } => Event::Probe(ok),
            _ = remaining(self.retry_at), if self.retry_at.is_some() => Event::Retry,
            _ = remaining(ping_deadline), if ping_deadline.is_some() => Event::KeepAlive,
            _ = remaining(self.probe_at), if self.probe_at.is_some() => Event::ProbeTimer,
        }
    }

    async fn handle(&mut self, event: Event) -> bool {
        match event {
            Event::Shutdown => return false,
            Event::Local(None) => return false,
            Event::Local(Some((_, ev))) => return self.on_local(ev).await,
            Event::Retry => {
                self.retry_at = None;
                self.start_attempt();
            }
            Event::Attempt(result) => {
                self.attempt = None;
                match result {
                    Ok((index, connected)) => self.on_connected(index, connected).await,
                    Err(()) => self.schedule_retry("no address of the remote broker answered"),
                }
            }
            Event::Upstream(Some(Ok(packet))) => self.on_upstream(packet).await,
            Event::Upstream(Some(Err(e))) => self.link_lost(&e.to_string()).await,
            Event::Upstream(None) => self.link_lost("reader ended").await,
            Event::KeepAlive => self.on_keepalive().await,
            Event::ProbeTimer => {
                self.probe_at = None;
                let connector = self.t.connector.clone();
                let first = self.t.addresses.first().cloned().unwrap_or_default();
                self.probe = Some(Box::pin(
                    async move { connector.connect(&first).await.is_ok() },
                ));
            }
            Event::Probe(up) => {
                self.probe = None;
                if up && self.link.as_ref().is_some_and(|l| l.index > 0) {
                    info!(
                        "bridge {}: first address {} is reachable again; moving back to it",
                        self.name(),
                        self.t.addresses.first().map_or("", String::as_str)
                    );
                    self.send(Packet::Disconnect(Disconnect::default())).await;
                    self.drop_link().await;
                    self.retry_at = Some(tokio::time::Instant::now());
                } else if self.link.is_some() {
                    self.schedule_probe();
                }
            }
        }
        true
    }

    async fn close(&mut self) {
        if self.link.is_some() {
            if self.t.notify_remote {
                // A clean DISCONNECT suppresses the will: say "down" ourselves.
                if let Some(topic) = self.t.state_topic.clone() {
                    self.send(Packet::Publish(Publish {
                        dup: false,
                        qos: QoS::AtMostOnce,
                        retain: true,
                        topic,
                        packet_id: None,
                        properties: Default::default(),
                        payload: Bytes::from_static(b"0"),
                    }))
                    .await;
                }
            }
            self.send(Packet::Disconnect(Disconnect::default())).await;
            if let Some(link) = self.link.take() {
                link.reader.abort();
            }
        }
        if !self.t.queue.is_empty() {
            // QoS 1/2 ones were never acknowledged to the core: it keeps them
            // in the bridge's session and hands them over again next time.
            warn!(
                "bridge {}: stopping with {} message(s) not yet acknowledged by the remote broker",
                self.t.name,
                self.t.queue.len()
            );
        }
        let conn = self.t.conn;
        let _ = self
            .t
            .broker
            .send(Command::Disconnect {
                conn,
                kind: DisconnectKind::Graceful {
                    publish_will: false,
                    session_expiry: None,
                },
            })
            .await;
    }
}
