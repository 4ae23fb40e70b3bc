#!/usr/bin/env bash
# Runs every check and test of rustre: formatting, clippy (also with the FoundationDB
# backend, type-checked only since libfdb_c cannot be linked here), unit tests, KV
# conformance, multi-process cluster tests, the FUSE end-to-end tests, the deterministic
# simulation and a short fuzzing run.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Prints how long the run has taken so far before each step (CI must stay under 30 min).
step() { echo "=== [$((SECONDS / 60))m$((SECONDS % 60))s] $*"; }
SECONDS=0
step install-deps
./scripts/install-deps.sh

step house rules
# Roles side by side, client and server crates apart, no source file over 800 lines
# (docs/architecture.md, "The house").
./scripts/check-layout.sh
step fmt and clippy
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo clippy --workspace --features fdb --all-targets -- -D warnings
step cargo test --workspace
# Two test threads: the end-to-end tests start clusters and mounts of their own.
cargo test --workspace -- --test-threads=2
step data on the MDS off
# pjdfstest and the two-mount data tests again with data on the MDS off (every file's bytes
# in its objects, docs/data-on-mds.md): the suite above ran with it on, the default. (fsx
# 100k with it off: RUSTRE_TEST_INLINE_MAX=0 cargo test --test mount fsx_100000 -- --ignored,
# about 6 minutes, by hand.)
RUSTRE_TEST_INLINE_MAX=0 cargo test --test mount pjdfstest_passes
RUSTRE_TEST_INLINE_MAX=0 cargo test --test coherence --test kept_attrs -- --test-threads=2 \
    each_open_reads_every_byte an_open_right_after a_tree_unpacked_by_tar
step fsx 100k
# The long runs, side by side (each waits on FUSE round trips more than on the CPUs, and none
# asserts a time): fsx for 100,000 operations on a mount with the page cache and write-back
# on, 100,000 model-checked operations mixing buffered, O_DIRECT and mmap I/O (tests/io_mix),
# and `rustre find`/`du` against GNU find/du on a mount of a 100,000-file tree
# (tests/find_du).
cargo test --test io_mix --test find_du --no-run
io_mix_log=$(mktemp)
find_du_log=$(mktemp)
cargo test --test io_mix -- --ignored >"$io_mix_log" 2>&1 &
io_mix_pid=$!
cargo test --test find_du -- --ignored >"$find_du_log" 2>&1 &
find_du_pid=$!
cargo test --test mount -- --ignored
long_failed=0
for run in "io_mix:$io_mix_pid:$io_mix_log" "find_du:$find_du_pid:$find_du_log"; do
    IFS=: read -r name pid log <<<"$run"
    if wait "$pid"; then
        tail -n 3 "$log"
    else
        cat "$log"
        echo "the long $name run failed" >&2
        long_failed=1
    fi
done
[ "$long_failed" = 0 ]
step simulation
# Deterministic simulation (docs/simulation.md): its own workspace, so the test-only bug
# and turmoil never reach the builds above; SIM_SEEDS seeds (default 24), replay, the
# injected bug caught.
(cd sim && cargo fmt -- --check && cargo clippy --all-targets -- -D warnings &&
    cargo test --release)
step fuzzing
# Fuzzing: every wire decoder and the frame reader, 5 s per target, one per CPU at a time
# (docs/fuzzing.md; about 2.5 minutes with the build on 2 cores).
FUZZ_SECONDS=${FUZZ_SECONDS:-5} ./scripts/fuzz.sh
step done
