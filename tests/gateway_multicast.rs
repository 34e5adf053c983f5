//! Gateway discovery over real IPv4 multicast (MQTT-SN 1.2 §6.1): loopback has
//! no multicast by default, so the gateway and the searching sensor run in a
//! private network namespace (`unshare -n`, as root) with multicast enabled on
//! its loopback. The sensor is `sngate sn search`; ADVERTISE is read by a
//! plain Python socket joined to the group.

use std::process::Command;

const SCRIPT: &str = r#"
set -e
ip link set lo up
ip link set lo multicast on
ip route add 224.0.0.0/4 dev lo
cat > "$DIR/mc.toml" <<CFG
[broker]
sys_interval = 0
[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:1883"
[gateway]
gateway_id = 7
advertise_interval = 1
[[gateway.udp]]
bind = "0.0.0.0:1884"
multicast_group = "225.1.1.1:$GROUP_PORT"
CFG
"$SNGATE" -c "$DIR/mc.toml" > "$DIR/sngate.log" 2>&1 &
GW=$!
trap 'kill $GW 2>/dev/null || true' EXIT
sleep 1
echo "search: $("$SNGATE" sn search -h 225.1.1.1 -p "$GROUP_PORT" -W 5)"
python3 - <<PY
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("225.1.1.1", $GROUP_PORT))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
             struct.pack("4s4s", socket.inet_aton("225.1.1.1"), socket.inet_aton("127.0.0.1")))
s.settimeout(5)
while True:
    data, _ = s.recvfrom(64)
    if data[1:2] == b"\x00":
        print("advertise:", data.hex())
        break
PY
"#;

/// Runs the discovery script with the group on `group_port` (the gateway
/// binds 1884); returns stdout after checking the script succeeded.
fn discover(group_port: u16) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new("timeout")
        .args(["30", "unshare", "-n", "sh", "-c", SCRIPT])
        .env("SNGATE", env!("CARGO_BIN_EXE_sngate"))
        .env("DIR", dir.path())
        .env("GROUP_PORT", group_port.to_string())
        .output()
        .expect("unshare runs (the test needs root, as CI has)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = std::fs::read_to_string(dir.path().join("sngate.log")).unwrap_or_default();
    assert!(
        out.status.success(),
        "namespace script failed: {}\n{stdout}\nsngate log:\n{log}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.into_owned()
}

#[test]
fn searchgw_to_the_multicast_group_is_answered_and_advertise_reaches_the_group() {
    let stdout = discover(1884);
    // GWINFO answers the SEARCHGW that was sent to the group (G-11).
    assert!(stdout.contains("search: gateway 7 at"), "{stdout}");
    // ADVERTISE(GwId 7, Duration 1) is multicast to the group (G-09):
    // length 5, type 0x00, gateway id 0x07, duration 0x0001.
    assert!(stdout.contains("advertise: 0500070001"), "{stdout}");
}

#[test]
fn searchgw_to_a_group_port_other_than_the_bind_port_is_answered() {
    // The group's port is a listening port of its own (bind 1884, group 1885).
    let stdout = discover(1885);
    // GWINFO leaves from the bind port, the address a sensor then connects to.
    assert!(
        stdout.contains("search: gateway 7 at 127.0.0.1:1884"),
        "{stdout}"
    );
    assert!(stdout.contains("advertise: 0500070001"), "{stdout}");
}
