//! Three MQTT clients, each a real `MqttSession`, drive the real broker core
//! (`Broker`) with packets built from the input: CONNECT with or without a
//! will and session expiry, SUBSCRIBE to overlapping, wildcard and shared
//! filters, PUBLISH at every QoS with retain and expiry, acknowledgements of
//! what was delivered, dropped connections, time passing. Half the inputs run
//! with persistence: every batch is committed to an in-memory store, and a
//! "restart" op builds a new core from what the store holds, as after a
//! crash. Neither the core nor the sessions may panic, whatever the order.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sngate::broker::{Broker, BrokerSettings, ConnId, Metrics, Outbox, OutboxQueue};
use sngate::mqtt::codec::{
    Connect, ConnectProperties, Disconnect, LastWill, Packet, ProtocolVersion, PubResponse,
    Publish, PublishProperties, ReasonCode, RetainHandling, Subscribe, SubscribeProperties,
    SubscriptionOptions, Unsubscribe, UnsubscribeProperties, WillProperties, decode_packet,
    encode_packet,
};
use sngate::mqtt::session::{MqttSession, SessionSettings};
use sngate::qos::QoS;
use sngate::store::{MemoryStore, Store};

const MAX_PACKET: u32 = 4096;
const CLIENT_IDS: [&str; 4] = ["a", "b", "c", ""];
const TOPICS: [&str; 5] = ["t/a", "t/b", "s/x/y", "t", "$SYS/x"];
const FILTERS: [&str; 8] = [
    "t/#",
    "t/+",
    "#",
    "+/x/#",
    "$share/g/t/#",
    "$share/g/#",
    "t/a",
    "s/+/y",
];

/// The input, read a byte at a time; zeros once it is used up.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()]
    }

    fn qos(&mut self) -> QoS {
        self.pick(&[QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce])
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One client connection: its session, the core's events for it, what it
/// has been sent and not yet acknowledged.
struct Client {
    session: MqttSession,
    events: OutboxQueue,
    rbuf: BytesMut,
    version: ProtocolVersion,
    /// Deliveries awaiting PUBACK / PUBREC.
    unacked: Vec<(u16, QoS)>,
    /// PUBRELs awaiting PUBCOMP.
    released: Vec<u16>,
    next_packet_id: u16,
}

impl Client {
    fn new(now: Instant) -> Client {
        let (outbox, events) = Outbox::queue();
        let settings = SessionSettings {
            max_packet_size: MAX_PACKET,
            max_topic_alias: 2,
            receive_maximum: 3,
            ..SessionSettings::default()
        };
        Client {
            session: MqttSession::new(ConnId::next(), outbox, settings, now),
            events,
            rbuf: BytesMut::new(),
            version: ProtocolVersion::V311,
            unacked: Vec::new(),
            released: Vec::new(),
            next_packet_id: 0,
        }
    }

    fn packet_id(&mut self, input: &mut Input<'_>) -> u16 {
        // Mostly fresh ids, sometimes one already in use.
        if input.byte() % 4 == 0 {
            self.next_packet_id.max(1)
        } else {
            self.next_packet_id = self.next_packet_id.wrapping_add(1).max(1);
            self.next_packet_id
        }
    }

    /// Sends `packet` the way it travels: encoded, then decoded by the server.
    fn send(&mut self, packet: &Packet, now: Instant) {
        let version = match packet {
            Packet::Connect(c) => c.protocol,
            _ => self.version,
        };
        let mut wire = BytesMut::new();
        if encode_packet(packet, version, &mut wire).is_err() {
            return;
        }
        self.receive_bytes(&wire, now);
    }

    fn receive_bytes(&mut self, bytes: &[u8], now: Instant) {
        self.rbuf.extend_from_slice(bytes);
        self.handle_buffered(now);
    }

    /// Decodes what is buffered, as the connection does: a QoS 1 PUBLISH the
    /// Receive Maximum has no room for waits for the core's PUBACKs.
    fn handle_buffered(&mut self, now: Instant) {
        while !self.session.is_closing() && !self.session.holds_back_publish(&self.rbuf) {
            self.session.peek_connect(&self.rbuf);
            match decode_packet(&mut self.rbuf, self.session.version(), MAX_PACKET) {
                Ok(Some(packet)) => self.session.handle_packet(packet, now),
                Ok(None) => break,
                Err(e) => {
                    self.session.handle_decode_error(&e);
                    self.rbuf.clear();
                    break;
                }
            }
        }
    }

    /// Takes the session's outgoing packets, remembering what needs an answer.
    fn drain_packets(&mut self) {
        let mut out = BytesMut::new();
        while let Some(packet) = self.session.poll_packet() {
            match &packet {
                Packet::Publish(p) if p.qos != QoS::AtMostOnce => {
                    if let Some(id) = p.packet_id {
                        self.unacked.push((id, p.qos));
                    }
                }
                Packet::PubRel(r) => self.released.push(r.packet_id),
                _ => {}
            }
            // Encoding may refuse (over the client's maximum); never panic.
            let _ = encode_packet(&packet, self.session.version(), &mut out);
            out.clear();
        }
    }
}

/// The core with its optional store.
struct Core {
    broker: Broker,
    store: Option<MemoryStore>,
    wall_ms: u64,
}

impl Core {
    fn start(store: Option<MemoryStore>, now: Instant, wall_ms: u64) -> Core {
        let settings = BrokerSettings {
            max_queued_messages: 4,
            max_inflight_messages: 2,
            sys_interval: Duration::from_secs(5),
            ..BrokerSettings::default()
        };
        let mut broker = Broker::new(settings, Arc::new(Metrics::default()), now);
        let mut store = store;
        if let Some(s) = store.as_mut() {
            match s.load() {
                Ok(snapshot) => broker.restore(snapshot, now, wall_ms),
                Err(_) => store = None,
            }
        }
        Core {
            broker,
            store,
            wall_ms,
        }
    }

    /// Moves commands to the core and events back until nothing moves.
    fn pump(&mut self, clients: &mut [Client], now: Instant) {
        for _ in 0..64 {
            let mut moved = false;
            for c in clients.iter_mut() {
                while let Some(cmd) = c.session.poll_command() {
                    self.broker.handle(cmd, now);
                    moved = true;
                }
            }
            if let Some(store) = self.store.as_mut() {
                let ops = self.broker.take_ops();
                if !ops.is_empty() {
                    let _ = store.commit(&ops, true);
                }
                self.broker.release_held();
            }
            for c in clients.iter_mut() {
                while let Ok((_, event)) = c.events.try_recv() {
                    c.session.handle_outbound(event, now);
                    moved = true;
                }
                if !c.rbuf.is_empty() {
                    c.handle_buffered(now);
                }
                c.drain_packets();
            }
            if !moved {
                break;
            }
        }
    }
}

fn connect(input: &mut Input<'_>) -> Packet {
    let flags = input.byte();
    let protocol = if flags & 1 == 0 {
        ProtocolVersion::V311
    } else {
        ProtocolVersion::V5
    };
    let will = (flags & 2 != 0).then(|| LastWill {
        topic: input.pick(&TOPICS).to_owned(),
        payload: Bytes::from_static(b"will"),
        qos: input.qos(),
        retain: flags & 4 != 0,
        properties: WillProperties {
            will_delay_interval: (flags & 8 != 0).then_some(2),
            ..WillProperties::default()
        },
    });
    let expiry = input.pick(&[None, Some(0), Some(3), Some(u32::MAX)]);
    Packet::Connect(Connect {
        protocol,
        clean_start: flags & 16 != 0,
        keep_alive: input.pick(&[0, 1, 60]),
        client_id: input.pick(&CLIENT_IDS).to_owned(),
        will,
        username: None,
        password: None,
        properties: ConnectProperties {
            session_expiry_interval: expiry,
            receive_maximum: (flags & 32 != 0).then_some(1),
            topic_alias_maximum: (flags & 64 != 0).then_some(2),
            ..ConnectProperties::default()
        },
    })
}

fn subscribe(c: &mut Client, input: &mut Input<'_>) -> Packet {
    let n = 1 + usize::from(input.byte() % 2);
    let filters = (0..n)
        .map(|_| {
            let flags = input.byte();
            let options = SubscriptionOptions {
                qos: input.qos(),
                no_local: flags & 1 != 0,
                retain_as_published: flags & 2 != 0,
                retain_handling: input.pick(&[
                    RetainHandling::SendAtSubscribe,
                    RetainHandling::SendIfNew,
                    RetainHandling::DoNotSend,
                ]),
            };
            (input.pick(&FILTERS).to_owned(), options)
        })
        .collect();
    let id = input.pick(&[None, Some(1), Some(7)]);
    Packet::Subscribe(Subscribe {
        packet_id: c.packet_id(input),
        filters,
        properties: SubscribeProperties {
            subscription_identifier: id,
            ..SubscribeProperties::default()
        },
    })
}

fn publish(c: &mut Client, input: &mut Input<'_>) -> Packet {
    let flags = input.byte();
    let qos = input.qos();
    let packet_id = (qos != QoS::AtMostOnce).then(|| c.packet_id(input));
    let payload: &'static [u8] = if flags & 1 != 0 { b"" } else { b"p" };
    Packet::Publish(Publish {
        dup: flags & 2 != 0,
        qos,
        retain: flags & 4 != 0,
        topic: Arc::from(input.pick(&TOPICS)),
        packet_id,
        properties: PublishProperties {
            message_expiry_interval: (flags & 8 != 0).then_some(1),
            ..PublishProperties::default()
        },
        payload: Bytes::from_static(payload),
    })
}

/// The client answers the oldest delivery (PUBACK, or PUBREC for QoS 2).
fn acknowledge(c: &mut Client) -> Option<Packet> {
    if c.unacked.is_empty() {
        return None;
    }
    let (id, qos) = c.unacked.remove(0);
    Some(match qos {
        QoS::ExactlyOnce => Packet::PubRec(PubResponse::new(id)),
        _ => Packet::PubAck(PubResponse::new(id)),
    })
}

fn client_op(c: &mut Client, input: &mut Input<'_>, now: Instant) {
    let packet = match input.byte() % 12 {
        0 | 1 => Some(connect(input)),
        2 => Some(subscribe(c, input)),
        3 => Some(publish(c, input)),
        4 => {
            // A burst of QoS 1 publishes in one write, past the Receive Maximum.
            let n = 1 + usize::from(input.byte() % 8);
            let mut wire = BytesMut::new();
            for _ in 0..n {
                let p = Packet::Publish(Publish {
                    dup: false,
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    topic: Arc::from(input.pick(&TOPICS)),
                    packet_id: Some(c.packet_id(input)),
                    properties: PublishProperties::default(),
                    payload: Bytes::from_static(b"b"),
                });
                let _ = encode_packet(&p, c.version, &mut wire);
            }
            c.receive_bytes(&wire, now);
            None
        }
        5 | 6 => acknowledge(c),
        7 => (!c.released.is_empty())
            .then(|| Packet::PubComp(PubResponse::new(c.released.remove(0)))),
        8 => {
            // The client's own QoS 2 publish: PUBREL for an id it chose.
            let id = c.packet_id(input);
            Some(Packet::PubRel(PubResponse::new(id)))
        }
        9 => Some(Packet::Unsubscribe(Unsubscribe {
            packet_id: c.packet_id(input),
            filters: vec![input.pick(&FILTERS).to_owned()],
            properties: UnsubscribeProperties::default(),
        })),
        10 => Some(Packet::Disconnect(Disconnect {
            reason: input.pick(&[ReasonCode::Success, ReasonCode::DisconnectWithWillMessage]),
            ..Disconnect::default()
        })),
        _ => {
            // Raw bytes, anything at all.
            let n = usize::from(input.byte() % 16);
            let bytes: Vec<u8> = (0..n).map(|_| input.byte()).collect();
            c.receive_bytes(&bytes, now);
            None
        }
    };
    if let Some(p) = packet {
        if let Packet::Connect(connect) = &p {
            c.version = connect.protocol;
        }
        c.send(&p, now);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let mut now = Instant::now();
    let persistent = input.byte() & 1 == 1;
    let mut core = Core::start(persistent.then(MemoryStore::new), now, 1_000_000);
    let mut clients: Vec<Client> = (0..3).map(|_| Client::new(now)).collect();
    let mut steps = 0;
    while !input.is_empty() && steps < 256 {
        steps += 1;
        let op = input.byte();
        let slot = usize::from(op >> 4) % clients.len();
        match op % 16 {
            0..=11 => client_op(&mut clients[slot], &mut input, now),
            12 | 13 => {
                let step = Duration::from_millis(u64::from(input.byte()) * 40);
                now += step;
                core.wall_ms += step.as_millis() as u64;
                core.broker.tick(now);
                for c in clients.iter_mut() {
                    if c.session.poll_timeout().is_some_and(|t| now >= t) {
                        c.session.handle_timeout(now);
                    }
                }
            }
            14 => {
                clients[slot]
                    .session
                    .connection_lost("fuzz: connection dropped");
                core.pump(&mut clients, now);
                clients[slot] = Client::new(now);
            }
            _ => {
                if let Some(store) = core.store.take() {
                    // A crash: connections and core state are gone; the
                    // store is what the next start finds.
                    clients = (0..3).map(|_| Client::new(now)).collect();
                    core = Core::start(Some(store), now, core.wall_ms);
                }
            }
        }
        core.pump(&mut clients, now);
        for c in clients.iter_mut() {
            if c.session.is_closing() {
                c.session.connection_lost("fuzz: closed");
            }
        }
        core.pump(&mut clients, now);
        for slot in 0..clients.len() {
            if clients[slot].session.is_closing() {
                clients[slot] = Client::new(now);
            }
        }
    }
    for c in clients.iter_mut() {
        c.session.connection_lost("fuzz: end of input");
    }
    core.pump(&mut clients, now);
    core.broker.shutdown();
});
