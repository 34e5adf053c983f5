//! A damaged store stops sngate with a message naming the file and the way
//! out; `--reset-store` starts afresh. A full store refuses new QoS 1/2
//! publishes (v5 reason 0x97) while QoS 0 flows, loses nothing acknowledged,
//! and recovers by itself once deliveries drain it.

mod persistence_support;

use std::time::{Duration, Instant};

use persistence_support::{Gate, Mqtt, config, run_to_exit, write_config};

const QUIET: Duration = Duration::from_millis(800);

#[test]
fn damaged_store_refuses_to_start_until_reset_store_moves_it_aside() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let cfg = write_config(dir.path(), &config(&store, "", ""));
    let gate = Gate::start(&cfg, &[]);
    let mut p = Mqtt::connect(gate.mqtt, "p", false, true, 0).unwrap();
    for i in 0..50u16 {
        p.publish(&format!("r/{i}"), &[b'x'; 200], 1, i + 1, true, false)
            .unwrap();
        p.expect(4, Duration::from_secs(5)).unwrap();
    }
    p.disconnect();
    gate.stop();

    let file = store.join(sngate::store::STORE_FILE);
    let len = std::fs::metadata(&file).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 3)
        .unwrap();

    let (status, stderr) = run_to_exit(&cfg, &[], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains(&file.display().to_string()), "{stderr}");
    assert!(stderr.contains("--reset-store"), "{stderr}");

    let gate = Gate::start(&cfg, &["--reset-store"]);
    let moved = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("sngate.redb.damaged-")
        });
    assert!(moved, "the damaged file is kept aside");
    let mut late = Mqtt::connect(gate.mqtt, "late", false, true, 0).unwrap();
    late.subscribe("r/#", 1).unwrap();
    assert!(late.drain(QUIET).unwrap().is_empty(), "a fresh store");
    gate.stop();
}

#[test]
fn second_instance_on_the_same_store_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), &config(&dir.path().join("store"), "", ""));
    let gate = Gate::start(&cfg, &[]);
    let (status, stderr) = run_to_exit(&cfg, &[], Duration::from_secs(20));
    assert!(!status.success());
    assert!(stderr.contains("in use by another process"), "{stderr}");
    gate.stop();
}

#[test]
fn full_store_refuses_qos1_with_0x97_keeps_qos0_flowing_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &config(&dir.path().join("store"), "max_size = 40000", ""),
    );
    let gate = Gate::start(&cfg, &[]);
    let mut keeper = Mqtt::connect(gate.mqtt, "keeper", true, false, 3600).unwrap();
    keeper.subscribe("full/#", 1).unwrap();
    keeper.disconnect();
    let mut live = Mqtt::connect(gate.mqtt, "live", true, true, 0).unwrap();
    live.subscribe("full/#", 0).unwrap();

    let mut p = Mqtt::connect(gate.mqtt, "p", true, true, 0).unwrap();
    let mut acked = Vec::new();
    let mut refused = false;
    for n in 1..=200u16 {
        let mut payload = n.to_string().into_bytes();
        payload.resize(1000, b' ');
        p.publish("full/q1", &payload, 1, n, false, false).unwrap();
        let ack = p.expect(4, Duration::from_secs(5)).unwrap();
        match Mqtt::reason(&ack) {
            0 | 0x10 => acked.push(n),
            0x97 => {
                refused = true;
                break;
            }
            other => panic!("unexpected PUBACK reason {other:#x}"),
        }
    }
    assert!(refused, "the store never filled up");
    assert!(!acked.is_empty());
    assert!(gate.logged("store full"), "logged loudly");
    // Still refused, while QoS 0 flows.
    p.publish("full/q1", b"refused", 1, 999, false, false)
        .unwrap();
    assert_eq!(
        Mqtt::reason(&p.expect(4, Duration::from_secs(5)).unwrap()),
        0x97
    );
    live.drain(Duration::from_millis(300)).unwrap();
    p.publish("full/q0", b"zero", 0, 0, false, false).unwrap();
    let got = live.drain(QUIET).unwrap();
    assert!(
        got.iter().any(|m| m.payload == b"zero"),
        "QoS 0 delivered: {got:?}"
    );

    // Nothing acknowledged is lost.
    let mut keeper = Mqtt::connect(gate.mqtt, "keeper", true, false, 3600).unwrap();
    let got = keeper.drain(QUIET).unwrap();
    let numbers: Vec<u16> = got
        .iter()
        .filter(|m| m.topic == "full/q1")
        .filter_map(|m| String::from_utf8_lossy(&m.payload).trim().parse().ok())
        .collect();
    for n in &acked {
        assert!(numbers.contains(n), "acknowledged {n} lost: {numbers:?}");
    }

    // Drained, the store takes writes again by itself.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        p.publish("full/q1", b"again", 1, 1000, false, false)
            .unwrap();
        if Mqtt::reason(&p.expect(4, Duration::from_secs(5)).unwrap()) < 0x80 {
            break;
        }
        assert!(Instant::now() < deadline, "the store did not recover");
        std::thread::sleep(Duration::from_millis(300));
    }
    gate.stop();
}
