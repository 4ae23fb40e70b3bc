//! Unlinks and renames answered ahead of the MDS (`client/async_dirops.rs`, issue 17),
//! through real mounts: they overlap their round trips, yet this client's next calls come
//! after them (a create of the name just renamed away, a listing), another client sees
//! them (at once where they went ahead under a directory capability, the default), and an
//! unmount right after a burst of them loses none.

mod common;

use std::fs;
use std::time::Duration;

use common::*;

/// Files the burst renames and makes again (and as many it unlinks).
const FILES: usize = 200;
/// Files unlinked right before the unmount.
const LAST_BURST: usize = 300;
/// Bursts of unlinks each followed at once by a listing, and files in each.
const LISTED_BURSTS: usize = 8;
const LISTED_BURST: usize = 100;

fn names(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

/// A cluster with two mounts: A with `a_opts` and its metrics served at the address
/// returned, B with default options.
fn two_mounts(a_opts: &str) -> (ProcCluster, ForegroundMount, ForegroundMount, String) {
    let c = ProcCluster::start();
    let (mnt_a, mnt_b) = (c.path("a"), c.path("b"));
    fs::create_dir(&mnt_a).unwrap();
    fs::create_dir(&mnt_b).unwrap();
    let metrics = free_addr();
    let opts = format!("metrics={metrics},{a_opts}");
    let a = ForegroundMount::start(&c.mgs_addr, &mnt_a, &opts);
    let b = ForegroundMount::start(&c.mgs_addr, &mnt_b, "");
    (c, a, b, metrics)
}

#[test]
fn changes_answered_ahead_keep_this_client_s_order_and_reach_every_client() {
    if skip_without_fuse() {
        return;
    }
    let (c, mut a, b, metrics) = two_mounts("async_dirops");
    let dir = a.path.join("d");
    fs::create_dir(&dir).unwrap();
    for i in 0..FILES {
        fs::write(dir.join(format!("f{i:03}")), format!("old {i}")).unwrap();
        fs::write(dir.join(format!("g{i:03}")), b"gone soon").unwrap();
    }
    let ahead = || {
        mount_counter(&metrics, "rustre_client_unlinks_ahead_total")
            + mount_counter(&metrics, "rustre_client_renames_ahead_total")
    };
    let before = ahead();
    // Each name made again right after it was renamed away: the create must follow the
    // rename at the MDS (else it truncates and fills the old file, which the rename then
    // moves), and the listing must show neither the names unlinked nor the old ones.
    for i in 0..FILES {
        fs::remove_file(dir.join(format!("g{i:03}"))).unwrap();
        let f = dir.join(format!("f{i:03}"));
        fs::rename(&f, dir.join(format!("r{i:03}"))).unwrap();
        fs::write(&f, format!("new {i}")).unwrap();
    }
    let listed = names(&dir);
    let mut expected: Vec<String> = (0..FILES).map(|i| format!("f{i:03}")).collect();
    expected.extend((0..FILES).map(|i| format!("r{i:03}")));
    assert_eq!(listed, expected, "this client's listing after its changes");
    let went_ahead = ahead() - before;
    assert!(
        went_ahead >= FILES as f64,
        "only {went_ahead} of {} unlinks and renames were answered ahead",
        2 * FILES
    );
    assert_eq!(
        mount_counter(&metrics, "rustre_client_dirops_ahead_failed_total"),
        0.0
    );
    let contents_ok = |d: &std::path::Path, step: usize| {
        (0..FILES).step_by(step).all(|i| {
            fs::read_to_string(d.join(format!("f{i:03}"))).ok() == Some(format!("new {i}"))
                && fs::read_to_string(d.join(format!("r{i:03}"))).ok() == Some(format!("old {i}"))
        })
    };
    assert!(contents_ok(&dir, 1), "contents after the renames");
    // The other client: the same names and contents, within its feed's lease.
    let other = b.path.join("d");
    assert!(
        wait_until(Duration::from_secs(5), || names(&other) == expected),
        "the other client lists {:?}",
        names(&other)
    );
    assert!(contents_ok(&other, 17), "the other client's contents");
    // Bursts of unlinks, each listed at once: the listing goes behind the unlinks still on
    // their way (in their stream, not after their answers) and none of the names shows.
    // (Sent past them, a listing showed some in about one round of three.)
    for round in 0..LISTED_BURSTS {
        for i in 0..LISTED_BURST {
            fs::write(dir.join(format!("l{round}-{i:03}")), b"x").unwrap();
        }
        for i in 0..LISTED_BURST {
            fs::remove_file(dir.join(format!("l{round}-{i:03}"))).unwrap();
        }
        assert_eq!(names(&dir), expected, "a listing right after burst {round}");
    }
    // A burst of unlinks and the unmount at once: the session's close comes after them.
    for i in 0..LAST_BURST {
        fs::write(dir.join(format!("h{i:03}")), b"x").unwrap();
    }
    let before = ahead();
    for i in 0..LAST_BURST {
        fs::remove_file(dir.join(format!("h{i:03}"))).unwrap();
    }
    assert!(ahead() - before >= (LAST_BURST / 2) as f64);
    // Answered faster than a round trip, most went to the MDS in batches
    // (`client/dirops_send.rs`), which the unmount waits for as well.
    let batched = mount_counter(&metrics, "rustre_client_dirops_ahead_batched_total");
    assert!(
        batched > 0.0,
        "no change answered ahead was sent in a batch"
    );
    assert!(a.unmount(), "unmount");
    drop(b);
    let fresh = c.path("c");
    fs::create_dir(&fresh).unwrap();
    let m = ForegroundMount::start(&c.mgs_addr, &fresh, "");
    assert_eq!(names(&m.path.join("d")), expected, "a new client's listing");
    assert!(
        wait_until(Duration::from_secs(30), || String::from_utf8_lossy(
            &cli(&c.mgs_addr, &["fsck"]).stdout
        )
        .contains("fsck: clean")),
        "fsck: {}",
        String::from_utf8_lossy(&cli(&c.mgs_addr, &["fsck"]).stdout)
    );
}

#[test]
fn a_mount_waits_for_every_unlink_and_rename_where_it_may_not_go_ahead() {
    // With `noasync_dirops`, on a `sync` mount even when asked for, and by default in a
    // directory another mount made (no capability: d0, made in the first round).
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("m");
    fs::create_dir(&mnt).unwrap();
    for (round, (opts, dir_name)) in [
        ("async_dirops,noasync_dirops", "d0"),
        ("async_dirops,sync", "d1"),
        ("", "d0"),
    ]
    .into_iter()
    .enumerate()
    {
        let metrics = free_addr();
        let mut m = ForegroundMount::start(&c.mgs_addr, &mnt, &format!("metrics={metrics},{opts}"));
        let dir = m.path.join(dir_name);
        if round < 2 {
            fs::create_dir(&dir).unwrap();
        }
        for i in 0..20 {
            fs::write(dir.join(format!("f{i}")), b"x").unwrap();
        }
        for i in 0..20 {
            fs::rename(dir.join(format!("f{i}")), dir.join(format!("r{i}"))).unwrap();
            fs::remove_file(dir.join(format!("r{i}"))).unwrap();
        }
        assert!(names(&dir).is_empty());
        assert_eq!(mds_calls(&metrics, "Rename"), 20.0, "{opts}");
        assert_eq!(mds_calls(&metrics, "Unlink"), 20.0, "{opts}");
        for counter in [
            "rustre_client_unlinks_ahead_total",
            "rustre_client_renames_ahead_total",
        ] {
            assert_eq!(mount_counter(&metrics, counter), 0.0, "{opts}: {counter}");
        }
        assert!(m.unmount());
    }
}

/// Rounds of [`a_mount_goes_ahead_in_the_directories_it_made_and_another_sees_it_at_once`],
/// and the files each round unlinks ahead: enough that the MDS is still working through
/// them when the other mount looks (it takes them one at a time in a directory).
const CAPPED_ROUNDS: usize = 20;
const UNLINKS_PER_ROUND: usize = 60;

/// By default a mount answers unlinks and renames ahead in the directories it made (it
/// holds their capabilities), and another mount that looks into one right after sees
/// every change answered: its lookup waits at the MDS until the first mount's changes in
/// flight are answered and the capability is back (rustre-server mds/dir_caps.rs). Each
/// round: A makes a directory, a file `f` ("old"), a file `t` ("new") and files `x*`,
/// then renames `t` over `f` and unlinks every `x*` (answered ahead); B, told at once,
/// lists the directory, looks for `x0` and reads `f`. Without the recall B finds most of
/// the `x*` still there.
#[test]
fn a_mount_goes_ahead_in_the_directories_it_made_and_another_sees_it_at_once() {
    if skip_without_fuse() {
        return;
    }
    let (_c, a, b, metrics) = two_mounts("");
    fs::create_dir(a.path.join("p")).unwrap();
    let ahead = || {
        mount_counter(&metrics, "rustre_client_unlinks_ahead_total")
            + mount_counter(&metrics, "rustre_client_renames_ahead_total")
    };
    let mut wrong = Vec::new();
    for i in 0..CAPPED_ROUNDS {
        let (da, db) = (
            a.path.join("p").join(format!("d{i}")),
            b.path.join("p").join(format!("d{i}")),
        );
        fs::create_dir(&da).unwrap();
        fs::write(da.join("f"), format!("old {i}")).unwrap();
        fs::write(da.join("t"), format!("new {i}")).unwrap();
        for k in 0..UNLINKS_PER_ROUND {
            fs::write(da.join(format!("x{k}")), b"x").unwrap();
        }
        fs::rename(da.join("t"), da.join("f")).unwrap();
        for k in 0..UNLINKS_PER_ROUND {
            fs::remove_file(da.join(format!("x{k}"))).unwrap();
        }
        let listed = names(&db);
        let x_there = db.join("x0").exists();
        let read = fs::read_to_string(db.join("f")).unwrap_or_else(|e| e.to_string());
        if read != format!("new {i}") || x_there || listed != ["f"] {
            wrong.push((i, read, x_there, listed));
        }
    }
    assert!(
        wrong.is_empty(),
        "B saw changes A had answered missing: {wrong:?}"
    );
    let went_ahead = ahead();
    let changes = CAPPED_ROUNDS * (UNLINKS_PER_ROUND + 1);
    assert!(
        went_ahead >= (changes / 2) as f64,
        "only {went_ahead} of {changes} unlinks and renames went ahead"
    );
    assert_eq!(
        mount_counter(&metrics, "rustre_client_dirops_ahead_failed_total"),
        0.0
    );
    // Recalled directories stay recalled: A's changes in them wait now.
    let before = ahead();
    fs::write(a.path.join("p/d0/y"), b"y").unwrap();
    fs::remove_file(a.path.join("p/d0/y")).unwrap();
    assert_eq!(ahead(), before, "went ahead in a directory given back");
    drop(b);
}

/// A mount killed while it holds the capabilities of the directories it made costs another
/// mount's walk of them one wait of the MDS's give-up time (5 s), not one per directory: the
/// holder that does not answer a recall loses all of them at once. The tree is all there.
#[test]
fn a_killed_mount_s_directories_cost_another_mount_one_wait() {
    const DIRS: usize = 12;
    if skip_without_fuse() {
        return;
    }
    let (_c, mut a, b, _) = two_mounts("");
    let top = a.path.join("p");
    fs::create_dir(&top).unwrap();
    for i in 0..DIRS {
        let d = top.join(format!("d{i}"));
        fs::create_dir(&d).unwrap();
        fs::create_dir(d.join("e")).unwrap();
        fs::write(d.join("e/f"), b"f").unwrap();
    }
    let _ = a.child.kill();
    let _ = a.child.wait();
    let started = std::time::Instant::now();
    let found = std::process::Command::new("find")
        .arg(b.path.join("p"))
        .output()
        .unwrap();
    let took = started.elapsed();
    assert!(found.status.success(), "{found:?}");
    let listed = String::from_utf8_lossy(&found.stdout).lines().count();
    assert_eq!(
        listed,
        1 + 3 * DIRS,
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
    assert!(
        took < Duration::from_secs(15),
        "the walk took {took:?} (one give-up of 5 s expected)"
    );
}

/// A directory a mount made is complete in its cache (a name it does not hold is answered
/// "no such name" at once). Once another mount looks into it (the capability goes back),
/// that other mount's new names are found at once, before the feed reports them.
#[test]
fn a_name_another_mount_makes_in_a_directory_given_back_is_found_at_once() {
    if skip_without_fuse() {
        return;
    }
    let (_c, a, b, _metrics) = two_mounts("");
    let mut missed = Vec::new();
    for i in 0..CAPPED_ROUNDS * 2 {
        let (da, db) = (a.path.join(format!("d{i}")), b.path.join(format!("d{i}")));
        fs::create_dir(&da).unwrap();
        fs::write(db.join("new"), format!("b {i}")).unwrap();
        match fs::read_to_string(da.join("new")) {
            Ok(s) if s == format!("b {i}") => {}
            other => missed.push((i, other)),
        }
    }
    assert!(
        missed.is_empty(),
        "A did not find B's new names: {missed:?}"
    );
}
