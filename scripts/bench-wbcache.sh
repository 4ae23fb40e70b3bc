#!/usr/bin/env bash
# The kernel's write-back cache (`-o writeback_cache`, issue 17 direction 4), measured A/B,
# run by hand, not part of CI. One fresh `rustre local` cluster (2 OSTs, the MDS as
# shipped) and two mounts of it, one without the option ("off") and one with it ("on"),
# the same binary and the same servers. Each round runs every measurement on both mounts,
# the order alternating between rounds (off then on, then on then off); the table shows
# medians, the on/off ratio and the ratio within each round (with its median).
#
#   scripts/bench-wbcache.sh [BIN]      # default target/release/rustre
#   ROUNDS=5 SMALL_FILES=2000 TREE_SRC=/usr/include FIO_MIB=64 DD_MIB=1024   # defaults
#
# Measurements (each starts from dropped caches and ends with its files removed):
#   small_files   files/s: one python process creates, writes 4 KiB to and closes each file
#   tar_x         s: `tar -xf` of a tarball of TREE_SRC
#   fio_randwrite IOPS: 4 KiB random writes (psync) over a FIO_MIB file, with the final
#                 fsync counted (wall time of the whole fio run, layout excluded)
#   dd_seq        MiB/s: `dd bs=1M count=DD_MIB conv=fsync` of zeros to a new file
#
# Needs root (drop_caches, mounts), python3, tar, fio and dd. Everything lives under one
# temp directory on the local disk, removed at the end.
set -uo pipefail
ROUNDS=${ROUNDS:-5}
SMALL_FILES=${SMALL_FILES:-2000}
TREE_SRC=${TREE_SRC:-/usr/include}
FIO_MIB=${FIO_MIB:-64}
DD_MIB=${DD_MIB:-1024}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$REPO/target/release/rustre}
[ "$(id -u)" = 0 ] || { echo "bench-wbcache: run as root" >&2; exit 2; }
for c in python3 tar fio dd fusermount3; do
  command -v "$c" >/dev/null || { echo "bench-wbcache: missing $c" >&2; exit 2; }
done
[ -x "$BIN" ] || { echo "bench-wbcache: no binary at $BIN (cargo build --release)" >&2; exit 2; }
TMP=$(mktemp -d /var/tmp/rustre-bench-wbcache.XXXXXX)
PID=""
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do mountpoint -q "$m" && { umount "$m" || umount -l "$m"; }; done
  [ -n "$PID" ] && { kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null; }
  rm -rf "$TMP"
}
trap cleanup EXIT
cp "$BIN" "$TMP/rustre"
BIN=$TMP/rustre
tar --sort=name --numeric-owner -C "$TREE_SRC" -cf "$TMP/tree.tar" . || exit 1
echo "rustre $("$BIN" --version) from ${1:-$REPO/target/release/rustre}; git $(git -C "$REPO" rev-parse --short HEAD)$(git -C "$REPO" diff --quiet || echo +dirty)"
echo "tree: $TREE_SRC, $(tar tf "$TMP/tree.tar" | wc -l) entries, $(($(stat -c %s "$TMP/tree.tar") >> 20)) MiB; $ROUNDS rounds"

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One round on mount $2 for target $1: prints "target metric value" lines.
suite() {
  local t=$1 d=$2/run t0 s
  mkdir -p "$d"
  drop
  t0=$(now)
  python3 - "$d/small" "$SMALL_FILES" <<'EOF' || echo "$t small_files ERR"
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
block = b"x" * 4096
for i in range(n):
    fd = os.open(f"{d}/f{i:05}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, block)
    os.close(fd)
EOF
  s=$(since "$t0"); echo "$t small_files $(echo "$SMALL_FILES / $s" | bc -l)"
  rm -rf "$d/small"
  drop
  mkdir "$d/tree"
  t0=$(now); tar -xf "$TMP/tree.tar" -C "$d/tree" || echo "$t tar_x ERR"; echo "$t tar_x $(since "$t0")"
  rm -rf "$d/tree"
  # fio lays the file out first (not timed), then the timed run rewrites it at random.
  fio --name=lay --filename="$d/fio" --rw=write --bs=1M --size="${FIO_MIB}M" --end_fsync=1 \
    >/dev/null || echo "$t fio_randwrite ERR"
  drop
  t0=$(now)
  fio --name=rw --filename="$d/fio" --rw=randwrite --bs=4k --size="${FIO_MIB}M" \
    --ioengine=psync --end_fsync=1 --randrepeat=1 >/dev/null || echo "$t fio_randwrite ERR"
  s=$(since "$t0"); echo "$t fio_randwrite $(echo "$FIO_MIB * 256 / $s" | bc -l)"
  rm -f "$d/fio"
  drop
  t0=$(now)
  dd if=/dev/zero of="$d/dd" bs=1M count="$DD_MIB" conv=fsync status=none || echo "$t dd_seq ERR"
  s=$(since "$t0"); echo "$t dd_seq $(echo "$DD_MIB / $s" | bc -l)"
  rm -f "$d/dd"
  rmdir "$d"
}

mkdir -p "$TMP/data" "$TMP/off" "$TMP/on"
P=$(port)
"$BIN" local --data "$TMP/data" --listen "127.0.0.1:$P" --mgs "127.0.0.1:$P" --osts 2 \
  >"$TMP/log" 2>&1 &
PID=$!
for _ in $(seq 1 50); do
  "$BIN" --mgs "127.0.0.1:$P" --secret-file "$TMP/data/cluster.secret" status 2>/dev/null |
    grep -q '^OST0001 .* up' && break
  sleep 0.2
done
for t in off on; do
  opts="secret_file=$TMP/data/cluster.secret"
  [ "$t" = on ] && opts="$opts,writeback_cache"
  "$BIN" mount "127.0.0.1:$P" "$TMP/$t" -o "$opts" || exit 1
  MOUNTS+=("$TMP/$t")
done
: >"$TMP/results"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then order="off on"; else order="on off"; fi
  for t in $order; do suite "$t" "$TMP/$t" | tee -a "$TMP/results"; done
done
python3 - "$TMP/results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    t, m, v = line.split()
    if v != "ERR":
        rows.setdefault(m, {}).setdefault(t, []).append(float(v))
units = {"small_files": "files/s", "tar_x": "s", "fio_randwrite": "IOPS", "dd_seq": "MiB/s"}
# The load of a shared machine drifts: each round's on/off ratio compares runs made a
# minute apart, and their median is the figure to quote.
print("| metric (median) | off | on | on/off | on/off by round (median) | off runs | on runs |")
print("|---|---:|---:|---:|---|---|---|")
for m, per in rows.items():
    off_runs, on_runs = per.get("off", []), per.get("on", [])
    off = statistics.median(off_runs) if off_runs else 0
    on = statistics.median(on_runs) if on_runs else 0
    paired = [b / a for a, b in zip(off_runs, on_runs) if a]
    by_round = " ".join(f"{r:.2f}" for r in paired)
    med = f" ({statistics.median(paired):.2f})" if paired else ""
    runs = lambda v: " ".join(f"{x:.1f}" for x in v)
    ratio = f"{on / off:.2f}" if off else "-"
    print(f"| {m} ({units.get(m, '')}) | {off:.1f} | {on:.1f} | {ratio} | {by_round}{med} | {runs(off_runs)} | {runs(on_runs)} |")
EOF
