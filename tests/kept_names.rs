//! Names the kernel keeps past the mount's entry TTL while the change feeds vouch for them
//! (`client/kernel_names.rs`, issue 17), through real mounts: a second walk through names
//! looked up more than the mount's TTL ago reaches the client no more; another mount's
//! rename, create and new name are still seen at once; and when the feed stops answering
//! (the MDS stopped), the kernel is told to drop every name it kept.

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Files walked through.
const FILES: usize = 50;
/// Longer than the mount's entry and attribute TTLs (1 s).
const PAST_MOUNT_TTL: Duration = Duration::from_millis(1_500);
/// Walks past the mount's TTL, at most, for one that needs no lookups.
const KEPT_TRIES: usize = 4;
/// Rounds of another mount changing names this mount keeps.
const ROUNDS: usize = 10;
/// How long a change another mount made may take to show here (a feed round trip).
const SEEN_WITHIN: Duration = Duration::from_secs(1);

fn kernel_lookups(metrics: &str) -> f64 {
    mount_counter(metrics, "rustre_client_kernel_lookups_total")
}

/// Files renamed onto names just made (so the kernel did not look those up).
const MOVED: usize = 10;

/// Stats every file in `dir` (by path, so each is a walk through its name), the first
/// `moved` under their new names.
fn stat_all(dir: &Path, moved: usize) {
    for i in 0..FILES {
        let name = if i < moved { "t" } else { "f" };
        fs::metadata(dir.join(format!("{name}{i:02}"))).unwrap();
    }
}

#[test]
fn names_are_kept_past_the_mount_ttl_until_the_feed_stops_vouching() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("m");
    fs::create_dir(&mnt).unwrap();
    let metrics = free_addr();
    let m = ForegroundMount::start(&c.mgs_addr, &mnt, &format!("metrics={metrics}"));
    let dir = m.path.join("d");
    fs::create_dir(&dir).unwrap();
    for i in 0..FILES {
        fs::write(dir.join(format!("f{i:02}")), b"x").unwrap();
    }
    std::thread::sleep(PAST_MOUNT_TTL);
    let before = kernel_lookups(&metrics);
    stat_all(&dir, 0);
    let first = kernel_lookups(&metrics) - before;
    assert!(
        first >= FILES as f64,
        "the first walk looked up {first} names of {FILES}: the counter does not count"
    );

    // Past the mount's TTL the names are still the kernel's. A feed answer late under load
    // (more than FEED_LEASE) rightly has them all dropped, and the next walk keeps them
    // again: one of a few walks must need (almost) no lookups.
    let mut seconds = Vec::new();
    for _ in 0..KEPT_TRIES {
        std::thread::sleep(PAST_MOUNT_TTL);
        let before = kernel_lookups(&metrics);
        stat_all(&dir, 0);
        seconds.push(kernel_lookups(&metrics) - before);
        if seconds.last().is_some_and(|&n| n < 5.0) {
            break;
        }
    }
    assert!(
        seconds.iter().any(|&n| n < 5.0),
        "past the mount's TTL the kernel looked up again (of {FILES} names, each walk): {seconds:?}"
    );
    // A rename moves the kernel's entry, TTL and all, onto a name it holds from a create:
    // that name must be dropped with the rest below.
    for i in 0..MOVED {
        let (from, to) = (dir.join(format!("f{i:02}")), dir.join(format!("t{i:02}")));
        fs::write(&to, b"").unwrap();
        fs::rename(from, to).unwrap();
    }

    // No feed answer while the MDS is stopped: the names are dropped, not kept 60 s.
    let mds = c.mds.as_ref().expect("an MDS").child.id();
    signal(mds, libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(2));
    signal(mds, libc::SIGCONT);
    let before = kernel_lookups(&metrics);
    stat_all(&dir, MOVED);
    let third = kernel_lookups(&metrics) - before;
    assert!(
        third >= FILES as f64,
        "after the feed stopped answering the kernel looked up only {third} of {FILES} names"
    );
}

/// Polls `f` until it is true or [`SEEN_WITHIN`] passed; how long it took, if it became
/// true.
fn seen(mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < SEEN_WITHIN {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn names_kept_long_still_show_another_mounts_changes_at_once() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let (mnt_a, mnt_b) = (c.path("a"), c.path("b"));
    fs::create_dir(&mnt_a).unwrap();
    fs::create_dir(&mnt_b).unwrap();
    let a = ForegroundMount::start(&c.mgs_addr, &mnt_a, "");
    let b = ForegroundMount::start(&c.mgs_addr, &mnt_b, "");
    let mut late = Vec::new();
    for round in 0..ROUNDS {
        let name = format!("r{round}");
        let (da, db) = (a.path.join(&name), b.path.join(&name));
        fs::create_dir(&da).unwrap();
        fs::write(da.join("f"), "old").unwrap();
        // A's kernel learns f, and that g is missing, and keeps both past its TTL.
        std::thread::sleep(PAST_MOUNT_TTL);
        assert_eq!(fs::read_to_string(da.join("f")).unwrap(), "old");
        assert!(!da.join("g").exists());
        std::thread::sleep(PAST_MOUNT_TTL);

        // B moves f aside, writes a new f and makes g.
        fs::rename(db.join("f"), db.join("f.old")).unwrap();
        fs::write(db.join("f"), "new").unwrap();
        fs::write(db.join("g"), "g").unwrap();

        let read = |p: &Path| fs::read_to_string(p).unwrap_or_else(|e| format!("error: {e}"));
        let new_f = seen(|| read(&da.join("f")) == "new");
        let g = seen(|| da.join("g").exists());
        let old = read(&da.join("f.old"));
        if new_f.is_none() || g.is_none() || old != "old" {
            late.push((round, read(&da.join("f")), g.is_some(), old));
        }
    }
    assert!(
        late.is_empty(),
        "A kept names another mount changed (round, A's f, g seen, A's f.old): {late:?}"
    );
}
