//! Deleted objects' files are kept for new objects (`oss/file_store/recycle.rs`), through
//! real processes: after an `rm -rf` of a tree its objects' files wait, empty, in the OST's
//! `recycled/`, a new tree takes them, and every new file reads back its own bytes (never
//! the old ones), from the writing client and from a new mount, with `rustre fsck` clean.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Files per tree.
const FILES: usize = 64;
/// Longest wait for the MDS to delete a removed tree's objects (a scan every 500 ms).
const WAIT: Duration = Duration::from_secs(30);
/// How long a kept file waits before a new object may take it (`RECYCLE_QUARANTINE`),
/// with a margin.
const QUARANTINE: Duration = Duration::from_millis(1_500);

/// Files directly in `dir` (0 when it does not exist), checksum sidecars (`.sum`) aside.
fn files_in(dir: &Path) -> usize {
    fs::read_dir(dir)
        .map(|d| {
            d.filter(|e| {
                !e.as_ref()
                    .unwrap()
                    .path()
                    .to_string_lossy()
                    .ends_with(".sum")
            })
            .count()
        })
        .unwrap_or(0)
}

/// Object files on the OST whose directory is `ost`.
fn objects_on(ost: &Path) -> usize {
    fs::read_dir(ost.join("objects"))
        .unwrap()
        .map(|d| files_in(&d.unwrap().path()))
        .sum()
}

/// Checksum sidecars on the OST whose directory is `ost`.
fn sidecars_on(ost: &Path) -> usize {
    let all: usize = fs::read_dir(ost.join("objects"))
        .unwrap()
        .map(|d| fs::read_dir(d.unwrap().path()).unwrap().count())
        .sum();
    all - objects_on(ost)
}

/// The bytes of file `i` of a tree made with `seed`: sizes from 1 KiB to past 64 KiB, so
/// both places of the CRCs (an attribute, a sidecar) are recycled.
fn content(i: usize, seed: u64) -> Vec<u8> {
    random_bytes(1024 + i * 1500, seed * 1000 + i as u64)
}

#[test]
fn a_removed_trees_object_files_are_taken_by_a_new_tree_with_its_own_bytes() {
    if skip_without_fuse() {
        return;
    }
    // Small files' bytes in objects (data on the MDS off): this is about object files.
    let c = ProcCluster::start_with_mds_args(&["--inline-max", "0"]);
    let m = c.mgs_addr.clone();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&m, &mnt, "");
    let ost = c.ost_dirs[0].clone();
    let pool = ost.join("recycled");
    for tree in ["old", "new"] {
        cli_ok(&m, &["mkdir", &format!("/{tree}")]);
        cli_ok(&m, &["setstripe", &format!("/{tree}"), "--ost", "0"]);
    }
    for i in 0..FILES {
        fs::write(mnt.join(format!("old/f{i}")), content(i, 1)).unwrap();
    }
    assert_eq!(objects_on(&ost), FILES);
    let sidecars = sidecars_on(&ost);
    assert!(sidecars > 0, "no file large enough for a sidecar");
    assert_eq!(files_in(&pool), 0);

    let rm = Command::new("rm").arg("-rf").arg(mnt.join("old")).status();
    assert!(rm.unwrap().success());
    assert!(
        wait_until(WAIT, || objects_on(&ost) == 0 && sidecars_on(&ost) == 0),
        "{} objects and {} sidecars left",
        objects_on(&ost),
        sidecars_on(&ost)
    );
    assert_eq!(files_in(&pool), FILES, "every deleted object's file kept");
    for entry in fs::read_dir(&pool).unwrap() {
        let meta = entry.unwrap().metadata().unwrap();
        assert_eq!(meta.len(), 0, "a kept file holds no bytes");
    }

    std::thread::sleep(QUARANTINE);
    for i in 0..FILES {
        fs::write(mnt.join(format!("new/f{i}")), content(i, 2)).unwrap();
    }
    assert_eq!(files_in(&pool), 0, "the new tree took every kept file");
    assert_eq!(objects_on(&ost), FILES);
    assert_eq!(
        sidecars_on(&ost),
        sidecars,
        "a sidecar for each large file, no stale one"
    );
    let check = |when: &str| {
        for i in 0..FILES {
            let got = fs::read(mnt.join(format!("new/f{i}"))).unwrap();
            assert!(got == content(i, 2), "new/f{i} {when}: not its own bytes");
        }
    };
    check("from the client");
    // A new client process: nothing cached, every byte from the OST.
    drop(mount);
    drop_caches();
    let _again = ForegroundMount::start(&m, &mnt, "");
    check("read by a new mount");
    let fsck = cli(&m, &["fsck"]);
    let out = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        fsck.status.success() && out.contains("fsck: clean"),
        "{out}"
    );
}
