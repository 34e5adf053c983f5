//! Byte streams to the remote broker: plain TCP, TLS (rustls), or MQTT over
//! a WebSocket on either, with the certificate material loaded once when the
//! bridge starts.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, ring};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tracing::warn;

use crate::config::{BridgeTlsConfig, Endpoint, Scheme};
use crate::transport::websocket::WsByteStream;

/// A connected byte stream, TCP or TLS.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A boxed [`Stream`].
pub type BoxStream = Box<dyn Stream>;

/// The TLS settings of a bridge could not be loaded.
#[derive(Debug, Error)]
pub enum TlsSetupError {
    /// A PEM file could not be read or holds nothing usable.
    #[error("{what} {path}: {why}")]
    File {
        /// Which file.
        what: &'static str,
        /// Its path.
        path: String,
        /// What went wrong.
        why: String,
    },
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Why one connection attempt failed before MQTT started.
#[derive(Debug, Error)]
pub enum ConnectError {
    /// The address is neither `host:port` nor a `mqtt(s)://` or `ws(s)://` URL.
    #[error("{0}")]
    BadAddress(String),
    /// TCP connect failed (refused, unreachable, name not resolved).
    #[error("TCP connect failed: {0}")]
    Tcp(std::io::Error),
    /// The TLS handshake failed (certificate, name, ALPN…).
    #[error("TLS handshake failed: {0}")]
    Tls(std::io::Error),
    /// The host is not usable as a TLS server name.
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    /// The WebSocket upgrade was refused (HTTP status, missing `mqtt`
    /// subprotocol, wrong path…).
    #[error("WebSocket handshake failed: {0}")]
    WebSocket(String),
    /// A stage took longer than the connect timeout.
    #[error("{0} timed out")]
    Timeout(&'static str),
}

fn file_error(what: &'static str, path: &Path, why: impl ToString) -> TlsSetupError {
    TlsSetupError::File {
        what,
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

/// Opens streams to the remote broker's addresses.
#[derive(Clone)]
pub struct Connector {
    tls: Option<TlsConnector>,
    /// System roots, for `mqtts://` and `wss://` addresses of a bridge without
    /// a `tls` table; built on first use.
    default_tls: Arc<OnceLock<Result<TlsConnector, String>>>,
    timeout: Duration,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Connector {
    /// A connector for plain TCP, or TLS when `tls` is given; `name` is the
    /// bridge's name for the warning an insecure setting deserves.
    pub fn new(
        name: &str,
        tls: Option<&BridgeTlsConfig>,
        timeout: Duration,
    ) -> Result<Connector, TlsSetupError> {
        let tls = tls
            .map(|t| client_config(name, t).map(|c| TlsConnector::from(Arc::new(c))))
            .transpose()?;
        Ok(Connector {
            tls,
            default_tls: Arc::default(),
            timeout,
        })
    }

    /// The limit on each connection stage.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Connects to `address`: `host:port` (TLS if configured) or a
    /// `mqtt://`, `mqtts://`, `ws://` or `wss://` URL.
    pub async fn connect(&self, address: &str) -> Result<BoxStream, ConnectError> {
        let endpoint = Endpoint::parse(address).map_err(ConnectError::BadAddress)?;
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(endpoint.socket_address()))
            .await
            .map_err(|_| ConnectError::Timeout("TCP connect"))?
            .map_err(ConnectError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let tls = match endpoint.scheme {
            Scheme::HostPort => self.tls.clone(),
            Scheme::Mqtt | Scheme::Ws => None,
            Scheme::Mqtts | Scheme::Wss => Some(self.tls_for_url()?),
        };
        let stream: BoxStream = match tls {
            None => Box::new(tcp),
            Some(tls) => {
                // SNI and certificate name checks use the host as written in the config.
                let server_name = ServerName::try_from(endpoint.host.clone())
                    .map_err(|_| ConnectError::ServerName(endpoint.host.clone()))?;
                let stream = tokio::time::timeout(self.timeout, tls.connect(server_name, tcp))
                    .await
                    .map_err(|_| ConnectError::Timeout("TLS handshake"))?
                    .map_err(ConnectError::Tls)?;
                Box::new(stream)
            }
        };
        if !endpoint.scheme.is_websocket() {
            return Ok(stream);
        }
        tokio::time::timeout(self.timeout, websocket(stream, &endpoint))
            .await
            .map_err(|_| ConnectError::Timeout("WebSocket handshake"))?
    }

    /// The bridge's own TLS settings, or else the system roots.
    fn tls_for_url(&self) -> Result<TlsConnector, ConnectError> {
        if let Some(tls) = &self.tls {
            return Ok(tls.clone());
        }
        self.default_tls
            .get_or_init(|| {
                client_config("", &BridgeTlsConfig::default())
                    .map(|c| TlsConnector::from(Arc::new(c)))
                    .map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|e| ConnectError::Tls(std::io::Error::other(e)))
    }
}

/// Upgrades `stream` to a WebSocket carrying MQTT ([MQTT-6.0.0-3]: the
/// subprotocol is `mqtt`), and presents it as a byte stream.
async fn websocket(stream: BoxStream, endpoint: &Endpoint) -> Result<BoxStream, ConnectError> {
    let mut request = endpoint
        .websocket_url()
        .into_client_request()
        .map_err(|e| ConnectError::WebSocket(e.to_string()))?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    let (ws, _response) = tokio_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| ConnectError::WebSocket(e.to_string()))?;
    Ok(Box::new(WsByteStream::new(ws)))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn client_config(name: &str, t: &BridgeTlsConfig) -> Result<ClientConfig, TlsSetupError> {
    let builder =
        ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if t.insecure {
        warn!(
            "bridge {name}: tls.insecure = true: the remote broker's certificate is NOT checked; \
             anyone on the path can read and change this bridge's traffic. Use this for tests only."
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &t.cafile {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| file_error("cafile", path, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| file_error("cafile", path, e))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(file_error("cafile", path, "holds no usable certificate"));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&t.certfile, &t.keyfile) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| file_error("certfile", cert, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| file_error("certfile", cert, e))?;
            if chain.is_empty() {
                return Err(file_error("certfile", cert, "holds no certificate"));
            }
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| file_error("keyfile", key, e))?;
            builder.with_client_auth_cert(chain, key)?
        }
        _ => builder.with_no_client_auth(),
    };
    config.alpn_protocols = t.alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Ok(config)
}

/// Accepts any server certificate: `tls.insecure = true` only.
#[derive(Debug)]
struct NoVerification(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
