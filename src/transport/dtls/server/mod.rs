//! One DTLS session per peer address on one socket (sans-IO): DTLS 1.2 with
//! a PSK, or DTLS 1.2/1.3 with certificates when the socket has them.
//!
//! Defences, in order: a datagram from an address without a session must be
//! a well-formed ClientHello or it is dropped; the first ClientHello is
//! answered with a HelloVerifyRequest cookie (RFC 6347 §4.2.1) by a session in
//! an evicting "unverified" pool with a short life, so spoofed floods cost a
//! bounded amount of memory and never displace anything else; only a
//! ClientHello that returns a valid cookie (proof the peer receives at its
//! address) takes one of `max_handshakes` slots (in DTLS 1.3 the cookie rides
//! in an extension after a HelloRetryRequest, so the slot is taken when the
//! engine commits with a ServerHello); established sessions live in
//! their own table, untouched by handshakes (a new handshake from an
//! established address replaces the old session only once it completes).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dimpl::{Config, Dtls, PskResolver};
use rustls_pki_types::UnixTime;

use super::certs::ServerCertificates;
use super::engine::drain;
use super::link::SecureDatagram;
use super::psk::{PskTable, SharedPskTable};
use super::record;
use crate::gateway::PeerIdentity;

pub use super::settings::{DtlsConfigError, DtlsServerSettings, DtlsStats};

mod handshake;

/// How long a peer that has not returned its cookie is remembered.
const UNVERIFIED_LIFETIME: Duration = Duration::from_secs(5);
/// Overall deadline of one handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest record the engine is asked to produce.
const MTU: usize = 1400;

/// Remembers which identity the engine asked about during one `handle_packet`.
#[derive(Debug)]
struct Resolver {
    table: Arc<SharedPskTable>,
    asked: Mutex<Option<(Vec<u8>, bool)>>,
}

impl PskResolver for Resolver {
    fn resolve(&self, identity: &[u8]) -> Option<Vec<u8>> {
        let key = self.table.current().get(identity).map(|e| e.key.clone());
        if let Ok(mut asked) = self.asked.lock() {
            *asked = Some((identity.to_vec(), key.is_some()));
        }
        key
    }
}

impl Resolver {
    fn take(&self) -> Option<(Vec<u8>, bool)> {
        self.asked.lock().ok().and_then(|mut a| a.take())
    }
}

struct Handshake {
    dtls: Dtls,
    started: Instant,
    /// Past the cookie exchange: the engine sent ServerHello.
    verified: bool,
    /// The peer echoed a cookie, so it receives at its address (not spoofed).
    returned_cookie: bool,
    /// The PSK identity the client named, and whether it is in the table.
    asked: Option<(Vec<u8>, bool)>,
    /// The identity of a client certificate that passed verification.
    certified: Option<Arc<PeerIdentity>>,
    wake: Option<Instant>,
}

struct Session {
    dtls: Dtls,
    identity: Arc<PeerIdentity>,
    last_heard: Instant,
    wake: Option<Instant>,
}

/// The sans-IO DTLS server of one listener.
pub struct DtlsServer {
    config: Arc<Config>,
    resolver: Arc<Resolver>,
    certificates: Option<Arc<ServerCertificates>>,
    settings: DtlsServerSettings,
    handshakes: HashMap<SocketAddr, Handshake>,
    sessions: HashMap<SocketAddr, Session>,
    transmits: VecDeque<(SocketAddr, Bytes)>,
    received: VecDeque<SecureDatagram>,
    stats: DtlsStats,
    buf: Vec<u8>,
    refusal_log: Option<Instant>,
}

impl std::fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsServer")
            .field("handshakes", &self.handshakes.len())
            .field("sessions", &self.sessions.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl DtlsServer {
    /// A server that accepts the identities of `table` (DTLS 1.2, PSK_AES128_CCM_8).
    pub fn new(
        table: Arc<PskTable>,
        settings: DtlsServerSettings,
    ) -> Result<DtlsServer, DtlsConfigError> {
        DtlsServer::with_credentials(Some(table), None, settings)
    }

    /// A server that accepts PSK identities of `psk` (DTLS 1.2) and/or client
    /// certificates verified by `certificates` (DTLS 1.2 and 1.3, ECDHE-ECDSA;
    /// a client certificate is always required on those suites). The client's
    /// cipher suites pick between the two.
    pub fn with_credentials(
        psk: Option<Arc<PskTable>>,
        certificates: Option<Arc<ServerCertificates>>,
        settings: DtlsServerSettings,
    ) -> Result<DtlsServer, DtlsConfigError> {
        if psk.is_none() && certificates.is_none() {
            return Err(DtlsConfigError(
                "neither a PSK table nor certificates".to_owned(),
            ));
        }
        let resolver = Arc::new(Resolver {
            table: Arc::new(SharedPskTable::new(psk.clone().unwrap_or_default())),
            asked: Mutex::new(None),
        });
        let mut builder = Config::builder()
            .mtu(MTU)
            .handshake_timeout(HANDSHAKE_TIMEOUT)
            // Only applies to certificate suites: an anonymous sensor would
            // have no identity to bind its client id to.
            .require_client_certificate(true);
        if psk.is_some() {
            builder = builder.with_psk_server(None, resolver.clone());
        }
        let config = builder
            .build()
            .map_err(|e| DtlsConfigError(e.to_string()))?;
        Ok(DtlsServer {
            config: Arc::new(config),
            resolver,
            certificates,
            settings,
            handshakes: HashMap::new(),
            sessions: HashMap::new(),
            transmits: VecDeque::new(),
            received: VecDeque::new(),
            stats: DtlsStats::default(),
            buf: vec![0; 2048],
            refusal_log: None,
        })
    }

    /// The PSK table new handshakes use; replacing its contents leaves
    /// established sessions as they are.
    pub fn psk_table(&self) -> Arc<SharedPskTable> {
        self.resolver.table.clone()
    }

    /// Counters.
    pub fn stats(&self) -> DtlsStats {
        self.stats
    }

    /// Established sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Handshakes in progress (verified and not).
    pub fn handshake_count(&self) -> usize {
        self.handshakes.len()
    }

    /// The next datagram to send on the socket.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Bytes)> {
        self.transmits.pop_front()
    }

    /// The next decrypted datagram for the gateway.
    pub fn poll_received(&mut self) -> Option<SecureDatagram> {
        self.received.pop_front()
    }

    /// When [`DtlsServer::handle_timeout`] should run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let hs = self.handshakes.values().filter_map(|h| {
            let expiry = (!h.verified).then(|| h.started + UNVERIFIED_LIFETIME);
            match (h.wake, expiry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        });
        let ss = self.sessions.values().map(|s| {
            let idle = s.last_heard + self.settings.idle_timeout;
            s.wake.map_or(idle, |w| w.min(idle))
        });
        hs.chain(ss).min()
    }

    /// One datagram from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if let Some(cookie_len) = record::client_hello_cookie_len(datagram) {
            self.on_client_hello(now, from, datagram, cookie_len);
            return;
        }
        let ct = record::content_type(datagram);
        if ct == Some(record::APPLICATION_DATA) && self.sessions.contains_key(&from) {
            self.feed_session(now, from, datagram);
        } else if self.handshakes.contains_key(&from) {
            self.feed_handshake(now, from, datagram);
        } else if self.sessions.contains_key(&from) {
            self.feed_session(now, from, datagram);
        } else {
            self.stats.dropped += 1;
            tracing::debug!(peer = %from, len = datagram.len(), "DTLS datagram from a peer without a session: dropped");
        }
    }

    /// Encrypts `payload` for the session at `to`; dropped without one.
    pub fn send(&mut self, now: Instant, to: SocketAddr, payload: &[u8]) {
        let Some(s) = self.sessions.get_mut(&to) else {
            tracing::debug!(peer = %to, "no DTLS session for an outgoing datagram: dropped");
            return;
        };
        let r = s
            .dtls
            .handle_timeout(now)
            .and_then(|()| s.dtls.send_application_data(payload));
        if let Err(e) = r {
            self.end_session(to, &format!("send failed: {e}"));
            return;
        }
        self.after_session_io(to);
    }

    /// Runs retransmission timers and forgets expired peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<SocketAddr> = self
            .handshakes
            .iter()
            .filter(|(_, h)| {
                h.wake.is_some_and(|w| w <= now)
                    || (!h.verified && now >= h.started + UNVERIFIED_LIFETIME)
            })
            .map(|(a, _)| *a)
            .collect();
        for addr in due {
            let Some(h) = self.handshakes.get_mut(&addr) else {
                continue;
            };
            if !h.verified && now >= h.started + UNVERIFIED_LIFETIME {
                // A spoofed or abandoned first ClientHello: nothing to log per peer.
                self.handshakes.remove(&addr);
                continue;
            }
            if let Err(e) = h.dtls.handle_timeout(now) {
                self.fail_handshake(addr, &e.to_string());
                continue;
            }
            self.after_handshake_io(now, addr);
        }
        let idle = self.settings.idle_timeout;
        let due: Vec<SocketAddr> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.wake.is_some_and(|w| w <= now) || now >= s.last_heard + idle)
            .map(|(a, _)| *a)
            .collect();
        for addr in due {
            let Some(s) = self.sessions.get_mut(&addr) else {
                continue;
            };
            if now >= s.last_heard + idle {
                self.end_session(addr, "idle");
                continue;
            }
            if let Err(e) = s.dtls.handle_timeout(now) {
                self.end_session(addr, &e.to_string());
                continue;
            }
            self.after_session_io(addr);
        }
    }

    fn feed_session(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Some(s) = self.sessions.get_mut(&from) else {
            return;
        };
        let r = s
            .dtls
            .handle_timeout(now)
            .and_then(|()| s.dtls.handle_packet(datagram));
        if let Err(e) = r {
            self.end_session(from, &e.to_string());
            return;
        }
        if self.after_session_io(from)
            && let Some(s) = self.sessions.get_mut(&from)
        {
            s.last_heard = now;
        }
    }

    /// Collects the engine's output; true when application data arrived.
    fn after_session_io(&mut self, from: SocketAddr) -> bool {
        let Some(s) = self.sessions.get_mut(&from) else {
            return false;
        };
        let d = drain(&mut s.dtls, &mut self.buf);
        s.wake = d.wake;
        let got = !d.data.is_empty();
        for payload in d.data {
            self.received.push_back(SecureDatagram {
                addr: from,
                identity: s.identity.clone(),
                payload,
            });
        }
        for p in d.packets {
            self.transmits.push_back((from, p));
        }
        if d.closed {
            self.end_session(from, "close_notify from the peer");
        }
        got
    }

    fn end_session(&mut self, addr: SocketAddr, why: &str) {
        if let Some(s) = self.sessions.remove(&addr) {
            tracing::info!(peer = %addr, identity = %s.identity, reason = why, "DTLS session ended");
        }
    }
}

/// Certificate validity is a calendar matter, the one reading of the wall
/// clock in this module; the engine's timers use the `Instant`s passed in.
fn wall_clock() -> UnixTime {
    UnixTime::now()
}
