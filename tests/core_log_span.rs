//! What the broker core logs about one client carries the core's span, not
//! the span of the connection whose task happened to apply the command (an
//! idle client applies its own PUBLISH to an idle core).

mod common;

use std::time::Duration;

use common::log_capture::{install, wait_for_line};
use common::raw::{RawClient, connect_with, publish, subscribe};
use common::start_with_broker;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_core_log_line_about_a_subscriber_does_not_carry_the_publishers_span() {
    install();
    let gw = start_with_broker("sys_interval = 0\nmax_queued_bytes = 16").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");

    // A persistent subscriber that goes offline: its queue fills while away.
    let mut sub = RawClient::open(addr).await;
    sub.send(&connect_with(4, 0x00, 60, "span-sub")).await;
    assert_eq!(sub.read_exact(4).await, Some(vec![0x20, 0x02, 0x00, 0x00]));
    sub.send(&subscribe(1, "span/t", 1)).await;
    assert_eq!(
        sub.read_exact(5).await,
        Some(vec![0x90, 0x03, 0x00, 0x01, 0x01])
    );
    drop(sub);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut publisher = RawClient::connected(addr, "span-pub").await;
    publisher
        .send(&publish(
            b"span/t",
            b"more than sixteen bytes of payload",
            1,
            1,
        ))
        .await;
    assert_eq!(
        publisher.read_exact(4).await,
        Some(vec![0x40, 0x02, 0x00, 0x01])
    );

    let line = wait_for_line(
        &["max_queued_bytes reached", "client_id=span-sub"],
        Duration::from_secs(5),
    )
    .await
    .expect("the core logs the subscriber's dropped message");
    assert!(
        line.contains("core:"),
        "the line is in the core's span: {line}"
    );
    assert!(
        !line.contains("span-pub"),
        "the publisher's connection span shows through: {line}"
    );
    gw.stop().await;
}
