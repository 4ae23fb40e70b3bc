//! A client silent past its session lease is evicted (docs/replication.md, "A writer's
//! intent"), with real processes: MGS, an MDS with a short lease, three OSS, and a real
//! FUSE mount whose daemon is stopped (`SIGSTOP`) longer than the lease, as a hung or
//! cut-off client would be. The MDS ends its session with a 2-copy file open for writing,
//! so it distrusts every copy but the first and resyncs them; the client, back, must not
//! go on writing through its old handle (a write resync would not see), and the copies
//! must end equal.

mod common;

use std::fs;
use std::io::Write;
use std::time::Duration;

use common::*;

/// The MDS's session lease in this test (`rustre mds --session-lease`, seconds), as a
/// number and as the argument.
const LEASE_SECS: u64 = 3;
const LEASE_ARG: &str = "3";
/// How long the mount daemon is stopped: the lease, the MDS's reaping interval (2 s) and
/// a margin.
const STOPPED_FOR: Duration = Duration::from_secs(LEASE_SECS + 5);
/// Long enough for the daemon, running again, to try a renewal (every third of the lease)
/// and learn its session expired.
const RENEWAL_WAIT: Duration = Duration::from_secs(LEASE_SECS);

#[test]
fn a_client_silent_past_its_lease_is_evicted_and_the_copies_end_equal() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start_with_mds_args(&["--session-lease", LEASE_ARG]);
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/two", "2");
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&m, &mnt, "");
    let path = mount.path.join("two").join("held.bin");
    let synced = random_bytes(1 << 20, 11);
    let mut f = fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    f.write_all(&synced).unwrap();
    f.sync_all().unwrap();

    signal(mount.child.id(), libc::SIGSTOP);
    std::thread::sleep(STOPPED_FOR);
    signal(mount.child.id(), libc::SIGCONT);
    std::thread::sleep(RENEWAL_WAIT);

    // The session ended with the file open for writing: the MDS distrusts the second copy.
    let stat = cli_ok(&m, &["stat", "/two/held.bin"]);
    assert!(
        stat.contains("stale slots") || in_sync(&m, "/two/held.bin"),
        "the MDS kept trusting both copies of a dead writer:\n{stat}"
    );
    // The old handle is evicted: what it writes never reaches the file.
    let late = random_bytes(64 << 10, 12);
    let written = f.write_all(&late).and_then(|_| f.sync_all());
    let e = written.expect_err("an evicted handle wrote and synced");
    assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
    drop(f);

    // A new open sees what was synced, and the copies are made equal.
    drop_caches();
    assert!(
        fs::read(&path).unwrap() == synced,
        "the file is not what was synced before the eviction"
    );
    assert!(
        wait_until(RESYNC_WAIT, || in_sync(&m, "/two/held.bin")),
        "the copies were not resynced: {}",
        cli_ok(&m, &["stat", "/two/held.bin"])
    );
    // The client works on under its new session.
    fs::write(&path, &late).unwrap();
    drop_caches();
    assert!(
        fs::read(&path).unwrap() == late,
        "a new handle's write was lost"
    );
    assert!(mount.unmount());
}
