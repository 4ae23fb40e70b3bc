#!/usr/bin/env bash
# Quick start: install what is missing, build rustre, start a single-node cluster (MGS on
# 127.0.0.1:9400, MDS with the embedded store, two OSTs) in the background and mount it.
#   RUSTRE_DATA  data directory        (default /var/lib/rustre)
#   RUSTRE_LOG   log file              (default /var/log/rustre-local.log)
#   RUSTRE_MNT   mount point           (default /mnt/rustre)
#   RUSTRE_SECRET_FILE  cluster secret (default /etc/rustre/cluster.secret, the path every
#                rustre command and mount reads by default: created here if missing, mode 0600)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
data=${RUSTRE_DATA:-/var/lib/rustre}
log=${RUSTRE_LOG:-/var/log/rustre-local.log}
mnt=${RUSTRE_MNT:-/mnt/rustre}
export RUSTRE_SECRET_FILE=${RUSTRE_SECRET_FILE:-/etc/rustre/cluster.secret}

./scripts/install-deps.sh
cargo build --release
bin=$PWD/target/release/rustre
ln -sf "$bin" /usr/local/bin/rustre
ln -sf "$bin" /sbin/mount.fuse.rustre

if "$bin" status >/dev/null 2>&1; then
  echo "a rustre cluster already answers on 127.0.0.1:9400"
else
  mkdir -p "$data"
  # `rustre local` creates the secret if it is missing; `rustre status` and mount(8) below
  # (and later ones, without options) read it from the default path.
  nohup "$bin" local --data "$data" --osts 2 --secret-file "$RUSTRE_SECRET_FILE" >"$log" 2>&1 &
  for _ in $(seq 1 50); do
    "$bin" status 2>/dev/null | grep -q '^OST0001 .* up' && break
    sleep 0.2
  done
fi
"$bin" status
mkdir -p "$mnt"
if ! mountpoint -q "$mnt"; then
  mount -t fuse.rustre 127.0.0.1:9400 "$mnt" -o allow_other
fi
df -h "$mnt"
echo "rustre is mounted on $mnt"
