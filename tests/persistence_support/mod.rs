//! Support for the persistence tests: the real `sngate` binary as a child
//! process (killed with SIGKILL or stopped with SIGTERM), and small blocking
//! MQTT 3.1.1 / 5.0 and MQTT-SN clients built from raw packets.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A config with loopback listeners on port 0 and persistence in `dir`.
pub fn config(dir: &Path, persistence_extra: &str, broker_extra: &str) -> String {
    format!(
        r#"
[log]
level = "info"

[broker]
sys_interval = 0
max_queued_messages = 100000
{broker_extra}

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0
retry_interval = 1

[[gateway.udp]]
bind = "127.0.0.1:0"

[persistence]
enabled = true
path = "{}"
{persistence_extra}
"#,
        dir.display()
    )
}

/// Writes `text` as `dir/sngate.toml` and returns its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("sngate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running sngate process.
pub struct Gate {
    child: Child,
    /// The MQTT listener.
    pub mqtt: SocketAddr,
    /// The MQTT-SN UDP socket.
    pub udp: SocketAddr,
    /// Every stderr line so far.
    pub log: Arc<Mutex<Vec<String>>>,
}

/// Runs sngate to completion (for start-up failures): exit status and stderr.
pub fn run_to_exit(config: &Path, extra_args: &[&str], wait: Duration) -> (ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sngate"))
        .arg("-c")
        .arg(config)
        .args(extra_args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + wait;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (status, err);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            let _ = child.wait();
            panic!("sngate did not exit within {wait:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == ':'))
        .unwrap_or(rest.len());
    rest[..end].trim_end_matches('.').parse().ok()
}

impl Gate {
    /// Starts sngate with `-c config` and waits until both listeners are up.
    pub fn start(config: &Path, extra_args: &[&str]) -> Gate {
        Gate::start_with(
            Command::new(env!("CARGO_BIN_EXE_sngate")),
            config,
            extra_args,
        )
    }

    /// As [`Gate::start`], with sngate allowed onto CPU 0 only (`taskset`):
    /// its runtime then has a single worker thread.
    pub fn start_on_one_cpu(config: &Path, extra_args: &[&str]) -> Gate {
        let mut cmd = Command::new("taskset");
        cmd.args(["-c", "0", env!("CARGO_BIN_EXE_sngate")]);
        Gate::start_with(cmd, config, extra_args)
    }

    fn start_with(mut cmd: Command, config: &Path, extra_args: &[&str]) -> Gate {
        let mut child = cmd
            .arg("-c")
            .arg(config)
            .args(extra_args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line.clone());
                sink.lock().unwrap().push(line);
            }
        });
        let (mut mqtt, mut udp) = (None, None);
        let deadline = Instant::now() + Duration::from_secs(20);
        while mqtt.is_none() || udp.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!(
                    "sngate did not come up: {:?}",
                    log.lock().unwrap().join("\n")
                )
            });
            if mqtt.is_none() {
                mqtt = addr_after(&line, "listen socket on ");
            }
            if udp.is_none() && line.contains("MQTT-SN gateway listening") {
                udp = addr_after(&line, "addr=");
            }
        }
        Gate {
            child,
            mqtt: mqtt.unwrap(),
            udp: udp.unwrap(),
            log,
        }
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The process id (for a SIGKILL from another thread).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process after someone else killed it.
    pub fn reap(mut self) {
        self.child.wait().unwrap();
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn stop(mut self) {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "sngate exited with {status}");
                return;
            }
            assert!(Instant::now() < deadline, "sngate did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True when some stderr line contains `text` (waiting up to 3 s for
    /// the reader thread to catch up).
    pub fn logged(&self, text: &str) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            if self.log.lock().unwrap().iter().any(|l| l.contains(text)) {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a signal with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status();
}

// ---- MQTT ------------------------------------------------------------------

fn varint(out: &mut Vec<u8>, mut n: usize) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

fn packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    varint(&mut out, body.len());
    out.extend_from_slice(body);
    out
}

/// One received MQTT packet.
#[derive(Debug, Clone)]
pub struct Packet {
    /// First byte: type and flags.
    pub first: u8,
    /// Everything after the remaining length.
    pub body: Vec<u8>,
}

impl Packet {
    /// Packet type (upper nibble).
    pub fn kind(&self) -> u8 {
        self.first >> 4
    }

    /// The packet id at the start of the body (acks).
    pub fn id(&self) -> u16 {
        u16::from_be_bytes([self.body[0], self.body[1]])
    }
}

/// An incoming application message.
#[derive(Debug, Clone)]
pub struct Incoming {
    /// Topic.
    pub topic: String,
    /// Payload.
    pub payload: Vec<u8>,
    /// QoS.
    pub qos: u8,
    /// Packet id (QoS 1/2).
    pub id: u16,
    /// DUP flag.
    pub dup: bool,
    /// RETAIN flag.
    pub retain: bool,
}

/// A blocking MQTT client speaking 3.1.1 or 5.0 from raw packets.
pub struct Mqtt {
    stream: TcpStream,
    /// MQTT 5.
    pub v5: bool,
    /// Session Present of the CONNACK.
    pub session_present: bool,
}

/// What went wrong talking to the broker (usually: it was killed).
#[derive(Debug)]
pub struct Gone;

impl Mqtt {
    /// Connects; `expiry` is the v5 Session Expiry Interval (ignored for 3.1.1).
    pub fn connect(
        addr: SocketAddr,
        id: &str,
        v5: bool,
        clean: bool,
        expiry: u32,
    ) -> Result<Mqtt, Gone> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map_err(|_| Gone)?;
        stream.set_nodelay(true).ok();
        let mut m = Mqtt {
            stream,
            v5,
            session_present: false,
        };
        let mut body = Vec::new();
        string(&mut body, b"MQTT");
        body.push(if v5 { 5 } else { 4 });
        body.push(if clean { 0x02 } else { 0x00 });
        body.extend_from_slice(&0u16.to_be_bytes());
        if v5 {
            body.extend_from_slice(&[5, 0x11]);
            body.extend_from_slice(&expiry.to_be_bytes());
        }
        string(&mut body, id.as_bytes());
        m.send(&packet(0x10, &body))?;
        let ack = m.read(Duration::from_secs(5))?.ok_or(Gone)?;
        assert_eq!(ack.kind(), 2, "CONNACK expected: {ack:?}");
        assert_eq!(ack.body[1], 0, "connection accepted: {ack:?}");
        m.session_present = ack.body[0] & 1 == 1;
        Ok(m)
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) -> Result<(), Gone> {
        self.stream.write_all(bytes).map_err(|_| Gone)
    }

    /// The next packet; `Ok(None)` when nothing came within `wait`.
    pub fn read(&mut self, wait: Duration) -> Result<Option<Packet>, Gone> {
        self.stream.set_read_timeout(Some(wait)).map_err(|_| Gone)?;
        let mut first = [0u8; 1];
        match self.stream.read_exact(&mut first) {
            Ok(()) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ok(None);
            }
            Err(_) => return Err(Gone),
        }
        self.stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|_| Gone)?;
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let mut b = [0u8; 1];
            self.stream.read_exact(&mut b).map_err(|_| Gone)?;
            len |= usize::from(b[0] & 0x7F) << shift;
            shift += 7;
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).map_err(|_| Gone)?;
        Ok(Some(Packet {
            first: first[0],
            body,
        }))
    }

    /// Reads until a packet of `kind` arrives (others are dropped).
    pub fn expect(&mut self, kind: u8, wait: Duration) -> Result<Packet, Gone> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Gone);
            }
            if let Some(p) = self.read(left)?
                && p.kind() == kind
            {
                return Ok(p);
            }
        }
    }

    /// Sends SUBSCRIBE for one filter (packet id 1) without waiting.
    pub fn send_subscribe(&mut self, filter: &str, qos: u8) -> Result<(), Gone> {
        let mut body = 1u16.to_be_bytes().to_vec();
        if self.v5 {
            body.push(0);
        }
        string(&mut body, filter.as_bytes());
        body.push(qos);
        self.send(&packet(0x82, &body))
    }

    /// SUBSCRIBE one filter and wait for the SUBACK.
    pub fn subscribe(&mut self, filter: &str, qos: u8) -> Result<(), Gone> {
        self.send_subscribe(filter, qos)?;
        let ack = self.expect(9, Duration::from_secs(5))?;
        let code = *ack.body.last().unwrap();
        assert!(code <= 2, "subscription granted: {ack:?}");
        Ok(())
    }

    /// Sends a PUBLISH.
    pub fn publish(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: u8,
        id: u16,
        retain: bool,
        dup: bool,
    ) -> Result<(), Gone> {
        let mut body = Vec::new();
        string(&mut body, topic.as_bytes());
        if qos > 0 {
            body.extend_from_slice(&id.to_be_bytes());
        }
        if self.v5 {
            body.push(0);
        }
        body.extend_from_slice(payload);
        let first = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
        self.send(&packet(first, &body))
    }

    /// Sends an ack-type packet (PUBACK 0x40, PUBREC 0x50, PUBREL 0x62, PUBCOMP 0x70).
    pub fn ack(&mut self, first: u8, id: u16) -> Result<(), Gone> {
        self.send(&packet(first, &id.to_be_bytes()))
    }

    /// The reason code of an ack (0 when left out).
    pub fn reason(p: &Packet) -> u8 {
        p.body.get(2).copied().unwrap_or(0)
    }

    /// Parses a PUBLISH.
    pub fn incoming(&self, p: &Packet) -> Incoming {
        let qos = (p.first >> 1) & 3;
        let tlen = usize::from(u16::from_be_bytes([p.body[0], p.body[1]]));
        let topic = String::from_utf8(p.body[2..2 + tlen].to_vec()).unwrap();
        let mut i = 2 + tlen;
        let mut id = 0;
        if qos > 0 {
            id = u16::from_be_bytes([p.body[i], p.body[i + 1]]);
            i += 2;
        }
        if self.v5 {
            let (mut plen, mut shift) = (0usize, 0);
            loop {
                let b = p.body[i];
                i += 1;
                plen |= usize::from(b & 0x7F) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            i += plen;
        }
        Incoming {
            topic,
            payload: p.body[i..].to_vec(),
            qos,
            id,
            dup: p.first & 0x08 != 0,
            retain: p.first & 0x01 != 0,
        }
    }

    /// Receives messages until none comes for `quiet`, completing each
    /// QoS 1/2 handshake as a subscriber.
    pub fn drain(&mut self, quiet: Duration) -> Result<Vec<Incoming>, Gone> {
        let mut got = Vec::new();
        while let Some(p) = self.read(quiet)? {
            match p.kind() {
                3 => {
                    let m = self.incoming(&p);
                    match m.qos {
                        1 => self.ack(0x40, m.id)?,
                        2 => self.ack(0x50, m.id)?,
                        _ => {}
                    }
                    got.push(m);
                }
                6 => self.ack(0x70, p.id())?,
                _ => {}
            }
        }
        Ok(got)
    }

    /// DISCONNECT (normal).
    pub fn disconnect(mut self) {
        let _ = self.send(&[0xE0, 0x00]);
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- MQTT-SN ---------------------------------------------------------------

/// A blocking MQTT-SN sensor on a loopback UDP socket.
pub struct Sensor {
    sock: UdpSocket,
    /// The gateway's address (changes with each restart).
    pub gw: SocketAddr,
}

impl Sensor {
    /// A sensor talking to `gw`.
    pub fn new(gw: SocketAddr) -> Sensor {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        Sensor { sock, gw }
    }

    /// Sends one datagram.
    pub fn send(&self, d: &[u8]) {
        self.sock.send_to(d, self.gw).unwrap();
    }

    /// The next datagram within `wait`.
    pub fn recv(&self, wait: Duration) -> Option<Vec<u8>> {
        self.sock.set_read_timeout(Some(wait)).unwrap();
        let mut buf = [0u8; 2048];
        match self.sock.recv_from(&mut buf) {
            Ok((n, _)) => Some(buf[..n].to_vec()),
            Err(_) => None,
        }
    }

    /// Waits for a message of type `t`.
    pub fn expect(&self, t: u8, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let d = self
                .recv(left)
                .unwrap_or_else(|| panic!("MQTT-SN message type {t:#04x} expected"));
            if d.get(1) == Some(&t) {
                return d;
            }
        }
    }

    /// CONNECT without will; waits for CONNACK accepted.
    pub fn connect(&self, id: &str, clean: bool) {
        let mut d = vec![
            (6 + id.len()) as u8,
            0x04,
            if clean { 0x04 } else { 0x00 },
            0x01,
        ];
        d.extend_from_slice(&60u16.to_be_bytes());
        d.extend_from_slice(id.as_bytes());
        self.send(&d);
        let ack = self.expect(0x05, Duration::from_secs(5));
        assert_eq!(ack[2], 0, "CONNACK accepted");
    }

    /// REGISTER a topic name; returns its id.
    pub fn register(&self, name: &str, msg_id: u16) -> u16 {
        let mut d = vec![(6 + name.len()) as u8, 0x0A, 0, 0];
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        self.send(&d);
        let r = self.expect(0x0B, Duration::from_secs(5));
        assert_eq!(r[6], 0, "REGACK accepted");
        u16::from_be_bytes([r[2], r[3]])
    }

    /// SUBSCRIBE to a topic name; waits for the SUBACK.
    pub fn subscribe(&self, name: &str, qos: u8, msg_id: u16) {
        let mut d = vec![(5 + name.len()) as u8, 0x12, qos << 5];
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(name.as_bytes());
        self.send(&d);
        let r = self.expect(0x13, Duration::from_secs(5));
        assert_eq!(r[7], 0, "SUBACK accepted");
    }

    /// PUBLISH with a normal topic id at QoS 1; returns the PUBACK return code.
    pub fn publish_qos1(&self, topic_id: u16, msg_id: u16, data: &[u8]) -> u8 {
        let mut d = vec![(7 + data.len()) as u8, 0x0C, 0x20];
        d.extend_from_slice(&topic_id.to_be_bytes());
        d.extend_from_slice(&msg_id.to_be_bytes());
        d.extend_from_slice(data);
        self.send(&d);
        let r = self.expect(0x0D, Duration::from_secs(5));
        r[6]
    }

    /// DISCONNECT with a sleep duration: the sensor goes to sleep.
    pub fn sleep(&self, secs: u16) {
        let mut d = vec![4, 0x18];
        d.extend_from_slice(&secs.to_be_bytes());
        self.send(&d);
        self.expect(0x18, Duration::from_secs(5));
    }

    /// Answers REGISTERs and PUBLISHes until nothing comes for `quiet`;
    /// returns (topic name, payload) of each PUBLISH, in arrival order.
    pub fn drain(&self, quiet: Duration) -> Vec<(String, Vec<u8>)> {
        let mut names = std::collections::HashMap::new();
        let mut got = Vec::new();
        while let Some(d) = self.recv(quiet) {
            match d.get(1) {
                Some(0x0A) => {
                    let id = [d[2], d[3]];
                    let msg = [d[4], d[5]];
                    names.insert(
                        u16::from_be_bytes(id),
                        String::from_utf8_lossy(&d[6..]).into_owned(),
                    );
                    self.send(&[7, 0x0B, id[0], id[1], msg[0], msg[1], 0]);
                }
                Some(0x0C) => {
                    let flags = d[2];
                    let id = u16::from_be_bytes([d[3], d[4]]);
                    let msg = [d[5], d[6]];
                    let name = names.get(&id).cloned().unwrap_or_default();
                    got.push((name, d[7..].to_vec()));
                    match (flags >> 5) & 3 {
                        1 => self.send(&[7, 0x0D, d[3], d[4], msg[0], msg[1], 0]),
                        2 => self.send(&[4, 0x0F, msg[0], msg[1]]),
                        _ => {}
                    }
                }
                Some(0x10) => self.send(&[4, 0x0E, d[2], d[3]]),
                _ => {}
            }
        }
        got
    }
}
