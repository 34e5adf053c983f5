//! DTLS cost against plain UDP: handshakes per second, bytes added per
//! message, and QoS 1 publish round trips through a running sngate. Not a
//! timed test: run `cargo test --test dtls_bench -- --ignored --nocapture`
//! and read the table (numbers from whatever profile the test was built in).

mod common;
mod dtls_support;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dimpl::{Config, Dtls, Output, PskResolver};
use dtls_support::*;
use sn_sensor::SnSensor;
use sngate::mqttsn::codec::{ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;
use sngate::transport::dtls::psk::PskTable;
use sngate::transport::dtls::server::{DtlsServer, DtlsServerSettings};

struct Key(Vec<u8>);

impl PskResolver for Key {
    fn resolve(&self, _identity: &[u8]) -> Option<Vec<u8>> {
        Some(self.0.clone())
    }
}

fn client(now: Instant) -> Dtls {
    let config = Config::builder()
        .with_psk_client(b"dev1".to_vec(), Arc::new(Key(hex(KEY1))))
        .build()
        .unwrap();
    let mut c = Dtls::new_12_psk(Arc::new(config), now);
    c.set_active(true);
    c.handle_timeout(now).unwrap();
    c
}

fn drain(c: &mut Dtls) -> (Vec<Vec<u8>>, bool) {
    let mut buf = vec![0u8; 4096];
    let (mut out, mut connected) = (Vec::new(), false);
    loop {
        match c.poll_output(&mut buf) {
            Output::Packet(p) => out.push(p.to_vec()),
            Output::BufferTooSmall { needed } => buf.resize(needed, 0),
            Output::Connected => connected = true,
            Output::Timeout(_) => return (out, connected),
            _ => {}
        }
    }
}

/// Full handshakes, client and server in memory; returns datagrams exchanged.
fn handshake(s: &mut DtlsServer, from: std::net::SocketAddr, now: Instant) -> (Dtls, usize) {
    let mut c = client(now);
    let mut datagrams = 0;
    loop {
        let (out, connected) = drain(&mut c);
        datagrams += out.len();
        for p in &out {
            s.handle_datagram(now, from, p);
        }
        if connected {
            return (c, datagrams);
        }
        while let Some((_, p)) = s.poll_transmit() {
            datagrams += 1;
            c.handle_packet(&p).unwrap();
        }
    }
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn dtls_cost_against_plain_udp() {
    let table = Arc::new(PskTable::parse(PSK_FILE).unwrap());
    let mut s = DtlsServer::new(table, DtlsServerSettings::new(64)).unwrap();

    // 1. Handshake CPU cost, both ends in this thread, no network.
    let n = 300u16;
    let now = Instant::now();
    let t0 = Instant::now();
    let mut datagrams = 0;
    let mut last = None;
    for i in 0..n {
        let from = std::net::SocketAddr::from(([127, 0, 0, 1], 10_000 + i));
        let (c, d) = handshake(&mut s, from, now);
        datagrams += d;
        last = Some((c, from));
    }
    let hs = t0.elapsed();
    println!(
        "in-memory handshakes: {n} in {hs:?} = {:.0}/s (client+server CPU), {} datagrams each",
        f64::from(n) / hs.as_secs_f64(),
        datagrams / usize::from(n)
    );

    // 2. Bytes on the wire per message.
    let (mut c, from) = last.unwrap();
    for len in [7usize, 20, 100] {
        c.send_application_data(&vec![0x42; len]).unwrap();
        let (out, _) = drain(&mut c);
        let wire: usize = out.iter().map(Vec::len).sum();
        println!(
            "record for a {len}-byte MQTT-SN message: {wire} bytes (+{})",
            wire - len
        );
        for p in out {
            s.handle_datagram(now, from, &p);
        }
    }
    let m = 20_000u32;
    let payload = [0x42u8; 20];
    let t1 = Instant::now();
    for _ in 0..m {
        c.send_application_data(&payload).unwrap();
        for p in drain(&mut c).0 {
            s.handle_datagram(now, from, &p);
        }
        while s.poll_received().is_some() {}
    }
    let t = t1.elapsed();
    println!(
        "in-memory encrypt+decrypt of 20-byte messages: {:.0}/s ({:?} each)",
        f64::from(m) / t.as_secs_f64(),
        t / m
    );

    // 3. Through sngate over loopback: handshakes and QoS 1 round trips.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (app, _dir) = start(64).await;
        let gw = app.gateway_dtls[0];
        let k = 50u32;
        let t = Instant::now();
        for _ in 0..k {
            DtlsSensor::connect(gw, "dev2", KEY2).await.unwrap();
        }
        let t = t.elapsed();
        println!(
            "loopback handshakes through sngate: {:.0}/s ({:?} each, sequential)",
            f64::from(k) / t.as_secs_f64(),
            t / k
        );

        let q = 500u32;
        let mut d = DtlsSensor::connect(gw, "dev2", KEY2).await.unwrap();
        assert_eq!(d.mqtt_connect("dev2", true).await, ReturnCode::Accepted);
        let t = Instant::now();
        for _ in 0..q {
            assert_eq!(d.publish_q1(*b"bn", &payload).await, ReturnCode::Accepted);
        }
        let dtls = t.elapsed() / q;

        let mut p = SnSensor::new(app.gateway_udp[0]).await;
        assert_eq!(p.connect("plain", 60, true).await, ReturnCode::Accepted);
        let t = Instant::now();
        for _ in 0..q {
            let r = p
                .publish(
                    SnQos::Level(QoS::AtLeastOnce),
                    TopicRef::Short(*b"bn"),
                    false,
                    &payload,
                )
                .await;
            assert_eq!(r, Some(ReturnCode::Accepted));
        }
        let plain = t.elapsed() / q;
        println!(
            "QoS 1 publish round trip through sngate: plain UDP {plain:?}, DTLS {dtls:?} (+{:?})",
            dtls.saturating_sub(plain)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}
