//! CONNECT validation (MQTT 3.1.1 §3.1, MQTT 5 §3.1): what the protocol layer
//! checks before a session is attached in the core.

use std::sync::Arc;
use std::time::Instant;

use rand::Rng;

use super::convert;
use super::settings::Limits;
use crate::broker::{Message, Will};
use crate::mqtt::codec::{Connect, ProtocolVersion, ReasonCode};
use crate::mqtt::topic;

/// A refused CONNECT: the CONNACK code to send, and why (for the log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// v3 return code (1..=5).
    pub v3_code: u8,
    /// v5 reason code.
    pub v5_reason: ReasonCode,
    /// Log text.
    pub why: String,
}

fn refuse(v3_code: u8, v5_reason: ReasonCode, why: impl Into<String>) -> Refusal {
    Refusal {
        v3_code,
        v5_reason,
        why: why.into(),
    }
}

/// The client identifier to use, or a refusal [MQTT-3.1.3-6..9].
pub fn client_identifier(c: &Connect, settings: &Limits) -> Result<(Arc<str>, bool), Refusal> {
    if !c.client_id.is_empty() {
        // MQTT 3.1 limited client ids to 23 characters (MQTT 3.1 §3.1).
        if c.protocol == ProtocolVersion::V31 && c.client_id.chars().count() > 23 {
            return Err(refuse(
                2,
                ReasonCode::ClientIdentifierNotValid,
                "client id longer than 23 characters on MQTT 3.1",
            ));
        }
        return Ok((Arc::from(c.client_id.as_str()), false));
    }
    if c.protocol != ProtocolVersion::V5 && !c.clean_start {
        return Err(refuse(
            2,
            ReasonCode::ClientIdentifierNotValid,
            "[MQTT-3.1.3-8] empty client id with clean session 0",
        ));
    }
    if c.protocol == ProtocolVersion::V31 || !settings.allow_zero_length_clientid {
        return Err(refuse(
            2,
            ReasonCode::ClientIdentifierNotValid,
            "empty client id not allowed",
        ));
    }
    Ok((Arc::from(assigned_client_id().as_str()), true))
}

/// A fresh client id in Mosquitto's `auto-` style.
fn assigned_client_id() -> String {
    let mut rng = rand::rng();
    let a: u32 = rng.random();
    let b: u16 = rng.random();
    let c: u16 = rng.random();
    let d: u64 = rng.random();
    format!("auto-{a:08X}-{b:04X}-{c:04X}-{d:016X}")
}

/// Effective keep-alive: a request above `max_keepalive` (or 0 when a maximum
/// is set) is held to the maximum (MQTT 5 §3.2.2.3.14 Server Keep Alive).
pub fn keep_alive(requested: u16, max: u16) -> u16 {
    if max == u16::MAX {
        return requested;
    }
    if requested == 0 || requested > max {
        max
    } else {
        requested
    }
}

/// The will of the CONNECT, validated [MQTT-3.1.2-9..15].
pub fn will(c: &Connect, settings: &Limits, now: Instant) -> Result<Option<Will>, Refusal> {
    let Some(w) = &c.will else {
        return Ok(None);
    };
    if topic::validate_topic_name(&w.topic).is_err() {
        return Err(refuse(
            2,
            ReasonCode::TopicNameInvalid,
            format!("invalid will topic {:?}", w.topic),
        ));
    }
    if w.retain && !settings.retain_available {
        return Err(refuse(
            3,
            ReasonCode::RetainNotSupported,
            "retained will but retain is not available",
        ));
    }
    let (properties, expires_at) = convert::will_properties(now, &w.properties);
    let message = Message {
        topic: Arc::from(w.topic.as_str()),
        payload: w.payload.clone(),
        qos: w.qos,
        retain: w.retain,
        properties,
        expires_at,
        publisher: None,
    };
    Ok(Some(Will {
        message,
        delay: w.properties.will_delay_interval.unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::codec::ConnectProperties;
    use crate::mqtt::session::SessionSettings;

    fn connect(protocol: ProtocolVersion, id: &str, clean: bool) -> Connect {
        Connect {
            protocol,
            clean_start: clean,
            keep_alive: 60,
            client_id: id.into(),
            will: None,
            username: None,
            password: None,
            properties: ConnectProperties::default(),
        }
    }

    #[test]
    fn empty_client_id_with_clean_session_gets_an_assigned_id() {
        let s = Limits::from(&SessionSettings::default());
        let (id, assigned) =
            client_identifier(&connect(ProtocolVersion::V311, "", true), &s).expect("accepted");
        assert!(assigned);
        assert!(id.starts_with("auto-"));
    }

    #[test]
    fn empty_client_id_without_clean_session_is_rejected_on_v311() {
        let s = Limits::from(&SessionSettings::default());
        let r = client_identifier(&connect(ProtocolVersion::V311, "", false), &s);
        assert_eq!(r.map_err(|e| e.v3_code), Err(2));
    }

    #[test]
    fn empty_client_id_is_rejected_when_not_allowed() {
        let s = Limits::from(&SessionSettings {
            allow_zero_length_clientid: false,
            ..SessionSettings::default()
        });
        assert!(client_identifier(&connect(ProtocolVersion::V5, "", true), &s).is_err());
    }

    #[test]
    fn keep_alive_is_held_to_the_maximum() {
        assert_eq!(keep_alive(0, u16::MAX), 0);
        assert_eq!(keep_alive(100, 60), 60);
        assert_eq!(keep_alive(0, 60), 60);
        assert_eq!(keep_alive(30, 60), 30);
    }
}
