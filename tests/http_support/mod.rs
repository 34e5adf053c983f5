//! Helpers for the HTTP tests: sngate with `[http]` on a free port, a plain
//! HTTP/1.1 GET over TCP, a Prometheus text-format parser, a server-sent
//! events reader and an MQTT-SN sensor built on `sngate::mqttsn::codec`.

#![allow(dead_code)]

pub mod cdp;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use sngate::app::Sngate;
use sngate::config::Config;
use sngate::mqttsn::codec::{self, ConnectFlags, Frame, Message, ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UdpSocket};

/// A test config: loopback, free ports, MQTT + MQTT-SN + HTTP; `$SYS` every
/// `sys_interval` seconds (0 = off).
pub fn config_text(sys_interval: u64) -> String {
    format!(
        r#"
[broker]
sys_interval = {sys_interval}

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0

[[gateway.udp]]
bind = "127.0.0.1:0"

[http]
bind = "127.0.0.1:0"
"#
    )
}

/// Starts sngate with HTTP enabled.
pub async fn start(sys_interval: u64) -> Sngate {
    let config = Config::from_toml_str(&config_text(sys_interval), "test.toml").unwrap();
    sngate::app::start(&config).await.expect("sngate starts")
}

/// The bound HTTP address.
pub fn http_addr(s: &Sngate) -> SocketAddr {
    s.http.expect("[http] is configured")
}

/// An HTTP response: status code, headers (lower-case names), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// Sends `GET path` and reads the whole response (the server closes).
pub async fn get(addr: SocketAddr, path: &str) -> Response {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut raw))
        .await
        .expect("a response within 10 s")
        .unwrap();
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

/// GET returning parsed JSON; panics unless 200.
pub async fn get_json(addr: SocketAddr, path: &str) -> serde_json::Value {
    let r = get(addr, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    serde_json::from_str(&r.body).expect("valid JSON")
}

/// One sample of the Prometheus text format.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the Prometheus text exposition format 0.0.4: `# HELP`/`# TYPE`
/// comments, then `name{label="value",...} value` lines. Panics on a line
/// that is neither, so a format error fails the test.
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    let mut samples = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let kind = comment.split_whitespace().next().unwrap_or_default();
            assert!(
                matches!(kind, "HELP" | "TYPE"),
                "unexpected comment: {line}"
            );
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                (name.to_string(), parse_labels(inner, line))
            }
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        samples.push(Sample {
            name,
            labels,
            value,
        });
    }
    samples
}

fn parse_labels(inner: &str, line: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad label: {line}"));
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => panic!("bad escape: {line}"),
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label value: {line}"));
        labels.insert(key.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    labels
}

/// The value of the sample `name` whose labels include `labels`.
pub fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Scrapes and parses `/metrics`.
pub async fn scrape(addr: SocketAddr) -> Vec<Sample> {
    let r = get(addr, "/metrics").await;
    assert_eq!(r.status, 200);
    parse_prometheus(&r.body)
}

/// Polls `probe` every 200 ms until it returns `Some`, for at most `wait`.
pub async fn eventually<T, F, Fut>(wait: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if let Some(v) = probe().await {
            return Some(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// An open `/api/events` stream.
pub struct Events {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
    pub content_type: String,
}

impl Events {
    /// Opens the stream and reads the response head.
    pub async fn open(addr: SocketAddr) -> Events {
        let mut s = TcpStream::connect(addr).await.unwrap();
        let req = format!(
            "GET /api/events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(s).lines();
        let status = lines.next_line().await.unwrap().unwrap();
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
        let mut content_type = String::new();
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-type")
            {
                content_type = v.trim().to_string();
            }
        }
        Events {
            lines,
            content_type,
        }
    }

    /// The data of the next `status` event, parsed.
    pub async fn next_status(&mut self, wait: Duration) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut event = String::new();
        let mut data = String::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let line = tokio::time::timeout(left, self.lines.next_line())
                .await
                .ok()?
                .ok()??;
            if line.is_empty() {
                if event == "status" && !data.is_empty() {
                    return serde_json::from_str(&data).ok();
                }
                event.clear();
                data.clear();
            } else if let Some(v) = line.strip_prefix("event:") {
                event = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }
}

/// An MQTT-SN sensor on a loopback UDP socket, speaking through the codec.
pub struct Sensor {
    sock: UdpSocket,
    gw: SocketAddr,
    next_msg_id: u16,
}

impl Sensor {
    pub async fn new(gw: SocketAddr) -> Sensor {
        Sensor {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            gw,
            next_msg_id: 1,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.sock.local_addr().unwrap()
    }

    pub async fn send(&self, m: &Message) {
        let mut buf = BytesMut::new();
        codec::encode(m, &mut buf).unwrap();
        self.sock.send_to(&buf, self.gw).await.unwrap();
    }

    pub async fn recv(&self) -> Message {
        let mut buf = [0u8; 1500];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
            .await
            .expect("a datagram from the gateway within 5 s")
            .unwrap();
        match codec::decode(&Bytes::copy_from_slice(&buf[..n])).unwrap() {
            Frame::Message(m) => m,
            other => panic!("unexpected frame {other:?}"),
        }
    }

    fn msg_id(&mut self) -> u16 {
        let id = self.next_msg_id;
        self.next_msg_id += 1;
        id
    }

    /// CONNECT (clean, no will) and expect CONNACK accepted.
    pub async fn connect(&mut self, client_id: &str, keep_alive: u16) {
        self.send(&Message::Connect {
            flags: ConnectFlags {
                will: false,
                clean_session: true,
            },
            protocol_id: 1,
            duration: keep_alive,
            client_id: Bytes::copy_from_slice(client_id.as_bytes()),
        })
        .await;
        assert_eq!(
            self.recv().await,
            Message::ConnAck {
                code: ReturnCode::Accepted
            }
        );
    }

    /// REGISTER `topic`; returns the topic id from the REGACK.
    pub async fn register(&mut self, topic: &str) -> u16 {
        let msg_id = self.msg_id();
        self.send(&Message::Register {
            topic_id: 0,
            msg_id,
            topic_name: Bytes::copy_from_slice(topic.as_bytes()),
        })
        .await;
        match self.recv().await {
            Message::RegAck {
                topic_id,
                code: ReturnCode::Accepted,
                ..
            } => topic_id,
            other => panic!("expected REGACK, got {other:?}"),
        }
    }

    /// QoS 1 PUBLISH on a normal topic id; waits for the PUBACK.
    pub async fn publish_qos1(&mut self, topic_id: u16, data: &[u8]) {
        let msg_id = self.msg_id();
        self.send(&Message::Publish {
            dup: false,
            qos: SnQos::Level(QoS::AtLeastOnce),
            retain: false,
            topic: TopicRef::Normal(topic_id),
            msg_id,
            data: Bytes::copy_from_slice(data),
        })
        .await;
        match self.recv().await {
            Message::PubAck {
                code: ReturnCode::Accepted,
                ..
            } => {}
            other => panic!("expected PUBACK, got {other:?}"),
        }
    }

    /// DISCONNECT(duration): go to sleep; expects the gateway's DISCONNECT.
    pub async fn sleep(&self, seconds: u16) {
        self.send(&Message::Disconnect {
            duration: Some(seconds),
        })
        .await;
        assert!(matches!(self.recv().await, Message::Disconnect { .. }));
    }
}
