//! Shared helpers of the end-to-end tests: free loopback ports, `rustre` processes that are
//! killed when dropped, bounded polling, and the metadata store of in-process test clusters
//! (FoundationDB when `RUSTRE_FDB_CLUSTER_FILE` is set and the `fdb` feature is on).

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The `rustre` binary under test.
pub fn rustre_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rustre")
}

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> String {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().unwrap().to_string()
}

/// A running `rustre` process, SIGKILLed on drop.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn start(name: &str, args: &[&str]) -> Proc {
        let child = Command::new(rustre_bin())
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

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Runs a `rustre` client command against `mgs`.
pub fn cli(mgs: &str, args: &[&str]) -> Output {
    Command::new(rustre_bin())
        .arg("--mgs")
        .arg(mgs)
        .args(args)
        .output()
        .expect("run rustre")
}

/// Runs a client command and returns its stdout, panicking with stderr on failure.
pub fn cli_ok(mgs: &str, args: &[&str]) -> String {
    let out = cli(mgs, args);
    assert!(
        out.status.success(),
        "rustre {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Polls `f` every 100 ms until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

/// Bytes of regular files under `dir`, recursively.
pub fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                total += dir_bytes(&e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
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
pub const FDB_CLUSTER_FILE_ENV: &str = "RUSTRE_FDB_CLUSTER_FILE";
/// Every FoundationDB key the tests write starts with this (clear it with
/// `fdbcli --exec 'writemode on; clearrange rustre-test/ rustre-test0'`).
pub const FDB_TEST_PREFIX_ROOT: &str = "rustre-test/";

/// The metadata store of an in-process test cluster (`LocalConfig::store`): FoundationDB
/// under a prefix no other test run uses, when `RUSTRE_FDB_CLUSTER_FILE` names a cluster file
/// and the `fdb` feature is on; otherwise `None`, the embedded stores in the cluster's data
/// directory.
#[cfg(feature = "fdb")]
pub fn test_store(test: &str) -> Option<rustre_server::meta::StoreConfig> {
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
pub fn test_store(test: &str) -> Option<rustre_server::meta::StoreConfig> {
    if std::env::var_os(FDB_CLUSTER_FILE_ENV).is_some_and(|f| !f.is_empty()) {
        eprintln!(
            "{test}: {FDB_CLUSTER_FILE_ENV} is set but the fdb feature is off: using the \
             embedded store (run with --features fdb)"
        );
    }
    None
}
