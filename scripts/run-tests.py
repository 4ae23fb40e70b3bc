#!/usr/bin/env python3
"""Runs every test binary of the workspace, several at a time (scripts/test.sh calls it).

One `cargo test --workspace --no-run` builds them all with the workspace's one set of
features; each binary then runs on its own, from its package's directory as cargo runs it,
with two test threads, in one of LANES lanes (default 3). One binary at a time left the
two CPUs half idle (end-to-end tests wait on round trips, timeouts and lease expiries);
side by side they fill them, and the pool ends about when the longest job does. The long runs
(`--ignored`: fsx 100k, io_mix 100k, find/du of 100k files, a 4 GiB file) and the runs with
data on the MDS off join the same pool and start first, the longest first.

Each binary's output goes to a file; a failed one's output is printed whole at the end,
and the exit status is non-zero if any failed or none ran.

    scripts/run-tests.py [--lanes N] [--only LABEL ...]   (TEST_LANES=N: the default lanes)
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

# Test threads inside each binary (the end-to-end tests start clusters and mounts of their
# own; more than two at once on top of the other lanes only queues them on the CPUs).
TEST_THREADS = "2"

# The longest one job may run: past it the job's process group is killed and the job fails
# (the longest, fsx 100k beside the rest, takes about 10 minutes).
JOB_TIMEOUT_SECONDS = 40 * 60

# Seconds each slow job took in the first pool run on a 2-core VM (before the optimized
# dependencies of Cargo.toml's dev profile, which shortened most; the order is what
# matters): the pool starts the longest first so that no long job starts last. Jobs
# missing here count as short.
EXPECTED_SECONDS = {
    "mount --ignored": 620,
    "io_mix --ignored": 500,
    "find_du --ignored": 370,
    "mount": 85,
    "coherence": 80,
    "migrate": 75,
    "io_mix": 62,
    "kept_attrs": 53,
    "rebalance": 51,
    "partition": 45,
    "locks": 42,
    "rustre_server": 42,
    "ost_identity": 39,
    "space": 37,
    "writeback_cache": 32,
    "crash_matrix": 31,
    "cluster": 31,
    "coherence (data on the MDS off)": 29,
    "durability": 21,
    "find_du": 21,
    "replication": 18,
}


def build():
    """Builds every test binary; returns [(target name, executable, package dir)]."""
    cmd = ["cargo", "test", "--workspace", "--no-run", "--message-format=json-render-diagnostics"]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, check=True, text=True)
    binaries = []
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        package_dir = os.path.dirname(msg["manifest_path"])
        binaries.append((msg["target"]["name"], msg["executable"], package_dir))
    return binaries


def jobs_of(binaries):
    """The jobs of one full run: every binary, the long runs, data on the MDS off."""
    by_name = {name: (exe, pkg) for name, exe, pkg in binaries}
    jobs = []

    def job(label, name, args, env=None):
        exe, pkg = by_name[name]
        jobs.append({"label": label, "argv": [exe] + args, "cwd": pkg, "env": env or {}})

    for name, _, _ in binaries:
        job(name, name, ["--test-threads", TEST_THREADS])
    # The long runs (tests marked #[ignore] for their length).
    for name in ("mount", "io_mix", "find_du"):
        job(f"{name} --ignored", name, ["--ignored", "--test-threads", TEST_THREADS])
    # pjdfstest and the two-mount data tests again with data on the MDS off (every file's
    # bytes in its objects, docs/data-on-mds.md): the runs above have it on, the default.
    off = {"RUSTRE_TEST_INLINE_MAX": "0"}
    threads = ["--test-threads", TEST_THREADS]
    job("mount (data on the MDS off)", "mount", threads + ["pjdfstest_passes"], off)
    job(
        "coherence (data on the MDS off)",
        "coherence",
        threads + ["each_open_reads_every_byte", "an_open_right_after"],
        off,
    )
    job("kept_attrs (data on the MDS off)", "kept_attrs", threads + ["a_tree_unpacked_by_tar"], off)
    jobs.sort(key=lambda j: -EXPECTED_SECONDS.get(j["label"], 0))
    return jobs


def run_job(job, env, log):
    """Runs one job with its output into `log`: 0, the exit status or why it failed."""
    try:
        proc = subprocess.Popen(
            job["argv"],
            cwd=job["cwd"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as e:
        log.write(f"run-tests: cannot start {job['argv'][0]}: {e}\n")
        return "not started"
    try:
        return proc.wait(timeout=JOB_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.write(f"\nrun-tests: killed after {JOB_TIMEOUT_SECONDS} s\n")
        return "timed out"


def run_pool(jobs, lanes, log_dir):
    """Runs `jobs` `lanes` at a time; returns [(job, exit status, seconds, log path)]."""
    start = time.monotonic()
    pending = list(jobs)
    results = []
    lock = threading.Lock()

    def stamp():
        s = int(time.monotonic() - start)
        return f"{s // 60}m{s % 60:02d}s"

    def lane():
        while True:
            with lock:
                if not pending:
                    return
                job = pending.pop(0)
                print(f"[{stamp()}] start {job['label']}", flush=True)
            log_name = "".join(c if c.isalnum() else "_" for c in job["label"]) + ".log"
            log_path = os.path.join(log_dir, log_name)
            began = time.monotonic()
            with open(log_path, "w") as log:
                env = dict(os.environ, **job["env"])
                env["CARGO_MANIFEST_DIR"] = job["cwd"]
                status = run_job(job, env, log)
            took = time.monotonic() - began
            with lock:
                results.append((job, status, took, log_path))
                verdict = "ok" if status == 0 else f"FAILED ({status})"
                print(f"[{stamp()}] {verdict}: {job['label']} in {took:.0f} s", flush=True)

    threads = [threading.Thread(target=lane) for _ in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", type=int, default=int(os.environ.get("TEST_LANES", "3")))
    ap.add_argument("--only", nargs="*", help="run only the jobs with these labels")
    args = ap.parse_args()
    os.chdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

    binaries = build()
    jobs = jobs_of(binaries)
    if args.only:
        jobs = [j for j in jobs if j["label"] in args.only]
    if not jobs:
        print("run-tests: no test binary to run", file=sys.stderr)
        return 1
    log_dir = tempfile.mkdtemp(prefix="rustre-tests.")
    print(f"run-tests: {len(jobs)} jobs, {args.lanes} at a time; logs in {log_dir}", flush=True)
    results = run_pool(jobs, max(1, args.lanes), log_dir)

    if len(results) != len(jobs):
        print(f"run-tests: {len(jobs) - len(results)} jobs never finished", file=sys.stderr)
        return 1
    failed = [r for r in results if r[1] != 0]
    for job, status, _, log_path in failed:
        print(f"\n===== {job['label']} failed ({status}); its output:", flush=True)
        with open(log_path) as log:
            sys.stdout.write(log.read())
    for job, status, _, log_path in results:
        if status == 0:
            with open(log_path) as log:
                lines = log.read().splitlines()
            summary = [line for line in lines if line.startswith("test result:")]
            print(f"{job['label']}: {summary[-1] if summary else 'no test result line'}")
    if failed:
        names = ", ".join(job["label"] for job, *_ in failed)
        print(f"run-tests: {len(failed)} of {len(results)} jobs failed: {names}", file=sys.stderr)
        return 1
    # Doc tests last (rustdoc builds them; cargo runs them).
    return subprocess.run(["cargo", "test", "--workspace", "--doc"]).returncode


if __name__ == "__main__":
    sys.exit(main())
