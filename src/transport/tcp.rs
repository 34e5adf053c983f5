//! TCP listeners for MQTT: bind with socket2 (SO_REUSEADDR, so a restart does
//! not wait for TIME_WAIT), accept, and hand each stream to a connection task.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::FutureExt;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::broker::Metrics;
use crate::limits::Limit;

/// Binds a listening TCP socket.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        // One listener per address family, as in mosquitto.conf.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    TcpListener::from_std(socket.into())
}

/// Accepts connections until `shutdown`, spawning `serve` for each on `tasks`.
/// `max_connections` of 0 means unlimited; past the limit new connections are
/// closed at once, logged and counted.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    max_connections: usize,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = (max_connections > 0).then(|| Arc::new(Semaphore::new(max_connections)));
    let mut reserve = FdReserve::open();
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(v) => v,
            Err(e) => {
                if is_out_of_descriptors(&e) && reserve.shed(&listener) {
                    Metrics::inc(&metrics.connections_refused);
                    warn!(
                        "Connection refused: out of file descriptors ({e}); raise the open files limit or set max_connections."
                    );
                } else {
                    warn!("accept failed: {e}");
                }
                // Back off briefly instead of spinning on a full descriptor table.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let permit = match &limit {
            Some(sem) => match sem.clone().try_acquire_owned() {
                Ok(p) => Some(p),
                Err(_) => {
                    metrics.limits.hit(Limit::MaxConnections);
                    Metrics::inc(&metrics.connections_refused);
                    warn!(
                        "Connection from {peer} refused: max_connections ({max_connections}) reached."
                    );
                    continue;
                }
            },
            None => None,
        };
        let _ = stream.set_nodelay(true);
        debug!(%peer, "accepted");
        // `map`, not `async move { fut.await }`: an async block keeps the
        // captured future and its awaited copy side by side, doubling the
        // memory of every connection task.
        tasks.spawn(serve(stream, peer).map(move |()| drop(permit)));
    }
}

/// `accept` failed for want of a file descriptor (process or system table full).
fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(EMFILE | ENFILE))
}

/// EMFILE (the process's table is full), the same number on Linux and the BSDs.
const EMFILE: i32 = 24;
/// ENFILE (the system's table is full).
const ENFILE: i32 = 23;

/// One descriptor held back for the day the table is full: closing it lets
/// the listener accept the waiting connection and close it at once, so the
/// client sees its connection end instead of hanging in the backlog.
struct FdReserve(Option<std::fs::File>);

impl FdReserve {
    fn open() -> FdReserve {
        FdReserve(std::fs::File::open("/dev/null").ok())
    }

    /// Frees the reserve, accepts and closes one waiting connection, and
    /// takes the reserve back; true if a connection was shed.
    fn shed(&mut self, listener: &TcpListener) -> bool {
        if self.0.take().is_none() {
            *self = FdReserve::open();
            return false;
        }
        // Polled once: the failed accept means a connection is waiting.
        let shed = match listener.accept().now_or_never() {
            Some(Ok((stream, peer))) => {
                debug!(%peer, "closed at once: out of file descriptors");
                drop(stream);
                true
            }
            _ => false,
        };
        *self = FdReserve::open();
        shed
    }
}
