//! The crash matrix (issue 17): `kill -9` of the MDS, of an OSS and of the client, one at a
//! time, in the middle of a `tar x` onto a real mount, with real processes.
//!
//! A server's process crash loses nothing it acknowledged (its store and objects are on
//! disk or in the page cache, which outlives the process): the client rides through the
//! restart, the `tar x` completes, and the tree equals a local extraction of the same
//! tarball. A client killed mid-way loses what it had not sent, nothing else: the tree it
//! leaves is consistent (`rustre fsck` clean once its session is gone), and a `tar x` run
//! again over it completes and equals the local extraction. At the end, after `sync`, every
//! server is killed at once and restarted: all three trees are still there, byte for byte.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::*;

/// What is unpacked: the kernel's user-space headers (about 800 files, 6 MiB).
const TREE_SRC: &str = "/usr/include";
const TREE_PART: &str = "linux";
/// How long `tar x` runs before the victim is killed.
const KILL_AFTER: Duration = Duration::from_millis(800);
/// Longest a `tar x` may take, crash included.
const TAR_LIMIT: Duration = Duration::from_secs(180);
/// Session lease of the MDS: a killed client's opens and locks go this long after.
const LEASE_SECS: &str = "3";

fn tar_x(tarball: &Path, into: &Path) -> Child {
    fs::create_dir_all(into).unwrap();
    Command::new("tar")
        .arg("-xf")
        .arg(tarball)
        .arg("-C")
        .arg(into)
        .spawn()
        .expect("tar")
}

/// Lets `tar` run for [`KILL_AFTER`] and checks that it is still running (so the crash
/// that follows lands in its middle).
fn mid_way(tar: &mut Child) {
    std::thread::sleep(KILL_AFTER);
    assert!(
        tar.try_wait().unwrap().is_none(),
        "tar x ended before the crash: the tree is too small for this machine"
    );
}

/// Waits for `child` within [`TAR_LIMIT`]; whether it succeeded.
fn finished(mut child: Child) -> bool {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st.success();
        }
        if start.elapsed() > TAR_LIMIT {
            let _ = child.kill();
            panic!("tar x did not finish within {TAR_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `diff -r` of the two trees; panics with its output if they differ.
fn same_tree(want: &Path, got: &Path, what: &str) {
    let out = Command::new("diff")
        .arg("-r")
        .arg("--no-dereference")
        .arg(want)
        .arg(got)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{what}: the tree differs from the local extraction:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fsck_clean(mgs: &str, what: &str) {
    let ok = wait_until(Duration::from_secs(20), || {
        String::from_utf8_lossy(&cli(mgs, &["fsck"]).stdout).contains("fsck: clean")
    });
    assert!(
        ok,
        "{what}: fsck is not clean: {}",
        String::from_utf8_lossy(&cli(mgs, &["fsck"]).stdout)
    );
}

#[test]
fn tar_x_survives_kill_9_of_the_mds_an_oss_and_the_client() {
    if let Some(why) = fuse_or_tools_unavailable(&["tar", "diff"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let tarball = work.path().join("tree.tar");
    let made = Command::new("tar")
        .arg("-cf")
        .arg(&tarball)
        .arg("-C")
        .arg(TREE_SRC)
        .arg(TREE_PART)
        .status()
        .unwrap();
    assert!(
        made.success(),
        "cannot make the tarball of {TREE_SRC}/{TREE_PART}"
    );
    let local = work.path().join("local");
    assert!(finished(tar_x(&tarball, &local)), "local tar x");

    let mut c = ProcCluster::start_with_mds_args(&["--session-lease", LEASE_SECS]);
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let m = mount.path.clone();

    // The MDS dies mid-way and comes back on its address and store.
    let mut tar = tar_x(&tarball, &m.join("mds"));
    mid_way(&mut tar);
    c.mds.take().expect("mds").kill();
    c.start_mds();
    assert!(finished(tar), "tar x through an MDS crash failed");
    same_tree(&local, &m.join("mds"), "MDS killed");

    // An OSS dies mid-way and comes back.
    let mut tar = tar_x(&tarball, &m.join("oss"));
    mid_way(&mut tar);
    c.kill_oss(0);
    c.start_oss(0);
    assert!(finished(tar), "tar x through an OSS crash failed");
    same_tree(&local, &m.join("oss"), "OSS killed");
    fsck_clean(&c.mgs_addr, "after the server crashes");

    // The client dies mid-way: tar fails with it. Once the session is gone, the tree is
    // consistent, and tar finishes the job through a new mount.
    let mut tar = tar_x(&tarball, &m.join("client"));
    mid_way(&mut tar);
    mount.child.kill().unwrap();
    let _ = finished(tar);
    assert!(mount.unmount(), "the dead mount did not go");
    drop(mount);
    let mut mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    // What the dead client had sent to the OSTs but not reported to the MDS is past its
    // files' sizes: fsck reports such objects as too long and, once the client's session
    // is gone (its write opens with it), its repair trims them. Nothing else may be found.
    let mgs = c.mgs_addr.clone();
    let only_overlong = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("object ") || l.contains(" entry ") || l.contains("inode "))
            .all(|l| l.contains("its file says"))
    };
    let found = String::from_utf8_lossy(&cli(&mgs, &["fsck"]).stdout).into_owned();
    assert!(only_overlong(&found), "after the client crash: {found}");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let _ = cli(&mgs, &["fsck", "--repair", "--grace", "0"]);
            String::from_utf8_lossy(&cli(&mgs, &["fsck"]).stdout).contains("fsck: clean")
        }),
        "after the client crash, fsck --repair left: {}",
        String::from_utf8_lossy(&cli(&mgs, &["fsck"]).stdout)
    );
    assert!(
        finished(tar_x(&tarball, &m.join("client"))),
        "tar x over what the killed client left failed"
    );
    same_tree(&local, &m.join("client"), "client killed, tar x again");

    // Everything is synced; every server dies at once and comes back.
    let synced = Command::new("sync").arg("-f").arg(&m).status().unwrap();
    assert!(synced.success(), "sync -f");
    assert!(mount.unmount(), "unmount");
    drop(mount);
    c.mds.take().expect("mds").kill();
    for i in 0..c.oss.len() {
        c.kill_oss(i);
    }
    c.start_mds();
    for i in 0..c.oss.len() {
        c.start_oss(i);
    }
    c.wait_all_up();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    for tree in ["mds", "oss", "client"] {
        same_tree(
            &local,
            &mount.path.join(tree),
            "after every server restarted",
        );
    }
    fsck_clean(&c.mgs_addr, "after every server restarted");
}
