//! DTLS cost against plain UDP: handshakes per second (PSK, and certificates
//! in DTLS 1.2 and 1.3), bytes added per message, and QoS 1 publish round
//! trips through a running sngate. Not a timed test: run `cargo test --test dtls_bench -- --ignored --nocapture`
//! and read the table (numbers from whatever profile the test was built in).

mod common;
mod dtls_support;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;

use std::sync::Arc;
use std::time::{Duration, Instant};

use dimpl::{Config, Dtls, DtlsCertificate, Output, PskResolver};
use dtls_support::pki;
use dtls_support::*;
use sn_sensor::SnSensor;
use sngate::mqttsn::codec::{ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;
use sngate::transport::dtls::certs::ServerCertificates;
use sngate::transport::dtls::client::DtlsVersion;
use sngate::transport::dtls::psk::PskTable;
use sngate::transport::dtls::server::{DtlsServer, DtlsServerSettings};

struct Key(Vec<u8>);

impl PskResolver for Key {
    fn resolve(&self, _identity: &[u8]) -> Option<Vec<u8>> {
        Some(self.0.clone())
    }
}

fn client(now: Instant) -> Dtls {
    psk_client(now)
}

fn psk_client(now: Instant) -> Dtls {
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
    handshake_with(s, client(now), from, now)
}

/// The handshake of client `c`, in memory; returns datagrams exchanged.
fn handshake_with(
    s: &mut DtlsServer,
    mut c: Dtls,
    from: std::net::SocketAddr,
    now: Instant,
) -> (Dtls, usize) {
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

/// A certificate and key (DER) from PEM files written by the test PKI.
fn der_pair(files: &pki::CertFiles) -> DtlsCertificate {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    DtlsCertificate {
        certificate: CertificateDer::from_pem_file(&files.cert).unwrap().to_vec(),
        private_key: PrivateKeyDer::from_pem_file(&files.key)
            .unwrap()
            .secret_der()
            .to_vec(),
    }
}

#[test]
#[ignore = "benchmark; run with --ignored --nocapture"]
fn dtls_certificate_handshakes_per_second() {
    let pki = pki::Pki::new("sensor CA");
    let gateway = pki.server("gateway");
    let certs = Arc::new(
        ServerCertificates::load(&gateway.cert, &gateway.key, &pki.ca_file(), true).unwrap(),
    );
    let sensor = der_pair(&pki.client("sensor", "sensor-1"));
    let table = Arc::new(PskTable::parse(PSK_FILE).unwrap());
    let mut s = DtlsServer::with_credentials(Some(table), Some(certs), DtlsServerSettings::new(64))
        .unwrap();

    // In memory, both ends in this thread: the CPU cost of each kind.
    let n = 100u16;
    // Client configurations are built once: building one validates the
    // crypto provider, which would otherwise dominate a debug build.
    let psk_config = Arc::new(
        Config::builder()
            .with_psk_client(b"dev1".to_vec(), Arc::new(Key(hex(KEY1))))
            .build()
            .unwrap(),
    );
    let cert_config = Arc::new(Config::default());
    type Make = Box<dyn Fn(Instant) -> Dtls>;
    let (c12, c13) = (cert_config.clone(), cert_config);
    let (s12, s13) = (sensor.clone(), sensor);
    let kinds: [(&str, Make); 3] = [
        (
            "PSK, DTLS 1.2",
            Box::new(move |now| active(Dtls::new_12_psk(psk_config.clone(), now), now)),
        ),
        (
            "certificate, DTLS 1.2",
            Box::new(move |now| active(Dtls::new_12(c12.clone(), s12.clone(), now), now)),
        ),
        (
            "certificate, DTLS 1.3",
            Box::new(move |now| active(Dtls::new_13(c13.clone(), s13.clone(), now), now)),
        ),
    ];
    for (k, (what, make)) in kinds.iter().enumerate() {
        let now = Instant::now();
        let t0 = Instant::now();
        let mut datagrams = 0;
        for i in 0..n {
            let port = 20_000 + u16::try_from(k).unwrap() * 1000 + i;
            let from = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            datagrams += handshake_with(&mut s, make(now), from, now).1;
        }
        let hs = t0.elapsed();
        println!(
            "in-memory handshakes, {what}: {:.0}/s (client+server CPU), {} datagrams each",
            f64::from(n) / hs.as_secs_f64(),
            datagrams / usize::from(n)
        );
    }

    // Through sngate over loopback, sequential, with certificate checks.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let app = start_certs(&pki, "", "").await;
        let gw = app.gateway_dtls[0];
        let client = sensor_certificates(&pki, "sensor-2");
        let k = 30u32;
        for (what, version) in [("1.2", DtlsVersion::V12), ("1.3", DtlsVersion::V13)] {
            let t = Instant::now();
            for _ in 0..k {
                DtlsSensor::connect_cert(gw, client.clone(), version)
                    .await
                    .unwrap();
            }
            let t = t.elapsed();
            println!(
                "loopback certificate handshakes through sngate, DTLS {what}: {:.0}/s ({:?} each, sequential)",
                f64::from(k) / t.as_secs_f64(),
                t / k
            );
        }
    });
}

fn active(mut c: Dtls, now: Instant) -> Dtls {
    c.set_active(true);
    c.handle_timeout(now).unwrap();
    c
}
