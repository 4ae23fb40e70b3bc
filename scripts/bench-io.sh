#!/usr/bin/env bash
# Data benchmark (issue 4), run by hand, not part of CI. See docs/benchmarks.md.
#
#   scripts/bench-io.sh            # full run: 3 runs of each measurement, ~12 minutes here
#   QUICK=1 scripts/bench-io.sh    # one run of each, smaller sizes, a few minutes
#
# One invocation measures three targets side by side, runs interleaved (run 1 on local,
# bindfs, rustre, then run 2, ...): a local directory, a bindfs passthrough of a local
# directory, and a rustre mount of a fresh `rustre local` cluster with 2 OSTs (default
# layout), all under one temp directory on the local disk. Then, rustre only, a fresh
# cluster with 4 OSTs: sequential write/read with stripe count 1, 2 and 4, and the peak
# memory (VmHWM) of the client and the server process while reading a 4 GiB file.
# Prints one table (medians), keeps it under $BENCH_OUT. Needs root. Settings: see
# scripts/bench-lib.sh.
set -uo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BENCH_COMMAND="QUICK=$QUICK RUNS=$RUNS scripts/bench-io.sh"

if [ "$QUICK" = 1 ]; then
  SEQ=256M SEQ_B=$((256 << 20)) MJ=64M RAND=64M RAND_RT=10 NDIRS=10 PER=100 MEM=1G MEM_B=$((1 << 30))
else
  SEQ=1G SEQ_B=$((1 << 30)) MJ=256M RAND=256M RAND_RT=30 NDIRS=50 PER=100 MEM=4G MEM_B=$((4 << 30))
fi
TREE_SRC=${TREE_SRC:-/usr/include}
TREE_EXCLUDE=${TREE_EXCLUDE:-./node}
FIO=(--ioengine=psync --direct=0 --group_reporting)

bench_init io

# The source tree for tar: made once from TREE_SRC, deterministically (sorted, numeric ids).
TARBALL="$BENCH_TMP/tree.tar"
tar --sort=name --numeric-owner -C "$TREE_SRC" --exclude="$TREE_EXCLUDE" -cf "$TARBALL" . ||
  die "cannot make the tarball from $TREE_SRC"
TREE_INFO="$TREE_SRC without $TREE_EXCLUDE: $(python3 "$BENCH_PY" tarinfo "$TARBALL"), tarball $(($(stat -c %s "$TARBALL") >> 20)) MiB"
log "tar tree: $TREE_INFO"

# A timed command: records seconds (lower is better).
timed() {
  local metric=$1 target=$2
  shift 2
  local t0 t1
  t0=$(now)
  if step "$metric [$target]" "$@"; then
    t1=$(now)
    record "$metric" s "$target" "$(elapsed "$t0" "$t1")"
    log "  $metric [$target]: $(elapsed "$t0" "$t1") s"
  else
    record "$metric" s "$target" ERR
  fi
}

# One run of every shared measurement on TARGET in directory D.
io_suite() {
  local t=$1 d=$2/run
  mkdir -p "$d" || { warn "cannot mkdir $d"; return; }
  log "$t: sequential"
  fio_step "seq write $SEQ, fsync at end" MB/s "$t" bw --name=seqw --filename="$d/seq.dat" \
    --rw=write --bs=1M --size="$SEQ" --end_fsync=1 "${FIO[@]}"
  drop_caches
  fio_step "seq read $SEQ (cold)" MB/s "$t" bw --name=seqr --filename="$d/seq.dat" \
    --rw=read --bs=1M --size="$SEQ" "${FIO[@]}"
  rm -f "$d/seq.dat"

  fio_step "4 jobs seq write 4x$MJ, fsync at end" MB/s "$t" bw --name=mj --directory="$d" \
    --numjobs=4 --rw=write --bs=1M --size="$MJ" --end_fsync=1 "${FIO[@]}"
  drop_caches
  fio_step "4 jobs seq read 4x$MJ (cold)" MB/s "$t" bw --name=mj --directory="$d" \
    --numjobs=4 --rw=read --bs=1M --size="$MJ" "${FIO[@]}"
  rm -f "$d"/mj.*

  log "$t: random"
  step "lay out $RAND [$t]" fio --name=lay --filename="$d/rand.dat" --rw=write --bs=1M \
    --size="$RAND" --end_fsync=1 "${FIO[@]}"
  drop_caches
  fio_step "4 KiB random read, $RAND file (cold)" IOPS "$t" iops --name=rr \
    --filename="$d/rand.dat" --rw=randread --bs=4k --size="$RAND" --runtime="$RAND_RT" "${FIO[@]}"
  fio_step "4 KiB random write, $RAND file, fsync at end" IOPS "$t" iops --name=rw \
    --filename="$d/rand.dat" --rw=randwrite --bs=4k --size="$RAND" --runtime="$RAND_RT" \
    --end_fsync=1 "${FIO[@]}"
  rm -f "$d/rand.dat"

  log "$t: small files"
  local n=$((NDIRS * PER))
  if step "4 KiB files written [$t]" python3 "$BENCH_PY" smallw "$d" "$NDIRS" "$PER"; then
    record "$n x 4 KiB files written ($NDIRS dirs)" files/s "$t" "$(cat "$STEP_OUT")"
    drop_caches
    if step "4 KiB files read [$t]" python3 "$BENCH_PY" smallr "$d" "$NDIRS" "$PER"; then
      record "$n x 4 KiB files read (cold)" files/s "$t" "$(cat "$STEP_OUT")"
    else
      record "$n x 4 KiB files read (cold)" files/s "$t" ERR
    fi
  else
    record "$n x 4 KiB files written ($NDIRS dirs)" files/s "$t" ERR
    record "$n x 4 KiB files read (cold)" files/s "$t" ERR
  fi
  rm -rf "$d"/d[0-9][0-9][0-9]

  log "$t: tar"
  cat "$TARBALL" >/dev/null
  mkdir -p "$d/tree"
  timed "tar x (lower is better)" "$t" tar -xf "$TARBALL" -C "$d/tree"
  # bindfs 1.14.7 (libfuse 2) ignores utimensat with an UTIME_OMIT atime, which is how tar
  # sets mtimes: its mtimes are the extraction time, so they are not checked there.
  step "tree check after tar x [$t]" python3 "$BENCH_PY" verify-tree "$d/tree" "$TARBALL" \
    "$([ "$t" = bindfs ] && echo 0 || echo 1)"
  drop_caches
  timed "tar c (cold, lower is better)" "$t" bash -o pipefail -c "tar -cf - -C '$d/tree' . | wc -c"
  timed "rm -rf (lower is better)" "$t" rm -rf "$d/tree"
  rm -rf "$d"
}

# --- the three targets, runs interleaved -----------------------------------------------
LOCAL_DIR=$(start_local local)
start_bindfs bindfs
start_rustre rustre 2
for run in $(seq 1 "$RUNS"); do
  log "=== run $run of $RUNS ==="
  io_suite local "$LOCAL_DIR"
  io_suite bindfs "$BINDFS_MNT"
  io_suite rustre "$R_MNT"
done
stop_rustre rustre
unmount_fs "$BINDFS_MNT"

# --- rustre only: stripe counts and client memory, 4 OSTs -----------------------------
start_rustre rustre4 4
for c in 1 2 4; do
  mkdir "$R_MNT/sc$c"
  # Retried: right after start the MDS may not know the OSTs yet and says ENOSPC.
  wait_for 15 "$RUSTRE" --mgs "$R_MGS" setstripe "/sc$c" -c "$c" -S 1M ||
    warn "cannot set stripe count $c on /sc$c: $("$RUSTRE" --mgs "$R_MGS" setstripe "/sc$c" -c "$c" -S 1M 2>&1)"
done
for run in $(seq 1 "$RUNS"); do
  log "=== stripe counts, run $run of $RUNS ==="
  for c in 1 2 4; do
    fio_step "seq write $SEQ, stripe count $c of 4 OSTs" MB/s rustre bw --name=sw \
      --filename="$R_MNT/sc$c/seq.dat" --rw=write --bs=1M --size="$SEQ" --end_fsync=1 "${FIO[@]}"
    got=$("$RUSTRE" --mgs "$R_MGS" getstripe "/sc$c/seq.dat" 2>&1 | awk '/^stripe_count:/ { print $2 }')
    [ "$got" = "$c" ] || warn "/sc$c/seq.dat has stripe count '$got', expected $c"
    drop_caches
    fio_step "seq read $SEQ (cold), stripe count $c of 4 OSTs" MB/s rustre bw --name=sr \
      --filename="$R_MNT/sc$c/seq.dat" --rw=read --bs=1M --size="$SEQ" "${FIO[@]}"
    rm -f "$R_MNT/sc$c/seq.dat"
  done
done

log "=== client memory: $MEM file, stripe count 4 ==="
BIG="$R_MNT/sc4/big.dat"
vmhwm_reset "$R_CPID"
vmhwm_reset "$R_SPID"
if step "write $MEM [rustre]" python3 "$BENCH_PY" bigw "$BIG" "$MEM_B"; then
  record "client peak memory writing $MEM (VmHWM)" MiB rustre "$(vmhwm_mib "$R_CPID")"
  record "server peak memory writing $MEM (VmHWM)" MiB rustre "$(vmhwm_mib "$R_SPID")"
  for run in $(seq 1 "$RUNS"); do
    drop_caches
    vmhwm_reset "$R_CPID"
    vmhwm_reset "$R_SPID"
    t0=$(now)
    if step "read $MEM [rustre]" dd if="$BIG" of=/dev/null bs=1M status=none; then
      t1=$(now)
      record "read $MEM (cold, dd bs=1M), stripe count 4" MB/s rustre \
        "$(rate "$((MEM_B / 1000000))" "$(elapsed "$t0" "$t1")")"
      record "client peak memory reading $MEM (VmHWM)" MiB rustre "$(vmhwm_mib "$R_CPID")"
      record "server peak memory reading $MEM (VmHWM)" MiB rustre "$(vmhwm_mib "$R_SPID")"
      log "  read $MEM: $(elapsed "$t0" "$t1") s, client VmHWM $(vmhwm_mib "$R_CPID") MiB, server $(vmhwm_mib "$R_SPID") MiB"
    else
      record "read $MEM (cold, dd bs=1M), stripe count 4" MB/s rustre ERR
    fi
  done
  drop_caches
  step "content check of $MEM [rustre]" python3 "$BENCH_PY" bigcheck "$BIG" "$MEM_B" &&
    log "  $MEM file content checked"
  rm -f "$BIG"
else
  record "client peak memory reading $MEM (VmHWM)" MiB rustre ERR
fi
stop_rustre rustre4

{
  echo
  echo "tar tree: $TREE_INFO"
  echo
} >&2
print_table bench-io local bindfs rustre
[ "$BENCH_ERRORS" -eq 0 ] || { warn "$BENCH_ERRORS step(s) failed; see the errors above"; exit 1; }
