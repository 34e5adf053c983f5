//! Start-up: rebuilding the core from what the durable store kept.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use super::api::{SubscriptionOptions, Will};
use super::core::Broker;
use super::persist::{WallClock, kind_from_u8, message_from_record};
use super::session::Session;
use super::subscriptions::{SessionKey, Subscriber};
use crate::qos::QoS;
use crate::store::Snapshot;

impl Broker {
    /// Rebuilds sessions (offline), their subscriptions, queued and in-flight
    /// deliveries (resent with DUP when the client reconnects), incoming
    /// QoS 2 ids, retained messages and delayed wills from `snapshot`, and
    /// turns persistence on. `wall_now` is unix ms at `now`: expiry times
    /// were stored as wall-clock times, so time spent stopped counts.
    pub fn restore(&mut self, snapshot: Snapshot, now: Instant, wall_now: u64) {
        self.enable_persistence(now, wall_now);
        let clock = WallClock::new(now, wall_now);
        let Snapshot {
            sessions,
            mut queues,
            retained,
            mut incoming_qos2,
            sn_topics: _,
            counters: _,
        } = snapshot;
        let (mut n_sessions, mut n_queued) = (0usize, 0usize);
        for r in sessions {
            let client_id: Arc<str> = Arc::from(r.client_id.as_str());
            if self.by_client.contains_key(&client_id) {
                continue;
            }
            let key = SessionKey(self.next_key);
            self.next_key += 1;
            let mut s = Session::new(client_id.clone(), kind_from_u8(r.kind));
            s.username = r.username.map(Arc::from);
            s.expiry = r.expiry_secs;
            s.track = r.expiry_secs > 0;
            s.persisted = true;
            s.expires_at = match r.expires_at_ms {
                Some(ms) => Some(clock.to_instant(ms)),
                // Online when sngate stopped: offline since the restart.
                None if r.expiry_secs != u32::MAX => {
                    Some(now + Duration::from_secs(u64::from(r.expiry_secs)))
                }
                None => None,
            };
            for sub in r.subscriptions {
                let filter: Arc<str> = Arc::from(sub.filter);
                let options = SubscriptionOptions {
                    qos: QoS::from_u8(sub.qos).unwrap_or(QoS::AtMostOnce),
                    no_local: sub.no_local,
                    retain_as_published: sub.retain_as_published,
                    retain_handling: sub.retain_handling,
                };
                self.tree.insert(
                    &filter,
                    Subscriber {
                        session: key,
                        options,
                        subscription_id: sub.subscription_id,
                        shared: None,
                    },
                );
                s.subscriptions
                    .insert(filter, (options, sub.subscription_id));
            }
            if let Some(w) = r.will {
                let will = Will {
                    message: message_from_record(w.message, &clock),
                    delay: w.delay_secs,
                };
                match r.will_due_ms {
                    Some(ms) => s.set_will_due(Some((clock.to_instant(ms), will))),
                    // The connection that set it ended with sngate: as after an
                    // abnormal close, the will is due after its delay [MQTT-3.1.2-8].
                    None => {
                        let delay = will.delay.min(s.expiry);
                        s.set_will_due(Some((now + Duration::from_secs(u64::from(delay)), will)));
                    }
                }
            }
            for e in queues.remove(&r.client_id).unwrap_or_default() {
                let message = message_from_record(e.message, &clock);
                s.restore_entry(e.seq, message, e.subscription_ids, e.state);
                n_queued += 1;
            }
            for id in incoming_qos2.remove(&r.client_id).unwrap_or_default() {
                s.incoming_qos2.insert(id);
            }
            self.by_client.insert(client_id, key);
            self.sessions.insert(key, Box::new(s));
            n_sessions += 1;
        }
        if !queues.is_empty() {
            warn!(
                sessions = queues.len(),
                "persistence: queue entries without a stored session ignored"
            );
        }
        let mut n_retained = 0usize;
        for r in retained {
            let m = message_from_record(r, &clock);
            if m.is_expired(now) {
                continue;
            }
            self.retained.apply(&m);
            n_retained += 1;
        }
        info!(
            sessions = n_sessions,
            queued = n_queued,
            retained = n_retained,
            "persistence: state restored"
        );
        // Sessions and wills that fell due while sngate was stopped.
        self.run_timers(now);
    }
}
