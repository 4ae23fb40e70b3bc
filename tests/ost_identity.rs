//! Disk identity with real processes (docs/replication.md, "Disk identity"): MGS, MDS and
//! three OSS as separate `rustre` processes on loopback. An OST directory wiped while its
//! OSS was down comes back as a new disk: the MGS refuses it, the OSS logs why and serves
//! nothing; after `rustre ost replace` the new disk registers, a file with another copy is
//! refilled byte for byte, and a file whose only copy was there reads EIO — never zeros.

mod common;

use std::fs;
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rustre_proto::sync::lock;

/// OSS processes of the test cluster.
const OSS_COUNT: usize = 3;
/// Longest wait for a node to be listed up or down, or for a log line.
const STATE_WAIT: Duration = Duration::from_secs(20);
/// Longest wait for the resync worker to refill the copy on the new disk.
const RESYNC_WAIT: Duration = Duration::from_secs(60);

struct Cluster {
    dir: tempfile::TempDir,
    mgs_addr: String,
    oss_addrs: Vec<String>,
    _mgs: Proc,
    _mds: Proc,
    oss: Vec<Option<Proc>>,
    oss_logs: Vec<Arc<Mutex<String>>>,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mgs_addr = free_addr();
        let mds_addr = free_addr();
        let mgs_data = dir.path().join("mgs");
        let mgs = Proc::start(
            "mgs",
            &[
                "mgs",
                "--listen",
                &mgs_addr,
                "--data",
                mgs_data.to_str().unwrap(),
            ],
        );
        let mds_data = dir.path().join("mds");
        let mds = Proc::start(
            "mds",
            &[
                "--mgs",
                &mgs_addr,
                "mds",
                "--listen",
                &mds_addr,
                "--data",
                mds_data.to_str().unwrap(),
            ],
        );
        let mut c = Cluster {
            dir,
            mgs_addr,
            oss_addrs: (0..OSS_COUNT).map(|_| free_addr()).collect(),
            _mgs: mgs,
            _mds: mds,
            oss: (0..OSS_COUNT).map(|_| None).collect(),
            oss_logs: Vec::new(),
        };
        for i in 0..OSS_COUNT {
            c.start_oss(i);
        }
        assert!(
            wait_until(STATE_WAIT, || c.status().matches(" up").count()
                >= 2 + OSS_COUNT),
            "cluster did not come up: {}",
            c.status()
        );
        c
    }

    fn ost_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(format!("ost{i}"))
    }

    /// Starts (or restarts) OSS `i`, logging into a fresh `oss_logs[i]`.
    fn start_oss(&mut self, i: usize) {
        let data = self.ost_dir(i);
        let (p, log) = Proc::start_logged(
            &format!("oss{i}"),
            &[
                "--mgs",
                &self.mgs_addr,
                "oss",
                "--listen",
                &self.oss_addrs[i],
                "--index",
                &i.to_string(),
                "--data",
                data.to_str().unwrap(),
            ],
            "warn",
        );
        self.oss[i] = Some(p);
        if self.oss_logs.len() > i {
            self.oss_logs[i] = log;
        } else {
            self.oss_logs.push(log);
        }
    }

    fn status(&self) -> String {
        String::from_utf8_lossy(&cli(&self.mgs_addr, &["status"]).stdout).to_string()
    }

    /// True when `rustre status` lists OST `i` as `state` ("up" or "down").
    fn ost_is(&self, i: usize, state: &str) -> bool {
        self.status()
            .lines()
            .any(|l| l.starts_with(&format!("OST{i:04} ")) && l.contains(&format!(" {state} ")))
    }

    /// The object file of `(ino, stripe)` on OST `ost` (docs/operations.md layout).
    fn object_file(&self, ost: usize, ino: u64, stripe: u32) -> PathBuf {
        self.ost_dir(ost)
            .join("objects")
            .join(format!("{:02x}", ino % 256))
            .join(format!("{ino:016x}.{stripe}"))
    }
}

/// `key: value` of a `rustre stat` output.
fn field(out: &str, key: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
        .to_string()
}

/// `rustre get PATH` into `to`: the bytes, or the command's stderr.
fn get(mgs: &str, path: &str, to: &std::path::Path) -> Result<Vec<u8>, String> {
    let out = cli(mgs, &["get", path, to.to_str().unwrap()]);
    if out.status.success() {
        Ok(fs::read(to).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// Asserts that a failed read of a lost file handed out no bytes of it as zeros.
fn assert_no_zeros(to: &std::path::Path, len: usize) {
    let got = fs::read(to).unwrap_or_default();
    assert!(
        got.len() < len.min(4096) || got.iter().take(4096).any(|b| *b != 0),
        "a lost file was read as {} bytes of zeros",
        got.len()
    );
}

#[test]
fn a_wiped_ost_is_refused_until_replaced_then_copies_are_refilled_and_lost_files_read_eio() {
    let mut c = Cluster::start();
    let m = c.mgs_addr.clone();
    // The victim OST holds copy 0 of a 2-copy file and the only copy of a 1-copy file.
    let victim = 1usize;
    let v = victim.to_string();
    let two = random_bytes(3 << 20, 61);
    let one = random_bytes((1 << 20) + 1000, 62);
    let src = c.dir.path().join("src");
    fs::write(&src, &two).unwrap();
    let put = |path: &str, replicas: &str| {
        let args = [
            "put",
            src.to_str().unwrap(),
            path,
            "--stripe-count",
            "1",
            "--ost",
            &v,
            "--replicas",
            replicas,
        ];
        cli_ok(&m, &args);
    };
    put("/two.bin", "2");
    fs::write(&src, &one).unwrap();
    put("/one.bin", "1");
    let stat = cli_ok(&m, &["stat", "/two.bin"]);
    let two_ino: u64 = field(&stat, "inode").parse().unwrap();
    assert_eq!(field(&stat, "osts"), v, "{stat}");
    let other: usize = field(&stat, "replica 1 osts").parse().unwrap();
    assert_eq!(field(&cli_ok(&m, &["stat", "/one.bin"]), "osts"), v);

    // The victim's OSS dies, its directory is wiped, and it starts again on the empty one.
    c.oss[victim].take().unwrap().kill();
    fs::remove_dir_all(c.ost_dir(victim)).unwrap();
    c.start_oss(victim);
    let refusal = "is bound to disk";
    let advice = format!("run `rustre ost replace {victim}`");
    assert!(
        wait_until(STATE_WAIT, || {
            let log = lock(&c.oss_logs[victim]).clone();
            log.contains(refusal) && log.contains(&advice)
        }),
        "the OSS did not log its refusal:\n{}",
        lock(&c.oss_logs[victim])
    );
    assert!(
        wait_until(STATE_WAIT, || c.ost_is(victim, "down")),
        "OST {victim} not listed down: {}",
        c.status()
    );
    // Logged once, though the OSS retries every second.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(lock(&c.oss_logs[victim]).matches(refusal).count(), 1);
    assert!(c.ost_is(victim, "down"), "refused for good: {}", c.status());

    // Meanwhile the 2-copy file reads from its other copy; the 1-copy file fails (after the
    // client's 30 s of riding through an outage), never with the new disk's zeros.
    let out = c.dir.path().join("out");
    assert!(
        get(&m, "/two.bin", &out).unwrap() == two,
        "2-copy file differs"
    );
    let err = get(&m, "/one.bin", &out).expect_err("a file on a refused disk was read");
    assert_no_zeros(&out, one.len());
    eprintln!("reading /one.bin while refused: {err}");

    // The administrator accepts the new disk: the 1-copy file is listed as lost (exit 1).
    let replace = cli(&m, &["ost", "replace", &v]);
    let text = String::from_utf8_lossy(&replace.stdout).to_string();
    assert!(!replace.status.success(), "{text}");
    assert!(text.contains("lost: /one.bin"), "{text}");
    assert!(!text.contains("lost: /two.bin"), "{text}");
    assert!(text.contains("1 will be refilled"), "{text}");
    // The OSS registers the new disk by itself.
    assert!(
        wait_until(STATE_WAIT, || c.ost_is(victim, "up")),
        "the new disk did not register: {}\n{}",
        c.status(),
        lock(&c.oss_logs[victim])
    );
    // Replacing the disk of an OST that is up is refused.
    let again = cli(&m, &["ost", "replace", &v]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("is up"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // Resync refills the 2-copy file's copy on the new disk from the other copy.
    assert!(
        wait_until(RESYNC_WAIT, || {
            let s = cli(&m, &["stat", "/two.bin"]);
            s.status.success() && !String::from_utf8_lossy(&s.stdout).contains("stale slots")
        }),
        "the copy on the new disk was not refilled: {}",
        cli_ok(&m, &["stat", "/two.bin"])
    );
    assert!(
        fs::read(c.object_file(victim, two_ino, 0)).unwrap() == two,
        "the refilled copy differs"
    );
    assert!(fs::read(c.object_file(other, two_ino, 0)).unwrap() == two);
    assert!(
        get(&m, "/two.bin", &out).unwrap() == two,
        "2-copy file differs"
    );

    // The 1-copy file lost its data: EIO at once, and it stays stale (nothing refills it).
    let _ = fs::remove_file(&out);
    let err = get(&m, "/one.bin", &out).expect_err("a lost file was read");
    assert!(err.contains("no up-to-date copy"), "{err}");
    assert_no_zeros(&out, one.len());
    let stat = cli_ok(&m, &["stat", "/one.bin"]);
    assert!(stat.contains("stale slots: 0"), "{stat}");

    // Through a mount: EIO, and the other file byte-exact.
    if let Some(why) = fuse_unavailable() {
        eprintln!("mount checks skipped: {why}");
        return;
    }
    let mnt = c.dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&m, &mnt, "");
    let mut f = fs::File::open(mnt.join("one.bin")).unwrap();
    let mut buf = vec![0u8; 8192];
    let e = f.read(&mut buf).expect_err("read of a lost file");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    drop(f);
    assert!(fs::read(mnt.join("two.bin")).unwrap() == two);
    assert!(mount.unmount());
}
