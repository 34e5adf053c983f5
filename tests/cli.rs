//! The `sngate` binary as a user runs it: help, version, config checking,
//! running from a file and stopping cleanly on SIGTERM / SIGINT.

mod common;

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{Sub, mosquitto_pub};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(10);

fn sngate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sngate"));
    cmd.env_remove("RUST_LOG").kill_on_drop(true);
    cmd
}

async fn run(args: &[&str]) -> Output {
    tokio::time::timeout(WAIT, sngate().args(args).output())
        .await
        .expect("sngate exits within 10 s")
        .expect("sngate runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn repo_file(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_succeeds_and_lists_the_options() {
    let out = run(&["--help"]).await;
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    assert!(
        help.contains("--config") && help.contains("check-config"),
        "{help}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_succeeds_and_prints_the_package_version() {
    let out = run(&["--version"]).await;
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        text(&out.stdout).trim(),
        format!("sngate {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_accepts_the_reference_config() {
    let file = repo_file("config/sngate.toml");
    let out = run(&["check-config", &file]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), format!("{file}: OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_accepts_the_minimal_config() {
    let file = repo_file("config/sngate.minimal.toml");
    let out = run(&["check-config", &file]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_accepts_the_example_config() {
    let file = repo_file("config/sngate.example.toml");
    let out = run(&["check-config", &file]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_accepts_every_shipped_example() {
    let dir = repo_file("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let out = run(&["check-config", &path.display().to_string()]).await;
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                path.display(),
                text(&out.stderr)
            );
            checked += 1;
        }
    }
    assert!(checked >= 5, "examples/ holds the shipped configs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_rejects_a_broken_file_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(
        &path,
        "[broker]\nmax_keepalive = 60\nsys_interval = \"often\"\n",
    )
    .unwrap();
    let out = run(&["check-config", &path.display().to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:", path.display())) && err.contains("broker.sys_interval"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_config_file_fails_with_exit_code_1_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.toml").display().to_string();
    let out = run(&["-c", &path]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&path), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_listener_address_fails_with_exit_code_1_naming_the_address() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sngate.toml");
    std::fs::write(
        &config,
        format!("[[listener]]\nprotocol = \"mqtt\"\nbind = \"{addr}\"\n"),
    )
    .unwrap();
    let out = run(&["-c", &config.display().to_string()]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains(&addr.to_string()), "{err}");
}

/// A free loopback port: bound and released, so only nearly race-free.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Starts `sngate -c FILE` listening on a free port, checks it serves a
/// publish, sends `signal`, and returns the exit status and the log.
async fn run_then_signal(signal: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let Listening {
        mut child,
        addr,
        mut seen,
        mut log,
    } = start_listening(None, dir.path()).await;

    let mut sub = Sub::start(addr, &["-t", "cli/t", "-C", "1", "-W", "5"]).await;
    mosquitto_pub(addr, &["-t", "cli/t", "-q", "1", "-m", "served"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("served"));

    let pid = child.id().expect("running").to_string();
    let kill = Command::new("kill")
        .args([signal, &pid])
        .status()
        .await
        .unwrap();
    assert!(kill.success());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("sngate exits within 10 s of the signal")
        .unwrap();
    while let Ok(Ok(Some(line))) = tokio::time::timeout(WAIT, log.next_line()).await {
        seen.push_str(&line);
        seen.push('\n');
    }
    (status, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_sngate_with_exit_code_0() {
    let (status, log) = run_then_signal("-TERM").await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_stops_sngate_with_exit_code_0() {
    let (status, log) = run_then_signal("-INT").await;
    assert_eq!(status.code(), Some(0), "{log}");
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
}

/// The soft open-files limit sngate is started with in the test below: far
/// fewer descriptors than the clients the test connects.
const LOW_SOFT_LIMIT: usize = 128;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_clients_than_the_soft_open_files_limit_are_served() {
    let dir = tempfile::tempdir().unwrap();
    // The hard limit stays as inherited (well above the clients below); only
    // the soft one is lowered, as a login shell's 1,024 usually is.
    // Held to the end of the test: the child is killed on drop.
    let sngate = start_listening(Some(&format!("-Sn {LOW_SOFT_LIMIT}")), dir.path()).await;
    let (addr, seen) = (sngate.addr, &sngate.seen);
    assert!(
        seen.contains(&format!("open files limit raised from {LOW_SOFT_LIMIT} to")),
        "the raise is logged:\n{seen}"
    );

    let mut clients = Vec::new();
    for i in 0..LOW_SOFT_LIMIT * 2 {
        clients.push(common::raw::RawClient::connected(addr, &format!("fd-{i}")).await);
    }
    // Every one of them stays served, the first as well as the last.
    let last = clients.len() - 1;
    for i in [0, last] {
        let c = &mut clients[i];
        c.send(&[0xC0, 0x00]).await;
        assert_eq!(c.read_exact(2).await, Some(vec![0xD0, 0x00]), "PINGRESP");
    }
}

/// A running `sngate -c FILE`, its MQTT address, and its log so far.
struct Listening {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
    seen: String,
    log: tokio::io::Lines<BufReader<tokio::process::ChildStderr>>,
}

/// Writes a config in `dir` listening on a free port, starts sngate from it
/// (through `sh`, running `ulimit ULIMIT_ARGS` first, when given) and waits
/// until it listens.
async fn start_listening(ulimit_args: Option<&str>, dir: &Path) -> Listening {
    let port = free_port();
    let config = dir.join("sngate.toml");
    std::fs::write(
        &config,
        format!("[log]\nlevel = \"info\"\n\n[[listener]]\nprotocol = \"mqtt\"\nbind = \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let config = config.display().to_string();
    let mut cmd = match ulimit_args {
        None => {
            let mut cmd = sngate();
            cmd.args(["-c", &config]);
            cmd
        }
        Some(args) => {
            let mut cmd = Command::new("sh");
            cmd.args([
                "-c",
                &format!("ulimit {args} && exec \"$0\" -c \"$1\""),
                env!("CARGO_BIN_EXE_sngate"),
                &config,
            ])
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
            cmd
        }
    };
    let mut child = cmd
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("sngate starts");
    let mut log = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    let listening = tokio::time::timeout(WAIT, async {
        while let Ok(Some(line)) = log.next_line().await {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("listen socket on") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(listening, Ok(true), "sngate listens; log so far:\n{seen}");
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    Listening {
        child,
        addr,
        seen,
        log,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_past_the_open_files_limit_is_closed_not_left_waiting() {
    use common::raw::{RawClient, connect};
    let dir = tempfile::tempdir().unwrap();
    // Soft and hard limit both low: nothing left to raise.
    let sngate = start_listening(Some("-n 48"), dir.path()).await;
    let (addr, seen) = (sngate.addr, &sngate.seen);
    assert!(
        seen.contains("open files limit is 48"),
        "a low hard limit is warned about:\n{seen}"
    );

    let mut served = Vec::new();
    let mut refused = None;
    for i in 0..100 {
        let mut c = RawClient::open(addr).await;
        c.send(&connect(&format!("fd-{i}"), 60)).await;
        match c.read_exact(4).await {
            Some(connack) => {
                assert_eq!(connack, [0x20, 0x02, 0x00, 0x00], "CONNACK accepted");
                served.push(c);
            }
            None => {
                refused = Some(c);
                break;
            }
        }
    }
    let mut refused = refused.expect("the descriptor table fills before 100 clients");
    assert!(
        refused.closed_within(Duration::from_secs(2)).await,
        "the client past the limit sees its connection closed"
    );
    assert!(served.len() > 10, "{} clients served first", served.len());

    // Descriptors freed by leaving clients serve new ones again.
    served.truncate(served.len() - 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    RawClient::connected(addr, "after").await;
}
