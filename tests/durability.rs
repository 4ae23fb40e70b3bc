//! What survives a power cut of an OSS, with real processes: MGS, MDS and three OSS as
//! separate `rustre` processes, a real FUSE mount, and OSS processes in the test mode that
//! keeps unsynced writes in memory (`RUSTRE_TEST_VOLATILE_WRITES=1`), so that `kill -9` of
//! one loses what it acknowledged but did not sync, as a power cut does. The rule under
//! test (docs/replication.md, "Write verifiers"): `fsync(2)` returns 0 with the bytes
//! intact, or fails; never 0 with the bytes gone.

mod common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use common::*;

/// Longer than the write-back's partial-buffer delay, so everything written has been sent
/// to the OSTs (unsynced) when it ends.
const SENT_WAIT: Duration = Duration::from_millis(2500);

/// A cluster whose OSS processes lose unsynced writes when killed, with a mount.
fn volatile_cluster() -> (ProcCluster, ForegroundMount) {
    let c = ProcCluster::start_with_oss_env(&[("RUSTRE_TEST_VOLATILE_WRITES", "1")]);
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/one", "1");
    replicated_dir(&m, "/two", "2");
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&m, &mnt, "");
    (c, mount)
}

/// How long a started OSS is given to register once it accepts connections.
const REGISTER_WAIT: Duration = Duration::from_secs(2);

/// Kills the OSS serving OST `ost` (its unsynced writes are gone), starts it again, and
/// waits until it serves, so that what follows meets the new instance rather than a dead
/// copy (which would be marked stale for being away, not for what it lost).
fn power_cut(c: &mut ProcCluster, ost: u32) {
    c.kill_oss(ost as usize);
    c.start_oss(ost as usize);
    let addr = c.oss_addrs[ost as usize].clone();
    assert!(
        wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(
            &addr
        )
        .is_ok()),
        "the OSS of OST {ost} did not come back"
    );
    std::thread::sleep(REGISTER_WAIT);
}

/// True when OST `ost` holds nothing of `ino`'s stripe 0 on disk: the power cut took the
/// unsynced bytes (the test would prove nothing otherwise).
fn lost_on_disk(c: &ProcCluster, ost: u32, ino: u64) -> bool {
    fs::metadata(c.object_file(ost, ino, 0)).map_or(true, |m| m.len() == 0)
}

fn read_back(path: &Path) -> Vec<u8> {
    drop_caches();
    fs::read(path).unwrap()
}

/// The writer still holds the file open, so the client still keeps what it wrote: the
/// OSS that lost it is given it again, and fsync returns 0 with every byte there.
#[test]
fn fsync_after_an_oss_lost_unsynced_writes_sends_them_again() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let (mut c, mut mount) = volatile_cluster();
    let m = c.mgs_addr.clone();
    for (dir, seed) in [("one", 1), ("two", 2)] {
        let path = mount.path.join(dir).join("open.bin");
        let data = random_bytes(3 << 20, seed);
        let mut f = fs::File::create(&path).unwrap();
        f.write_all(&data).unwrap();
        std::thread::sleep(SENT_WAIT);
        let (ino, copy0, _) = placement(&m, &format!("/{dir}/open.bin"));
        power_cut(&mut c, copy0[0]);
        assert!(
            lost_on_disk(&c, copy0[0], ino),
            "/{dir}: the OSS kept unsynced bytes across kill -9: the test mode is off?"
        );
        f.sync_all()
            .unwrap_or_else(|e| panic!("/{dir}: fsync with the data still held failed: {e}"));
        drop(f);
        assert!(read_back(&path) == data, "/{dir}: bytes differ after fsync");
        let on_disk = fs::read(c.object_file(copy0[0], ino, 0)).unwrap();
        assert!(
            on_disk == data,
            "/{dir}: the OST that lost the bytes has them again"
        );
    }
    assert!(mount.unmount());
}

/// The file was closed before the power cut, so the client no longer keeps its bytes: a
/// later fsync fails for a 1-copy file; for a 2-copy file the copy that lost them is
/// marked stale, fsync returns 0, the bytes read back from the other copy, and resync
/// refills the lost one.
#[test]
fn fsync_after_an_oss_lost_writes_no_longer_held_fails_or_marks_the_copy_stale() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let (mut c, mut mount) = volatile_cluster();
    let m = c.mgs_addr.clone();
    for (dir, seed) in [("one", 3), ("two", 4)] {
        let path = mount.path.join(dir).join("closed.bin");
        let data = random_bytes(3 << 20, seed);
        fs::write(&path, &data).unwrap();
        std::thread::sleep(SENT_WAIT);
        let (ino, copy0, copy1) = placement(&m, &format!("/{dir}/closed.bin"));
        power_cut(&mut c, copy0[0]);
        assert!(lost_on_disk(&c, copy0[0], ino), "/{dir}: test mode off?");
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        let synced = f.sync_all();
        drop(f);
        if dir == "one" {
            let e = synced.expect_err("fsync returned 0 for bytes the only copy lost");
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            continue;
        }
        synced.unwrap_or_else(|e| panic!("fsync of a 2-copy file failed: {e}"));
        let stat = cli_ok(&m, &["stat", "/two/closed.bin"]);
        assert!(
            stat.contains("stale slots"),
            "the copy that lost bytes is stale:\n{stat}"
        );
        assert!(read_back(&path) == data, "bytes differ after fsync");
        assert!(
            wait_until(RESYNC_WAIT, || in_sync(&m, "/two/closed.bin")),
            "the lost copy was not resynced: {}",
            cli_ok(&m, &["stat", "/two/closed.bin"])
        );
        let a = fs::read(c.object_file(copy0[0], ino, 0)).unwrap();
        let b = fs::read(c.object_file(copy1[0], ino, 0)).unwrap();
        assert!(a == data && b == data, "copies differ after resync");
    }
    assert!(mount.unmount());
}

/// Without the test mode, `kill -9` of an OSS is only a process's death: what it
/// acknowledged is in the kernel's page cache and stays (oss/instance.rs keeps the
/// instance within one boot). A file written and closed before the kill, then fsync'd
/// through a new open (`cp f dst && sync dst`), syncs with no error and no stale copy.
#[test]
fn a_killed_oss_process_loses_nothing_so_a_later_fsync_of_a_closed_file_succeeds() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let mut c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/one", "1");
    replicated_dir(&m, "/two", "2");
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&m, &mnt, "");
    for (dir, seed) in [("one", 5), ("two", 6)] {
        let path = mount.path.join(dir).join("closed.bin");
        let data = random_bytes(3 << 20, seed);
        fs::write(&path, &data).unwrap();
        std::thread::sleep(SENT_WAIT);
        let (ino, copy0, _) = placement(&m, &format!("/{dir}/closed.bin"));
        let file = c.ost_dirs[copy0[0] as usize].join("ost.instance");
        let recorded = || fs::read(&file).unwrap();
        let before = recorded();
        power_cut(&mut c, copy0[0]);
        assert_eq!(
            recorded(),
            before,
            "/{dir}: a new instance in the same boot"
        );
        let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.sync_all()
            .unwrap_or_else(|e| panic!("/{dir}: fsync after an OSS process restart: {e}"));
        drop(f);
        let stat = cli_ok(&m, &["stat", &format!("/{dir}/closed.bin")]);
        assert!(
            !stat.contains("stale slots"),
            "/{dir}: a copy went stale:\n{stat}"
        );
        assert!(read_back(&path) == data, "/{dir}: bytes differ after fsync");
        let on_disk = fs::read(c.object_file(copy0[0], ino, 0)).unwrap();
        assert!(on_disk == data, "/{dir}: the killed OSS's object");
    }
    assert!(mount.unmount());
}
