//! A small MQTT-SN 1.2 test sensor over a real UDP socket, built on the
//! crate's own codec so tests speak typed messages instead of hex.
//!
//! Every wait is bounded: a missing reply fails the test instead of hanging.

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sngate::mqttsn::codec::{
    self, ConnectFlags, Frame, Message, ReturnCode, SnQos, TopicFilterRef, TopicRef, WillTopic,
};
use sngate::qos::QoS;
use tokio::net::UdpSocket;

/// How long a sensor waits for an expected reply.
pub const REPLY_WAIT: Duration = Duration::from_secs(5);

/// A message the gateway delivered to the sensor, with its topic resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The topic as carried in the PUBLISH.
    pub topic: TopicRef,
    /// The topic name when the sensor knows it (registered, subscribed or short).
    pub name: Option<String>,
    /// QoS of the PUBLISH.
    pub qos: SnQos,
    /// Retain flag.
    pub retain: bool,
    /// Payload.
    pub data: Bytes,
}

/// One simulated sensor: its own UDP socket, so its own source port.
pub struct SnSensor {
    sock: UdpSocket,
    gw: SocketAddr,
    next_msg_id: u16,
    /// Topic ids the sensor knows, from REGACK, SUBACK or gateway REGISTER.
    pub names: HashMap<u16, String>,
}

impl SnSensor {
    /// A sensor on a fresh loopback port talking to the gateway at `gw`.
    pub async fn new(gw: SocketAddr) -> SnSensor {
        SnSensor {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            gw,
            next_msg_id: 0,
            names: HashMap::new(),
        }
    }

    /// The sensor's source address.
    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    /// A fresh non-zero MsgId.
    pub fn msg_id(&mut self) -> u16 {
        self.next_msg_id = self.next_msg_id.wrapping_add(1).max(1);
        self.next_msg_id
    }

    /// Sends one message.
    pub async fn send(&self, msg: &Message) {
        let mut buf = BytesMut::new();
        codec::encode(msg, &mut buf).unwrap();
        self.send_raw(&buf).await;
    }

    /// Sends raw octets as one datagram.
    pub async fn send_raw(&self, d: &[u8]) {
        self.sock.send_to(d, self.gw).await.unwrap();
    }

    /// The next datagram from the gateway as raw octets, or `None` after `wait`.
    pub async fn recv_raw_within(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; 65_536];
        match tokio::time::timeout(wait, self.sock.recv_from(&mut buf)).await {
            Ok(Ok((n, from))) => {
                assert_eq!(from, self.gw, "datagram from the gateway's address");
                buf.truncate(n);
                Some(buf)
            }
            _ => None,
        }
    }

    /// The next message from the gateway, or `None` after `wait`.
    pub async fn recv_within(&self, wait: Duration) -> Option<Message> {
        let raw = self.recv_raw_within(wait).await?;
        match codec::decode(&Bytes::from(raw)).expect("the gateway sends valid MQTT-SN") {
            Frame::Message(m) => Some(m),
            Frame::Encapsulated { .. } => panic!("unexpected encapsulation to a plain sensor"),
        }
    }

    /// The next message from the gateway; fails the test after [`REPLY_WAIT`].
    pub async fn recv(&self) -> Message {
        self.recv_within(REPLY_WAIT)
            .await
            .expect("a reply from the gateway within 5 s")
    }

    /// True when nothing arrives for `ms` milliseconds.
    pub async fn silent_for(&self, ms: u64) -> bool {
        self.recv_raw_within(Duration::from_millis(ms))
            .await
            .is_none()
    }

    /// CONNECT without will; returns the CONNACK code.
    pub async fn connect(&mut self, client_id: &str, keep_alive: u16, clean: bool) -> ReturnCode {
        self.send(&connect_msg(client_id, keep_alive, clean, false))
            .await;
        match self.recv().await {
            Message::ConnAck { code } => code,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// CONNECT with a will, answering WILLTOPICREQ and WILLMSGREQ; returns the CONNACK code.
    pub async fn connect_with_will(
        &mut self,
        client_id: &str,
        keep_alive: u16,
        will_topic: &str,
        will_qos: QoS,
        will_message: &[u8],
    ) -> ReturnCode {
        self.send(&connect_msg(client_id, keep_alive, true, true))
            .await;
        assert_eq!(self.recv().await, Message::WillTopicReq);
        self.send(&Message::WillTopic(Some(WillTopic {
            qos: will_qos,
            retain: false,
            topic: Bytes::copy_from_slice(will_topic.as_bytes()),
        })))
        .await;
        assert_eq!(self.recv().await, Message::WillMsgReq);
        self.send(&Message::WillMsg {
            message: Bytes::copy_from_slice(will_message),
        })
        .await;
        match self.recv().await {
            Message::ConnAck { code } => code,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// REGISTER `name`; returns the accepted topic id.
    pub async fn register(&mut self, name: &str) -> u16 {
        let msg_id = self.msg_id();
        self.send(&Message::Register {
            topic_id: 0,
            msg_id,
            topic_name: Bytes::copy_from_slice(name.as_bytes()),
        })
        .await;
        match self.recv().await {
            Message::RegAck {
                topic_id,
                msg_id: m,
                code: ReturnCode::Accepted,
            } if m == msg_id => {
                self.names.insert(topic_id, name.to_owned());
                topic_id
            }
            other => panic!("expected REGACK accepted for {msg_id}, got {other:?}"),
        }
    }

    /// Publishes and runs the QoS flow to its end; returns the PUBACK code
    /// for QoS 1 (and for a refused QoS 2), `None` for QoS 0/−1 and a
    /// completed QoS 2.
    pub async fn publish(
        &mut self,
        qos: SnQos,
        topic: TopicRef,
        retain: bool,
        data: &[u8],
    ) -> Option<ReturnCode> {
        let msg_id = match qos {
            SnQos::Level(QoS::AtLeastOnce) | SnQos::Level(QoS::ExactlyOnce) => self.msg_id(),
            _ => 0,
        };
        self.send(&Message::Publish {
            dup: false,
            qos,
            retain,
            topic,
            msg_id,
            data: Bytes::copy_from_slice(data),
        })
        .await;
        match qos {
            SnQos::Level(QoS::AtLeastOnce) => match self.recv().await {
                Message::PubAck {
                    msg_id: m, code, ..
                } if m == msg_id => Some(code),
                other => panic!("expected PUBACK for {msg_id}, got {other:?}"),
            },
            SnQos::Level(QoS::ExactlyOnce) => match self.recv().await {
                Message::PubRec { msg_id: m } if m == msg_id => {
                    self.send(&Message::PubRel { msg_id }).await;
                    match self.recv().await {
                        Message::PubComp { msg_id: m } if m == msg_id => None,
                        other => panic!("expected PUBCOMP for {msg_id}, got {other:?}"),
                    }
                }
                Message::PubAck { code, .. } => Some(code),
                other => panic!("expected PUBREC for {msg_id}, got {other:?}"),
            },
            _ => None,
        }
    }

    /// SUBSCRIBE; returns the SUBACK's (granted QoS, topic id, code).
    pub async fn subscribe(&mut self, topic: TopicFilterRef, qos: QoS) -> (QoS, u16, ReturnCode) {
        let msg_id = self.msg_id();
        self.send(&Message::Subscribe {
            dup: false,
            qos,
            msg_id,
            topic: topic.clone(),
        })
        .await;
        match self.recv().await {
            Message::SubAck {
                qos,
                topic_id,
                msg_id: m,
                code,
            } if m == msg_id => {
                if let (TopicFilterRef::Name(n), true) = (&topic, topic_id != 0) {
                    self.names
                        .insert(topic_id, String::from_utf8_lossy(n).into_owned());
                }
                (qos, topic_id, code)
            }
            other => panic!("expected SUBACK for {msg_id}, got {other:?}"),
        }
    }

    /// SUBSCRIBE to a topic name or filter.
    pub async fn subscribe_name(&mut self, filter: &str, qos: QoS) -> (QoS, u16, ReturnCode) {
        self.subscribe(
            TopicFilterRef::Name(Bytes::copy_from_slice(filter.as_bytes())),
            qos,
        )
        .await
    }

    /// Waits for the next PUBLISH, answering gateway REGISTERs with REGACK
    /// and acknowledging QoS 1/2 as a well-behaved client does.
    pub async fn next_publish(&mut self) -> Received {
        self.next_publish_within(REPLY_WAIT)
            .await
            .expect("a PUBLISH from the gateway within the wait")
    }

    /// Like [`next_publish`](Self::next_publish), `None` after `wait` without one.
    pub async fn next_publish_within(&mut self, wait: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv_within(left).await? {
                Message::Register {
                    topic_id,
                    msg_id,
                    topic_name,
                } => {
                    self.names
                        .insert(topic_id, String::from_utf8_lossy(&topic_name).into_owned());
                    self.send(&Message::RegAck {
                        topic_id,
                        msg_id,
                        code: ReturnCode::Accepted,
                    })
                    .await;
                }
                Message::Publish {
                    qos,
                    retain,
                    topic,
                    msg_id,
                    data,
                    ..
                } => {
                    let (tid, name) = match topic {
                        TopicRef::Normal(id) | TopicRef::Predefined(id) => {
                            (id, self.names.get(&id).cloned())
                        }
                        TopicRef::Short(s) => (0, Some(String::from_utf8_lossy(&s).into_owned())),
                    };
                    match qos {
                        SnQos::Level(QoS::AtLeastOnce) => {
                            self.send(&Message::PubAck {
                                topic_id: tid,
                                msg_id,
                                code: ReturnCode::Accepted,
                            })
                            .await
                        }
                        SnQos::Level(QoS::ExactlyOnce) => {
                            self.send(&Message::PubRec { msg_id }).await;
                            match self.recv().await {
                                Message::PubRel { msg_id: m } if m == msg_id => {
                                    self.send(&Message::PubComp { msg_id }).await
                                }
                                other => panic!("expected PUBREL for {msg_id}, got {other:?}"),
                            }
                        }
                        _ => {}
                    }
                    return Some(Received {
                        topic,
                        name,
                        qos,
                        retain,
                        data,
                    });
                }
                other => panic!("expected PUBLISH or REGISTER, got {other:?}"),
            }
        }
    }

    /// PINGREQ without client id; expects PINGRESP.
    pub async fn ping(&self) {
        self.send(&Message::PingReq { client_id: None }).await;
        assert_eq!(self.recv().await, Message::PingResp);
    }

    /// DISCONNECT (no duration); expects DISCONNECT back.
    pub async fn disconnect(&self) {
        self.send(&Message::Disconnect { duration: None }).await;
        assert_eq!(self.recv().await, Message::Disconnect { duration: None });
    }

    /// DISCONNECT with a sleep duration; expects DISCONNECT back.
    pub async fn sleep(&self, seconds: u16) {
        self.send(&Message::Disconnect {
            duration: Some(seconds),
        })
        .await;
        assert_eq!(self.recv().await, Message::Disconnect { duration: None });
    }
}

/// A CONNECT message.
pub fn connect_msg(client_id: &str, keep_alive: u16, clean: bool, will: bool) -> Message {
    Message::Connect {
        flags: ConnectFlags {
            will,
            clean_session: clean,
        },
        protocol_id: 1,
        duration: keep_alive,
        client_id: Bytes::copy_from_slice(client_id.as_bytes()),
    }
}

/// The octets of one message.
pub fn encoded(msg: &Message) -> Vec<u8> {
    let mut buf = BytesMut::new();
    codec::encode(msg, &mut buf).unwrap();
    buf.to_vec()
}
