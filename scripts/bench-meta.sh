#!/usr/bin/env bash
# Metadata benchmark (issue 5), run by hand, not part of CI. See docs/benchmarks.md.
#
#   scripts/bench-meta.sh             # 3 runs, 10,000 files per process, ~21 minutes here
#   QUICK=1 scripts/bench-meta.sh     # 1 run, 2,000 files per process
#   BIG=1 scripts/bench-meta.sh       # also: 1,000,000 entries in one rustre directory
#   BIG=only scripts/bench-meta.sh    # only that (BIG_N=entries, BIG_NP=processes)
#
# mdtest-style phases — create (empty files), stat, readdir (list and lstat every entry, as
# `ls -l`), rename (in place), unlink — with 1 process, 4 processes each in its own directory,
# and 4 processes in one shared directory; FILES files per process. One invocation measures
# a local directory, a bindfs passthrough and a rustre mount (fresh `rustre local` cluster,
# 2 OSTs), runs interleaved. Each phase starts and ends on a barrier of all processes; the
# driver waits GAP seconds (default 1.5) before each phase so that the FUSE attribute and
# entry caches (1 s on both bindfs and rustre) have expired. Needs root.
set -uo pipefail
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
BIG=${BIG:-0}
BIG_N=${BIG_N:-1000000}
BIG_NP=${BIG_NP:-4}
GAP=${GAP:-1.5}
if [ "$QUICK" = 1 ]; then FILES=${FILES:-2000}; else FILES=${FILES:-10000}; fi
BENCH_COMMAND="QUICK=$QUICK RUNS=$RUNS FILES=$FILES BIG=$BIG$([ "$BIG" != 0 ] && echo " BIG_N=$BIG_N BIG_NP=$BIG_NP") scripts/bench-meta.sh"
export STEP_TIMEOUT

bench_init meta

PHASES=(create stat readdir rename unlink)
unit_of() { [ "$1" = readdir ] && echo entries/s || echo ops/s; }

# meta_variant TARGET DIR NP SHARED LABEL
meta_variant() {
  local t=$1 d=$2 np=$3 shared=$4 label=$5 ph
  mkdir -p "$d"
  if step "metadata $label [$t]" python3 "$BENCH_PY" meta "$d" "$np" "$FILES" "$shared" "$GAP"; then
    for ph in "${PHASES[@]}"; do
      record "$ph, $label" "$(unit_of "$ph")" "$t" "$(python3 "$BENCH_PY" metaget "$STEP_OUT" "$ph")"
    done
    log "  $label [$t]: $(cat "$STEP_OUT")"
  else
    for ph in "${PHASES[@]}"; do record "$ph, $label" "$(unit_of "$ph")" "$t" ERR; done
  fi
  rm -rf "$d"
}

meta_suite() {
  local t=$1 d=$2
  meta_variant "$t" "$d/np1" 1 0 "1 proc"
  meta_variant "$t" "$d/np4" 4 0 "4 procs, own dirs"
  meta_variant "$t" "$d/np4s" 4 1 "4 procs, shared dir"
}

if [ "$BIG" != only ]; then
  LOCAL_DIR=$(start_local local)
  start_bindfs bindfs
  start_rustre rustre 2
  for run in $(seq 1 "$RUNS"); do
    log "=== run $run of $RUNS ($FILES files per process) ==="
    meta_suite local "$LOCAL_DIR/r$run"
    meta_suite bindfs "$BINDFS_MNT/r$run"
    meta_suite rustre "$R_MNT/r$run"
  done
  stop_rustre rustre
  unmount_fs "$BINDFS_MNT"
fi

if [ "$BIG" != 0 ]; then
  log "=== big directory: $BIG_N entries in one rustre directory, $BIG_NP processes ==="
  start_rustre big 2
  mkdir "$R_MNT/big"
  vmhwm_reset "$R_SPID"
  vmhwm_reset "$R_CPID"
  # Sample memory while it runs too (VmHWM is the peak anyway; this shows the growth).
  (while kill -0 "$R_SPID" 2>/dev/null; do
    echo "$(date +%T) server_rss_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$R_SPID/status") client_rss_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$R_CPID/status" 2>/dev/null)"
    sleep 10
  done >"$BENCH_TMP/logs/big-rss.log") &
  SAMPLER=$!
  BENCH_CHILDREN+=("$SAMPLER")
  STEP_TIMEOUT=${BIG_TIMEOUT:-3600}
  if step "create $BIG_N in one directory [rustre]" python3 "$BENCH_PY" bigdir "$R_MNT/big" "$BIG_N" "$BIG_NP"; then
    log "  $(cat "$STEP_OUT")"
    read -r first last total < <(python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(j["tenths"][0], j["tenths"][-1], j["total_s"])' "$STEP_OUT")
    record "big dir: create rate, first 10%" ops/s rustre "$first"
    record "big dir: create rate, last 10%" ops/s rustre "$last"
    record "big dir: last 10% / first 10%" ratio rustre "$(awk -v a="$last" -v b="$first" 'BEGIN { printf "%.2f", a / b }')"
    record "big dir: create $BIG_N, total" s rustre "$total"
    verdict=$(awk -v a="$last" -v b="$first" 'BEGIN { r = a / b; print (r >= 0.8 && r <= 1.25) ? "PASS" : "FAIL" }')
    log "  create rate first 10% $first/s, last 10% $last/s: $verdict (must be within 20%)"
    echo "big dir: create rate last/first 10% within 20%: $verdict" >>"$BENCH_TMP/notes.txt"
  else
    record "big dir: create rate, first 10%" ops/s rustre ERR
  fi
  record "big dir: server peak memory after create (VmHWM)" MiB rustre "$(vmhwm_mib "$R_SPID")"
  record "big dir: client peak memory after create (VmHWM)" MiB rustre "$(vmhwm_mib "$R_CPID")"
  drop_caches
  t0=$(now)
  if step "ls -l | wc -l of $BIG_N entries [rustre]" bash -o pipefail -c "ls -l '$R_MNT/big' | wc -l"; then
    t1=$(now)
    lines=$(cat "$STEP_OUT")
    record "big dir: ls -l | wc -l (cold)" s rustre "$(elapsed "$t0" "$t1")"
    record "big dir: ls -l lines (expected $((BIG_N + 1)))" lines rustre "$lines"
    if [ "$lines" -eq $((BIG_N + 1)) ]; then verdict=PASS; else
      verdict="FAIL ($lines lines)"
      BENCH_ERRORS=$((BENCH_ERRORS + 1))
    fi
    log "  ls -l | wc -l: $lines lines in $(elapsed "$t0" "$t1") s: $verdict"
    echo "big dir: ls -l | wc -l counts $BIG_N entries + 'total': $verdict" >>"$BENCH_TMP/notes.txt"
  else
    record "big dir: ls -l | wc -l (cold)" s rustre ERR
  fi
  record "big dir: server peak memory, whole test (VmHWM)" MiB rustre "$(vmhwm_mib "$R_SPID")"
  record "big dir: client peak memory, whole test (VmHWM)" MiB rustre "$(vmhwm_mib "$R_CPID")"
  kill "$SAMPLER" 2>/dev/null
  cp "$BENCH_TMP/logs/big-rss.log" "$BENCH_OUT/$BENCH_STAMP-big-rss.log"
  # Tearing the cluster down removes the entries far faster than unlinking them.
  stop_rustre big
fi

print_table bench-meta local bindfs rustre
[ "$BENCH_ERRORS" -eq 0 ] || { warn "$BENCH_ERRORS step(s) failed; see the errors above"; exit 1; }
