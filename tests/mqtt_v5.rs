//! MQTT 5.0 broker behaviour, driven by Mosquitto's clients (`-V 5`), Python
//! paho-mqtt (`MQTTv5`) and, for input no library sends, raw bytes.

mod common;
#[path = "v5/raw.rs"]
mod raw;

use std::time::{Duration, Instant};

use common::{Sub, mosquitto_pub, port, python};
use raw::Raw;
use sngate::app::Sngate;

const WAIT: Duration = Duration::from_secs(5);
/// Long enough to be sure a message that should not come does not.
const QUIET: Duration = Duration::from_millis(800);

/// Starts sngate with extra `[broker]` keys.
async fn start(broker_keys: &str) -> Sngate {
    common::start_config(&format!(
        r#"
[log]
level = "debug"

[broker]
sys_interval = 0
{broker_keys}

[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:0"

[gateway]
advertise_interval = 0

[[gateway.udp]]
bind = "127.0.0.1:0"
"#
    ))
    .await
}

/// Helpers for the paho scripts: `C(id, ...)` connects synchronously and
/// queues received messages; `argv[1]` is the broker port.
const PAHO: &str = r#"
import sys, time, queue
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions
PORT = int(sys.argv[1])

def props(kind, **kw):
    p = Properties(kind)
    for k, v in kw.items():
        setattr(p, k, v)
    return p

class C:
    def __init__(self, cid, clean_start=True, properties=None, keepalive=60, manual_ack=False, will=None):
        self.msgs, connack, self.subacks = queue.Queue(), queue.Queue(), queue.Queue()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid,
                             protocol=mqtt.MQTTv5, manual_ack=manual_ack)
        self.c.on_connect = lambda c, u, f, rc, p: connack.put((f.session_present, rc.value, p))
        self.c.on_message = lambda c, u, m: self.msgs.put(m)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.subacks.put([r.value for r in rcs])
        if will:
            self.c.will_set(**will)
        self.c.connect("127.0.0.1", PORT, keepalive, clean_start=clean_start, properties=properties)
        self.c.loop_start()
        self.session_present, self.rc, self.props = connack.get(timeout=5)

    def sub(self, topic, qos=0, options=None, properties=None):
        if options is not None:
            self.c.subscribe(topic, options=options, properties=properties)
        else:
            self.c.subscribe(topic, qos, properties=properties)
        return self.subacks.get(timeout=5)

    def pub(self, topic, payload, qos=0, retain=False, properties=None):
        self.c.publish(topic, payload, qos, retain, properties).wait_for_publish(5)

    def get(self, timeout=3):
        try:
            return self.msgs.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self, properties=None):
        self.c.disconnect(properties=properties)
        time.sleep(0.2)
        self.c.loop_stop()

    def kill(self):
        # Gone without DISCONNECT, like a crashed device.
        self.c.loop_stop()
        self.c.socket().close()
"#;

async fn paho(port: &str, script: &str) -> String {
    python(&format!("{PAHO}\n{script}"), &[port]).await
}

// ---------------------------------------------------------------- sessions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_keeps_the_session_and_clean_start_discards_it() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
keep = props(PacketTypes.CONNECT, SessionExpiryInterval=60)
a = C("se-a", clean_start=True, properties=keep)
a.sub("se/t", 1)
a.close()
pub = C("se-pub")
pub.pub("se/t", "queued", 1)
a = C("se-a", clean_start=False, properties=keep)
m = a.get()
print("resumed", a.session_present, m.payload.decode() if m else None)
a.close()
a = C("se-a", clean_start=True, properties=keep)
print("clean", a.session_present)
a.close()
"#,
    )
    .await;
    assert_eq!(out, "resumed True queued\nclean False\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_changed_at_disconnect_ends_the_session_sooner() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
a = C("sx-a", properties=props(PacketTypes.CONNECT, SessionExpiryInterval=3600))
a.close(properties=props(PacketTypes.DISCONNECT, SessionExpiryInterval=1))
time.sleep(2.5)
a = C("sx-a", clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
print("after expiry", a.session_present)
a.close()
"#,
    )
    .await;
    assert_eq!(out, "after expiry False\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_expiry_0xffffffff_outlives_a_short_expiry() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
for cid, expiry in (("forever", 0xFFFFFFFF), ("brief", 1)):
    C(cid, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=expiry)).close()
time.sleep(2.5)
for cid in ("forever", "brief"):
    c = C(cid, clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
    print(cid, c.session_present)
    c.close()
"#,
    )
    .await;
    assert_eq!(out, "forever True\nbrief False\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_client_id_gets_an_assigned_client_identifier() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
c = C("")
print(c.rc, c.props.AssignedClientIdentifier.startswith("auto-"))
c.close()
"#,
    )
    .await;
    assert_eq!(out, "0 True\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_above_max_keepalive_is_answered_with_server_keep_alive() {
    let gw = start("max_keepalive = 10").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
c = C("ka", keepalive=100)
print(c.props.ServerKeepAlive)
c.close()
c = C("ka2", keepalive=5)
print(hasattr(c.props, "ServerKeepAlive"))
c.close()
"#,
    )
    .await;
    assert_eq!(out, "10\nFalse\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connack_tells_the_server_limits_from_the_config() {
    let gw = start("max_inflight_messages = 7\nmax_packet_size = 4096\nmax_topic_alias = 3").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
c = C("limits")
p = c.props
print(p.ReceiveMaximum, p.MaximumPacketSize, p.TopicAliasMaximum, p.RetainAvailable,
      p.WildcardSubscriptionAvailable, p.SubscriptionIdentifierAvailable,
      p.SharedSubscriptionAvailable, hasattr(p, "MaximumQoS"))
c.close()
"#,
    )
    .await;
    // Maximum QoS is absent: QoS 2 is supported (MQTT 5 §3.2.2.3.4).
    assert_eq!(out, "7 4096 3 1 1 1 1 False\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_with_authentication_method_is_refused_with_0x8c() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut props = vec![0x15];
    props.extend_from_slice(&raw::string("SCRAM-SHA-1"));
    let mut c = Raw::open(addr, &raw::connect("auth", 60, &props)).await;
    let (_, body) = c.next_of(raw::CONNACK).await.expect("CONNACK");
    assert_eq!(body.get(1), Some(&0x8C));
    assert!(c.closed().await);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_taken_over_gets_disconnect_0x8e() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut old = Raw::connected(addr, "twin", &[]).await;
    let _new = Raw::connected(addr, "twin", &[]).await;
    assert_eq!(old.disconnect_reason().await, Some(0x8E));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_gets_disconnect_0x8d_after_one_and_a_half_keep_alives() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut c = Raw::open(addr, &raw::connect("sleepy", 1, &[])).await;
    c.next_of(raw::CONNACK).await.expect("CONNACK");
    let started = Instant::now();
    assert_eq!(c.disconnect_reason().await, Some(0x8D));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1400), "{waited:?}");
    gw.stop().await;
}

// ---------------------------------------------------------------- flow control

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_honours_the_clients_receive_maximum() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
s = C("rm-s", properties=props(PacketTypes.CONNECT, ReceiveMaximum=2), manual_ack=True)
s.sub("rm/t", 1)
pub = C("rm-p")
for n in range(4):
    pub.pub("rm/t", str(n), 1)
got = [s.get(), s.get(), s.get(1)]
print("before ack", [m.payload.decode() for m in got if m])
s.c.ack(got[0].mid, got[0].qos)
m = s.get()
print("after ack", m.payload.decode() if m else None)
"#,
    )
    .await;
    assert_eq!(out, "before ack ['0', '1']\nafter ack 2\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_exceeding_the_brokers_receive_maximum_gets_disconnect_0x93() {
    let gw = start("max_inflight_messages = 2").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut sub = Sub::start(addr, &["-V", "5", "-t", "rmx/t"]).await;
    let mut c = Raw::connected(addr, "greedy", &[]).await;
    // QoS 2 publishes stay unacknowledged until PUBREL, which never comes.
    for id in 1..=3 {
        c.send(&raw::publish("rmx/q", 2, id, &[], b"x")).await;
    }
    assert_eq!(c.disconnect_reason().await, Some(0x93));
    mosquitto_pub(addr, &["-V", "5", "-t", "rmx/t", "-m", "still here"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("still here"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos1_burst_past_the_receive_maximum_is_slowed_not_disconnected() {
    // MQTT.js (Node-RED's client) ignores the server's Receive Maximum and
    // writes a whole burst at once. QoS 1 needs nothing more from the client,
    // so the broker reads on as its PUBACKs free the window.
    let gw = start("max_inflight_messages = 2").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut sub = Sub::start(addr, &["-V", "5", "-q", "1", "-t", "burst/t", "-C", "200"]).await;
    let mut c = Raw::connected(addr, "burst", &[]).await;
    let mut burst = Vec::new();
    for id in 1..=200u16 {
        burst.extend(raw::publish(
            "burst/t",
            1,
            id,
            &[],
            id.to_string().as_bytes(),
        ));
    }
    c.send(&burst).await;
    for id in 1..=200u16 {
        let (kind, body) = c.read().await.expect("a PUBACK for every publish");
        assert_eq!(kind, 0x40, "PUBACK, not a DISCONNECT");
        assert_eq!(body[..2], id.to_be_bytes(), "PUBACKs in order");
    }
    let got = sub.lines(200, WAIT).await;
    let expected: Vec<String> = (1..=200).map(|i: u16| i.to_string()).collect();
    assert_eq!(got, expected, "every message delivered, in order");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_acknowledging_after_disconnect_0x93_is_not_reset() {
    // As in the Paho MQTT 5 interoperability suite (test_flow_control2): the
    // client answers PUBRECs it reads after the broker has closed. The broker
    // half-closes and keeps reading for a moment, so those writes are not
    // refused by a reset and the client still reads the DISCONNECT.
    let gw = start("max_inflight_messages = 2").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut c = Raw::connected(addr, "late-acks", &[]).await;
    for id in 1..=3 {
        c.send(&raw::publish("rmx/q", 2, id, &[], b"x")).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in 1..=2u8 {
        assert!(
            c.try_send(&raw::packet(0x62, &[0, id])).await,
            "PUBREL {id} refused: the broker reset the connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(c.disconnect_reason().await, Some(0x93));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_over_the_clients_maximum_packet_size_is_not_sent_to_it() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut small = Sub::start(
        addr,
        &[
            "-V",
            "5",
            "-t",
            "mps/t",
            "-D",
            "connect",
            "maximum-packet-size",
            "100",
        ],
    )
    .await;
    let mut big = Sub::start(addr, &["-V", "5", "-t", "mps/t"]).await;
    let large = "L".repeat(300);
    mosquitto_pub(addr, &["-V", "5", "-t", "mps/t", "-m", &large]).await;
    mosquitto_pub(addr, &["-V", "5", "-t", "mps/t", "-m", "small"]).await;
    assert_eq!(small.line(WAIT).await.as_deref(), Some("small"));
    assert_eq!(big.lines(2, WAIT).await, vec![large, "small".to_string()]);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packet_over_the_brokers_maximum_packet_size_gets_disconnect_0x95() {
    let gw = start("max_packet_size = 1000").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut sub = Sub::start(addr, &["-V", "5", "-t", "mpx/t"]).await;
    let mut c = Raw::connected(addr, "bulky", &[]).await;
    c.send(&raw::publish("mpx/t", 0, 0, &[], &[b'x'; 2000]))
        .await;
    assert_eq!(c.disconnect_reason().await, Some(0x95));
    mosquitto_pub(addr, &["-V", "5", "-t", "mpx/t", "-m", "fits"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("fits"));
    gw.stop().await;
}

// ---------------------------------------------------------------- topic aliases

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_topic_alias_is_resolved() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut sub = Sub::start(addr, &["-V", "5", "-t", "alias/in", "-v"]).await;
    let mut c = Raw::connected(addr, "aliaser", &[]).await;
    c.send(&raw::publish("alias/in", 0, 0, &[0x23, 0, 1], b"one"))
        .await;
    c.send(&raw::publish("", 0, 0, &[0x23, 0, 1], b"two")).await;
    assert_eq!(
        sub.lines(2, WAIT).await,
        vec!["alias/in one".to_string(), "alias/in two".to_string()]
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_uses_outbound_topic_aliases_when_the_client_allows_them() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    // A client that allows no aliases gets topic names. (mosquitto_sub
    // 2.0.11 cannot be the aliased client: its library refuses a PUBLISH
    // with an empty topic name even when it carries a known alias.)
    let mut plain = Sub::start(addr, &["-V", "5", "-t", "alias/out", "-F", "%A|%t %p"]).await;
    // A raw subscriber that allows 5 aliases sees the wire.
    let mut c = Raw::connected(addr, "wire", &[0x22, 0, 5]).await;
    c.send(&raw::subscribe(1, "alias/out", 0)).await;
    c.next_of(raw::SUBACK).await.expect("SUBACK");
    for m in ["m1", "m2"] {
        mosquitto_pub(addr, &["-V", "5", "-t", "alias/out", "-m", m]).await;
    }
    assert_eq!(
        plain.lines(2, WAIT).await,
        vec!["|alias/out m1".to_string(), "|alias/out m2".to_string()]
    );
    let (first, body) = c.next_of(raw::PUBLISH).await.expect("first PUBLISH");
    let (topic, props, _) = raw::publish_parts(first, &body);
    assert_eq!(
        (topic.as_str(), props.as_slice()),
        ("alias/out", &[0x23, 0, 1][..])
    );
    let (first, body) = c.next_of(raw::PUBLISH).await.expect("second PUBLISH");
    let (topic, props, payload) = raw::publish_parts(first, &body);
    assert_eq!((topic.as_str(), props.as_slice()), ("", &[0x23, 0, 1][..]));
    assert_eq!(payload, b"m2");
    gw.stop().await;
}

// ---------------------------------------------------------------- message properties

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_expiry_is_counted_down_while_queued_and_expired_messages_dropped() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let persistent = [
        "-V", "5", "-c", "-i", "mexp", "-x", "60", "-q", "1", "-t", "mexp/t",
    ];
    let sub = Sub::start(addr, &persistent).await;
    sub.kill().await;
    for (payload, expiry) in [("short", "1"), ("long", "30")] {
        mosquitto_pub(
            addr,
            &[
                "-V",
                "5",
                "-q",
                "1",
                "-t",
                "mexp/t",
                "-m",
                payload,
                "-D",
                "publish",
                "message-expiry-interval",
                expiry,
            ],
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let mut args = persistent.to_vec();
    args.extend(["-F", "%p %E"]);
    let mut sub = Sub::start(addr, &args).await;
    let line = sub.line(WAIT).await.expect("the long-lived message");
    let (payload, left) = line.split_once(' ').expect("payload and expiry");
    assert_eq!(payload, "long", "the 1 s message expired in the queue");
    let left: u32 = left.parse().expect("expiry interval");
    assert!((20..=28).contains(&left), "remaining expiry {left}");
    assert_eq!(sub.line(QUIET).await, None);
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_format_content_type_and_user_properties_pass_through() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut sub = Sub::start(addr, &["-V", "5", "-t", "props/t", "-F", "%F|%C|%P|%p"]).await;
    mosquitto_pub(
        addr,
        &[
            "-V",
            "5",
            "-t",
            "props/t",
            "-m",
            "héllo",
            "-D",
            "publish",
            "payload-format-indicator",
            "1",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "user-property",
            "site",
            "north",
        ],
    )
    .await;
    assert_eq!(
        sub.line(WAIT).await.as_deref(),
        Some("1|text/plain|site:north|héllo")
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_topic_and_correlation_data_pass_through() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
responder = C("responder")
responder.sub("req/t", 1)
asker = C("asker")
asker.sub("reply/asker", 1)
asker.pub("req/t", "ping", 1, properties=props(PacketTypes.PUBLISH,
    ResponseTopic="reply/asker", CorrelationData=b"\x00\x01id"))
m = responder.get()
responder.pub(m.properties.ResponseTopic, "pong", 1,
    properties=props(PacketTypes.PUBLISH, CorrelationData=m.properties.CorrelationData))
r = asker.get()
print(m.properties.ResponseTopic, r.payload.decode(), r.properties.CorrelationData)
"#,
    )
    .await;
    assert_eq!(out, "reply/asker pong b'\\x00\\x01id'\n");
    gw.stop().await;
}

// ---------------------------------------------------------------- subscriptions

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_give_one_copy_with_every_subscription_identifier() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
s = C("sid")
s.sub("sid/#", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=11))
s.sub("sid/+", 1, properties=props(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=22))
C("sid-p").pub("sid/a", "x", 1)
m = s.get()
print(m.payload.decode(), sorted(m.properties.SubscriptionIdentifier), s.get(0.8))
"#,
    )
    .await;
    assert_eq!(out, "x [11, 22] None\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_local_subscription_does_not_echo_own_messages() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
s = C("nl")
s.sub("nl/t", options=SubscribeOptions(qos=1, noLocal=True))
s.pub("nl/t", "own", 1)
C("nl-other").pub("nl/t", "other", 1)
print(s.get().payload.decode(), s.get(0.8))
"#,
    )
    .await;
    assert_eq!(out, "other None\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_as_published_keeps_the_retain_flag_on_live_messages() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
rap = C("rap")
rap.sub("rap/t", options=SubscribeOptions(qos=1, retainAsPublished=True))
plain = C("plain")
plain.sub("rap/t", options=SubscribeOptions(qos=1))
C("rap-p").pub("rap/t", "live", 1, retain=True)
print(rap.get().retain, plain.get().retain)
"#,
    )
    .await;
    assert_eq!(out, "True False\n");
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_handling_0_1_2_controls_retained_messages_on_subscribe() {
    let gw = start("").await;
    let p = port(gw.mqtt_addr().expect("mqtt"));
    let out = paho(
        &p,
        r#"
C("rh-p").pub("rh/t", "kept", 1, retain=True)
s = C("rh")
def got(rh):
    s.sub("rh/t", options=SubscribeOptions(qos=1, retainHandling=rh))
    m = s.get(0.8)
    return m.payload.decode() if m else "-"
print("rh0", got(0), "rh0 again", got(0), "rh1 existing", got(1))
s.c.unsubscribe("rh/t"); time.sleep(0.3)
print("rh1 new", got(1))
s.c.unsubscribe("rh/t"); time.sleep(0.3)
print("rh2", got(2))
"#,
    )
    .await;
    assert_eq!(
        out,
        "rh0 kept rh0 again kept rh1 existing -\nrh1 new kept\nrh2 -\n"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_subscription_delivers_round_robin_to_group_members() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut a = Sub::start(addr, &["-V", "5", "-t", "$share/workers/jobs/#"]).await;
    let mut b = Sub::start(addr, &["-V", "5", "-t", "$share/workers/jobs/#"]).await;
    for n in 1..=4 {
        mosquitto_pub(addr, &["-V", "5", "-t", "jobs/x", "-m", &format!("j{n}")]).await;
    }
    let got_a = a.lines(2, WAIT).await;
    let got_b = b.lines(2, WAIT).await;
    let mut all: Vec<String> = got_a.iter().chain(&got_b).cloned().collect();
    all.sort();
    assert_eq!(all, vec!["j1", "j2", "j3", "j4"]);
    assert_eq!((got_a.len(), got_b.len()), (2, 2), "{got_a:?} {got_b:?}");
    assert_eq!(a.line(QUIET).await, None);
    gw.stop().await;
}

/// A raw member that subscribes first (so it gets the first message) and
/// never acknowledges; a mosquitto_sub member must get the message once the
/// raw member's connection is gone.
async fn shared_message_moves_when_a_member_drops(connect_props: &[u8]) {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut flaky = Raw::connected(addr, "flaky", connect_props).await;
    flaky.send(&raw::subscribe(1, "$share/g/work", 1)).await;
    flaky.next_of(raw::SUBACK).await.expect("SUBACK");
    let mut steady = Sub::start(addr, &["-V", "5", "-q", "1", "-t", "$share/g/work"]).await;
    mosquitto_pub(addr, &["-V", "5", "-q", "1", "-t", "work", "-m", "task-1"]).await;
    let (first, body) = flaky.next_of(raw::PUBLISH).await.expect("flaky got it");
    assert_eq!(raw::publish_parts(first, &body).2, b"task-1");
    assert_eq!(steady.line(QUIET).await, None, "one member only");
    drop(flaky);
    assert_eq!(steady.line(WAIT).await.as_deref(), Some("task-1"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_shared_message_goes_to_another_member_when_a_session_ends() {
    shared_message_moves_when_a_member_drops(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacknowledged_shared_message_goes_to_another_member_when_one_goes_offline() {
    // Session Expiry Interval 60: the member's session outlives the connection.
    shared_message_moves_when_a_member_drops(&[0x11, 0, 0, 0, 60]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_persistent_session_is_resumed_by_a_v5_connection() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let old = Sub::start(
        addr,
        &["-V", "311", "-c", "-i", "mixed", "-q", "1", "-t", "mixs/t"],
    )
    .await;
    old.kill().await;
    mosquitto_pub(addr, &["-V", "5", "-q", "1", "-t", "mixs/t", "-m", "kept"]).await;
    let out = paho(
        &port(addr),
        r#"
c = C("mixed", clean_start=False, properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60))
m = c.get()
print(c.session_present, m.payload.decode() if m else None)
c.close()
"#,
    )
    .await;
    assert_eq!(out, "True kept\n");
    gw.stop().await;
}

// ---------------------------------------------------------------- wills

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_waits_for_its_delay_interval() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut watch = Sub::start(addr, &["-V", "5", "-t", "wd/#", "-v"]).await;
    let p = port(addr);
    let started = Instant::now();
    paho(
        &p,
        r#"
c = C("wd", properties=props(PacketTypes.CONNECT, SessionExpiryInterval=60),
      will=dict(topic="wd/status", payload="offline", qos=1,
                properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=2)))
c.kill()
"#,
    )
    .await;
    let line = watch.line(WAIT).await;
    let waited = started.elapsed();
    assert_eq!(line.as_deref(), Some("wd/status offline"));
    assert!(
        waited >= Duration::from_millis(1500),
        "will came after {waited:?}"
    );
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_goes_out_when_the_session_ends_before_the_will_delay() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut watch = Sub::start(addr, &["-V", "5", "-t", "wse/#", "-v"]).await;
    let p = port(addr);
    let started = Instant::now();
    paho(
        &p,
        r#"
c = C("wse", properties=props(PacketTypes.CONNECT, SessionExpiryInterval=1),
      will=dict(topic="wse/status", payload="gone", qos=1,
                properties=props(PacketTypes.WILLMESSAGE, WillDelayInterval=60)))
c.kill()
"#,
    )
    .await;
    let line = watch.line(WAIT).await;
    let waited = started.elapsed();
    assert_eq!(line.as_deref(), Some("wse/status gone"));
    assert!(
        waited < Duration::from_secs(4),
        "will came after {waited:?}"
    );
    gw.stop().await;
}

// ---------------------------------------------------------------- 3.1.1 and 5 together

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v311_subscriber_gets_a_valid_packet_from_a_v5_publisher() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut old = Sub::start(addr, &["-V", "311", "-q", "1", "-t", "mix/t", "-v"]).await;
    mosquitto_pub(
        addr,
        &[
            "-V",
            "5",
            "-q",
            "1",
            "-t",
            "mix/t",
            "-m",
            "from-v5",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "message-expiry-interval",
            "60",
            "-D",
            "publish",
            "content-type",
            "text/plain",
        ],
    )
    .await;
    assert_eq!(old.line(WAIT).await.as_deref(), Some("mix/t from-v5"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v5_subscriber_gets_a_message_from_a_v311_publisher() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut new = Sub::start(
        addr,
        &["-V", "5", "-q", "1", "-t", "mix/r", "-F", "%t %p %q"],
    )
    .await;
    mosquitto_pub(
        addr,
        &["-V", "311", "-q", "1", "-t", "mix/r", "-m", "from-v311"],
    )
    .await;
    assert_eq!(new.line(WAIT).await.as_deref(), Some("mix/r from-v311 1"));
    gw.stop().await;
}

// ---------------------------------------------------------------- bad input

/// Sends `bad` from a fresh raw client, expects DISCONNECT `reason`, and
/// checks that a bystander subscriber keeps receiving.
async fn bad_input_is_disconnected_with(connect_props: &[u8], bad: &[u8], reason: u8) {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut sub = Sub::start(addr, &["-V", "5", "-t", "bystander"]).await;
    let mut c = Raw::connected(addr, "rogue", connect_props).await;
    c.send(bad).await;
    assert_eq!(c.disconnect_reason().await, Some(reason));
    assert!(c.closed().await);
    mosquitto_pub(addr, &["-V", "5", "-t", "bystander", "-m", "unaffected"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("unaffected"));
    gw.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_property_gets_disconnect_0x82() {
    // Payload Format Indicator twice.
    let bad = raw::publish("t", 0, 0, &[0x01, 1, 0x01, 1], b"x");
    bad_input_is_disconnected_with(&[], &bad, 0x82).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn property_not_allowed_on_the_packet_gets_disconnect_0x81() {
    // Session Expiry Interval belongs to CONNECT/CONNACK/DISCONNECT, not PUBLISH.
    let bad = raw::publish("t", 0, 0, &[0x11, 0, 0, 0, 5], b"x");
    bad_input_is_disconnected_with(&[], &bad, 0x81).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_zero_gets_disconnect_0x94() {
    let bad = raw::publish("t", 0, 0, &[0x23, 0, 0], b"x");
    bad_input_is_disconnected_with(&[], &bad, 0x94).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_above_the_maximum_gets_disconnect_0x94() {
    // The default Topic Alias Maximum is 10.
    let bad = raw::publish("t", 0, 0, &[0x23, 0, 11], b"x");
    bad_input_is_disconnected_with(&[], &bad, 0x94).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_zero_in_connect_gets_connack_0x82() {
    let gw = start("").await;
    let addr = gw.mqtt_addr().expect("mqtt");
    let mut sub = Sub::start(addr, &["-V", "5", "-t", "bystander"]).await;
    let mut c = Raw::open(addr, &raw::connect("rm0", 60, &[0x21, 0, 0])).await;
    let (_, body) = c.next_of(raw::CONNACK).await.expect("CONNACK");
    assert_eq!(body.get(1), Some(&0x82), "Protocol Error");
    assert!(c.closed().await);
    mosquitto_pub(addr, &["-V", "5", "-t", "bystander", "-m", "unaffected"]).await;
    assert_eq!(sub.line(WAIT).await.as_deref(), Some("unaffected"));
    gw.stop().await;
}
