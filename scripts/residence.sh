#!/usr/bin/env bash
# In-broker residence time, sngate against Mosquitto, side by side: how long
# each broker holds a message between reading the PUBLISH and writing its
# delivery. The end-to-end latency of `scripts/bench.sh` is mostly the
# kernel's and the virtual CPUs' wake-ups, which are the same for both
# brokers; this isolates the part a broker's own code decides.
#
# Each broker is pinned to core 0 and traced with the kernel's syscall
# tracepoints (perf record; root or perf_event_paranoid <= 1) while
# `sngate-bench latency` (core 1) relays 1,000 msg/s from one publisher to one
# subscriber. The trace adds ~1 µs to every syscall of both brokers alike.
#
# Usage: scripts/residence.sh     (REPS=3 QOS="0 1" DURATION=3 OUT=dir SNGATE=path/to/another/build)
set -euo pipefail
REPS=${REPS:-3}
QOS=${QOS:-"0 1"}
DURATION=${DURATION:-3}
root=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/sngate-residence.XXXXXX)}
mkdir -p "$OUT"
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)" >&2; exit 1; }
cargo build --release --quiet --manifest-path "$root/Cargo.toml" --bin sngate --bin sngate-bench
SNGATE=${SNGATE:-"$root/target/release/sngate"}
BENCH="$root/target/release/sngate-bench"

# shellcheck source=scripts/common.sh
. "$root/scripts/common.sh"

events=""
for s in epoll_wait epoll_pwait read recvfrom write sendto; do
    events="$events -e syscalls:sys_enter_$s -e syscalls:sys_exit_$s"
done

run() { # target qos rep
    local port sn pid perf_pid trace="$OUT/$1-q$2-r$3"
    port=$(free_port)
    sn=$(free_port)
    if [ "$1" = sngate ]; then
        printf '[log]\nlevel = "warn"\n[broker]\nsys_interval = 0\n[[listener]]\nprotocol = "mqtt"\nbind = "127.0.0.1:%s"\n[gateway]\nadvertise_interval = 0\n[[gateway.udp]]\nbind = "127.0.0.1:%s"\n' \
            "$port" "$sn" >"$OUT/sngate.toml"
        taskset -c 0 "$SNGATE" -c "$OUT/sngate.toml" >>"$OUT/sngate.log" 2>&1 &
    else
        printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nlog_type error\n' "$port" >"$OUT/mosquitto.conf"
        taskset -c 0 mosquitto -c "$OUT/mosquitto.conf" >>"$OUT/mosquitto.log" 2>&1 &
    fi
    pid=$!
    wait_tcp "$port"
    # shellcheck disable=SC2086
    perf record -q $events -p "$pid" -o "$trace.data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
    taskset -c 1 "$BENCH" latency --qos "$2" --duration "$DURATION" --port "$port" --sn-port "$sn" \
        --broker-pid "$pid" --target "$1" 2>&1 | grep '^#' | sed 's/^# */  end to end: /'
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    perf script --ns -i "$trace.data" -F tid,time,event,trace >"$trace.txt" 2>/dev/null
    rm -f "$trace.data"
    printf '%-9s qos%s rep %s: ' "$1" "$2" "$3"
    python3 "$root/scripts/residence.py" "$trace.txt"
}

for rep in $(seq 1 "$REPS"); do
    for q in $QOS; do
        if [ $((rep % 2)) = 1 ]; then order="sngate mosquitto"; else order="mosquitto sngate"; fi
        for target in $order; do run "$target" "$q" "$rep"; done
    done
done
echo "traces: $OUT"
