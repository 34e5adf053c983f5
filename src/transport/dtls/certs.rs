//! Certificates for DTLS: the gateway's own, the CA its sensors' certificates
//! must chain to, and the identity a verified certificate names.
//!
//! The DTLS engine checks that the peer holds the key of the leaf certificate
//! it sent (CertificateVerify) but does no PKI validation; that is done here
//! with the same webpki verifiers and the same identity rule (subject CN, else
//! SAN) as the MQTT TLS listeners.

use std::path::Path;
use std::sync::Arc;

use dimpl::DtlsCertificate;
use rustls::RootCertStore;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::server::danger::ClientCertVerifier;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::gateway::PeerIdentity;
use crate::transport::tls::{self, TlsError};

/// The gateway side of certificate DTLS for one `[[gateway.dtls]]` socket.
pub struct ServerCertificates {
    certificate: DtlsCertificate,
    verifier: Arc<dyn ClientCertVerifier>,
    use_identity_as_username: bool,
}

impl std::fmt::Debug for ServerCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCertificates")
            .field("certificate", &self.certificate)
            .field("use_identity_as_username", &self.use_identity_as_username)
            .finish()
    }
}

impl ServerCertificates {
    /// Loads the gateway's certificate and key and the CA of the sensors.
    pub fn load(
        certfile: &Path,
        keyfile: &Path,
        cafile: &Path,
        use_identity_as_username: bool,
    ) -> Result<ServerCertificates, TlsError> {
        Ok(ServerCertificates {
            certificate: load_pair(certfile, keyfile)?,
            verifier: tls::client_verifier(cafile)?,
            use_identity_as_username,
        })
    }

    /// The certificate and key the engine presents.
    pub(super) fn certificate(&self) -> DtlsCertificate {
        self.certificate.clone()
    }

    /// Verifies a sensor's leaf certificate (DER) against the CA at wall-clock
    /// time `now` and names the identity it proves: the subject CN or SAN,
    /// bound to the client id of the same name, and to the ACL username of the
    /// same name with `use_identity_as_username` (anonymous to the ACL without).
    pub fn identify(&self, leaf: &[u8], now: UnixTime) -> Result<Arc<PeerIdentity>, String> {
        let der = CertificateDer::from(leaf);
        // The engine hands out the leaf only, so the chain is the leaf and a
        // CA of `cafile` (an intermediate listed there acts as a trust anchor).
        self.verifier
            .verify_client_cert(&der, &[], now)
            .map_err(|e| e.to_string())?;
        let name = tls::certificate_identity(leaf)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| "the certificate names no subject CN or SAN".to_owned())?;
        let name: Arc<str> = Arc::from(name.as_str());
        Ok(Arc::new(PeerIdentity {
            name: name.clone(),
            client_id: name.clone(),
            username: self.use_identity_as_username.then_some(name),
        }))
    }
}

/// The sensor side: its certificate and the CA the gateway's must chain to.
pub struct ClientCertificates {
    certificate: DtlsCertificate,
    verifier: Arc<WebPkiServerVerifier>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificates")
            .field("certificate", &self.certificate)
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl ClientCertificates {
    /// Loads the sensor's certificate and key and the CA of the gateway,
    /// whose certificate must name `server_name` (a host name or IP address).
    pub fn load(
        certfile: &Path,
        keyfile: &Path,
        cafile: &Path,
        server_name: &str,
    ) -> Result<ClientCertificates, TlsError> {
        let mut roots = RootCertStore::empty();
        for c in tls::read_certificates(cafile)? {
            roots.add(c).map_err(|e| file_error(cafile, e))?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| TlsError::Rustls(e.to_string()))?;
        let server_name = ServerName::try_from(server_name.to_owned())
            .map_err(|e| TlsError::Rustls(format!("{server_name:?}: {e}")))?;
        Ok(ClientCertificates {
            certificate: load_pair(certfile, keyfile)?,
            verifier,
            server_name,
        })
    }

    /// The certificate and key the engine presents.
    pub(super) fn certificate(&self) -> DtlsCertificate {
        self.certificate.clone()
    }

    /// Verifies the gateway's leaf certificate (DER) at wall-clock time `now`.
    pub fn check_server(&self, leaf: &[u8], now: UnixTime) -> Result<(), String> {
        let der = CertificateDer::from(leaf);
        self.verifier
            .verify_server_cert(&der, &[], &self.server_name, &[], now)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn file_error(path: &Path, why: impl ToString) -> TlsError {
    TlsError::File {
        path: path.to_path_buf(),
        why: why.to_string(),
    }
}

/// The first certificate of `certfile` and the key of `keyfile`, refused
/// early when the key is not ECDSA: the engine signs with ECDSA P-256/P-384
/// only (no RSA).
fn load_pair(certfile: &Path, keyfile: &Path) -> Result<DtlsCertificate, TlsError> {
    let chain = tls::read_certificates(certfile)?;
    let leaf = chain
        .into_iter()
        .next()
        .ok_or_else(|| file_error(certfile, "no CERTIFICATE found"))?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| file_error(certfile, e))?;
    let ec = x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY;
    if parsed.public_key().algorithm.algorithm != ec {
        return Err(file_error(
            certfile,
            "DTLS needs an ECDSA (P-256 or P-384) certificate; RSA is not supported",
        ));
    }
    let key = tls::read_private_key(keyfile)?;
    Ok(DtlsCertificate {
        certificate: leaf.as_ref().to_vec(),
        private_key: key.secret_der().to_vec(),
    })
}
