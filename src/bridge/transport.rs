//! Byte streams to the remote broker: plain TCP or TLS (rustls), with the
//! certificate material loaded once when the bridge starts.

use std::path::Path;
use std::sync::Arc;
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
use tracing::warn;

use crate::config::BridgeTlsConfig;

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
    /// The address is not `host:port`.
    #[error("address {0:?} is not host:port")]
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
        Ok(Connector { tls, timeout })
    }

    /// The limit on each connection stage.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Connects to `address` (`host:port`), with TLS if configured.
    pub async fn connect(&self, address: &str) -> Result<BoxStream, ConnectError> {
        let (host, _) = split_host_port(address)?;
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect(address))
            .await
            .map_err(|_| ConnectError::Timeout("TCP connect"))?
            .map_err(ConnectError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        // SNI and certificate name checks use the host as written in the config.
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| ConnectError::ServerName(host.to_owned()))?;
        let stream = tokio::time::timeout(self.timeout, tls.connect(server_name, tcp))
            .await
            .map_err(|_| ConnectError::Timeout("TLS handshake"))?
            .map_err(ConnectError::Tls)?;
        Ok(Box::new(stream))
    }
}

/// Splits `host:port`, removing the brackets of an IPv6 literal.
pub fn split_host_port(address: &str) -> Result<(&str, u16), ConnectError> {
    let bad = || ConnectError::BadAddress(address.to_owned());
    let (host, port) = address.rsplit_once(':').ok_or_else(bad)?;
    let port = port.parse().map_err(|_| bad())?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(bad());
    }
    Ok((host, port))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_are_split() {
        assert_eq!(split_host_port("a.b:8883").unwrap(), ("a.b", 8883));
        assert_eq!(split_host_port("[::1]:1883").unwrap(), ("::1", 1883));
        assert!(split_host_port("nohost").is_err());
        assert!(split_host_port(":1883").is_err());
    }
}
