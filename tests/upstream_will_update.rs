//! WILLTOPICUPD / WILLMSGUPD in transparent mode (MQTT-SN 1.2 §5.4.20-23):
//! MQTT fixes a will at CONNECT, so sngate makes the sensor's upstream
//! connection again with the new will. A real Mosquitto is the upstream.

mod bridge_support;
mod common;
#[path = "common/sn_sensor.rs"]
mod sn_sensor;
mod upstream_support;

use std::time::Duration;

use bridge_support::Mosquitto;
use bytes::Bytes;
use common::{Sub, mosquitto_pub};
use sn_sensor::SnSensor;
use sngate::mqttsn::codec::{Message, ReturnCode, WillTopic};
use sngate::qos::QoS;
use upstream_support::{sensor, start};

async fn update_will(s: &SnSensor, topic: &str, message: &[u8]) {
    s.send(&Message::WillTopicUpd(Some(WillTopic {
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: Bytes::copy_from_slice(topic.as_bytes()),
    })))
    .await;
    assert_eq!(
        s.recv().await,
        Message::WillTopicResp {
            code: ReturnCode::Accepted
        }
    );
    s.send(&Message::WillMsgUpd {
        message: Bytes::copy_from_slice(message),
    })
    .await;
    assert_eq!(
        s.recv().await,
        Message::WillMsgResp {
            code: ReturnCode::Accepted
        }
    );
}

#[tokio::test]
async fn an_updated_will_is_the_one_the_upstream_publishes() {
    let up = Mosquitto::start("").await;
    let app = start("transparent", up.addr, "", "").await;
    let gw = app.gateway_udp[0];
    sensor(gw, "probe", 30).await.disconnect().await;
    let mut sub = Sub::start(up.addr, &["-t", "site-a/will/#", "-q", "1", "-F", "%t %p"]).await;
    let mut s = SnSensor::new(gw).await;
    let code = s
        .connect_with_will("mortal", 3, "site-a/will/old", QoS::AtLeastOnce, b"old")
        .await;
    assert_eq!(code, ReturnCode::Accepted);
    update_will(&s, "site-a/will/new", b"new").await;
    // Silent from now on: lost after 1.5 × keep-alive, its connection dropped.
    assert_eq!(
        sub.line(Duration::from_secs(12)).await.as_deref(),
        Some("site-a/will/new new")
    );
    assert_eq!(
        sub.line(Duration::from_secs(2)).await,
        None,
        "the replaced wills were discarded by DISCONNECT, not published"
    );
    app.stop().await;
}

/// CONNECT with a will (so that WILLMSGUPD has one to change) and the
/// given clean-session flag.
async fn connect_with_will(s: &mut SnSensor, name: &str, clean: bool) {
    s.send(&sn_sensor::connect_msg(name, 30, clean, true)).await;
    assert_eq!(s.recv().await, Message::WillTopicReq);
    s.send(&Message::WillTopic(Some(WillTopic {
        qos: QoS::AtMostOnce,
        retain: false,
        topic: Bytes::from_static(b"site-a/will/x"),
    })))
    .await;
    assert_eq!(s.recv().await, Message::WillMsgReq);
    s.send(&Message::WillMsg {
        message: Bytes::from_static(b"x"),
    })
    .await;
    assert_eq!(
        s.recv().await,
        Message::ConnAck {
            code: ReturnCode::Accepted
        }
    );
}

#[tokio::test]
async fn subscriptions_survive_a_will_update() {
    let up = Mosquitto::start("").await;
    let app = start("transparent", up.addr, "", "").await;
    let gw = app.gateway_udp[0];
    sensor(gw, "probe", 30).await.disconnect().await;
    for clean in [true, false] {
        let name = if clean { "clean" } else { "kept" };
        let mut s = SnSensor::new(gw).await;
        connect_with_will(&mut s, name, clean).await;
        let topic = format!("site-a/cmd/{name}");
        s.subscribe_name(&topic, QoS::AtLeastOnce).await;
        update_will(&s, "site-a/will/y", b"y").await;
        // Delivered over the new connection: subscribed again or kept.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
        let got = loop {
            mosquitto_pub(up.addr, &["-t", &topic, "-m", "after", "-q", "1"]).await;
            if let Some(p) = s.next_publish_within(Duration::from_millis(700)).await {
                break p;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name}: nothing delivered after the will update"
            );
        };
        assert_eq!(&got.data[..], b"after", "{name}");
    }
    app.stop().await;
}
