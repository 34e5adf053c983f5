#!/usr/bin/env bash
# Side-by-side benchmark: sngate against Mosquitto 2.0.x (and, for MQTT-SN,
# against the Eclipse Paho MQTT-SN gateway in front of Mosquitto when
# PAHO_GW=/path/to/MQTT-SNGateway is given).
#
# Every measurement starts a fresh broker pinned to core 0 (taskset -c 0) and
# runs the load tool pinned to core 1; targets alternate within each
# repetition (the first target swaps every repetition). Prints medians and the
# per-repetition ratio sngate/peer, and keeps the raw JSON lines.
#
# Usage: scripts/bench.sh            (defaults below; override through the environment)
#   REPS=3 DURATION=5 CONNS=10000 SENSORS=100 SN_RATE=2000 CAP_SENSORS=1000 \
#   SCENARIOS="fanin fanout latency latency-paired conns ready ready-cold sn sncap" PAHO_GW=... OUT=dir \
#   MOSQUITTO_NODELAY=1 FLOOD_QOS="0 1 2" scripts/bench.sh
#
# latency-paired runs sngate and Mosquitto at the same time, both on the
# broker core, and measures both in one run of the load tool: each broker gets
# its own publisher and subscriber at the rate, the second broker's messages
# half a period after the first one's (which broker goes first swaps every
# repetition). Whatever the machine does during the run (another process or a
# kernel thread taking the broker core) meets both brokers alike, so the
# per-repetition ratio is much steadier than between runs seconds apart.
#
# ready-cold is ready after dropping the broker's binary and its shared
# libraries from the page cache (posix_fadvise; pages another process maps
# stay): a first start after boot. Warm starts take a few ms; a cold one reads
# the binary from disk, which is what a start after a minute or more of not
# running measures on a host that reclaims unused page cache.
#
# FLOOD_QOS lists the QoS levels fanin and fanout run at (default "0 1", the
# levels the targets name; 2 adds the PUBREC/PUBREL/PUBCOMP exchange).
#
# SNGATE_MODE=transparent runs sngate's `sn` and `sncap` cases as a pure
# gateway (`[gateway] mode = "transparent"`) in front of a Mosquitto, the role
# the Paho gateway plays: CPU and RSS are then the sum of sngate and that
# Mosquitto, exactly as for Paho + Mosquitto.
#
# MOSQUITTO_NODELAY=1 runs every Mosquitto with `set_tcp_nodelay true` (its
# default is false): with Nagle on, a message Mosquitto receives while its
# previous one to the same subscriber is unacknowledged waits for that
# subscriber's (delayed) ACK, which dominates the QoS 0 tail of any gateway in
# front of it (docs/performance.md).
#
# With PAHO_GW the whole run moves into a private network namespace (root
# needed): the Paho UDP gateway always joins a multicast group, and its IGMP
# report must stay on the loopback interface.
set -euo pipefail

REPS=${REPS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-10000}
SENSORS=${SENSORS:-100}
SN_RATE=${SN_RATE:-2000}
CAP_SENSORS=${CAP_SENSORS:-1000}
CAP_START=${CAP_START:-2000}
CAP_STEP_S=${CAP_STEP_S:-2}
SCENARIOS=${SCENARIOS:-"fanin fanout latency latency-paired conns ready ready-cold sn sncap"}
PAHO_GW=${PAHO_GW:-}
SNGATE_MODE=${SNGATE_MODE:-broker}
BROKER_CPU=${BROKER_CPU:-0}
TOOL_CPU=${TOOL_CPU:-1}
MOSQUITTO=${MOSQUITTO:-mosquitto}
MOSQUITTO_NODELAY=${MOSQUITTO_NODELAY:-}
FLOOD_QOS=${FLOOD_QOS:-"0 1"}

root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/sngate-bench.XXXXXX)}
mkdir -p "$OUT"
results="$OUT/results.jsonl"
: >"$results"

cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin sngate --bin sngate-bench
if [ -n "$PAHO_GW" ] && [ -z "${SNGATE_BENCH_NETNS:-}" ]; then
    # Re-run this script (after the build, which may need the network) inside
    # a namespace with only a loopback that also carries multicast.
    exec unshare -n env SNGATE_BENCH_NETNS=1 OUT="$OUT" bash -c \
        'ip link set lo up && ip link set lo multicast on &&
         ip route add 224.0.0.0/4 dev lo && exec "$0" "$@"' "$0" "$@"
fi
SNGATE="$root/target/release/sngate"
BENCH="$root/target/release/sngate-bench"
# 10,000 connections need as many descriptors in the broker and in the tool.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

broker_pids=()
cleanup() {
    for p in "${broker_pids[@]:-}"; do
        [ -n "$p" ] || continue
        # SIGINT: the Paho gateway ignores SIGTERM (it only stops on SIGINT);
        # mosquitto and sngate stop on either. A process still up after 3 s is
        # killed so a run never hangs here.
        kill -INT "$p" 2>/dev/null || continue
        for _ in $(seq 1 60); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    broker_pids=()
}
trap cleanup EXIT

# shellcheck source=scripts/common.sh
. "$root/scripts/common.sh"

sngate_conf() { # port sn_port file
    cat >"$3" <<EOF
[log]
level = "warn"
[broker]
sys_interval = 0
[[listener]]
protocol = "mqtt"
bind = "127.0.0.1:$1"
[gateway]
advertise_interval = 0
[[gateway.udp]]
bind = "127.0.0.1:$2"
EOF
}

mosquitto_conf() { # port file
    cat >"$2" <<EOF
listener $1 127.0.0.1
allow_anonymous true
persistence false
log_type error
EOF
    if [ -n "$MOSQUITTO_NODELAY" ]; then echo "set_tcp_nodelay true" >>"$2"; fi
}

paho_conf() { # mqtt_port sn_port file
    # Keys of the Paho gateway 1.3.x (UDP sensor network); the gateway matches
    # keys by prefix, so no key may start with another key's name. The first
    # ADVERTISE goes out after KeepAlive seconds: 3600 keeps runs free of them.
    cat >"$3" <<EOF
BrokerName=127.0.0.1
BrokerPortNo=$1
BrokerSecurePortNo=8883
ClientAuthentication=NO
AggregatingGateway=NO
QoS-1=NO
Forwarder=NO
PredefinedTopic=NO
GatewayID=1
GatewayName=PahoGateway-bench
KeepAlive=3600
GatewayPortNo=$2
MulticastIP=225.1.1.1
MulticastPortNo=$(free_port)
ShearedMemory=NO
EOF
}

sngate_transparent_conf() { # upstream_port sn_port file
    cat >"$3" <<EOF
listener = []
[log]
level = "warn"
[broker]
sys_interval = 0
[gateway]
mode = "transparent"
advertise_interval = 0
[gateway.upstream]
addresses = ["127.0.0.1:$1"]
[[gateway.udp]]
bind = "127.0.0.1:$2"
EOF
}

# start TARGET: sets PORT, SN_PORT and PIDS (comma-separated) for the target.
start() {
    PORT=$(free_port)
    SN_PORT=$(free_port)
    case "$1" in
    sngate-transparent)
        mosquitto_conf "$PORT" "$OUT/mosquitto.conf"
        taskset -c "$BROKER_CPU" "$MOSQUITTO" -c "$OUT/mosquitto.conf" >>"$OUT/mosquitto.log" 2>&1 &
        broker_pids+=($!)
        PIDS=$!
        wait_tcp "$PORT"
        sngate_transparent_conf "$PORT" "$SN_PORT" "$OUT/sngate.toml"
        taskset -c "$BROKER_CPU" "$SNGATE" -c "$OUT/sngate.toml" >>"$OUT/sngate.log" 2>&1 &
        broker_pids+=($!)
        PIDS="$!,$PIDS"
        sleep 0.2 # UDP: no readiness signal to wait for
        ;;
    sngate)
        sngate_conf "$PORT" "$SN_PORT" "$OUT/sngate.toml"
        taskset -c "$BROKER_CPU" "$SNGATE" -c "$OUT/sngate.toml" >>"$OUT/sngate.log" 2>&1 &
        broker_pids+=($!)
        PIDS=$!
        wait_tcp "$PORT"
        ;;
    mosquitto | paho)
        mosquitto_conf "$PORT" "$OUT/mosquitto.conf"
        taskset -c "$BROKER_CPU" "$MOSQUITTO" -c "$OUT/mosquitto.conf" >>"$OUT/mosquitto.log" 2>&1 &
        broker_pids+=($!)
        PIDS=$!
        wait_tcp "$PORT"
        if [ "$1" = paho ]; then
            paho_conf "$PORT" "$SN_PORT" "$OUT/paho.conf"
            (cd "$OUT" && exec taskset -c "$BROKER_CPU" "$PAHO_GW" -f "$OUT/paho.conf") >>"$OUT/paho.log" 2>&1 &
            broker_pids+=($!)
            PIDS="$!,$PIDS"
            sleep 1 # the Paho gateway has no readiness signal on UDP
        fi
        ;;
    esac
}

# measure CASE REP TARGET ARGS...: one run against a fresh broker; the JSON
# line is tagged with the case and repetition and appended to results.
measure() {
    local case=$1 rep=$2 target=$3 how=$3
    shift 3
    # sngate's MQTT-SN cases in transparent mode keep the target name "sngate",
    # so the ratios still read sngate/peer.
    if [ "$target" = sngate ] && [ "$SNGATE_MODE" = transparent ] && [ "${case#sn}" != "$case" ]; then
        how=sngate-transparent
    fi
    start "$how"
    local line
    line=$(taskset -c "$TOOL_CPU" "$BENCH" "$@" --port "$PORT" --sn-port "$SN_PORT" \
        --broker-pid "$PIDS" --target "$target" 2>>"$OUT/bench.err" | tee -a "$OUT/raw.txt" |
        grep '^{' | tail -n 1 || true)
    grep '^#' "$OUT/raw.txt" | tail -n 1 | sed "s/^#/  [$case rep $rep]/"
    if [ -n "$line" ]; then
        echo "{\"case\":\"$case\",\"rep\":$rep,${line#\{}" >>"$results"
    fi
    cleanup
}

# measure_paired CASE REP FIRST QOS: sngate and Mosquitto up together, one
# latency run over both; FIRST's messages go out first in each period.
measure_paired() {
    local case=$1 rep=$2 first=$3 qos=$4 sp sm s_pid m_pid
    start sngate
    sp=$PORT s_pid=$PIDS
    start mosquitto
    sm=$PORT m_pid=$PIDS
    local a=(--port "$sp" --target sngate --broker-pid "$s_pid")
    local b=(--port "$sm" --target mosquitto --broker-pid "$m_pid")
    if [ "$first" = mosquitto ]; then
        local t=("${a[@]}")
        a=("${b[@]}")
        b=("${t[@]}")
    fi
    taskset -c "$TOOL_CPU" "$BENCH" latency --qos "$qos" --duration "$DURATION" "${a[@]}" \
        --paired-port "${b[1]}" --paired-target "${b[3]}" --paired-pid "${b[5]}" \
        2>>"$OUT/bench.err" | tee -a "$OUT/raw.txt" | while IFS= read -r line; do
        case "$line" in
        \{*) echo "{\"case\":\"$case\",\"rep\":$rep,${line#\{}" >>"$results" ;;
        \#*) echo "  [$case rep $rep]${line#\#}" ;;
        esac
    done
    cleanup
}

# drop_cached FILE...: removes FILE and the shared libraries it loads from the
# page cache, except pages some running process maps.
drop_cached() {
    local libs
    libs=$(ldd "$1" 2>/dev/null | awk '$3 ~ /^\// { print $3 }')
    # shellcheck disable=SC2086
    python3 -c 'import ctypes, mmap, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
def resident(fd, size):
    # mincore over a fresh mapping: which of the file pages are in the page cache.
    addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    vec = ctypes.create_string_buffer((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE)
    libc.mincore(addr, size, vec)
    libc.munmap(addr, size)
    return sum(b & 1 for b in vec.raw)
binary = sys.argv[1]
for attempt in range(10):
    for p in sys.argv[1:]:
        fd = os.open(p, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    fd = os.open(binary, os.O_RDONLY)
    left = resident(fd, os.fstat(fd).st_size)
    os.close(fd)
    if left == 0:
        break
    time.sleep(0.05)
else:
    print(f"ready-cold: {left} pages of {binary} stay cached", file=sys.stderr)' "$1" $libs
}

# ready CASE REP TARGET: time from exec to the first CONNACK, and idle RSS;
# CASE ready-cold drops the broker's files from the page cache first.
measure_ready() {
    local case=$1 rep=$2 target=$3 port line bin
    port=$(free_port)
    case "$target" in
    sngate)
        bin=$SNGATE
        sngate_conf "$port" "$(free_port)" "$OUT/ready.toml"
        set -- taskset -c "$BROKER_CPU" "$SNGATE" -c "$OUT/ready.toml"
        ;;
    mosquitto)
        bin=$(command -v "$MOSQUITTO")
        mosquitto_conf "$port" "$OUT/ready.conf"
        set -- taskset -c "$BROKER_CPU" "$MOSQUITTO" -c "$OUT/ready.conf"
        ;;
    esac
    [ "$case" = ready-cold ] && drop_cached "$bin"
    line=$(taskset -c "$TOOL_CPU" "$BENCH" ready --port "$port" --target "$target" -- "$@" \
        2>>"$OUT/bench.err" | tee -a "$OUT/raw.txt" | grep '^{' || true)
    grep '^#' "$OUT/raw.txt" | tail -n 1 | sed "s/^#/  [$case rep $rep]/"
    [ -n "$line" ] && echo "{\"case\":\"$case\",\"rep\":$rep,${line#\{}" >>"$results"
    return 0
}

sn_peer=""
[ -n "$PAHO_GW" ] && sn_peer=paho

echo "# results in $OUT; $(nproc) cores; $(lscpu | sed -n 's/^Model name: *//p'); sngate sn mode: $SNGATE_MODE; mosquitto nodelay: ${MOSQUITTO_NODELAY:-no}"
for rep in $(seq 1 "$REPS"); do
    if [ $((rep % 2)) -eq 1 ]; then order="sngate mosquitto"; sn_order="sngate $sn_peer"
    else order="mosquitto sngate"; sn_order="$sn_peer sngate"; fi
    for s in $SCENARIOS; do
        case "$s" in
        fanin | fanout | latency)
            levels="0 1"
            [ "$s" = latency ] || levels=$FLOOD_QOS
            for q in $levels; do
                for t in $order; do
                    measure "$s-q$q" "$rep" "$t" "$s" --qos "$q" --duration "$DURATION"
                done
            done
            ;;
        latency-paired)
            for q in 0 1; do measure_paired "latency-paired-q$q" "$rep" "${order%% *}" "$q"; done
            ;;
        conns)
            for t in $order; do measure conns "$rep" "$t" conns --connections "$CONNS"; done
            ;;
        ready | ready-cold)
            for t in $order; do measure_ready "$s" "$rep" "$t"; done
            ;;
        sn)
            for q in 0 1; do
                for t in $sn_order; do
                    measure "sn-q$q" "$rep" "$t" sn --qos "$q" --sensors "$SENSORS" \
                        --rate "$SN_RATE" --duration "$DURATION"
                done
            done
            ;;
        sncap)
            for t in $sn_order; do
                measure sn-capacity "$rep" "$t" sn --qos 0 --sensors "$CAP_SENSORS" \
                    --rate "$CAP_START" --duration "$CAP_STEP_S" --find-capacity
            done
            ;;
        esac
    done
done

python3 - "$results" <<'EOF'
import json, statistics, sys
from collections import defaultdict

# (case, metric, better) — "hi": higher is better, "lo": lower is better.
METRICS = {
    "fanin-q0": [("delivered_per_s", "hi"), ("lost", "lo"), ("broker_cpu_pct", "-"), ("tool_cpu_pct", "-")],
    "fanin-q1": [("delivered_per_s", "hi"), ("lost", "lo"), ("broker_cpu_pct", "-"), ("tool_cpu_pct", "-")],
    "fanout-q0": [("delivered_per_s", "hi"), ("lost", "lo"), ("broker_cpu_pct", "-"), ("tool_cpu_pct", "-")],
    "fanout-q1": [("delivered_per_s", "hi"), ("lost", "lo"), ("broker_cpu_pct", "-"), ("tool_cpu_pct", "-")],
    "fanin-q2": [("delivered_per_s", "hi"), ("lost", "lo"), ("broker_cpu_pct", "-"), ("tool_cpu_pct", "-")],
    "fanout-q2": [("delivered_per_s", "hi"), ("lost", "lo"), ("broker_cpu_pct", "-"), ("tool_cpu_pct", "-")],
    "latency-q0": [("p50_us", "lo"), ("p99_us", "lo"), ("p999_us", "lo"), ("max_us", "lo")],
    "latency-q1": [("p50_us", "lo"), ("p99_us", "lo"), ("p999_us", "lo"), ("max_us", "lo")],
    "latency-paired-q0": [("p50_us", "lo"), ("p99_us", "lo"), ("p999_us", "lo"), ("max_us", "lo")],
    "latency-paired-q1": [("p50_us", "lo"), ("p99_us", "lo"), ("p999_us", "lo"), ("max_us", "lo")],
    "conns": [("rss_per_conn_bytes", "lo"), ("connects_per_s", "hi")],
    "ready": [("ready_ms", "lo"), ("idle_rss_kib", "lo")],
    "ready-cold": [("ready_ms", "lo")],
    "sn-q0": [("broker_cpu_pct", "lo"), ("p99_us", "lo"), ("setup_s", "lo"), ("lost", "lo"), ("broker_rss_kib", "lo"), ("tool_cpu_pct", "-")],
    "sn-q1": [("broker_cpu_pct", "lo"), ("p99_us", "lo"), ("setup_s", "lo"), ("lost", "lo"), ("broker_rss_kib", "lo"), ("tool_cpu_pct", "-")],
    "sn-capacity": [("capacity_msg_s", "hi"), ("setup_s", "lo"), ("broker_rss_kib", "lo")],
}
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = defaultdict(dict)  # (case, metric) -> target -> {rep: value}
for r in rows:
    for m, _ in METRICS.get(r["case"], []):
        if r.get(m) is not None:
            by[(r["case"], m)].setdefault(r["target"], {})[r["rep"]] = r[m]

def fmt(v):
    if v is None:
        return "-"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.3g}"

print()
print(f"{'case':<12} {'metric':<20} {'sngate':>12} {'peer':>12} {'ratio':>7}  per-rep ratios")
for case, metrics in METRICS.items():
    for m, _ in metrics:
        t = by.get((case, m))
        if not t:
            continue
        s = t.get("sngate", {})
        peer_name = next((k for k in t if k != "sngate"), None)
        p = t.get(peer_name, {}) if peer_name else {}
        sm = statistics.median(s.values()) if s else None
        pm = statistics.median(p.values()) if p else None
        ratios = [s[k] / p[k] for k in sorted(s) if k in p and p[k]]
        rm = statistics.median(ratios) if ratios else None
        per = " ".join(f"{x:.2f}" for x in ratios) if ratios else ("not measured" if not p else "-")
        peer = f"{fmt(pm)}" if pm is not None else "-"
        print(f"{case:<12} {m:<20} {fmt(sm):>12} {peer:>12} {('%.2f' % rm) if rm else '-':>7}  {per}"
              + (f"  (peer: {peer_name})" if peer_name and m == metrics[0][0] else ""))
EOF
echo "# raw JSON lines: $results"
