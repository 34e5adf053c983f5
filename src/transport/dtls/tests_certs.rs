//! The sans-IO server with certificates, against in-memory dimpl clients
//! holding rcgen certificates.

use std::sync::Arc;
use std::time::Instant;

use dimpl::{Config, Dtls, DtlsCertificate};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, IsCa, KeyPair,
};

use super::certs::ServerCertificates;
use super::server::{DtlsServer, DtlsServerSettings};
use super::tests::{KEY, addr, client, drain, handshake, table};

/// A CA, and what it issues, as DER for clients and PEM files for the server.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    fn new(cn: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, cn);
        Pki {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn issue(&self, cn: &str, sans: &[&str]) -> (String, String, DtlsCertificate) {
        let key = KeyPair::generate().unwrap();
        let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = DistinguishedName::new();
        if !cn.is_empty() {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let der = DtlsCertificate {
            certificate: cert.der().to_vec(),
            private_key: key.serialize_der(),
        };
        (cert.pem(), key.serialize_pem(), der)
    }

    /// Server certificates for a socket trusting this CA.
    fn server(&self, use_identity_as_username: bool) -> Arc<ServerCertificates> {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = self.issue("gateway", &["localhost"]);
        let (c, k, ca) = (
            dir.path().join("c.pem"),
            dir.path().join("k.pem"),
            dir.path().join("ca.pem"),
        );
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        std::fs::write(&ca, self.ca.pem()).unwrap();
        Arc::new(ServerCertificates::load(&c, &k, &ca, use_identity_as_username).unwrap())
    }
}

fn cert_client(cert: DtlsCertificate, v13: bool, now: Instant) -> Dtls {
    let config = Arc::new(Config::default());
    let mut c = if v13 {
        Dtls::new_13(config, cert, now)
    } else {
        Dtls::new_12(config, cert, now)
    };
    c.set_active(true);
    c.handle_timeout(now).unwrap();
    c
}

fn cert_server(pki: &Pki, with_psk: bool, use_identity_as_username: bool) -> DtlsServer {
    let psk = with_psk.then(table);
    let certs = Some(pki.server(use_identity_as_username));
    DtlsServer::with_credentials(psk, certs, DtlsServerSettings::new(4)).unwrap()
}

fn received_identity(s: &mut DtlsServer, c: &mut Dtls) -> super::link::SecureDatagram {
    c.send_application_data(b"\x02\x16").unwrap();
    for p in drain(c).0 {
        s.handle_datagram(Instant::now(), addr(1), &p);
    }
    s.poll_received().unwrap()
}

#[test]
fn a_dtls12_certificate_handshake_names_the_sensor_by_its_subject_cn() {
    let now = Instant::now();
    let pki = Pki::new("sensors");
    let mut s = cert_server(&pki, false, true);
    let mut c = cert_client(pki.issue("sensor-9", &[]).2, false, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
    assert_eq!(c.protocol_version(), Some(dimpl::ProtocolVersion::DTLS1_2));
    let got = received_identity(&mut s, &mut c);
    assert_eq!(&*got.identity.name, "sensor-9");
    assert_eq!(&*got.identity.client_id, "sensor-9");
    assert_eq!(got.identity.username.as_deref(), Some("sensor-9"));
}

#[test]
fn a_dtls13_certificate_handshake_is_accepted_too() {
    let now = Instant::now();
    let pki = Pki::new("sensors");
    let mut s = cert_server(&pki, false, true);
    let mut c = cert_client(pki.issue("sensor-13", &[]).2, true, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
    assert_eq!(c.protocol_version(), Some(dimpl::ProtocolVersion::DTLS1_3));
    assert_eq!(
        &*received_identity(&mut s, &mut c).identity.name,
        "sensor-13"
    );
}

#[test]
fn without_use_identity_as_username_the_acl_sees_no_username() {
    let now = Instant::now();
    let pki = Pki::new("sensors");
    let mut s = cert_server(&pki, false, false);
    let mut c = cert_client(pki.issue("sensor-9", &[]).2, false, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
    let got = received_identity(&mut s, &mut c);
    assert_eq!(&*got.identity.client_id, "sensor-9");
    assert_eq!(got.identity.username, None);
}

#[test]
fn a_certificate_without_a_cn_is_named_by_its_san() {
    let now = Instant::now();
    let pki = Pki::new("sensors");
    let mut s = cert_server(&pki, false, true);
    let mut c = cert_client(pki.issue("", &["sensor-7.example"]).2, false, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
    assert_eq!(
        &*received_identity(&mut s, &mut c).identity.name,
        "sensor-7.example"
    );
}

#[test]
fn a_client_certificate_from_another_ca_never_establishes_a_session() {
    let now = Instant::now();
    let (ours, theirs) = (Pki::new("sensors"), Pki::new("intruders"));
    let mut s = cert_server(&ours, false, true);
    let mut c = cert_client(theirs.issue("sensor-9", &[]).2, false, now);
    assert!(!handshake(&mut s, &mut c, addr(1), now));
    assert_eq!(s.session_count(), 0);
    assert_eq!(s.handshake_count(), 0);
    assert_eq!(s.stats().failed, 1);
}

#[test]
fn a_dtls13_client_certificate_from_another_ca_is_refused_too() {
    let now = Instant::now();
    let (ours, theirs) = (Pki::new("sensors"), Pki::new("intruders"));
    let mut s = cert_server(&ours, false, true);
    let mut c = cert_client(theirs.issue("sensor-9", &[]).2, true, now);
    // A DTLS 1.3 client counts itself connected once its last flight is out.
    handshake(&mut s, &mut c, addr(1), now);
    assert_eq!(s.session_count(), 0);
    assert_eq!(s.stats().failed, 1);
}

#[test]
fn a_socket_with_certificates_and_psk_accepts_both_kinds_of_sensor() {
    let now = Instant::now();
    let pki = Pki::new("sensors");
    let mut s = cert_server(&pki, true, true);
    let mut psk = client(b"dev1", &KEY, now);
    assert!(handshake(&mut s, &mut psk, addr(1), now));
    assert_eq!(
        &*received_identity(&mut s, &mut psk).identity.client_id,
        "sensor-1"
    );
    let mut cert = cert_client(pki.issue("sensor-9", &[]).2, false, now);
    assert!(handshake(&mut s, &mut cert, addr(2), now));
    assert_eq!(s.session_count(), 2);
}

#[test]
fn dtls13_hello_retry_requests_do_not_take_handshake_slots() {
    let now = Instant::now();
    let pki = Pki::new("sensors");
    let mut s = cert_server(&pki, false, true);
    let cert = pki.issue("sensor-9", &[]).2;
    let hello = drain(&mut cert_client(cert.clone(), true, now)).0.remove(0);
    // Spoofed first ClientHellos from many ports: each only gets a cookie.
    for port in 100..200 {
        s.handle_datagram(now, addr(port), &hello);
    }
    assert_eq!(s.stats().refused, 0);
    // A real sensor still completes: the 4 slots were never taken.
    let mut c = cert_client(cert, true, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
}

#[test]
fn a_certificate_named_like_a_psk_identity_of_the_socket_is_refused() {
    let now = Instant::now();
    let pki = Pki::new("sensors");
    let mut s = cert_server(&pki, true, true);
    let mut c = cert_client(pki.issue("dev1", &[]).2, false, now);
    assert!(!handshake(&mut s, &mut c, addr(1), now));
    assert_eq!(s.session_count(), 0);
    assert_eq!(s.stats().failed, 1);
}

#[test]
fn dtls12_client_hellos_on_a_certificate_socket_only_get_a_cookie() {
    let now = Instant::now();
    let pki = Pki::new("sensors");
    let mut s = cert_server(&pki, true, true);
    let cert = pki.issue("sensor-9", &[]).2;
    for (i, hello) in [
        drain(&mut client(b"dev1", &KEY, now)).0.remove(0),
        drain(&mut cert_client(cert.clone(), false, now))
            .0
            .remove(0),
    ]
    .iter()
    .enumerate()
    {
        for port in 0..300u16 {
            let from = addr(1000 * u16::try_from(i + 1).unwrap() + port);
            s.handle_datagram(now, from, hello);
        }
    }
    // Bounded by the unverified pool (256), none past the cookie exchange.
    assert!(s.handshake_count() <= 256, "{}", s.handshake_count());
    assert_eq!(s.stats().refused, 0);
    let mut c = cert_client(cert, false, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
}
