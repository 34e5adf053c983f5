//! MQTT 3.1.1 broker behaviour, driven by Mosquitto's clients and paho-mqtt.

mod common;

use std::time::Duration;

use common::{Sub, mosquitto_pub, mosquitto_pub_stdin, paho, start, start_with_broker};

const WAIT: Duration = Duration::from_secs(5);
/// How long to keep listening when checking that something does NOT arrive.
const QUIET: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_publish_reaches_wildcard_subscriber() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "sensors/#", "-v"]).await;
    mosquitto_pub(addr, &["-t", "sensors/kitchen/temp", "-m", "21.5"]).await;
    assert_eq!(
        sub.line(WAIT).await.as_deref(),
        Some("sensors/kitchen/temp 21.5")
    );
    gw.stop().await;
}

/// Publishes one message at each QoS to a subscriber at `sub_qos` and returns
/// the `"%q %p"` lines it printed.
async fn deliveries_at(sub_qos: &str) -> Vec<String> {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "q/t", "-q", sub_qos, "-F", "%q %p"]).await;
    for qos in ["0", "1", "2"] {
        mosquitto_pub(addr, &["-t", "q/t", "-q", qos, "-m", &format!("sent{qos}")]).await;
    }
    let lines = sub.lines(3, WAIT).await;
    gw.stop().await;
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos0_subscription_receives_every_publish_at_qos0() {
    assert_eq!(deliveries_at("0").await, ["0 sent0", "0 sent1", "0 sent2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_subscription_downgrades_qos2_publish_to_qos1() {
    assert_eq!(deliveries_at("1").await, ["0 sent0", "1 sent1", "1 sent2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_subscription_receives_each_publish_at_its_own_qos() {
    assert_eq!(deliveries_at("2").await, ["0 sent0", "1 sent1", "2 sent2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_reaches_new_subscriber_with_retain_flag() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    mosquitto_pub(addr, &["-t", "r/t", "-r", "-q", "1", "-m", "kept"]).await;
    let mut sub = Sub::start(addr, &["-t", "r/#", "-F", "%r %t %p"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("1 r/t kept"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_retained_publish_replaces_the_retained_message() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    mosquitto_pub(addr, &["-t", "r/t", "-r", "-m", "old"]).await;
    mosquitto_pub(addr, &["-t", "r/t", "-r", "-m", "new"]).await;
    let mut sub = Sub::start(addr, &["-t", "r/t", "-F", "%r %p"]).await;
    mosquitto_pub(addr, &["-t", "r/t", "-m", "live"]).await;
    assert_eq!(sub.lines(2, WAIT).await, ["1 new", "0 live"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_retained_publish_clears_the_retained_message() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    mosquitto_pub(addr, &["-t", "r/t", "-r", "-m", "kept"]).await;
    mosquitto_pub(addr, &["-t", "r/t", "-r", "-n"]).await;
    let mut sub = Sub::start(addr, &["-t", "r/t", "-F", "%r %p"]).await;
    // Had the retained message survived, it would arrive before this one.
    mosquitto_pub(addr, &["-t", "r/t", "-m", "live"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("0 live"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_is_delivered_at_the_lower_of_its_qos_and_the_subscription_qos() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    mosquitto_pub(addr, &["-t", "r/q1", "-r", "-q", "1", "-m", "one"]).await;
    mosquitto_pub(addr, &["-t", "r/q2", "-r", "-q", "2", "-m", "two"]).await;
    let mut sub = Sub::start(
        addr,
        &["-t", "r/q1", "-t", "r/q2", "-q", "1", "-F", "%q %t"],
    )
    .await;
    let mut lines = sub.lines(2, WAIT).await;
    lines.sort();
    assert_eq!(lines, ["1 r/q1", "1 r/q2"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_will_is_kept_for_later_subscribers() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut watcher = Sub::start(addr, &["-t", "wills/#", "-v"]).await;
    let dying = Sub::start(
        addr,
        &[
            "-t",
            "x",
            "--will-topic",
            "wills/kept",
            "--will-payload",
            "gone",
            "--will-retain",
        ],
    )
    .await;
    dying.kill().await;
    assert_eq!(watcher.line(WAIT).await.as_deref(), Some("wills/kept gone"));
    let mut later = Sub::start(addr, &["-t", "wills/kept", "-F", "%r %p"]).await;
    assert_eq!(later.line(WAIT).await.as_deref(), Some("1 gone"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_publish_is_forwarded_live_with_retain_flag_clear() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "r/t", "-F", "%r %p"]).await;
    mosquitto_pub(addr, &["-t", "r/t", "-r", "-m", "now"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("0 now"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_wildcard_matches_exactly_one_level() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "a/+/c", "-t", "end", "-v"]).await;
    for topic in ["a/b/c", "a/c", "a/b/x/c", "a//c", "a/b/c/d", "end"] {
        mosquitto_pub(addr, &["-t", topic, "-m", "m"]).await;
    }
    assert_eq!(sub.lines(3, WAIT).await, ["a/b/c m", "a//c m", "end m"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_wildcard_matches_the_parent_and_every_descendant() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "a/#", "-t", "end", "-v"]).await;
    for topic in ["a", "a/b", "a/b/c", "b/a", "ab", "end"] {
        mosquitto_pub(addr, &["-t", topic, "-m", "m"]).await;
    }
    assert_eq!(
        sub.lines(4, WAIT).await,
        ["a m", "a/b m", "a/b/c m", "end m"]
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_subscription_does_not_receive_sys_topics() {
    // [MQTT-4.7.2-1]: a filter starting with a wildcard does not match `$` topics.
    let gw = start_with_broker("sys_interval = 1").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "#", "-v"]).await;
    mosquitto_pub(addr, &["-t", "plain", "-m", "m"]).await;
    // The retained $SYS messages would come first; then wait past one more
    // $SYS period for the periodic ones.
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("plain m"));
    assert_eq!(sub.line(Duration::from_millis(1300)).await, None);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plus_subscription_does_not_receive_sys_topics() {
    // [MQTT-4.7.2-1]
    let gw = start_with_broker("sys_interval = 1").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "+/broker/uptime", "-v"]).await;
    mosquitto_pub(addr, &["-t", "x/broker/uptime", "-m", "m"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("x/broker/uptime m"));
    assert_eq!(sub.line(Duration::from_millis(1300)).await, None);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_subscription_receives_every_broker_statistic() {
    let gw = start_with_broker("sys_interval = 1").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "$SYS/#", "-F", "%t"]).await;
    let expected = [
        "$SYS/broker/version",
        "$SYS/broker/uptime",
        "$SYS/broker/clients/connected",
        "$SYS/broker/clients/disconnected",
        "$SYS/broker/clients/total",
        "$SYS/broker/messages/received",
        "$SYS/broker/messages/sent",
        "$SYS/broker/bytes/received",
        "$SYS/broker/bytes/sent",
        "$SYS/broker/subscriptions/count",
        "$SYS/broker/retained messages/count",
    ];
    let mut seen = std::collections::HashSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !expected.iter().all(|t| seen.contains(*t)) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match sub.line(left).await {
            Some(topic) => seen.insert(topic),
            None => break,
        };
    }
    let missing: Vec<_> = expected.iter().filter(|t| !seen.contains(**t)).collect();
    assert!(missing.is_empty(), "missing $SYS topics: {missing:?}");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_uptime_is_republished_every_sys_interval() {
    let gw = start_with_broker("sys_interval = 1").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "$SYS/broker/uptime", "-F", "%r %p"]).await;
    let retained = sub.line(WAIT).await.expect("retained uptime");
    assert!(
        retained.starts_with("1 ") && retained.ends_with(" seconds"),
        "{retained}"
    );
    let live = sub
        .line(Duration::from_millis(2500))
        .await
        .expect("periodic uptime");
    assert!(
        live.starts_with("0 ") && live.ends_with(" seconds"),
        "{live}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sys_clients_connected_counts_connected_clients() {
    let gw = start_with_broker("sys_interval = 1").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let _other = Sub::start(addr, &["-t", "x"]).await;
    let mut sub = Sub::start(addr, &["-t", "$SYS/broker/clients/connected", "-F", "%p"]).await;
    // The retained value may predate our own connection; a fresh one follows
    // within one period.
    let mut values = sub.lines(2, Duration::from_millis(2500)).await;
    assert_eq!(
        values.pop().as_deref(),
        Some("2"),
        "two clients are connected"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_published_when_client_is_killed() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut watcher = Sub::start(addr, &["-t", "wills/#", "-v"]).await;
    let dying = Sub::start(
        addr,
        &[
            "-t",
            "x",
            "--will-topic",
            "wills/dying",
            "--will-payload",
            "gone",
        ],
    )
    .await;
    dying.kill().await;
    assert_eq!(
        watcher.line(WAIT).await.as_deref(),
        Some("wills/dying gone")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_not_published_after_disconnect() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut watcher = Sub::start(addr, &["-t", "wills/#", "-v"]).await;
    // `-C 1` makes mosquitto_sub send DISCONNECT after one message.
    let leaving = Sub::start(
        addr,
        &[
            "-t",
            "go",
            "-C",
            "1",
            "-W",
            "5",
            "--will-topic",
            "wills/leaving",
            "--will-payload",
            "gone",
        ],
    )
    .await;
    mosquitto_pub(addr, &["-t", "go", "-m", "bye"]).await;
    assert!(leaving.wait_exit(WAIT).await.is_some_and(|s| s.success()));
    mosquitto_pub(addr, &["-t", "wills/marker", "-m", "m"]).await;
    assert_eq!(watcher.line(WAIT).await.as_deref(), Some("wills/marker m"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_gets_offline_qos1_messages_in_order_on_reconnect() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let session = ["-c", "-i", "persistent-1", "-q", "1", "-t", "p/t"];
    // `-E`: subscribe, wait for SUBACK, DISCONNECT.
    let first = Sub::start(addr, &[&session[..], &["-E"]].concat()).await;
    assert!(first.wait_exit(WAIT).await.is_some_and(|s| s.success()));
    mosquitto_pub_stdin(addr, &["-t", "p/t", "-q", "1", "-l"], b"1\n2\n3\n4\n5\n").await;
    let mut again = Sub::start(addr, &[&session[..], &["-C", "5", "-W", "5"]].concat()).await;
    assert_eq!(again.lines(5, WAIT).await, ["1", "2", "3", "4", "5"]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_does_not_queue_qos0_messages_while_offline() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let session = ["-c", "-i", "persistent-2", "-q", "1", "-t", "p/t"];
    let first = Sub::start(addr, &[&session[..], &["-E"]].concat()).await;
    assert!(first.wait_exit(WAIT).await.is_some_and(|s| s.success()));
    mosquitto_pub(addr, &["-t", "p/t", "-q", "0", "-m", "qos0"]).await;
    mosquitto_pub(addr, &["-t", "p/t", "-q", "1", "-m", "qos1"]).await;
    let mut again = Sub::start(addr, &session).await;
    assert_eq!(again.line(WAIT).await.as_deref(), Some("qos1"));
    assert_eq!(again.line(QUIET).await, None);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_without_clean_session_reports_session_present() {
    // [MQTT-3.2.2-2], [MQTT-3.2.2-1]
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
for clean in (False, False, True):
    c = Client("present-1", clean=clean)
    print(c.session_present)
    c.c.disconnect()
    wait_for(c.disconnected.is_set, "disconnect")
    c.c.loop_stop()
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "False\nTrue\nFalse\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_session_discards_subscriptions_on_disconnect() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let first = Sub::start(addr, &["-i", "clean-1", "-q", "1", "-t", "c/t", "-E"]).await;
    assert!(first.wait_exit(WAIT).await.is_some_and(|s| s.success()));
    mosquitto_pub(addr, &["-t", "c/t", "-q", "1", "-m", "while-away"]).await;
    let mut again = Sub::start(addr, &["-i", "clean-1", "-q", "1", "-t", "c/t"]).await;
    mosquitto_pub(addr, &["-t", "c/t", "-q", "1", "-m", "live"]).await;
    assert_eq!(again.line(WAIT).await.as_deref(), Some("live"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_connection_with_same_client_id_takes_over_the_first() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
first = Client("takeover-1")
second = Client("takeover-1")
first.disconnected.wait(5)
print("first disconnected:", first.disconnected.is_set())
second.subscribe("t/x", 1)
second.publish("t/x", b"still here", 1)
second.wait_topic("t/x")
print("second works")
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "first disconnected: True\nsecond works\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_over_connection_publishes_its_will() {
    // The old connection ends without DISCONNECT from its client (MQTT 5 §3.1.4, as Mosquitto does for 3.1.1).
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
watcher = Client("tw-watch")
watcher.subscribe("tw/#", 0)
first = Client("tw-1", will=("tw/will", b"first gone"))
second = Client("tw-1")
watcher.wait_topic("tw/will")
print(watcher.messages[0].payload.decode())
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "first gone\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinging_client_outlives_its_keepalive() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
watcher = Client("ping-watch")
watcher.subscribe("ping/#", 0)
pinging = Client("ping-1", keepalive=1, will=("ping/will", b"expired"), loop=False)
# Driving the network loop every 0.1 s makes paho send PINGREQ on time.
t0 = time.monotonic()
while time.monotonic() - t0 < 3:
    pinging.c.loop(0.1)
pinging.c.publish("ping/alive", b"yes", 0)
pinging.c.loop(0.1)
watcher.wait_topic("ping/alive")
print(" ".join(m.topic for m in watcher.messages))
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "ping/alive\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_disconnected_after_one_and_a_half_keepalives() {
    // [MQTT-3.1.2-24]
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(KEEPALIVE_SCRIPT, addr, &["1"]).await;
    let secs: f64 = out.trim().parse().expect("seconds");
    assert!(
        (1.3..2.5).contains(&secs),
        "will after {secs} s, expected ~1.5 s"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_keepalive_holds_a_client_to_the_maximum() {
    let gw = start_with_broker("sys_interval = 0\nmax_keepalive = 1").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    // The client asks for 60 s; held to 1 s it expires after 1.5 s.
    let out = paho::run(KEEPALIVE_SCRIPT, addr, &["60"]).await;
    let secs: f64 = out.trim().parse().expect("seconds");
    assert!(
        (1.3..2.5).contains(&secs),
        "will after {secs} s, expected ~1.5 s"
    );
    gw.stop().await;
}

/// Connects a client with keep-alive `ARGS[0]` and a will, then stops its
/// network loop without closing the socket; prints the seconds from CONNACK
/// until a second client, which keeps itself alive by publishing, receives the will.
const KEEPALIVE_SCRIPT: &str = r#"
watcher = Client("ka-watcher")
watcher.subscribe("ka/will", 0)
silent = Client("ka-silent", keepalive=int(ARGS[0]), will=("ka/will", b"expired"), loop=False)
wait_for(lambda: silent.c.loop(0.01) is not None and silent.connack is not None, "CONNACK")
t0 = time.monotonic()
# The watcher keeps talking so that a low max_keepalive does not expire it too.
while not any(m.topic == "ka/will" for m in watcher.messages):
    if time.monotonic() - t0 > 5:
        raise SystemExit("no will within 5 s")
    watcher.c.publish("ka/tick", b"", 0)
    time.sleep(0.02)
print(round(time.monotonic() - t0, 3))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_deliver_one_copy_at_the_highest_qos() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
c = Client("overlap-1")
c.subscribe("a/+", 0)
c.subscribe("a/#", 2)
c.publish("a/b", b"one", 2)
c.publish("a/end", b"end", 2)
c.wait_topic("a/end")
for m in c.messages:
    print(m.topic, m.qos)
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "a/b 2\na/end 2\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_replaces_the_subscription_qos() {
    // [MQTT-3.8.4-3]
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
c = Client("resub-1")
c.subscribe("s/t", 0)
c.subscribe("s/t", 2)
c.publish("s/t", b"x", 2)
c.publish("s/t", b"end", 2)
wait_for(lambda: any(m.payload == b"end" for m in c.messages), "end")
for m in c.messages:
    print(m.payload.decode(), m.qos)
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "x 2\nend 2\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
c = Client("unsub-1")
c.subscribe("u/t", 1)
c.subscribe("u/end", 1)
c.publish("u/t", b"before", 1)
c.wait_topic("u/t")
c.unsubscribe("u/t")
c.publish("u/t", b"after", 1)
c.publish("u/end", b"end", 1)
c.wait_topic("u/end")
for m in c.messages:
    print(m.topic, m.payload.decode())
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "u/t before\nu/end end\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_messages_on_one_topic_arrive_in_publish_order() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "order/t", "-q", "1", "-C", "100", "-W", "10"]).await;
    let numbers: Vec<String> = (0..100).map(|n| n.to_string()).collect();
    let input = numbers.join("\n") + "\n";
    mosquitto_pub_stdin(addr, &["-t", "order/t", "-q", "1", "-l"], input.as_bytes()).await;
    assert_eq!(sub.lines(100, Duration::from_secs(10)).await, numbers);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_arrives_on_topics_nobody_subscribed() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "mine", "-v"]).await;
    mosquitto_pub(addr, &["-t", "theirs", "-m", "x"]).await;
    assert_eq!(sub.line(QUIET).await, None);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_messages_arrive_exactly_once_in_publish_order() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let mut sub = Sub::start(addr, &["-t", "order/q2", "-q", "2"]).await;
    let numbers: Vec<String> = (0..50).map(|n| n.to_string()).collect();
    let input = numbers.join("\n") + "\n";
    mosquitto_pub_stdin(addr, &["-t", "order/q2", "-q", "2", "-l"], input.as_bytes()).await;
    assert_eq!(sub.lines(50, Duration::from_secs(10)).await, numbers);
    assert_eq!(sub.line(QUIET).await, None, "no duplicates");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_payload_is_delivered_intact() {
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
import hashlib
c = Client("large-1")
c.subscribe("big/t", 1)
payload = bytes(i % 251 for i in range(300000))
c.publish("big/t", payload, 1)
c.wait_topic("big/t")
m = c.messages[0]
print(len(m.payload), m.payload == payload)
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "300000 True\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_qos1_message_is_redelivered_with_dup_on_reconnect() {
    // [MQTT-4.4.0-1]
    let gw = start().await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
pub = Client("redeliver-pub")
c = Client("redeliver-1", clean=False, manual_ack=True)
c.subscribe("rd/t", 1)
pub.publish("rd/t", b"m1", 1)
c.wait_topic("rd/t")
print(c.messages[0].payload.decode(), c.messages[0].dup)
c.drop()
again = Client("redeliver-1", clean=False)
again.wait_topic("rd/t")
print(again.messages[0].payload.decode(), again.messages[0].dup)
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "m1 False\nm1 True\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_deliveries_are_limited_to_max_inflight_messages() {
    let gw = start_with_broker("sys_interval = 0\nmax_inflight_messages = 5").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let out = paho::run(
        r#"
pub = Client("window-pub")
c = Client("window-sub", manual_ack=True)
c.subscribe("w/t", 1)
for i in range(8):
    pub.publish("w/t", str(i).encode(), 1)
wait_for(lambda: len(c.messages) >= 5, "5 messages")
time.sleep(0.3)
print(len(c.messages))
for m in list(c.messages):
    c.c.ack(m.mid, 1)
wait_for(lambda: len(c.messages) >= 8, "8 messages")
print(" ".join(m.payload.decode() for m in c.messages))
"#,
        addr,
        &[],
    )
    .await;
    assert_eq!(out, "5\n0 1 2 3 4 5 6 7\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_offline_messages_than_the_inflight_window_arrive_in_order() {
    let gw = start_with_broker("sys_interval = 0\nmax_inflight_messages = 5").await;
    let addr = gw.mqtt_addr().expect("mqtt listener");
    let session = ["-c", "-i", "persistent-3", "-q", "1", "-t", "p/t"];
    let first = Sub::start(addr, &[&session[..], &["-E"]].concat()).await;
    assert!(first.wait_exit(WAIT).await.is_some_and(|s| s.success()));
    let numbers: Vec<String> = (0..30).map(|n| n.to_string()).collect();
    let input = numbers.join("\n") + "\n";
    mosquitto_pub_stdin(addr, &["-t", "p/t", "-q", "1", "-l"], input.as_bytes()).await;
    let mut again = Sub::start(addr, &session).await;
    assert_eq!(again.lines(30, WAIT).await, numbers);
    gw.stop().await;
}
