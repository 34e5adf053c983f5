//! The MQTT-SN client flows behind `sngate sn`: connect (with will), register,
//! publish at every QoS, subscribe, receive, keep alive, sleep, disconnect.
//!
//! Message building and matching are plain functions of the codec types; the
//! only I/O is the [`Link`] the client is given, so a test can drive it against
//! a hand-written gateway on a UDP socket.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::link::Link;
use crate::mqttsn::codec::{
    ConnectFlags, Frame, Message, ReturnCode, SnQos, TopicFilterRef, TopicRef, WillTopic, decode,
    encode,
};
use crate::qos::QoS;

/// Why a client operation failed; each maps to exit code 1.
#[derive(Debug, Error)]
pub enum ClientError {
    /// No answer after every retry.
    #[error("no {0} from the gateway (timed out)")]
    Timeout(&'static str),
    /// The gateway answered with a refusal.
    #[error("{what} refused: {code:?}")]
    Refused {
        /// What was refused.
        what: &'static str,
        /// The return code.
        code: ReturnCode,
    },
    /// The gateway ended the session.
    #[error("the gateway sent DISCONNECT")]
    Disconnected,
    /// The socket or serial link failed.
    #[error("link: {0}")]
    Io(#[from] std::io::Error),
    /// A message could not be encoded (too long).
    #[error("cannot encode: {0}")]
    Encode(String),
}

/// A will for CONNECT (MQTT-SN 1.2 §6.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will topic name.
    pub topic: String,
    /// Will payload.
    pub message: Bytes,
    /// Will QoS.
    pub qos: QoS,
    /// Will retain flag.
    pub retain: bool,
}

/// Timing and identity of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Client id.
    pub client_id: String,
    /// Keep-alive in seconds.
    pub keepalive: u16,
    /// CleanSession flag.
    pub clean_session: bool,
    /// Optional will.
    pub will: Option<Will>,
    /// Wait for an answer before resending (Tretry, MQTT-SN 1.2 §6.13).
    pub retry_interval: Duration,
    /// Sends before giving up (Nretry).
    pub retries: u32,
    /// Print every packet to stderr.
    pub debug: bool,
}

/// A PUBLISH received from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Topic name when known; otherwise the id as text.
    pub topic: String,
    /// Payload.
    pub payload: Bytes,
    /// Retain flag as sent.
    pub retain: bool,
}

/// A connected (or connecting) MQTT-SN client.
#[derive(Debug)]
pub struct Client {
    link: Link,
    options: ClientOptions,
    next_msg_id: u16,
    /// Topic ids learned from REGACK, SUBACK and gateway REGISTERs.
    topics: HashMap<u16, String>,
    /// PUBLISHes that arrived while waiting for something else.
    inbox: VecDeque<Delivery>,
    /// QoS 2 message ids received but not yet released (no duplicate delivery).
    qos2_pending: HashSet<u16>,
    last_sent: Instant,
}

/// Topic name of a short topic or a predefined id, for printing.
fn topic_label(topic: TopicRef, topics: &HashMap<u16, String>) -> String {
    match topic {
        TopicRef::Normal(id) => topics.get(&id).cloned().unwrap_or_else(|| id.to_string()),
        TopicRef::Predefined(id) => topics.get(&id).cloned().unwrap_or_else(|| id.to_string()),
        TopicRef::Short(name) => String::from_utf8_lossy(&name).into_owned(),
    }
}

/// The topic id a PUBACK should carry.
fn topic_id_of(topic: TopicRef) -> u16 {
    match topic {
        TopicRef::Normal(id) | TopicRef::Predefined(id) => id,
        TopicRef::Short(name) => u16::from_be_bytes(name),
    }
}

/// Whether a topic filter contains MQTT wildcards (SUBACK then carries id 0, §6.9).
fn is_wildcard(filter: &str) -> bool {
    filter.contains('+') || filter.contains('#')
}

impl Client {
    /// A client over `link`; nothing is sent until [`Client::connect`].
    pub fn new(link: Link, options: ClientOptions) -> Client {
        Client {
            link,
            options,
            next_msg_id: 1,
            topics: HashMap::new(),
            inbox: VecDeque::new(),
            qos2_pending: HashSet::new(),
            last_sent: Instant::now(),
        }
    }

    fn msg_id(&mut self) -> u16 {
        let id = self.next_msg_id;
        // MsgId 0x0000 is reserved for QoS 0 and −1 (MQTT-SN 1.2 §5.3.6).
        self.next_msg_id = self.next_msg_id.checked_add(1).unwrap_or(1);
        id
    }

    /// Encodes and sends one message.
    pub async fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        let mut buf = BytesMut::new();
        encode(message, &mut buf).map_err(|e| ClientError::Encode(e.to_string()))?;
        if self.options.debug {
            eprintln!("-> {message:?}");
        }
        let broadcast = matches!(message, Message::SearchGw { .. });
        self.link.send(buf.freeze(), broadcast).await?;
        self.last_sent = Instant::now();
        Ok(())
    }

    /// The next message before `deadline`, answering what needs no decision
    /// (gateway REGISTER, PUBLISH acknowledgements) and queueing deliveries.
    async fn recv(&mut self, deadline: Instant) -> Result<Option<Message>, ClientError> {
        loop {
            let Some(received) = self.link.recv(deadline).await? else {
                return Ok(None);
            };
            let Ok(Frame::Message(message)) = decode(&received.datagram) else {
                if self.options.debug {
                    eprintln!("<- undecodable {:02x?}", &received.datagram[..]);
                }
                continue;
            };
            if self.options.debug {
                eprintln!("<- {message:?}");
            }
            if !self.absorb(&message).await? {
                return Ok(Some(message));
            }
        }
    }

    /// Handles messages the gateway may send at any time; true when consumed.
    async fn absorb(&mut self, message: &Message) -> Result<bool, ClientError> {
        match message {
            // Gateway-initiated REGISTER for a wildcard subscription (MQTT-SN 1.2 §6.10).
            Message::Register {
                topic_id,
                msg_id,
                topic_name,
            } => {
                self.topics
                    .insert(*topic_id, String::from_utf8_lossy(topic_name).into_owned());
                let ack = Message::RegAck {
                    topic_id: *topic_id,
                    msg_id: *msg_id,
                    code: ReturnCode::Accepted,
                };
                self.send(&ack).await?;
                Ok(true)
            }
            Message::Publish {
                qos,
                retain,
                topic,
                msg_id,
                data,
                ..
            } => {
                let delivery = Delivery {
                    topic: topic_label(*topic, &self.topics),
                    payload: data.clone(),
                    retain: *retain,
                };
                match qos {
                    SnQos::Level(QoS::AtLeastOnce) => {
                        let ack = Message::PubAck {
                            topic_id: topic_id_of(*topic),
                            msg_id: *msg_id,
                            code: ReturnCode::Accepted,
                        };
                        self.send(&ack).await?;
                        self.inbox.push_back(delivery);
                    }
                    SnQos::Level(QoS::ExactlyOnce) => {
                        self.send(&Message::PubRec { msg_id: *msg_id }).await?;
                        if self.qos2_pending.insert(*msg_id) {
                            self.inbox.push_back(delivery);
                        }
                    }
                    _ => self.inbox.push_back(delivery),
                }
                Ok(true)
            }
            Message::PubRel { msg_id } => {
                self.qos2_pending.remove(msg_id);
                self.send(&Message::PubComp { msg_id: *msg_id }).await?;
                Ok(true)
            }
            Message::PingReq { .. } => {
                self.send(&Message::PingResp).await?;
                Ok(true)
            }
            Message::WillTopicReq | Message::WillMsgReq => self.will_answer(message).await,
            _ => Ok(false),
        }
    }

    /// Sends `request` up to `retries` times until `answer` picks a reply.
    async fn request<T>(
        &mut self,
        request: Message,
        what: &'static str,
        answer: impl Fn(&Message) -> Option<T>,
    ) -> Result<T, ClientError> {
        for _ in 0..self.options.retries.max(1) {
            self.send(&request).await?;
            let deadline = Instant::now() + self.options.retry_interval;
            while let Some(message) = self.recv(deadline).await? {
                if let Some(found) = answer(&message) {
                    return Ok(found);
                }
                if matches!(message, Message::Disconnect { .. }) && what != "DISCONNECT" {
                    return Err(ClientError::Disconnected);
                }
            }
        }
        Err(ClientError::Timeout(what))
    }

    /// CONNECT, the will dialogue if a will is set, and CONNACK (MQTT-SN 1.2 §6.2, §6.3).
    pub async fn connect(&mut self) -> Result<(), ClientError> {
        let connect = Message::Connect {
            flags: ConnectFlags {
                will: self.options.will.is_some(),
                clean_session: self.options.clean_session,
            },
            protocol_id: 0x01,
            duration: self.options.keepalive,
            client_id: Bytes::from(self.options.client_id.clone()),
        };
        // WILLTOPICREQ and WILLMSGREQ come before CONNACK; `absorb` answers them.
        let code = self
            .request(connect, "CONNACK", |m| match m {
                Message::ConnAck { code } => Some(*code),
                _ => None,
            })
            .await?;
        accepted("CONNECT", code)
    }

    /// Answers WILLTOPICREQ with WILLTOPIC and WILLMSGREQ with WILLMSG (MQTT-SN 1.2 §6.3).
    async fn will_answer(&mut self, message: &Message) -> Result<bool, ClientError> {
        let Some(will) = self.options.will.clone() else {
            return Ok(false);
        };
        match message {
            Message::WillTopicReq => {
                let topic = WillTopic {
                    qos: will.qos,
                    retain: will.retain,
                    topic: Bytes::from(will.topic),
                };
                self.send(&Message::WillTopic(Some(topic))).await?;
                Ok(true)
            }
            Message::WillMsgReq => {
                self.send(&Message::WillMsg {
                    message: will.message,
                })
                .await?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// REGISTER `topic` and return its id (MQTT-SN 1.2 §6.5).
    pub async fn register(&mut self, topic: &str) -> Result<u16, ClientError> {
        let msg_id = self.msg_id();
        let register = Message::Register {
            topic_id: 0,
            msg_id,
            topic_name: Bytes::from(topic.to_owned()),
        };
        let (topic_id, code) = self
            .request(register, "REGACK", |m| match m {
                Message::RegAck {
                    topic_id,
                    msg_id: id,
                    code,
                } if *id == msg_id => Some((*topic_id, *code)),
                _ => None,
            })
            .await?;
        accepted("REGISTER", code)?;
        self.topics.insert(topic_id, topic.to_owned());
        Ok(topic_id)
    }

    /// PUBLISH at `qos` and complete its acknowledgement flow (MQTT-SN 1.2 §6.6–6.8).
    pub async fn publish(
        &mut self,
        topic: TopicRef,
        qos: SnQos,
        retain: bool,
        data: Bytes,
    ) -> Result<(), ClientError> {
        let msg_id = match qos {
            SnQos::Level(QoS::AtLeastOnce | QoS::ExactlyOnce) => self.msg_id(),
            _ => 0,
        };
        let publish = Message::Publish {
            dup: false,
            qos,
            retain,
            topic,
            msg_id,
            data,
        };
        match qos {
            SnQos::Level(QoS::AtLeastOnce) => {
                let code = self
                    .request(publish, "PUBACK", |m| match m {
                        Message::PubAck {
                            msg_id: id, code, ..
                        } if *id == msg_id => Some(*code),
                        _ => None,
                    })
                    .await?;
                accepted("PUBLISH", code)
            }
            SnQos::Level(QoS::ExactlyOnce) => {
                let rec = self
                    .request(publish, "PUBREC", |m| match m {
                        Message::PubRec { msg_id: id } if *id == msg_id => Some(Ok(())),
                        Message::PubAck {
                            msg_id: id, code, ..
                        } if *id == msg_id => Some(accepted("PUBLISH", *code)),
                        _ => None,
                    })
                    .await?;
                rec?;
                self.request(Message::PubRel { msg_id }, "PUBCOMP", |m| {
                    matches!(m, Message::PubComp { msg_id: id } if *id == msg_id).then_some(())
                })
                .await
            }
            _ => self.send(&publish).await,
        }
    }

    /// SUBSCRIBE to a filter, a predefined id or a short name; returns the granted QoS
    /// (MQTT-SN 1.2 §6.9).
    pub async fn subscribe(&mut self, topic: TopicFilterRef, qos: QoS) -> Result<QoS, ClientError> {
        let msg_id = self.msg_id();
        let subscribe = Message::Subscribe {
            dup: false,
            qos,
            msg_id,
            topic: topic.clone(),
        };
        let (granted, topic_id, code) = self
            .request(subscribe, "SUBACK", |m| match m {
                Message::SubAck {
                    qos,
                    topic_id,
                    msg_id: id,
                    code,
                } if *id == msg_id => Some((*qos, *topic_id, *code)),
                _ => None,
            })
            .await?;
        accepted("SUBSCRIBE", code)?;
        if let TopicFilterRef::Name(name) = topic {
            let name = String::from_utf8_lossy(&name).into_owned();
            if !is_wildcard(&name) && topic_id != 0 {
                self.topics.insert(topic_id, name);
            }
        }
        Ok(granted)
    }

    /// Remembers a name for a predefined id, for printing.
    pub fn name_predefined(&mut self, id: u16, name: String) {
        self.topics.insert(id, name);
    }

    /// The next PUBLISH before `deadline`, sending PINGREQ when the keep-alive is due.
    pub async fn next_delivery(
        &mut self,
        deadline: Instant,
    ) -> Result<Option<Delivery>, ClientError> {
        loop {
            if let Some(delivery) = self.inbox.pop_front() {
                return Ok(Some(delivery));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let ping_due = self.ping_due();
            if ping_due <= now {
                self.send(&Message::PingReq { client_id: None }).await?;
                continue;
            }
            if let Some(Message::Disconnect { .. }) = self.recv(deadline.min(ping_due)).await? {
                return Err(ClientError::Disconnected);
            }
        }
    }

    /// When the next PINGREQ is due: at three quarters of the keep-alive period.
    fn ping_due(&self) -> Instant {
        if self.options.keepalive == 0 {
            return self.last_sent + Duration::from_secs(u64::from(u32::MAX));
        }
        self.last_sent + Duration::from_millis(u64::from(self.options.keepalive) * 750)
    }

    /// Wakes a sleeping session with PINGREQ(client id) and collects what the
    /// gateway buffered until PINGRESP (MQTT-SN 1.2 §6.14).
    pub async fn wake(&mut self) -> Result<Vec<Delivery>, ClientError> {
        let ping = Message::PingReq {
            client_id: Some(Bytes::from(self.options.client_id.clone())),
        };
        self.request(ping, "PINGRESP", |m| {
            matches!(m, Message::PingResp).then_some(())
        })
        .await?;
        Ok(self.inbox.drain(..).collect())
    }

    /// DISCONNECT, with a sleep duration to go to sleep; waits for the gateway's DISCONNECT.
    pub async fn disconnect(&mut self, sleep: Option<u16>) -> Result<(), ClientError> {
        self.request(Message::Disconnect { duration: sleep }, "DISCONNECT", |m| {
            matches!(m, Message::Disconnect { .. }).then_some(())
        })
        .await
    }
}

/// Ok for an accepted return code, the refusal otherwise.
fn accepted(what: &'static str, code: ReturnCode) -> Result<(), ClientError> {
    match code {
        ReturnCode::Accepted => Ok(()),
        code => Err(ClientError::Refused { what, code }),
    }
}
