//! The handshake side of [`DtlsServer`]: the cookie exchange, the pool of
//! unverified peers, the `max_handshakes` slots, and the promotion of a
//! finished handshake to a session.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dimpl::Dtls;

use super::{DtlsServer, Handshake, Session, wall_clock};
use crate::transport::dtls::engine::drain;
use crate::transport::dtls::link::SecureDatagram;
use crate::transport::dtls::record;

impl DtlsServer {
    pub(super) fn on_client_hello(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
        cookie_len: usize,
    ) {
        let verified = self.verified_count();
        if let Some(h) = self.handshakes.get_mut(&from) {
            if cookie_len > 0 && !h.verified && verified >= self.settings.max_handshakes {
                self.handshakes.remove(&from);
                self.refuse(now, from);
                return;
            }
            h.returned_cookie |= cookie_len > 0;
            self.feed_handshake(now, from, datagram);
            return;
        }
        if cookie_len > 0 {
            // A cookie we hold no state for (evicted, expired, or forged).
            self.stats.dropped += 1;
            tracing::debug!(peer = %from, "ClientHello with a cookie this server did not issue: dropped");
            return;
        }
        if self.handshakes.len() - self.verified_count() >= self.settings.max_unverified {
            self.evict_oldest_unverified();
        }
        let mut dtls = match &self.certificates {
            // Auto-sensing: DTLS 1.3 when offered, else 1.2 with a certificate
            // or PSK suite, whichever the client prefers.
            Some(c) => Dtls::new_auto(self.config.clone(), c.certificate(), now),
            None => Dtls::new_12_psk(self.config.clone(), now),
        };
        if let Err(e) = dtls.handle_timeout(now) {
            tracing::debug!(peer = %from, error = %e, "cannot start a DTLS handshake");
            return;
        }
        self.handshakes.insert(
            from,
            Handshake {
                dtls,
                started: now,
                verified: false,
                returned_cookie: false,
                asked: None,
                certified: None,
                wake: None,
            },
        );
        self.feed_handshake(now, from, datagram);
    }

    fn verified_count(&self) -> usize {
        self.handshakes.values().filter(|h| h.verified).count()
    }

    fn evict_oldest_unverified(&mut self) {
        let oldest = self
            .handshakes
            .iter()
            .filter(|(_, h)| !h.verified)
            .min_by_key(|(_, h)| h.started)
            .map(|(a, _)| *a);
        if let Some(a) = oldest {
            self.handshakes.remove(&a);
            self.stats.evicted += 1;
        }
    }

    fn refuse(&mut self, now: Instant, from: SocketAddr) {
        self.stats.refused += 1;
        // One line per second at most: a flood must not flood the log too.
        if self
            .refusal_log
            .is_none_or(|t| now.saturating_duration_since(t) >= Duration::from_secs(1))
        {
            self.refusal_log = Some(now);
            tracing::warn!(
                peer = %from,
                max_handshakes = self.settings.max_handshakes,
                refused_total = self.stats.refused,
                "DTLS handshake refused: max_handshakes in progress"
            );
        }
    }

    pub(super) fn feed_handshake(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        let Some(h) = self.handshakes.get_mut(&from) else {
            return;
        };
        self.resolver.take();
        let r = h
            .dtls
            .handle_timeout(now)
            .and_then(|()| h.dtls.handle_packet(datagram));
        if let Some(asked) = self.resolver.take() {
            h.asked = Some(asked);
        }
        if let Err(e) = r {
            self.fail_handshake(from, &e.to_string());
            return;
        }
        self.after_handshake_io(now, from);
    }

    pub(super) fn after_handshake_io(&mut self, now: Instant, from: SocketAddr) {
        let verified = self.verified_count();
        let Some(h) = self.handshakes.get_mut(&from) else {
            return;
        };
        let d = drain(&mut h.dtls, &mut self.buf);
        h.wake = d.wake;
        if !h.verified
            && d.packets
                .first()
                .is_some_and(|p| record::is_committing_server_hello(p))
        {
            // A DTLS 1.3 cookie returns inside the ClientHello, where the
            // cookie-length check in `on_client_hello` cannot see it.
            if verified >= self.settings.max_handshakes {
                self.handshakes.remove(&from);
                self.refuse(now, from);
                return;
            }
            h.verified = true;
            h.returned_cookie = true;
        }
        if let Some(der) = &d.peer_cert {
            let checked = match &self.certificates {
                Some(c) => c.identify(der, wall_clock()),
                None => Err("certificates are not accepted on this socket".to_owned()),
            };
            // Identities are compared by name: a certificate must not pass
            // for a PSK device of this socket.
            let checked = checked.and_then(|id| {
                match self.resolver.table.current().get(id.name.as_bytes()) {
                    Some(_) => Err(format!("{} is a PSK identity of this socket", id.name)),
                    None => Ok(id),
                }
            });
            match checked {
                Ok(id) => h.certified = Some(id),
                Err(why) => {
                    // Nothing more is sent: the handshake never completes.
                    self.refuse_certificate(from, &why);
                    return;
                }
            }
        }
        for p in d.packets {
            self.transmits.push_back((from, p));
        }
        if d.closed {
            self.fail_handshake(from, "peer closed the handshake");
            return;
        }
        if !d.connected {
            return;
        }
        let Some(h) = self.handshakes.remove(&from) else {
            return;
        };
        let table = self.resolver.table.current();
        let psk = h
            .asked
            .as_ref()
            .and_then(|(name, _)| table.get(name))
            .map(|e| e.identity.clone());
        let Some(identity) = h.certified.clone().or(psk) else {
            // The engine requires a client certificate or a known PSK, so this
            // is unreachable; refuse rather than guess.
            self.stats.failed += 1;
            tracing::warn!(peer = %from, "DTLS handshake completed without a PSK identity or client certificate: dropped");
            return;
        };
        let how = if h.certified.is_some() {
            "certificate"
        } else {
            "psk"
        };
        let version = match h.dtls.protocol_version() {
            Some(dimpl::ProtocolVersion::DTLS1_3) => "1.3",
            _ => "1.2",
        };
        self.stats.handshakes += 1;
        if let Some(old) = self.sessions.get(&from) {
            tracing::info!(peer = %from, old = %old.identity, new = %identity, auth = how, version, "DTLS session renewed by a new handshake");
        } else {
            tracing::info!(peer = %from, identity = %identity, auth = how, version, "DTLS session established");
        }
        if self.sessions.len() >= self.settings.max_sessions && !self.sessions.contains_key(&from) {
            self.evict_idlest_session();
        }
        for payload in d.data {
            self.received.push_back(SecureDatagram {
                addr: from,
                identity: identity.clone(),
                payload,
            });
        }
        self.sessions.insert(
            from,
            Session {
                dtls: h.dtls,
                identity,
                last_heard: now,
                wake: d.wake,
            },
        );
    }

    fn evict_idlest_session(&mut self) {
        let idlest = self
            .sessions
            .iter()
            .min_by_key(|(_, s)| s.last_heard)
            .map(|(a, _)| *a);
        if let Some(a) = idlest {
            self.end_session(a, "session limit reached, idlest session evicted");
        }
    }

    fn refuse_certificate(&mut self, from: SocketAddr, why: &str) {
        if self.handshakes.remove(&from).is_some() {
            self.stats.failed += 1;
            tracing::warn!(peer = %from, reason = why, "DTLS handshake refused: client certificate not accepted");
        }
    }

    pub(super) fn fail_handshake(&mut self, from: SocketAddr, error: &str) {
        let Some(h) = self.handshakes.remove(&from) else {
            return;
        };
        self.stats.failed += 1;
        match &h.asked {
            Some((name, false)) => tracing::warn!(
                peer = %from,
                identity = %String::from_utf8_lossy(name),
                "DTLS handshake refused: unknown PSK identity"
            ),
            Some((name, true)) => tracing::warn!(
                peer = %from,
                identity = %String::from_utf8_lossy(name),
                error,
                "DTLS handshake failed: wrong PSK for this identity or a protocol error"
            ),
            // E.g. no client certificate on a certificate suite.
            None if h.verified || h.returned_cookie => {
                tracing::warn!(peer = %from, error, "DTLS handshake failed")
            }
            None => {
                tracing::debug!(peer = %from, error, "DTLS handshake abandoned before the cookie exchange")
            }
        }
    }
}
