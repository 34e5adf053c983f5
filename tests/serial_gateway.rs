//! MQTT-SN over serial lines, end to end: a pseudo-terminal pair made by
//! `socat` stands in for the radio link; the simulated node on one end is the
//! `sngate sn` client (or, for XBee, hand-written API frames), and sngate's
//! `[[gateway.serial]]` is on the other end. MQTT peers are Mosquitto's clients.

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{Sub, mosquitto_pub, require_tool, start_config};
use sngate::mqttsn::codec::{self, ConnectFlags, Frame, Message, ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;
use tokio::process::{Child, Command};

const WAIT: Duration = Duration::from_secs(10);

/// A connected pair of pseudo-terminals with stable names `gw` and `node`.
struct Pty {
    dir: PathBuf,
    socat: Child,
}

impl Pty {
    async fn open(dir: &Path) -> Pty {
        require_tool("socat");
        let socat = spawn_socat(dir);
        let gw = dir.join("gw");
        let deadline = Instant::now() + WAIT;
        while !(gw.exists() && dir.join("node").exists()) {
            assert!(
                Instant::now() < deadline,
                "socat did not create the pty pair"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Pty {
            dir: dir.to_path_buf(),
            socat,
        }
    }

    fn gw(&self) -> String {
        self.dir.join("gw").display().to_string()
    }

    fn node(&self) -> String {
        self.dir.join("node").display().to_string()
    }

    /// Ends socat: both ends disappear, as when a USB radio is unplugged.
    async fn unplug(&mut self) {
        let _ = self.socat.kill().await;
        let _ = self.socat.wait().await;
        let deadline = Instant::now() + WAIT;
        while self.dir.join("gw").exists() {
            assert!(Instant::now() < deadline, "socat left its links behind");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A new pty pair at the same names, as when the radio is plugged back in.
    async fn replug(&mut self) {
        self.socat = spawn_socat(&self.dir);
        let deadline = Instant::now() + WAIT;
        while !self.dir.join("gw").exists() {
            assert!(
                Instant::now() < deadline,
                "socat did not create the pty pair"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn spawn_socat(dir: &Path) -> Child {
    Command::new("socat")
        .arg(format!("pty,raw,echo=0,link={}", dir.join("gw").display()))
        .arg(format!(
            "pty,raw,echo=0,link={}",
            dir.join("node").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("socat runs")
}

fn serial_config(device: &str, framing: &str, extra: &str) -> String {
    format!(
        r#"
[broker]
sys_interval = 0

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0

[[gateway.udp]]
bind = "127.0.0.1:0"

[[gateway.serial]]
device = "{device}"
baud = 115200
framing = "{framing}"
{extra}
"#
    )
}

/// Runs `sngate sn ARGS` to completion and returns (exit code, stdout).
async fn sn(args: &[&str]) -> (i32, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(env!("CARGO_BIN_EXE_sngate"))
            .arg("sn")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("sngate sn finishes")
    .expect("sngate sn runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        eprintln!("sngate sn {args:?} failed: {stderr}");
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn serial_args<'a>(node: &'a str, framing: &'a str, crc: bool) -> Vec<&'a str> {
    let mut v = vec!["--serial", node, "--framing", framing];
    if crc {
        v.push("--crc");
    }
    v
}

async fn publishes_reach_mqtt_subscriber(framing: &str, crc: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pty = Pty::open(dir.path()).await;
    let extra = if crc { "crc = true" } else { "" };
    let gw = start_config(&serial_config(&pty.gw(), framing, extra)).await;
    let mqtt = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(mqtt, &["-t", "radio/#", "-v", "-q", "2"]).await;
    let node = pty.node();
    for qos in ["0", "1", "2"] {
        let topic = format!("radio/{framing}/q{qos}");
        let mut args = vec!["pub"];
        args.extend(serial_args(&node, framing, crc));
        args.extend(["-i", "node-1", "-t", &topic, "-m", "reading", "-q", qos]);
        assert_eq!(sn(&args).await.0, 0, "publish at QoS {qos} succeeds");
    }
    let lines = sub.lines(3, WAIT).await;
    assert_eq!(
        lines,
        [
            format!("radio/{framing}/q0 reading"),
            format!("radio/{framing}/q1 reading"),
            format!("radio/{framing}/q2 reading"),
        ]
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_framing_sensor_publishes_qos0_1_2_to_mqtt_subscriber() {
    publishes_reach_mqtt_subscriber("raw", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slip_framing_sensor_publishes_qos0_1_2_to_mqtt_subscriber() {
    publishes_reach_mqtt_subscriber("slip", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slip_with_crc_sensor_publishes_qos0_1_2_to_mqtt_subscriber() {
    publishes_reach_mqtt_subscriber("slip", true).await;
}

async fn subscribed_sensor_receives_from_mosquitto_pub(framing: &str, crc: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let pty = Pty::open(dir.path()).await;
    let extra = if crc { "crc = true" } else { "" };
    let gw = start_config(&serial_config(&pty.gw(), framing, extra)).await;
    let mqtt = gw.mqtt_addr().expect("mqtt listener");
    let node = pty.node();
    let mut args = vec!["sub"];
    args.extend(serial_args(&node, framing, crc));
    args.extend([
        "-i", "node-2", "-t", "cmd/#", "-q", "1", "-v", "-C", "2", "-W", "15",
    ]);
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let sub = tokio::spawn(async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sn(&refs).await
    });
    // Give the client time to connect and subscribe over the line.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mosquitto_pub(mqtt, &["-t", "cmd/valve", "-m", "open", "-q", "1"]).await;
    mosquitto_pub(mqtt, &["-t", "cmd/fan", "-m", "off", "-q", "0"]).await;
    let (code, out) = sub.await.expect("sub task");
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["cmd/valve open", "cmd/fan off"]
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_framing_sensor_subscribes_and_receives_from_mosquitto_pub() {
    subscribed_sensor_receives_from_mosquitto_pub("raw", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slip_with_crc_sensor_subscribes_and_receives_from_mosquitto_pub() {
    subscribed_sensor_receives_from_mosquitto_pub("slip", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeping_serial_sensor_gets_buffered_message_when_it_wakes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pty = Pty::open(dir.path()).await;
    let gw = start_config(&serial_config(&pty.gw(), "slip", "crc = true")).await;
    let mqtt = gw.mqtt_addr().expect("mqtt listener");
    let node = pty.node();
    let args: Vec<String> = [
        "sub",
        "--serial",
        &node,
        "--framing",
        "slip",
        "--crc",
        "-i",
        "sleepy",
        "-t",
        "sleep/in",
        "-q",
        "1",
        "--sleep",
        "2",
        "-C",
        "1",
        "-W",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sub = tokio::spawn(async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        sn(&refs).await
    });
    // Connect, subscribe, then DISCONNECT(duration): the sensor is asleep.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    mosquitto_pub(mqtt, &["-t", "sleep/in", "-m", "while-asleep", "-q", "1"]).await;
    let (code, out) = sub.await.expect("sub task");
    assert_eq!(code, 0, "the sleeping sensor got its message on waking");
    assert_eq!(out.trim(), "while-asleep");
    gw.stop().await;
}

/// The coordinator side of an XBee link in API mode 1, written by hand from
/// Digi's frame format so that it does not share code with sngate's framing.
struct Coordinator {
    writer: std::fs::File,
    frames: std_mpsc::Receiver<Vec<u8>>,
    escaped: bool,
}

/// API mode 2 escapes these octets after the start delimiter as 0x7D, b ^ 0x20.
const XBEE_ESCAPED: [u8; 4] = [0x7E, 0x7D, 0x11, 0x13];

impl Coordinator {
    fn open(path: &str, escaped: bool) -> Coordinator {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open pty");
        let mut reader = file.try_clone().expect("clone pty");
        let (tx, frames) = std_mpsc::channel();
        std::thread::spawn(move || {
            let mut pending: Vec<u8> = Vec::new();
            let mut buf = [0u8; 512];
            let mut escape_next = false;
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                for &b in &buf[..n] {
                    if escaped && b == 0x7D {
                        escape_next = true;
                    } else if escape_next {
                        escape_next = false;
                        pending.push(b ^ 0x20);
                    } else {
                        pending.push(b);
                    }
                }
                // 0x7E, u16 length, frame data, checksum.
                while let Some(start) = pending.iter().position(|&b| b == 0x7E) {
                    pending.drain(..start);
                    if pending.len() < 3 {
                        break;
                    }
                    let len = usize::from(u16::from_be_bytes([pending[1], pending[2]]));
                    if pending.len() < 4 + len {
                        break;
                    }
                    let data = pending[3..3 + len].to_vec();
                    let sum: u8 = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
                    let ok = sum.wrapping_add(pending[3 + len]) == 0xFF;
                    pending.drain(..4 + len);
                    if ok && tx.send(data).is_err() {
                        return;
                    }
                }
            }
        });
        Coordinator {
            writer: file,
            frames,
            escaped,
        }
    }

    /// Delivers `message` as if radio `source` had sent it (Receive Packet 0x90).
    fn receive_from(&mut self, source: u64, message: &Message) {
        let mut sn = BytesMut::new();
        codec::encode(message, &mut sn).expect("encodes");
        let mut data = vec![0x90];
        data.extend_from_slice(&source.to_be_bytes());
        data.extend_from_slice(&[0xFF, 0xFE, 0x01]);
        data.extend_from_slice(&sn);
        let sum: u8 = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        let len = u16::try_from(data.len())
            .expect("small frame")
            .to_be_bytes();
        let mut body = vec![len[0], len[1]];
        body.extend_from_slice(&data);
        body.push(0xFF - sum);
        let mut frame = vec![0x7E];
        for b in body {
            if self.escaped && XBEE_ESCAPED.contains(&b) {
                frame.extend_from_slice(&[0x7D, b ^ 0x20]);
            } else {
                frame.push(b);
            }
        }
        self.writer.write_all(&frame).expect("write pty");
    }

    /// The next Transmit Request (0x10) the gateway sent: destination and message.
    fn next_transmit(&self, wait: Duration) -> Option<(u64, Message)> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let data = self.frames.recv_timeout(left).ok()?;
            if data.first() != Some(&0x10) || data.len() < 14 {
                continue;
            }
            let dest = u64::from_be_bytes(data[2..10].try_into().ok()?);
            let message = Bytes::copy_from_slice(&data[14..]);
            if let Ok(Frame::Message(m)) = codec::decode(&message) {
                return Some((dest, m));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xbee_remote_radios_are_independent_sensor_sessions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pty = Pty::open(dir.path()).await;
    let gw = start_config(&serial_config(&pty.gw(), "xbee", "api_mode = 1")).await;
    let mqtt = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(mqtt, &["-t", "field/#", "-v"]).await;
    let node = pty.node();
    let radios: [u64; 3] = [
        0x0013_A200_4000_0001,
        0x0013_A200_4000_0002,
        0x0013_A200_4000_0003,
    ];
    let result = tokio::task::spawn_blocking(move || {
        let mut c = Coordinator::open(&node, false);
        let mut seen = Vec::new();
        for (i, radio) in radios.iter().enumerate() {
            c.receive_from(
                *radio,
                &Message::Connect {
                    flags: ConnectFlags {
                        will: false,
                        clean_session: true,
                    },
                    protocol_id: 1,
                    duration: 60,
                    client_id: Bytes::from(format!("radio-{i}")),
                },
            );
            let (dest, m) = c.next_transmit(WAIT).expect("CONNACK");
            assert_eq!(
                dest, *radio,
                "the CONNACK goes back to the radio that asked"
            );
            assert_eq!(
                m,
                Message::ConnAck {
                    code: ReturnCode::Accepted
                }
            );
            c.receive_from(
                *radio,
                &Message::Register {
                    topic_id: 0,
                    msg_id: 1,
                    topic_name: Bytes::from(format!("field/radio-{i}")),
                },
            );
            let (dest, m) = c.next_transmit(WAIT).expect("REGACK");
            assert_eq!(dest, *radio);
            let Message::RegAck { topic_id, code, .. } = m else {
                panic!("expected REGACK, got {m:?}");
            };
            assert_eq!(code, ReturnCode::Accepted);
            c.receive_from(
                *radio,
                &Message::Publish {
                    dup: false,
                    qos: SnQos::Level(QoS::AtLeastOnce),
                    retain: false,
                    topic: TopicRef::Normal(topic_id),
                    msg_id: 2,
                    data: Bytes::from(format!("t={i}")),
                },
            );
            let (dest, m) = c.next_transmit(WAIT).expect("PUBACK");
            assert_eq!(dest, *radio);
            assert!(matches!(
                m,
                Message::PubAck {
                    code: ReturnCode::Accepted,
                    ..
                }
            ));
            seen.push(topic_id);
        }
        seen
    })
    .await
    .expect("coordinator thread");
    assert_eq!(result.len(), 3);
    let mut lines = sub.lines(3, WAIT).await;
    lines.sort();
    assert_eq!(
        lines,
        [
            "field/radio-0 t=0",
            "field/radio-1 t=1",
            "field/radio-2 t=2"
        ]
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unplugged_radio_comes_back_without_restarting_sngate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut pty = Pty::open(dir.path()).await;
    let gw = start_config(&serial_config(&pty.gw(), "slip", "crc = true")).await;
    let mqtt = gw.mqtt_addr().expect("mqtt listener");
    let udp = gw.gateway_udp[0];
    let mut sub = Sub::start(mqtt, &["-t", "plug/#", "-v"]).await;
    let node = pty.node();
    let pub_serial = |topic: &'static str, node: String| async move {
        sn(&[
            "pub",
            "--serial",
            &node,
            "--framing",
            "slip",
            "--crc",
            "-i",
            "plugged",
            "-t",
            topic,
            "-m",
            "x",
            "-q",
            "1",
        ])
        .await
        .0
    };
    assert_eq!(pub_serial("plug/before", node.clone()).await, 0);
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("plug/before x"));

    pty.unplug().await;
    // The rest of the gateway never notices: UDP sensors and MQTT clients carry on.
    let port = udp.port().to_string();
    let (code, _) = sn(&[
        "pub",
        "-h",
        "127.0.0.1",
        "-p",
        &port,
        "-t",
        "plug/udp",
        "-m",
        "x",
        "-q",
        "1",
    ])
    .await;
    assert_eq!(
        code, 0,
        "a UDP sensor publishes while the radio is unplugged"
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("plug/udp x"));
    mosquitto_pub(mqtt, &["-t", "plug/mqtt", "-m", "x"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("plug/mqtt x"));

    pty.replug().await;
    // The link reopens the same path within its back-off (at most 5 s).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if pub_serial("plug/after", node.clone()).await == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the serial sensor works again after replug"
        );
    }
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("plug/after x"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sn_client_publishes_and_subscribes_over_udp() {
    let gw = common::start().await;
    let mqtt = gw.mqtt_addr().expect("mqtt listener");
    let port = gw.gateway_udp[0].port().to_string();
    let sub_args: Vec<String> = [
        "sub", "-p", &port, "-i", "udp-sub", "-t", "udp/#", "-v", "-C", "2", "-W", "15",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let sub = tokio::spawn(async move {
        let refs: Vec<&str> = sub_args.iter().map(String::as_str).collect();
        sn(&refs).await
    });
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (code, _) = sn(&[
        "pub",
        "-p",
        &port,
        "-t",
        "udp/a",
        "-m",
        "from-sensor",
        "-q",
        "2",
    ])
    .await;
    assert_eq!(code, 0);
    mosquitto_pub(mqtt, &["-t", "udp/b", "-m", "from-mqtt", "-q", "1"]).await;
    let (code, out) = sub.await.expect("sub task");
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["udp/a from-sensor", "udp/b from-mqtt"]
    );
    let (code, out) = sn(&["search", "-p", &port, "-W", "3"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains("gateway 1"),
        "search prints the gateway: {out}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xbee_escaped_sensor_publishes_subscribes_and_sleeps() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pty = Pty::open(dir.path()).await;
    let gw = start_config(&serial_config(&pty.gw(), "xbee", "api_mode = 2")).await;
    let mqtt = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(mqtt, &["-t", "xb/out/#", "-v", "-q", "2"]).await;
    let node = pty.node();
    // An address full of octets that API mode 2 must escape.
    let radio: u64 = 0x7E7D_1113_0013_A200;
    let mut c = tokio::task::spawn_blocking(move || {
        let mut c = Coordinator::open(&node, true);
        c.receive_from(
            radio,
            &Message::Connect {
                flags: ConnectFlags {
                    will: false,
                    clean_session: true,
                },
                protocol_id: 1,
                duration: 60,
                client_id: Bytes::from_static(b"xbee-node"),
            },
        );
        assert_eq!(
            c.next_transmit(WAIT).map(|t| t.1),
            Some(Message::ConnAck {
                code: ReturnCode::Accepted
            })
        );
        c.receive_from(
            radio,
            &Message::Register {
                topic_id: 0,
                msg_id: 1,
                topic_name: Bytes::from_static(b"xb/out/t"),
            },
        );
        let Some((_, Message::RegAck { topic_id, .. })) = c.next_transmit(WAIT) else {
            panic!("REGACK")
        };
        for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
            .into_iter()
            .enumerate()
        {
            let msg_id = 10 + i as u16;
            c.receive_from(
                radio,
                &Message::Publish {
                    dup: false,
                    qos: SnQos::Level(qos),
                    retain: false,
                    topic: TopicRef::Normal(topic_id),
                    msg_id,
                    data: Bytes::from(format!("q{}", qos.as_u8())),
                },
            );
            match qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => assert!(matches!(
                    c.next_transmit(WAIT),
                    Some((_, Message::PubAck { .. }))
                )),
                QoS::ExactlyOnce => {
                    assert_eq!(
                        c.next_transmit(WAIT).map(|t| t.1),
                        Some(Message::PubRec { msg_id })
                    );
                    c.receive_from(radio, &Message::PubRel { msg_id });
                    assert_eq!(
                        c.next_transmit(WAIT).map(|t| t.1),
                        Some(Message::PubComp { msg_id })
                    );
                }
            }
        }
        c.receive_from(
            radio,
            &Message::Subscribe {
                dup: false,
                qos: QoS::AtLeastOnce,
                msg_id: 20,
                topic: sngate::mqttsn::codec::TopicFilterRef::Name(Bytes::from_static(b"xb/in")),
            },
        );
        assert!(matches!(
            c.next_transmit(WAIT),
            Some((
                _,
                Message::SubAck {
                    code: ReturnCode::Accepted,
                    ..
                }
            ))
        ));
        c
    })
    .await
    .expect("coordinator");
    let mut lines = sub.lines(3, WAIT).await;
    lines.sort();
    assert_eq!(lines, ["xb/out/t q0", "xb/out/t q1", "xb/out/t q2"]);

    // Awake: a mosquitto_pub reaches the sensor.
    mosquitto_pub(mqtt, &["-t", "xb/in", "-m", "awake", "-q", "1"]).await;
    c = tokio::task::spawn_blocking(move || {
        let (dest, m) = c.next_transmit(WAIT).expect("delivery");
        assert_eq!(dest, radio);
        let Message::Publish {
            data,
            msg_id,
            topic,
            ..
        } = m
        else {
            panic!("PUBLISH, got {m:?}")
        };
        assert_eq!(&data[..], b"awake");
        let TopicRef::Normal(id) = topic else {
            panic!("normal id")
        };
        c.receive_from(
            radio,
            &Message::PubAck {
                topic_id: id,
                msg_id,
                code: ReturnCode::Accepted,
            },
        );
        // Go to sleep for 30 s.
        c.receive_from(radio, &Message::Disconnect { duration: Some(30) });
        assert_eq!(
            c.next_transmit(WAIT).map(|t| t.1),
            Some(Message::Disconnect { duration: None })
        );
        c
    })
    .await
    .expect("coordinator");

    // Asleep: the message waits in the gateway until the sensor wakes.
    mosquitto_pub(mqtt, &["-t", "xb/in", "-m", "asleep", "-q", "1"]).await;
    tokio::task::spawn_blocking(move || {
        assert!(
            c.next_transmit(Duration::from_millis(500)).is_none(),
            "nothing is sent to a sleeping sensor"
        );
        c.receive_from(
            radio,
            &Message::PingReq {
                client_id: Some(Bytes::from_static(b"xbee-node")),
            },
        );
        let (_, m) = c.next_transmit(WAIT).expect("buffered delivery");
        let Message::Publish {
            data,
            msg_id,
            topic,
            ..
        } = m
        else {
            panic!("PUBLISH, got {m:?}")
        };
        assert_eq!(&data[..], b"asleep");
        let TopicRef::Normal(id) = topic else {
            panic!("normal id")
        };
        c.receive_from(
            radio,
            &Message::PubAck {
                topic_id: id,
                msg_id,
                code: ReturnCode::Accepted,
            },
        );
        assert_eq!(c.next_transmit(WAIT).map(|t| t.1), Some(Message::PingResp));
    })
    .await
    .expect("coordinator");
    gw.stop().await;
}
