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
step tests
# Every test binary of the workspace (unit, KV conformance, multi-process cluster and FUSE
# end-to-end tests), the long runs and the runs with data on the MDS off, three binaries at
# a time, two test threads each, the longest first (scripts/run-tests.py says which):
# - the long runs (tests marked #[ignore] for their length): fsx for 100,000 operations on a
#   mount with the page cache and write-back on, a 4 GiB file through a 64 MiB client
#   cache, 100,000 model-checked operations mixing buffered, O_DIRECT and mmap I/O
#   (tests/io_mix), `rustre find`/`du` against GNU find/du on a 100,000-file tree
#   (tests/find_du);
# - pjdfstest and the two-mount data tests again with data on the MDS off (every file's
#   bytes in its objects, docs/data-on-mds.md): the rest runs with it on, the default. (fsx
#   100k with it off: RUSTRE_TEST_INLINE_MAX=0 cargo test --test mount fsx_100000 --
#   --ignored, about 6 minutes, by hand.)
python3 scripts/run-tests.py
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
