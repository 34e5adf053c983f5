//! DTLS sensors end to end: sngate started from a config with a
//! `[[gateway.dtls]]` socket, sensors speaking DTLS 1.2 PSK, Mosquitto's
//! command-line clients on the MQTT side. Every refusal leaves a log line and
//! leaves the other sensors alone.

mod common;
mod dtls_support;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;

use std::time::Duration;

use bytes::Bytes;
use common::log_capture::{install, wait_for_line};
use common::{Sub, mosquitto_pub};
use dtls_support::*;
use sn_sensor::SnSensor;
use sngate::mqttsn::codec::{Message, ReturnCode};
use sngate::qos::QoS;
use tokio::net::UdpSocket;

async fn established(gw: std::net::SocketAddr) -> DtlsSensor {
    let mut s = DtlsSensor::connect(gw, "dev2", KEY2).await.unwrap();
    assert_eq!(s.mqtt_connect("dev2", true).await, ReturnCode::Accepted);
    s
}

#[tokio::test]
async fn sensor_publish_over_dtls_reaches_mosquitto_sub() {
    install();
    let (app, _dir) = start(8).await;
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "ab"]).await;
    let mut s = DtlsSensor::connect(app.gateway_dtls[0], "dev1", KEY1)
        .await
        .unwrap();
    assert_eq!(s.mqtt_connect("sensor-1", true).await, ReturnCode::Accepted);
    assert_eq!(
        s.publish_q1(*b"ab", b"over dtls").await,
        ReturnCode::Accepted
    );
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("over dtls"));
    assert!(
        wait_for_line(&["DTLS session established", "identity=dev1"], WAIT)
            .await
            .is_some()
    );
}

#[tokio::test]
async fn wrong_psk_fails_the_handshake_with_a_log_line_and_no_effect_on_others() {
    install();
    let (app, _dir) = start(8).await;
    let gw = app.gateway_dtls[0];
    let mut other = established(gw).await;
    let err = DtlsSensor::connect(gw, "dev1", KEY2).await.err();
    assert!(err.is_some(), "a wrong key never completes the handshake");
    assert!(
        wait_for_line(&["wrong PSK", "identity=dev1"], WAIT)
            .await
            .is_some(),
        "the refusal is logged"
    );
    assert_eq!(
        other.publish_q1(*b"ok", b"still here").await,
        ReturnCode::Accepted
    );
}

#[tokio::test]
async fn unknown_identity_is_refused_with_a_log_line() {
    install();
    let (app, _dir) = start(8).await;
    let gw = app.gateway_dtls[0];
    let mut other = established(gw).await;
    assert!(DtlsSensor::connect(gw, "intruder", KEY1).await.is_err());
    assert!(
        wait_for_line(&["unknown PSK identity", "identity=intruder"], WAIT)
            .await
            .is_some()
    );
    assert_eq!(
        other.publish_q1(*b"ok", b"still here").await,
        ReturnCode::Accepted
    );
}

#[tokio::test]
async fn connect_with_a_client_id_not_bound_to_the_identity_gets_connack_0x03() {
    install();
    let (app, _dir) = start(8).await;
    let mut s = DtlsSensor::connect(app.gateway_dtls[0], "dev1", KEY1)
        .await
        .unwrap();
    assert_eq!(
        s.mqtt_connect("sensor-9", true).await,
        ReturnCode::NotSupported
    );
    assert!(
        wait_for_line(
            &["CONNECT refused", "client_id=sensor-9", "expected=sensor-1"],
            WAIT
        )
        .await
        .is_some()
    );
    // The same session may still connect with its own client id.
    assert_eq!(s.mqtt_connect("sensor-1", true).await, ReturnCode::Accepted);
}

#[tokio::test]
async fn replayed_records_are_not_delivered_twice() {
    install();
    let (app, _dir) = start(8).await;
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "rp"]).await;
    let relay = Relay::start(app.gateway_dtls[0]).await;
    let mut s = DtlsSensor::over(relay.client_socket().await, "dev1", KEY1).await;
    assert_eq!(s.mqtt_connect("sensor-1", true).await, ReturnCode::Accepted);
    s.send(&publish(*b"rp", QoS::AtMostOnce, 0, b"once")).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("once"));
    let record = relay.last_sent();
    for _ in 0..3 {
        relay.inject(&record).await;
    }
    s.send(&publish(*b"rp", QoS::AtMostOnce, 0, b"after")).await;
    assert_eq!(
        sub.line(WAIT).await.as_deref(),
        Some("after"),
        "the replays were dropped"
    );
}

#[tokio::test]
async fn forged_datagrams_from_the_sensor_address_are_dropped_and_the_session_survives() {
    install();
    let (app, _dir) = start(8).await;
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "fg"]).await;
    let relay = Relay::start(app.gateway_dtls[0]).await;
    let mut s = DtlsSensor::over(relay.client_socket().await, "dev1", KEY1).await;
    assert_eq!(s.mqtt_connect("sensor-1", true).await, ReturnCode::Accepted);
    s.send(&publish(*b"fg", QoS::AtMostOnce, 0, b"genuine"))
        .await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("genuine"));
    let mut forged = relay.last_sent();
    // Same header (epoch, next sequence numbers), tampered ciphertext.
    for seq in 1..=3u8 {
        forged[10] = forged[10].wrapping_add(seq);
        if let Some(b) = forged.last_mut() {
            *b ^= 0x5a;
        }
        relay.inject(&forged).await;
    }
    relay.inject(b"\x17\xfe\xfd plainly not a record").await;
    // A plain MQTT-SN PUBLISH from the same address is not DTLS either.
    relay
        .inject(&encoded(&publish(*b"fg", QoS::AtMostOnce, 0, b"plain")))
        .await;
    s.send(&publish(*b"fg", QoS::AtMostOnce, 0, b"next")).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("next"));
    assert_eq!(s.publish_q1(*b"fg", b"q1").await, ReturnCode::Accepted);
}

#[tokio::test]
async fn datagrams_from_ports_without_a_session_are_dropped() {
    install();
    let (app, _dir) = start(8).await;
    let gw = app.gateway_dtls[0];
    let mut s = established(gw).await;
    let spoofer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for junk in [
        &b"\x17\xfe\xfd\x00\x01\x00\x00\x00\x00\x00\x05\x00\x04abcd"[..],
        b"hello",
        &[0u8; 40],
    ] {
        spoofer.send_to(junk, gw).await.unwrap();
    }
    let mut buf = [0u8; 2048];
    let answer =
        tokio::time::timeout(Duration::from_millis(500), spoofer.recv_from(&mut buf)).await;
    assert!(answer.is_err(), "nothing is answered");
    assert_eq!(
        s.publish_q1(*b"ok", b"unaffected").await,
        ReturnCode::Accepted
    );
}

/// A ClientHello without cookie, as a real client sends it first.
async fn captured_client_hello(gw: std::net::SocketAddr) -> Vec<u8> {
    let relay = Relay::start(gw).await;
    let sock = relay.client_socket().await;
    let _ = tokio::time::timeout(
        Duration::from_millis(300),
        sngate::transport::dtls::client::DtlsClient::handshake(sock, b"dev2", &hex(KEY2), WAIT),
    )
    .await;
    relay.sent.lock().unwrap()[0].clone()
}

/// The ClientHello `ch` again, carrying `cookie`, message_seq 1 (RFC 6347 §4.2.1).
fn with_cookie(ch: &[u8], cookie: &[u8]) -> Vec<u8> {
    let body = &ch[25..];
    let sid = usize::from(body[34]);
    let after = 36 + sid + usize::from(body[35 + sid]);
    let mut nb = body[..35 + sid].to_vec();
    nb.push(u8::try_from(cookie.len()).unwrap());
    nb.extend_from_slice(cookie);
    nb.extend_from_slice(&body[after..]);
    let len = u32::try_from(nb.len()).unwrap().to_be_bytes();
    let mut out = ch[..13].to_vec();
    out[10] = 1; // record sequence number 1
    out[11..13].copy_from_slice(&u16::try_from(12 + nb.len()).unwrap().to_be_bytes());
    out.push(1);
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&[0, 1]); // message_seq
    out.extend_from_slice(&[0, 0, 0]);
    out.extend_from_slice(&len[1..]);
    out.extend_from_slice(&nb);
    out
}

/// A peer that answers the cookie (so it is not spoofed) and then stalls:
/// it holds one of `max_handshakes` until the handshake deadline.
async fn stalled_handshake(gw: std::net::SocketAddr, ch: &[u8]) -> (UdpSocket, bool) {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.send_to(ch, gw).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(WAIT, s.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(buf[13], 3, "HelloVerifyRequest");
    let cookie_len = usize::from(buf[25 + 2]);
    let cookie = buf[28..28 + cookie_len].to_vec();
    assert!(28 + cookie_len <= n);
    s.send_to(&with_cookie(ch, &cookie), gw).await.unwrap();
    let got = tokio::time::timeout(Duration::from_millis(500), s.recv_from(&mut buf)).await;
    let server_hello = matches!(got, Ok(Ok(_))) && buf[13] == 2;
    (s, server_hello)
}

#[tokio::test]
async fn handshake_flood_is_bounded_and_an_established_sensor_keeps_publishing() {
    install();
    let (app, _dir) = start(2).await;
    let gw = app.gateway_dtls[0];
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "fl"]).await;
    let mut s = established(gw).await;
    let ch = captured_client_hello(gw).await;

    // Peers that return their cookie take the two handshake slots; the rest are refused.
    let mut stalled = Vec::new();
    let mut admitted = 0;
    for _ in 0..5 {
        let (sock, got_server_hello) = stalled_handshake(gw, &ch).await;
        admitted += usize::from(got_server_hello);
        stalled.push(sock);
    }
    assert_eq!(admitted, 2, "max_handshakes = 2");
    assert!(
        wait_for_line(&["DTLS handshake refused", "max_handshakes"], WAIT)
            .await
            .is_some()
    );

    // Spoofed-style first ClientHellos from many ports while the sensor publishes.
    let flood = tokio::spawn(async move {
        let mut socks = Vec::new();
        for _ in 0..200 {
            socks.push(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        }
        for round in 0..5 {
            for sock in &socks {
                let _ = sock.send_to(&ch, gw).await;
            }
            tokio::time::sleep(Duration::from_millis(20 * round)).await;
        }
    });
    for i in 0..20 {
        let msg = format!("m{i}");
        assert_eq!(
            s.publish_q1(*b"fl", msg.as_bytes()).await,
            ReturnCode::Accepted
        );
    }
    flood.await.unwrap();
    let lines = sub.lines(20, WAIT).await;
    assert_eq!(lines.len(), 20, "{lines:?}");
    assert_eq!(s.publish_q1(*b"fl", b"after").await, ReturnCode::Accepted);
}

#[tokio::test]
async fn sleeping_sensor_woken_from_a_new_port_gets_its_buffered_messages_and_a_plain_pingreq_does_not()
 {
    install();
    let (app, _dir) = start(8).await;
    let gw = app.gateway_dtls[0];
    let mqtt = app.mqtt_addr().unwrap();
    let mut s = DtlsSensor::connect(gw, "dev1", KEY1).await.unwrap();
    assert_eq!(
        s.mqtt_connect("sensor-1", false).await,
        ReturnCode::Accepted
    );
    s.subscribe_short_and_sleep(*b"zz", 120).await;
    drop(s);

    mosquitto_pub(mqtt, &["-t", "zz", "-m", "held"]).await;

    // Someone on plain UDP with the sensor's client id: not answered.
    let plain = SnSensor::new(app.gateway_udp[0]).await;
    plain
        .send(&Message::PingReq {
            client_id: Some(Bytes::from_static(b"sensor-1")),
        })
        .await;
    assert!(plain.silent_for(500).await);
    assert!(
        wait_for_line(&["wake-up refused", "client_id=sensor-1"], WAIT)
            .await
            .is_some()
    );

    // The sensor itself, behind a NAT that gave it a new port.
    let mut woke = DtlsSensor::connect(gw, "dev1", KEY1).await.unwrap();
    woke.send(&Message::PingReq {
        client_id: Some(Bytes::from_static(b"sensor-1")),
    })
    .await;
    match woke.recv_within(WAIT).await {
        Some(Message::Publish { data, .. }) => assert_eq!(&data[..], b"held"),
        other => panic!("expected the buffered PUBLISH, got {other:?}"),
    }
    assert_eq!(woke.recv_within(WAIT).await, Some(Message::PingResp));
}

#[tokio::test]
async fn the_acl_applies_with_the_username_bound_to_the_identity() {
    install();
    let dir = tempfile::tempdir().unwrap();
    let acl = dir.path().join("acl");
    // Anonymous (mosquitto_sub) may read; user "kitchen" (dev1) may write "ki" only.
    std::fs::write(&acl, "topic read #\nuser kitchen\ntopic write ki\n").unwrap();
    let (app, _psk) = start_with(8, &format!("[auth]\nacl_file = \"{}\"\n", acl.display())).await;
    let mut sub = Sub::start(app.mqtt_addr().unwrap(), &["-t", "#", "-v"]).await;
    let mut s = DtlsSensor::connect(app.gateway_dtls[0], "dev1", KEY1)
        .await
        .unwrap();
    assert_eq!(s.mqtt_connect("sensor-1", true).await, ReturnCode::Accepted);
    // A denied publish is acknowledged and dropped, as Mosquitto does.
    s.publish_q1(*b"no", b"denied").await;
    assert_eq!(s.publish_q1(*b"ki", b"allowed").await, ReturnCode::Accepted);
    assert_eq!(
        sub.line(WAIT).await.as_deref(),
        Some("ki allowed"),
        "only the topic user kitchen may write reaches subscribers"
    );
}
