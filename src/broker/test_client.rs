//! A connection as the broker core's unit tests see it: its id and the
//! events the core sent it, plus the SUBSCRIBE most tests need.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::api::{
    ClientKind, Command, ConnId, ConnectRequest, Delivery, Outbound, Outbox, OutboxReceiver,
    SubscribeRequest, SubscriptionOptions,
};
use super::core::{Broker, BrokerSettings};
use super::metrics::Metrics;
use crate::qos::QoS;

/// One test connection.
pub(super) struct Client {
    pub(super) conn: ConnId,
    pub(super) rx: OutboxReceiver,
}

impl Client {
    /// Every event sent so far, taken.
    pub(super) fn events(&mut self) -> Vec<Outbound> {
        let mut out = Vec::new();
        while let Ok((_, ev)) = self.rx.try_recv() {
            out.push(ev);
        }
        out
    }

    /// The deliveries among the events sent so far.
    pub(super) fn deliveries(&mut self) -> Vec<Delivery> {
        self.events()
            .into_iter()
            .filter_map(|e| match e {
                Outbound::Deliver(d) => Some(d),
                _ => None,
            })
            .collect()
    }

    /// The payloads of the deliveries sent so far, as text.
    pub(super) fn payloads(&mut self) -> Vec<String> {
        payloads(&self.deliveries())
    }
}

/// Payloads of `ds` as text.
pub(super) fn payloads(ds: &[Delivery]) -> Vec<String> {
    ds.iter()
        .map(|d| String::from_utf8_lossy(&d.message.payload).into_owned())
        .collect()
}

/// SUBSCRIBE `c` to one filter at `qos` (packet id 1, default options).
pub(super) fn subscribe(b: &mut Broker, c: &Client, filter: &str, qos: QoS, now: Instant) {
    b.handle(
        Command::Subscribe {
            conn: c.conn,
            packet_id: 1,
            filters: vec![SubscribeRequest {
                filter: filter.into(),
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            }],
            subscription_id: None,
        },
        now,
    );
}

/// A core with `$SYS` off and every other setting at its default, and the
/// instant its tests start from.
pub(super) fn broker() -> (Broker, Instant) {
    let now = Instant::now();
    let settings = BrokerSettings {
        sys_interval: Duration::ZERO,
        ..BrokerSettings::default()
    };
    (
        Broker::new(settings, Arc::new(Metrics::default()), now),
        now,
    )
}

/// A CONNECT of an MQTT 3.1.1 client with a clean, non-persistent session
/// and no will; tests override what they are about with `..`.
pub(super) fn connect_request(conn: ConnId, client_id: &str, outbox: Outbox) -> ConnectRequest {
    ConnectRequest {
        conn,
        client_id: client_id.into(),
        clean_start: true,
        session_expiry: 0,
        will: None,
        receive_maximum: u16::MAX,
        username: None,
        kind: ClientKind::Mqtt3,
        outbox,
        queue_limits: None,
    }
}
