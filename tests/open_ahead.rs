//! Opens for reading answered ahead of the MDS (`client/open_ahead.rs`, issue 17), through
//! real mounts: a mount reads back the small files it made in its own directories without
//! waiting for the MDS, yet never reads bytes another mount replaced (that mount's look
//! recalls the directory first; a file moved to another directory is not vouched for), and
//! an unlink right after such an open leaves the file to the open.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use common::*;

/// Files a mount makes and reads back.
const FILES: usize = 100;
/// Rounds of another mount replacing what a mount read ahead.
const ROUNDS: usize = 15;

/// A cluster with two mounts: A (default options) with its metrics served at the address
/// returned, B with default options.
fn two_mounts() -> (ProcCluster, ForegroundMount, ForegroundMount, String) {
    let c = ProcCluster::start();
    let (mnt_a, mnt_b) = (c.path("a"), c.path("b"));
    fs::create_dir(&mnt_a).unwrap();
    fs::create_dir(&mnt_b).unwrap();
    let metrics = free_addr();
    let a = ForegroundMount::start(&c.mgs_addr, &mnt_a, &format!("metrics={metrics}"));
    let b = ForegroundMount::start(&c.mgs_addr, &mnt_b, "");
    (c, a, b, metrics)
}

/// Whether the tests' MDS keeps small files' bytes (only those open ahead).
fn data_on_mds() -> bool {
    test_inline_max() != Some(0)
}

fn opens_ahead(metrics: &str) -> f64 {
    mount_counter(metrics, "rustre_client_opens_ahead_total")
}

fn failed_ahead(metrics: &str) -> f64 {
    mount_counter(metrics, "rustre_client_dirops_ahead_failed_total")
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| format!("error: {e}"))
}

/// Round `i`'s reads by A, before and after B rewrote the file: kept in `stale` if either
/// is not what its writer wrote.
fn note_reads(stale: &mut Vec<(usize, String, String)>, i: usize, first: String, second: String) {
    if first != format!("a wrote {i}") || second != format!("b wrote {i}, longer") {
        stale.push((i, first, second));
    }
}

#[test]
fn a_mount_reads_its_own_files_ahead_and_then_what_another_mount_wrote() {
    if skip_without_fuse() {
        return;
    }
    let (_c, a, b, metrics) = two_mounts();
    let dir = a.path.join("own");
    fs::create_dir(&dir).unwrap();
    for i in 0..FILES {
        fs::write(dir.join(format!("f{i:03}")), format!("file {i}")).unwrap();
    }
    drop_caches();
    let before = opens_ahead(&metrics);
    let calls = || mds_calls(&metrics, "Open") + mds_calls(&metrics, "Release");
    let calls_before = calls();
    for i in 0..FILES {
        assert_eq!(read(&dir.join(format!("f{i:03}"))), format!("file {i}"));
    }
    let went = opens_ahead(&metrics) - before;
    if data_on_mds() {
        assert!(went >= FILES as f64, "{went} of {FILES} opens went ahead");
        // Opened and closed before another call of A's: the MDS never heard of most
        // (the atime updates between them send the record of the file open then).
        let made = calls() - calls_before;
        assert!(made < FILES as f64, "{made} opens and releases sent");
    } else {
        assert_eq!(went, 0.0, "opens went ahead of files not on the MDS");
    }
    // Another mount replaces a file A has just read: its look into A's directory recalls
    // it, and A's next open asks the MDS.
    let mut stale = Vec::new();
    for i in 0..ROUNDS {
        let (da, db) = (a.path.join(format!("r{i}")), b.path.join(format!("r{i}")));
        fs::create_dir(&da).unwrap();
        fs::write(da.join("f"), format!("a wrote {i}")).unwrap();
        let first = read(&da.join("f"));
        fs::write(db.join("f"), format!("b wrote {i}, longer")).unwrap();
        let second = read(&da.join("f"));
        note_reads(&mut stale, i, first, second);
    }
    assert!(stale.is_empty(), "A read: {stale:?}");
    assert_eq!(failed_ahead(&metrics), 0.0);
}

#[test]
fn a_file_moved_out_of_its_directory_is_opened_the_usual_way() {
    if skip_without_fuse() {
        return;
    }
    let (_c, a, b, metrics) = two_mounts();
    // B makes the shared directory; A's look at it takes it from B.
    fs::create_dir(b.path.join("shared")).unwrap();
    let deep = a.path.join("top/own");
    fs::create_dir_all(&deep).unwrap();
    let mut stale = Vec::new();
    for i in 0..ROUNDS {
        let made = deep.join(format!("f{i}"));
        fs::write(&made, format!("a wrote {i}")).unwrap();
        let first = read(&made);
        // A moves it to the shared directory; B finds it there without looking into A's
        // directory (which stays A's), and replaces its bytes.
        let moved = a.path.join(format!("shared/f{i}"));
        fs::rename(&made, &moved).unwrap();
        fs::write(
            b.path.join(format!("shared/f{i}")),
            format!("b wrote {i}, longer"),
        )
        .unwrap();
        let second = read(&moved);
        note_reads(&mut stale, i, first, second);
    }
    assert!(stale.is_empty(), "A read: {stale:?}");
    assert_eq!(failed_ahead(&metrics), 0.0);
}

#[test]
fn an_unlink_right_after_an_open_ahead_leaves_the_file_to_the_open() {
    if skip_without_fuse() {
        return;
    }
    let (_c, a, _b, metrics) = two_mounts();
    let dir = a.path.join("own");
    fs::create_dir(&dir).unwrap();
    for i in 0..FILES {
        fs::write(dir.join(format!("f{i:03}")), format!("file {i}")).unwrap();
    }
    let before = opens_ahead(&metrics);
    let mut wrong = Vec::new();
    for i in 0..FILES {
        let p = dir.join(format!("f{i:03}"));
        let mut f = fs::File::open(&p).unwrap();
        fs::remove_file(&p).unwrap();
        // Read twice, the second time after the open's record had time to be answered.
        let mut first = String::new();
        let r1 = f.read_to_string(&mut first);
        std::thread::sleep(std::time::Duration::from_millis(20));
        f.seek(SeekFrom::Start(0)).unwrap();
        let mut second = String::new();
        let r2 = f.read_to_string(&mut second);
        let nlink = f.metadata().map(|m| m.nlink()).unwrap_or(u64::MAX);
        let want = format!("file {i}");
        if r1.is_err() || r2.is_err() || first != want || second != want || nlink != 0 {
            wrong.push((i, r1.err(), r2.err(), first, second, nlink));
        }
    }
    assert!(
        wrong.is_empty(),
        "reads through opens of unlinked files: {wrong:?}"
    );
    if data_on_mds() {
        assert!(opens_ahead(&metrics) - before >= FILES as f64 / 2.0);
    }
    assert_eq!(failed_ahead(&metrics), 0.0);
    assert!(fs::read_dir(&dir).unwrap().next().is_none(), "files left");
}

#[test]
fn a_file_open_ahead_stays_for_its_open_when_another_mount_unlinks_it() {
    if skip_without_fuse() {
        return;
    }
    let (_c, a, b, metrics) = two_mounts();
    // Each in a directory of its own, one level down: B's walk to one recalls only it
    // (a lookup in a directory recalls every capped directory in it).
    for i in 0..ROUNDS {
        fs::create_dir_all(a.path.join(format!("p{i}/own"))).unwrap();
        fs::write(a.path.join(format!("p{i}/own/f")), format!("kept {i}")).unwrap();
    }
    // The closes' releases reach the client in the background (an open of a file whose
    // last handle is not released yet goes the usual way).
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let mut wrong = Vec::new();
    for i in 0..ROUNDS {
        let name = format!("p{i}/own/f");
        let mut f = fs::File::open(a.path.join(&name)).unwrap();
        // B's look recalls A's directory: A's open reaches the MDS before B's unlink.
        fs::remove_file(b.path.join(&name)).unwrap();
        let mut got = String::new();
        let r = f.read_to_string(&mut got);
        drop(f);
        // A call of A's after the close: a record left unsent would go now, and be refused.
        let _ = fs::metadata(a.path.join(format!("p{i}/own")));
        if r.is_err() || got != format!("kept {i}") {
            wrong.push((i, r.err(), got));
        }
    }
    assert!(wrong.is_empty(), "A's open of a file B unlinked: {wrong:?}");
    if data_on_mds() {
        // Most went ahead (one whose release was still on its way under load did not).
        let went = opens_ahead(&metrics);
        assert!(
            went >= (ROUNDS / 2) as f64,
            "{went} of {ROUNDS} opens went ahead"
        );
    }
    assert_eq!(failed_ahead(&metrics), 0.0);
}
