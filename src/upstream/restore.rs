//! Aggregating mode at start: the persistent sensor sessions a previous run
//! wrote down come back as sessions of sensors that are away — lost in the
//! crash if they were connected — with their subscriptions, their expiry
//! and their messages in order. The pool's upstream subscriptions are
//! matched against what the previous run's pool held: filters a restored
//! session needs are subscribed where the upstream lacks them, and filters
//! nobody needs any more are unsubscribed once the pool connection is up.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::info;

use super::aggregate::{Away, bucket};
use super::{FilterEntry, Router};
use crate::broker::persist::{WallClock, unix_ms_now};
use crate::qos::QoS;
use crate::upstream::link::LinkId;

impl Router {
    /// Takes back the persistent sessions of a previous run.
    pub(super) fn restore_sessions(&mut self, now: Instant) {
        let restored = self.sessions.restore();
        let clock = WallClock::new(now, unix_ms_now());
        let by_key: HashMap<String, LinkId> = self
            .pool
            .iter()
            .filter_map(|id| self.links.get(id).map(|l| (l.key.clone(), *id)))
            .collect();
        let mut sessions = 0usize;
        let mut messages = 0usize;
        for s in restored.sessions {
            let expires_at = match s.session.away_until_ms {
                Some(ms) => clock.to_instant(ms),
                // Connected when the previous run ended: lost then, i.e. now.
                None => now + Duration::from_secs(u64::from(s.session.expiry_secs)),
            };
            if expires_at <= now {
                info!(client_id = %s.client_id, "persistent session of MQTT-SN client {} expired while sngate was down", s.client_id);
                self.sessions.remove_session(&s.client_id);
                continue;
            }
            let id: Arc<str> = Arc::from(s.client_id.as_str());
            let subs: BTreeMap<Arc<str>, QoS> = s
                .session
                .subs
                .iter()
                .map(|(f, q)| (Arc::from(f.as_str()), *q))
                .collect();
            for (filter, qos) in &subs {
                self.restore_filter(filter, &restored.pool_filters, &by_key);
                if let Some(e) = self.filters.get_mut(filter) {
                    e.away.insert(id.clone(), *qos);
                }
            }
            sessions += 1;
            messages += s.messages.len();
            let queue = s
                .messages
                .into_iter()
                .map(|(seq, m)| (Some(seq), m))
                .collect();
            // The deadline is written down, so another restart does not extend it.
            self.save_session(&id, &subs, s.session.expiry_secs, Some(expires_at));
            self.away.insert(
                id,
                Away {
                    subs,
                    queue,
                    expires_at,
                },
            );
        }
        for (filter, key) in restored.pool_filters {
            if self.filters.contains_key(filter.as_str()) {
                continue;
            }
            match by_key.get(&key).and_then(|id| self.links.get_mut(id)) {
                Some(l) => {
                    l.stale.insert(Arc::from(filter));
                }
                // A pool connection this run does not have (a smaller
                // pool_size): its session stays at the upstream, unread.
                None => self.sessions.remove_filter(&filter),
            }
        }
        if sessions > 0 {
            info!("{sessions} persistent MQTT-SN session(s) with {messages} message(s) restored");
        }
    }

    /// The filter entry of a restored subscription, on the pool connection
    /// that already holds it upstream when there is one.
    fn restore_filter(
        &mut self,
        filter: &Arc<str>,
        pool_filters: &BTreeMap<String, String>,
        by_key: &HashMap<String, LinkId>,
    ) {
        if self.filters.contains_key(filter) {
            return;
        }
        let held = pool_filters
            .get(&**filter)
            .and_then(|key| by_key.get(key))
            .copied();
        let link = match held {
            Some(link) => link,
            None => {
                let Some(&link) = self.pool.get(bucket(filter, self.pool.len())) else {
                    return;
                };
                if let Some(l) = self.links.get_mut(&link) {
                    l.fresh.insert(filter.clone());
                    self.sessions.save_filter(filter, &l.key);
                }
                link
            }
        };
        self.filters.insert(
            filter.clone(),
            FilterEntry {
                link,
                conns: BTreeMap::new(),
                away: BTreeMap::new(),
            },
        );
    }
}
