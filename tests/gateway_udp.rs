//! The MQTT-SN gateway over real UDP sockets with the real broker core:
//! sensors talk raw MQTT-SN datagrams on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use sngate::broker::{self, BrokerHandle, BrokerSettings};
use sngate::gateway::{GatewaySettings, PredefinedTopic, bind_udp, run_gateway_on};
use sngate::transport::udp::UdpListenerSettings;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    gw: SocketAddr,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
    _broker: BrokerHandle,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(2), self.task).await;
    }
}

async fn start(settings: GatewaySettings) -> Running {
    let shutdown = CancellationToken::new();
    let (handle, _metrics, _core) = broker::spawn(
        BrokerSettings {
            sys_interval: Duration::ZERO,
            ..BrokerSettings::default()
        },
        shutdown.clone(),
    );
    let sockets =
        bind_udp(&[UdpListenerSettings::unicast("127.0.0.1:0".parse().unwrap())]).unwrap();
    let gw = sockets[0].local_addr();
    let b = handle.clone();
    let s = shutdown.clone();
    let task = tokio::spawn(async move {
        run_gateway_on(settings, sockets, b, s).await.unwrap();
    });
    Running {
        gw,
        shutdown,
        task,
        _broker: handle,
    }
}

fn settings() -> GatewaySettings {
    GatewaySettings {
        predefined: vec![PredefinedTopic {
            topic_id: 5,
            topic: "pre/five".into(),
            client_id: None,
        }],
        ..GatewaySettings::default()
    }
}

/// A sensor: one UDP socket on loopback.
struct Sensor {
    sock: UdpSocket,
    gw: SocketAddr,
}

impl Sensor {
    async fn new(gw: SocketAddr) -> Sensor {
        Sensor {
            sock: UdpSocket::bind("127.0.0.1:0").await.unwrap(),
            gw,
        }
    }

    async fn send(&self, d: &[u8]) {
        self.sock.send_to(d, self.gw).await.unwrap();
    }

    async fn recv(&self) -> Vec<u8> {
        let mut buf = [0u8; 1024];
        let (n, _) = tokio::time::timeout(Duration::from_secs(5), self.sock.recv_from(&mut buf))
            .await
            .expect("a datagram within 5 s")
            .unwrap();
        buf[..n].to_vec()
    }

    async fn nothing_within(&self, ms: u64) -> bool {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(Duration::from_millis(ms), self.sock.recv_from(&mut buf))
            .await
            .is_err()
    }

    async fn connect(&self, id: &str, keep_alive: u16, will: bool) {
        let mut d = vec![
            (6 + id.len()) as u8,
            0x04,
            if will { 0x0C } else { 0x04 },
            0x01,
        ];
        d.extend_from_slice(&keep_alive.to_be_bytes());
        d.extend_from_slice(id.as_bytes());
        self.send(&d).await;
        if !will {
            assert_eq!(self.recv().await, vec![0x03, 0x05, 0x00]);
        }
    }

    /// Subscribes to `name` at `qos`; returns the SUBACK's topic id.
    async fn subscribe(&self, name: &str, qos: u8, msg_id: u16) -> u16 {
        let mut d = vec![(5 + name.len()) as u8, 0x12, qos << 5];
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        self.send(&d).await;
        let r = self.recv().await;
        assert_eq!(r[1], 0x13, "{r:?}");
        assert_eq!(r[7], 0x00, "accepted: {r:?}");
        u16::from_be_bytes([r[3], r[4]])
    }

    async fn register(&self, name: &str, msg_id: u16) -> u16 {
        let mut d = vec![(6 + name.len()) as u8, 0x0A, 0, 0];
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        self.send(&d).await;
        let r = self.recv().await;
        assert_eq!(&r[..2], &[0x07, 0x0B]);
        assert_eq!(r[6], 0x00);
        u16::from_be_bytes([r[2], r[3]])
    }
}

fn publish(flags: u8, topic: u16, msg_id: u16, data: &[u8]) -> Vec<u8> {
    let mut d = vec![(7 + data.len()) as u8, 0x0C, flags];
    d.extend_from_slice(&topic.to_be_bytes());
    d.extend_from_slice(&msg_id.to_be_bytes());
    d.extend_from_slice(data);
    d
}

#[tokio::test]
async fn searchgw_gets_gwinfo_over_udp() {
    // G-11
    let r = start(settings()).await;
    let s = Sensor::new(r.gw).await;
    s.send(&[0x03, 0x01, 0x00]).await;
    assert_eq!(s.recv().await, vec![0x03, 0x02, 0x01]);
    r.stop().await;
}

#[tokio::test]
async fn qos1_publish_from_one_sensor_reaches_a_subscribed_sensor() {
    // G-33, G-51, G-52 through the real core.
    let r = start(settings()).await;
    let sub = Sensor::new(r.gw).await;
    sub.connect("sub", 60, false).await;
    let sub_id = sub.subscribe("a/b", 1, 1).await;
    let publ = Sensor::new(r.gw).await;
    publ.connect("pub", 60, false).await;
    let pub_id = publ.register("a/b", 1).await;
    publ.send(&publish(0x20, pub_id, 7, b"hello")).await;
    let [a, b] = pub_id.to_be_bytes();
    assert_eq!(publ.recv().await, vec![0x07, 0x0D, a, b, 0x00, 0x07, 0x00]);
    let d = sub.recv().await;
    assert_eq!(d[1], 0x0C);
    assert_eq!(d[2] & 0x60, 0x20, "QoS 1");
    assert_eq!(u16::from_be_bytes([d[3], d[4]]), sub_id);
    assert_eq!(&d[7..], b"hello");
    // Acknowledge so that the core's window is released.
    sub.send(&[0x07, 0x0D, d[3], d[4], d[5], d[6], 0x00]).await;
    r.stop().await;
}

#[tokio::test]
async fn qos_minus_one_publish_reaches_a_subscriber() {
    // G-47 through the real core.
    let r = start(settings()).await;
    let sub = Sensor::new(r.gw).await;
    sub.connect("sub", 60, false).await;
    sub.subscribe("pre/five", 0, 1).await;
    let anon = Sensor::new(r.gw).await;
    anon.send(&[0x09, 0x0C, 0x61, 0x00, 0x05, 0x00, 0x00, b'h', b'i'])
        .await;
    let d = sub.recv().await;
    assert_eq!(d[2] & 0x03, 0x01, "predefined topic id type");
    assert_eq!(&d[7..], b"hi");
    assert!(anon.nothing_within(200).await);
    r.stop().await;
}

#[tokio::test]
async fn wildcard_delivery_is_preceded_by_register() {
    // G-53, G-54 through the real core.
    let r = start(settings()).await;
    let sub = Sensor::new(r.gw).await;
    sub.connect("sub", 60, false).await;
    assert_eq!(sub.subscribe("s/#", 0, 1).await, 0);
    let publ = Sensor::new(r.gw).await;
    publ.connect("pub", 60, false).await;
    let id = publ.register("s/temp", 1).await;
    publ.send(&publish(0x00, id, 0, b"21")).await;
    let reg = sub.recv().await;
    assert_eq!(reg[1], 0x0A);
    assert_eq!(&reg[6..], b"s/temp");
    sub.send(&[0x07, 0x0B, reg[2], reg[3], reg[4], reg[5], 0x00])
        .await;
    let d = sub.recv().await;
    assert_eq!(d[1], 0x0C);
    assert_eq!(&d[3..5], &reg[2..4]);
    assert_eq!(&d[7..], b"21");
    r.stop().await;
}

#[tokio::test]
async fn will_is_published_when_a_sensor_goes_silent() {
    // G-15, G-71 through the real core: keep-alive 1 s ⇒ lost after 1.5 s.
    let r = start(settings()).await;
    let watcher = Sensor::new(r.gw).await;
    watcher.connect("watcher", 60, false).await;
    watcher.subscribe("w/t", 0, 1).await;
    let s = Sensor::new(r.gw).await;
    s.connect("dying", 1, true).await;
    assert_eq!(s.recv().await, vec![0x02, 0x06]);
    s.send(&[0x06, 0x07, 0x00, b'w', b'/', b't']).await;
    assert_eq!(s.recv().await, vec![0x02, 0x08]);
    s.send(&[0x05, 0x09, b'b', b'y', b'e']).await;
    assert_eq!(s.recv().await, vec![0x03, 0x05, 0x00]);
    let d = watcher.recv().await;
    assert_eq!(d[1], 0x0C);
    assert_eq!(&d[7..], b"bye");
    r.stop().await;
}

#[tokio::test]
async fn sleeping_sensor_gets_buffered_messages_on_wake_up() {
    // G-76, G-77, G-80 through the real core.
    let r = start(settings()).await;
    let s = Sensor::new(r.gw).await;
    s.connect("sleepy", 60, false).await;
    let id = s.subscribe("a/b", 1, 1).await;
    s.send(&[0x04, 0x18, 0x01, 0x2C]).await;
    assert_eq!(s.recv().await, vec![0x02, 0x18]);
    let publ = Sensor::new(r.gw).await;
    publ.connect("pub", 60, false).await;
    let pid = publ.register("a/b", 1).await;
    publ.send(&publish(0x20, pid, 3, b"zz")).await;
    publ.recv().await; // PUBACK
    assert!(s.nothing_within(300).await, "nothing while asleep");
    s.send(&[0x08, 0x16, b's', b'l', b'e', b'e', b'p', b'y'])
        .await;
    let d = s.recv().await;
    assert_eq!(d[1], 0x0C);
    assert_eq!(u16::from_be_bytes([d[3], d[4]]), id);
    assert!(s.nothing_within(200).await, "PINGRESP waits for the PUBACK");
    s.send(&[0x07, 0x0D, d[3], d[4], d[5], d[6], 0x00]).await;
    assert_eq!(s.recv().await, vec![0x02, 0x17]);
    r.stop().await;
}

#[tokio::test]
async fn a_burst_longer_than_one_read_batch_arrives_complete_and_in_order() {
    // The reader drains up to READ_BATCH datagrams per wake-up; a burst of
    // several batches must still reach the core one by one, in order.
    let burst = 3 * sngate::gateway::driver::READ_BATCH + 7;
    let r = start(settings()).await;
    let sub = Sensor::new(r.gw).await;
    sub.connect("sub", 60, false).await;
    sub.subscribe("pre/five", 0, 1).await;
    let publ = Sensor::new(r.gw).await;
    publ.connect("pub", 60, false).await;
    for i in 0..burst {
        let n = u16::try_from(i).unwrap().to_be_bytes();
        // QoS 0, predefined topic id 5.
        publ.send(&publish(0x01, 5, 0, &n)).await;
    }
    for i in 0..burst {
        let d = sub.recv().await;
        assert_eq!(d[1], 0x0C, "{d:?}");
        assert_eq!(&d[7..], &u16::try_from(i).unwrap().to_be_bytes());
    }
    r.stop().await;
}
