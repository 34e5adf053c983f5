//! The gateway's clocks: ADVERTISE, connection-setup retries, keep-alive and
//! sleep supervision (G-71, G-78), retransmissions and session expiry.

use std::time::Instant;

use super::gateway::{Gateway, Transmit, encode_plain};
use super::session::{Session, State};
use crate::broker::DisconnectKind;
use crate::mqttsn::codec::{Message, ReturnCode};

impl Gateway {
    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(adv) = self.advertiser.poll(now)
            && let Some(payload) = encode_plain(&adv)
        {
            self.transmits.push_back(Transmit {
                peer: None,
                payload,
                broadcast: true,
                radius: 0,
            });
        }
        // Take the due timers first: a handler that re-arms its session for
        // `now` or earlier runs again on the next call, never in a loop here.
        let mut due = Vec::new();
        while let Some(&(at, key)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            due.push(key);
        }
        for key in due {
            if let Some(s) = self.sessions.get_mut(&key) {
                s.scheduled = None;
            }
            self.with_session(key, |gw, s| gw.session_timeout(now, s));
        }
    }

    pub(super) fn session_timeout(&mut self, now: Instant, s: &mut Session) {
        match &mut s.state {
            State::Connecting(h) => {
                if h.deadline > now {
                    return;
                }
                if h.retries >= self.settings.max_retries {
                    tracing::info!(
                        client_id = %s.client_id,
                        transport = %s.addr,
                        "MQTT-SN client {} lost: connection setup not completed.",
                        s.client_id
                    );
                    if h.stage == super::session::Stage::ConnAck {
                        self.send(
                            &s.addr.clone(),
                            &Message::ConnAck {
                                code: ReturnCode::Congestion,
                            },
                        );
                    }
                    self.end_session(now, s, State::Lost, DisconnectKind::Abnormal);
                    return;
                }
                h.retries += 1;
                h.deadline = now + self.settings.retry_interval;
                let prompt = match h.stage {
                    super::session::Stage::WillTopic => Some(Message::WillTopicReq),
                    super::session::Stage::WillMsg => Some(Message::WillMsgReq),
                    super::session::Stage::ConnAck => None,
                };
                if let Some(p) = prompt {
                    self.send(&s.addr.clone(), &p);
                }
            }
            State::Active | State::Asleep | State::Awake => {
                if let Some(d) = s.deadline()
                    && d > now
                {
                    return;
                }
                let period = if s.state == State::Active {
                    s.keep_alive
                } else {
                    s.sleep
                };
                // `>=`, matching `Session::deadline`: a timer that fires exactly
                // at the deadline must end the session, or it is re-armed for
                // the same instant forever.
                let silent = !period.is_zero()
                    && now.saturating_duration_since(s.last_heard)
                        >= super::session::tolerance(period);
                if silent {
                    // G-71, G-78: lost; the core publishes the will.
                    tracing::info!(
                        client_id = %s.client_id,
                        transport = %s.addr,
                        "MQTT-SN client {} lost: {} expired.",
                        s.client_id,
                        if s.state == State::Active { "keep-alive" } else { "sleep timer" }
                    );
                    self.end_session(now, s, State::Lost, DisconnectKind::Abnormal);
                    return;
                }
                self.retransmit_due(now, s);
            }
            State::Disconnected | State::Lost => {
                if s.expires_at.is_some_and(|at| at <= now) {
                    s.expires_at = None;
                }
            }
        }
    }
}
