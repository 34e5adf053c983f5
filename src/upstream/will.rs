//! Will updates in transparent mode (MQTT-SN 1.2 §5.4.20-23, WILLTOPICUPD /
//! WILLMSGUPD). MQTT fixes a connection's will at CONNECT [MQTT-3.1.2-9],
//! so the sensor's upstream connection is made again with the new will:
//! DISCONNECT 0x00 first, so the broker discards the old will
//! [MQTT-3.1.2-10], then CONNECT once that is written. The link's session
//! state (held queue, in-flight messages) carries over to the new
//! connection, which resends what was in flight and subscribes again if the
//! upstream did not keep the session.

use std::sync::atomic::Ordering;

use tracing::info;

use super::{Mode, Pending, Router};
use crate::broker::{ConnId, Outbound, SubscribeResult, UnsubscribeResult, Will};
use crate::mqtt::codec::Disconnect;
use crate::upstream::connect::last_will;
use crate::upstream::link::spawn_link_after;

impl Router {
    pub(super) fn on_set_will(&mut self, conn: ConnId, will: Option<Will>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.will = will.clone();
        if self.mode != Mode::Transparent {
            // Aggregating: sngate publishes the will itself, so keeping it is all.
            return;
        }
        let (old_id, connacked, client_id) = (c.link, c.connacked, c.client_id.clone());
        let Some(mut link) = self.links.remove(&old_id) else {
            return;
        };
        let Some(mut spec) = link.spec.clone() else {
            self.links.insert(old_id, link);
            return;
        };
        spec.connect.will = will.as_ref().map(last_will);
        // The session is the sensor's own when it is persistent (clean
        // session 0): CONNECT keeps clean_start = 0 and finds it again. A
        // clean sensor's session ends with the old connection whatever the
        // new CONNECT says, so it stays clean and is subscribed again.
        // Refused now means refused: the sensor is told (DISCONNECT); while the
        // upstream is away the new connection waits for it like any other.
        spec.fail_fast = link.up || !connacked;
        self.close_link(&link, Some(Disconnect::default()));
        if link.up {
            self.stats.links_up.fetch_sub(1, Ordering::Relaxed);
        }
        link.up = false;
        self.fail_pending(&mut link);
        let id = self.next_link;
        self.next_link += 1;
        spec.id = id;
        let after = self.goodbyes.remove(&link.key);
        link.handle = spawn_link_after(
            spec.clone(),
            after,
            self.events.clone(),
            self.shutdown.clone(),
        );
        link.spec = Some(spec);
        self.links.insert(id, link);
        if let Some(c) = self.conns.get_mut(&conn) {
            c.link = id;
        }
        info!(client_id = %client_id, "will of MQTT-SN client {client_id} updated: reconnecting its upstream connection");
    }

    /// The SUBSCRIBEs and UNSUBSCRIBEs a lost connection will never answer:
    /// the sensors hear now.
    pub(super) fn fail_pending(&self, link: &mut super::Link) {
        for (_, p) in link.pending.drain() {
            match p {
                Pending::Subscribe {
                    conn,
                    packet_id,
                    filters,
                } => self.reply(
                    conn,
                    Outbound::SubAck {
                        packet_id,
                        results: vec![SubscribeResult::QuotaExceeded; filters.len()],
                    },
                ),
                Pending::Unsubscribe { conn, packet_id } => self.reply(
                    conn,
                    Outbound::UnsubAck {
                        packet_id,
                        results: vec![UnsubscribeResult::Removed],
                    },
                ),
                Pending::Internal => {}
            }
        }
    }
}
