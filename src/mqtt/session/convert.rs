//! Translation between MQTT packets and the broker core's protocol-agnostic
//! messages. MQTT 3.x packets carry no properties, so they map to `None`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::broker::{Message, MessageProperties};
use crate::mqtt::codec::{PublishProperties, UserProperty, WillProperties};

fn user_props_in(props: &[UserProperty]) -> Vec<(Arc<str>, Arc<str>)> {
    props
        .iter()
        .map(|(k, v)| (Arc::from(k.as_str()), Arc::from(v.as_str())))
        .collect()
}

fn user_props_out(props: &[(Arc<str>, Arc<str>)]) -> Vec<UserProperty> {
    props
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn expiry(now: Instant, seconds: Option<u32>) -> Option<Instant> {
    seconds.map(|s| now + Duration::from_secs(u64::from(s)))
}

/// Builds the core's property set; `None` when nothing is set, so messages
/// without properties cost nothing extra.
fn pass_through(
    payload_format: Option<bool>,
    content_type: Option<&str>,
    response_topic: Option<&str>,
    correlation_data: Option<&bytes::Bytes>,
    user_properties: &[UserProperty],
) -> Option<Arc<MessageProperties>> {
    let props = MessageProperties {
        payload_format_utf8: payload_format,
        content_type: content_type.map(Arc::from),
        response_topic: response_topic.map(Arc::from),
        correlation_data: correlation_data.cloned(),
        user_properties: user_props_in(user_properties),
    };
    (!props.is_empty()).then(|| Arc::new(props))
}

/// The pass-through properties of an inbound PUBLISH (MQTT 5 §3.3.2.3).
pub fn message_properties(p: &PublishProperties) -> Option<Arc<MessageProperties>> {
    pass_through(
        p.payload_format_indicator,
        p.content_type.as_deref(),
        p.response_topic.as_deref(),
        p.correlation_data.as_ref(),
        &p.user_properties,
    )
}

/// When an inbound PUBLISH expires.
pub fn publish_expiry(now: Instant, p: &PublishProperties) -> Option<Instant> {
    expiry(now, p.message_expiry_interval)
}

/// The will's message properties and expiry.
pub fn will_properties(
    now: Instant,
    p: &WillProperties,
) -> (Option<Arc<MessageProperties>>, Option<Instant>) {
    let props = pass_through(
        p.payload_format_indicator,
        p.content_type.as_deref(),
        p.response_topic.as_deref(),
        p.correlation_data.as_ref(),
        &p.user_properties,
    );
    (props, expiry(now, p.message_expiry_interval))
}

/// PUBLISH properties for delivering `message`, with the remaining expiry
/// interval (MQTT 5 §3.3.2.3.3) and the matching subscription identifiers.
pub fn delivery_properties(
    message: &Message,
    subscription_ids: &[u32],
    now: Instant,
) -> PublishProperties {
    let mut out = PublishProperties {
        message_expiry_interval: message.remaining_expiry(now),
        subscription_identifiers: subscription_ids.to_vec(),
        ..PublishProperties::default()
    };
    if let Some(p) = &message.properties {
        out.payload_format_indicator = p.payload_format_utf8;
        out.content_type = p.content_type.as_deref().map(str::to_string);
        out.response_topic = p.response_topic.as_deref().map(str::to_string);
        out.correlation_data = p.correlation_data.clone();
        out.user_properties = user_props_out(&p.user_properties);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn properties_survive_the_round_trip_through_the_core() {
        let now = Instant::now();
        let inbound = PublishProperties {
            payload_format_indicator: Some(true),
            content_type: Some("text/plain".into()),
            response_topic: Some("reply/1".into()),
            correlation_data: Some(Bytes::from_static(b"42")),
            user_properties: vec![("k".into(), "v".into())],
            message_expiry_interval: Some(30),
            ..PublishProperties::default()
        };
        let mut m = Message::new("t", Bytes::new(), crate::qos::QoS::AtMostOnce, false);
        m.properties = message_properties(&inbound);
        m.expires_at = publish_expiry(now, &inbound);
        let out = delivery_properties(&m, &[7], now + Duration::from_secs(10));
        assert_eq!(out.message_expiry_interval, Some(20));
        assert_eq!(out.subscription_identifiers, vec![7]);
        assert_eq!(out.content_type.as_deref(), Some("text/plain"));
        assert_eq!(out.response_topic.as_deref(), Some("reply/1"));
        assert_eq!(out.correlation_data, Some(Bytes::from_static(b"42")));
        assert_eq!(
            out.user_properties,
            vec![("k".to_string(), "v".to_string())]
        );
        assert_eq!(out.payload_format_indicator, Some(true));
    }

    #[test]
    fn no_properties_means_none_in_the_core() {
        assert!(message_properties(&PublishProperties::default()).is_none());
    }
}
