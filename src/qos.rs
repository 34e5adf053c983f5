//! Quality of service levels shared by both protocols and the broker core.

/// MQTT quality of service (MQTT 3.1.1 §4.3, MQTT 5 §4.3, MQTT-SN 1.2 §6.8).
///
/// MQTT-SN's QoS −1 is not a delivery guarantee inside the broker: the gateway
/// publishes such messages at QoS 0, so it lives only in the MQTT-SN codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum QoS {
    /// At most once.
    #[default]
    AtMostOnce = 0,
    /// At least once.
    AtLeastOnce = 1,
    /// Exactly once.
    ExactlyOnce = 2,
}

impl QoS {
    /// Parses the two-bit wire value; 3 is not a QoS level.
    pub fn from_u8(v: u8) -> Option<QoS> {
        match v {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The wire value 0, 1 or 2.
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}
