//! The sn client against a fake gateway: a UDP socket answering with hand-written messages.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Parser;
use tokio::net::UdpSocket;

use super::client::{Client, ClientError, ClientOptions, Delivery, Will};
use super::commands;
use super::link::Link;
use super::*;
use crate::cli::{Cli, Command};
use crate::mqttsn::codec::{
    Frame, Message, ReturnCode, SnQos, TopicFilterRef, TopicRef, WillTopic, decode, encode,
};
use crate::qos::QoS;

type Seen = Arc<Mutex<Vec<Message>>>;

/// Starts a fake gateway: `reply` maps each received message to the messages to send back.
async fn fake_gateway(
    reply: impl FnMut(&Message) -> Vec<Message> + Send + 'static,
) -> (SocketAddr, Seen) {
    fake_gateway_on(UdpSocket::bind("127.0.0.1:0").await.unwrap(), reply)
}

fn fake_gateway_on(
    socket: UdpSocket,
    mut reply: impl FnMut(&Message) -> Vec<Message> + Send + 'static,
) -> (SocketAddr, Seen) {
    let addr = socket.local_addr().unwrap();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            let Ok(Frame::Message(m)) = decode(&Bytes::copy_from_slice(&buf[..n])) else {
                continue;
            };
            log.lock().unwrap().push(m.clone());
            for r in reply(&m) {
                let mut out = BytesMut::new();
                encode(&r, &mut out).unwrap();
                socket.send_to(&out, from).await.unwrap();
            }
        }
    });
    (addr, seen)
}

/// Answers CONNECT, REGISTER, PUBLISH, PUBREL, SUBSCRIBE and DISCONNECT like a gateway.
fn polite(m: &Message) -> Vec<Message> {
    match m {
        Message::Connect { .. } => vec![Message::ConnAck {
            code: ReturnCode::Accepted,
        }],
        Message::Register { msg_id, .. } => vec![Message::RegAck {
            topic_id: 5,
            msg_id: *msg_id,
            code: ReturnCode::Accepted,
        }],
        Message::Publish {
            qos: SnQos::Level(QoS::AtLeastOnce),
            msg_id,
            ..
        } => vec![Message::PubAck {
            topic_id: 5,
            msg_id: *msg_id,
            code: ReturnCode::Accepted,
        }],
        Message::Publish {
            qos: SnQos::Level(QoS::ExactlyOnce),
            msg_id,
            ..
        } => vec![Message::PubRec { msg_id: *msg_id }],
        Message::PubRel { msg_id } => vec![Message::PubComp { msg_id: *msg_id }],
        Message::Subscribe { msg_id, qos, .. } => vec![Message::SubAck {
            qos: *qos,
            topic_id: 0,
            msg_id: *msg_id,
            code: ReturnCode::Accepted,
        }],
        Message::Disconnect { .. } => vec![Message::Disconnect { duration: None }],
        _ => vec![],
    }
}

fn options() -> ClientOptions {
    ClientOptions {
        client_id: "probe".into(),
        keepalive: 60,
        clean_session: true,
        will: None,
        retry_interval: Duration::from_millis(300),
        retries: 2,
        debug: false,
    }
}

async fn client(gateway: SocketAddr) -> Client {
    Client::new(Link::udp(gateway, false).await.unwrap(), options())
}

fn seen(log: &Seen) -> Vec<Message> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn publish_qos1_registers_the_topic_then_publishes_with_its_id() {
    let (gw, log) = fake_gateway(polite).await;
    let mut c = client(gw).await;
    c.connect().await.unwrap();
    let id = c.register("sensors/t").await.unwrap();
    c.publish(
        TopicRef::Normal(id),
        SnQos::Level(QoS::AtLeastOnce),
        false,
        Bytes::from("21.5"),
    )
    .await
    .unwrap();
    c.disconnect(None).await.unwrap();
    let log = seen(&log);
    assert!(
        matches!(log[1], Message::Register { ref topic_name, .. } if &topic_name[..] == b"sensors/t")
    );
    assert!(
        matches!(log[2], Message::Publish { topic: TopicRef::Normal(5), ref data, .. } if &data[..] == b"21.5")
    );
    assert!(matches!(log[3], Message::Disconnect { duration: None }));
}

#[tokio::test]
async fn publish_qos2_completes_the_pubrec_pubrel_pubcomp_flow() {
    let (gw, log) = fake_gateway(polite).await;
    let mut c = client(gw).await;
    c.connect().await.unwrap();
    c.publish(
        TopicRef::Short(*b"ab"),
        SnQos::Level(QoS::ExactlyOnce),
        true,
        Bytes::from("x"),
    )
    .await
    .unwrap();
    let log = seen(&log);
    let Message::Publish {
        msg_id,
        retain: true,
        ..
    } = log[1]
    else {
        panic!("{log:?}")
    };
    assert_eq!(log[2], Message::PubRel { msg_id });
}

#[tokio::test]
async fn connect_with_a_will_answers_willtopicreq_and_willmsgreq() {
    let (gw, log) = fake_gateway(|m| match m {
        Message::Connect { flags, .. } if flags.will => vec![Message::WillTopicReq],
        Message::WillTopic(_) => vec![Message::WillMsgReq],
        Message::WillMsg { .. } => vec![Message::ConnAck {
            code: ReturnCode::Accepted,
        }],
        _ => vec![],
    })
    .await;
    let mut opts = options();
    opts.will = Some(Will {
        topic: "status/probe".into(),
        message: Bytes::from("gone"),
        qos: QoS::AtLeastOnce,
        retain: true,
    });
    let mut c = Client::new(Link::udp(gw, false).await.unwrap(), opts);
    c.connect().await.unwrap();
    let log = seen(&log);
    assert_eq!(
        log[1],
        Message::WillTopic(Some(WillTopic {
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: Bytes::from("status/probe"),
        }))
    );
    assert_eq!(
        log[2],
        Message::WillMsg {
            message: Bytes::from("gone")
        }
    );
}

#[tokio::test]
async fn a_refused_connect_is_an_error_naming_the_return_code() {
    let (gw, _) = fake_gateway(|_| {
        vec![Message::ConnAck {
            code: ReturnCode::Congestion,
        }]
    })
    .await;
    let err = client(gw).await.connect().await.unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ReturnCode::Congestion,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_silent_gateway_times_out_after_the_retries() {
    let (gw, log) = fake_gateway(|_| vec![]).await;
    let err = client(gw).await.connect().await.unwrap_err();
    assert!(matches!(err, ClientError::Timeout("CONNACK")), "{err}");
    assert_eq!(seen(&log).len(), 2, "CONNECT sent once per retry");
}

#[tokio::test]
async fn a_wildcard_subscription_learns_topic_names_from_gateway_registers() {
    let (gw, log) = fake_gateway(|m| match m {
        Message::Subscribe { msg_id, .. } => vec![
            Message::SubAck {
                qos: QoS::AtLeastOnce,
                topic_id: 0,
                msg_id: *msg_id,
                code: ReturnCode::Accepted,
            },
            Message::Register {
                topic_id: 7,
                msg_id: 100,
                topic_name: Bytes::from("room/1/temp"),
            },
        ],
        Message::RegAck { topic_id: 7, .. } => vec![Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: TopicRef::Normal(7),
            msg_id: 200,
            data: Bytes::from("19"),
        }],
        other => polite(other),
    })
    .await;
    let mut c = client(gw).await;
    c.connect().await.unwrap();
    let filter = TopicFilterRef::Name(Bytes::from("room/+/temp"));
    assert_eq!(
        c.subscribe(filter, QoS::AtLeastOnce).await.unwrap(),
        QoS::AtLeastOnce
    );
    let d = c
        .next_delivery(Instant::now() + Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        d,
        Some(Delivery {
            topic: "room/1/temp".into(),
            payload: Bytes::from("19"),
            retain: false
        })
    );
    let log = seen(&log);
    assert!(log.contains(&Message::RegAck {
        topic_id: 7,
        msg_id: 100,
        code: ReturnCode::Accepted
    }));
    assert!(log.contains(&Message::PubAck {
        topic_id: 7,
        msg_id: 200,
        code: ReturnCode::Accepted
    }));
}

#[tokio::test]
async fn a_sleeping_client_wakes_with_pingreq_and_gets_the_buffered_messages() {
    let (gw, log) = fake_gateway(|m| match m {
        Message::PingReq { client_id: Some(_) } => vec![
            Message::Publish {
                dup: false,
                qos: SnQos::Level(QoS::AtMostOnce),
                retain: false,
                topic: TopicRef::Short(*b"ab"),
                msg_id: 0,
                data: Bytes::from("while asleep"),
            },
            Message::PingResp,
        ],
        other => polite(other),
    })
    .await;
    let mut c = client(gw).await;
    c.connect().await.unwrap();
    c.disconnect(Some(30)).await.unwrap();
    let got = c.wake().await.unwrap();
    assert_eq!(got[0].payload, Bytes::from("while asleep"));
    assert_eq!(got[0].topic, "ab");
    assert!(seen(&log).contains(&Message::Disconnect { duration: Some(30) }));
}

#[tokio::test]
async fn search_prints_the_gateway_that_answers() {
    let (gw, _) = fake_gateway(|m| match m {
        Message::SearchGw { .. } => vec![Message::GwInfo {
            gw_id: 3,
            gw_add: Bytes::new(),
        }],
        _ => vec![],
    })
    .await;
    let cli = Cli::try_parse_from([
        "sngate",
        "sn",
        "search",
        "-h",
        "127.0.0.1",
        "-p",
        &gw.port().to_string(),
        "-W",
        "2",
    ])
    .unwrap();
    let Some(Command::Sn(SnCommand::Search(args))) = cli.command else {
        panic!()
    };
    let mut out = Vec::new();
    commands::search(&args, &mut out).await.unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("gateway 3 at {gw}\n")
    );
}

#[tokio::test]
async fn sub_with_count_prints_topic_and_payload_and_exits() {
    let (gw, _) = fake_gateway(|m| match m {
        Message::Subscribe { msg_id, .. } => vec![
            Message::SubAck {
                qos: QoS::AtMostOnce,
                topic_id: 9,
                msg_id: *msg_id,
                code: ReturnCode::Accepted,
            },
            Message::Publish {
                dup: false,
                qos: SnQos::Level(QoS::AtMostOnce),
                retain: false,
                topic: TopicRef::Normal(9),
                msg_id: 0,
                data: Bytes::from("on"),
            },
        ],
        other => polite(other),
    })
    .await;
    let port = gw.port().to_string();
    let cli = Cli::try_parse_from([
        "sngate", "sn", "sub", "-p", &port, "-t", "lamp", "-v", "-C", "1", "-W", "3",
    ])
    .unwrap();
    let Some(Command::Sn(SnCommand::Sub(args))) = cli.command else {
        panic!()
    };
    let mut out = Vec::new();
    commands::subscribe(&args, &mut out).await.unwrap();
    assert_eq!(String::from_utf8(out).unwrap(), "lamp on\n");
}

#[tokio::test]
async fn pub_over_ipv6_reaches_the_gateway() {
    let Ok(socket) = UdpSocket::bind("[::1]:0").await else {
        return; // no IPv6 loopback on this machine
    };
    let (gw, log) = fake_gateway_on(socket, polite);
    let port = gw.port().to_string();
    let cli = Cli::try_parse_from([
        "sngate", "sn", "pub", "-h", "::1", "-p", &port, "-T", "ab", "-m", "hi", "-q", "1",
    ])
    .unwrap();
    let Some(Command::Sn(SnCommand::Pub(args))) = cli.command else {
        panic!()
    };
    commands::publish(&args).await.unwrap();
    assert!(
        seen(&log)
            .iter()
            .any(|m| matches!(m, Message::Publish { topic: TopicRef::Short(n), .. } if n == b"ab"))
    );
}

#[test]
fn pub_accepts_qos_minus_one_and_a_predefined_id() {
    let cli = Cli::try_parse_from([
        "sngate",
        "sn",
        "pub",
        "--topic-id",
        "12",
        "-m",
        "x",
        "-q",
        "-1",
    ])
    .unwrap();
    let Some(Command::Sn(SnCommand::Pub(args))) = cli.command else {
        panic!()
    };
    assert_eq!(
        (args.qos, args.topic_id, args.link.port),
        (-1, Some(12), 1884)
    );
}

#[test]
fn pub_needs_a_topic_and_a_payload() {
    assert!(Cli::try_parse_from(["sngate", "sn", "pub", "-m", "x"]).is_err());
    assert!(Cli::try_parse_from(["sngate", "sn", "pub", "-t", "a"]).is_err());
}

#[test]
fn serial_options_parse() {
    let cli = Cli::try_parse_from([
        "sngate",
        "sn",
        "sub",
        "-t",
        "a/#",
        "--serial",
        "/dev/ttyUSB0",
        "--baud",
        "9600",
        "--framing",
        "xbee",
        "--xbee-dest",
        "0013A20041052C00",
    ])
    .unwrap();
    let Some(Command::Sn(SnCommand::Sub(args))) = cli.command else {
        panic!()
    };
    assert_eq!(args.link.framing, FramingArg::Xbee);
    assert_eq!(args.link.xbee_dest, Some(0x0013_A200_4105_2C00));
    assert_eq!(args.link.baud, 9600);
}
