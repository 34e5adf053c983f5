//! `/metrics` in the Prometheus text format (0.0.4), encoded by
//! prometheus-client from a [`Snapshot`]. The registry is built per scrape:
//! the numbers live in the core and the gateway, not in metric objects.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use super::snapshot::Snapshot;
use crate::broker::ClientKind;
use crate::gateway::SensorState;

/// Content-Type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type Labels = Vec<(&'static str, String)>;

fn label(name: &'static str, value: impl Into<String>) -> Labels {
    vec![(name, value.into())]
}

fn gauge(v: u64) -> Gauge {
    let g = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    g
}

fn counter(v: u64) -> Counter {
    let c = Counter::default();
    c.inc_by(v);
    c
}

/// Protocol label of a broker client.
pub fn protocol_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Mqtt3 => "mqtt3",
        ClientKind::Mqtt5 => "mqtt5",
        ClientKind::MqttSn => "mqtt-sn",
        ClientKind::Bridge => "bridge",
        ClientKind::Internal => "internal",
    }
}

/// Renders the whole exposition.
pub fn render_metrics(s: &Snapshot) -> String {
    let mut r = Registry::with_prefix("sngate");
    let b = &s.broker;

    let connections = Family::<Labels, Gauge>::default();
    for (transport, n) in &s.mqtt_open_connections {
        connections
            .get_or_create(&vec![
                ("protocol", "mqtt".into()),
                ("transport", (*transport).into()),
            ])
            .set(*n as i64);
    }
    let clients = Family::<Labels, Gauge>::default();
    for kind in [
        ClientKind::Mqtt3,
        ClientKind::Mqtt5,
        ClientKind::MqttSn,
        ClientKind::Bridge,
    ] {
        let n = b
            .clients
            .iter()
            .filter(|c| c.connected && c.kind == kind)
            .count();
        clients
            .get_or_create(&label("protocol", protocol_name(kind)))
            .set(n as i64);
    }
    if let Some(g) = &s.gateway {
        for sensor in g.sensors.iter().filter(|x| {
            matches!(
                x.state,
                SensorState::Active | SensorState::Asleep | SensorState::Awake
            )
        }) {
            connections
                .get_or_create(&vec![
                    ("protocol", "mqtt-sn".into()),
                    ("transport", sensor.transport.clone()),
                ])
                .inc();
        }
    }
    r.register(
        "connections",
        "Open connections by protocol and transport: MQTT network connections per listener kind, MQTT-SN sensors (active, asleep or awake) per transport",
        connections,
    );
    r.register(
        "clients_connected",
        "Broker sessions with a connection, by protocol",
        clients,
    );
    r.register(
        "sessions",
        "Broker sessions, connected or not",
        gauge(b.clients.len() as u64),
    );
    r.register(
        "clients_maximum",
        "Most clients connected at once",
        gauge(b.clients_maximum as u64),
    );
    r.register(
        "subscriptions",
        "Subscriptions in the broker",
        gauge(b.subscriptions as u64),
    );
    r.register(
        "retained_messages",
        "Retained messages held",
        gauge(b.retained as u64),
    );
    r.register(
        "messages_received",
        "PUBLISH messages received from clients and sensors",
        counter(b.messages_received),
    );
    r.register(
        "messages_sent",
        "Deliveries handed to client and sensor connections",
        counter(b.messages_sent),
    );
    let queued: usize = b.clients.iter().map(|c| c.queued).sum();
    let inflight: usize = b.clients.iter().map(|c| c.inflight).sum();
    r.register(
        "queued_messages",
        "Deliveries waiting in session queues",
        gauge(queued as u64),
    );
    r.register(
        "inflight_messages",
        "QoS 1/2 deliveries sent and not yet acknowledged",
        gauge(inflight as u64),
    );

    let dropped = Family::<Labels, Counter>::default();
    dropped
        .get_or_create(&label("reason", "queue_full"))
        .inc_by(b.messages_dropped);
    let bytes_in = Family::<Labels, Counter>::default();
    let bytes_out = Family::<Labels, Counter>::default();
    bytes_in
        .get_or_create(&label("protocol", "mqtt"))
        .inc_by(s.mqtt_bytes_received);
    bytes_out
        .get_or_create(&label("protocol", "mqtt"))
        .inc_by(s.mqtt_bytes_sent);
    let refused = Family::<Labels, Counter>::default();
    refused
        .get_or_create(&label("protocol", "mqtt"))
        .inc_by(s.mqtt_connections_refused);

    if let Some(g) = &s.gateway {
        let st = &g.stats;
        dropped
            .get_or_create(&label("reason", "sleep_buffer_full"))
            .inc_by(st.dropped_qos0);
        dropped
            .get_or_create(&label("reason", "undeliverable_to_sensor"))
            .inc_by(st.abandoned);
        bytes_in
            .get_or_create(&label("protocol", "mqtt-sn"))
            .inc_by(st.bytes_in);
        bytes_out
            .get_or_create(&label("protocol", "mqtt-sn"))
            .inc_by(st.bytes_out);
        refused
            .get_or_create(&label("protocol", "mqtt-sn"))
            .inc_by(st.refused_connects);
        let sensors = Family::<Labels, Gauge>::default();
        for state in SensorState::ALL {
            sensors
                .get_or_create(&label("state", state.as_str()))
                .set(g.count(state) as i64);
        }
        r.register(
            "mqttsn_sensors",
            "MQTT-SN sensor sessions by state",
            sensors,
        );
        r.register(
            "mqttsn_messages_received",
            "MQTT-SN datagrams received",
            counter(st.datagrams_in),
        );
        r.register(
            "mqttsn_messages_sent",
            "MQTT-SN datagrams sent",
            counter(st.datagrams_out),
        );
        r.register(
            "mqttsn_malformed",
            "MQTT-SN datagrams that failed to decode",
            counter(st.malformed),
        );
        let buffered: usize = g.sensors.iter().map(|x| x.buffered).sum();
        r.register(
            "mqttsn_buffered_messages",
            "Deliveries waiting for sleeping or registering sensors",
            gauge(buffered as u64),
        );
    }
    r.register("messages_dropped", "Messages dropped, by reason", dropped);
    r.register_with_unit(
        "received",
        "Bytes received, by protocol",
        Unit::Bytes,
        bytes_in,
    );
    r.register_with_unit("sent", "Bytes sent, by protocol", Unit::Bytes, bytes_out);
    r.register(
        "connections_refused",
        "Connections refused or dropped for an error, a limit or a timeout",
        refused,
    );
    r.register_with_unit(
        "uptime",
        "Time since sngate started",
        Unit::Seconds,
        gauge(s.uptime.as_secs()),
    );
    if let Some(rss) = s.rss_bytes {
        r.register_with_unit(
            "process_resident_memory",
            "Resident memory of the sngate process (VmRSS)",
            Unit::Bytes,
            gauge(rss),
        );
    }
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &r);
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::broker::{ClientStatus, StatusSnapshot};

    fn snapshot(gateway: Option<crate::gateway::GatewayStatus>) -> Snapshot {
        let client = |id: &str, kind, connected| ClientStatus {
            client_id: id.into(),
            kind,
            connected,
            subscriptions: 1,
            queued: 2,
            inflight: 3,
        };
        Snapshot {
            broker: StatusSnapshot {
                clients: vec![
                    client("a", ClientKind::Mqtt5, true),
                    client("b", ClientKind::Mqtt5, false),
                    client("c", ClientKind::Mqtt3, true),
                ],
                ..StatusSnapshot::default()
            },
            gateway,
            uptime: Duration::from_secs(5),
            rss_bytes: Some(4096),
            mqtt_bytes_received: 10,
            mqtt_bytes_sent: 20,
            mqtt_connections_refused: 0,
            mqtt_open_connections: vec![("tcp", 2), ("tls", 0), ("ws", 1), ("wss", 0)],
        }
    }

    #[test]
    fn connections_are_counted_by_transport_and_clients_by_protocol() {
        let text = render_metrics(&snapshot(None));
        assert!(text.contains("sngate_connections{protocol=\"mqtt\",transport=\"tcp\"} 2\n"));
        assert!(text.contains("sngate_connections{protocol=\"mqtt\",transport=\"ws\"} 1\n"));
        assert!(text.contains("sngate_clients_connected{protocol=\"mqtt5\"} 1\n"));
        assert!(text.contains("sngate_clients_connected{protocol=\"mqtt3\"} 1\n"));
        assert!(text.contains("sngate_queued_messages 6\n"));
        assert!(text.contains("sngate_inflight_messages 9\n"));
        assert!(text.contains("sngate_process_resident_memory_bytes 4096\n"));
        assert!(text.contains("sngate_received_bytes_total{protocol=\"mqtt\"} 10\n"));
    }

    #[test]
    fn mqttsn_series_appear_only_with_a_gateway() {
        assert!(!render_metrics(&snapshot(None)).contains("sngate_mqttsn_"));
        let with = render_metrics(&snapshot(Some(Default::default())));
        assert!(with.contains("sngate_mqttsn_sensors{state=\"lost\"} 0\n"));
    }
}
