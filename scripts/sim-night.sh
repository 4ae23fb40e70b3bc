#!/usr/bin/env bash
# A night of deterministic simulation (docs/simulation.md): SIM_NIGHT_SEEDS heavy seeds
# (default 1000; harder faults, `--heavy`) of SIM_NIGHT_OPS operations each (default 200,
# the suite runs 60), from SIM_NIGHT_FROM (default: the date as YYYYMMDD × 10,000, so each
# night tries seeds no night tried before), in SIM_NIGHT_JOBS processes (default 1: other
# work shares the machine). About 4 s a seed on one core, so an hour or so for the default.
# SIM_NIGHT_ARGS adds options of sim/src/main.rs (e.g. `--bug verifier` or `--bug
# old-version`, to see the checks catch an injected bug).
#
# Prints each failing seed's report as it comes, and at the end the failing seeds with the
# command that replays each. Exits 1 if any seed failed (or a run stopped before its end).
set -euo pipefail
cd "$(dirname "$0")/../sim"
export PATH="$HOME/.cargo/bin:$PATH"
SEEDS=${SIM_NIGHT_SEEDS:-1000}
OPS=${SIM_NIGHT_OPS:-200}
FROM=${SIM_NIGHT_FROM:-$(($(date +%Y%m%d) * 10000))}
JOBS=${SIM_NIGHT_JOBS:-1}
read -r -a EXTRA <<<"${SIM_NIGHT_ARGS:-}"
cargo build --release --quiet
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
echo "sim-night: seeds $FROM..$((FROM + SEEDS - 1)), $OPS operations each, heavy faults, $JOBS jobs"
per=$(((SEEDS + JOBS - 1) / JOBS))
jobs_started=0
for ((j = 0; j < JOBS; j++)); do
  from=$((FROM + j * per))
  count=$((SEEDS - j * per < per ? SEEDS - j * per : per))
  ((count > 0)) || break
  # Each job's log, and its failure reports on the terminal as they come (the replay
  # commands are listed once, at the end).
  ./target/release/rustre-sim --seeds "$count" --from "$from" --ops "$OPS" --heavy --quiet \
    "${EXTRA[@]}" 2>/dev/null | tee "$logs/$j" |
    awk '/^  cd sim/ { next } /^seed [0-9]+ failed|^  / { print; fflush() }' &
  jobs_started=$((jobs_started + 1))
done
wait
finished=$(cat "$logs"/* | grep -cE '^[0-9]+ (of [0-9]+ )?seeds (passed|failed)' || true)
failed=$(cat "$logs"/* | grep '^  cd sim && cargo run' || true)
if [ -n "$failed" ]; then
  echo "sim-night: $(echo "$failed" | wc -l) of $SEEDS seeds failed; replay each with:"
  echo "$failed"
fi
if [ "$finished" != "$jobs_started" ]; then
  echo "sim-night: a run stopped before its end; its last lines:" >&2
  tail -n 5 "$logs"/* >&2
  exit 1
fi
[ -z "$failed" ] || exit 1
echo "sim-night: all $SEEDS seeds passed"
