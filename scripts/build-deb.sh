#!/usr/bin/env bash
# Builds the Debian package of rustre into target/debian/ with cargo-deb (installed by
# scripts/install-deps.sh): the binary, the mount helper link /sbin/mount.fuse.rustre, the
# systemd units, man pages and shell completions (made by the hidden `rustre gen-docs`).
#
#   scripts/build-deb.sh          a release build, then the package (for installing)
#   scripts/build-deb.sh --dev    the package of the debug binary the tests already built
#                                 (CI: no second full build; a larger, slower binary)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
profile=release
dir=release
if [ "${1:-}" = "--dev" ]; then
    profile=dev
    dir=debug
fi
if [ "$profile" = release ]; then
    cargo build --release --bin rustre
elif [ -z "${RUSTRE_BIN:-}" ] && [ ! -x target/debug/rustre ]; then
    cargo build --bin rustre
fi
# RUSTRE_BIN: a binary built elsewhere (tests/ops.rs passes the one under test).
bin=${RUSTRE_BIN:-target/$dir/rustre}
assets=target/deb-assets
rm -rf "$assets"
"$bin" gen-docs "$assets"
gzip -9n "$assets"/man/*.1
# mount(8) runs /sbin/mount.fuse.rustre for `-t fuse.rustre`: the binary under that name.
ln -s /usr/bin/rustre "$assets/mount.fuse.rustre"
# The binary is staged (and stripped) here, whichever profile built it: cargo-deb then only
# packs files (--no-build: its own build would be a second one).
strip -o "$assets/rustre" "$bin"
fast=()
[ "$profile" = dev ] && fast=(--fast)
cargo deb --no-build "${fast[@]}" --output target/debian/
