#!/usr/bin/env python3
"""Where a command's time goes in FUSE requests: a diagnostic, run by hand, not part of CI.

    scripts/fuse-trace.py [--keep FILE] -- CMD [ARG...]

Runs CMD under `perf record` of the kernel's FUSE tracepoints (`fuse:fuse_request_send`,
`fuse:fuse_request_end`, every CPU) and prints, per opcode, how many requests were sent,
the time from send to answer (sum, median, 90th percentile) and the time between the
previous answer and this request: for one process making one request at a time (`rm -rf`,
a loop of `stat`s) that is the caller's and the kernel's own work between requests. Every
FUSE mount on the host is traced; keep other FUSE work away meanwhile. Needs root and
`perf` (Debian: linux-perf). docs/benchmarks.md shows it at work on `rm -rf`.
"""

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile

EVENT = re.compile(
    r"\s(\d+\.\d+):\s+fuse:fuse_request_(send|end): connection \d+ req (\d+)"
    r"(?: opcode \d+ \((\w+)\))?"
)


def parse(lines):
    """Per-opcode answer times and gaps before each request, and the traced span."""
    sent, answered, gaps = {}, collections.defaultdict(list), collections.defaultdict(list)
    last_answer, first, last = None, None, None
    for line in lines:
        m = EVENT.search(line)
        if not m:
            continue
        t, kind, req = float(m.group(1)), m.group(2), m.group(3)
        first = t if first is None else first
        last = t
        if kind == "send":
            op = m.group(4) or "?"
            sent[req] = (t, op)
            if last_answer is not None:
                gaps[op].append(t - last_answer)
        elif req in sent:
            t0, op = sent.pop(req)
            answered[op].append(t - t0)
            last_answer = t
    span = (last - first) if first is not None else 0.0
    return answered, gaps, span


def row(label, values):
    values = sorted(values)
    n = len(values)
    return "| %s | %d | %.3f | %.1f | %.1f |" % (
        label,
        n,
        sum(values),
        values[n // 2] * 1e6,
        values[min(n - 1, int(n * 0.9))] * 1e6,
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", help="keep perf's data file here")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        ap.error("no command given")
    if os.geteuid() != 0:
        sys.exit("fuse-trace: run as root (perf needs the tracepoints)")
    if args.keep:
        data = args.keep
    else:
        fd, data = tempfile.mkstemp(prefix="fuse-trace.", suffix=".data")
        os.close(fd)
    rec = ["perf", "record", "-q", "-a", "-o", data,
           "-e", "fuse:fuse_request_send", "-e", "fuse:fuse_request_end", "--"] + cmd
    try:
        status = subprocess.call(rec)
    except FileNotFoundError:
        sys.exit("fuse-trace: perf not found (Debian: apt-get install linux-perf)")
    out = subprocess.run(["perf", "script", "-i", data], capture_output=True, text=True)
    if not args.keep:
        os.unlink(data)
    if out.returncode != 0:
        sys.exit("fuse-trace: perf script failed: " + out.stderr.strip())
    answered, gaps, span = parse(out.stdout.splitlines())
    print("traced span %.3f s, %d requests" % (span, sum(len(v) for v in answered.values())))
    print()
    print("| opcode | requests | answer time, sum (s) | median (us) | p90 (us) |")
    print("|---|---:|---:|---:|---:|")
    for op, v in sorted(answered.items(), key=lambda kv: -sum(kv[1])):
        print(row(op, v))
    print()
    print("| gap before | requests | sum (s) | median (us) | p90 (us) |")
    print("|---|---:|---:|---:|---:|")
    for op, v in sorted(gaps.items(), key=lambda kv: -sum(kv[1])):
        print(row(op, v))
    sys.exit(status)


if __name__ == "__main__":
    main()
