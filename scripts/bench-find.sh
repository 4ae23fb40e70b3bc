#!/usr/bin/env bash
# `rustre find` / `rustre du` (walking the namespace at the MDS, no mount) against GNU find
# and du on a rustre mount of the same tree (issue 19). Run by hand, not part of CI (CI checks
# the same agreement on 100,000 files, untimed: tests/find_du.rs); needs root (mounts),
# python3, fusermount3.
#
#   scripts/bench-find.sh                    # 100,000 files, 3 runs of each
#   FILES=10000 RUNS=1 scripts/bench-find.sh # a quick check
#
# Settings (environment): FILES (regular files in the tree, default 100000), PER_DIR (files
# per directory, default 100: a two-level tree of FILES/PER_DIR directories), RUNS (default
# 3; the table shows the median), OSTS (default 2), RUSTRE_BIN (default
# target/release/rustre, else target/debug/rustre), BENCH_TMPDIR (default /var/tmp).
#
# Every GNU run starts on a fresh mount (no kernel attribute or entry cached), every rustre
# run with a fresh process; both print the same sorted paths and the same totals, checked.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
FILES=${FILES:-100000}
PER_DIR=${PER_DIR:-100}
RUNS=${RUNS:-3}
OSTS=${OSTS:-2}
BIN=${RUSTRE_BIN:-$REPO/target/release/rustre}
[ -x "$BIN" ] || BIN=$REPO/target/debug/rustre
[ -x "$BIN" ] || { echo "no rustre binary: cargo build first (or set RUSTRE_BIN)" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "run as root (mounts)" >&2; exit 1; }

TMP=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/rustre-bench-find.XXXXXX")
MNT=$TMP/mnt
SERVER_PID=""
MOUNT_PID=""
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
unmount() {
  if mountpoint -q "$MNT" 2>/dev/null; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$MOUNT_PID" ]; then
    for _ in $(seq 1 100); do kill -0 "$MOUNT_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$MOUNT_PID" 2>/dev/null || true
    wait "$MOUNT_PID" 2>/dev/null || true
    MOUNT_PID=""
  fi
}
cleanup() {
  unmount
  [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
  grep -q " $TMP" /proc/mounts || rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT
wait_for() { # wait_for SECONDS CMD...
  local deadline=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}
mount_fresh() {
  unmount
  "$BIN" mount -f "$MGS" "$MNT" >>"$TMP/mount.log" 2>&1 &
  MOUNT_PID=$!
  wait_for 30 mountpoint -q "$MNT" || { echo "mount failed: $(tail -3 "$TMP/mount.log")" >&2; exit 1; }
}
# timed OUT CMD...: runs CMD (stdout to OUT), prints its seconds.
timed() {
  local out=$1; shift
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$out"
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

mkdir -p "$MNT" "$TMP/data"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
MGS=127.0.0.1:$PORT
export RUSTRE_SECRET_FILE=$TMP/data/cluster.secret RUSTRE_MGS=$MGS
"$BIN" local --data "$TMP/data" --osts "$OSTS" --listen "$MGS" >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
LAST=$(printf 'OST%04x' $((OSTS - 1)))
wait_for 30 sh -c "'$BIN' status 2>/dev/null | grep -q '^$LAST .* up'" ||
  { echo "cluster did not come up: $(tail -3 "$TMP/server.log")" >&2; exit 1; }
mount_fresh

log "building $FILES files, $PER_DIR per directory, on the mount"
python3 - "$MNT/t" "$FILES" "$PER_DIR" <<'PY'
import os, sys
root, files, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.mkdir(root)
dirs = max(1, files // per)
top = max(1, int(dirs ** 0.5))
for d in range(dirs):
    p = os.path.join(root, f"a{d % top:03d}", f"b{d:05d}")
    os.makedirs(p, exist_ok=True)
    for i in range(per):
        k = d * per + i
        with open(os.path.join(p, f"f{i:04d}.{('dat', 'txt', 'log')[k % 3]}"), "wb") as f:
            f.write(b"x" * ((k * 7919) % 65536 if k % 4 else 0))
PY
log "tree built"

for run in $(seq 1 "$RUNS"); do
  mount_fresh
  (cd "$MNT" && timed "$TMP/gnu-find" find t) >>"$TMP/t-gnu-find"; echo >>"$TMP/t-gnu-find"
  mount_fresh
  (cd "$MNT" && timed "$TMP/gnu-du" du -s t) >>"$TMP/t-gnu-du"; echo >>"$TMP/t-gnu-du"
  timed "$TMP/rustre-find" "$BIN" find t >>"$TMP/t-rustre-find"; echo >>"$TMP/t-rustre-find"
  timed "$TMP/rustre-du" "$BIN" du -s t >>"$TMP/t-rustre-du"; echo >>"$TMP/t-rustre-du"
  log "run $run: find $(tail -1 "$TMP/t-gnu-find")s vs $(tail -1 "$TMP/t-rustre-find")s, du $(tail -1 "$TMP/t-gnu-du")s vs $(tail -1 "$TMP/t-rustre-du")s"
done
cmp -s <(sort "$TMP/gnu-find") <(sort "$TMP/rustre-find") || { echo "find outputs differ" >&2; exit 1; }
cmp -s "$TMP/gnu-du" "$TMP/rustre-du" || { echo "du outputs differ: $(cat "$TMP/gnu-du") vs $(cat "$TMP/rustre-du")" >&2; exit 1; }

echo "## rustre find/du vs GNU find/du on a mount: $FILES files ($(wc -l <"$TMP/gnu-find") paths), $RUNS runs, median seconds"
echo
echo "| command | GNU on the mount | rustre | GNU / rustre |"
echo "|---|---:|---:|---:|"
for c in find du; do
  g=$(median <"$TMP/t-gnu-$c"); r=$(median <"$TMP/t-rustre-$c")
  echo "| $c | $g | $r | $(awk -v g="$g" -v r="$r" 'BEGIN { printf "%.1fx", g / r }') |"
done
