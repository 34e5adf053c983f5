//! MQTT over WebSocket (`ws`, `wss`) with Python paho-mqtt, plus raw
//! handshakes and frame layouts a library client would not produce.

mod certs;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use certs::Pki;
use sngate::config::ListenerProtocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Subscribes to ws/t, publishes a message bigger than one TCP segment to
/// it and prints the payload length it gets back.
/// argv: port path cafile-or-empty protocol(4|5)
const PAHO_ROUND_TRIP: &str = r#"
import sys, threading
import paho.mqtt.client as mqtt
port, path, ca, version = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
proto = mqtt.MQTTv5 if version == "5" else mqtt.MQTTv311
got = threading.Event()
out = []
c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="ws-" + version,
                protocol=proto, transport="websockets")
c.ws_set_options(path=path)
if ca:
    c.tls_set(ca_certs=ca)
def on_connect(c, u, flags, rc, props=None):
    c.subscribe("ws/t", qos=1)
def on_subscribe(c, u, mid, rcs, props=None):
    c.publish("ws/t", b"w" * 100000, qos=1)
def on_message(c, u, m):
    out.append(m.payload)
    got.set()
c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
c.connect("127.0.0.1", port, 30)
c.loop_start()
ok = got.wait(10)
c.disconnect()
c.loop_stop()
print(len(out[0]) if ok else "timeout")
"#;

async fn start_ws(protocol: &str, keys: &str) -> (sngate::app::Sngate, SocketAddr) {
    // paho refuses a CONNACK Maximum Packet Size above 268435455, which the
    // broker default exceeds by one; a smaller limit keeps this test about WebSocket.
    let app = common::start_config(&format!(
        "[broker]\nsys_interval = 0\nmax_packet_size = 1048576\n[gateway]\nenabled = false\n\
         [[listener]]\nprotocol = \"{protocol}\"\nbind = \"127.0.0.1:0\"\npath = \"/mqtt\"\n{keys}"
    ))
    .await;
    let which = if protocol == "wss" {
        ListenerProtocol::Wss
    } else {
        ListenerProtocol::Ws
    };
    let addr = app.listener_addr(which).unwrap();
    (app, addr)
}

#[tokio::test]
async fn paho_round_trips_over_ws_with_mqtt_311_and_5() {
    let (app, addr) = start_ws("ws", "").await;
    for version in ["4", "5"] {
        let out = common::python(
            PAHO_ROUND_TRIP,
            &[&common::port(addr), "/mqtt", "", version],
        )
        .await;
        assert_eq!(out.trim(), "100000", "MQTT version {version}");
    }
    app.stop().await;
}

#[tokio::test]
async fn paho_round_trips_over_wss() {
    let pki = Pki::new("test CA");
    let s = pki.server("server");
    let keys = format!(
        "certfile = \"{}\"\nkeyfile = \"{}\"\n",
        s.cert.display(),
        s.key.display()
    );
    let (app, addr) = start_ws("wss", &keys).await;
    let ca = pki.ca_file().display().to_string();
    let out = common::python(PAHO_ROUND_TRIP, &[&common::port(addr), "/mqtt", &ca, "5"]).await;
    assert_eq!(out.trim(), "100000");
    app.stop().await;
}

/// Sends an HTTP upgrade request and returns the response head.
async fn upgrade(
    addr: SocketAddr,
    path: &str,
    protocol_header: Option<&str>,
) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let proto = protocol_header
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{proto}\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            _ => break,
        }
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

#[tokio::test]
async fn a_handshake_without_the_mqtt_subprotocol_is_refused() {
    let (app, addr) = start_ws("ws", "").await;
    let (_, head) = upgrade(addr, "/mqtt", None).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let (_, head) = upgrade(addr, "/mqtt", Some("chat, superchat")).await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    app.stop().await;
}

#[tokio::test]
async fn a_handshake_on_another_path_is_refused() {
    let (app, addr) = start_ws("ws", "").await;
    let (_, head) = upgrade(addr, "/other", Some("mqtt")).await;
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    app.stop().await;
}

#[tokio::test]
async fn the_upgrade_response_names_the_mqtt_subprotocol() {
    let (app, addr) = start_ws("ws", "").await;
    let (_, head) = upgrade(addr, "/mqtt", Some("mqtt")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-protocol: mqtt\r\n"),
        "{head}"
    );
    app.stop().await;
}

/// A masked client binary frame (RFC 6455 §5.2) with a zero mask.
fn client_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x82];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend_from_slice(payload);
    f
}

/// Reads one unmasked server frame's payload.
async fn server_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).await.unwrap();
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).await.unwrap();
            usize::from(u16::from_be_bytes(l))
        }
        n => usize::from(n),
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).await.unwrap();
    p
}

#[tokio::test]
async fn packets_may_share_a_frame_or_span_several() {
    let (app, addr) = start_ws("ws", "").await;
    let (mut s, head) = upgrade(addr, "/mqtt", Some("mqtt")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // CONNECT (3.1.1, client id "w") and SUBSCRIBE ws/x QoS 0 in one frame.
    let connect = [
        0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 60, 0, 1, b'w',
    ];
    let subscribe = [0x82, 9, 0, 1, 0, 4, b'w', b's', b'/', b'x', 0];
    let both: Vec<u8> = connect.iter().chain(subscribe.iter()).copied().collect();
    s.write_all(&client_frame(&both)).await.unwrap();
    let mut acks = Vec::new();
    while acks.len() < 9 {
        acks.extend(
            tokio::time::timeout(Duration::from_secs(5), server_frame(&mut s))
                .await
                .unwrap(),
        );
    }
    assert_eq!(
        acks,
        [0x20, 2, 0, 0, 0x90, 3, 0, 1, 0],
        "CONNACK then SUBACK"
    );
    // A QoS 0 PUBLISH to ws/x split over two frames.
    let publish = [0x30, 9, 0, 4, b'w', b's', b'/', b'x', b'h', b'e', b'y'];
    s.write_all(&client_frame(&publish[..5])).await.unwrap();
    s.write_all(&client_frame(&publish[5..])).await.unwrap();
    let mut echoed = Vec::new();
    while echoed.len() < publish.len() {
        echoed.extend(
            tokio::time::timeout(Duration::from_secs(5), server_frame(&mut s))
                .await
                .unwrap(),
        );
    }
    assert_eq!(echoed, publish);
    app.stop().await;
}

#[tokio::test]
async fn a_text_frame_closes_the_connection() {
    let (app, addr) = start_ws("ws", "").await;
    let (mut s, _) = upgrade(addr, "/mqtt", Some("mqtt")).await;
    // [MQTT-6.0.0-1]: a text frame instead of binary.
    let mut frame = client_frame(b"hello");
    frame[0] = 0x81;
    s.write_all(&frame).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "connection still open");
    app.stop().await;
}
