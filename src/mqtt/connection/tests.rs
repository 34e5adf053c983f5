//! The connection future over an in-memory stream and a real broker core:
//! what an idle connection holds, and how it ends.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_util::sync::CancellationToken;

use super::ConnectionContext;
use super::driver::Connection;
use crate::auth::Authorizer;
use crate::broker::{self, BrokerSettings};
use crate::mqtt::session::SessionSettings;

const CONNACK_ACCEPTED: [u8; 4] = [0x20, 0x02, 0x00, 0x00];

fn context(shutdown: &CancellationToken) -> Arc<ConnectionContext> {
    let (broker, metrics, _core) = broker::spawn(BrokerSettings::default(), shutdown.clone());
    Arc::new(ConnectionContext {
        broker,
        metrics,
        settings: SessionSettings::default(),
        shutdown: shutdown.clone(),
        authorizer: Arc::new(Authorizer::open()),
        identity: None,
        max_publish_rate: 0,
    })
}

fn connection(shutdown: &CancellationToken) -> (Connection<DuplexStream>, DuplexStream) {
    let (client, server) = tokio::io::duplex(4096);
    let peer = "127.0.0.1:1883".parse().unwrap();
    let conn = Connection::new(server, peer, context(shutdown));
    (conn, client)
}

/// MQTT 3.1.1 CONNECT, clean session, client id "c1".
fn connect_packet(keep_alive: u16) -> Vec<u8> {
    let [hi, lo] = keep_alive.to_be_bytes();
    vec![
        0x10, 14, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, hi, lo, 0, 2, b'c', b'1',
    ]
}

/// Drives the connection until the client has read `n` bytes.
async fn read_while_driving(
    conn: &mut Connection<DuplexStream>,
    client: &mut DuplexStream,
    n: usize,
) -> Vec<u8> {
    let mut got = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! {
            () = &mut *conn => panic!("connection ended"),
            r = client.read_exact(&mut got) => { r.unwrap(); }
        }
    })
    .await
    .expect("no reply in time");
    got
}

/// A connection whose client has connected with `keep_alive` and read its
/// CONNACK, left to settle into its idle state.
async fn connected(
    shutdown: &CancellationToken,
    keep_alive: u16,
) -> (Connection<DuplexStream>, DuplexStream) {
    let (mut conn, mut client) = connection(shutdown);
    client.write_all(&connect_packet(keep_alive)).await.unwrap();
    let reply = read_while_driving(&mut conn, &mut client, 4).await;
    assert_eq!(reply, CONNACK_ACCEPTED);
    settle(&mut conn).await;
    (conn, client)
}

/// Polls the connection until it waits on everything (or a little longer).
async fn settle(conn: &mut Connection<DuplexStream>) {
    let _ = tokio::time::timeout(Duration::from_millis(50), &mut *conn).await;
}

#[tokio::test]
async fn an_idle_connected_client_holds_no_buffer_timer_or_shutdown_wait() {
    let shutdown = CancellationToken::new();
    let (conn, _client) = connected(&shutdown, 0).await;
    let idle = conn.idle_footprint();
    assert_eq!(idle.read_buffer, 0, "read buffer kept while idle");
    assert_eq!(idle.write_buffer, 0, "write buffer kept while idle");
    assert!(idle.timer.is_none(), "a timer armed with keep-alive 0");
    assert!(!idle.shutdown_wait, "shutdown wait kept after CONNACK");
    assert!(!idle.sending, "a command still waiting for the core");
}

#[tokio::test]
async fn a_keep_alive_arms_the_one_timer() {
    let shutdown = CancellationToken::new();
    let (conn, _client) = connected(&shutdown, 60).await;
    assert!(conn.idle_footprint().timer.is_some());
}

#[tokio::test]
async fn a_packet_leaves_the_armed_keep_alive_timer_in_place() {
    let shutdown = CancellationToken::new();
    let (mut conn, mut client) = connected(&shutdown, 60).await;
    let armed = conn.idle_footprint().timer;
    tokio::time::sleep(Duration::from_millis(20)).await;
    client.write_all(&[0xC0, 0x00]).await.unwrap(); // PINGREQ
    let reply = read_while_driving(&mut conn, &mut client, 2).await;
    assert_eq!(reply, [0xD0, 0x00]); // PINGRESP
    settle(&mut conn).await;
    // The keep-alive deadline moved 20 ms later; the timer fires at the old
    // one and is re-armed only then.
    assert_eq!(conn.idle_footprint().timer, armed);
}

#[tokio::test]
async fn a_client_that_never_sends_connect_is_closed_at_shutdown() {
    let shutdown = CancellationToken::new();
    let (mut conn, _client) = connection(&shutdown);
    settle(&mut conn).await;
    assert!(conn.idle_footprint().shutdown_wait);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), &mut conn)
        .await
        .expect("connection still open after shutdown");
}

#[tokio::test]
async fn a_connected_client_hears_the_core_say_goodbye_at_shutdown() {
    let shutdown = CancellationToken::new();
    let (mut conn, mut client) = connected(&shutdown, 0).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), &mut conn)
        .await
        .expect("connection still open after shutdown");
    // 3.1.1 has no server DISCONNECT: the stream is simply closed.
    let mut rest = Vec::new();
    client.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
}
