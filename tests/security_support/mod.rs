//! Helpers shared by the security tests: a raw MQTT-SN sensor on a chosen
//! loopback address, `$SYS`-free access to the limit counters, and RSS.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;

/// MQTT-SN message types used here (MQTT-SN 1.2 §5.2.2).
pub const CONNACK: u8 = 0x05;
/// REGISTER.
pub const REGISTER: u8 = 0x0A;
/// REGACK.
pub const REGACK: u8 = 0x0B;
/// PUBLISH.
pub const PUBLISH: u8 = 0x0C;
/// PUBACK.
pub const PUBACK: u8 = 0x0D;
/// SUBACK.
pub const SUBACK: u8 = 0x13;

/// A sensor: one UDP socket bound to `ip` (any 127.0.0.0/8 address works on Linux).
pub struct Sensor {
    /// Its socket.
    pub sock: UdpSocket,
    gw: SocketAddr,
}

impl Sensor {
    /// A sensor on 127.0.0.1.
    pub async fn new(gw: SocketAddr) -> Sensor {
        Sensor::on("127.0.0.1", gw).await
    }

    /// A sensor whose datagrams come from `ip`.
    pub async fn on(ip: &str, gw: SocketAddr) -> Sensor {
        Sensor {
            sock: UdpSocket::bind(format!("{ip}:0")).await.unwrap(),
            gw,
        }
    }

    /// Sends one datagram.
    pub async fn send(&self, d: &[u8]) {
        self.sock.send_to(d, self.gw).await.unwrap();
    }

    /// The next datagram within `wait`.
    pub async fn recv_within(&self, wait: Duration) -> Option<Vec<u8>> {
        let mut buf = [0u8; 2048];
        let (n, _) = tokio::time::timeout(wait, self.sock.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        Some(buf[..n].to_vec())
    }

    /// The next datagram (5 s at most).
    pub async fn recv(&self) -> Vec<u8> {
        self.recv_within(Duration::from_secs(5))
            .await
            .expect("a datagram within 5 s")
    }

    /// Sends CONNECT (clean session) and returns the CONNACK return code,
    /// `None` when nothing came back within `wait`.
    pub async fn connect_code(&self, id: &str, wait: Duration) -> Option<u8> {
        let mut d = vec![(6 + id.len()) as u8, 0x04, 0x04, 0x01, 0x00, 0x3C];
        d.extend_from_slice(id.as_bytes());
        self.send(&d).await;
        let r = self.recv_within(wait).await?;
        assert_eq!(&r[..2], &[0x03, CONNACK], "{r:?}");
        Some(r[2])
    }

    /// CONNECT that must be accepted.
    pub async fn connect(&self, id: &str) {
        assert_eq!(
            self.connect_code(id, Duration::from_secs(5)).await,
            Some(0x00)
        );
    }

    /// REGISTER `name`; returns the topic id.
    pub async fn register(&self, name: &str, msg_id: u16) -> u16 {
        let mut d = vec![(6 + name.len()) as u8, REGISTER, 0, 0];
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        self.send(&d).await;
        let r = self.recv().await;
        assert_eq!(&r[..2], &[0x07, REGACK], "{r:?}");
        assert_eq!(r[6], 0x00, "REGACK accepted: {r:?}");
        u16::from_be_bytes([r[2], r[3]])
    }

    /// SUBSCRIBE to a topic name or filter at QoS 0; returns the SUBACK return code.
    pub async fn subscribe_code(&self, name: &str, msg_id: u16) -> u8 {
        let mut d = vec![(5 + name.len()) as u8, 0x12, 0x00];
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        self.send(&d).await;
        let r = self.recv().await;
        assert_eq!(&r[..2], &[0x08, SUBACK], "{r:?}");
        r[7]
    }

    /// PUBLISH QoS 1 to a normal topic id; returns the PUBACK return code.
    pub async fn publish_qos1(&self, topic_id: u16, msg_id: u16, data: &[u8]) -> u8 {
        let mut d = vec![(7 + data.len()) as u8, PUBLISH, 0x20];
        d.extend_from_slice(&topic_id.to_be_bytes());
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(data);
        self.send(&d).await;
        let r = self.recv().await;
        assert_eq!(&r[..2], &[0x07, PUBACK], "{r:?}");
        assert_eq!(u16::from_be_bytes([r[4], r[5]]), msg_id);
        r[6]
    }

    /// The next PUBLISH within `wait`, answering the gateway's REGISTERs on
    /// the way; returns (topic name, payload).
    pub async fn next_publish(&self, wait: Duration) -> Option<(String, Vec<u8>)> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut names = std::collections::HashMap::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let r = self.recv_within(left).await?;
            match r.get(1) {
                Some(&REGISTER) => {
                    let id = u16::from_be_bytes([r[2], r[3]]);
                    names.insert(id, String::from_utf8_lossy(&r[6..]).into_owned());
                    let mut ack = vec![0x07, REGACK, r[2], r[3], r[4], r[5], 0x00];
                    ack.truncate(7);
                    self.send(&ack).await;
                }
                Some(&PUBLISH) => {
                    let id = u16::from_be_bytes([r[3], r[4]]);
                    let name = names.get(&id).cloned().unwrap_or_else(|| format!("#{id}"));
                    return Some((name, r[7..].to_vec()));
                }
                _ => {}
            }
        }
    }
}

/// This process's resident set size in KiB (sngate runs in-process).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Writes `text` to a fresh file in `dir` and returns its path as TOML-ready text.
pub fn write_file(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}
