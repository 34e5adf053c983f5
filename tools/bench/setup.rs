//! Command-line options shared by the scenarios and connection helpers.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::mqtt::Client;

/// Connections opened at once while setting up a scenario.
pub const CONNECT_CONCURRENCY: usize = 100;

/// Opens `n` clients named `prefix-<i>`, at most [`CONNECT_CONCURRENCY`] at a time,
/// returned in index order.
pub async fn connect_many(
    addr: SocketAddr,
    prefix: &str,
    n: usize,
    keep_alive: u16,
) -> Result<Vec<Client>> {
    let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let mut set = JoinSet::new();
    for i in 0..n {
        let gate = gate.clone();
        let id = format!("{prefix}-{i}");
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            Client::connect(addr, &id, keep_alive).await.map(|c| (i, c))
        });
    }
    let mut out: Vec<Option<Client>> = (0..n).map(|_| None).collect();
    while let Some(r) = set.join_next().await {
        let (i, c) = r.context("connect task")??;
        if let Some(slot) = out.get_mut(i) {
            *slot = Some(c);
        }
    }
    out.into_iter()
        .map(|c| c.context("missing client"))
        .collect()
}

/// A random suffix so that repeated runs never collide on client ids or topics.
pub fn run_tag() -> String {
    format!("{:06x}", rand::random::<u32>() & 0xFF_FFFF)
}
