//! The status page in a real browser (headless Chromium over the DevTools
//! protocol): it shows an MQTT-SN sensor and then, without a reload, the
//! sensor's change to asleep. A screenshot is saved under target/.

mod common;
mod http_support;

use std::time::Duration;

use http_support::Sensor;
use http_support::cdp::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_a_sensor_fall_asleep_without_a_reload() {
    common::require_tool("chromium");
    let s = http_support::start(0).await;
    let url = format!("http://{}/", http_support::http_addr(&s));
    let profile = tempfile::tempdir().unwrap();
    let mut browser = tokio::task::block_in_place(|| {
        let mut b = Browser::launch(profile.path());
        b.open(&url);
        // Mark this document: a reload would lose the mark.
        assert!(
            b.wait_for(
                "Number(document.body?.dataset.updates) >= 1",
                Duration::from_secs(20)
            ),
            "the page loads and receives its first update"
        );
        b.eval("window.loadMark = 'first-load'; true");
        b
    });

    let mut sensor = Sensor::new(s.gateway_udp[0]).await;
    sensor.connect("garden-3", 60).await;
    let topic = sensor.register("garden/3/soil").await;
    for v in [b"31", b"32", b"33"] {
        sensor.publish_qos1(topic, v).await;
    }
    let row = "document.querySelector('#sensors tr[data-client-id=\"garden-3\"]')";
    tokio::task::block_in_place(|| {
        assert!(
            browser.wait_for(
                &format!("{row} !== null && {row}.dataset.state === 'active'"),
                Duration::from_secs(15)
            ),
            "the page shows the sensor as active"
        );
    });

    sensor.sleep(300).await;
    tokio::task::block_in_place(|| {
        assert!(
            browser.wait_for(
                &format!("{row} !== null && {row}.dataset.state === 'asleep'"),
                Duration::from_secs(15)
            ),
            "the page shows the sensor asleep"
        );
        assert_eq!(
            browser.eval(&format!("{row}.dataset.history")),
            "active asleep"
        );
        assert_eq!(browser.eval("window.loadMark"), "first-load", "no reload");
        let text = browser.eval(&format!("{row}.innerText"));
        let text = text.as_str().unwrap();
        assert!(
            text.contains("asleep") && text.contains("garden/3/soil"),
            "{text}"
        );
        assert!(text.contains("sleep 5 min"), "{text}");
        let png = browser.screenshot();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("status-page.png"), png).unwrap();
    });
    drop(browser);
    s.stop().await;
}
