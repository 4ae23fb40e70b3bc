#!/usr/bin/env bash
# Installs what building and testing rustre needs on Debian 12: FUSE 3, the tools the
# end-to-end tests drive (rsync, git, sqlite3, attr, acl, fio, bindfs, python3, setcap from
# libcap2-bin; promtool from prometheus, for tests/metrics.rs; mkfs.ext4 and loop mounts
# for the small OST of tests/space.rs), libclang for the
# FoundationDB bindings' type check, a C++ compiler for libFuzzer, the POSIX test suites
# pjdfstest and fsx, cargo-fuzz (scripts/fuzz.sh), and cargo-deb with binutils' strip and
# dpkg-deb for the Debian package (scripts/build-deb.sh, tests/ops.rs). Idempotent: skips
# what is already there.
set -euo pipefail

need_apt=()
for pkg in fuse3 libfuse3-dev pkg-config libclang-dev g++ rsync git sqlite3 attr acl fio bindfs python3 libcap2-bin iproute2 util-linux e2fsprogs mount binutils dpkg; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need_apt[@]}"
fi
# Only promtool is needed from prometheus: none of the exporters it recommends.
if ! dpkg -s prometheus >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends prometheus
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install-deps: cargo is missing; install Rust (rustup) first" >&2
  exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"
command -v pjdfstest >/dev/null 2>&1 || cargo install --locked pjdfstest
command -v fsx >/dev/null 2>&1 || cargo install --locked fsx
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
# Pinned: later versions may refuse what scripts/build-deb.sh relies on (about 1 min here).
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb --version 3.8.0
modprobe fuse 2>/dev/null || true
