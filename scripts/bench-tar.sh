#!/usr/bin/env bash
# Small-file A/B benchmark (issue 17), run by hand, not part of CI: `tar x`, `tar c` (cold)
# and `rm -rf` of one tree on a local directory, a bindfs passthrough of one, and a fresh
# `rustre local` cluster (2 OSTs) for each rustre binary given, runs interleaved (local,
# bindfs, A, B, then again), medians printed with ratios to bindfs. A binary may carry
# options of `rustre local` after a colon: `target/release/rustre:--durable`.
#
#   scripts/bench-tar.sh BIN_A [BIN_B]     # e.g. an older build and target/release/rustre
#   RUNS=3 TREE_SRC=/usr/include            # defaults
#   AFTER_RM=1                              # each tar x right after an rm -rf of the tree
#                                           # (untimed), caches not dropped: as `make clean;
#                                           # make` or a checkout meets the file system
#
# Needs root (drop_caches, mounts), bindfs and python3. Everything lives under one temp
# directory on the local disk, removed at the end.
set -uo pipefail
RUNS=${RUNS:-3}
TREE_SRC=${TREE_SRC:-/usr/include}
[ "$(id -u)" = 0 ] || { echo "bench-tar: run as root" >&2; exit 2; }
[ $# -ge 1 ] || { echo "usage: $0 BIN_A [BIN_B]" >&2; exit 2; }
for c in bindfs python3 tar fusermount3; do
  command -v "$c" >/dev/null || { echo "bench-tar: missing $c" >&2; exit 2; }
done
BINS=("$@")
TMP=$(mktemp -d /var/tmp/rustre-bench-tar.XXXXXX)
PIDS=()
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$TMP"
}
trap cleanup EXIT
tar --sort=name --numeric-owner -C "$TREE_SRC" -cf "$TMP/tree.tar" . || exit 1
FILES=$(tar tf "$TMP/tree.tar" | wc -l)
echo "tree: $TREE_SRC, $FILES entries, $(($(stat -c %s "$TMP/tree.tar") >> 20)) MiB; $RUNS runs$([ "${AFTER_RM:-0}" = 1 ] && echo ", tar x after rm -rf")"

now() { date +%s.%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
# One run on directory $2 for target $1: prints "target metric seconds" lines.
suite() {
  local t=$1 d=$2/run t0
  mkdir -p "$d"
  if [ "${AFTER_RM:-0}" = 1 ]; then
    tar -xf "$TMP/tree.tar" -C "$d" && rm -rf "$d" && mkdir -p "$d"
    gone "${3:-}"
  else
    drop
  fi
  t0=$(now); tar -xf "$TMP/tree.tar" -C "$d" || echo "$t tar_x ERR"; echo "$t tar_x $(echo "$(now) - $t0" | bc)"
  drop
  t0=$(now); tar -cf - -C "$d" . | wc -c >/dev/null; echo "$t tar_c $(echo "$(now) - $t0" | bc)"
  t0=$(now); rm -rf "$d"; echo "$t rm_rf $(echo "$(now) - $t0" | bc)"
  gone "${3:-}"
}
# A rustre cluster (data directory $1, none for the baselines) deletes the objects of what
# was removed in the background: waits (untimed, at most 30 s) until they are gone, so the
# next timed step does not share the machine with that work.
gone() {
  [ -n "$1" ] || return 0
  for _ in $(seq 1 300); do
    [ -z "$(find "$1"/ost*/objects -type f -print -quit 2>/dev/null)" ] && return 0
    sleep 0.1
  done
}
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$TMP/local" "$TMP/bsrc" "$TMP/bmnt"
bindfs "$TMP/bsrc" "$TMP/bmnt" && MOUNTS+=("$TMP/bmnt")
for i in "${!BINS[@]}"; do
  d="$TMP/r$i"; mkdir -p "$d/data" "$d/mnt"; p=$(port)
  bin=${BINS[$i]%%:*}; opts=()
  [[ ${BINS[$i]} == *:* ]] && read -ra opts <<<"${BINS[$i]#*:}"
  "$bin" local --data "$d/data" --listen "127.0.0.1:$p" --mgs "127.0.0.1:$p" --osts 2 \
    "${opts[@]}" >"$d/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 50); do "$bin" --mgs "127.0.0.1:$p" --secret-file "$d/data/cluster.secret" status 2>/dev/null | grep -q '^OST0001 .* up' && break; sleep 0.2; done
  "$bin" mount "127.0.0.1:$p" "$d/mnt" -o "secret_file=$d/data/cluster.secret" || exit 1
  MOUNTS+=("$d/mnt")
done
: >"$TMP/results"
for r in $(seq 1 "$RUNS"); do
  suite local "$TMP/local" >>"$TMP/results"
  suite bindfs "$TMP/bmnt" >>"$TMP/results"
  for i in "${!BINS[@]}"; do suite "rustre$i" "$TMP/r$i/mnt" "$TMP/r$i/data" >>"$TMP/results"; done
done
for i in "${!BINS[@]}"; do echo "rustre$i = ${BINS[$i]}"; done
python3 - "$TMP/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, m, v = line.split()
    if v != "ERR":
        rows.setdefault(m, {}).setdefault(t, []).append(float(v))
targets = sorted({t for m in rows.values() for t in m}, key=lambda t: (t != "local", t != "bindfs", t))
print("| metric (s, median) | " + " | ".join(targets) + " | " + " | ".join(f"{t}/bindfs" for t in targets if t.startswith("rustre")) + " |")
print("|---" * (1 + len(targets) + sum(t.startswith("rustre") for t in targets)) + "|")
for m, per in rows.items():
    med = {t: statistics.median(v) for t, v in per.items()}
    cells = [f"{med[t]:.2f}" if t in med else "-" for t in targets]
    ratios = [f"{med[t] / med['bindfs']:.2f}" for t in targets if t.startswith("rustre") and t in med and "bindfs" in med]
    print(f"| {m} | " + " | ".join(cells) + " | " + " | ".join(ratios) + " |")
EOF
