//! The operator's HTTP server (`[http]`, off unless configured): Prometheus
//! `/metrics`, `/healthz`, JSON under `/api`, server-sent events on
//! `/api/events`, and a status page served from files embedded in the binary.
//!
//! A deliberately small HTTP/1.1 server on tokio: GET and HEAD only, one
//! request per connection, bounded request heads. It reads state only
//! through [`Command::Status`](crate::broker::Command::Status) and the
//! gateway's status `watch` channel, never the routing state directly.

mod api;
mod connections;
mod metrics;
mod page;
mod process;
mod request;
mod server;
mod snapshot;

pub use connections::{ConnectionGuard, OpenConnections};
pub use metrics::render_metrics;
pub use process::resident_memory_bytes;
pub use server::{HttpState, bind, serve};
pub use snapshot::Snapshot;
