//! Who a secure transport says a sensor is: the DTLS PSK identity and what it
//! is bound to. The gateway trusts it over anything inside MQTT-SN messages.

use std::fmt;
use std::sync::Arc;

/// An identity the transport authenticated for the datagram being handled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PeerIdentity {
    /// The authenticated name (the DTLS PSK identity).
    pub name: Arc<str>,
    /// The only client id this identity may CONNECT or wake with.
    pub client_id: Arc<str>,
    /// The username the broker's ACL sees for this sensor.
    pub username: Option<Arc<str>>,
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)
    }
}

/// Whether a datagram carrying `current` may act for a session owned by
/// `owner` (`None`: a session opened without authentication).
pub(super) fn may_act_for(owner: Option<&str>, current: Option<&PeerIdentity>) -> bool {
    match (owner, current) {
        (None, _) => true,
        (Some(o), Some(c)) => *c.name == *o,
        (Some(_), None) => false,
    }
}
