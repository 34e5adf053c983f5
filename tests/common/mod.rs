//! Test harness: start sngate in-process on free ports and drive it with real
//! third-party clients (Mosquitto's command-line tools, Python paho-mqtt).
//! `bash .ci/run` installs those; a missing tool fails the test with a hint
//! instead of skipping it silently.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use sngate::app::Sngate;
use sngate::config::Config;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The base config for tests: loopback, port 0 everywhere, `$SYS` off unless asked.
pub const BASE_CONFIG: &str = r#"
[log]
level = "debug"

[broker]
sys_interval = 0

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0

[[gateway.udp]]
bind = "127.0.0.1:0"
"#;

/// Starts sngate with `BASE_CONFIG` with `extra` merged in (later keys win per
/// table, so `extra` may only add tables or keys not in the base).
pub async fn start_with(extra: &str) -> Sngate {
    init_tracing();
    let text = format!("{BASE_CONFIG}\n{extra}");
    let config = Config::from_toml_str(&text, "test.toml").expect("test config is valid");
    sngate::app::start(&config).await.expect("sngate starts")
}

/// Starts sngate with the base config.
pub async fn start() -> Sngate {
    start_with("").await
}

/// Starts sngate from a complete config text.
pub async fn start_config(text: &str) -> Sngate {
    init_tracing();
    let config = Config::from_toml_str(text, "test.toml").expect("test config is valid");
    sngate::app::start(&config).await.expect("sngate starts")
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}

/// Panics with an install hint if `tool` is not on PATH.
pub fn require_tool(tool: &str) {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: run `bash .ci/run` once (it installs mosquitto-clients, socat and paho-mqtt)"
    );
}

/// A running `mosquitto_sub` whose output lines can be awaited.
pub struct Sub {
    child: Child,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

impl Sub {
    /// Starts `mosquitto_sub -h 127.0.0.1 -p PORT ARGS...` and waits until it
    /// has subscribed (it prints nothing until then, so we wait for the
    /// broker's subscription count via a short delay plus a probe).
    pub async fn start(addr: SocketAddr, args: &[&str]) -> Sub {
        require_tool("mosquitto_sub");
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("mosquitto_sub runs");
        let stdout = child.stdout.take().expect("stdout piped");
        // mosquitto_sub has no "subscribed" signal; give it time to connect
        // and subscribe before the test publishes.
        tokio::time::sleep(Duration::from_millis(400)).await;
        Sub {
            child,
            lines: BufReader::new(stdout).lines(),
        }
    }

    /// The next output line, or `None` after `wait`.
    pub async fn line(&mut self, wait: Duration) -> Option<String> {
        match tokio::time::timeout(wait, self.lines.next_line()).await {
            Ok(Ok(line)) => line,
            _ => None,
        }
    }

    /// Collects `n` lines, waiting at most `wait` in total.
    pub async fn lines(&mut self, n: usize, wait: Duration) -> Vec<String> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        while out.len() < n {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.line(left).await {
                Some(l) => out.push(l),
                None => break,
            }
        }
        out
    }

    /// Kills the client abruptly (no DISCONNECT).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    /// Waits for the process to exit by itself (e.g. after `-C N`).
    pub async fn wait_exit(mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        tokio::time::timeout(wait, self.child.wait()).await.ok()?.ok()
    }
}

/// Runs `mosquitto_pub -h 127.0.0.1 -p PORT ARGS...` to completion.
pub async fn mosquitto_pub(addr: SocketAddr, args: &[&str]) {
    require_tool("mosquitto_pub");
    let status = tokio::time::timeout(
        Duration::from_secs(10),
        Command::new("mosquitto_pub")
            .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .args(args)
            .kill_on_drop(true)
            .status(),
    )
    .await
    .expect("mosquitto_pub finishes within 10 s")
    .expect("mosquitto_pub runs");
    assert!(status.success(), "mosquitto_pub {args:?} failed: {status}");
}

/// Runs a Python 3 script with `paho-mqtt` available; `args` become
/// `sys.argv[1:]`. Returns stdout; panics with stderr if it fails.
pub async fn python(script: &str, args: &[&str]) -> String {
    require_tool("python3");
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("python finishes within 30 s")
    .expect("python3 runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python script failed ({}):\n{stderr}",
        out.status
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Port as a string, for command lines.
pub fn port(addr: SocketAddr) -> String {
    addr.port().to_string()
}
