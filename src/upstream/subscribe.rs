//! Sensor SUBSCRIBE and UNSUBSCRIBE: passed on per sensor (transparent
//! mode) or kept in sngate's table with one upstream subscription per
//! filter (aggregating mode).

use std::sync::Arc;

use super::aggregate::bucket;
use super::{Mode, Pending, Router};
use crate::broker::{ConnId, Outbound, SubscribeRequest, SubscribeResult, UnsubscribeResult};
use crate::mqtt::codec::{
    Packet, ReasonCode, SubAck, Subscribe, SubscribeProperties, SubscriptionOptions, Unsubscribe,
    UnsubscribeProperties,
};
use crate::qos::QoS;
use crate::upstream::link::LinkId;

impl Router {
    pub(super) fn on_subscribe(
        &mut self,
        conn: ConnId,
        packet_id: u16,
        filters: Vec<SubscribeRequest>,
    ) {
        let Some(link) = self.link_of(conn) else {
            return;
        };
        let link = match self.mode {
            Mode::Transparent => link,
            Mode::Aggregating => {
                let first = filters
                    .first()
                    .map(|f| f.filter.clone())
                    .unwrap_or_default();
                match self.filters.get(&first) {
                    Some(e) => e.link,
                    None => match self.pool.get(bucket(&first, self.pool.len())) {
                        Some(&l) => l,
                        None => return,
                    },
                }
            }
        };
        let Some(l) = self.links.get_mut(&link).filter(|l| l.up) else {
            let results = vec![SubscribeResult::QuotaExceeded; filters.len()];
            self.reply(conn, Outbound::SubAck { packet_id, results });
            return;
        };
        let wanted: Vec<(Arc<str>, QoS)> = filters
            .iter()
            .map(|f| (f.filter.clone(), f.options.qos))
            .collect();
        // Aggregating: the pool subscribes at QoS 2 and each sensor gets its own grant.
        let upstream_qos = |q: QoS| match self.mode {
            Mode::Transparent => q,
            Mode::Aggregating => QoS::ExactlyOnce,
        };
        let up_id = l.control_id();
        l.pending.insert(
            up_id,
            Pending::Subscribe {
                conn,
                packet_id,
                filters: wanted.clone(),
            },
        );
        l.handle.send(Packet::Subscribe(Subscribe {
            packet_id: up_id,
            filters: wanted
                .iter()
                .map(|(f, q)| {
                    (
                        f.to_string(),
                        SubscriptionOptions {
                            qos: upstream_qos(*q),
                            ..SubscriptionOptions::default()
                        },
                    )
                })
                .collect(),
            properties: SubscribeProperties::default(),
        }));
    }

    pub(super) fn on_suback(&mut self, link: LinkId, ack: SubAck) {
        let Some(p) = self
            .links
            .get_mut(&link)
            .and_then(|l| l.pending.remove(&ack.packet_id))
        else {
            return;
        };
        let Pending::Subscribe {
            conn,
            packet_id,
            filters,
        } = p
        else {
            return;
        };
        let mut results = Vec::with_capacity(filters.len());
        for (i, (filter, wanted)) in filters.into_iter().enumerate() {
            let code = ack
                .reasons
                .get(i)
                .copied()
                .unwrap_or(ReasonCode::UnspecifiedError);
            let granted = match code {
                ReasonCode::Success => Some(QoS::AtMostOnce),
                ReasonCode::GrantedQoS1 => Some(QoS::AtLeastOnce),
                ReasonCode::GrantedQoS2 => Some(QoS::ExactlyOnce),
                _ => None,
            };
            let Some(granted) = granted else {
                results.push(match code {
                    ReasonCode::NotAuthorized => SubscribeResult::NotAuthorized,
                    ReasonCode::QuotaExceeded => SubscribeResult::QuotaExceeded,
                    _ => SubscribeResult::Failed,
                });
                continue;
            };
            let granted = match self.mode {
                Mode::Transparent => granted,
                Mode::Aggregating => granted.min(wanted),
            };
            if let Some(c) = self.conns.get_mut(&conn) {
                c.subs.insert(filter.clone(), granted);
            }
            if self.mode == Mode::Aggregating {
                self.add_filter(conn, &filter, granted, link);
            }
            results.push(SubscribeResult::Granted(granted));
        }
        if self.mode == Mode::Aggregating {
            // On disk before the SUBACK: the subscription is part of the session.
            self.save_conn_session(conn);
        }
        self.reply(conn, Outbound::SubAck { packet_id, results });
    }

    pub(super) fn on_unsubscribe(&mut self, conn: ConnId, packet_id: u16, filters: Vec<Arc<str>>) {
        let Some(link) = self.link_of(conn) else {
            return;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            for f in &filters {
                c.subs.remove(f);
            }
        }
        match self.mode {
            Mode::Transparent => {
                if let Some(l) = self.links.get_mut(&link)
                    && l.up
                {
                    let id = l.control_id();
                    l.pending
                        .insert(id, Pending::Unsubscribe { conn, packet_id });
                    l.handle.send(Packet::Unsubscribe(Unsubscribe {
                        packet_id: id,
                        filters: filters.iter().map(|f| f.to_string()).collect(),
                        properties: UnsubscribeProperties::default(),
                    }));
                    return;
                }
                // Down: the subscription is not re-made when the link returns.
                let results = vec![UnsubscribeResult::Removed; filters.len()];
                self.reply(conn, Outbound::UnsubAck { packet_id, results });
            }
            Mode::Aggregating => {
                let results = filters
                    .iter()
                    .map(|f| match self.remove_filter(conn, f) {
                        true => UnsubscribeResult::Removed,
                        false => UnsubscribeResult::NoSubscriptionExisted,
                    })
                    .collect();
                self.save_conn_session(conn);
                self.reply(conn, Outbound::UnsubAck { packet_id, results });
            }
        }
    }
}
