//! MQTT 5 topic aliases (MQTT 5 §3.3.2.3.4), both directions. Aliases are per
//! connection and never survive a reconnect.

use std::collections::HashMap;
use std::sync::Arc;

/// Why an inbound alias is unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasError {
    /// Alias 0 or above the advertised maximum [MQTT-3.3.2-8, MQTT-3.3.2-9] (reason 0x94).
    OutOfRange,
    /// An empty topic with an alias that was never set (reason 0x82).
    Unknown,
}

/// Aliases the client set for topics it publishes to.
#[derive(Debug, Default)]
pub struct InboundAliases {
    maximum: u16,
    map: HashMap<u16, Arc<str>>,
}

impl InboundAliases {
    /// Accepts aliases 1..=maximum.
    pub fn new(maximum: u16) -> InboundAliases {
        InboundAliases {
            maximum,
            map: HashMap::new(),
        }
    }

    /// Resolves the topic of an inbound PUBLISH, recording a new mapping when
    /// both a topic and an alias are present.
    pub fn resolve(
        &mut self,
        topic: &Arc<str>,
        alias: Option<u16>,
    ) -> Result<Arc<str>, AliasError> {
        let Some(alias) = alias else {
            return Ok(topic.clone());
        };
        if alias == 0 || alias > self.maximum {
            return Err(AliasError::OutOfRange);
        }
        if topic.is_empty() {
            return self.map.get(&alias).cloned().ok_or(AliasError::Unknown);
        }
        self.map.insert(alias, topic.clone());
        Ok(topic.clone())
    }
}

/// Aliases sngate assigns for topics it delivers, up to the client's maximum.
/// Saving the topic string on every repeat matters on constrained links.
#[derive(Debug, Default)]
pub struct OutboundAliases {
    maximum: u16,
    map: HashMap<Arc<str>, u16>,
}

/// How to send a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundTopic {
    /// Send the topic name, no alias.
    Name,
    /// Send the topic name and set this alias.
    NameAndAlias(u16),
    /// Send an empty topic name with this alias.
    AliasOnly(u16),
}

impl OutboundAliases {
    /// Up to `maximum` aliases (the client's Topic Alias Maximum; 0 = none).
    pub fn new(maximum: u16) -> OutboundAliases {
        OutboundAliases {
            maximum,
            map: HashMap::new(),
        }
    }

    /// Chooses how to send `topic`. Aliases are handed out first come, first
    /// served and kept for the life of the connection.
    pub fn choose(&mut self, topic: &Arc<str>) -> OutboundTopic {
        if let Some(alias) = self.map.get(topic) {
            return OutboundTopic::AliasOnly(*alias);
        }
        let used = u16::try_from(self.map.len()).unwrap_or(u16::MAX);
        if used < self.maximum {
            let alias = used + 1;
            self.map.insert(topic.clone(), alias);
            return OutboundTopic::NameAndAlias(alias);
        }
        OutboundTopic::Name
    }
}

/// Both alias tables of one connection. A session boxes them on first use:
/// aliases are MQTT 5 only and most clients use none, so an idle connection
/// should not carry two maps inline.
#[derive(Debug)]
pub(super) struct AliasTables {
    /// Aliases the client set.
    pub inbound: InboundAliases,
    /// Aliases sngate assigned.
    pub outbound: OutboundAliases,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inbound_alias_zero_or_above_maximum_is_rejected() {
        let mut a = InboundAliases::new(2);
        let t: Arc<str> = "t".into();
        assert_eq!(a.resolve(&t, Some(0)), Err(AliasError::OutOfRange));
        assert_eq!(a.resolve(&t, Some(3)), Err(AliasError::OutOfRange));
    }

    #[test]
    fn inbound_alias_is_remembered_and_reused() {
        let mut a = InboundAliases::new(2);
        let t: Arc<str> = "a/b".into();
        let empty: Arc<str> = "".into();
        assert_eq!(a.resolve(&empty, Some(1)), Err(AliasError::Unknown));
        assert_eq!(a.resolve(&t, Some(1)).as_deref(), Ok("a/b"));
        assert_eq!(a.resolve(&empty, Some(1)).as_deref(), Ok("a/b"));
    }

    #[test]
    fn outbound_aliases_are_assigned_then_reused_up_to_maximum() {
        let mut a = OutboundAliases::new(1);
        let x: Arc<str> = "x".into();
        let y: Arc<str> = "y".into();
        assert_eq!(a.choose(&x), OutboundTopic::NameAndAlias(1));
        assert_eq!(a.choose(&x), OutboundTopic::AliasOnly(1));
        assert_eq!(a.choose(&y), OutboundTopic::Name);
    }

    #[test]
    fn no_outbound_aliases_when_client_allows_none() {
        let mut a = OutboundAliases::new(0);
        assert_eq!(a.choose(&"x".into()), OutboundTopic::Name);
    }
}
