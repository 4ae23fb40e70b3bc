#!/usr/bin/env bash
# File-lock benchmark (issue 16), run by hand, not part of CI. See docs/benchmarks.md.
#
#   scripts/bench-locks.sh            # 3 runs, 2,000 pairs per process
#   QUICK=1 scripts/bench-locks.sh    # 1 run
#
# lock+unlock pairs per second: one process taking and dropping an fcntl write lock (and a
# flock) on one file, N times; and two processes doing the same on one file at once (each
# pair contends with the other process). Targets, in one invocation: a local directory, a
# bindfs passthrough (whose locks stay in the kernel of one host), and rustre, where the two
# processes go through two mounts of one cluster (locks through the MDS, docs/locks.md).
# Needs root, bindfs, python3 and a release build (or RUSTRE_BIN).
set -uo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
PAIRS=${PAIRS:-2000}
BENCH_COMMAND="QUICK=$QUICK RUNS=$RUNS PAIRS=$PAIRS scripts/bench-locks.sh"

bench_init locks

# lock_py MODE PATH N: prints lock+unlock pairs per second of this process.
LOCK_PY='
import fcntl, os, sys, time
mode, path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
take = (lambda how: fcntl.flock(fd, how)) if mode == "flock" else (lambda how: fcntl.lockf(fd, how))
t0 = time.monotonic()
for _ in range(n):
    take(fcntl.LOCK_EX)
    take(fcntl.LOCK_UN)
print("%.1f" % (n / (time.monotonic() - t0)))
'

# one TARGET DIR MODE: one process.
one() {
  local t=$1 d=$2 mode=$3
  if step "$mode pairs, 1 process [$t]" python3 -c "$LOCK_PY" "$mode" "$d/lockfile" "$PAIRS"; then
    record "$mode lock+unlock, 1 process" pairs/s "$t" "$(cat "$STEP_OUT")"
  else
    record "$mode lock+unlock, 1 process" pairs/s "$t" ERR
  fi
}

# two TARGET DIR_A DIR_B: two processes at once, one in each directory (the same file
# through two mounts for rustre); records the sum of their rates.
two() {
  local t=$1 a=$2 b=$3 out_a="$BENCH_TMP/two-a" out_b="$BENCH_TMP/two-b"
  : >"$a/shared"
  python3 -c "$LOCK_PY" fcntl "$a/shared" "$PAIRS" >"$out_a" 2>&1 &
  local pa=$!
  python3 -c "$LOCK_PY" fcntl "$b/shared" "$PAIRS" >"$out_b" 2>&1 &
  local pb=$!
  if wait "$pa" && wait "$pb"; then
    record "fcntl lock+unlock, 2 processes on one file" pairs/s "$t" \
      "$(awk '{ s += $1 } END { printf "%.1f", s }' "$out_a" "$out_b")"
  else
    warn "two processes [$t]: $(cat "$out_a" "$out_b")"
    record "fcntl lock+unlock, 2 processes on one file" pairs/s "$t" ERR
  fi
}

LOCAL_DIR=$(start_local local)
start_bindfs bindfs
start_rustre rustre 2
R_MNT_B="$BENCH_TMP/rustre-b"
mkdir -p "$R_MNT_B"
"$RUSTRE" mount -f "$R_MGS" "$R_MNT_B" >"$BENCH_TMP/logs/rustre-b-client.log" 2>&1 &
BENCH_PIDS+=("$!")
BENCH_MOUNTS+=("$R_MNT_B")
wait_for 30 mountpoint -q "$R_MNT_B" || die "the second rustre mount did not come up"

for run in $(seq 1 "$RUNS"); do
  log "=== run $run of $RUNS ==="
  for mode in fcntl flock; do
    one local "$LOCAL_DIR" "$mode"
    one bindfs "$BINDFS_MNT" "$mode"
    one rustre "$R_MNT" "$mode"
  done
  two local "$LOCAL_DIR" "$LOCAL_DIR"
  two bindfs "$BINDFS_MNT" "$BINDFS_MNT"
  two rustre "$R_MNT" "$R_MNT_B"
done
unmount_fs "$R_MNT_B"
stop_rustre rustre
unmount_fs "$BINDFS_MNT"

print_table bench-locks local bindfs rustre
[ "$BENCH_ERRORS" -eq 0 ] || { warn "$BENCH_ERRORS step(s) failed; see the errors above"; exit 1; }
