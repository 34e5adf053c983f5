//! Connection setup with the will prompts, clean-session rules, sleep and
//! wake-up (MQTT-SN 1.2 §6.3, §6.12, §6.14; digest §4.2, §4.3, §4.14).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::gateway::Gateway;
use super::identity::may_act_for;
use super::session::{Handshake, Session, Stage, State, WillData};
use super::topic_registry::valid_topic_name;
use crate::broker::{ClientKind, Command, ConnId, ConnectRequest, DisconnectKind, Outbox};
use crate::mqttsn::codec::{ConnectFlags, Message, ReturnCode, WillTopic};

impl Gateway {
    /// CONNECT from `addr` (digest §4.15 row CONNECT).
    pub(super) fn on_connect(
        &mut self,
        now: Instant,
        addr: super::address::SensorAddr,
        flags: ConnectFlags,
        protocol_id: u8,
        keep_alive: u16,
        client_id: Bytes,
    ) {
        let refuse = |gw: &mut Gateway, code| gw.send(&addr, &Message::ConnAck { code });
        if protocol_id != 0x01 {
            // G-19
            refuse(self, ReturnCode::NotSupported);
            return;
        }
        let Some(client_id) = valid_client_id(&client_id, self.settings.max_client_id_len) else {
            // G-20
            refuse(self, ReturnCode::NotSupported);
            return;
        };
        if let Some(id) = &self.identity
            && *id.client_id != *client_id
        {
            tracing::warn!(
                transport = %addr,
                identity = %id.name,
                client_id = %client_id,
                expected = %id.client_id,
                "CONNECT refused: the client id is not the one bound to the DTLS identity"
            );
            refuse(self, ReturnCode::NotSupported);
            return;
        }
        if let Some(owner) = self.owner_of(&client_id)
            && !may_act_for(Some(&owner), self.identity.as_deref())
        {
            tracing::warn!(
                transport = %addr,
                client_id = %client_id,
                owner = %owner,
                "CONNECT refused: the client id belongs to an authenticated identity"
            );
            refuse(self, ReturnCode::NotSupported);
            return;
        }
        if !self.broker_available {
            // G-21
            self.stats.refused_connects += 1;
            refuse(self, ReturnCode::Congestion);
            return;
        }
        // A different client at this address: its session ends without will
        // (digest §5.16, treated as a takeover).
        if let Some(&other) = self.by_addr.get(&addr)
            && self
                .sessions
                .get(&other)
                .is_some_and(|s| *s.client_id != *client_id)
        {
            self.with_session(other, |gw, s| {
                tracing::info!(
                    client_id = %s.client_id,
                    transport = %s.addr,
                    "MQTT-SN client {} disconnected: its address now belongs to {}.",
                    s.client_id,
                    client_id
                );
                let graceful = DisconnectKind::Graceful {
                    publish_will: false,
                    session_expiry: None,
                };
                gw.end_session(now, s, State::Disconnected, graceful);
                if gw.by_addr.get(&s.addr) == Some(&other) {
                    gw.by_addr.remove(&s.addr);
                }
            });
        }
        let key = match self.by_client.get(&*client_id) {
            Some(&k) => k,
            None => {
                if self.sessions.len() >= self.settings.max_sensors {
                    tracing::warn!(
                        max_sensors = self.settings.max_sensors,
                        "CONNECT refused: session limit reached"
                    );
                    self.stats.refused_connects += 1;
                    refuse(self, ReturnCode::Congestion);
                    return;
                }
                self.create_session(now, client_id.clone(), addr.clone())
            }
        };
        self.with_session(key, |gw, s| {
            gw.rebind(key, s, &addr);
            if let Some(id) = &gw.identity {
                s.identity = Some(id.name.clone());
                s.username = id.username.clone();
            }
            s.last_heard = now;
            gw.connect_session(now, s, flags, keep_alive);
        });
    }

    fn connect_session(
        &mut self,
        now: Instant,
        s: &mut Session,
        flags: ConnectFlags,
        keep_alive: u16,
    ) {
        // G-25: a retransmitted CONNECT shortly after CONNACK gets the same CONNACK.
        if s.state == State::Active
            && let Some((at, clean, will, ka)) = s.connack
            && now.saturating_duration_since(at) <= self.settings.retry_interval
            && (clean, will, ka) == (flags.clean_session, flags.will, keep_alive)
        {
            self.send(
                &s.addr.clone(),
                &Message::ConnAck {
                    code: ReturnCode::Accepted,
                },
            );
            return;
        }
        // A retransmitted CONNECT during setup: repeat the current prompt.
        if let State::Connecting(h) = &s.state
            && (h.clean, h.will_flag, h.keep_alive) == (flags.clean_session, flags.will, keep_alive)
        {
            let prompt = match h.stage {
                Stage::WillTopic => Some(Message::WillTopicReq),
                Stage::WillMsg => Some(Message::WillMsgReq),
                Stage::ConnAck => None,
            };
            if let Some(p) = prompt {
                self.send(&s.addr.clone(), &p);
            }
            return;
        }
        let live = s.is_live();
        let reuse_conn = live && !flags.clean_session;
        if !reuse_conn && s.conn.is_some() {
            // The old broker connection ends without will before the new one starts.
            self.detach(
                s,
                DisconnectKind::Graceful {
                    publish_will: false,
                    session_expiry: None,
                },
            );
        }
        if flags.clean_session {
            // G-22, G-26: subscriptions (in the core), will and normal ids go.
            s.topics.clear();
            s.rejected.clear();
            s.will = None;
            s.reset_connection_state();
        }
        s.expires_at = None;
        s.state = State::Connecting(Handshake {
            clean: flags.clean_session,
            will_flag: flags.will,
            keep_alive,
            stage: if flags.will {
                Stage::WillTopic
            } else {
                Stage::ConnAck
            },
            will: None,
            reuse_conn,
            deadline: now + self.settings.retry_interval,
            retries: 0,
        });
        if flags.will {
            self.send(&s.addr.clone(), &Message::WillTopicReq); // G-15
        } else {
            self.finish_handshake(now, s);
        }
    }

    /// WILLTOPIC during setup.
    pub(super) fn on_will_topic(&mut self, now: Instant, s: &mut Session, wt: Option<WillTopic>) {
        let State::Connecting(h) = &mut s.state else {
            return;
        };
        if h.stage != Stage::WillTopic {
            return;
        }
        match wt {
            // G-17, G-18: the empty form removes the will; CONNACK follows directly.
            None => {
                h.will = None;
                self.finish_handshake(now, s);
            }
            Some(wt) => {
                let Some(topic) = std::str::from_utf8(&wt.topic)
                    .ok()
                    .filter(|t| valid_topic_name(t))
                else {
                    if wt.topic.is_empty() {
                        // Digest §3.7: a zero-length topic reads as the empty form.
                        h.will = None;
                        self.finish_handshake(now, s);
                    } else {
                        self.send(
                            &s.addr.clone(),
                            &Message::ConnAck {
                                code: ReturnCode::NotSupported,
                            },
                        );
                        self.abandon_handshake(now, s);
                    }
                    return;
                };
                if !self
                    .access
                    .may_publish_as(&s.client_id, s.username.as_deref(), topic)
                {
                    // As for MQTT clients: a will the sensor could not publish
                    // itself refuses the connection (0x03, no retry invited).
                    self.stats.denied += 1;
                    tracing::info!(client_id = %s.client_id, topic, "CONNECT refused: will topic denied by the ACL");
                    self.send(
                        &s.addr.clone(),
                        &Message::ConnAck {
                            code: ReturnCode::NotSupported,
                        },
                    );
                    self.abandon_handshake(now, s);
                    return;
                }
                // G-16: will QoS and retain come from the WILLTOPIC flags.
                h.will = Some(WillData {
                    topic: Arc::from(topic),
                    qos: wt.qos,
                    retain: wt.retain,
                    message: Bytes::new(),
                });
                h.stage = Stage::WillMsg;
                h.deadline = now + self.settings.retry_interval;
                h.retries = 0;
                self.send(&s.addr.clone(), &Message::WillMsgReq);
            }
        }
    }

    /// WILLMSG during setup.
    pub(super) fn on_will_msg(&mut self, now: Instant, s: &mut Session, message: Bytes) {
        let State::Connecting(h) = &mut s.state else {
            return;
        };
        if h.stage != Stage::WillMsg {
            return;
        }
        if let Some(w) = &mut h.will {
            w.message = message;
        }
        self.finish_handshake(now, s);
    }

    /// WILLTOPIC with QoS bits 0b11 during setup: QoS −1 is not a will QoS, so
    /// the connection is refused with CONNACK 0x03 rather than left to time out
    /// (digest §5.9 [REC]).
    pub(super) fn refuse_will_qos(&mut self, now: Instant, s: &mut Session) {
        let State::Connecting(h) = &s.state else {
            return;
        };
        if h.stage != Stage::WillTopic {
            return;
        }
        tracing::info!(client_id = %s.client_id, "CONNECT refused: will QoS -1 is not supported");
        self.send(
            &s.addr.clone(),
            &Message::ConnAck {
                code: ReturnCode::NotSupported,
            },
        );
        self.abandon_handshake(now, s);
    }

    fn abandon_handshake(&mut self, now: Instant, s: &mut Session) {
        let kind = DisconnectKind::Graceful {
            publish_will: false,
            session_expiry: None,
        };
        self.end_session(now, s, State::Disconnected, kind);
    }

    /// Will collected (or not asked for): attach to the broker, or answer at
    /// once when the broker connection is kept.
    fn finish_handshake(&mut self, now: Instant, s: &mut Session) {
        let State::Connecting(h) = &mut s.state else {
            return;
        };
        // G-23, G-24: Will=0 keeps the stored will (cleared above for CleanSession=1).
        let will = if h.will_flag {
            h.will.clone()
        } else {
            s.will.clone()
        };
        s.will = will.clone();
        s.clean = h.clean;
        s.keep_alive = Duration::from_secs(u64::from(h.keep_alive));
        if h.reuse_conn {
            if h.will_flag
                && let Some(conn) = s.conn
            {
                self.command(Command::SetWill {
                    conn,
                    will: will.map(|w| w.to_will()),
                });
            }
            self.activate(now, s);
            return;
        }
        h.stage = Stage::ConnAck;
        // The broker answers or the gateway gives up after N_retry × T_retry.
        h.deadline = now + self.settings.retry_interval;
        h.retries = 0;
        let conn = ConnId::next();
        let outbox = Outbox::with_sender(self.outbox_tx.clone());
        let session_expiry = if h.clean {
            0
        } else {
            u32::try_from(self.settings.persistent_session_expiry.as_secs()).unwrap_or(u32::MAX)
        };
        self.command(Command::Connect(ConnectRequest {
            conn,
            client_id: s.client_id.clone(),
            clean_start: h.clean,
            session_expiry,
            will: will.map(|w| w.to_will()),
            receive_maximum: u16::try_from(self.settings.max_buffered_messages.max(1))
                .unwrap_or(u16::MAX),
            username: self
                .identity
                .as_ref()
                .and_then(|i| i.username.clone())
                .or_else(|| self.access.username(&s.client_id).cloned()),
            kind: ClientKind::MqttSn,
            outbox: outbox.clone(),
            queue_limits: None,
        }));
        s.conn = Some(conn);
        s.outbox = Some(outbox);
    }

    /// The broker accepted the connection, or it is kept: CONNACK and active (G-14).
    pub(super) fn activate(&mut self, now: Instant, s: &mut Session) {
        let State::Connecting(h) = &s.state else {
            return;
        };
        s.connack = Some((now, h.clean, h.will_flag, h.keep_alive));
        if !h.clean {
            // Digest §4.3: the client may not remember ids across connections.
            s.topics.mark_all_unknown();
        }
        tracing::info!(
            client_id = %s.client_id,
            transport = %s.addr,
            "New MQTT-SN client connected from {} as {} (k{}, c{}).",
            s.addr,
            s.client_id,
            h.keep_alive,
            u8::from(h.clean)
        );
        s.state = State::Active;
        s.last_heard = now;
        self.send(
            &s.addr.clone(),
            &Message::ConnAck {
                code: ReturnCode::Accepted,
            },
        );
        // G-83: what was buffered while asleep goes out now.
        self.pump(now, s);
    }

    /// DISCONNECT from a session (digest §4.12, §4.14).
    pub(super) fn on_disconnect(&mut self, now: Instant, s: &mut Session, duration: Option<u16>) {
        let addr = s.addr.clone();
        // G-74: the gateway's DISCONNECT never carries a Duration.
        self.send(&addr, &Message::Disconnect { duration: None });
        match (duration, &s.state) {
            // G-76, G-82: sleep, or a new sleep duration; digest §5.12: 0 = plain.
            (Some(d), State::Active | State::Asleep | State::Awake) if d > 0 => {
                s.sleep = Duration::from_secs(u64::from(d));
                s.state = State::Asleep;
                s.last_heard = now;
                tracing::info!(
                    client_id = %s.client_id,
                    transport = %s.addr,
                    "MQTT-SN client {} asleep for {d} s.",
                    s.client_id
                );
            }
            (_, State::Disconnected | State::Lost) => {}
            // G-73, G-84: no will.
            _ => {
                tracing::info!(
                    client_id = %s.client_id,
                    transport = %s.addr,
                    "MQTT-SN client {} disconnected.",
                    s.client_id
                );
                let kind = DisconnectKind::Graceful {
                    publish_will: false,
                    session_expiry: None,
                };
                self.end_session(now, s, State::Disconnected, kind);
            }
        }
    }

    /// PINGREQ with a ClientId from an address without a session: an asleep
    /// client that moved (G-85, digest §5.4). Anything else is not answered.
    pub(super) fn wake_from_new_address(
        &mut self,
        now: Instant,
        addr: super::address::SensorAddr,
        client_id: Bytes,
    ) {
        let Some(id) = std::str::from_utf8(&client_id).ok() else {
            tracing::debug!(transport = %addr, "PINGREQ with a non-UTF-8 client id: dropped");
            return;
        };
        let Some(&key) = self.by_client.get(id) else {
            tracing::debug!(transport = %addr, client_id = id, "PINGREQ for an unknown client: dropped");
            return;
        };
        let sleeping = self
            .sessions
            .get(&key)
            .is_some_and(|s| matches!(s.state, State::Asleep | State::Awake));
        if !sleeping {
            tracing::debug!(transport = %addr, client_id = id, "PINGREQ from a new address for a client not asleep: dropped");
            return;
        }
        if !may_act_for(self.owner_of(id).as_deref(), self.identity.as_deref()) {
            tracing::warn!(
                transport = %addr,
                client_id = %id,
                "wake-up refused: the sleeping client belongs to an authenticated identity"
            );
            return;
        }
        self.with_session(key, |gw, s| {
            tracing::info!(
                client_id = %s.client_id,
                transport = %addr,
                "MQTT-SN client {} woke up from a new address: {} (was {}).",
                s.client_id,
                addr,
                s.addr
            );
            gw.rebind(key, s, &addr);
            gw.wake(now, s);
        });
    }

    /// PINGREQ while asleep: flush the buffer, then PINGRESP (G-79, G-80).
    pub(super) fn wake(&mut self, now: Instant, s: &mut Session) {
        tracing::debug!(client_id = %s.client_id, transport = %s.addr, "MQTT-SN client awake");
        s.last_heard = now;
        s.state = State::Awake;
        self.pump(now, s);
    }
}

/// A ClientId the gateway accepts: 1..=max octets of UTF-8 without U+0000 (G-20).
fn valid_client_id(raw: &[u8], max: usize) -> Option<Arc<str>> {
    if raw.is_empty() || raw.len() > max {
        return None;
    }
    let s = std::str::from_utf8(raw).ok()?;
    if s.contains('\0') {
        return None;
    }
    Some(Arc::from(s))
}
