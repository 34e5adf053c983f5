//! Packets from different clients that wait in the kernel together are
//! served in the order they arrived, as a single-threaded broker serves them:
//! a SUBSCRIBE that arrived before another client's PUBLISH is in place when
//! that PUBLISH is routed. MQTT orders messages only per client (§4.6), but
//! request/response clients (and the Paho interoperability suite) rely on it.
//! The real binary is stopped with SIGSTOP while both packets arrive, so its
//! next look at the sockets finds both ready at once. It runs on one CPU: with
//! several worker threads a second worker may pick up the later connection
//! while the first is still decoding the earlier one, so the order is then
//! only as good as a task poll is short.

mod persistence_support;

use std::time::Duration;

use persistence_support::{Gate, Mqtt, config, signal, write_config};

#[test]
#[cfg_attr(
    not(tokio_unstable),
    ignore = "needs the tokio_unstable cfg of .cargo/config.toml (RUSTFLAGS replaced it)"
)]
fn a_subscribe_that_arrived_first_is_in_place_for_a_publish_that_arrived_after_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), &config(dir.path(), "", ""));
    let gate = Gate::start_on_one_cpu(&path, &[]);
    for round in 0..5 {
        let topic = format!("order/{round}");
        let mut publisher =
            Mqtt::connect(gate.mqtt, &format!("req{round}"), false, true, 0).expect("connect");
        let mut subscriber =
            Mqtt::connect(gate.mqtt, &format!("resp{round}"), false, true, 0).expect("connect");
        signal(gate.pid(), "STOP");
        subscriber
            .send_subscribe(&topic, 0)
            .expect("send SUBSCRIBE");
        std::thread::sleep(Duration::from_millis(20));
        publisher
            .publish(&topic, b"after", 0, 0, false, false)
            .expect("send PUBLISH");
        std::thread::sleep(Duration::from_millis(20));
        signal(gate.pid(), "CONT");
        subscriber
            .expect(9, Duration::from_secs(5))
            .expect("SUBACK");
        let delivered = subscriber.expect(3, Duration::from_secs(3));
        assert!(
            delivered.is_ok_and(|p| p.body.ends_with(b"after")),
            "round {round}: the PUBLISH that arrived after the SUBSCRIBE was not delivered"
        );
        publisher.disconnect();
        subscriber.disconnect();
    }
}
