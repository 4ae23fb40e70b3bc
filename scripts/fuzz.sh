#!/usr/bin/env bash
# Fuzzes what rustre reads from the network: the frame header, the frame reader, and every
# message decoder (handshake, MGS/MDS/OSS requests and responses), plus the MDS's name and
# layout checks. Builds the cargo-fuzz targets under fuzz/ (libFuzzer + AddressSanitizer),
# writes a seed corpus of valid messages, then runs every target for FUZZ_SECONDS. Fails if
# any target crashes, hangs or runs out of memory, and says how to reproduce it.
# See docs/fuzzing.md.
#
# Environment:
#   FUZZ_SECONDS    seconds per target (default 20)
#   FUZZ_JOBS       targets fuzzed at once (default: the number of CPUs)
#   FUZZ_TARGETS    space-separated subset of targets (default: all)
#   FUZZ_TOOLCHAIN  nightly | stable: build with rustup's nightly, or with the default
#                   toolchain and RUSTC_BOOTSTRAP=1 (sanitizers take nightly-only flags).
#                   Default: nightly when rustup has it, else stable.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds=${FUZZ_SECONDS:-20}
jobs=${FUZZ_JOBS:-$(nproc)}
start=$SECONDS

command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz

toolchain=${FUZZ_TOOLCHAIN:-}
if [ -z "$toolchain" ]; then
  if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=nightly
  else
    toolchain=stable
  fi
fi
case "$toolchain" in
  nightly) plus=(+nightly) fuzz=(cargo +nightly fuzz) ;;
  # The default toolchain, allowed nightly flags (-Zsanitizer).
  stable) plus=() fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz) ;;
  *)
    echo "fuzz: FUZZ_TOOLCHAIN must be nightly or stable, not $toolchain" >&2
    exit 2
    ;;
esac

# The fuzz crate is its own workspace: check its formatting here, as test.sh does the rest.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

targets=${FUZZ_TARGETS:-$("${fuzz[@]}" list)}
echo "fuzz: building with $toolchain; targets:" $targets
"${fuzz[@]}" build
build_done=$SECONDS
echo "fuzz: build took $((build_done - start)) s"

# Seeds: valid encoded messages of every kind, written into each target's corpus.
cargo run -q -p rustre-proto --example fuzz_seeds -- fuzz/corpus

triple=$(rustc "${plus[@]}" -vV | sed -n 's/^host: //p')
bin=fuzz/target/$triple/release
logs=fuzz/target/logs
mkdir -p "$logs"
marker=$logs/.start
touch "$marker"

# One target: libFuzzer stops itself after `seconds`; `timeout` is the wall-clock backstop
# (a hang inside one input is caught earlier by -timeout and reported as a crash).
run_one() {
  local t=$1
  local dirs=("fuzz/corpus/$t")
  if [ -d "fuzz/seeds/$t" ]; then dirs+=("fuzz/seeds/$t"); fi
  mkdir -p "fuzz/corpus/$t" "fuzz/artifacts/$t"
  local rc=0
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_odr_violation=0} \
    timeout -k 10 $((seconds + 60)) "$bin/$t" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$t/" "${dirs[@]}" >"$logs/$t.log" 2>&1 || rc=$?
  echo "$rc" >"$logs/$t.rc"
}

for t in $targets; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  run_one "$t" &
done
wait

failed=0
for t in $targets; do
  rc=$(cat "$logs/$t.rc")
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1 || true)
  if [ "$rc" = 0 ]; then
    printf 'fuzz: %-16s ok   %10s runs  %s\n' "$t" "${runs:-?}" "$cov"
    continue
  fi
  failed=1
  printf 'fuzz: %-16s FAILED (exit %s), log %s\n' "$t" "$rc" "$logs/$t.log"
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "  killed by the wall-clock timeout"; fi
  # The panic message (or the sanitizer's report) and libFuzzer's verdict; the log has it all.
  {
    sed -n '/panicked at/,/^stack backtrace:/p' "$logs/$t.log" | grep -v '^stack backtrace:' | head -20
    grep -A 15 'ERROR: AddressSanitizer' "$logs/$t.log" | head -16
    grep -E '^SUMMARY: |ERROR: libFuzzer' "$logs/$t.log" | head -2
  } 2>/dev/null | sed 's/^/  | /' || true
  found=$(find "fuzz/artifacts/$t" -type f -newer "$marker" 2>/dev/null || true)
  for a in $found; do
    echo "  crashing input: $a"
    echo "  reproduce:      ${fuzz[*]} run $t $a"
  done
done
echo "fuzz: $(echo $targets | wc -w) targets x ${seconds}s, $((SECONDS - start)) s in all (build $((build_done - start)) s)"
exit $failed
