//! TLS for the `mqtts` and `wss` listeners (rustls with the ring provider).
//!
//! [`TlsSettings`] holds the listener's current `ServerConfig` behind a lock;
//! [`TlsSettings::reload`] re-reads the PEM files and swaps it, so renewed
//! certificates apply to new connections while existing ones carry on.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::ListenerConfig;

/// Why a listener's TLS settings could not be loaded.
#[derive(Debug, Error)]
pub enum TlsError {
    /// `certfile` or `keyfile` is missing from the listener.
    #[error("TLS listener needs `certfile` and `keyfile`")]
    MissingFiles,
    /// A PEM file could not be read or holds nothing usable.
    #[error("{path}: {why}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// rustls refused the combination (e.g. key does not match certificate).
    #[error("TLS setup: {0}")]
    Rustls(String),
}

#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
    require_certificate: bool,
}

/// A TLS listener's certificates, reloadable.
#[derive(Debug)]
pub struct TlsSettings {
    files: Files,
    current: RwLock<Arc<ServerConfig>>,
}

impl TlsSettings {
    /// Loads the certificate, key and optional CA named by `listener`.
    pub fn load(listener: &ListenerConfig) -> Result<TlsSettings, TlsError> {
        let (Some(cert), Some(key)) = (&listener.certfile, &listener.keyfile) else {
            return Err(TlsError::MissingFiles);
        };
        let files = Files {
            cert: cert.clone(),
            key: key.clone(),
            ca: listener.cafile.clone(),
            require_certificate: listener.require_certificate,
        };
        let config = build(&files)?;
        Ok(TlsSettings {
            files,
            current: RwLock::new(Arc::new(config)),
        })
    }

    /// Re-reads the PEM files; on error the running configuration stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let config = Arc::new(build(&self.files)?);
        match self.current.write() {
            Ok(mut g) => *g = config,
            Err(p) => *p.into_inner() = config,
        }
        Ok(())
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let config = match self.current.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        };
        TlsAcceptor::from(config)
    }

    /// Runs the server handshake, bounded by `timeout` so a silent peer
    /// cannot hold a connection slot.
    pub async fn accept<S>(&self, stream: S, timeout: Duration) -> std::io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(timeout, self.acceptor().accept(stream)).await {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn file_error(path: &Path, why: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no CERTIFICATE found"));
    }
    Ok(certs)
}

fn build(files: &Files) -> Result<ServerConfig, TlsError> {
    let chain = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| file_error(&files.key, e))?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match &files.ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots.add(c).map_err(|e| file_error(ca, e))?;
            }
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            // Without require_certificate a certificate is optional, but one
            // that is presented must still chain to the CA.
            let v = if files.require_certificate {
                v
            } else {
                v.allow_unauthenticated()
            };
            let verifier = v.build().map_err(|e| TlsError::Rustls(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(e.to_string()))
}

/// The identity of the client's certificate, if it sent one (see
/// [`certificate_identity`]).
pub fn client_common_name<S>(stream: &TlsStream<S>) -> Option<String> {
    let (_, conn) = stream.get_ref();
    let cert = conn.peer_certificates()?.first()?;
    certificate_identity(cert.as_ref())
}

/// The identity a certificate (DER) names: its subject CN, or when it has
/// none its first DNS, e-mail or URI subject alternative name. Shared by the
/// MQTT TLS listeners and the DTLS sockets so both name a device alike.
pub fn certificate_identity(der: &[u8]) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(der).ok()?;
    if let Some(cn) = parsed.subject().iter_common_name().next() {
        return cn.as_str().ok().map(str::to_string);
    }
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|n| match n {
        GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => {
            Some((*s).to_string())
        }
        _ => None,
    })
}

/// PEM certificates of `path`, in file order; an error when there is none.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    read_certs(path)
}

/// The private key of `path` (PEM: PKCS#8, SEC1 or PKCS#1).
pub fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| file_error(path, e))
}

/// A verifier of client certificates chaining to the CAs of `cafile`, as
/// the MQTT TLS listener uses with `require_certificate = true`.
pub fn client_verifier(
    cafile: &Path,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in read_certs(cafile)? {
        roots.add(c).map_err(|e| file_error(cafile, e))?;
    }
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| TlsError::Rustls(e.to_string()))
}
