//! Python paho-mqtt 2.x scripts: a small prelude gives each script a client
//! wrapper whose events can be awaited with bounded waits.

use std::net::SocketAddr;

/// Defined for every script: `PORT`, `ARGS` (the extra arguments),
/// `Client(...)` (with `subscribe`, `publish`, `wait_topic`, `drop`, ...)
/// and `wait_for(pred, what, timeout)`.
pub const PRELUDE: &str = r#"
import socket, sys, time, threading
import paho.mqtt.client as mqtt

PORT = int(sys.argv[1])
ARGS = sys.argv[2:]

def wait_for(pred, what, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.005)
    raise SystemExit("timed out waiting for " + what)

class Client:
    def __init__(self, cid="", clean=True, keepalive=60, will=None, proto=mqtt.MQTTv311, loop=True, manual_ack=False):
        kw = {} if proto == mqtt.MQTTv5 else {"clean_session": clean}
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=proto, **kw)
        self.messages = []
        self.acked = set()
        self.connack = None
        self.session_present = None
        self.connack_props = None
        self.disconnected = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.append(m)
        self.c.on_subscribe = lambda c, u, mid, rcs, p: self.acked.add(mid)
        self.c.on_unsubscribe = lambda c, u, mid, rcs, p: self.acked.add(mid)
        self.c.on_disconnect = lambda c, u, f, rc, p: self.disconnected.set()
        if will:
            self.c.will_set(*will)
        if manual_ack:
            self.c.manual_ack_set(True)
        self.c.connect("127.0.0.1", PORT, keepalive)
        if loop:
            self.c.loop_start()
            wait_for(lambda: self.connack is not None, "CONNACK")

    def _on_connect(self, c, u, flags, rc, props):
        self.connack = rc
        self.session_present = flags.session_present
        self.connack_props = props

    def subscribe(self, *args):
        _, mid = self.c.subscribe(*args)
        wait_for(lambda: mid in self.acked, "SUBACK")

    def unsubscribe(self, topic):
        _, mid = self.c.unsubscribe(topic)
        wait_for(lambda: mid in self.acked, "UNSUBACK")

    def publish(self, topic, payload, qos=0, retain=False):
        self.c.publish(topic, payload, qos, retain).wait_for_publish(5)

    def drop(self):
        """Closes the socket without DISCONNECT."""
        self.c.loop_stop()
        s = self.c.socket()
        s.shutdown(socket.SHUT_RDWR)
        s.close()

    def wait_topic(self, topic, timeout=5.0):
        wait_for(lambda: any(m.topic == topic for m in self.messages), "a message on " + topic, timeout)
"#;

/// Runs `PRELUDE` + `script` with `sys.argv[1]` = the broker's port.
pub async fn run(script: &str, addr: SocketAddr, args: &[&str]) -> String {
    let full = format!("{PRELUDE}\n{script}");
    let port = addr.port().to_string();
    let mut all = vec![port.as_str()];
    all.extend_from_slice(args);
    super::python(&full, &all).await
}
