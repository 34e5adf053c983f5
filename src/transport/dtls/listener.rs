//! Runs a [`DtlsServer`] on a tokio UDP socket and connects it to the gateway
//! driver through a [`DtlsTransport`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::certs::ServerCertificates;
use super::link::{DtlsTransport, SecureDatagram};
use super::psk::PskTable;
use super::server::{DtlsConfigError, DtlsServer, DtlsServerSettings};
use crate::transport::udp::MAX_DATAGRAM;

/// Datagrams queued between the DTLS task and the gateway, each way.
const QUEUE: usize = 1024;
/// The longest the task sleeps without looking at its timers.
const TICK: Duration = Duration::from_secs(1);

/// What one `[[gateway.dtls]]` listener needs.
#[derive(Debug, Clone)]
pub struct DtlsListenerSettings {
    /// Address the socket binds to.
    pub bind: SocketAddr,
    /// Accepted identities and keys; `None` on a certificate-only socket.
    pub psk: Option<Arc<PskTable>>,
    /// The gateway's certificate and the CA of sensor certificates.
    pub certificates: Option<Arc<ServerCertificates>>,
    /// Limits.
    pub server: DtlsServerSettings,
}

/// Why a DTLS listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum DtlsListenerError {
    /// The socket could not be bound.
    #[error("cannot bind the MQTT-SN DTLS socket {addr}: {source}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
    /// The DTLS engine rejected its configuration.
    #[error(transparent)]
    Config(#[from] DtlsConfigError),
    /// The PSK file is unusable.
    #[error(transparent)]
    Psk(#[from] super::psk::PskFileError),
    /// A certificate, key or CA file is unusable.
    #[error(transparent)]
    Certificates(#[from] crate::transport::tls::TlsError),
}

/// Loads the PSK files and certificates, binds and starts every
/// `[[gateway.dtls]]` socket.
pub fn start_listeners(
    configs: &[crate::config::DtlsConfig],
    max_sensors: usize,
    shutdown: &CancellationToken,
) -> Result<Vec<DtlsTransport>, DtlsListenerError> {
    let mut bound = Vec::with_capacity(configs.len());
    for c in configs {
        let psk = match &c.psk_file {
            Some(path) => {
                let psk = PskTable::load(path)?;
                tracing::info!(addr = %c.bind, identities = psk.len(), "DTLS PSK table loaded");
                Some(Arc::new(psk))
            }
            None => None,
        };
        // Validation guarantees keyfile and cafile with certfile.
        let certificates = match (&c.certfile, &c.keyfile, &c.cafile) {
            (Some(cert), Some(key), Some(ca)) => {
                let certs = ServerCertificates::load(cert, key, ca, c.use_identity_as_username)?;
                tracing::info!(addr = %c.bind, cafile = %ca.display(), "DTLS certificates loaded");
                Some(Arc::new(certs))
            }
            _ => None,
        };
        let mut server = DtlsServerSettings::new(c.max_handshakes);
        server.max_sessions = max_sensors.max(1);
        bound.push(DtlsListener::bind(&DtlsListenerSettings {
            bind: c.bind,
            psk,
            certificates,
            server,
        })?);
    }
    Ok(bound
        .into_iter()
        .map(|l| l.spawn(shutdown.clone()))
        .collect())
}

/// A bound DTLS listener, not yet running.
#[derive(Debug)]
pub struct DtlsListener {
    socket: UdpSocket,
    server: DtlsServer,
    identities: Vec<Arc<crate::gateway::PeerIdentity>>,
}

impl DtlsListener {
    /// Binds the socket (port 0 in tests; read it with [`DtlsListener::local_addr`]). Needs a tokio runtime.
    pub fn bind(settings: &DtlsListenerSettings) -> Result<DtlsListener, DtlsListenerError> {
        let bind_err = |source| DtlsListenerError::Bind {
            addr: settings.bind,
            source,
        };
        let std_socket = std::net::UdpSocket::bind(settings.bind).map_err(bind_err)?;
        std_socket.set_nonblocking(true).map_err(bind_err)?;
        let socket = UdpSocket::from_std(std_socket).map_err(bind_err)?;
        let server = DtlsServer::with_credentials(
            settings.psk.clone(),
            settings.certificates.clone(),
            settings.server.clone(),
        )?;
        // Certificate identities are not known in advance: they own their
        // client id from the session they open.
        let identities = settings
            .psk
            .iter()
            .flat_map(|t| t.identities().cloned())
            .collect();
        Ok(DtlsListener {
            socket,
            server,
            identities,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Starts the listener task; it stops with `shutdown` or when the gateway goes.
    pub fn spawn(self, shutdown: CancellationToken) -> DtlsTransport {
        let local_addr = self.local_addr();
        let psk = self.server.psk_table();
        let (in_tx, incoming) = mpsc::channel(QUEUE);
        let (outgoing, out_rx) = mpsc::channel(QUEUE);
        tokio::spawn(run(self.socket, self.server, in_tx, out_rx, shutdown));
        DtlsTransport {
            local_addr,
            incoming,
            outgoing,
            identities: self.identities,
            psk,
        }
    }
}

async fn run(
    socket: UdpSocket,
    mut server: DtlsServer,
    to_gateway: mpsc::Sender<SecureDatagram>,
    mut from_gateway: mpsc::Receiver<(SocketAddr, Bytes)>,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        while let Some((to, d)) = server.poll_transmit() {
            if let Err(e) = socket.send_to(&d, to).await {
                tracing::debug!(peer = %to, error = %e, "DTLS send failed");
            }
        }
        while let Some(d) = server.poll_received() {
            if to_gateway.send(d).await.is_err() {
                return;
            }
        }
        let now = Instant::now();
        let wake = server
            .poll_timeout()
            .map_or(now + TICK, |t| t.min(now + TICK));
        tokio::select! {
            biased;
            () = shutdown.cancelled() => return,
            out = from_gateway.recv() => match out {
                Some((to, d)) => server.send(Instant::now(), to, &d),
                None => return,
            },
            got = socket.recv_from(&mut buf) => match got {
                Ok((n, from)) => server.handle_datagram(Instant::now(), from, buf.get(..n).unwrap_or_default()),
                Err(e) => tracing::debug!(error = %e, "DTLS receive error"),
            },
            () = tokio::time::sleep_until(wake.into()) => server.handle_timeout(Instant::now()),
        }
    }
}
