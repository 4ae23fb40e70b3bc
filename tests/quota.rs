//! Project quotas end to end (issue 19 item 3; docs/quotas.md), with real processes and two
//! real mounts: a 100 MiB / 1,000-inode quota on a directory. Writers on both mounts get
//! EDQUOT at the byte limit, never past it, and short of it by at most what each writer
//! may hold reserved; the 1,001st inode is EDQUOT; `df` in the directory shows the quota;
//! after `rm`, writing and creating work again; a rename out of the tree is EXDEV. And a
//! soft limit, passed for its grace period and then enforced until usage is back under it.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;
use rustre_fuse::client::quota::QUOTA_RESERVE_BYTES;
use serde_json::Value;

/// The quota's byte limit.
const LIMIT_BYTES: u64 = 100 << 20;
/// The quota's inode limit.
const LIMIT_INODES: u64 = 1000;
/// Bytes of each write(2) of the writers.
const CHUNK: usize = 1 << 20;
/// Concurrent writers (one per mount).
const WRITERS: u64 = 2;
/// Longest wait for usage to settle after closes and removals (releases go to the MDS in
/// batches, and a file still open somewhere is counted until its last close).
const SETTLE_WAIT: Duration = Duration::from_secs(15);

fn quota_json(mgs: &str, path: &str) -> Value {
    let out = cli_ok(mgs, &["quota", "get", path, "--json"]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn used(mgs: &str, path: &str) -> (u64, u64) {
    let q = quota_json(mgs, path);
    let q = &q["quota"];
    (
        q["used_bytes"].as_u64().unwrap(),
        q["used_inodes"].as_u64().unwrap(),
    )
}

fn is_edquot(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EDQUOT)
}

/// Writes `CHUNK`s to `path` until a write fails; returns the bytes written and the error.
fn write_until_refused(path: &Path) -> (u64, std::io::Error) {
    let mut f = fs::File::create(path).unwrap();
    let data = random_bytes(CHUNK, 3);
    let mut written = 0u64;
    // Bounded: the limit is reached long before this many chunks.
    for _ in 0..2 * LIMIT_BYTES / CHUNK as u64 {
        match f.write(&data) {
            Ok(n) => written += n as u64,
            Err(e) => return (written, e),
        }
    }
    panic!("{} took {written} bytes without refusal", path.display());
}

/// `df -B1 --output=size,itotal,iused` of `dir`: (size in bytes, inodes, inodes used).
fn df(dir: &Path) -> (u64, u64, u64) {
    let out = Command::new("df")
        .args(["-B1", "--output=size,itotal,iused"])
        .arg(dir)
        .output()
        .expect("df");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let row: Vec<u64> = text
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    (row[0], row[1], row[2])
}

#[test]
fn a_100_mib_1000_inode_quota_holds_through_two_mounts_and_df_shows_it() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    let (pa, pb) = (c.path("a"), c.path("b"));
    fs::create_dir_all(&pa).unwrap();
    fs::create_dir_all(&pb).unwrap();
    let a = ForegroundMount::start(&m, &pa, "");
    let b = ForegroundMount::start(&m, &pb, "");
    let (da, db) = (a.path.join("proj"), b.path.join("proj"));

    // What is there before the quota is counted when it is set.
    fs::create_dir(&da).unwrap();
    fs::write(da.join("old"), random_bytes(3 << 20, 1)).unwrap();
    fs::create_dir(a.path.join("elsewhere")).unwrap();
    let limits = ["--bytes", "100M", "--inodes", "1000"];
    let set = cli_ok(
        &m,
        &[&["quota", "set", "/proj", "--json"][..], &limits].concat(),
    );
    assert!(set.contains("\"hard_bytes\": 104857600"), "{set}");
    assert_eq!(used(&m, "/proj"), (3 << 20, 2), "the directory and `old`");
    let list = cli_ok(&m, &["quota", "list", "--json"]);
    assert_eq!(
        serde_json::from_str::<Value>(&list).unwrap()["quotas"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{list}"
    );

    // df in the directory shows the quota; outside it, the cluster.
    assert_eq!(df(&da), (LIMIT_BYTES, LIMIT_INODES, 2));
    assert_eq!(df(&db), (LIMIT_BYTES, LIMIT_INODES, 2));
    assert_ne!(df(&a.path).0, LIMIT_BYTES);

    // A file moved out of the tree or into it is EXDEV (mv then copies).
    let exdev = fs::rename(da.join("old"), a.path.join("elsewhere/old")).unwrap_err();
    assert_eq!(exdev.raw_os_error(), Some(libc::EXDEV), "{exdev}");

    // Two writers, one per mount, until the quota refuses them.
    let (fa, fb) = (da.join("fa"), db.join("fb"));
    let wa = std::thread::spawn(move || write_until_refused(&fa));
    let wb = std::thread::spawn(move || write_until_refused(&fb));
    let (na, ea) = wa.join().unwrap();
    let (nb, eb) = wb.join().unwrap();
    assert!(is_edquot(&ea), "writer on mount a: {ea}");
    assert!(is_edquot(&eb), "writer on mount b: {eb}");
    let total = (3 << 20) + na + nb;
    eprintln!("refused at {total} bytes ({na} through a, {nb} through b, 3 MiB before)");
    // No overshoot: room is reserved at the MDS before a byte is written. Undershoot: each
    // writer may hold up to QUOTA_RESERVE_BYTES reserved that it did not use, and its
    // refused write (one CHUNK) is not written.
    let slack = WRITERS * (QUOTA_RESERVE_BYTES + CHUNK as u64);
    assert!(
        total <= LIMIT_BYTES,
        "{total} bytes written past {LIMIT_BYTES}"
    );
    assert!(
        total >= LIMIT_BYTES - slack,
        "refused at {total} bytes, more than {slack} short of {LIMIT_BYTES}"
    );
    // A third writer, on either mount, is refused at once.
    let late = fs::write(db.join("late"), random_bytes(CHUNK, 4)).unwrap_err();
    assert!(is_edquot(&late), "{late}");
    // Closed, the files count their sizes (reservations went back with the last close).
    assert!(
        wait_until(SETTLE_WAIT, || used(&m, "/proj").0 == total),
        "usage {:?}, files hold {total}",
        used(&m, "/proj")
    );

    // Inodes: fill up to the limit through both mounts; the 1,001st is refused.
    let (_, have) = used(&m, "/proj");
    for i in have..LIMIT_INODES {
        let dir = if i % 2 == 0 { &da } else { &db };
        fs::File::create(dir.join(format!("n{i}"))).unwrap();
    }
    assert_eq!(used(&m, "/proj").1, LIMIT_INODES);
    for (what, r) in [
        ("create", fs::File::create(db.join("one-more")).map(drop)),
        ("mkdir", fs::create_dir(da.join("one-more-dir"))),
        (
            "symlink",
            std::os::unix::fs::symlink("x", da.join("one-more-link")),
        ),
    ] {
        let e = r.unwrap_err();
        assert!(is_edquot(&e), "{what}: {e}");
    }

    // rm of a big file and of a few inodes: writing and creating work again.
    let rm = Command::new("rm")
        .arg(db.join("fb"))
        .arg(da.join("n998"))
        .arg(da.join("n996"))
        .status()
        .unwrap();
    assert!(rm.success());
    assert!(
        wait_until(SETTLE_WAIT, || fs::write(
            da.join("again"),
            random_bytes(4 * CHUNK, 5)
        )
        .is_ok()),
        "writing did not come back after rm"
    );
    fs::create_dir(db.join("again-dir")).unwrap();
    assert_eq!(fs::read(db.join("again")).unwrap().len(), 4 * CHUNK);
    drop((a, b));
}

/// Grace period of the soft-limit test: long enough to create through, short to wait out.
const GRACE_SECS: u64 = 2;

#[test]
fn a_soft_limit_lets_creates_through_for_its_grace_period_then_refuses_them() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    let pa = c.path("a");
    fs::create_dir_all(&pa).unwrap();
    let a = ForegroundMount::start(&m, &pa, "");
    let d = a.path.join("soft");
    fs::create_dir(&d).unwrap();
    let grace = GRACE_SECS.to_string();
    let args = ["--soft-inodes", "3", "--inodes", "100", "--grace", &grace];
    cli_ok(&m, &[&["quota", "set", "/soft"][..], &args].concat());
    // The directory and two files: at the soft limit; a third goes over, which starts the
    // grace period, and more may follow while it lasts.
    for name in ["f1", "f2", "f3", "f4"] {
        fs::File::create(d.join(name)).unwrap();
    }
    let q = quota_json(&m, "/soft");
    assert!(q["quota"]["inodes_over_since_ms"].as_u64() > Some(0), "{q}");
    std::thread::sleep(Duration::from_secs(GRACE_SECS) + Duration::from_millis(500));
    let e = fs::File::create(d.join("late")).unwrap_err();
    assert!(is_edquot(&e), "{e}");
    assert!(cli_ok(&m, &["quota", "get", "/soft"]).contains("expired"));
    // Back under the soft limit, the clock stops and creates work again.
    for name in ["f2", "f3", "f4"] {
        fs::remove_file(d.join(name)).unwrap();
    }
    assert!(
        wait_until(SETTLE_WAIT, || fs::File::create(d.join("again")).is_ok()),
        "creates did not come back under the soft limit"
    );
    drop(a);
}
