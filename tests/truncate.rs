//! Truncates with real processes (MGS, MDS and OSS as separate `rustre` processes, a real FUSE
//! mount): sizes past what a file's stripes hold are EFBIG with nothing changed, and an MDS
//! that dies between committing a truncate and cutting its objects leaves no old bytes to
//! show (docs/replication.md, "Truncate rule").

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rustre_proto::msg::MAX_OBJECT_BYTES;

/// The MDS's test-only crash point (`rustre_server::mds::truncate`).
const EXIT_AFTER_TRUNCATE_COMMIT: (&str, &str) =
    ("RUSTRE_TEST_MDS_EXIT_AFTER_TRUNCATE_COMMIT", "1");
/// The exit status of an MDS stopped there.
const MDS_TEST_EXIT_STATUS: i32 = 75;
/// Longest wait for an MDS to stop at the crash point, or for a worker to cut.
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn truncates_and_writes_past_what_the_stripes_hold_are_efbig_and_change_nothing() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start_on(vec![None, None], &[]);
    let m = c.mgs_addr.clone();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let _mount = ForegroundMount::start(&m, &mnt, "");
    let data = random_bytes(1 << 20, 5);
    let f = mnt.join("f");
    fs::write(&f, &data).unwrap();

    // One stripe holds 16 TiB: truncate(1) to 20 TiB fails with EFBIG.
    let out = Command::new("truncate")
        .args(["-s", "20T"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("File too large"), "{stderr}");
    let err = fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(MAX_OBJECT_BYTES + 1)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    // Nothing changed: not the size the MDS keeps, not the data.
    assert_eq!(number(&c.stat("/f"), "size"), data.len() as u64);
    assert_eq!(fs::metadata(&f).unwrap().len(), data.len() as u64);
    assert!(fs::read(&f).unwrap() == data);

    // A write past the bound: EFBIG from write(2), the size unmoved. (One that starts below
    // it is cut short by the kernel at a page boundary, as POSIX allows.)
    let w = fs::OpenOptions::new().write(true).open(&f).unwrap();
    let err = w.write_at(b"xy", MAX_OBJECT_BYTES).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    w.sync_all().unwrap();
    drop(w);
    assert_eq!(number(&c.stat("/f"), "size"), data.len() as u64);
    assert!(fs::read(&f).unwrap() == data);

    // Two stripes hold twice as much: 20 TiB is a (sparse) size they can have.
    cli_ok(&m, &["setstripe", "/f2", "-c", "2", "-S", "1M"]);
    assert_eq!(number(&c.stat("/f2"), "stripe_count"), 2);
    let f2 = mnt.join("f2");
    let status = Command::new("truncate")
        .args(["-s", "20T"])
        .arg(&f2)
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(number(&c.stat("/f2"), "size"), 20 << 40);
    let err = fs::OpenOptions::new()
        .write(true)
        .open(&f2)
        .unwrap()
        .set_len(2 * MAX_OBJECT_BYTES + 1)
        .unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EFBIG), "{err}");
    assert_eq!(number(&c.stat("/f2"), "size"), 20 << 40);
    fs::remove_file(&f2).unwrap();
}

/// Starts `truncate -s SIZE PATH` without waiting for it.
fn spawn_truncate(size: &str, path: &std::path::Path) -> std::process::Child {
    Command::new("truncate")
        .args(["-s", size])
        .arg(path)
        .stdin(Stdio::null())
        .spawn()
        .unwrap()
}

/// Waits for the MDS to stop at its test-only crash point.
fn wait_for_mds_crash(c: &mut ProcCluster) {
    let mds = c.mds.as_mut().unwrap();
    let mut status = None;
    assert!(
        wait_until(WAIT, || {
            status = mds.child.try_wait().unwrap();
            status.is_some()
        }),
        "the MDS did not stop after the truncate committed"
    );
    assert_eq!(status.unwrap().code(), Some(MDS_TEST_EXIT_STATUS));
    c.mds = None;
}

#[test]
fn an_mds_dying_between_a_truncates_commit_and_its_cut_leaves_no_old_bytes() {
    if skip_without_fuse() {
        return;
    }
    let mut c = ProcCluster::start_on(vec![None], &[EXIT_AFTER_TRUNCATE_COMMIT]);
    let m = c.mgs_addr.clone();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let old = random_bytes(1 << 20, 9);
    assert!(old.iter().filter(|b| **b == 0).count() < old.len() / 100);

    // 1. The client is gone too (killed while its truncate waited): the MDS's worker cuts.
    let mut mount = ForegroundMount::start(&m, &mnt, "");
    let g = mnt.join("g");
    fs::write(&g, &old).unwrap();
    let g_ino = number(&c.stat("/g"), "inode");
    let g_object = c.object_file(0, g_ino, 0);
    assert_eq!(file_len(&g_object), Some(old.len() as u64));
    let mut truncate = spawn_truncate("0", &g);
    wait_for_mds_crash(&mut c);
    let _ = mount.child.kill();
    let _ = mount.child.wait();
    mount.unmount();
    let _ = truncate.wait();
    // Committed (the size is 0 once the MDS is back), not cut: the old bytes are on the OST.
    assert_eq!(file_len(&g_object), Some(old.len() as u64));
    c.start_mds_with_env(&[]);
    c.wait_all_up();
    assert_eq!(number(&c.stat("/g"), "size"), 0);
    assert!(
        wait_until(WAIT, || file_len(&g_object) == Some(0)),
        "the worker never cut the object: {:?} bytes",
        file_len(&g_object)
    );
    // Extending shows zeros, never the old bytes.
    let _mount = ForegroundMount::start(&m, &mnt, "");
    let mut f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&g)
        .unwrap();
    f.set_len(old.len() as u64).unwrap();
    let mut back = Vec::new();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), old.len());
    assert!(back.iter().all(|b| *b == 0), "old bytes after an extend");
    drop(f);
    drop(_mount);

    // 2. The client waits (it resends the call): the restarted MDS answers only once the
    // cut is made.
    c.mds.take().unwrap().kill();
    c.start_mds_with_env(&[EXIT_AFTER_TRUNCATE_COMMIT]);
    c.wait_all_up();
    let _mount = ForegroundMount::start(&m, &mnt, "");
    let h = mnt.join("h");
    let mut w = fs::File::create(&h).unwrap();
    w.write_all(&old).unwrap();
    drop(w);
    let h_object = c.object_file(0, number(&c.stat("/h"), "inode"), 0);
    let mut truncate = spawn_truncate("100", &h);
    wait_for_mds_crash(&mut c);
    assert_eq!(file_len(&h_object), Some(old.len() as u64));
    c.start_mds_with_env(&[]);
    let mut status = None;
    assert!(
        wait_until(Duration::from_secs(40), || {
            status = truncate.try_wait().unwrap();
            status.is_some()
        }),
        "the truncate never returned"
    );
    assert!(status.unwrap().success(), "truncate failed: {status:?}");
    // Answered after the cut.
    assert_eq!(file_len(&h_object), Some(100));
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&h)
        .unwrap();
    f.set_len(old.len() as u64).unwrap();
    let mut back = vec![0u8; old.len()];
    f.read_exact_at(&mut back, 0).unwrap();
    assert!(back[..100] == old[..100]);
    assert!(
        back[100..].iter().all(|b| *b == 0),
        "old bytes after an extend"
    );
}
