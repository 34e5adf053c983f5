//! The remote side of a bridge task: connecting (with failover and the
//! return to the first address), the MQTT session with the remote broker,
//! sending queued messages and handling what the remote sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tracing::{debug, error, info, warn};

use super::echo::EchoFilter;
use super::link::{self, Connected, LinkError, encode, spawn_reader};
use super::rules::route_in;
use super::session::{AckEffect, from_publish};
use super::task::{Link, Run, STABLE_LINK};
use crate::broker::Command;
use crate::mqtt::codec::{
    Packet, PubResponse, Publish, ReasonCode, Subscribe, SubscriptionOptions,
};
use crate::qos::QoS;

impl Run {
    pub(super) fn start_attempt(&mut self) {
        let connector = self.t.connector.clone();
        let addresses = self.t.addresses.clone();
        let connect = self.t.connect.clone();
        let bridge_flag = self.t.try_private;
        let timeout = self.t.connect_timeout;
        let name = self.t.name.clone();
        self.attempt = Some(Box::pin(async move {
            for (i, address) in addresses.iter().enumerate() {
                let mut result =
                    link::connect(&connector, address, &connect, bridge_flag, timeout).await;
                if bridge_flag && matches!(&result, Err(e) if e.is_protocol_level_refusal()) {
                    info!(
                        "bridge {name}: {address} does not accept the bridge flag; connecting as a plain client"
                    );
                    result = link::connect(&connector, address, &connect, false, timeout).await;
                }
                match result {
                    Ok(c) => return Ok((i, c)),
                    Err(e) => warn!("bridge {name}: cannot connect to {address}: {e}"),
                }
            }
            Err(())
        }));
    }

    pub(super) fn schedule_retry(&mut self, why: &str) {
        let delay = self.t.backoff.next_delay(rand::random::<f64>());
        warn!(
            "bridge {}: {why}; retrying in {:.1} s",
            self.name(),
            delay.as_secs_f64()
        );
        self.retry_at = Some(tokio::time::Instant::now() + delay);
    }

    pub(super) fn schedule_probe(&mut self) {
        if !self.t.primary_retry.is_zero() && self.link.as_ref().is_some_and(|l| l.index > 0) {
            self.probe_at = Some(tokio::time::Instant::now() + self.t.primary_retry);
        }
    }

    pub(super) async fn on_connected(&mut self, index: usize, c: Connected) {
        let now = Instant::now();
        let version = self.version();
        let address = self.t.addresses.get(index).cloned().unwrap_or_default();
        info!(
            "bridge {}: connected to {address} (MQTT {}, session present: {}{})",
            self.name(),
            if version.is_v5() { "5" } else { "3.1.1" },
            c.connack.session_present,
            if c.bridge_flag { ", bridge flag" } else { "" }
        );
        let (rx, reader) = spawn_reader(c.read, version);
        // With MQTT 5 No Local or Mosquitto's bridge flag the remote holds back
        // our own messages; otherwise the bridge recognises its echoes itself.
        let echo = (!version.is_v5() && !c.bridge_flag)
            .then(|| EchoFilter::new(Duration::from_secs(30), 10_000));
        self.link = Some(Link {
            write: c.write,
            rx,
            reader,
            index,
            up_since: now,
            last_sent: now,
            ping_sent: None,
            echo,
        });
        self.own_qos2.clear();
        let filters: Vec<(String, SubscriptionOptions)> = self
            .t
            .rules
            .iter()
            .filter(|r| r.is_in())
            .map(|r| {
                (
                    r.remote_filter(),
                    SubscriptionOptions {
                        qos: r.qos,
                        // [MQTT-3.8.3-3] the remote does not send our own messages back.
                        no_local: true,
                        retain_as_published: true,
                        ..SubscriptionOptions::default()
                    },
                )
            })
            .collect();
        if !filters.is_empty() {
            self.send(Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters,
                properties: Default::default(),
            }))
            .await;
        }
        let resend = self.t.session.on_connected(
            c.connack.session_present,
            c.connack.properties.receive_maximum,
            now,
        );
        for p in resend {
            self.send(p).await;
        }
        self.publish_state(true).await;
        self.schedule_probe();
    }

    /// Writes one packet; a failed write ends the link.
    pub(super) async fn send(&mut self, packet: Packet) -> bool {
        let version = self.version();
        let timeout = self.t.connect_timeout;
        let Some(link) = self.link.as_mut() else {
            return false;
        };
        let result = match encode(&packet, version) {
            Ok(bytes) => match tokio::time::timeout(timeout, link.write.write_all(&bytes)).await {
                Ok(r) => r.map_err(LinkError::from),
                Err(_) => Err(LinkError::WriteTimeout),
            },
            Err(e) => Err(e.into()),
        };
        match result {
            Ok(()) => {
                link.last_sent = Instant::now();
                true
            }
            Err(e) => {
                self.broken.get_or_insert_with(|| e.to_string());
                false
            }
        }
    }

    pub(super) async fn drop_link(&mut self) {
        if let Some(mut link) = self.link.take() {
            link.reader.abort();
            let _ = link.write.shutdown().await;
            if link.up_since.elapsed() >= STABLE_LINK {
                self.t.backoff.reset();
            }
        }
        self.probe_at = None;
        self.probe = None;
        self.publish_state(false).await;
    }

    pub(super) async fn link_lost(&mut self, why: &str) {
        if self.link.is_none() {
            return;
        }
        warn!(
            "bridge {}: connection to the remote broker lost: {why}; {} message(s) held for it",
            self.name(),
            self.t.queue.len()
        );
        self.drop_link().await;
        self.schedule_retry("reconnecting");
    }

    pub(super) async fn on_keepalive(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.ping_sent.is_some() {
            self.link_lost("no answer to PINGREQ within the keep-alive")
                .await;
            return;
        }
        link.ping_sent = Some(Instant::now());
        self.send(Packet::PingReq).await;
    }

    /// Moves queued messages to the remote while the window allows.
    pub(super) async fn pump(&mut self) {
        while self.link.is_some() && self.t.session.can_send() {
            let Some((seq, message)) = self.t.queue.take_next() else {
                return;
            };
            let now = Instant::now();
            if let Some(echo) = self.link.as_mut().and_then(|l| l.echo.as_mut()) {
                echo.sent(&message.topic, &message.payload, now);
            }
            let (packet, done) = self.t.session.publish(seq, message, now);
            let written = self.send(packet).await;
            if let Some(seq) = done {
                // QoS 0 is done once written, or lost with the link: at most once.
                self.finish(seq).await;
            }
            if !written {
                return;
            }
        }
    }

    pub(super) async fn send_ack(
        &mut self,
        kind: fn(PubResponse) -> Packet,
        packet_id: u16,
        reason: ReasonCode,
    ) {
        let mut r = PubResponse::new(packet_id);
        if self.version().is_v5() {
            r.reason = reason;
        }
        self.send(kind(r)).await;
    }

    pub(super) async fn on_upstream(&mut self, packet: Packet) {
        if let Some(link) = self.link.as_mut() {
            link.ping_sent = None;
        }
        match packet {
            Packet::Publish(p) => self.on_remote_publish(p).await,
            Packet::PubAck(ack) => {
                let effect = self.t.session.on_puback(&ack);
                self.apply(effect).await;
            }
            Packet::PubRec(ack) => {
                let effect = self.t.session.on_pubrec(&ack);
                self.apply(effect).await;
            }
            Packet::PubComp(ack) => {
                let effect = self.t.session.on_pubcomp(&ack);
                self.apply(effect).await;
            }
            Packet::PubRel(r) => {
                if self.own_qos2.remove(&r.packet_id) {
                    self.send_ack(Packet::PubComp, r.packet_id, ReasonCode::Success)
                        .await;
                } else {
                    let conn = self.t.conn;
                    self.tell_core(Command::PubRel {
                        conn,
                        packet_id: r.packet_id,
                    })
                    .await;
                }
            }
            Packet::SubAck(ack) => {
                let filters = self.t.rules.iter().filter(|r| r.is_in());
                for (rule, code) in filters.zip(ack.reasons) {
                    if code as u8 >= 0x80 {
                        error!(
                            "bridge {}: the remote broker refused the subscription to {:?} (0x{:02X})",
                            self.t.name,
                            rule.remote_filter(),
                            code as u8
                        );
                    }
                }
            }
            Packet::PingResp | Packet::UnsubAck(_) => {}
            Packet::Disconnect(d) => {
                let why = format!(
                    "the remote broker sent DISCONNECT ({:?}{})",
                    d.reason,
                    d.properties
                        .reason_string
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                );
                self.link_lost(&why).await;
            }
            other => {
                let why = LinkError::Unexpected(other.name()).to_string();
                self.link_lost(&why).await;
            }
        }
    }

    pub(super) async fn apply(&mut self, effect: AckEffect) {
        match effect {
            AckEffect::Done { seq, refused } => {
                if let Some(code) = refused {
                    // Acknowledged locally all the same: retrying a refusal
                    // would hold the queue up for ever.
                    warn!(
                        "bridge {}: the remote broker refused a message (reason 0x{code:02X}); dropped",
                        self.t.name
                    );
                }
                self.finish(seq).await;
            }
            AckEffect::SendPubRel(packet_id) => {
                self.send(Packet::PubRel(PubResponse::new(packet_id))).await;
            }
            AckEffect::Ignore => {}
        }
    }

    pub(super) async fn on_remote_publish(&mut self, p: Publish) {
        let now = Instant::now();
        let echo = self
            .link
            .as_mut()
            .and_then(|l| l.echo.as_mut())
            .is_some_and(|e| e.is_echo(&p.topic, &p.payload, now));
        let routed = if echo {
            None
        } else {
            route_in(&self.t.rules, &p.topic, None)
        };
        let Some((rule, local)) = routed else {
            if !echo {
                debug!(
                    "bridge {}: no in rule for remote topic {:?}",
                    self.t.name, p.topic
                );
            }
            // Acknowledge it ourselves: the local broker never sees it.
            match (p.qos, p.packet_id) {
                (QoS::AtLeastOnce, Some(id)) => {
                    self.send_ack(Packet::PubAck, id, ReasonCode::Success).await;
                }
                (QoS::ExactlyOnce, Some(id)) => {
                    self.own_qos2.insert(id);
                    self.send_ack(Packet::PubRec, id, ReasonCode::Success).await;
                }
                _ => {}
            }
            return;
        };
        let mut message = from_publish(&p, Arc::from(local), p.qos, now);
        message.retain = message.retain && rule.retain;
        let conn = self.t.conn;
        self.tell_core(Command::Publish {
            conn,
            packet_id: p.packet_id,
            message,
        })
        .await;
    }
}
