//! DTLS test helpers: a PSK file, a sngate with a `[[gateway.dtls]]` socket,
//! a typed MQTT-SN sensor over DTLS, and a recording UDP relay that can
//! replay or forge datagrams from the sensor's own address.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use sngate::app::Sngate;
use sngate::mqttsn::codec::{
    self, ConnectFlags, Frame, Message, ReturnCode, SnQos, TopicFilterRef, TopicRef,
};
use sngate::qos::QoS;
use sngate::transport::dtls::certs::ClientCertificates;
use sngate::transport::dtls::client::{DtlsClient, DtlsVersion};
use tokio::net::UdpSocket;

/// The rcgen test PKI shared with the TLS tests.
#[path = "../certs/mod.rs"]
pub mod pki;

use pki::Pki;

/// Keys of the test identities.
pub const KEY1: &str = "00112233445566778899aabbccddeeff";
/// Second device's key.
pub const KEY2: &str = "0f0e0d0c0b0a09080706050403020100";

/// `dev1` must connect as `sensor-1` with ACL user `kitchen`; `dev2` as itself.
pub const PSK_FILE: &str = "# test devices\ndev1:00112233445566778899aabbccddeeff:sensor-1:kitchen\ndev2:0f0e0d0c0b0a09080706050403020100\n";

/// How long a reply may take.
pub const WAIT: Duration = Duration::from_secs(5);

/// sngate with a DTLS socket on loopback, and its PSK file's directory.
pub async fn start(max_handshakes: usize) -> (Sngate, tempfile::TempDir) {
    start_with(max_handshakes, "").await
}

/// As [`start`] with extra config text.
pub async fn start_with(max_handshakes: usize, extra: &str) -> (Sngate, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let psk = dir.path().join("psk.txt");
    std::fs::write(&psk, PSK_FILE).unwrap();
    let text = format!(
        "{extra}\n[[gateway.dtls]]\nbind = \"127.0.0.1:0\"\npsk_file = \"{}\"\nmax_handshakes = {max_handshakes}\n",
        psk.display()
    );
    let app = crate::common::start_with(&text).await;
    (app, dir)
}

/// sngate with a certificate DTLS socket on loopback: the gateway certificate
/// and the sensors' CA come from `pki`; `dtls_keys` adds keys to the socket
/// table (e.g. `use_identity_as_username = true` or a `psk_file`), `extra`
/// adds tables.
pub async fn start_certs(pki: &Pki, dtls_keys: &str, extra: &str) -> Sngate {
    let server = pki.server("gateway");
    let text = format!(
        "{extra}\n[[gateway.dtls]]\nbind = \"127.0.0.1:0\"\ncertfile = \"{}\"\nkeyfile = \"{}\"\ncafile = \"{}\"\nrequire_certificate = true\n{dtls_keys}\n",
        server.cert.display(),
        server.key.display(),
        pki.ca_file().display(),
    );
    crate::common::start_with(&text).await
}

/// A sensor's certificate from `pki` with subject CN `cn`, trusting `pki` for
/// the gateway at 127.0.0.1.
pub fn sensor_certificates(pki: &Pki, cn: &str) -> Arc<ClientCertificates> {
    let files = pki.client(cn, cn);
    Arc::new(
        ClientCertificates::load(&files.cert, &files.key, &pki.ca_file(), "127.0.0.1").unwrap(),
    )
}

/// Hex to bytes.
pub fn hex(s: &str) -> Vec<u8> {
    sngate::transport::dtls::psk::decode_hex(s).unwrap()
}

/// An MQTT-SN sensor over a DTLS session.
pub struct DtlsSensor {
    pub dtls: DtlsClient,
    next_msg_id: u16,
}

impl DtlsSensor {
    /// Handshakes from a fresh port.
    pub async fn connect(gw: SocketAddr, identity: &str, key: &str) -> std::io::Result<DtlsSensor> {
        let dtls = DtlsClient::connect(gw, identity.as_bytes(), &hex(key), WAIT).await?;
        Ok(DtlsSensor {
            dtls,
            next_msg_id: 0,
        })
    }

    /// Handshakes with a client certificate from a fresh port.
    pub async fn connect_cert(
        gw: SocketAddr,
        certificates: Arc<ClientCertificates>,
        version: DtlsVersion,
    ) -> std::io::Result<DtlsSensor> {
        let dtls = DtlsClient::connect_with_certificate(gw, certificates, version, WAIT).await?;
        Ok(DtlsSensor {
            dtls,
            next_msg_id: 0,
        })
    }

    /// Handshakes on `socket` (already connected, e.g. to a relay).
    pub async fn over(socket: UdpSocket, identity: &str, key: &str) -> DtlsSensor {
        let dtls = DtlsClient::handshake(socket, identity.as_bytes(), &hex(key), WAIT)
            .await
            .unwrap();
        DtlsSensor {
            dtls,
            next_msg_id: 0,
        }
    }

    pub fn msg_id(&mut self) -> u16 {
        self.next_msg_id = self.next_msg_id.wrapping_add(1).max(1);
        self.next_msg_id
    }

    pub async fn send(&mut self, msg: &Message) {
        self.dtls.send(&encoded(msg)).await.unwrap();
    }

    pub async fn recv_within(&mut self, wait: Duration) -> Option<Message> {
        let d = self.dtls.recv(Instant::now() + wait).await.ok()??;
        match codec::decode(&d).ok()? {
            Frame::Message(m) => Some(m),
            Frame::Encapsulated { message, .. } => Some(message),
        }
    }

    /// CONNECT and the CONNACK code.
    pub async fn mqtt_connect(&mut self, client_id: &str, clean: bool) -> ReturnCode {
        self.send(&connect_msg(client_id, clean)).await;
        match self.recv_within(WAIT).await {
            Some(Message::ConnAck { code }) => code,
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// SUBSCRIBE at QoS 0 to a short topic, then DISCONNECT with a sleep
    /// duration; both answers are checked.
    pub async fn subscribe_short_and_sleep(&mut self, short: [u8; 2], seconds: u16) {
        let msg_id = self.msg_id();
        self.send(&Message::Subscribe {
            dup: false,
            qos: QoS::AtMostOnce,
            msg_id,
            topic: TopicFilterRef::Short(short),
        })
        .await;
        assert!(matches!(
            self.recv_within(WAIT).await,
            Some(Message::SubAck {
                code: ReturnCode::Accepted,
                ..
            })
        ));
        self.send(&Message::Disconnect {
            duration: Some(seconds),
        })
        .await;
        assert_eq!(
            self.recv_within(WAIT).await,
            Some(Message::Disconnect { duration: None })
        );
    }

    /// QoS 1 PUBLISH to a short topic; the PUBACK code.
    pub async fn publish_q1(&mut self, short: [u8; 2], data: &[u8]) -> ReturnCode {
        let msg_id = self.msg_id();
        self.send(&publish(short, QoS::AtLeastOnce, msg_id, data))
            .await;
        loop {
            match self.recv_within(WAIT).await {
                Some(Message::PubAck {
                    msg_id: m, code, ..
                }) if m == msg_id => return code,
                Some(_) => continue,
                None => panic!("no PUBACK for {msg_id}"),
            }
        }
    }
}

/// CONNECT without will, keep-alive 60 s.
pub fn connect_msg(client_id: &str, clean: bool) -> Message {
    Message::Connect {
        flags: ConnectFlags {
            will: false,
            clean_session: clean,
        },
        protocol_id: 1,
        duration: 60,
        client_id: Bytes::copy_from_slice(client_id.as_bytes()),
    }
}

/// PUBLISH to a short topic name.
pub fn publish(short: [u8; 2], qos: QoS, msg_id: u16, data: &[u8]) -> Message {
    Message::Publish {
        dup: false,
        qos: SnQos::Level(qos),
        retain: false,
        topic: TopicRef::Short(short),
        msg_id,
        data: Bytes::copy_from_slice(data),
    }
}

pub fn encoded(msg: &Message) -> Vec<u8> {
    let mut b = BytesMut::new();
    codec::encode(msg, &mut b).unwrap();
    b.to_vec()
}

/// A UDP relay between one client and the gateway that records what the
/// client sent, so a test can resend it from the client's relay address.
pub struct Relay {
    pub socket: Arc<UdpSocket>,
    pub gateway: SocketAddr,
    pub sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Relay {
    pub async fn start(gateway: SocketAddr) -> Relay {
        let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let sent = Arc::new(Mutex::new(Vec::new()));
        let (s, log) = (socket.clone(), sent.clone());
        tokio::spawn(async move {
            let mut client = None;
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, from)) = s.recv_from(&mut buf).await {
                let d = &buf[..n];
                if from == gateway {
                    if let Some(c) = client {
                        let _ = s.send_to(d, c).await;
                    }
                } else {
                    client = Some(from);
                    log.lock().unwrap().push(d.to_vec());
                    let _ = s.send_to(d, gateway).await;
                }
            }
        });
        Relay {
            socket,
            gateway,
            sent,
        }
    }

    /// A client socket connected to the relay.
    pub async fn client_socket(&self) -> UdpSocket {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.connect(self.socket.local_addr().unwrap()).await.unwrap();
        c
    }

    /// The last datagram the client sent.
    pub fn last_sent(&self) -> Vec<u8> {
        self.sent.lock().unwrap().last().cloned().unwrap()
    }

    /// Sends `d` to the gateway from the relay's address (the client's, as the gateway sees it).
    pub async fn inject(&self, d: &[u8]) {
        self.socket.send_to(d, self.gateway).await.unwrap();
    }
}
