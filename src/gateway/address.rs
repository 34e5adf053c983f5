//! Who a sensor is on the network: a transport address, and for nodes behind
//! a forwarder the forwarder's address plus the wireless node id (§5.5).

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

/// A transport-level peer address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A UDP socket address.
    Udp(SocketAddr),
    /// A serial link (its index in `[[gateway.serial]]`), and for XBee links
    /// the 64-bit address of the remote radio, so that each radio behind one
    /// coordinator is its own sensor.
    Serial {
        /// Index of the link in the config.
        link: u16,
        /// Remote radio address (XBee); `None` on point-to-point links.
        radio: Option<u64>,
    },
    /// A DTLS session (its listener's index in `[[gateway.dtls]]`) with the
    /// peer's UDP address; datagrams from it are already decrypted.
    Dtls {
        /// Index of the listener in the config.
        listener: u16,
        /// The peer's UDP address.
        addr: SocketAddr,
    },
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerAddr::Udp(a) => write!(f, "udp {a}"),
            PeerAddr::Serial { link, radio: None } => write!(f, "serial link {link}"),
            PeerAddr::Serial {
                link,
                radio: Some(r),
            } => write!(f, "serial link {link} radio {r:016x}"),
            PeerAddr::Dtls { addr, .. } => write!(f, "dtls {addr}"),
        }
    }
}

/// The address a session is bound to: a peer, or a node behind a forwarder
/// at that peer (MQTT-SN 1.2 §5.5, G-90, G-93).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SensorAddr {
    /// The transport peer (the forwarder, for encapsulated nodes).
    pub peer: PeerAddr,
    /// The wireless node id for a node behind a forwarder.
    pub node_id: Option<Bytes>,
}

impl SensorAddr {
    /// A sensor talking to the gateway directly.
    pub fn direct(peer: PeerAddr) -> SensorAddr {
        SensorAddr {
            peer,
            node_id: None,
        }
    }
}

impl fmt::Display for SensorAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node_id {
            None => write!(f, "{}", self.peer),
            Some(n) => {
                write!(f, "{}/node:", self.peer)?;
                for b in n.iter() {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
        }
    }
}
