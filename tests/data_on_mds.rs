//! Data on the MDS (docs/data-on-mds.md), end to end: real processes, two real mounts.
//!
//! A tree of small files (and a few larger ones) unpacked with `tar` through mount A goes
//! to the MDS at each small file's close: no object holds their bytes, one `CloseInline`
//! per small file and no `ReportSize`. Both mounts read the tree back equal to the source
//! (A after dropping the kernel's caches, B cold). Then, through B: an append, an
//! overwrite in place, a shrinking and an extending truncate, and a write through a
//! descriptor kept after a close through its twin; each read back through A as a local
//! file system would give it. `cp --sparse=always` copies every byte (st_blocks counts
//! the kept bytes), `rustre fsck` is clean, and after `rm -rf` nothing is left.

mod common;

use std::fs;
use std::path::Path;

use common::*;

/// Small files in the tree (each at most 64 KiB: kept on the MDS).
const SMALL_FILES: usize = 120;
/// Larger files in the tree (past the MDS's limit: on the OSTs).
const LARGE_FILES: usize = 3;

/// Writes the source tree under `dir`: small files of 1 byte to 64 KiB in three
/// directories, and [`LARGE_FILES`] files of 100 KiB to 300 KiB.
fn source_tree(dir: &Path) -> u64 {
    let mut large_bytes = 0;
    for d in ["a", "b/c", "d"] {
        fs::create_dir_all(dir.join(d)).unwrap();
    }
    for i in 0..SMALL_FILES {
        let len = match i % 4 {
            0 => 1 + i,
            1 => 4096,
            2 => 20_000 + 97 * i,
            _ => 65_536,
        };
        let sub = ["a", "b/c", "d"][i % 3];
        fs::write(
            dir.join(sub).join(format!("f{i}")),
            random_bytes(len, i as u64),
        )
        .unwrap();
    }
    for i in 0..LARGE_FILES {
        let len = 100_000 + 100_000 * i;
        large_bytes += len as u64;
        fs::write(
            dir.join(format!("large{i}")),
            random_bytes(len, 1000 + i as u64),
        )
        .unwrap();
    }
    large_bytes
}

/// What `path` reads through mount `mnt`.
fn read(mnt: &Path, path: &str) -> Vec<u8> {
    fs::read(mnt.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn small_files_live_on_the_mds_until_written_and_read_the_same_everywhere() {
    if skip_without_fuse() {
        return;
    }
    if let Some(why) = fuse_or_tools_unavailable(&["tar", "diff", "cp"]) {
        panic!("{why}");
    }
    // On whatever RUSTRE_TEST_INLINE_MAX says for the rest of the suite.
    let c = ProcCluster::start_with_mds_args(&["--inline-max", "65536"]);
    let (pa, pb, src) = (c.path("a"), c.path("b"), c.path("src"));
    for p in [&pa, &pb, &src] {
        fs::create_dir(p).unwrap();
    }
    let large_bytes = source_tree(&src);
    let tarball = c.path("tree.tar");
    sh(&src, &format!("tar cf {} .", tarball.display()));
    let metrics = free_addr();
    let a = ForegroundMount::start(&c.mgs_addr, &pa, &format!("metrics={metrics}"));
    let b = ForegroundMount::start(&c.mgs_addr, &pb, "");
    let tree = pa.join("tree");
    fs::create_dir(&tree).unwrap();
    sh(&tree, &format!("tar xf {}", tarball.display()));

    // One call at each small file's close, and nothing of them on the OSTs.
    let closes = mds_calls(&metrics, "CloseInline");
    assert!(
        closes >= SMALL_FILES as f64,
        "{closes} closes carried their bytes, for {SMALL_FILES} small files"
    );
    let on_osts = c.objects_bytes();
    assert!(
        on_osts < large_bytes + (64 << 10),
        "{on_osts} bytes of objects for {large_bytes} bytes of large files"
    );

    // Read back equal: through A with the kernel's caches dropped, through B cold.
    sh(&pa, "sync; echo 3 > /proc/sys/vm/drop_caches");
    sh(&pa, &format!("diff -r tree {}", src.display()));
    sh(&pb, &format!("diff -r tree {}", src.display()));

    // Written through B: each file moves to its objects first; A sees what a local file
    // system would hold.
    let mut want_f0 = fs::read(src.join("a/f0")).unwrap();
    sh(&pb, "printf 'appended' >> tree/a/f0");
    want_f0.extend_from_slice(b"appended");
    assert_eq!(read(&pa, "tree/a/f0"), want_f0);

    let mut want_f1 = fs::read(src.join("b/c/f1")).unwrap();
    sh(
        &pb,
        "printf 'XYZ' | dd of=tree/b/c/f1 bs=1 seek=100 conv=notrunc status=none",
    );
    want_f1[100..103].copy_from_slice(b"XYZ");
    assert_eq!(read(&pa, "tree/b/c/f1"), want_f1);

    let mut want_f2 = fs::read(src.join("d/f2")).unwrap();
    sh(&pb, "truncate -s 1000 tree/d/f2");
    want_f2.truncate(1000);
    assert_eq!(read(&pa, "tree/d/f2"), want_f2);
    sh(&pb, "truncate -s 5000 tree/d/f2");
    want_f2.resize(5000, 0);
    assert_eq!(read(&pa, "tree/d/f2"), want_f2, "zeros past the cut");

    // A descriptor kept after its twin's close (which took the bytes to the MDS) writes on.
    sh(
        &pa,
        "exec 3>tree/kept; printf 'first' >&3; exec 4>&3; exec 3>&-; printf ' then more' >&4; \
         exec 4>&-",
    );
    assert_eq!(read(&pb, "tree/kept"), b"first then more");

    // A sparse-aware copy sees data, not a hole.
    let want_f3 = fs::read(src.join("a/f3")).unwrap();
    sh(&pb, "cp --sparse=always tree/a/f3 tree/f3.copy");
    assert_eq!(read(&pa, "tree/f3.copy"), want_f3);
    let blocks = sh(&pa, "stat -c %b tree/a/f3");
    assert!(blocks.trim().parse::<u64>().unwrap() * 512 >= want_f3.len() as u64);

    let found = String::from_utf8_lossy(&cli(&c.mgs_addr, &["fsck"]).stdout).into_owned();
    assert!(found.contains("fsck: clean"), "{found}");
    sh(&pa, "rm -rf tree");
    assert!(fs::read_dir(&pb).unwrap().next().is_none());
    drop((a, b));
}

#[test]
fn a_replicated_file_leaves_the_mds_with_an_oss_dead_and_its_copy_is_resynced() {
    if skip_without_fuse() {
        return;
    }
    let mut c = ProcCluster::start_with_mds_args(&["--inline-max", "65536"]);
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/rep", "2");
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&m, &mnt, "");
    let first = random_bytes(5000, 21);
    fs::write(mnt.join("rep/small"), &first).unwrap();
    let (ino, copy0, copy1) = placement(&m, "/rep/small");
    assert!(
        !c.object_file(copy0[0], ino, 0).exists() && !c.object_file(copy1[0], ino, 0).exists(),
        "the bytes went to the MDS, not the objects"
    );

    // An append with the OSS of copy 1 dead: the move to the objects marks that copy stale
    // and the append lands on copy 0.
    c.kill_oss(copy1[0] as usize);
    let mut want = first.clone();
    want.extend_from_slice(b" and more");
    sh(&mnt, "printf ' and more' >> rep/small");
    let stat = cli_ok(&m, &["stat", "/rep/small"]);
    assert!(stat.contains("stale slots"), "copy 1 marked stale:\n{stat}");
    drop_caches();
    assert_eq!(fs::read(mnt.join("rep/small")).unwrap(), want);

    // The OSS returns; resync makes copy 1 equal to copy 0.
    c.start_oss(copy1[0] as usize);
    assert!(
        wait_until(RESYNC_WAIT, || in_sync(&m, "/rep/small")),
        "copy 1 was not resynced: {}",
        cli_ok(&m, &["stat", "/rep/small"])
    );
    assert_eq!(fs::read(c.object_file(copy1[0], ino, 0)).unwrap(), want);
    assert!(mount.unmount());
    let fsck = cli_ok(&m, &["fsck"]);
    assert!(fsck.contains("fsck: clean"), "{fsck}");
}
