//! Atimes through a real mount, seen by another: reading a tree of fresh files moves every
//! file's atime at the MDS (relatime: the first read after a write), and the reader sends
//! them together (`AccessedMany`), not one call per file.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use common::*;

/// Files read.
const FILES: usize = 300;
/// How long the other mount may take to see the atimes (a feed round trip and the
/// reader's gathering).
const SEEN_WITHIN: Duration = Duration::from_secs(15);

#[test]
fn a_reader_sends_the_atimes_it_moves_together() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let (a, b) = (c.path("a"), c.path("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    let metrics = free_addr();
    let reader = ForegroundMount::start(&c.mgs_addr, &a, &format!("metrics={metrics}"));
    let other = ForegroundMount::start(&c.mgs_addr, &b, "");
    let dir = reader.path.join("tree");
    fs::create_dir(&dir).unwrap();
    for i in 0..FILES {
        fs::write(dir.join(format!("f{i:03}")), format!("file {i}")).unwrap();
    }
    std::thread::sleep(Duration::from_millis(20));
    let calls = |op: &str| mds_calls(&metrics, op);
    let (single, many) = (calls("Accessed"), calls("AccessedMany"));
    for i in 0..FILES {
        assert_eq!(
            fs::read_to_string(dir.join(format!("f{i:03}"))).unwrap(),
            format!("file {i}")
        );
    }
    // Every atime moved past the mtime, as the other mount sees it from the MDS.
    let there = other.path.join("tree");
    let moved = |i: usize| {
        let md = fs::metadata(there.join(format!("f{i:03}"))).unwrap();
        (md.atime(), md.atime_nsec()) > (md.mtime(), md.mtime_nsec())
    };
    assert!(
        wait_until(SEEN_WITHIN, || (0..FILES).all(moved)),
        "{} of {FILES} atimes reached the MDS",
        (0..FILES).filter(|i| moved(*i)).count()
    );
    let (single, many) = (calls("Accessed") - single, calls("AccessedMany") - many);
    assert_eq!(single, 0.0, "no atime goes alone");
    assert!(
        many >= 1.0 && many <= FILES as f64 / 4.0,
        "{many} AccessedMany calls for {FILES} files"
    );
}
