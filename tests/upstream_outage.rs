//! Upstream outage in both modes: the upstream Mosquitto is stopped and
//! started again while sensors publish numbered QoS 1 messages. Every
//! message a sensor saw acknowledged reaches the upstream; new sensors are
//! refused with "congestion" while it is away.

mod bridge_support;
mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;
mod upstream_support;

use std::collections::HashSet;
use std::time::Duration;

use bridge_support::Mosquitto;
use common::Sub;
use sn_sensor::SnSensor;
use sngate::mqttsn::codec::{ReturnCode, SnQos, TopicRef};
use sngate::qos::QoS;
use upstream_support::{sensor, start};

const N: u32 = 60;

async fn acknowledged_messages_survive_an_upstream_restart(mode: &str) {
    // Persistence keeps the collector's session (and its queue) across the restart.
    let dir = tempfile::tempdir().unwrap();
    let persist = format!(
        "persistence true\npersistence_location {}/\nautosave_interval 1\n",
        dir.path().display()
    );
    let mut up = Mosquitto::start_in(dir, &persist).await;
    let app = start(mode, up.addr, "", "max_queued = 1000").await;
    let gw = app.gateway_udp[0];
    let collector = ["-c", "-i", "collector", "-q", "1", "-t", "site-a/count/#"];
    Sub::start(up.addr, &[&collector[..], &["-E"]].concat())
        .await
        .wait_exit(Duration::from_secs(5))
        .await;
    let mut sensors = Vec::new();
    for name in ["c1", "c2"] {
        let mut s = sensor(gw, name, 60).await;
        let id = s.register(&format!("site-a/count/{name}")).await;
        sensors.push((name, s, id));
    }
    let mut acked = HashSet::new();
    for n in 0..N {
        if n == N / 3 {
            up.stop().await;
            // New sensors are refused while no upstream connection is up.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut late = SnSensor::new(gw).await;
            assert_eq!(late.connect("late", 60, true).await, ReturnCode::Congestion);
        }
        if n == 2 * N / 3 {
            up.restart().await;
        }
        for (name, s, id) in &mut sensors {
            let body = format!("{name}-{n}");
            let code = s
                .publish(
                    SnQos::Level(QoS::AtLeastOnce),
                    TopicRef::Normal(*id),
                    false,
                    body.as_bytes(),
                )
                .await;
            if code == Some(ReturnCode::Accepted) {
                acked.insert(body);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(acked.len(), 2 * N as usize, "the bound was never reached");
    let mut sub = Sub::start(up.addr, &[&collector[..], &["-F", "%p"]].concat()).await;
    let got: HashSet<String> = sub
        .lines(acked.len(), Duration::from_secs(20))
        .await
        .into_iter()
        .collect();
    let lost: Vec<_> = acked.difference(&got).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    app.stop().await;
}

#[tokio::test]
async fn transparent_acknowledged_messages_survive_an_upstream_restart() {
    acknowledged_messages_survive_an_upstream_restart("transparent").await;
}

#[tokio::test]
async fn aggregating_acknowledged_messages_survive_an_upstream_restart() {
    acknowledged_messages_survive_an_upstream_restart("aggregating").await;
}
