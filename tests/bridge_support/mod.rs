//! Helpers for bridge tests: a real Mosquitto upstream on a free loopback
//! port that a test can stop and start again, and waits on the bridge state.

#![allow(dead_code)]

pub mod certs;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::common::{self, Sub};

/// A free port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A Mosquitto broker started by the test.
pub struct Mosquitto {
    child: Option<Child>,
    /// Its address.
    pub addr: SocketAddr,
    conf: PathBuf,
    /// Scratch directory (config, persistence, certificates).
    pub dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts `mosquitto` with `listener PORT 127.0.0.1` plus `extra` lines.
    pub async fn start(extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        Mosquitto::start_in(dir, extra).await
    }

    /// Like [`Mosquitto::start`], with files the test already put in `dir`.
    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> Mosquitto {
        common::require_tool("mosquitto");
        let port = free_port();
        let conf = dir.path().join("mosquitto.conf");
        let text = format!(
            "user root\nlistener {port} 127.0.0.1\nlog_dest stdout\n{}\n",
            if extra.contains("allow_anonymous") {
                extra.to_owned()
            } else {
                format!("allow_anonymous true\n{extra}")
            }
        );
        std::fs::write(&conf, text).unwrap();
        let mut m = Mosquitto {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            conf,
            dir,
        };
        m.run().await;
        m
    }

    /// The scratch directory's path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    async fn run(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&self.conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto runs");
        self.child = Some(child);
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("mosquitto did not listen on {}", self.addr);
    }

    /// Stops it with SIGTERM (it saves persistence) and waits for the exit.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status()
                    .await;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port with the same config.
    pub async fn restart(&mut self) {
        self.run().await;
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// The current retained value of `topic` on the broker at `addr`, if any.
pub async fn retained(addr: SocketAddr, topic: &str) -> Option<String> {
    let mut sub = Sub::start(addr, &["-t", topic, "-C", "1", "-W", "1"]).await;
    sub.line(Duration::from_secs(2)).await
}

/// Waits (bounded) until the bridge's state topic on sngate reads `want`.
pub async fn wait_state(sngate: SocketAddr, bridge: &str, want: &str, wait: Duration) {
    let topic = format!("$SYS/broker/connection/{bridge}/state");
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        if retained(sngate, &topic).await.as_deref() == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "bridge {bridge} state did not become {want} within {wait:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `[[bridge]]` table to `upstream` with the given extra keys and topics.
pub fn bridge_config(name: &str, upstream: SocketAddr, version: u8, keys: &str) -> String {
    format!(
        "[[bridge]]\nname = \"{name}\"\naddresses = [\"{upstream}\"]\nprotocol_version = {version}\n\
         reconnect_min = 1\nreconnect_max = 2\nclean_start = true\n{keys}\n"
    )
}
