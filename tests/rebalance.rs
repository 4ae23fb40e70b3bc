//! `rustre rebalance` with real processes (issue 19): four OSTs on small tmpfs file systems
//! filled to about 60 % through a mount, two empty ones added; a rebalance killed about
//! halfway and run again brings every OST within 10 points of the mean, fsck is clean and
//! every file reads back as written. And rebalance is the administrator's only.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rustre_server::mds::migrate::MIGRATE_FROZEN_LEASE_MS;
use serde_json::Value;

/// Size of each OST's tmpfs.
const OST_FS: &str = "256M";
const OST_FS_BYTES: u64 = 256 << 20;
/// OSTs filled first, and OSTs added empty afterwards.
const FULL_OSTS: usize = 4;
const NEW_OSTS: usize = 2;
/// Share of the first OSTs' capacity the files take.
const FILL_SHARE: f64 = 0.6;
/// Largest distance from the mean usage asked for (percentage points).
const THRESHOLD_PCT: f64 = 10.0;
/// The first run's rate (MB/s), slow enough to be caught halfway.
const SLOW_RATE: &str = "20";
/// Longest wait for heartbeats to show usage, or for the first run to get halfway.
const WAIT: Duration = Duration::from_secs(60);
/// Time for a migrated file's old objects to be deleted (the MDS's retire grace of 5 s and
/// its sweep) and for the heartbeats to show it.
const RETIRED_GONE: Duration = Duration::from_secs(8);

/// tmpfs mounts (in the test's private mount namespace), lazily unmounted when dropped.
struct Tmpfs(Vec<PathBuf>);

impl Tmpfs {
    fn mount(dirs: &[PathBuf]) -> Tmpfs {
        let mut mounted = Tmpfs(Vec::new());
        for d in dirs {
            fs::create_dir_all(d).unwrap();
            let st = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={OST_FS}"), "tmpfs"])
                .arg(d)
                .status()
                .expect("mount");
            assert!(st.success(), "mount -t tmpfs on {}", d.display());
            mounted.0.push(d.clone());
        }
        mounted
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = Command::new("umount").arg("-l").arg(d).status();
        }
    }
}

/// Size of test file `i`: 2 to 6 MiB, not a multiple of anything.
fn size_of(i: usize) -> usize {
    (2 << 20) + (i * 789_133) % (4 << 20)
}

/// Every OST's (index, used, total) as `rustre df --json` shows the MGS's map.
fn df(mgs: &str) -> Vec<(u64, f64)> {
    let out: Value = serde_json::from_str(&cli_ok(mgs, &["df", "--json"])).unwrap();
    out["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["target"].as_str().unwrap().starts_with("OST") && t["up"] == true)
        .map(|t| {
            let (used, total) = (
                t["used_bytes"].as_u64().unwrap(),
                t["size_bytes"].as_u64().unwrap(),
            );
            let index = t["target"].as_str().unwrap()[3..].parse().unwrap();
            (index, used as f64 / total.max(1) as f64)
        })
        .collect()
}

/// Largest distance of an OST's usage from the mean, in percentage points.
fn spread_pct(usage: &[(u64, f64)]) -> f64 {
    let mean = usage.iter().map(|u| u.1).sum::<f64>() / usage.len().max(1) as f64;
    usage
        .iter()
        .map(|u| (u.1 - mean).abs() * 100.0)
        .fold(0.0, f64::max)
}

/// The `rustre rebalance` command line.
fn rebalance_command(mgs: &str, extra: &[&str]) -> Command {
    let mut cmd = rustre_command();
    cmd.args([
        "--mgs",
        mgs,
        "rebalance",
        "--threshold",
        &THRESHOLD_PCT.to_string(),
    ]);
    cmd.args(extra);
    cmd
}

#[test]
fn rebalance_killed_halfway_and_run_again_evens_out_six_osts() {
    if skip_without_fuse() {
        return;
    }
    in_private_namespace(rebalance_in_namespace);
}

fn rebalance_in_namespace() {
    let scratch = tempfile::tempdir().unwrap();
    let fs_dirs: Vec<PathBuf> = (0..FULL_OSTS + NEW_OSTS)
        .map(|i| scratch.path().join(format!("fs{i}")))
        .collect();
    // Declared before the cluster: unmounted after it, once no OSS holds files there.
    let _tmpfs = Tmpfs::mount(&fs_dirs);
    let ost_dir = |i: usize| fs_dirs[i].join("ost");
    let mut c = ProcCluster::start_on((0..FULL_OSTS).map(|i| Some(ost_dir(i))).collect(), &[]);
    let m = c.mgs_addr.clone();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&m, &mnt, "");

    // Fill the four OSTs to about 60 % with files of one stripe, each OST in turn through a
    // directory of its own (round-robin placement evens out only over many files, and the
    // creates of a loaded machine may find an OST briefly down: this fill is what the
    // test starts from, not what it tests).
    cli_ok(&m, &["mkdir", "/data"]);
    for i in 0..FULL_OSTS {
        let dir = format!("/data/on{i}");
        cli_ok(&m, &["mkdir", &dir]);
        cli_ok(&m, &["setstripe", &dir, "--ost", &i.to_string()]);
    }
    let goal = (FILL_SHARE * (FULL_OSTS as u64 * OST_FS_BYTES) as f64) as usize;
    let (mut files, mut written) = (0, 0);
    while written + size_of(files) <= goal {
        let data = random_bytes(size_of(files), files as u64 + 1);
        let dir = format!("data/on{}", files % FULL_OSTS);
        fs::write(mnt.join(format!("{dir}/f{files:03}")), &data).unwrap();
        written += data.len();
        files += 1;
    }
    eprintln!("{files} files, {written} bytes written");
    assert!(
        wait_until(WAIT, || df(&m).iter().all(|u| u.1 > FILL_SHARE - 0.15)),
        "the OSTs never showed the data: {:?}",
        df(&m)
    );

    // Two empty OSTs join.
    for i in FULL_OSTS..FULL_OSTS + NEW_OSTS {
        assert_eq!(c.add_ost(ost_dir(i)), i);
    }
    c.wait_all_up();
    assert!(wait_until(WAIT, || df(&m).len() == FULL_OSTS + NEW_OSTS));
    let before = df(&m);
    eprintln!("before: {before:?}");
    assert!(spread_pct(&before) > THRESHOLD_PCT, "{before:?}");

    // A throttled run, SIGKILLed once the new OSTs hold about half of what they will.
    let mean = before.iter().map(|u| u.1).sum::<f64>() / before.len() as f64;
    let to_move = (mean * (NEW_OSTS as u64 * OST_FS_BYTES) as f64) as u64;
    let new_bytes = || {
        (FULL_OSTS..FULL_OSTS + NEW_OSTS)
            .map(|i| object_bytes(&ost_dir(i).join("objects")))
            .sum::<u64>()
    };
    let started = std::time::Instant::now();
    let mut first = rebalance_command(&m, &["--max-rate", SLOW_RATE])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let halfway = wait_until(WAIT, || {
        new_bytes() >= to_move / 2 || first.try_wait().unwrap().is_some()
    });
    let still_running = first.try_wait().unwrap().is_none();
    first.kill().unwrap_or(());
    first.wait().unwrap();
    let killed_at = std::time::Instant::now();
    let moved = new_bytes();
    eprintln!(
        "killed after {:?} with {moved} of about {to_move} bytes on the new OSTs",
        started.elapsed()
    );
    assert!(
        halfway && still_running,
        "the first run ended before halfway ({moved} bytes)"
    );
    assert!(
        moved < to_move * 9 / 10,
        "killed too late: {moved} of {to_move}"
    );
    // The old objects of the files moved go a few seconds after each commit (the MDS's
    // retire grace), then heartbeats bring the usage.
    std::thread::sleep(RETIRED_GONE);
    let midway = df(&m);
    assert!(
        spread_pct(&midway) > THRESHOLD_PCT,
        "balanced before the second run: {midway:?}"
    );

    // Run again: it finishes the job.
    let out = rebalance_command(&m, &[]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the second run failed");
    assert!(stdout.contains("every OST within"), "{stdout}");
    let mut after = Vec::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            after = df(&m);
            spread_pct(&after) <= THRESHOLD_PCT
        }),
        "not within {THRESHOLD_PCT} points of the mean: {after:?}"
    );
    eprintln!("after: {after:?}");
    for i in FULL_OSTS..FULL_OSTS + NEW_OSTS {
        assert!(
            object_bytes(&ost_dir(i).join("objects")) > 0,
            "nothing on OST {i}"
        );
    }

    // A file the killed run was migrating stays its migration's until the lease runs out
    // (the MDS then gives it up); had it been frozen, its readers wait until then (the
    // frozen lease, within the client's fence wait). Let that run out before reading.
    let busy: u64 = stdout
        .lines()
        .find_map(|l| {
            l.split(", ")
                .find_map(|p| p.strip_suffix(" being migrated already"))
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no busy count in {stdout}"));
    if busy > 0 {
        let lease = Duration::from_millis(MIGRATE_FROZEN_LEASE_MS) + RETIRED_GONE;
        eprintln!("{busy} file(s) held by the killed run's migration: waiting out its lease");
        std::thread::sleep(lease.saturating_sub(killed_at.elapsed()));
    }

    // fsck is clean, and every file reads back as written (through a fresh mount too).
    let phase = std::time::Instant::now();
    let fsck = cli(&m, &["fsck"]);
    assert!(
        fsck.status.success(),
        "fsck: {}{}",
        String::from_utf8_lossy(&fsck.stdout),
        String::from_utf8_lossy(&fsck.stderr)
    );
    eprintln!("fsck: {:?}", phase.elapsed());
    check_files(&mnt, files);
    eprintln!("fsck and reading every file: {:?}", phase.elapsed());
    assert!(mount.unmount());
    drop_caches();
    let _again = ForegroundMount::start(&m, &mnt, "");
    check_files(&mnt, files);
}

/// Every test file under `mnt` holds what was written.
fn check_files(mnt: &Path, files: usize) {
    for i in 0..files {
        let path = format!("data/on{}/f{i:03}", i % FULL_OSTS);
        let got = fs::read(mnt.join(&path)).unwrap();
        assert!(
            got == random_bytes(size_of(i), i as u64 + 1),
            "{path} differs"
        );
    }
}

#[test]
fn rebalance_needs_the_admin_credential() {
    let keys = tempfile::tempdir().unwrap();
    let admin = keys.path().join("admin.secret");
    let out = Command::new(rustre_bin())
        .arg("gen-secret")
        .arg(&admin)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin: &'static str = Box::leak(admin.to_str().unwrap().to_string().into_boxed_str());
    let c = ProcCluster::start_spec(ClusterSpec {
        mds_env: vec![("RUSTRE_ADMIN_SECRET_FILE", admin)],
        ..ClusterSpec::default()
    });
    let refused = cli(&c.mgs_addr, &["rebalance"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success(),
        "rebalance ran without the admin secret"
    );
    assert!(stderr.contains("admin credential"), "{stderr}");
    // With it: the OSTs share one file system, so they are balanced already.
    let ok = cli_ok(&c.mgs_addr, &["--admin-secret-file", admin, "rebalance"]);
    assert!(ok.contains("0 files moved"), "{ok}");
}
