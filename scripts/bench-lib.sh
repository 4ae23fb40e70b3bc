# Shared helpers of scripts/bench-io.sh and scripts/bench-meta.sh; sourced, never run.
# Benchmarks are run by hand (see docs/benchmarks.md); they are not part of CI.
#
# What is here: a temp directory on the local disk with a cleanup trap (unmounts, ends the
# processes started here, removes the data, also on failure or Ctrl-C); the three targets
# (a local directory, a bindfs passthrough of one, a rustre mount of a fresh single-process
# cluster); steps bounded in time; results recorded as one TSV line per run; the final
# table (medians and ratios); and the Python driver (bench.py, written into the temp dir).
#
# Settings (environment):
#   QUICK=1          one run of each measurement, smaller sizes (a fast check)
#   RUNS=N           runs per measurement (default 3, QUICK: 1); the table shows the median
#   RUSTRE_BIN=PATH  rustre binary (default target/release/rustre; copied before use, so a
#                    rebuild during a run changes nothing)
#   RUSTRE_LOCAL_OPTS="--durable"  extra options of `rustre local`
#   RUSTRE_MOUNT_OPTS="attr_timeout=1"  `-o` options of `rustre mount`
#   BINDFS_OPTS="--multithreaded"  extra bindfs options (default: none, as in PEERS.md)
#   BENCH_TMPDIR=DIR where the temp directory goes (default /var/tmp: the local disk)
#   BENCH_OUT=DIR    where the result table and raw TSV are kept (default
#                    /var/tmp/rustre-bench-results)
#   STEP_TIMEOUT=S   longest a single step may take before it is killed and reported
#                    (default 600)

BENCH_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then RUNS=${RUNS:-1}; else RUNS=${RUNS:-3}; fi
STEP_TIMEOUT=${STEP_TIMEOUT:-600}
BENCH_OUT=${BENCH_OUT:-/var/tmp/rustre-bench-results}
RUSTRE_LOCAL_OPTS=${RUSTRE_LOCAL_OPTS:-}
RUSTRE_MOUNT_OPTS=${RUSTRE_MOUNT_OPTS:-}
BINDFS_OPTS=${BINDFS_OPTS:-}

BENCH_TMP=""
BENCH_MOUNTS=()
BENCH_PIDS=()
BENCH_CHILDREN=() # helper subshells of this script: ended unconditionally
BENCH_ERRORS=0
BENCH_STEP=0

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
warn() { printf '[%s] WARNING: %s\n' "$(date +%T)" "$*" >&2; }
die() {
  printf '[%s] FATAL: %s\n' "$(date +%T)" "$*" >&2
  exit 1
}

now() { date +%s.%N; }
# elapsed START END -> seconds with 3 decimals
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# rate COUNT SECONDS -> COUNT/SECONDS
rate() { awk -v n="$1" -v s="$2" 'BEGIN { if (s > 0) printf "%.1f", n / s; else print "ERR" }'; }

drop_caches() {
  sync
  echo 3 >/proc/sys/vm/drop_caches
}

# A TCP port nothing listens on right now.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Peak resident memory (VmHWM) of a process, in MiB.
vmhwm_mib() {
  awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo ERR
}
# Resets a process's VmHWM to its current RSS (Linux >= 4.0).
vmhwm_reset() { echo 5 >"/proc/$1/clear_refs"; }

# ---------------------------------------------------------------------------------------
# Setup and cleanup

bench_init() {
  local name=$1
  [ "$(id -u)" = 0 ] || die "run as root (drop_caches, mounts)"
  local c
  for c in fio bindfs python3 tar mountpoint timeout fusermount umount awk; do
    command -v "$c" >/dev/null 2>&1 || die "missing command: $c (apt-get install fio bindfs fuse3)"
  done
  modprobe fuse 2>/dev/null || true
  local bin=${RUSTRE_BIN:-$BENCH_REPO/target/release/rustre}
  [ -x "$bin" ] || die "no rustre binary at $bin: run 'cargo build --release' first (or set RUSTRE_BIN)"
  BENCH_TMP=$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/rustre-bench-$name.XXXXXX") || die "mktemp failed"
  trap bench_cleanup EXIT
  trap 'warn "interrupted"; exit 130' INT
  trap 'warn "terminated"; exit 143' TERM
  mkdir -p "$BENCH_TMP/bin" "$BENCH_TMP/logs" "$BENCH_OUT"
  cp "$bin" "$BENCH_TMP/bin/rustre"
  RUSTRE="$BENCH_TMP/bin/rustre"
  RESULTS="$BENCH_TMP/results.tsv"
  : >"$RESULTS"
  write_driver "$BENCH_TMP/bench.py"
  BENCH_PY="$BENCH_TMP/bench.py"
  BENCH_STARTED=$(date '+%Y-%m-%d %H:%M:%S %Z')
  BENCH_STAMP=$(date +%Y%m%d-%H%M%S)
  log "temp dir $BENCH_TMP ($(df -T "$BENCH_TMP" | awk 'NR == 2 { print $1, $2 }')); rustre $("$RUSTRE" --version 2>/dev/null) from $bin; git $(git -C "$BENCH_REPO" rev-parse --short HEAD 2>/dev/null)$(git -C "$BENCH_REPO" diff --quiet 2>/dev/null || echo +dirty)"
}

# Detaches a FUSE mount however it can: umount, then abort the connection, then lazily.
unmount_fs() {
  local mnt=$1 i
  mountpoint -q "$mnt" 2>/dev/null || return 0
  for i in 1 2 3; do
    umount "$mnt" 2>/dev/null && return 0
    sleep 1
  done
  warn "umount $mnt keeps failing (busy?); aborting its FUSE connection"
  local dev
  dev=$(mountpoint -d "$mnt" 2>/dev/null | cut -d: -f2)
  [ -n "$dev" ] && [ -e "/sys/fs/fuse/connections/$dev/abort" ] &&
    echo 1 >"/sys/fs/fuse/connections/$dev/abort"
  umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || warn "cannot unmount $mnt"
}

# Ends a process started here (by pid; checks it is still ours), TERM then KILL.
stop_pid() {
  local pid=$1 i
  [ -n "$pid" ] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  grep -q "$BENCH_TMP" "/proc/$pid/cmdline" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null
  for i in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    sleep 0.1
  done
  warn "pid $pid did not end on SIGTERM within 10 s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}

bench_cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  [ -n "$BENCH_TMP" ] || exit "$rc"
  log "cleaning up"
  for i in "${BENCH_CHILDREN[@]}"; do kill "$i" 2>/dev/null; done
  for ((i = ${#BENCH_MOUNTS[@]} - 1; i >= 0; i--)); do unmount_fs "${BENCH_MOUNTS[$i]}"; done
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${BENCH_PIDS[$i]}"; done
  if grep -q " $BENCH_TMP" /proc/mounts; then
    warn "something is still mounted under $BENCH_TMP; leaving it in place"
  else
    rm -rf --one-file-system "$BENCH_TMP"
  fi
  exit "$rc"
}

wait_for() { # wait_for SECONDS CMD... : polls CMD every 0.1 s
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# start_local NAME -> prints the directory
start_local() {
  mkdir -p "$BENCH_TMP/$1"
  echo "$BENCH_TMP/$1"
}

# start_bindfs NAME: sets BINDFS_MNT (passthrough of $BENCH_TMP/NAME-src) and BINDFS_PID.
start_bindfs() {
  local src="$BENCH_TMP/$1-src" mnt="$BENCH_TMP/$1"
  mkdir -p "$src" "$mnt"
  # shellcheck disable=SC2086
  bindfs -f $BINDFS_OPTS "$src" "$mnt" >"$BENCH_TMP/logs/$1.log" 2>&1 &
  BINDFS_PID=$!
  BENCH_PIDS+=("$BINDFS_PID")
  BENCH_MOUNTS+=("$mnt")
  wait_for 20 mountpoint -q "$mnt" || die "bindfs did not mount on $mnt: $(cat "$BENCH_TMP/logs/$1.log")"
  BINDFS_MNT=$mnt
}

# start_rustre NAME OSTS: a fresh `rustre local` cluster (data under $BENCH_TMP/NAME-data)
# and a `rustre mount` client on $BENCH_TMP/NAME. Sets R_MGS, R_SPID (cluster process),
# R_CPID (client process), R_MNT, and exports RUSTRE_SECRET_FILE (the cluster's secret, which
# `rustre local` creates in its data directory) for every later rustre command.
start_rustre() {
  local name=$1 osts=$2 port
  local data="$BENCH_TMP/$name-data" mnt="$BENCH_TMP/$name"
  mkdir -p "$data" "$mnt"
  port=$(free_port)
  R_MGS="127.0.0.1:$port"
  export RUSTRE_SECRET_FILE="$data/cluster.secret"
  # shellcheck disable=SC2086
  "$RUSTRE" local --data "$data" --osts "$osts" --listen "$R_MGS" $RUSTRE_LOCAL_OPTS \
    >"$BENCH_TMP/logs/$name-server.log" 2>&1 &
  R_SPID=$!
  BENCH_PIDS+=("$R_SPID")
  local last
  last=$(printf 'OST%04x' $((osts - 1)))
  wait_for 30 sh -c "'$RUSTRE' --mgs '$R_MGS' status 2>/dev/null | grep -q '^$last .* up'" ||
    die "rustre cluster did not come up: $(tail -5 "$BENCH_TMP/logs/$name-server.log")"
  local -a mopts=()
  [ -n "$RUSTRE_MOUNT_OPTS" ] && mopts=(-o "$RUSTRE_MOUNT_OPTS")
  "$RUSTRE" mount -f "${mopts[@]}" "$R_MGS" "$mnt" >"$BENCH_TMP/logs/$name-client.log" 2>&1 &
  R_CPID=$!
  BENCH_PIDS+=("$R_CPID")
  BENCH_MOUNTS+=("$mnt")
  wait_for 30 mountpoint -q "$mnt" ||
    die "rustre mount did not come up: $(tail -5 "$BENCH_TMP/logs/$name-client.log")"
  R_MNT=$mnt
  log "rustre cluster $name: MGS $R_MGS, $osts OSTs, server pid $R_SPID, client pid $R_CPID, mount $mnt"
}

# stop_rustre NAME: unmounts, ends client and cluster, removes the data; shows log warnings.
stop_rustre() {
  local name=$1
  unmount_fs "$BENCH_TMP/$name"
  local i
  for i in $(seq 1 50); do kill -0 "$R_CPID" 2>/dev/null || break; sleep 0.1; done
  stop_pid "$R_CPID"
  stop_pid "$R_SPID"
  report_logs "$name-server" "$name-client"
  rm -rf --one-file-system "$BENCH_TMP/$name-data"
}

# Counts warnings/errors/panics in rustre logs and shows the distinct ones (with numbers and
# addresses folded) and how often each came; keeps such a log under BENCH_OUT.
report_logs() {
  local n f c
  for n in "$@"; do
    f="$BENCH_TMP/logs/$n.log"
    [ -s "$f" ] || continue
    c=$(grep -ciE 'warn|error|panic' "$f")
    [ "$c" -gt 0 ] || continue
    cp "$f" "$BENCH_OUT/$BENCH_STAMP-$n.log"
    warn "$n log has $c warning/error/panic lines (kept as $BENCH_OUT/$BENCH_STAMP-$n.log):"
    sed 's/\x1b\[[0-9;]*m//g' "$f" | grep -iE 'warn|error|panic' |
      sed -E 's/^[0-9T:.-]+Z +//; s/[0-9]+/N/g' | sort | uniq -c | sort -rn | head -8 >&2
    echo "$n log: $c warning/error/panic lines, see $BENCH_OUT/$BENCH_STAMP-$n.log" >>"$BENCH_TMP/notes.txt"
  done
}

# ---------------------------------------------------------------------------------------
# Steps and results

# record METRIC UNIT TARGET VALUE (VALUE ERR for a failed run)
record() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"; }

# step LABEL CMD...: runs CMD bounded by STEP_TIMEOUT, its stdout into $STEP_OUT; on failure
# logs the reason and the tail of its output and returns non-zero.
step() {
  local label=$1
  shift
  BENCH_STEP=$((BENCH_STEP + 1))
  STEP_OUT="$BENCH_TMP/logs/step-$BENCH_STEP.out"
  local err="$BENCH_TMP/logs/step-$BENCH_STEP.err"
  timeout -k 15 "$STEP_TIMEOUT" "$@" >"$STEP_OUT" 2>"$err"
  local rc=$?
  if [ $rc -ne 0 ]; then
    BENCH_ERRORS=$((BENCH_ERRORS + 1))
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
      warn "$label: TIMED OUT after ${STEP_TIMEOUT}s: $*"
    else
      warn "$label: failed (exit $rc): $*"
    fi
    tail -5 "$err" >&2
    tail -3 "$STEP_OUT" >&2
    echo "$label: exit $rc: $*" >>"$BENCH_TMP/errors.txt"
    tail -20 "$err" >>"$BENCH_TMP/errors.txt"
    return $rc
  fi
  return 0
}

# fio_step METRIC UNIT TARGET KIND FIO-ARGS...: one fio run (JSON), records KIND (bw: MB/s
# summed over jobs, iops) of whichever of read/write moved data.
fio_step() {
  local metric=$1 unit=$2 target=$3 kind=$4
  shift 4
  if step "$metric [$target]" fio --output-format=json "$@"; then
    local v
    v=$(python3 "$BENCH_PY" fio "$STEP_OUT" "$kind") || v=ERR
    record "$metric" "$unit" "$target" "$v"
    log "  $metric [$target]: $v $unit"
  else
    record "$metric" "$unit" "$target" ERR
  fi
}

# print_table TITLE COLS...: the median table of $RESULTS with ratio columns rustre/COL for
# every COL before rustre; writes it to BENCH_OUT too.
print_table() {
  local title=$1
  shift
  local out="$BENCH_OUT/$BENCH_STAMP-$title"
  cp "$RESULTS" "$out.tsv"
  {
    echo "## $title — $BENCH_STARTED, $(hostname), runs: $RUNS$([ "$QUICK" = 1 ] && echo ' (QUICK)')"
    echo
    echo "Command: $BENCH_COMMAND"
    echo
    python3 "$BENCH_PY" table "$RESULTS" "$@"
    if [ -s "$BENCH_TMP/notes.txt" ]; then
      echo
      echo "Notes:"
      sed 's/^/    /' "$BENCH_TMP/notes.txt"
    fi
    if [ -s "$BENCH_TMP/errors.txt" ]; then
      echo
      echo "Errors ($BENCH_ERRORS):"
      sed 's/^/    /' "$BENCH_TMP/errors.txt"
    fi
  } | tee "$out.md"
  log "table kept as $out.md, raw runs as $out.tsv"
}

# ---------------------------------------------------------------------------------------
# The Python driver: fio JSON parsing, small files, tree manifests, metadata phases, the
# big-directory test, the table.

write_driver() {
  cat >"$1" <<'PYEOF'
import hashlib, json, multiprocessing as mp, os, stat, statistics, sys, tarfile, time

def die(msg):
    print(msg, file=sys.stderr)
    sys.exit(3)

# fio JSON -> MB/s (bw) or IOPS, summed over jobs and over read+write.
def cmd_fio(path, kind):
    text = open(path).read()
    j = json.loads(text[text.index("{"):text.rindex("}") + 1])
    tot = 0.0
    for job in j["jobs"]:
        if job.get("error"):
            die(f"fio job error {job['error']}")
        for d in ("read", "write"):
            tot += job[d]["bw_bytes"] / 1e6 if kind == "bw" else job[d]["iops"]
    print(f"{tot:.1f}")

# Small files: NDIRS directories of PER files of 4 KiB, each with its own content.
SMALL = 4096
_base = None
def content(d, i):
    global _base
    if _base is None:
        import random
        r = random.Random(42)
        _base = bytes(r.getrandbits(8) for _ in range(2 * SMALL))
    off = (d * 7919 + i * 104729) % SMALL
    return _base[off:off + SMALL]

def cmd_smallw(root, ndirs, per):
    ndirs, per = int(ndirs), int(per)
    bufs = [[content(d, i) for i in range(per)] for d in range(ndirs)]
    t0 = time.perf_counter()
    for d in range(ndirs):
        dp = os.path.join(root, f"d{d:03d}")
        os.mkdir(dp)
        for i in range(per):
            fd = os.open(os.path.join(dp, f"f{i:05d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            if os.write(fd, bufs[d][i]) != SMALL:
                die("short write")
            os.close(fd)
    t = time.perf_counter() - t0
    print(f"{ndirs * per / t:.1f}")

def cmd_smallr(root, ndirs, per):
    ndirs, per = int(ndirs), int(per)
    t0 = time.perf_counter()
    bad = []
    for d in range(ndirs):
        dp = os.path.join(root, f"d{d:03d}")
        for i in range(per):
            p = os.path.join(dp, f"f{i:05d}")
            fd = os.open(p, os.O_RDONLY)
            b = os.read(fd, 2 * SMALL)
            os.close(fd)
            if b != content(d, i):
                bad.append(f"{p}: {len(b)} bytes, content {'differs' if len(b) == SMALL else 'short/long'}")
    t = time.perf_counter() - t0
    if bad:
        die(f"DATA MISMATCH in {len(bad)} of {ndirs * per} files, e.g. " + "; ".join(bad[:3]))
    print(f"{ndirs * per / t:.1f}")

# A tree's manifest: path, type, mode, uid, gid, size, md5, mtime (files), link target.
def md5_of(f):
    h = hashlib.md5()
    while True:
        b = f.read(1 << 20)
        if not b:
            return h.hexdigest()
        h.update(b)

def manifest_tree(root, mtimes=True):
    out = []
    for dp, dns, fns in os.walk(root):
        dns.sort()
        for n in sorted(dns + fns):
            p = os.path.join(dp, n)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            m = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out.append(f"{rel} l {os.readlink(p)} {st.st_uid}:{st.st_gid}")
            elif stat.S_ISDIR(st.st_mode):
                out.append(f"{rel} d {m:o} {st.st_uid}:{st.st_gid}")
            else:
                with open(p, "rb") as f:
                    out.append(f"{rel} f {m:o} {st.st_uid}:{st.st_gid} {st.st_size} {md5_of(f)} {int(st.st_mtime) if mtimes else '-'}")
    return sorted(out)

def manifest_tar(path, mtimes=True):
    out = []
    with tarfile.open(path) as t:
        for m in t:
            rel = os.path.normpath(m.name)
            if rel == ".":
                continue
            ids = f"{m.uid}:{m.gid}"
            if m.issym():
                out.append(f"{rel} l {m.linkname} {ids}")
            elif m.isdir():
                out.append(f"{rel} d {m.mode:o} {ids}")
            elif m.isfile():
                out.append(f"{rel} f {m.mode:o} {ids} {m.size} {md5_of(t.extractfile(m))} {int(m.mtime) if mtimes else '-'}")
            else:
                die(f"unexpected member type in {path}: {m.name}")
    return sorted(out)

def cmd_verify_tree(root, tarball, mtimes="1"):
    mt = mtimes == "1"
    a, b = manifest_tree(root, mt), manifest_tar(tarball, mt)
    if a != b:
        sa, sb = set(a), set(b)
        only_tree = sorted(sa - sb)[:5]
        only_tar = sorted(sb - sa)[:5]
        die(f"TREE MISMATCH under {root}: {len(sa - sb)} entries differ from the tarball; "
            f"tree has e.g. {only_tree}; tarball has e.g. {only_tar}")
    print(len(a))

def cmd_tarinfo(path):
    n = files = size = 0
    with tarfile.open(path) as t:
        for m in t:
            n += 1
            if m.isfile():
                files += 1
                size += m.size
    print(f"{n} entries, {files} files, {size / 1e6:.1f} MB of file data")

# A big file of repeated 64 MiB random chunks: write it, or read and check it.
CHUNK = 64 << 20
def chunk():
    r = os.urandom  # written once per process into a file next to the driver
    p = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chunk.bin")
    if not os.path.exists(p):
        with open(p + ".tmp", "wb") as f:
            f.write(r(CHUNK))
        os.rename(p + ".tmp", p)
    with open(p, "rb") as f:
        return f.read()

def cmd_bigw(path, size):
    size, c = int(size), chunk()
    with open(path, "wb", buffering=0) as f:
        done = 0
        while done < size:
            n = min(CHUNK, size - done)
            done += f.write(c[:n])
        os.fsync(f.fileno())

def cmd_bigcheck(path, size):
    size, c = int(size), chunk()
    bs = 1 << 20
    with open(path, "rb", buffering=0) as f:
        off = 0
        while True:
            b = f.read(bs)
            if not b:
                break
            o = off % CHUNK
            if b != c[o:o + len(b)]:
                die(f"DATA MISMATCH in {path} in the 1 MiB block at offset {off}")
            off += len(b)
    if off != size:
        die(f"SIZE MISMATCH: read {off} bytes of {path}, expected {size}")
    print(off)

# mdtest-style metadata phases over NP processes; each phase starts and ends on a barrier,
# its time is the parent's between the two. Per-process directories, or one shared one.
PHASES = ["create", "stat", "readdir", "rename", "unlink"]

def meta_worker(rank, root, np_, nfiles, shared, gap, bar, q):
    d = os.path.join(root, "shared" if shared else f"p{rank}")
    names = [os.path.join(d, f"p{rank}.f{i:06d}") for i in range(nfiles)]
    expect_listing = nfiles * (np_ if shared else 1)
    err = None
    counts = {}
    for ph in PHASES:
        bar.wait()
        n = 0
        if err is None:
            try:
                if ph == "create":
                    for p in names:
                        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                    n = nfiles
                elif ph == "stat":
                    for p in names:
                        if not stat.S_ISREG(os.stat(p).st_mode):
                            raise OSError(f"{p} is not a regular file")
                    n = nfiles
                elif ph == "readdir":  # what `ls -l` does: list, then lstat each entry
                    for e in os.scandir(d):
                        os.lstat(e.path)
                        n += 1
                    if n != expect_listing:
                        raise OSError(f"listing {d} returned {n} entries, expected {expect_listing}")
                elif ph == "rename":
                    for p in names:
                        os.rename(p, p + ".r")
                    n = nfiles
                elif ph == "unlink":
                    for p in names:
                        os.unlink(p + ".r")
                    n = nfiles
            except Exception as e:
                err = f"{ph}: {type(e).__name__}: {e}"
        counts[ph] = n
        bar.wait()
    q.put((rank, counts, err))

def cmd_meta(root, np_, nfiles, shared, gap):
    np_, nfiles, shared, gap = int(np_), int(nfiles), shared == "1", float(gap)
    if shared:
        os.mkdir(os.path.join(root, "shared"))
    else:
        for r in range(np_):
            os.mkdir(os.path.join(root, f"p{r}"))
    ctx = mp.get_context("fork")
    bar = ctx.Barrier(np_ + 1, timeout=float(os.environ.get("STEP_TIMEOUT", "600")))
    q = ctx.Queue()
    procs = [ctx.Process(target=meta_worker, args=(r, root, np_, nfiles, shared, gap, bar, q))
             for r in range(np_)]
    for p in procs:
        p.start()
    times = {}
    try:
        for ph in PHASES:
            time.sleep(gap)  # lets FUSE attribute/entry caches (1 s TTL) expire
            bar.wait()
            t0 = time.perf_counter()
            bar.wait()
            times[ph] = time.perf_counter() - t0
    except Exception as e:
        for p in procs:
            p.kill()
        die(f"metadata phases hung or broke (barrier: {type(e).__name__}) after {list(times)}")
    res = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    errs = [f"rank {r}: {e}" for r, _, e in res if e]
    out = {}
    for ph in PHASES:
        n = sum(c.get(ph, 0) for _, c, _ in res)
        out[ph] = round(n / times[ph], 1)
    out["errors"] = errs
    print(json.dumps(out))
    if errs:
        print("; ".join(errs), file=sys.stderr)
        sys.exit(3)

def cmd_metaget(path, phase):
    v = json.load(open(path)).get(phase)
    print(v if v is not None else "ERR")

# The big directory: N empty files in one directory by NP processes; the create rate of each
# tenth of the run (summed over processes).
def big_worker(rank, d, per, bar, q):
    tenths = [0.0] * 11
    bar.wait()
    t0 = time.perf_counter()
    tenths[0] = t0
    step = per // 10
    try:
        for i in range(per):
            os.close(os.open(os.path.join(d, f"p{rank}.f{i:07d}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            if (i + 1) % step == 0:
                tenths[(i + 1) // step] = time.perf_counter()
        q.put((rank, tenths, None))
    except Exception as e:
        q.put((rank, tenths, f"{type(e).__name__}: {e} (at file {i})"))

def cmd_bigdir(d, n, np_):
    n, np_ = int(n), int(np_)
    per = n // np_
    ctx = mp.get_context("fork")
    bar = ctx.Barrier(np_)
    q = ctx.Queue()
    procs = [ctx.Process(target=big_worker, args=(r, d, per, bar, q)) for r in range(np_)]
    for p in procs:
        p.start()
    res = [q.get() for _ in procs]
    for p in procs:
        p.join()
    errs = [e for _, _, e in res if e]
    if errs:
        die("; ".join(errs))
    rates = []
    for k in range(1, 11):
        rates.append(sum((per // 10) / (t[k] - t[k - 1]) for _, t, _ in res))
    total = max(t[10] for _, t, _ in res) - min(t[0] for _, t, _ in res)
    print(json.dumps({"tenths": [round(r, 1) for r in rates], "total_s": round(total, 1),
                      "files": per * np_}))

# The table: medians per (metric, target), ratios rustre/X.
def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    a = abs(v)
    return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}"

def cmd_table(path, *cols):
    rows, order = {}, []
    for line in open(path):
        m, u, t, v = line.rstrip("\n").split("\t")
        if (m, u) not in rows:
            rows[(m, u)] = {}
            order.append((m, u))
        rows[(m, u)].setdefault(t, []).append(v)
    others = [c for c in cols if c != "rustre"]
    hdr = ["metric", "unit"] + list(cols) + [f"rustre/{c}" for c in others]
    print("| " + " | ".join(hdr) + " |")
    print("|---|---|" + "---:|" * (len(hdr) - 2))
    for key in order:
        m, u = key
        med = {}
        cells = []
        for c in cols:
            vs = rows[key].get(c)
            if not vs:
                med[c] = None
                cells.append("-")
                continue
            ok = [float(v) for v in vs if v != "ERR"]
            nerr = len(vs) - len(ok)
            med[c] = statistics.median(ok) if ok else None
            cell = fmt(med[c]) if ok else "ERR"
            if nerr and ok:
                cell += f" ({nerr}/{len(vs)} ERR)"
            cells.append(cell)
        for c in others:
            a, b = med.get("rustre"), med.get(c)
            cells.append(f"{a / b:.2f}" if a is not None and b else "-")
        print("| " + " | ".join([m, u] + cells) + " |")

if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    globals()["cmd_" + cmd.replace("-", "_")](*args)
PYEOF
}
