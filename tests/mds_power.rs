//! What survives a power cut of the MDS, with real processes: MGS, MDS and OSS as separate
//! `rustre` processes and a real FUSE mount, the MDS in the test mode that keeps commits no
//! sync covered in its own memory (`RUSTRE_TEST_VOLATILE_META=1`), so that `kill -9` of it
//! loses them as a power cut does (a plain `kill -9` loses nothing: the commits are in the
//! page cache).
//!
//! The rule under test (docs/operations.md, "Durability"): on a relaxed MDS (the default),
//! a file that was fsync'd, a file whose directory was fsync'd, and every change older than
//! the MDS's commit interval (1 s) survive; what is lost is the last moments of changes
//! nobody fsynced, and always the newest ones (a suffix of what one process did, as ext4
//! loses its last seconds). On an MDS run with `--durable` nothing acknowledged is lost.

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;

const VOLATILE: (&str, &str) = ("RUSTRE_TEST_VOLATILE_META", "1");
/// Files created without fsync right before the cut.
const FRESH: usize = 200;
/// Longer than the MDS's commit interval (`COMMIT_INTERVAL`, 1 s) with room to spare.
const PAST_COMMIT_INTERVAL: Duration = Duration::from_millis(2500);
/// Cuts tried before concluding the emulation never lost anything (a periodic sync may
/// land between the last create and the cut).
const CUT_TRIES: usize = 3;

/// Kills the MDS (its unsynced commits are gone) and starts it again on its store.
fn power_cut_mds(c: &mut ProcCluster) {
    c.mds.take().expect("mds").kill();
    c.start_mds();
    c.wait_all_up();
}

/// Creates `FRESH` files of 4 KiB under `dir` as fast as one process can, no fsync.
fn create_fresh(dir: &Path) {
    fs::create_dir(dir).unwrap();
    for i in 0..FRESH {
        fs::write(dir.join(format!("n{i}")), [7u8; 4096]).unwrap();
    }
}

/// Which of `dir`'s `FRESH` files exist, in creation order.
fn present(dir: &Path) -> Vec<bool> {
    (0..FRESH)
        .map(|i| dir.join(format!("n{i}")).exists())
        .collect()
}

/// True when the files present are the first ones made: losses only at the end.
fn prefix_only(p: &[bool]) -> bool {
    let kept = p.iter().take_while(|x| **x).count();
    p[kept..].iter().all(|x| !*x)
}

fn fsck_repaired_clean(mgs: &str) {
    assert!(
        wait_until(Duration::from_secs(30), || {
            let _ = cli(mgs, &["fsck", "--repair", "--grace", "0"]);
            String::from_utf8_lossy(&cli(mgs, &["fsck"]).stdout).contains("fsck: clean")
        }),
        "fsck --repair left: {}",
        String::from_utf8_lossy(&cli(mgs, &["fsck"]).stdout)
    );
}

#[test]
fn a_power_cut_of_a_relaxed_mds_loses_only_the_last_unsynced_moments() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut c = ProcCluster::start_on(vec![None], &[VOLATILE]);
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let m = mount.path.clone();

    // Older than the commit interval: on disk by the MDS's own periodic sync.
    fs::create_dir(m.join("old")).unwrap();
    for i in 0..20 {
        fs::write(m.join(format!("old/a{i}")), format!("old {i}")).unwrap();
    }
    std::thread::sleep(PAST_COMMIT_INTERVAL);
    // A file fsync'd, and files in a directory fsync'd: on disk when those returned.
    fs::create_dir(m.join("f")).unwrap();
    let mut f = fs::File::create(m.join("f/synced")).unwrap();
    std::io::Write::write_all(&mut f, b"fsynced bytes").unwrap();
    f.sync_all().unwrap();
    drop(f);
    fs::create_dir(m.join("d")).unwrap();
    for i in 0..5 {
        fs::write(m.join(format!("d/x{i}")), b"").unwrap();
    }
    fs::File::open(m.join("d")).unwrap().sync_all().unwrap();

    // Then files nobody syncs, and the power goes right after.
    let mut lost_any = false;
    for t in 0..CUT_TRIES {
        let fresh = m.join(format!("fresh{t}"));
        create_fresh(&fresh);
        power_cut_mds(&mut c);
        // Seen through a mount that starts after the cut (no cache from before it).
        let mnt2 = c.path(&format!("mnt2-{t}"));
        fs::create_dir(&mnt2).unwrap();
        let second = ForegroundMount::start(&c.mgs_addr, &mnt2, "");
        let p = present(&second.path.join(format!("fresh{t}")));
        let kept = p.iter().filter(|x| **x).count();
        eprintln!("try {t}: {kept} of {FRESH} unsynced creates survived the cut");
        assert!(
            prefix_only(&p),
            "try {t}: the cut lost files made before others it kept: {p:?}"
        );
        for i in 0..20 {
            assert_eq!(
                fs::read_to_string(second.path.join(format!("old/a{i}"))).unwrap(),
                format!("old {i}"),
                "try {t}: a file older than the commit interval"
            );
        }
        assert_eq!(
            fs::read(second.path.join("f/synced")).unwrap(),
            b"fsynced bytes",
            "try {t}: the fsync'd file"
        );
        for i in 0..5 {
            assert!(
                second.path.join(format!("d/x{i}")).exists(),
                "try {t}: a file of the fsync'd directory"
            );
        }
        drop(second);
        if kept < FRESH {
            lost_any = true;
            break;
        }
    }
    assert!(
        lost_any,
        "{CUT_TRIES} power cuts lost none of {FRESH} unsynced creates: the emulation did not \
         cut anything, so this test proved nothing"
    );
    drop(mount);
    // Objects of files whose creates were lost are orphans: a repair deletes them.
    fsck_repaired_clean(&c.mgs_addr);
}

#[test]
fn a_power_cut_of_a_durable_mds_loses_nothing_acknowledged() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut c = ProcCluster::start_spec(ClusterSpec {
        ost_dirs: vec![None],
        mds_env: vec![VOLATILE],
        mds_args: vec!["--durable"],
        ..ClusterSpec::default()
    });
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    create_fresh(&mount.path.join("fresh"));
    power_cut_mds(&mut c);
    let mnt2 = c.path("mnt2");
    fs::create_dir(&mnt2).unwrap();
    let second = ForegroundMount::start(&c.mgs_addr, &mnt2, "");
    let p = present(&second.path.join("fresh"));
    assert!(
        p.iter().all(|x| *x),
        "a durable MDS lost acknowledged creates: {} of {FRESH} left",
        p.iter().filter(|x| **x).count()
    );
    drop(second);
    drop(mount);
    fsck_repaired_clean(&c.mgs_addr);
}
