#!/usr/bin/env bash
# The cost of one O_APPEND write through one mount (issue 16), run by hand, not part of CI.
#
#   scripts/bench-append.sh BASE_BIN [NEW_BIN]   # NEW_BIN: target/release/rustre
#
# For each binary, RUNS times (interleaved: base, new, base, new, ...): a fresh `rustre local`
# cluster with 2 OSTs and one `rustre mount -f` of it; one process appends N records of 64
# bytes, each by one write(2) on an O_WRONLY|O_APPEND descriptor, and closes it (the close
# is timed too: it sends what is buffered). Prints microseconds per append for every run,
# the medians and NEW/BASE. Needs root, /dev/fuse and python3.
#
# Settings (environment): N (default 20000), RUNS (default 3), BENCH_TMPDIR (default
# /var/tmp). Everything started here is ended by its pid, every mount made here unmounted.
set -euo pipefail

BASE_BIN=${1:?usage: $0 BASE_BIN [NEW_BIN]}
NEW_BIN=${2:-$(cd "$(dirname "$0")/.." && pwd)/target/release/rustre}
N=${N:-20000}
RUNS=${RUNS:-3}
TMP=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/rustre-bench-append.XXXXXX")
PIDS=()
MOUNTS=()

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    if mountpoint -q "${MOUNTS[$i]}"; then
      umount "${MOUNTS[$i]}" 2>/dev/null || umount -l "${MOUNTS[$i]}" 2>/dev/null || true
    fi
  done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    kill "${PIDS[$i]}" 2>/dev/null || true
    wait "${PIDS[$i]}" 2>/dev/null || true
  done
  if grep -q " $TMP" /proc/mounts; then
    log "something is still mounted under $TMP; leaving it"
  else
    rm -rf --one-file-system "$TMP"
  fi
}
trap cleanup EXIT INT TERM

wait_for() { # wait_for SECONDS CMD...
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# The appender: prints microseconds per append (close included).
APPEND_PY='
import os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
rec = b"x" * 63 + b"\n"
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
start = time.perf_counter()
for _ in range(n):
    assert os.write(fd, rec) == 64
os.close(fd)
elapsed = time.perf_counter() - start
assert os.stat(path).st_size == 64 * n, "size %d" % os.stat(path).st_size
print("%.2f" % (elapsed / n * 1e6))
'

# run_once LABEL BIN RUN -> prints microseconds per append
run_once() {
  local label=$1 bin=$2 run=$3
  local dir="$TMP/$label-$run" port mgs spid cpid
  mkdir -p "$dir/data" "$dir/mnt"
  port=$(free_port)
  mgs="127.0.0.1:$port"
  export RUSTRE_SECRET_FILE="$dir/data/cluster.secret"
  "$bin" local --data "$dir/data" --osts 2 --listen "$mgs" >"$dir/server.log" 2>&1 &
  spid=$!
  PIDS+=("$spid")
  wait_for 30 sh -c "'$bin' --mgs '$mgs' status 2>/dev/null | grep -q '^OST0001 .* up'" || {
    log "cluster did not come up: $(tail -3 "$dir/server.log")"
    return 1
  }
  "$bin" mount -f "$mgs" "$dir/mnt" >"$dir/client.log" 2>&1 &
  cpid=$!
  PIDS+=("$cpid")
  MOUNTS+=("$dir/mnt")
  wait_for 30 mountpoint -q "$dir/mnt" || {
    log "mount did not come up: $(tail -3 "$dir/client.log")"
    return 1
  }
  timeout 600 python3 -c "$APPEND_PY" "$dir/mnt/log" "$N"
  umount "$dir/mnt" 2>/dev/null || umount -l "$dir/mnt"
  wait "$cpid" 2>/dev/null || true
  kill "$spid" 2>/dev/null || true
  wait "$spid" 2>/dev/null || true
}

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

[ "$(id -u)" = 0 ] || { log "run as root"; exit 1; }
cp "$BASE_BIN" "$TMP/base-rustre"
cp "$NEW_BIN" "$TMP/new-rustre"
log "base $BASE_BIN, new $NEW_BIN, $N appends of 64 bytes, $RUNS runs each, in $TMP"
base=() new=()
for run in $(seq 1 "$RUNS"); do
  b=$(run_once base "$TMP/base-rustre" "$run")
  n=$(run_once new "$TMP/new-rustre" "$run")
  log "run $run: base $b us/append, new $n us/append"
  base+=("$b")
  new+=("$n")
done
mb=$(printf '%s\n' "${base[@]}" | median)
mn=$(printf '%s\n' "${new[@]}" | median)
printf 'us per 64-byte O_APPEND write (median of %s): base %s, new %s, new/base %s\n' \
  "$RUNS" "$mb" "$mn" "$(awk -v a="$mn" -v b="$mb" 'BEGIN { printf "%.2f", a / b }')"
