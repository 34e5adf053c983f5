//! What a DTLS listener and the gateway driver exchange: plaintext datagrams
//! tagged with the peer address and the identity its handshake proved.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::gateway::PeerIdentity;

/// A decrypted datagram from a DTLS peer.
#[derive(Debug, Clone)]
pub struct SecureDatagram {
    /// The peer's UDP address.
    pub addr: SocketAddr,
    /// The identity the peer's handshake authenticated.
    pub identity: Arc<PeerIdentity>,
    /// The MQTT-SN datagram.
    pub payload: Bytes,
}

/// The gateway's end of a running DTLS listener.
#[derive(Debug)]
pub struct DtlsTransport {
    /// The listener's bound address, for log lines.
    pub local_addr: SocketAddr,
    /// Datagrams received and decrypted.
    pub incoming: mpsc::Receiver<SecureDatagram>,
    /// Datagrams to encrypt and send to a peer with a session.
    pub outgoing: mpsc::Sender<(SocketAddr, Bytes)>,
    /// Every identity the listener accepts, so the gateway can reserve their
    /// client ids and the ACL can know their user names.
    pub identities: Vec<Arc<PeerIdentity>>,
    /// The listener's PSK table, which a reload may replace.
    pub psk: Arc<super::psk::SharedPskTable>,
}
