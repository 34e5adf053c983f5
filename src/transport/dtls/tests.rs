//! The sans-IO server against in-memory dimpl clients: datagrams are carried
//! by hand and time is a virtual clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dimpl::{Config, Dtls, Output, PskResolver};

use super::psk::PskTable;
use super::server::{DtlsServer, DtlsServerSettings};

pub(super) const KEY: [u8; 16] = [7; 16];

struct Key(Vec<u8>);

impl PskResolver for Key {
    fn resolve(&self, _identity: &[u8]) -> Option<Vec<u8>> {
        Some(self.0.clone())
    }
}

pub(super) fn table() -> Arc<PskTable> {
    Arc::new(PskTable::parse("dev1:07070707070707070707070707070707:sensor-1:kitchen\n").unwrap())
}

fn server(settings: DtlsServerSettings) -> DtlsServer {
    DtlsServer::new(table(), settings).unwrap()
}

pub(super) fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

pub(super) fn client(identity: &[u8], key: &[u8], now: Instant) -> Dtls {
    let config = Config::builder()
        .with_psk_client(identity.to_vec(), Arc::new(Key(key.to_vec())))
        .build()
        .unwrap();
    let mut c = Dtls::new_12_psk(Arc::new(config), now);
    c.set_active(true);
    c.handle_timeout(now).unwrap();
    c
}

/// Client output: its datagrams, plaintext received, and whether it connected.
pub(super) fn drain(c: &mut Dtls) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, bool) {
    let mut buf = vec![0u8; 4096];
    let (mut out, mut data, mut connected) = (Vec::new(), Vec::new(), false);
    loop {
        match c.poll_output(&mut buf) {
            Output::Packet(p) => out.push(p.to_vec()),
            Output::ApplicationData(d) => data.push(d.to_vec()),
            Output::BufferTooSmall { needed } => buf.resize(needed, 0),
            Output::Connected => connected = true,
            Output::Timeout(_) => return (out, data, connected),
            _ => {}
        }
    }
}

/// Runs the handshake of `c` at `from` to completion; false if it stalls.
pub(super) fn handshake(s: &mut DtlsServer, c: &mut Dtls, from: SocketAddr, now: Instant) -> bool {
    for _ in 0..10 {
        let (out, _, connected) = drain(c);
        if connected {
            // Deliver the client's last flight too.
            for p in out {
                s.handle_datagram(now, from, &p);
            }
            return true;
        }
        for p in out {
            s.handle_datagram(now, from, &p);
        }
        while let Some((to, p)) = s.poll_transmit() {
            if to == from {
                c.handle_packet(&p).unwrap();
            }
        }
    }
    false
}

#[test]
fn a_psk_handshake_delivers_plaintext_with_the_bound_identity() {
    let now = Instant::now();
    let mut s = server(DtlsServerSettings::new(4));
    let mut c = client(b"dev1", &KEY, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
    assert_eq!(s.session_count(), 1);
    c.send_application_data(b"\x02\x16").unwrap();
    for p in drain(&mut c).0 {
        s.handle_datagram(now, addr(1), &p);
    }
    let got = s.poll_received().unwrap();
    assert_eq!(&got.payload[..], b"\x02\x16");
    assert_eq!(&*got.identity.name, "dev1");
    assert_eq!(&*got.identity.client_id, "sensor-1");
    assert_eq!(got.identity.username.as_deref(), Some("kitchen"));
}

#[test]
fn the_server_encrypts_what_the_gateway_sends_to_a_session() {
    let now = Instant::now();
    let mut s = server(DtlsServerSettings::new(4));
    let mut c = client(b"dev1", &KEY, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
    s.send(now, addr(1), b"\x03\x05\x00");
    while let Some((_, p)) = s.poll_transmit() {
        assert_ne!(&p[..], b"\x03\x05\x00");
        c.handle_packet(&p).unwrap();
    }
    assert_eq!(drain(&mut c).1, vec![b"\x03\x05\x00".to_vec()]);
}

#[test]
fn a_wrong_key_never_establishes_a_session() {
    let now = Instant::now();
    let mut s = server(DtlsServerSettings::new(4));
    let mut c = client(b"dev1", &[8; 16], now);
    handshake(&mut s, &mut c, addr(1), now);
    assert_eq!(s.session_count(), 0);
    assert_eq!(s.stats().failed, 1);
}

#[test]
fn an_unknown_identity_never_establishes_a_session() {
    let now = Instant::now();
    let mut s = server(DtlsServerSettings::new(4));
    let mut c = client(b"nobody", &KEY, now);
    handshake(&mut s, &mut c, addr(1), now);
    assert_eq!(s.session_count(), 0);
    assert_eq!(s.stats().failed, 1);
}

fn first_client_hello(now: Instant) -> Vec<u8> {
    let mut c = client(b"dev1", &KEY, now);
    drain(&mut c).0.remove(0)
}

#[test]
fn first_client_hellos_from_many_addresses_hold_bounded_state() {
    let now = Instant::now();
    let mut settings = DtlsServerSettings::new(4);
    settings.max_unverified = 256;
    let mut s = server(settings);
    let ch = first_client_hello(now);
    for port in 0..2000u16 {
        s.handle_datagram(now, addr(10_000 + port), &ch);
    }
    assert!(s.handshake_count() <= 256);
    assert_eq!(s.stats().evicted, 2000 - 256);
    // Each got a HelloVerifyRequest and nothing more.
    assert_eq!(std::iter::from_fn(|| s.poll_transmit()).count(), 2000);
}

#[test]
fn unverified_peers_are_forgotten_after_a_few_seconds() {
    let now = Instant::now();
    let mut s = server(DtlsServerSettings::new(4));
    s.handle_datagram(now, addr(2), &first_client_hello(now));
    assert_eq!(s.handshake_count(), 1);
    s.handle_timeout(now + Duration::from_secs(6));
    assert_eq!(s.handshake_count(), 0);
}

#[test]
fn datagrams_that_are_not_a_client_hello_from_unknown_peers_are_dropped() {
    let now = Instant::now();
    let mut s = server(DtlsServerSettings::new(4));
    for junk in [
        &b""[..],
        b"\x17\xfe\xfd\x00\x01",
        &[22u8; 80],
        b"\x16\xfe\xfd\x00\x00",
    ] {
        s.handle_datagram(now, addr(3), junk);
    }
    assert_eq!(s.handshake_count(), 0);
    assert!(s.poll_transmit().is_none());
    assert_eq!(s.stats().dropped, 4);
}

#[test]
fn a_new_handshake_from_an_established_address_replaces_the_session_when_it_completes() {
    let now = Instant::now();
    let mut s = server(DtlsServerSettings::new(4));
    let mut old = client(b"dev1", &KEY, now);
    assert!(handshake(&mut s, &mut old, addr(1), now));
    let mut new = client(b"dev1", &KEY, now);
    assert!(handshake(&mut s, &mut new, addr(1), now));
    assert_eq!(s.session_count(), 1);
    assert_eq!(s.stats().handshakes, 2);
    new.send_application_data(b"x").unwrap();
    for p in drain(&mut new).0 {
        s.handle_datagram(now, addr(1), &p);
    }
    assert!(s.poll_received().is_some());
}

#[test]
fn an_idle_session_is_forgotten_after_the_idle_timeout() {
    let now = Instant::now();
    let mut settings = DtlsServerSettings::new(4);
    settings.idle_timeout = Duration::from_secs(60);
    let mut s = server(settings);
    let mut c = client(b"dev1", &KEY, now);
    assert!(handshake(&mut s, &mut c, addr(1), now));
    s.handle_timeout(now + Duration::from_secs(61));
    assert_eq!(s.session_count(), 0);
}

#[test]
fn a_replaced_psk_table_admits_new_identities_and_keeps_established_sessions() {
    let now = Instant::now();
    let mut s = server(DtlsServerSettings::new(4));
    let mut old = client(b"dev1", &KEY, now);
    assert!(handshake(&mut s, &mut old, addr(1), now));
    // The reloaded file drops dev1 and lists dev2.
    let file = "dev2:09090909090909090909090909090909\n";
    s.psk_table()
        .replace(Arc::new(PskTable::parse(file).unwrap()));
    let mut new = client(b"dev2", &[9; 16], now);
    assert!(handshake(&mut s, &mut new, addr(2), now));
    let mut gone = client(b"dev1", &KEY, now);
    handshake(&mut s, &mut gone, addr(3), now);
    assert_eq!(s.session_count(), 2, "dev1's session stays, dev2 joins");
    old.send_application_data(b"\x02\x16").unwrap();
    for p in drain(&mut old).0 {
        s.handle_datagram(now, addr(1), &p);
    }
    assert_eq!(&*s.poll_received().unwrap().identity.name, "dev1");
}
