//! The link against a pseudo-terminal pair made by socat: ending socat is an unplug.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use bytes::Bytes;
use tokio::time::timeout;

use super::*;
use crate::config::{Framing as FramingKind, XbeeApiMode};
use crate::transport::serial::framing::{
    DEFAULT_MAX_MESSAGE, Destination, RawFraming, SlipFraming, XbeeFraming,
};

const WAIT: Duration = Duration::from_secs(5);

struct Socat {
    child: Child,
}

impl Socat {
    fn start(dir: &Path) -> Socat {
        let a = dir.join("a");
        let b = dir.join("b");
        let child = Command::new("socat")
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat is installed");
        let deadline = Instant::now() + WAIT;
        while !(a.exists() && b.exists()) {
            assert!(Instant::now() < deadline, "socat made no pty pair");
            std::thread::sleep(Duration::from_millis(20));
        }
        Socat { child }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(device: PathBuf, framing: FramingKind) -> SerialConfig {
    SerialConfig {
        device,
        baud: 115_200,
        data_bits: DataBits::Eight,
        parity: Parity::None,
        stop_bits: StopBits::One,
        flow_control: FlowControl::None,
        framing,
        crc: true,
        api_mode: XbeeApiMode::Escaped,
        max_garbage_rate: 0,
    }
}

fn fast() -> Backoff {
    Backoff {
        first: Duration::from_millis(100),
        max: Duration::from_millis(400),
    }
}

/// The remote end's framing: what a sensor's firmware would speak.
fn remote_framing(kind: FramingKind) -> Box<dyn Framing> {
    match kind {
        FramingKind::Raw => Box::new(RawFraming::new(DEFAULT_MAX_MESSAGE)),
        FramingKind::Slip => Box::new(SlipFraming::new(true, DEFAULT_MAX_MESSAGE)),
        FramingKind::Xbee => Box::new(XbeeFraming::new(XbeeApiMode::Escaped, DEFAULT_MAX_MESSAGE)),
    }
}

/// The bytes a remote XBee module would hand to the gateway's radio for `rf`.
fn remote_bytes(kind: FramingKind, rf: &Bytes) -> BytesMut {
    let mut out = BytesMut::new();
    if kind == FramingKind::Xbee {
        let mut data = vec![0x90, 0, 0x13, 0xA2, 0, 0, 0, 0, 0x42, 0xFF, 0xFE, 0x01];
        data.extend_from_slice(rf);
        let sum = data.iter().fold(0u8, |a, &b| a.wrapping_add(b));
        let mut frame = vec![0x7E];
        frame.extend_from_slice(&(data.len() as u16).to_be_bytes());
        frame.extend_from_slice(&data);
        frame.push(0xFF - sum);
        out.extend_from_slice(&frame[..1]);
        for &b in &frame[1..] {
            if matches!(b, 0x7E | 0x7D | 0x11 | 0x13) {
                out.extend_from_slice(&[0x7D, b ^ 0x20]);
            } else {
                out.extend_from_slice(&[b]);
            }
        }
    } else {
        remote_framing(kind)
            .encode(&OutFrame::to_peer(rf.clone()), &mut out)
            .unwrap();
    }
    out
}

async fn next_event(events: &mut mpsc::Receiver<LinkEvent>) -> LinkEvent {
    timeout(WAIT, events.recv())
        .await
        .expect("link event in time")
        .expect("link still running")
}

/// Skips framing noise (a pty may deliver stray bytes on open) until a wanted event.
async fn wait_for(
    events: &mut mpsc::Receiver<LinkEvent>,
    want: impl Fn(&LinkEvent) -> bool,
) -> LinkEvent {
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "event did not come");
        let event = next_event(events).await;
        if want(&event) {
            return event;
        }
    }
}

/// Sends a datagram each way between the link and the remote end `b`.
async fn exchange(
    kind: FramingKind,
    b: &Path,
    link: &SerialLink,
    events: &mut mpsc::Receiver<LinkEvent>,
) {
    let mut remote = tokio_serial::new(b.to_string_lossy(), 115_200)
        .open_native_async()
        .unwrap();
    let inbound = Bytes::from_static(&[0x07, 0x0C, 0x62, 0x00, 0x01, 0x00, 0x00]);
    remote
        .write_all(&remote_bytes(kind, &inbound))
        .await
        .unwrap();
    let got = wait_for(events, |e| matches!(e, LinkEvent::Frame(_))).await;
    let LinkEvent::Frame(frame) = got else {
        unreachable!()
    };
    assert_eq!(frame.message, inbound);
    if kind == FramingKind::Xbee {
        assert_eq!(frame.source, Some(0x0013_A200_0000_0042));
    }

    let outbound = Bytes::from_static(&[0x02, 0x17]);
    link.tx
        .send(OutFrame {
            message: outbound.clone(),
            destination: Destination::Peer,
        })
        .await
        .unwrap();
    let mut buf = BytesMut::new();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no frame on the remote end");
        timeout(WAIT, remote.read_buf(&mut buf))
            .await
            .unwrap()
            .unwrap();
        if kind == FramingKind::Xbee {
            // The link sends a Transmit Request; its RF data follows 14 octets of frame data.
            if let Some(rf) = unescape_transmit_request(&buf) {
                assert_eq!(rf, &outbound[..]);
                return;
            }
        } else {
            let mut decoder = remote_framing(kind);
            let mut copy = buf.clone();
            if let Some(Ok(Decoded::Frame(f))) = decoder.decode(&mut copy, Instant::now()) {
                assert_eq!(f.message, outbound);
                return;
            }
        }
    }
}

fn unescape_transmit_request(wire: &[u8]) -> Option<Vec<u8>> {
    let mut raw = Vec::new();
    let mut it = wire.iter().skip(1);
    while let Some(&b) = it.next() {
        raw.push(if b == 0x7D { it.next()? ^ 0x20 } else { b });
    }
    let len = usize::from(u16::from_be_bytes([*raw.first()?, *raw.get(1)?]));
    let data = raw.get(2..2 + len)?;
    (data.first() == Some(&0x10)).then(|| data[14..].to_vec())
}

async fn link_survives_an_unplug(kind: FramingKind) {
    let dir = tempfile::tempdir().unwrap();
    let socat = Socat::start(dir.path());
    let shutdown = CancellationToken::new();
    let cfg = config(dir.path().join("a"), kind);
    let framing = framing::for_config(&cfg, DEFAULT_MAX_MESSAGE);
    let (link, mut events) = spawn_link_with(cfg, framing, fast(), shutdown.clone());
    assert_eq!(next_event(&mut events).await, LinkEvent::Up);
    exchange(kind, &dir.path().join("b"), &link, &mut events).await;

    socat.stop();
    wait_for(&mut events, |e| matches!(e, LinkEvent::Down { .. })).await;

    let _socat = Socat::start(dir.path());
    wait_for(&mut events, |e| *e == LinkEvent::Up).await;
    exchange(kind, &dir.path().join("b"), &link, &mut events).await;
    shutdown.cancel();
}

#[tokio::test]
async fn raw_link_carries_frames_both_ways_and_comes_back_after_an_unplug() {
    link_survives_an_unplug(FramingKind::Raw).await;
}

#[tokio::test]
async fn slip_link_carries_frames_both_ways_and_comes_back_after_an_unplug() {
    link_survives_an_unplug(FramingKind::Slip).await;
}

#[tokio::test]
async fn xbee_link_carries_frames_both_ways_and_comes_back_after_an_unplug() {
    link_survives_an_unplug(FramingKind::Xbee).await;
}

#[tokio::test]
async fn a_missing_device_is_reported_once_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let cfg = config(dir.path().join("absent"), FramingKind::Raw);
    let framing = framing::for_config(&cfg, DEFAULT_MAX_MESSAGE);
    let (_link, mut events) = spawn_link_with(cfg, framing, fast(), shutdown.clone());
    let LinkEvent::Down { reason } = next_event(&mut events).await else {
        panic!("expected Down");
    };
    assert!(reason.contains("not found"), "{reason}");
    // Several retries fit in this window; none of them repeats the report.
    assert!(
        timeout(Duration::from_millis(700), events.recv())
            .await
            .is_err()
    );
    shutdown.cancel();
}
