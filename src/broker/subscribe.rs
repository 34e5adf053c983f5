//! SUBSCRIBE and UNSUBSCRIBE in the core: the subscription tree, the
//! per-client limit, and retained messages sent after the SUBACK.

use std::sync::Arc;
use std::time::Instant;

use super::api::{ConnId, Outbound, SubscribeRequest, SubscribeResult, UnsubscribeResult};
use super::core::Broker;
use super::subscriptions::{SessionKey, Subscriber};
use crate::mqtt::topic;

impl Broker {
    pub(super) fn subscribe(
        &mut self,
        conn: ConnId,
        packet_id: u16,
        filters: Vec<SubscribeRequest>,
        subscription_id: Option<u32>,
        now: Instant,
    ) {
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        let mut results = Vec::with_capacity(filters.len());
        let mut retained_to_send = Vec::new();
        for req in filters {
            if topic::validate_topic_filter(&req.filter).is_err() {
                results.push(SubscribeResult::Failed);
                continue;
            }
            if self.over_subscription_limit(key, &req.filter) {
                results.push(SubscribeResult::QuotaExceeded);
                continue;
            }
            let sub = Subscriber {
                session: key,
                options: req.options,
                subscription_id,
                shared: None,
            };
            let is_new = self.tree.insert(&req.filter, sub);
            if let Some(s) = self.sessions.get_mut(&key) {
                s.subscriptions
                    .insert(req.filter.clone(), (req.options, subscription_id));
            }
            results.push(SubscribeResult::Granted(req.options.qos));
            let shared = topic::parse_shared(&req.filter).is_some();
            // Retained messages are not sent for shared subscriptions (MQTT 5 §4.8.2).
            let send_retained = !shared
                && match req.options.retain_handling {
                    0 => true,
                    1 => is_new,
                    _ => false,
                };
            if send_retained {
                for mut m in self.retained.matching(&req.filter, now) {
                    m.qos = m.qos.min(req.options.qos);
                    m.retain = true;
                    retained_to_send.push((m, subscription_id));
                }
            }
        }
        self.mark_record(key);
        self.mark_queue(key);
        let Some(s) = self.sessions.get_mut(&key) else {
            return;
        };
        if let Some(link) = &s.link {
            self.out.send(
                &link.outbox,
                link.conn,
                Outbound::SubAck { packet_id, results },
            );
        }
        // Retained messages follow the SUBACK [MQTT-3.8.4-3].
        for (m, id) in retained_to_send {
            s.offer(
                m,
                id.into_iter().collect(),
                now,
                &self.limits,
                &mut self.stats.delivery,
                &mut self.out,
            );
        }
    }

    /// Whether a new `filter` would pass `max_subscriptions` (a filter the
    /// session already has only replaces its options).
    fn over_subscription_limit(&self, key: SessionKey, filter: &Arc<str>) -> bool {
        let max = self.settings.max_subscriptions;
        let Some(s) = self.sessions.get(&key) else {
            return false;
        };
        let over = max > 0 && s.subscriptions.len() >= max && !s.subscriptions.contains_key(filter);
        if over {
            self.metrics
                .limits
                .hit(crate::limits::Limit::MaxSubscriptions);
            tracing::info!(client_id = %s.client_id, %filter, max_subscriptions = max, "Subscription refused: max_subscriptions reached.");
        }
        over
    }

    pub(super) fn unsubscribe(&mut self, conn: ConnId, packet_id: u16, filters: &[Arc<str>]) {
        let Some(&key) = self.by_conn.get(&conn) else {
            return;
        };
        let mut results = Vec::with_capacity(filters.len());
        for filter in filters {
            let removed = self.tree.remove(filter, key);
            if let Some(s) = self.sessions.get_mut(&key) {
                s.subscriptions.remove(filter);
            }
            results.push(if removed {
                UnsubscribeResult::Removed
            } else {
                UnsubscribeResult::NoSubscriptionExisted
            });
        }
        self.mark_record(key);
        if let Some(s) = self.sessions.get(&key)
            && let Some(link) = &s.link
        {
            self.out.send(
                &link.outbox,
                link.conn,
                Outbound::UnsubAck { packet_id, results },
            );
        }
    }
}
