//! Accepting HTTP connections and answering one request on each.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::connections::OpenConnections;
use super::request::{Request, read_request};
use super::snapshot::Sources;
use super::{api, metrics, page};
use crate::broker::{BrokerHandle, Metrics};
use crate::gateway::GatewayStatus;
use crate::transport::tcp;

/// Concurrent HTTP connections (event streams included).
const MAX_CONNECTIONS: usize = 64;
/// Time a peer has to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a peer has to take one event before its stream is closed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Period of `/api/events` updates.
const EVENT_INTERVAL: Duration = Duration::from_secs(1);

/// What the HTTP server reads from.
#[derive(Debug)]
pub struct HttpState {
    sources: Sources,
    shutdown: CancellationToken,
}

impl HttpState {
    /// State over the broker core, its counters, the listeners' open
    /// connections and the gateway's status channel.
    pub fn new(
        broker: BrokerHandle,
        metrics: Arc<Metrics>,
        open: Arc<OpenConnections>,
        gateway: Option<watch::Receiver<GatewayStatus>>,
        started: Instant,
        shutdown: CancellationToken,
    ) -> HttpState {
        HttpState {
            sources: Sources {
                broker,
                metrics,
                open,
                gateway,
                started,
            },
            shutdown,
        }
    }
}

/// Binds the HTTP listener.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    tcp::bind(addr)
}

/// Serves until the state's shutdown token is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<HttpState>, tasks: TaskTracker) {
    let shutdown = state.shutdown.clone();
    let metrics = state.sources.metrics.clone();
    tcp::accept_loop(
        listener,
        MAX_CONNECTIONS,
        metrics,
        shutdown,
        tasks.clone(),
        move |stream, _peer| handle(stream, state.clone()),
    )
    .await;
}

/// A complete response with a body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn new(status: &'static str, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }

    fn text(status: &'static str, body: &str) -> Self {
        Response::new(status, "text/plain; charset=utf-8", format!("{body}\n"))
    }

    fn json(value: &serde_json::Value) -> Self {
        Response::new(
            "200 OK",
            "application/json",
            serde_json::to_vec(value).unwrap_or_default(),
        )
    }

    async fn write<W: AsyncWrite + Unpin>(&self, w: &mut W, head_only: bool) -> io::Result<()> {
        let head = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
             Connection: close\r\n\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        w.write_all(head.as_bytes()).await?;
        if !head_only {
            w.write_all(&self.body).await?;
        }
        w.flush().await
    }
}

async fn handle(mut stream: TcpStream, state: Arc<HttpState>) {
    let req = match tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await {
        Ok(Ok(req)) => req,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "bad HTTP request");
            let _ = Response::text("400 Bad Request", "bad request")
                .write(&mut stream, false)
                .await;
            return;
        }
        Err(_) => return,
    };
    let head_only = req.method == "HEAD";
    if req.method != "GET" && !head_only {
        let _ = Response::text("405 Method Not Allowed", "only GET and HEAD")
            .write(&mut stream, false)
            .await;
        return;
    }
    if req.path == "/api/events" && !head_only {
        events(stream, &state).await;
        return;
    }
    let response = route(&req, &state).await;
    let _ = tokio::time::timeout(WRITE_TIMEOUT, response.write(&mut stream, head_only)).await;
}

async fn route(req: &Request, state: &HttpState) -> Response {
    let path = req.path.as_str();
    if let Some(file) = page::file(path) {
        return Response::new("200 OK", file.content_type, file.body);
    }
    let src = &state.sources;
    if path == "/healthz" {
        let up = src.gateway_alive() && src.take().await.is_some();
        return if up {
            Response::text("200 OK", "ok")
        } else {
            Response::text("503 Service Unavailable", "unavailable")
        };
    }
    let known = matches!(
        path,
        "/metrics" | "/api/status" | "/api/clients" | "/api/sensors"
    ) || path.starts_with("/api/sensors/");
    if !known {
        return Response::text("404 Not Found", "not found");
    }
    let Some(snap) = src.take().await else {
        return Response::text("503 Service Unavailable", "broker core not answering");
    };
    match path {
        "/metrics" => Response::new(
            "200 OK",
            metrics::CONTENT_TYPE,
            metrics::render_metrics(&snap),
        ),
        "/api/status" => Response::json(&api::status(&snap)),
        "/api/clients" => Response::json(&api::clients(&snap)),
        "/api/sensors" => Response::json(&api::sensors(&snap)),
        _ => {
            let id = path.strip_prefix("/api/sensors/").unwrap_or_default();
            match api::sensor_by_id(&snap, id) {
                Some(v) => Response::json(&v),
                None => Response::text("404 Not Found", "no such sensor"),
            }
        }
    }
}

/// `/api/events`: a server-sent event stream, one `status` event (the
/// `/api/status` document) per second until the peer goes or sngate stops.
async fn events(mut stream: TcpStream, state: &HttpState) {
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
                Cache-Control: no-store\r\nConnection: close\r\n\r\n\
                retry: 2000\n\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut tick = tokio::time::interval(EVENT_INTERVAL);
    loop {
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(snap) = state.sources.take().await else {
            return;
        };
        let data = serde_json::to_string(&api::status(&snap)).unwrap_or_default();
        // serde_json never writes a raw newline, so the event is one data line.
        let event = format!("event: status\ndata: {data}\n\n");
        // A reader that stops reading is dropped rather than holding a task.
        let write = tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(event.as_bytes()));
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            r = write => if !matches!(r, Ok(Ok(()))) { return },
        }
    }
}
