//! A clean restart (SIGTERM) keeps persistent sessions, retained messages,
//! MQTT-SN topic ids and the messages waiting for sleeping sensors.

mod persistence_support;

use std::time::Duration;

use persistence_support::{Gate, Mqtt, Sensor, config, write_config};

const QUIET: Duration = Duration::from_millis(800);

#[test]
fn sigterm_restart_keeps_sessions_retained_messages_topic_ids_and_sleeping_sensors_messages() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &config(&dir.path().join("store"), "", ""));
    let gate = Gate::start(&cfg, &[]);

    // An MQTT 3.1.1 persistent session with a subscription, offline.
    let mut s = Mqtt::connect(gate.mqtt, "keeper", false, false, 0).unwrap();
    s.subscribe("home/#", 1).unwrap();
    s.disconnect();
    // A sensor that registered a topic id and published with it.
    let reg = Sensor::new(gate.udp);
    reg.connect("temp-sensor", false);
    let temp_id = reg.register("home/temp", 1);
    assert_eq!(reg.publish_qos1(temp_id, 2, b"20.5"), 0);
    // A sleeping sensor subscribed to the same tree.
    let sleeper = Sensor::new(gate.udp);
    sleeper.connect("sleeper", false);
    sleeper.subscribe("home/#", 1, 1);
    sleeper.sleep(3600);
    // A retained message, and one more message while both are away.
    let mut p = Mqtt::connect(gate.mqtt, "p", false, true, 0).unwrap();
    p.publish("home/door", b"open", 1, 1, true, false).unwrap();
    assert_eq!(
        Mqtt::reason(&p.expect(4, Duration::from_secs(5)).unwrap()),
        0
    );
    p.publish("home/light", b"on", 1, 2, false, false).unwrap();
    p.expect(4, Duration::from_secs(5)).unwrap();
    p.disconnect();
    gate.stop();

    let gate = Gate::start(&cfg, &[]);
    assert!(gate.logged("persistence: state restored"));

    // The sensor comes back with CleanSession=0 and publishes with its old id.
    let mut watcher = Mqtt::connect(gate.mqtt, "watcher", false, true, 0).unwrap();
    watcher.subscribe("home/temp", 1).unwrap();
    let mut reg = reg;
    reg.gw = gate.udp;
    reg.connect("temp-sensor", false);
    assert_eq!(
        reg.publish_qos1(temp_id, 3, b"21.0"),
        0,
        "the registered id is still valid"
    );
    let got = watcher.drain(QUIET).unwrap();
    assert!(got.iter().any(|m| m.payload == b"21.0"), "{got:?}");

    // The MQTT session kept its subscription and its queued messages.
    let mut s = Mqtt::connect(gate.mqtt, "keeper", false, false, 0).unwrap();
    assert!(s.session_present);
    let got: Vec<_> = s
        .drain(QUIET)
        .unwrap()
        .into_iter()
        .map(|m| (m.topic, m.payload))
        .collect();
    assert_eq!(
        got,
        [
            ("home/temp".to_string(), b"20.5".to_vec()),
            ("home/door".to_string(), b"open".to_vec()),
            ("home/light".to_string(), b"on".to_vec()),
            ("home/temp".to_string(), b"21.0".to_vec()),
        ]
    );

    // The sleeping sensor gets what was waiting for it.
    let mut sleeper = sleeper;
    sleeper.gw = gate.udp;
    sleeper.connect("sleeper", false);
    let got: Vec<_> = sleeper.drain(QUIET);
    for (topic, payload) in [("home/door", "open"), ("home/light", "on")] {
        assert!(
            got.contains(&(topic.to_string(), payload.as_bytes().to_vec())),
            "{topic} missing: {got:?}"
        );
    }

    // The retained message is still there for a new subscriber.
    let mut late = Mqtt::connect(gate.mqtt, "late", false, true, 0).unwrap();
    late.subscribe("home/door", 1).unwrap();
    let got = late.drain(QUIET).unwrap();
    assert!(
        got.iter().any(|m| m.retain && m.payload == b"open"),
        "{got:?}"
    );
    gate.stop();
}

#[test]
fn interval_sync_loses_nothing_on_a_clean_stop() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &config(
            &dir.path().join("store"),
            "sync = \"interval\"\nsync_interval = 3600",
            "",
        ),
    );
    let gate = Gate::start(&cfg, &[]);
    let mut s = Mqtt::connect(gate.mqtt, "keeper", true, false, 3600).unwrap();
    s.subscribe("i/#", 2).unwrap();
    s.disconnect();
    let mut p = Mqtt::connect(gate.mqtt, "p", false, true, 0).unwrap();
    for n in 1..=20u16 {
        p.publish("i/t", n.to_string().as_bytes(), 1, n, n == 20, false)
            .unwrap();
        p.expect(4, Duration::from_secs(5)).unwrap();
    }
    p.disconnect();
    // No fsync has happened yet (the interval is an hour): the clean stop does it.
    gate.stop();

    let gate = Gate::start(&cfg, &[]);
    let mut s = Mqtt::connect(gate.mqtt, "keeper", true, false, 3600).unwrap();
    assert!(s.session_present);
    let got: Vec<String> = s
        .drain(QUIET)
        .unwrap()
        .into_iter()
        .map(|m| String::from_utf8(m.payload).unwrap())
        .collect();
    let want: Vec<String> = (1..=20).map(|n: u16| n.to_string()).collect();
    assert_eq!(got, want);
    gate.stop();
}
