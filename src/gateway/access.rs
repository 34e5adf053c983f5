//! Who may use the gateway, and what a sensor may do.
//!
//! MQTT-SN 1.2 has no credentials: a sensor is who its client id says it is.
//! So admission is by place and name: each UDP listener may restrict the
//! source networks and client ids it accepts ([`ListenerPolicy`]), checked on
//! every datagram by [`DatagramGate`] before the gateway core sees it, along
//! with the per-source datagram rate. Once connected, a sensor is held to the
//! same ACL as MQTT clients ([`SensorAccess`]): by client id (`%c`), and by a
//! user name the configuration maps to its client id (`%u`, `user` blocks).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::auth::Authorizer;
use crate::broker::Metrics;
use crate::limits::{Cidr, Limit, RateTable};
use crate::mqttsn::codec::{self, Frame, Message, ReturnCode};

/// Most sources a listener's datagram rate table tracks at once.
const MAX_RATE_SOURCES: usize = 65_536;
/// Refusal log lines per listener per second; the rest are counted only.
const LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The ACL side of sensors: checks by client id and mapped user name.
#[derive(Debug)]
pub struct SensorAccess {
    authorizer: Arc<Authorizer>,
    usernames: HashMap<String, Arc<str>>,
}

impl Default for SensorAccess {
    fn default() -> SensorAccess {
        SensorAccess::new(Arc::new(Authorizer::open()), HashMap::new())
    }
}

impl SensorAccess {
    /// Checks against `authorizer`; `usernames` maps client ids to the user
    /// names the ACL knows them by.
    pub fn new(authorizer: Arc<Authorizer>, usernames: HashMap<String, String>) -> SensorAccess {
        SensorAccess {
            authorizer,
            usernames: usernames
                .into_iter()
                .map(|(c, u)| (c, Arc::from(u)))
                .collect(),
        }
    }

    /// The user name configured for `client_id`.
    pub fn username(&self, client_id: &str) -> Option<&Arc<str>> {
        self.usernames.get(client_id)
    }

    /// Whether the sensor may publish to `topic` (also a will topic).
    pub fn may_publish(&self, client_id: &str, topic: &str) -> bool {
        let user = self.username(client_id).map(|u| &**u);
        self.authorizer.can_publish(client_id, user, topic)
    }

    /// Whether a message on `topic` may be delivered to the sensor.
    pub fn may_read(&self, client_id: &str, topic: &str) -> bool {
        let user = self.username(client_id).map(|u| &**u);
        self.authorizer.can_read(client_id, user, topic)
    }

    /// Whether the sensor may subscribe to `filter`.
    pub fn may_subscribe(&self, client_id: &str, filter: &str) -> bool {
        let user = self.username(client_id).map(|u| &**u);
        self.authorizer.can_subscribe(client_id, user, filter)
    }

    /// As [`SensorAccess::may_publish`] for a session whose identity is
    /// bound to `bound` (a client certificate's CN), which wins over the
    /// configured user name.
    pub fn may_publish_as(&self, client_id: &str, bound: Option<&str>, topic: &str) -> bool {
        let user = bound.or_else(|| self.username(client_id).map(|u| &**u));
        self.authorizer.can_publish(client_id, user, topic)
    }

    /// As [`SensorAccess::may_read`] with a bound user name.
    pub fn may_read_as(&self, client_id: &str, bound: Option<&str>, topic: &str) -> bool {
        let user = bound.or_else(|| self.username(client_id).map(|u| &**u));
        self.authorizer.can_read(client_id, user, topic)
    }

    /// As [`SensorAccess::may_subscribe`] with a bound user name.
    pub fn may_subscribe_as(&self, client_id: &str, bound: Option<&str>, filter: &str) -> bool {
        let user = bound.or_else(|| self.username(client_id).map(|u| &**u));
        self.authorizer.can_subscribe(client_id, user, filter)
    }
}

/// The sensors one UDP listener admits. Empty lists admit everyone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerPolicy {
    /// Client ids, exact or with `*` (any run) and `?` (one character).
    pub allow_client_ids: Vec<String>,
    /// Source networks.
    pub allow_networks: Vec<Cidr>,
}

impl ListenerPolicy {
    /// Whether datagrams from `ip` are accepted.
    pub fn allows_network(&self, ip: IpAddr) -> bool {
        self.allow_networks.is_empty() || self.allow_networks.iter().any(|n| n.contains(ip))
    }

    /// Whether a CONNECT with `client_id` is accepted.
    pub fn allows_client_id(&self, client_id: &[u8]) -> bool {
        self.allow_client_ids.is_empty()
            || self
                .allow_client_ids
                .iter()
                .any(|p| glob_match(p.as_bytes(), client_id))
    }
}

/// Matches `text` against `pattern`: `*` is any run (also empty), `?` one octet.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative with one backtrack point: linear enough for ids, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || Some(&c) == text.get(t) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
}

/// Everything the driver needs to admit sensors and hold them to the ACL.
#[derive(Debug, Clone, Default)]
pub struct GatewayAccess {
    /// ACL checks and the client id → user name map.
    pub sensors: Arc<SensorAccess>,
    /// Per UDP socket, in socket order; a missing entry admits everyone.
    pub listeners: Vec<ListenerPolicy>,
    /// Datagrams per second per source address; 0 = unlimited.
    pub max_datagram_rate: u32,
    /// Where limit hits are counted.
    pub metrics: Arc<Metrics>,
}

/// What the transport does with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Hand it to the gateway.
    Pass,
    /// Drop it silently.
    Drop,
    /// Drop it and send this answer to the sender (CONNACK refusal).
    Reply(Bytes),
}

/// Per-listener admission of datagrams: source network, CONNECT client id,
/// datagram rate per source address. Sans-IO; one per UDP socket.
#[derive(Debug)]
pub struct DatagramGate {
    listener: SocketAddr,
    policy: ListenerPolicy,
    rate: Option<RateTable>,
    metrics: Arc<Metrics>,
    last_log: Option<Instant>,
    unlogged: u64,
}

impl DatagramGate {
    /// A gate for the listener bound to `listener`; `max_datagram_rate` of 0
    /// turns rate limiting off (bursts of up to one second's worth pass).
    pub fn new(
        listener: SocketAddr,
        policy: ListenerPolicy,
        max_datagram_rate: u32,
        metrics: Arc<Metrics>,
    ) -> DatagramGate {
        DatagramGate {
            listener,
            policy,
            rate: (max_datagram_rate > 0)
                .then(|| RateTable::new(max_datagram_rate, max_datagram_rate, MAX_RATE_SOURCES)),
            metrics,
            last_log: None,
            unlogged: 0,
        }
    }

    /// Decides what happens to `datagram` from `from`, counting refusals.
    pub fn admit(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) -> Admission {
        if let Some(rate) = &mut self.rate
            && !rate.admit(now, from.ip())
        {
            self.metrics.limits.hit(Limit::DatagramRate);
            self.log(now, from, "above max_datagram_rate");
            return Admission::Drop;
        }
        if !self.policy.allows_network(from.ip()) {
            self.metrics.limits.hit(Limit::SensorRefused);
            self.log(now, from, "source network not in allow_networks");
            return Admission::Drop;
        }
        if self.policy.allow_client_ids.is_empty() {
            return Admission::Pass;
        }
        if !may_be_connect(datagram) {
            return Admission::Pass;
        }
        let (client_id, node_id) = match codec::decode(&Bytes::copy_from_slice(datagram)) {
            Ok(Frame::Message(Message::Connect { client_id, .. })) => (client_id, None),
            Ok(Frame::Encapsulated {
                node_id,
                message: Message::Connect { client_id, .. },
                ..
            }) => (client_id, Some(node_id)),
            _ => return Admission::Pass,
        };
        if self.policy.allows_client_id(&client_id) {
            return Admission::Pass;
        }
        self.metrics.limits.hit(Limit::SensorRefused);
        tracing::info!(
            listener = %self.listener,
            peer = %from,
            client_id = %String::from_utf8_lossy(&client_id),
            "MQTT-SN CONNECT refused: client id not in allow_client_ids"
        );
        // MQTT-SN 1.2 §2.4: 0x03 "not supported" is the only refusal that does
        // not invite a retry (0x01 asks the sensor to come back after T_WAIT).
        match refusal(node_id) {
            Some(b) => Admission::Reply(b),
            None => Admission::Drop,
        }
    }

    fn log(&mut self, now: Instant, from: SocketAddr, why: &str) {
        if self
            .last_log
            .is_some_and(|t| now.saturating_duration_since(t) < LOG_INTERVAL)
        {
            self.unlogged += 1;
            return;
        }
        tracing::info!(
            listener = %self.listener,
            peer = %from,
            suppressed = self.unlogged,
            "MQTT-SN datagram dropped: {why}"
        );
        self.last_log = Some(now);
        self.unlogged = 0;
    }
}

/// Whether the datagram's type octet (after a 1- or 3-octet length) is
/// CONNECT or a forwarder encapsulation, so that other traffic is not copied
/// and decoded twice (MQTT-SN 1.2 §5.2.1, §5.5).
fn may_be_connect(d: &[u8]) -> bool {
    let msg_type = match d.first() {
        Some(0x01) => d.get(3),
        Some(_) => d.get(1),
        None => None,
    };
    matches!(msg_type, Some(0x04 | 0xFE))
}

fn refusal(node_id: Option<Bytes>) -> Option<Bytes> {
    let connack = Message::ConnAck {
        code: ReturnCode::NotSupported,
    };
    let mut buf = BytesMut::new();
    let r = match node_id {
        None => codec::encode(&connack, &mut buf),
        Some(node_id) => codec::encode_frame(
            &Frame::Encapsulated {
                ctrl: 0,
                node_id,
                message: connack,
            },
            &mut buf,
        ),
    };
    r.ok().map(|()| buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::AclFile;

    #[test]
    fn globs_match_exact_ids_prefixes_and_single_characters() {
        assert!(glob_match(b"sensor-7", b"sensor-7"));
        assert!(!glob_match(b"sensor-7", b"sensor-70"));
        assert!(glob_match(b"sensor-*", b"sensor-70"));
        assert!(glob_match(b"sensor-*", b"sensor-"));
        assert!(!glob_match(b"sensor-*", b"sensor"));
        assert!(glob_match(b"*-kitchen-*", b"t-kitchen-1"));
        assert!(glob_match(b"s?", b"s1"));
        assert!(!glob_match(b"s?", b"s12"));
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"a*b*c", b"axxbyyc"));
        assert!(!glob_match(b"a*b*c", b"axxbyy"));
    }

    fn connect(client_id: &str) -> Vec<u8> {
        let mut v = vec![(6 + client_id.len()) as u8, 0x04, 0x04, 0x01, 0x00, 0x3C];
        v.extend_from_slice(client_id.as_bytes());
        v
    }

    fn gate(policy: ListenerPolicy, rate: u32) -> (DatagramGate, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::default());
        let g = DatagramGate::new(
            "127.0.0.1:1884".parse().unwrap(),
            policy,
            rate,
            metrics.clone(),
        );
        (g, metrics)
    }

    #[test]
    fn a_connect_with_a_refused_client_id_gets_connack_not_supported() {
        let policy = ListenerPolicy {
            allow_client_ids: vec!["sensor-*".into()],
            allow_networks: vec![],
        };
        let (mut g, m) = gate(policy, 0);
        let now = Instant::now();
        let from = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(g.admit(now, from, &connect("sensor-1")), Admission::Pass);
        assert_eq!(
            g.admit(now, from, &connect("intruder")),
            Admission::Reply(Bytes::from_static(&[3, 0x05, 0x03]))
        );
        assert_eq!(m.limits.get(Limit::SensorRefused), 1);
        // Not a CONNECT: no session can exist, so the gateway itself decides.
        assert_eq!(g.admit(now, from, &[2, 0x16]), Admission::Pass);
    }

    #[test]
    fn datagrams_from_outside_the_allowed_networks_are_dropped() {
        let policy = ListenerPolicy {
            allow_client_ids: vec![],
            allow_networks: vec!["192.168.1.0/24".parse().unwrap(), "::1".parse().unwrap()],
        };
        let (mut g, m) = gate(policy, 0);
        let now = Instant::now();
        let inside = "192.168.1.9:5000".parse().unwrap();
        let v6 = "[::1]:5000".parse().unwrap();
        let outside = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(g.admit(now, inside, &connect("a")), Admission::Pass);
        assert_eq!(g.admit(now, v6, &connect("a")), Admission::Pass);
        assert_eq!(g.admit(now, outside, &connect("a")), Admission::Drop);
        assert_eq!(m.limits.get(Limit::SensorRefused), 1);
    }

    #[test]
    fn datagrams_above_the_rate_of_their_source_are_dropped_and_counted() {
        let (mut g, m) = gate(ListenerPolicy::default(), 3);
        let now = Instant::now();
        let a: SocketAddr = "127.0.0.2:5000".parse().unwrap();
        let a_other_port: SocketAddr = "127.0.0.2:5001".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        for _ in 0..3 {
            assert_eq!(g.admit(now, a, b"junk"), Admission::Pass);
        }
        assert_eq!(g.admit(now, a_other_port, b"junk"), Admission::Drop);
        assert_eq!(g.admit(now, b, b"junk"), Admission::Pass);
        assert_eq!(m.limits.get(Limit::DatagramRate), 1);
    }

    #[test]
    fn sensors_are_checked_by_client_id_and_mapped_user_name() {
        let acl =
            AclFile::parse("pattern write sensors/%c/#\nuser kitchen\ntopic read kitchen/#\n")
                .unwrap();
        let auth = Arc::new(Authorizer::with_rules(true, None, Some(acl)));
        let users = HashMap::from([("sensor-7".to_owned(), "kitchen".to_owned())]);
        let a = SensorAccess::new(auth, users);
        assert!(a.may_publish("sensor-7", "sensors/sensor-7/t"));
        assert!(!a.may_publish("sensor-7", "sensors/sensor-8/t"));
        assert!(a.may_read("sensor-7", "kitchen/light"));
        assert!(a.may_subscribe("sensor-7", "kitchen/#"));
        assert!(!a.may_read("sensor-8", "kitchen/light"));
    }
}
