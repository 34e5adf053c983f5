//! The MQTT 5 property structs of each packet (§3.x.2.3) with value checks.
//! `None` / empty means "absent on the wire"; defaults are the session's business.

use bytes::Bytes;

use super::error::{DecodeError, EncodeError};
use super::properties::{PropContext, PropValue, PropWriter, PropertySet, UserProperty, id};
use super::wire::Sink;

fn unexpected(pid: u8, ctx: PropContext) -> DecodeError {
    DecodeError::PropertyNotAllowed {
        id: pid,
        packet: ctx.name(),
    }
}

// Byte properties that are booleans must be 0 or 1 (Protocol Error otherwise).
fn flag(name: &'static str, v: u8) -> Result<bool, DecodeError> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::InvalidPropertyValue {
            name,
            value: u32::from(v),
        }),
    }
}

fn non_zero_u16(name: &'static str, v: u16) -> Result<u16, DecodeError> {
    if v == 0 {
        return Err(DecodeError::InvalidPropertyValue { name, value: 0 });
    }
    Ok(v)
}

fn non_zero_u32(name: &'static str, v: u32) -> Result<u32, DecodeError> {
    if v == 0 {
        return Err(DecodeError::InvalidPropertyValue { name, value: 0 });
    }
    Ok(v)
}

/// CONNECT properties (§3.1.2.11).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnectProperties {
    /// Session Expiry Interval in seconds.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum (never 0).
    pub receive_maximum: Option<u16>,
    /// Maximum Packet Size the client accepts (never 0).
    pub maximum_packet_size: Option<u32>,
    /// Topic Alias Maximum.
    pub topic_alias_maximum: Option<u16>,
    /// Request Response Information.
    pub request_response_information: Option<bool>,
    /// Request Problem Information.
    pub request_problem_information: Option<bool>,
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
    /// Authentication Method.
    pub authentication_method: Option<String>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
}

impl PropertySet for ConnectProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        use PropValue as V;
        match (pid, v) {
            (id::SESSION_EXPIRY_INTERVAL, V::FourByte(x)) => self.session_expiry_interval = Some(x),
            (id::RECEIVE_MAXIMUM, V::TwoByte(x)) => {
                self.receive_maximum = Some(non_zero_u16("Receive Maximum", x)?);
            }
            (id::MAXIMUM_PACKET_SIZE, V::FourByte(x)) => {
                self.maximum_packet_size = Some(non_zero_u32("Maximum Packet Size", x)?);
            }
            (id::TOPIC_ALIAS_MAXIMUM, V::TwoByte(x)) => self.topic_alias_maximum = Some(x),
            (id::REQUEST_RESPONSE_INFORMATION, V::Byte(x)) => {
                self.request_response_information = Some(flag("Request Response Information", x)?);
            }
            (id::REQUEST_PROBLEM_INFORMATION, V::Byte(x)) => {
                self.request_problem_information = Some(flag("Request Problem Information", x)?);
            }
            (id::USER_PROPERTY, V::Pair(k, x)) => self.user_properties.push((k, x)),
            (id::AUTHENTICATION_METHOD, V::Utf8(x)) => self.authentication_method = Some(x),
            (id::AUTHENTICATION_DATA, V::Binary(x)) => self.authentication_data = Some(x),
            (pid, _) => return Err(unexpected(pid, PropContext::Connect)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let mut w = PropWriter(s);
        w.four(id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        w.two(id::RECEIVE_MAXIMUM, self.receive_maximum);
        w.four(id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        w.two(id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        w.flag(
            id::REQUEST_RESPONSE_INFORMATION,
            self.request_response_information,
        );
        w.flag(
            id::REQUEST_PROBLEM_INFORMATION,
            self.request_problem_information,
        );
        w.user(&self.user_properties)?;
        w.utf8(
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        )?;
        w.binary(id::AUTHENTICATION_DATA, self.authentication_data.as_ref())
    }
}

/// Will properties (§3.1.3.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WillProperties {
    /// Will Delay Interval in seconds.
    pub will_delay_interval: Option<u32>,
    /// Payload Format Indicator: true when the payload is UTF-8.
    pub payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Content Type.
    pub content_type: Option<String>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
}

impl PropertySet for WillProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        use PropValue as V;
        match (pid, v) {
            (id::WILL_DELAY_INTERVAL, V::FourByte(x)) => self.will_delay_interval = Some(x),
            (id::PAYLOAD_FORMAT_INDICATOR, V::Byte(x)) => {
                self.payload_format_indicator = Some(flag("Payload Format Indicator", x)?);
            }
            (id::MESSAGE_EXPIRY_INTERVAL, V::FourByte(x)) => self.message_expiry_interval = Some(x),
            (id::CONTENT_TYPE, V::Utf8(x)) => self.content_type = Some(x),
            (id::RESPONSE_TOPIC, V::Utf8(x)) => self.response_topic = Some(x),
            (id::CORRELATION_DATA, V::Binary(x)) => self.correlation_data = Some(x),
            (id::USER_PROPERTY, V::Pair(k, x)) => self.user_properties.push((k, x)),
            (pid, _) => return Err(unexpected(pid, PropContext::Will)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let mut w = PropWriter(s);
        w.four(id::WILL_DELAY_INTERVAL, self.will_delay_interval);
        w.flag(id::PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        w.four(id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        w.utf8(id::CONTENT_TYPE, self.content_type.as_deref())?;
        w.utf8(id::RESPONSE_TOPIC, self.response_topic.as_deref())?;
        w.binary(id::CORRELATION_DATA, self.correlation_data.as_ref())?;
        w.user(&self.user_properties)
    }
}

/// CONNACK properties (§3.2.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnAckProperties {
    /// Session Expiry Interval the server uses.
    pub session_expiry_interval: Option<u32>,
    /// Receive Maximum of the server (never 0).
    pub receive_maximum: Option<u16>,
    /// Maximum QoS the server supports (0 or 1; absent means 2).
    pub maximum_qos: Option<u8>,
    /// Retain Available.
    pub retain_available: Option<bool>,
    /// Maximum Packet Size the server accepts (never 0).
    pub maximum_packet_size: Option<u32>,
    /// Assigned Client Identifier.
    pub assigned_client_identifier: Option<String>,
    /// Topic Alias Maximum of the server.
    pub topic_alias_maximum: Option<u16>,
    /// Reason String.
    pub reason_string: Option<String>,
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
    /// Wildcard Subscription Available.
    pub wildcard_subscription_available: Option<bool>,
    /// Subscription Identifiers Available.
    pub subscription_identifiers_available: Option<bool>,
    /// Shared Subscription Available.
    pub shared_subscription_available: Option<bool>,
    /// Server Keep Alive in seconds.
    pub server_keep_alive: Option<u16>,
    /// Response Information.
    pub response_information: Option<String>,
    /// Server Reference.
    pub server_reference: Option<String>,
    /// Authentication Method.
    pub authentication_method: Option<String>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
}

impl PropertySet for ConnAckProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        use PropValue as V;
        match (pid, v) {
            (id::SESSION_EXPIRY_INTERVAL, V::FourByte(x)) => self.session_expiry_interval = Some(x),
            (id::RECEIVE_MAXIMUM, V::TwoByte(x)) => {
                self.receive_maximum = Some(non_zero_u16("Receive Maximum", x)?);
            }
            (id::MAXIMUM_QOS, V::Byte(x)) => {
                if x > 1 {
                    return Err(DecodeError::InvalidPropertyValue {
                        name: "Maximum QoS",
                        value: u32::from(x),
                    });
                }
                self.maximum_qos = Some(x);
            }
            (id::RETAIN_AVAILABLE, V::Byte(x)) => {
                self.retain_available = Some(flag("Retain Available", x)?);
            }
            (id::MAXIMUM_PACKET_SIZE, V::FourByte(x)) => {
                self.maximum_packet_size = Some(non_zero_u32("Maximum Packet Size", x)?);
            }
            (id::ASSIGNED_CLIENT_IDENTIFIER, V::Utf8(x)) => {
                self.assigned_client_identifier = Some(x);
            }
            (id::TOPIC_ALIAS_MAXIMUM, V::TwoByte(x)) => self.topic_alias_maximum = Some(x),
            (id::REASON_STRING, V::Utf8(x)) => self.reason_string = Some(x),
            (id::USER_PROPERTY, V::Pair(k, x)) => self.user_properties.push((k, x)),
            (id::WILDCARD_SUBSCRIPTION_AVAILABLE, V::Byte(x)) => {
                self.wildcard_subscription_available =
                    Some(flag("Wildcard Subscription Available", x)?);
            }
            (id::SUBSCRIPTION_IDENTIFIER_AVAILABLE, V::Byte(x)) => {
                self.subscription_identifiers_available =
                    Some(flag("Subscription Identifier Available", x)?);
            }
            (id::SHARED_SUBSCRIPTION_AVAILABLE, V::Byte(x)) => {
                self.shared_subscription_available =
                    Some(flag("Shared Subscription Available", x)?);
            }
            (id::SERVER_KEEP_ALIVE, V::TwoByte(x)) => self.server_keep_alive = Some(x),
            (id::RESPONSE_INFORMATION, V::Utf8(x)) => self.response_information = Some(x),
            (id::SERVER_REFERENCE, V::Utf8(x)) => self.server_reference = Some(x),
            (id::AUTHENTICATION_METHOD, V::Utf8(x)) => self.authentication_method = Some(x),
            (id::AUTHENTICATION_DATA, V::Binary(x)) => self.authentication_data = Some(x),
            (pid, _) => return Err(unexpected(pid, PropContext::ConnAck)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let mut w = PropWriter(s);
        w.four(id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        w.two(id::RECEIVE_MAXIMUM, self.receive_maximum);
        w.byte(id::MAXIMUM_QOS, self.maximum_qos);
        w.flag(id::RETAIN_AVAILABLE, self.retain_available);
        w.four(id::MAXIMUM_PACKET_SIZE, self.maximum_packet_size);
        w.utf8(
            id::ASSIGNED_CLIENT_IDENTIFIER,
            self.assigned_client_identifier.as_deref(),
        )?;
        w.two(id::TOPIC_ALIAS_MAXIMUM, self.topic_alias_maximum);
        w.utf8(id::REASON_STRING, self.reason_string.as_deref())?;
        w.user(&self.user_properties)?;
        w.flag(
            id::WILDCARD_SUBSCRIPTION_AVAILABLE,
            self.wildcard_subscription_available,
        );
        w.flag(
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
            self.subscription_identifiers_available,
        );
        w.flag(
            id::SHARED_SUBSCRIPTION_AVAILABLE,
            self.shared_subscription_available,
        );
        w.two(id::SERVER_KEEP_ALIVE, self.server_keep_alive);
        w.utf8(
            id::RESPONSE_INFORMATION,
            self.response_information.as_deref(),
        )?;
        w.utf8(id::SERVER_REFERENCE, self.server_reference.as_deref())?;
        w.utf8(
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        )?;
        w.binary(id::AUTHENTICATION_DATA, self.authentication_data.as_ref())
    }
}

/// PUBLISH properties (§3.3.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PublishProperties {
    /// Payload Format Indicator: true when the payload is UTF-8.
    pub payload_format_indicator: Option<bool>,
    /// Message Expiry Interval in seconds.
    pub message_expiry_interval: Option<u32>,
    /// Topic Alias (range checks are the session's job).
    pub topic_alias: Option<u16>,
    /// Response Topic.
    pub response_topic: Option<String>,
    /// Correlation Data.
    pub correlation_data: Option<Bytes>,
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
    /// Subscription Identifiers (server → client; may repeat, never 0).
    pub subscription_identifiers: Vec<u32>,
    /// Content Type.
    pub content_type: Option<String>,
}

impl PublishProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        self == &PublishProperties::default()
    }
}

impl PropertySet for PublishProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        use PropValue as V;
        match (pid, v) {
            (id::PAYLOAD_FORMAT_INDICATOR, V::Byte(x)) => {
                self.payload_format_indicator = Some(flag("Payload Format Indicator", x)?);
            }
            (id::MESSAGE_EXPIRY_INTERVAL, V::FourByte(x)) => self.message_expiry_interval = Some(x),
            (id::TOPIC_ALIAS, V::TwoByte(x)) => self.topic_alias = Some(x),
            (id::RESPONSE_TOPIC, V::Utf8(x)) => self.response_topic = Some(x),
            (id::CORRELATION_DATA, V::Binary(x)) => self.correlation_data = Some(x),
            (id::USER_PROPERTY, V::Pair(k, x)) => self.user_properties.push((k, x)),
            (id::SUBSCRIPTION_IDENTIFIER, V::VarInt(x)) => {
                let x = non_zero_u32("Subscription Identifier", x)?;
                self.subscription_identifiers.push(x);
            }
            (id::CONTENT_TYPE, V::Utf8(x)) => self.content_type = Some(x),
            (pid, _) => return Err(unexpected(pid, PropContext::Publish)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let mut w = PropWriter(s);
        w.flag(id::PAYLOAD_FORMAT_INDICATOR, self.payload_format_indicator);
        w.four(id::MESSAGE_EXPIRY_INTERVAL, self.message_expiry_interval);
        w.two(id::TOPIC_ALIAS, self.topic_alias);
        w.utf8(id::RESPONSE_TOPIC, self.response_topic.as_deref())?;
        w.binary(id::CORRELATION_DATA, self.correlation_data.as_ref())?;
        w.user(&self.user_properties)?;
        for sid in &self.subscription_identifiers {
            w.var_int(id::SUBSCRIPTION_IDENTIFIER, Some(*sid))?;
        }
        w.utf8(id::CONTENT_TYPE, self.content_type.as_deref())
    }
}

/// Properties of PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK and UNSUBACK.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckProperties {
    /// Reason String.
    pub reason_string: Option<String>,
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
}

impl AckProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        self.reason_string.is_none() && self.user_properties.is_empty()
    }
}

impl PropertySet for AckProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        match (pid, v) {
            (id::REASON_STRING, PropValue::Utf8(x)) => self.reason_string = Some(x),
            (id::USER_PROPERTY, PropValue::Pair(k, x)) => self.user_properties.push((k, x)),
            (pid, _) => return Err(unexpected(pid, PropContext::Ack)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let mut w = PropWriter(s);
        w.utf8(id::REASON_STRING, self.reason_string.as_deref())?;
        w.user(&self.user_properties)
    }
}

/// SUBSCRIBE properties (§3.8.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubscribeProperties {
    /// Subscription Identifier (1..=268,435,455).
    pub subscription_identifier: Option<u32>,
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
}

impl PropertySet for SubscribeProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        match (pid, v) {
            (id::SUBSCRIPTION_IDENTIFIER, PropValue::VarInt(x)) => {
                self.subscription_identifier = Some(non_zero_u32("Subscription Identifier", x)?);
            }
            (id::USER_PROPERTY, PropValue::Pair(k, x)) => self.user_properties.push((k, x)),
            (pid, _) => return Err(unexpected(pid, PropContext::Subscribe)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let mut w = PropWriter(s);
        w.var_int(id::SUBSCRIPTION_IDENTIFIER, self.subscription_identifier)?;
        w.user(&self.user_properties)
    }
}

/// UNSUBSCRIBE properties (§3.10.2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UnsubscribeProperties {
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
}

impl PropertySet for UnsubscribeProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        match (pid, v) {
            (id::USER_PROPERTY, PropValue::Pair(k, x)) => self.user_properties.push((k, x)),
            (pid, _) => return Err(unexpected(pid, PropContext::Unsubscribe)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        PropWriter(s).user(&self.user_properties)
    }
}

/// DISCONNECT properties (§3.14.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DisconnectProperties {
    /// Session Expiry Interval (client → server only).
    pub session_expiry_interval: Option<u32>,
    /// Reason String.
    pub reason_string: Option<String>,
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
    /// Server Reference.
    pub server_reference: Option<String>,
}

impl DisconnectProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        self == &DisconnectProperties::default()
    }
}

impl PropertySet for DisconnectProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        use PropValue as V;
        match (pid, v) {
            (id::SESSION_EXPIRY_INTERVAL, V::FourByte(x)) => self.session_expiry_interval = Some(x),
            (id::REASON_STRING, V::Utf8(x)) => self.reason_string = Some(x),
            (id::USER_PROPERTY, V::Pair(k, x)) => self.user_properties.push((k, x)),
            (id::SERVER_REFERENCE, V::Utf8(x)) => self.server_reference = Some(x),
            (pid, _) => return Err(unexpected(pid, PropContext::Disconnect)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let mut w = PropWriter(s);
        w.four(id::SESSION_EXPIRY_INTERVAL, self.session_expiry_interval);
        w.utf8(id::REASON_STRING, self.reason_string.as_deref())?;
        w.user(&self.user_properties)?;
        w.utf8(id::SERVER_REFERENCE, self.server_reference.as_deref())
    }
}

/// AUTH properties (§3.15.2.2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthProperties {
    /// Authentication Method.
    pub authentication_method: Option<String>,
    /// Authentication Data.
    pub authentication_data: Option<Bytes>,
    /// Reason String.
    pub reason_string: Option<String>,
    /// User Properties.
    pub user_properties: Vec<UserProperty>,
}

impl AuthProperties {
    /// True when no property is present.
    pub fn is_empty(&self) -> bool {
        self == &AuthProperties::default()
    }
}

impl PropertySet for AuthProperties {
    fn set(&mut self, pid: u8, v: PropValue) -> Result<(), DecodeError> {
        use PropValue as V;
        match (pid, v) {
            (id::AUTHENTICATION_METHOD, V::Utf8(x)) => self.authentication_method = Some(x),
            (id::AUTHENTICATION_DATA, V::Binary(x)) => self.authentication_data = Some(x),
            (id::REASON_STRING, V::Utf8(x)) => self.reason_string = Some(x),
            (id::USER_PROPERTY, V::Pair(k, x)) => self.user_properties.push((k, x)),
            (pid, _) => return Err(unexpected(pid, PropContext::Auth)),
        }
        Ok(())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), EncodeError> {
        let mut w = PropWriter(s);
        w.utf8(
            id::AUTHENTICATION_METHOD,
            self.authentication_method.as_deref(),
        )?;
        w.binary(id::AUTHENTICATION_DATA, self.authentication_data.as_ref())?;
        w.utf8(id::REASON_STRING, self.reason_string.as_deref())?;
        w.user(&self.user_properties)
    }
}
