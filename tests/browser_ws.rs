//! A real browser: headless Chromium loads a page that uses the npm `mqtt`
//! package's browser bundle over WebSocket, subscribes, and shows a message
//! published by mosquitto_pub. The test reads the page's DOM through the
//! DevTools protocol. `bash .ci/run` installs Chromium and runs `npm ci` in
//! tests/browser.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Sub, mosquitto_pub, require_tool};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;

const TOPIC: &str = "browser/test";
const TEXT: &str = "hello from mosquitto_pub";

fn assets() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Serves index.html and the mqtt bundle on 127.0.0.1 (HTTP/1.0, one file per connection).
async fn serve_assets() -> SocketAddr {
    let bundle = assets().join("node_modules/mqtt/dist/mqtt.min.js");
    assert!(
        bundle.is_file(),
        "{} is missing: run `npm ci` in tests/browser (bash .ci/run does)",
        bundle.display()
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let bundle = bundle.clone();
            tokio::spawn(async move {
                let mut req = vec![0u8; 4096];
                let n = s.read(&mut req).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&req[..n]);
                let path = req.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or("/");
                let (status, kind, body) = match path {
                    "/" | "/index.html" => (
                        "200 OK",
                        "text/html; charset=utf-8",
                        std::fs::read(assets().join("index.html")).unwrap(),
                    ),
                    "/mqtt.min.js" => {
                        ("200 OK", "text/javascript", std::fs::read(&bundle).unwrap())
                    }
                    _ => ("404 Not Found", "text/plain", b"not found".to_vec()),
                };
                let head = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&body).await;
            });
        }
    });
    addr
}

/// Starts headless Chromium on `url`; returns it and its DevTools port.
async fn chromium(url: &str, profile: &Path) -> (Child, u16) {
    require_tool("chromium");
    let mut child = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-default-browser-check",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("chromium runs");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let find_port = async {
        while let Ok(Some(line)) = lines.next_line().await {
            // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
            if let Some(rest) = line.split("ws://127.0.0.1:").nth(1)
                && let Some(port) = rest.split('/').next().and_then(|p| p.parse().ok())
            {
                return Some(port);
            }
        }
        None
    };
    let port = tokio::time::timeout(Duration::from_secs(20), find_port)
        .await
        .expect("chromium starts its DevTools server within 20 s")
        .expect("chromium prints its DevTools address");
    // Keep draining stderr so that chromium never blocks on it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    (child, port)
}

/// The DevTools WebSocket URL of the first page target.
async fn page_target(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // Chromium builds the targets' URLs from the Host header.
    let request =
        format!("GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    // The DevTools server may keep the connection open: read up to the list's end.
    let mut raw = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            raw.extend_from_slice(&buf[..n]);
            if n == 0 || raw.trim_ascii_end().ends_with(b"]") {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), read).await;
    let body = String::from_utf8_lossy(&raw);
    body.split('"')
        .find(|part| part.starts_with("ws://") && part.contains("/devtools/page/"))
        .unwrap_or_else(|| panic!("no page target in {body}"))
        .to_owned()
}

/// Evaluates a string expression in the page (Runtime.evaluate).
async fn page_text<S>(ws: &mut S, id: u32, expression: &str) -> String
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>>
        + SinkExt<Message>
        + Unpin,
{
    let request = format!(
        r#"{{"id":{id},"method":"Runtime.evaluate","params":{{"expression":"{expression}","returnByValue":true}}}}"#
    );
    let _ = ws.send(Message::Text(request.into())).await;
    let want = format!(r#""id":{id},"#);
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        if !text.contains(&want) {
            continue;
        }
        // {"id":N,"result":{"result":{"type":"string","value":"..."}}}
        return text
            .split(r#""value":""#)
            .nth(1)
            .and_then(|v| v.split('"').next())
            .unwrap_or("")
            .to_owned();
    }
    String::new()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_page_shows_a_message_published_by_mosquitto_pub() {
    let gw = common::start_with(
        r#"
[[listener]]
protocol = "ws"
bind = "127.0.0.1:0"
"#,
    )
    .await;
    let mqtt = gw.mqtt_addr().unwrap();
    let ws_addr = gw
        .listener_addr(sngate::config::ListenerProtocol::Ws)
        .unwrap();
    let http = serve_assets().await;
    let mut ready = Sub::start(mqtt, &["-t", &format!("{TOPIC}/ready"), "-C", "1"]).await;
    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{http}/index.html?broker=ws://{ws_addr}/mqtt&topic={TOPIC}");
    let (_browser, devtools) = chromium(&url, profile.path()).await;

    assert_eq!(
        ready.line(Duration::from_secs(20)).await.as_deref(),
        Some("ready"),
        "the page connects over WebSocket and subscribes"
    );
    mosquitto_pub(mqtt, &["-t", TOPIC, "-q", "1", "-m", TEXT]).await;

    let (mut cdp, _) = tokio_tungstenite::connect_async(page_target(devtools).await)
        .await
        .expect("DevTools WebSocket");
    let expression = "document.getElementById('status').textContent + '|' + document.getElementById('messages').textContent";
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 0;
    let mut seen = String::new();
    while Instant::now() < deadline {
        id += 1;
        seen = page_text(&mut cdp, id, expression).await;
        if seen.contains(TEXT) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, format!("subscribed|{TOPIC} {TEXT}"));
    gw.stop().await;
}
