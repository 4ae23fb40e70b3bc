//! Shared helpers of the end-to-end tests: free loopback ports, `rustre` processes that are
//! killed when dropped, bounded polling, and the metadata store of in-process test clusters
//! (FoundationDB when `RUSTRE_FDB_CLUSTER_FILE` is set and the `fdb` feature is on).

#![allow(dead_code)]

pub(crate) mod meta_cluster;
mod namespace;
#[allow(unused_imports)]
pub(crate) use namespace::*;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rustre_proto::auth::{ClusterKey, SECRET_FILE_ENV};
use rustre_proto::sync::lock;

mod procs;
#[allow(unused_imports)]
pub(crate) use procs::*;

/// The `rustre` binary under test.
pub(crate) fn rustre_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rustre")
}

/// The cluster secret file of every test cluster and client (processes get it through
/// `RUSTRE_SECRET_FILE`): one per target directory, created on first use and shared by every
/// test binary.
pub(crate) fn test_secret_file() -> &'static Path {
    static FILE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    FILE.get_or_init(|| {
        let p = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rustre-test-cluster.secret");
        ClusterKey::load_or_create(&p).unwrap_or_else(|e| panic!("{e}"));
        p
    })
}

/// The secret in [`test_secret_file`], for in-process clusters and clients.
pub(crate) fn test_key() -> ClusterKey {
    ClusterKey::load(test_secret_file()).unwrap_or_else(|e| panic!("{e}"))
}

/// `rustre` as a command holding the tests' cluster secret (through `RUSTRE_SECRET_FILE`).
pub(crate) fn rustre_command() -> Command {
    let mut cmd = Command::new(rustre_bin());
    cmd.env(SECRET_FILE_ENV, test_secret_file());
    cmd
}

/// Lowest port [`free_addr`] hands out.
const FREE_PORT_LOW: u32 = 10_000;
/// Ports [`free_addr`] tries before it falls back to one the kernel picks.
const FREE_PORT_TRIES: usize = 64;

/// A loopback address with a port that was free a moment ago, from below the kernel's
/// ephemeral range (`ip_local_port_range`): a port the kernel picked for a bind to port 0
/// comes from that range, where any outgoing connection may take it as its source port
/// before the server that was given it binds it (seen in CI: an OSS that could not listen,
/// and its cluster never came up). Picked at random, so concurrent tests rarely meet, and
/// never twice in one test process: a cluster's addresses are all picked before any of its
/// servers binds one, so a port picked twice went to two of them (seen in CI: an MGS and
/// an MDS given the same port, and the MDS could not listen).
pub(crate) fn free_addr() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static PICKS: AtomicU64 = AtomicU64::new(0);
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u32>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    if ephemeral_low > FREE_PORT_LOW + 1_000 {
        for _ in 0..FREE_PORT_TRIES {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(PICKS.fetch_add(1, Ordering::Relaxed));
            h.write_u32(std::process::id());
            let port =
                FREE_PORT_LOW + (h.finish() % u64::from(ephemeral_low - FREE_PORT_LOW)) as u32;
            if !given.contains(&port) && TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                given.insert(port);
                return format!("127.0.0.1:{port}");
            }
        }
    }
    for _ in 0..FREE_PORT_TRIES {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().unwrap();
        if given.insert(u32::from(addr.port())) {
            return addr.to_string();
        }
    }
    panic!("no free port after {FREE_PORT_TRIES} tries");
}

/// A running `rustre` process, SIGKILLed on drop.
pub(crate) struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    /// Starts `rustre ARGS` holding the tests' cluster secret ([`test_secret_file`]).
    pub(crate) fn start(name: &str, args: &[&str]) -> Proc {
        Self::start_with_env(name, args, &[])
    }

    /// As [`Proc::start`], with `env` added to the environment.
    pub(crate) fn start_with_env(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        let child = Command::new(rustre_bin())
            .env(SECRET_FILE_ENV, test_secret_file())
            .envs(env.iter().copied())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Proc {
            child,
            name: name.to_string(),
        }
    }

    /// As [`Proc::start`], logging at `filter` (`RUST_LOG` syntax, no colours) into the
    /// returned buffer, and on to the test's stderr prefixed with `[NAME]`.
    pub(crate) fn start_logged(
        name: &str,
        args: &[&str],
        filter: &str,
    ) -> (Proc, std::sync::Arc<std::sync::Mutex<String>>) {
        let mut child = Command::new(rustre_bin())
            .env(SECRET_FILE_ENV, test_secret_file())
            .env("RUST_LOG", filter)
            .env("NO_COLOR", "1")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped stderr");
        let (sink, prefix) = (log.clone(), name.to_string());
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[{prefix}] {line}");
                let mut l = lock(&sink);
                l.push_str(&line);
                l.push('\n');
            }
        });
        let p = Proc {
            child,
            name: name.to_string(),
        };
        (p, log)
    }

    /// SIGKILL and reap.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs `cmd` and panics with its output unless it succeeds.
pub(crate) fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs a `rustre` client command against `mgs`, holding the tests' cluster secret.
pub(crate) fn cli(mgs: &str, args: &[&str]) -> Output {
    Command::new(rustre_bin())
        .env(SECRET_FILE_ENV, test_secret_file())
        .arg("--mgs")
        .arg(mgs)
        .args(args)
        .output()
        .expect("run rustre")
}

/// Runs a client command and returns its stdout, panicking with stderr on failure.
pub(crate) fn cli_ok(mgs: &str, args: &[&str]) -> String {
    let out = cli(mgs, args);
    assert!(
        out.status.success(),
        "rustre {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Sends `sig` to the process `pid` (a child this test started: a `rustre` server or
/// mount to stop, resume or kill).
pub(crate) fn signal(pid: u32, sig: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill(2) on a child process the test started; no memory is shared.
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0, "kill({pid}, {sig})");
}

/// Polls `f` every 100 ms until it returns true or `limit` passes.
pub(crate) fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// Bytes of regular files under `dir`, recursively (object checksum files included).
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    files_bytes(dir, &|_| true)
}

/// Bytes of object data under an OST's `objects` directory: checksum sidecars
/// (`*.sum`) left out.
pub(crate) fn object_bytes(dir: &Path) -> u64 {
    files_bytes(dir, &|p| p.extension().is_none_or(|e| e != "sum"))
}

fn files_bytes(dir: &Path, keep: &dyn Fn(&Path) -> bool) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                total += files_bytes(&e.path(), keep);
            } else if keep(&e.path()) {
                total += m.len();
            }
        }
    }
    total
}

/// `RUSTRE_TEST_INLINE_MAX`: the most bytes of a file the tests' MDS keep on the MDS
/// (`rustre mds --inline-max`; 0: data on the MDS off); `None` when unset (the default).
pub(crate) fn test_inline_max() -> Option<u32> {
    let v = std::env::var("RUSTRE_TEST_INLINE_MAX").ok()?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("RUSTRE_TEST_INLINE_MAX={v}: expected a number of bytes")),
    )
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub(crate) fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The environment variable naming an FDB cluster file to run the tests against.
pub(crate) const FDB_CLUSTER_FILE_ENV: &str = "RUSTRE_FDB_CLUSTER_FILE";
/// Every FoundationDB key the tests write starts with this (clear it with
/// `fdbcli --exec 'writemode on; clearrange rustre-test/ rustre-test0'`).
pub(crate) const FDB_TEST_PREFIX_ROOT: &str = "rustre-test/";

/// The metadata store of an in-process test cluster (`LocalConfig::store`): FoundationDB
/// under a prefix no other test run uses, when `RUSTRE_FDB_CLUSTER_FILE` names a cluster file
/// and the `fdb` feature is on; otherwise `None`, the embedded stores in the cluster's data
/// directory.
#[cfg(feature = "fdb")]
pub(crate) fn test_store(test: &str) -> Option<rustre_server::meta::StoreConfig> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let file = std::env::var_os(FDB_CLUSTER_FILE_ENV).filter(|f| !f.is_empty())?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let prefix = format!(
        "{FDB_TEST_PREFIX_ROOT}{test}/{}-{nanos}-{n}/",
        std::process::id()
    );
    eprintln!("{test}: metadata in FoundationDB under {prefix:?}");
    let store = rustre_server::meta::StoreConfig::fdb(Path::new(&file), prefix.as_bytes())
        .expect("the fdb feature is on");
    Some(store)
}

/// The metadata store of an in-process test cluster: without the `fdb` feature always `None`
/// (the embedded stores), whatever `RUSTRE_FDB_CLUSTER_FILE` says.
#[cfg(not(feature = "fdb"))]
pub(crate) fn test_store(test: &str) -> Option<rustre_server::meta::StoreConfig> {
    if std::env::var_os(FDB_CLUSTER_FILE_ENV).is_some_and(|f| !f.is_empty()) {
        eprintln!(
            "{test}: {FDB_CLUSTER_FILE_ENV} is set but the fdb feature is off: using the \
             embedded store (run with --features fdb)"
        );
    }
    None
}

/// Why FUSE mounts cannot be made by this test process, if they cannot: mounting needs root
/// and /dev/fuse.
pub(crate) fn fuse_unavailable() -> Option<&'static str> {
    // SAFETY: identity getter.
    let why = if unsafe { libc::geteuid() } != 0 {
        Some("FUSE mount tests need root")
    } else if !Path::new("/dev/fuse").exists() {
        Some("FUSE mount tests need /dev/fuse")
    } else {
        None
    };
    why.map(unavailable_here)
}

/// Why a test needing FUSE mounts and the commands `tools` cannot run here, if it cannot;
/// under `CI=true`, a panic ([`unavailable_here`]).
pub(crate) fn fuse_or_tools_unavailable(tools: &[&str]) -> Option<String> {
    if let Some(why) = fuse_unavailable() {
        return Some(why.to_string());
    }
    for tool in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(unavailable_here(format!(
                "{tool} is not installed (scripts/install-deps.sh)"
            )));
        }
    }
    None
}

/// Runs a shell command in `dir`; panics with its output unless it succeeds.
pub(crate) fn sh(dir: &Path, script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// True (after saying why) when FUSE mounts cannot be made here; under `CI=true`, a panic.
pub(crate) fn skip_without_fuse() -> bool {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped: {why}");
        return true;
    }
    false
}

/// Runs `script` with bash in `dir` as `uid`:`gid` (no supplementary groups).
pub(crate) fn run_as(uid: u32, gid: u32, dir: &Path, script: &str) -> Output {
    Command::new("setpriv")
        .arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .args(["--clear-groups", "bash", "-c", script])
        .current_dir(dir)
        .output()
        .expect("setpriv")
}

/// `why` a test cannot run here, for it to skip; under `CI=true`, where everything a test
/// needs is installed (scripts/install-deps.sh), a panic instead: a skip there would pass
/// a test that never ran.
pub(crate) fn unavailable_here<T: std::fmt::Display>(why: T) -> T {
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot run here under CI: {why}"
    );
    why
}

/// The /proc/mounts line of the mount at `mnt`, if something is mounted there. Read from
/// this thread's view (`/proc/thread-self`), so that a test thread in a private mount
/// namespace ([`in_private_namespace`]) sees its own mounts.
pub(crate) fn mounts_line(mnt: &Path) -> Option<String> {
    let want = mnt.to_str()?;
    std::fs::read_to_string("/proc/thread-self/mounts")
        .ok()?
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(want))
        .map(str::to_string)
}

/// Longest wait for a foreground mount to come up, or to go away after `fusermount3 -u`.
pub(crate) const FOREGROUND_MOUNT_WAIT: Duration = Duration::from_secs(20);

/// A `rustre mount -f MGS MNT` daemon, a child of the test process. Dropping it unmounts
/// (`fusermount3 -u`, lazily if that fails), waits a bounded time for the daemon to exit and
/// SIGKILLs it if it does not.
pub(crate) struct ForegroundMount {
    pub path: std::path::PathBuf,
    pub child: Child,
    /// What the daemon logged, when started with [`ForegroundMount::start_logged`].
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl ForegroundMount {
    /// Mounts the cluster of `mgs` on the existing directory `mnt` with options `opts`
    /// (empty: none); panics unless it is mounted within [`FOREGROUND_MOUNT_WAIT`].
    pub(crate) fn start(mgs: &str, mnt: &Path, opts: &str) -> ForegroundMount {
        Self::start_with(mgs, mnt, opts, None, None)
    }

    /// As [`ForegroundMount::start`], the daemon running in network namespace `netns`
    /// (`nsenter --net`, so the mount itself is visible to this process).
    pub(crate) fn start_in_netns(
        netns: &str,
        mgs: &str,
        mnt: &Path,
        opts: &str,
    ) -> ForegroundMount {
        Self::start_with(mgs, mnt, opts, None, Some(netns))
    }

    /// As [`ForegroundMount::start`], with the daemon logging at `filter` (`RUST_LOG`
    /// syntax) into [`ForegroundMount::log`] (and on to the test's stderr).
    pub(crate) fn start_logged(mgs: &str, mnt: &Path, opts: &str, filter: &str) -> ForegroundMount {
        Self::start_with(mgs, mnt, opts, Some(filter), None)
    }

    fn start_with(
        mgs: &str,
        mnt: &Path,
        opts: &str,
        filter: Option<&str>,
        netns: Option<&str>,
    ) -> ForegroundMount {
        let mnt = std::fs::canonicalize(mnt).expect("mount point");
        let mut cmd = match netns {
            None => Command::new(rustre_bin()),
            Some(ns) => {
                let mut c = Command::new("nsenter");
                c.arg(format!("--net=/run/netns/{ns}")).arg(rustre_bin());
                c
            }
        };
        cmd.env(SECRET_FILE_ENV, test_secret_file());
        cmd.args(["mount", "-f", mgs]).arg(&mnt);
        if !opts.is_empty() {
            cmd.args(["-o", opts]);
        }
        if let Some(f) = filter {
            cmd.env("RUST_LOG", f).env("NO_COLOR", "1");
        }
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(if filter.is_some() {
                Stdio::piped()
            } else {
                Stdio::inherit()
            })
            .spawn()
            .expect("start rustre mount -f");
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        if let Some(stderr) = child.stderr.take() {
            let log = log.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    eprintln!("[mount] {line}");
                    let mut l = lock(&log);
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        let mut m = ForegroundMount {
            path: mnt,
            child,
            log,
        };
        let start = Instant::now();
        while mounts_line(&m.path).is_none() {
            if let Some(st) = m.child.try_wait().unwrap() {
                panic!("rustre mount -f {} exited early: {st}", m.path.display());
            }
            assert!(
                start.elapsed() < FOREGROUND_MOUNT_WAIT,
                "{} was not mounted within {FOREGROUND_MOUNT_WAIT:?}",
                m.path.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    /// The daemon's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `fusermount3 -u` (retried for a moment: a file closed just now may hold the mount),
    /// then waits for the daemon to exit; true if both went cleanly. Falls back to a lazy
    /// unmount and SIGKILL, so nothing is left behind either way.
    pub(crate) fn unmount(&mut self) -> bool {
        let unmounted = wait_until(Duration::from_secs(5), || {
            mounts_line(&self.path).is_none()
                || Command::new("fusermount3")
                    .arg("-u")
                    .arg(&self.path)
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
        });
        if !unmounted {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.path)
                .stderr(Stdio::null())
                .status();
        }
        let exited = wait_until(FOREGROUND_MOUNT_WAIT, || {
            self.child.try_wait().ok().flatten().is_some()
        });
        if !exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        unmounted && exited && mounts_line(&self.path).is_none()
    }
}

impl Drop for ForegroundMount {
    fn drop(&mut self) {
        if mounts_line(&self.path).is_some() || self.child.try_wait().ok().flatten().is_none() {
            self.unmount();
        }
    }
}

/// `VmRSS` and `VmHWM` of process `pid` in bytes, from /proc/PID/status.
pub(crate) fn rss_and_hwm(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kib << 10)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// The text of the metrics the mount at `addr` serves (mount option `metrics=`).
fn mount_metrics(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("the mount's metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// The value of the counter `name` (without labels) of the mount serving metrics at
/// `addr`.
pub(crate) fn mount_counter(addr: &str, name: &str) -> f64 {
    mount_metrics(addr)
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .filter_map(|v| v.trim().parse::<f64>().ok())
        .sum()
}

/// The MDS calls of operation `op` the mount serving metrics at `addr` (mount option
/// `metrics=`) made so far.
pub(crate) fn mds_calls(addr: &str, op: &str) -> f64 {
    let text = mount_metrics(addr);
    let series = format!("op=\"{op}\"");
    text.lines()
        .filter(|l| l.starts_with("rustre_rpc_client_requests_total{"))
        .filter(|l| l.contains("service=\"mds\"") && l.contains(&series))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}
