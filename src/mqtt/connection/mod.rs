//! One MQTT connection: bytes from the socket go through the codec into the
//! sans-IO [`MqttSession`](super::session::MqttSession); its packets are
//! encoded back to the socket and its commands go to the broker core.
//! Generic over the stream, so TCP, TLS and WebSocket connections share it.
//!
//! The connection is a hand-polled future (`driver::Connection`) rather
//! than an `async fn`: an async state machine reserves room for every
//! future it might await (a send to the core, a write, a timer, a shutdown
//! wait) in every connection, idle or not. Here each of those lives in a box
//! that exists only while it is in use, which keeps an idle connection's
//! task near the size of its protocol state.

mod driver;
mod stream;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, field, info_span};

pub use self::stream::ConnStream;
use super::session::SessionSettings;
use crate::auth::Authorizer;
use crate::broker::{BrokerHandle, Metrics};

/// Everything a connection needs from the rest of the process.
#[derive(Debug, Clone)]
pub struct ConnectionContext {
    /// The broker core.
    pub broker: BrokerHandle,
    /// Traffic counters.
    pub metrics: Arc<Metrics>,
    /// Protocol settings.
    pub settings: SessionSettings,
    /// Cancelled when the process shuts down.
    pub shutdown: CancellationToken,
    /// Password and ACL rules.
    pub authorizer: Arc<Authorizer>,
    /// User name fixed by the transport (TLS client certificate identity);
    /// it replaces the CONNECT user name and needs no password.
    pub identity: Option<Arc<str>>,
    /// PUBLISH packets per second before reads are slowed; 0 = unlimited.
    pub max_publish_rate: u32,
}

/// The future that serves one client connection until it ends.
pub fn run_connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: &'static str,
    ctx: Arc<ConnectionContext>,
) -> impl Future<Output = ()> + Send + 'static
where
    S: ConnStream,
{
    let span = info_span!("mqtt", transport, %peer, client_id = field::Empty);
    driver::Connection::new(stream, peer, ctx).instrument(span)
}
