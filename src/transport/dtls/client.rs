//! The sensor side of DTLS on a connected tokio UDP socket (DTLS 1.2 with a
//! PSK, DTLS 1.2/1.3 with certificates), for `sngate sn --psk-identity/--psk`
//! and `--cafile/--cert/--key`, tests and the benchmark.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dimpl::{Config, Dtls, Output, PskResolver};
use rustls_pki_types::UnixTime;
use tokio::net::UdpSocket;

use super::certs::ClientCertificates;

/// Which DTLS version a certificate client offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DtlsVersion {
    /// A ClientHello that both DTLS 1.2 and 1.3 servers accept.
    #[default]
    Auto,
    /// DTLS 1.2 only.
    V12,
    /// DTLS 1.3 only.
    V13,
}

/// Always answers with the one key the client was given.
struct OneKey(Vec<u8>);

impl PskResolver for OneKey {
    fn resolve(&self, _identity: &[u8]) -> Option<Vec<u8>> {
        Some(self.0.clone())
    }
}

/// A fresh socket on the unspecified address of `gateway`'s family, connected to it.
async fn socket_to(gateway: SocketAddr) -> io::Result<UdpSocket> {
    let bind: SocketAddr = if gateway.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(bind).await?;
    socket.connect(gateway).await?;
    Ok(socket)
}

/// A DTLS client session to one gateway.
pub struct DtlsClient {
    socket: UdpSocket,
    dtls: Dtls,
    buf: Vec<u8>,
    wake: Option<Instant>,
    inbox: VecDeque<Bytes>,
    connected: bool,
    closed: bool,
    /// Verifies the gateway's certificate on certificate suites.
    certificates: Option<Arc<ClientCertificates>>,
    /// Why the gateway's certificate was not accepted.
    refused: Option<String>,
}

impl std::fmt::Debug for DtlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsClient")
            .field("socket", &self.socket)
            .field("connected", &self.connected)
            .finish()
    }
}

impl DtlsClient {
    /// Handshakes with `gateway` as PSK `identity` with `key` from a fresh
    /// socket on the unspecified address of the gateway's family.
    pub async fn connect(
        gateway: SocketAddr,
        identity: &[u8],
        key: &[u8],
        timeout: Duration,
    ) -> io::Result<DtlsClient> {
        let socket = socket_to(gateway).await?;
        DtlsClient::handshake(socket, identity, key, timeout).await
    }

    /// Handshakes on an already connected socket.
    pub async fn handshake(
        socket: UdpSocket,
        identity: &[u8],
        key: &[u8],
        timeout: Duration,
    ) -> io::Result<DtlsClient> {
        let config = Config::builder()
            .with_psk_client(identity.to_vec(), Arc::new(OneKey(key.to_vec())))
            .mtu(1400)
            .build()
            .map_err(|e| io::Error::other(format!("DTLS configuration rejected: {e}")))?;
        let dtls = Dtls::new_12_psk(Arc::new(config), Instant::now());
        DtlsClient::run_handshake(socket, dtls, None, timeout).await
    }

    /// Handshakes with `gateway` with the client certificate of
    /// `certificates`, from a fresh socket as in [`DtlsClient::connect`].
    pub async fn connect_with_certificate(
        gateway: SocketAddr,
        certificates: Arc<ClientCertificates>,
        version: DtlsVersion,
        timeout: Duration,
    ) -> io::Result<DtlsClient> {
        let socket = socket_to(gateway).await?;
        DtlsClient::handshake_with_certificate(socket, certificates, version, timeout).await
    }

    /// Certificate handshake on an already connected socket; the gateway's
    /// certificate must chain to the CA of `certificates` and name its server.
    pub async fn handshake_with_certificate(
        socket: UdpSocket,
        certificates: Arc<ClientCertificates>,
        version: DtlsVersion,
        timeout: Duration,
    ) -> io::Result<DtlsClient> {
        let config = Config::builder()
            .mtu(1400)
            .build()
            .map_err(|e| io::Error::other(format!("DTLS configuration rejected: {e}")))?;
        let (config, now, cert) = (Arc::new(config), Instant::now(), certificates.certificate());
        let dtls = match version {
            DtlsVersion::Auto => Dtls::new_auto(config, cert, now),
            DtlsVersion::V12 => Dtls::new_12(config, cert, now),
            DtlsVersion::V13 => Dtls::new_13(config, cert, now),
        };
        DtlsClient::run_handshake(socket, dtls, Some(certificates), timeout).await
    }

    /// The negotiated DTLS version, once known.
    pub fn protocol_version(&self) -> Option<dimpl::ProtocolVersion> {
        self.dtls.protocol_version()
    }

    async fn run_handshake(
        socket: UdpSocket,
        mut dtls: Dtls,
        certificates: Option<Arc<ClientCertificates>>,
        timeout: Duration,
    ) -> io::Result<DtlsClient> {
        let now = Instant::now();
        dtls.set_active(true);
        dtls.handle_timeout(now).map_err(io::Error::other)?;
        let mut c = DtlsClient {
            socket,
            dtls,
            buf: vec![0; 2048],
            wake: None,
            inbox: VecDeque::new(),
            connected: false,
            closed: false,
            certificates,
            refused: None,
        };
        c.pump().await?;
        let deadline = Instant::now() + timeout;
        while !c.connected {
            if let Some(why) = c.refused.take() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the gateway's certificate is not accepted: {why}"),
                ));
            }
            if c.closed {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionRefused,
                    "DTLS handshake refused by the gateway",
                ));
            }
            if !c.step(deadline).await? {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "DTLS handshake did not complete (wrong PSK or identity, or client certificate refused?)",
                ));
            }
        }
        Ok(c)
    }

    /// The local socket address (the source port the gateway sees).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Encrypts and sends one datagram.
    pub async fn send(&mut self, datagram: &[u8]) -> io::Result<()> {
        self.dtls
            .handle_timeout(Instant::now())
            .and_then(|()| self.dtls.send_application_data(datagram).map(|_| ()))
            .map_err(io::Error::other)?;
        self.pump().await
    }

    /// The next datagram before `deadline`, or `None` when it passes.
    pub async fn recv(&mut self, deadline: Instant) -> io::Result<Option<Bytes>> {
        loop {
            if let Some(d) = self.inbox.pop_front() {
                return Ok(Some(d));
            }
            if self.closed {
                return Err(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "DTLS session closed by the gateway",
                ));
            }
            if !self.step(deadline).await? {
                return Ok(None);
            }
        }
    }

    /// Sends close_notify.
    pub async fn close(&mut self) -> io::Result<()> {
        self.dtls.close().map_err(io::Error::other)?;
        self.pump().await
    }

    /// Waits for one datagram or timer; false when `deadline` passed first.
    async fn step(&mut self, deadline: Instant) -> io::Result<bool> {
        let until = self.wake.map_or(deadline, |w| w.min(deadline));
        let mut rx = vec![0u8; 65_536];
        let got = tokio::time::timeout_at(until.into(), self.socket.recv(&mut rx)).await;
        let now = Instant::now();
        match got {
            Ok(Ok(n)) => {
                let r = self
                    .dtls
                    .handle_timeout(now)
                    .and_then(|()| self.dtls.handle_packet(rx.get(..n).unwrap_or_default()));
                if let Err(e) = r {
                    self.closed = true;
                    return Err(io::Error::other(format!("DTLS: {e}")));
                }
            }
            // ICMP port unreachable: the gateway is not there (yet); the timer retries.
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                if now >= deadline {
                    return Ok(false);
                }
                self.dtls.handle_timeout(now).map_err(io::Error::other)?;
            }
        }
        self.pump().await?;
        Ok(true)
    }

    async fn pump(&mut self) -> io::Result<()> {
        loop {
            match self.dtls.poll_output(&mut self.buf) {
                // Nothing more goes to a gateway whose certificate was refused.
                Output::Packet(_) if self.refused.is_some() => {}
                Output::Packet(p) => {
                    // A refused send (ICMP) is a lost datagram to DTLS: it retransmits.
                    let _ = self.socket.send(p).await;
                }
                Output::BufferTooSmall { needed } => {
                    if needed <= self.buf.len() || needed > 1 << 17 {
                        return Err(io::Error::other("DTLS record too large"));
                    }
                    self.buf.resize(needed, 0);
                }
                Output::Timeout(t) => {
                    self.wake = Some(t);
                    return Ok(());
                }
                Output::Connected if self.refused.is_some() => {}
                Output::Connected => self.connected = true,
                Output::PeerCert(der) => {
                    let checked = match &self.certificates {
                        Some(c) => c.check_server(der, UnixTime::now()),
                        None => Err("no CA to verify it with".to_owned()),
                    };
                    if let Err(why) = checked {
                        self.refused = Some(why);
                    }
                }
                Output::ApplicationData(d) => self.inbox.push_back(Bytes::copy_from_slice(d)),
                Output::CloseNotify => self.closed = true,
                _ => {}
            }
        }
    }
}
