#!/usr/bin/env python3
"""Residence time of a delivered message inside a broker, from a syscall trace.

Reads `perf script -F tid,time,event,trace` output of a broker traced with the
sys_enter/sys_exit tracepoints of epoll_wait, read/recvfrom and write/sendto
while it relays one publisher to one subscriber (`sngate-bench latency`), and
prints, over every wake-up that ends in a delivery, the median and 90th
percentile (µs) of:

  wake->read   epoll_wait returning to the first read of the wake-up
  read         the read calls up to the one that returned the PUBLISH
  read->write  the PUBLISH read to the delivery's write: the broker's own work
  wake->write  epoll_wait returning to the delivery's write: all of the above

Usage: residence.py TRACE [MIN_BYTES]   (MIN_BYTES: smallest PUBLISH, default 80)
"""
import re
import sys

LINE = re.compile(r"\s*(\d+)\s+([\d.]+):\s+syscalls:sys_(enter|exit)_(\w+):\s*(.*)")
READS = ("read", "recvfrom")
WRITES = ("write", "sendto")


def events(path):
    for line in open(path, encoding="utf-8", errors="replace"):
        m = LINE.match(line)
        if not m:
            continue
        _tid, t, phase, name, rest = m.groups()
        size = None
        if phase == "enter":
            s = re.search(r"(?:len|count|size): 0x([0-9a-f]+)", rest)
            size = int(s[1], 16) if s else None
        else:
            try:
                size = int(rest.split()[0], 0)
            except (ValueError, IndexError):
                pass
        yield float(t) * 1e6, phase, name, size


def spans(path, min_bytes):
    out = {"wake->read": [], "read": [], "read->write": [], "wake->write": []}
    wake = first_read = got = None
    for t, phase, name, size in events(path):
        if phase == "exit" and name.startswith("epoll"):
            wake, first_read, got = t, None, None
        elif wake is None:
            continue
        elif phase == "enter" and name in READS and first_read is None:
            first_read = t
        elif phase == "exit" and name in READS and first_read and (size or 0) >= min_bytes:
            got = t
        elif phase == "enter" and name in WRITES and got and (size or 0) >= min_bytes:
            out["wake->read"].append(first_read - wake)
            out["read"].append(got - first_read)
            out["read->write"].append(t - got)
            out["wake->write"].append(t - wake)
            wake = None
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    min_bytes = int(sys.argv[2]) if len(sys.argv) > 2 else 80
    out = spans(sys.argv[1], min_bytes)
    n = len(out["wake->write"])
    cols = "  ".join(f"{k} {pct(v, .5):.0f}/{pct(v, .9):.0f}" for k, v in out.items())
    print(f"deliveries {n}  (µs, p50/p90)  {cols}")


if __name__ == "__main__":
    main()
