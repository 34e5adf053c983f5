//! Helpers for upstream-mode tests: sngate as a transparent or aggregating
//! gateway in front of a Mosquitto the test starts.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use sngate::app::Sngate;
use sngate::mqttsn::codec::ReturnCode;

use crate::common;
use crate::sn_sensor::SnSensor;

/// sngate with `mode` in front of `upstream`, no MQTT listener of its own;
/// `upstream_keys` go into `[gateway.upstream]`.
pub fn config(mode: &str, upstream: SocketAddr, gateway_keys: &str, upstream_keys: &str) -> String {
    format!(
        r#"listener = []

[log]
level = "debug"

[broker]
sys_interval = 0

[gateway]
advertise_interval = 0
mode = "{mode}"
retry_interval = 1
max_retries = 2
{gateway_keys}

[gateway.upstream]
addresses = ["{upstream}"]
client_id_prefix = "site-a/"
reconnect_min = 1
reconnect_max = 2
{upstream_keys}

[[gateway.udp]]
bind = "127.0.0.1:0"

[[gateway.predefined]]
topic_id = 7
topic = "site-a/predefined"
"#
    )
}

/// Starts sngate from [`config`].
pub async fn start(
    mode: &str,
    upstream: SocketAddr,
    gateway_keys: &str,
    upstream_keys: &str,
) -> Sngate {
    common::start_config(&config(mode, upstream, gateway_keys, upstream_keys)).await
}

/// A sensor connected as `client_id`, retrying while the gateway answers
/// "congestion" because its upstream connections are still coming up.
pub async fn sensor(gw: SocketAddr, client_id: &str, keep_alive: u16) -> SnSensor {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = SnSensor::new(gw).await;
        let code = s.connect(client_id, keep_alive, true).await;
        if code == ReturnCode::Accepted {
            return s;
        }
        assert_eq!(
            code,
            ReturnCode::Congestion,
            "only congestion is worth a retry"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream never became available"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (bounded) until the upstream has `want` clients connected, as its
/// `$SYS/broker/clients/connected` says.
pub async fn wait_clients(upstream: SocketAddr, want: usize, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let mut sub = common::Sub::start(
            upstream,
            &["-t", "$SYS/broker/clients/connected", "-C", "1", "-W", "3"],
        )
        .await;
        let n: usize = sub
            .line(Duration::from_secs(4))
            .await
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or(0);
        // The retained reading may or may not count this reader yet.
        if n == want || n == want + 1 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "upstream has {n} clients (incl. the reader), wanted {want}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Adds `user` with `pass` to the Mosquitto password file `file`.
pub async fn passwd(file: &std::path::Path, user: &str, pass: &str) {
    common::require_tool("mosquitto_passwd");
    let mut cmd = tokio::process::Command::new("mosquitto_passwd");
    if !file.exists() {
        cmd.arg("-c");
    }
    let ok = cmd
        .arg("-b")
        .arg(file)
        .args([user, pass])
        .status()
        .await
        .unwrap();
    assert!(ok.success());
}
