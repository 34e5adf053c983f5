//! The JSON served under `/api` and pushed on `/api/events`. Field names are
//! part of the documented interface (docs/operations.md).

use serde_json::{Value, json};

use super::metrics::protocol_name;
use super::snapshot::Snapshot;
use crate::broker::ClientStatus;
use crate::gateway::{GatewayStatus, SensorState, SensorStatus};

/// `/api/clients`: every broker session.
pub fn clients(s: &Snapshot) -> Value {
    Value::Array(s.broker.clients.iter().map(client).collect())
}

fn client(c: &ClientStatus) -> Value {
    json!({
        "client_id": &*c.client_id,
        "protocol": protocol_name(c.kind),
        "connected": c.connected,
        "subscriptions": c.subscriptions,
        "queued": c.queued,
        "inflight": c.inflight,
    })
}

/// `/api/sensors`: every MQTT-SN sensor session (empty without a gateway).
pub fn sensors(s: &Snapshot) -> Value {
    let rows = s.gateway.as_ref().map(|g| g.sensors.as_slice());
    Value::Array(rows.unwrap_or_default().iter().map(sensor).collect())
}

/// `/api/sensors/{client_id}`: one sensor.
pub fn sensor_by_id(s: &Snapshot, client_id: &str) -> Option<Value> {
    let g = s.gateway.as_ref()?;
    g.sensors
        .iter()
        .find(|x| &*x.client_id == client_id)
        .map(sensor)
}

/// One sensor row.
pub fn sensor(x: &SensorStatus) -> Value {
    let topics: Vec<Value> = x
        .topics
        .iter()
        .map(|(id, name)| json!({ "id": id, "name": &**name }))
        .collect();
    json!({
        "client_id": &*x.client_id,
        "transport": x.transport,
        "address": x.address,
        "state": x.state.as_str(),
        "last_seen_seconds": x.last_seen.as_secs_f64(),
        "keep_alive_seconds": x.keep_alive.as_secs(),
        "sleep_seconds": x.sleep.as_secs(),
        "buffered": x.buffered,
        "inflight": x.inflight,
        "topics": topics,
    })
}

fn gateway_summary(g: &GatewayStatus) -> Value {
    let mut by_state = serde_json::Map::new();
    for state in SensorState::ALL {
        by_state.insert(state.as_str().into(), json!(g.count(state)));
    }
    let st = &g.stats;
    json!({
        "sensors_by_state": by_state,
        "messages_received": st.datagrams_in,
        "messages_sent": st.datagrams_out,
        "bytes_received": st.bytes_in,
        "bytes_sent": st.bytes_out,
        "malformed": st.malformed,
        "dropped_sleep_buffer_full": st.dropped_qos0,
        "undeliverable": st.abandoned,
        "refused_connects": st.refused_connects,
    })
}

/// `/api/status`: the summary, the clients and the sensors in one document
/// (also the payload of each `/api/events` update).
pub fn status(s: &Snapshot) -> Value {
    let b = &s.broker;
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": s.uptime.as_secs(),
        "rss_bytes": s.rss_bytes,
        "broker": {
            "clients_connected": b.clients.iter().filter(|c| c.connected).count(),
            "sessions": b.clients.len(),
            "subscriptions": b.subscriptions,
            "retained": b.retained,
            "messages_received": b.messages_received,
            "messages_sent": b.messages_sent,
            "messages_dropped": b.messages_dropped,
            "bytes_received": s.mqtt_bytes_received,
            "bytes_sent": s.mqtt_bytes_sent,
        },
        "gateway": s.gateway.as_ref().map(gateway_summary),
        "clients": clients(s),
        "sensors": sensors(s),
    })
}
