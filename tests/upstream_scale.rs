//! 1,000 sensors in transparent mode hold 1,000 upstream connections to a
//! real Mosquitto (bounded in time).

mod bridge_support;
mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;
mod upstream_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use bridge_support::Mosquitto;
use sn_sensor::SnSensor;
use sngate::mqttsn::codec::ReturnCode;
use upstream_support::{sensor, start, wait_clients};

const SENSORS: usize = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_transparent_sensors_hold_a_thousand_upstream_connections() {
    // Sockets: sngate's upstream side, Mosquitto's side and the sensors'.
    let (soft, _) = nofile();
    assert!(
        soft >= 3 * SENSORS as u64 + 200,
        "raise the open-files limit (ulimit -n) to run this test"
    );
    let up = Mosquitto::start("sys_interval 1\nmax_connections -1").await;
    let app = start("transparent", up.addr, "max_sensors = 2000", "").await;
    let gw = app.gateway_udp[0];
    drop(sensor(gw, "warm-up", 300).await);
    let started = tokio::time::Instant::now();
    let mut sensors = Vec::with_capacity(SENSORS);
    // In batches, so that the CONNECT burst stays within what the gateway answers in time.
    for batch in 0..SENSORS / 50 {
        let mut joins = Vec::new();
        for i in 0..50 {
            let id = format!("scale-{}", batch * 50 + i);
            joins.push(tokio::spawn(async move {
                let mut s = SnSensor::new(gw).await;
                let code = s.connect(&id, 300, true).await;
                (s, code)
            }));
        }
        for j in joins {
            let (s, code) = j.await.unwrap();
            assert_eq!(code, ReturnCode::Accepted);
            sensors.push(s);
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "connecting took {:?}",
        started.elapsed()
    );
    let stats = app.upstream.clone().unwrap();
    // The shared connection, the warm-up sensor's (still up: never disconnected) and one per sensor.
    assert!(stats.links_up.load(Ordering::Relaxed) > SENSORS as u64);
    wait_clients(up.addr, SENSORS + 2, Duration::from_secs(15)).await;
    app.stop().await;
}

fn nofile() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| {
            let mut it = l.split_whitespace().skip(3);
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .unwrap_or((0, 0))
}
