//! Owner, mode and time changes of a file open for writing are kept by the client until
//! the close (client/files/pending.rs, issue 17): the writer sees them at once, another
//! mount sees exactly what a setattr at a time would have left once the file is closed or
//! fsynced, and the order of the changes and of writes after them still counts. The close
//! sends the size report and the kept changes as one MDS call (`ReportAndSetAttr`), and a
//! kept change the MDS refuses still fails the close, with the size reported.

mod common;

use std::fs;
use std::io::Write;
use std::os::fd::IntoRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use common::*;

/// The tests of this file run one at a time: a test that forks (a cluster, a mount, `tar`)
/// while another holds a file open hands the child a copy of that descriptor, whose close
/// at the child's exec is a FUSE flush of the file. That flush sends what the client kept,
/// so a refusal the test waits for at its own close(2) can go to the child's instead.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long another mount may take to see a change once it is at the MDS (the feed lease
/// and the attribute TTL, with room for a loaded machine).
const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// Sets `path`'s mode, owner and times the way tar does after writing it (through the
/// path; the caller holds the file open for writing).
fn set_like_tar(path: &Path, mode: u32, uid: u32, gid: u32, mtime: i64) {
    let t = filetime(mtime);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
    std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn filetime(sec: i64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(sec as u64)
}

/// (mode bits, uid, gid, mtime seconds, size) of `path`.
fn stat(path: &Path) -> (u32, u32, u32, i64, u64) {
    let m = fs::metadata(path).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid(), m.mtime(), m.len())
}

/// Waits until `path` shows `want` (on another mount), and says what it showed last.
fn seen(path: &Path, want: (u32, u32, u32, i64, u64)) -> (u32, u32, u32, i64, u64) {
    let mut last = stat(path);
    wait_until(SEEN_WITHIN, || {
        last = stat(path);
        last == want
    });
    last
}

struct Mounts {
    _c: ProcCluster,
    a: ForegroundMount,
    b: ForegroundMount,
}

fn two_mounts() -> Mounts {
    two_mounts_with("")
}

/// Two mounts of one cluster; mount `a` with options `a_opts`.
fn two_mounts_with(a_opts: &str) -> Mounts {
    let c = ProcCluster::start();
    let (pa, pb): (PathBuf, PathBuf) = (c.path("a"), c.path("b"));
    fs::create_dir(&pa).unwrap();
    fs::create_dir(&pb).unwrap();
    let a = ForegroundMount::start(&c.mgs_addr, &pa, a_opts);
    let b = ForegroundMount::start(&c.mgs_addr, &pb, "");
    Mounts { _c: c, a, b }
}

#[test]
fn changes_kept_until_close_reach_other_mounts_in_order() {
    if skip_without_fuse() {
        return;
    }
    let _serial = one_at_a_time();
    let m = two_mounts();
    let (a, b) = (&m.a.path, &m.b.path);

    // tar's order as root: times, owner, mode (with setuid), then close.
    let f = a.join("tarred");
    let mut w = fs::File::create(&f).unwrap();
    w.write_all(b"twelve bytes").unwrap();
    set_like_tar(&f, 0o4755, 1000, 1001, 1_000_000);
    assert_eq!(
        stat(&f),
        (0o4755, 1000, 1001, 1_000_000, 12),
        "the writer's view"
    );
    drop(w);
    let want = (0o4755, 1000, 1001, 1_000_000, 12);
    assert_eq!(
        seen(&b.join("tarred"), want),
        want,
        "another mount after close"
    );

    // chmod then chown: the chown clears setuid and setgid (group-execute), as one
    // setattr at a time would.
    let f = a.join("chown-last");
    let w = fs::File::create(&f).unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o6755)).unwrap();
    std::os::unix::fs::chown(&f, Some(7), Some(7)).unwrap();
    assert_eq!(stat(&f).0, 0o0755);
    drop(w);
    let g = b.join("chown-last");
    assert_eq!(seen(&g, (0o0755, 7, 7, stat(&g).3, 0)).0, 0o0755);

    // A write after a kept mtime moves the mtime to the write's time.
    let f = a.join("written-after");
    let mut w = fs::File::create(&f).unwrap();
    w.set_modified(filetime(5_000)).unwrap();
    w.write_all(b"later").unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    drop(w);
    let g = b.join("written-after");
    wait_until(SEEN_WITHIN, || stat(&g).4 == 5);
    let mtime = stat(&g).3;
    assert!((now - mtime).abs() < 60, "mtime {mtime}, written at {now}");

    // fsync sends them: another mount sees them while the file is still open.
    let f = a.join("synced");
    let mut w = fs::File::create(&f).unwrap();
    w.write_all(b"data").unwrap();
    fs::set_permissions(&f, fs::Permissions::from_mode(0o640)).unwrap();
    w.sync_all().unwrap();
    let g = b.join("synced");
    let got = seen(&g, (0o640, 0, 0, stat(&f).3, 4));
    assert_eq!((got.0, got.4), (0o640, 4), "after fsync, before close");
    drop(w);
}

#[test]
fn a_tree_unpacked_by_tar_compares_equal_on_another_mount() {
    if skip_without_fuse() {
        return;
    }
    let _serial = one_at_a_time();
    let m = two_mounts();
    let scratch = tempfile::tempdir().unwrap();
    let src = scratch.path().join("src");
    fs::create_dir(&src).unwrap();
    // Files with owners, modes (setuid among them) and old mtimes, and a directory.
    sh(
        &src,
        "mkdir -p d/e && for i in 1 2 3 4 5 6 7 8; do echo file $i > d/f$i; done && \
         chown 1000:1000 d/f1 && chown 12:34 d/e && chmod 4755 d/f2 && chmod 600 d/f3 && \
         chmod 2710 d/f4 && touch -d '2001-02-03 04:05:06' d/f5 d/e && \
         tar cf ../tree.tar d",
    );
    let tarball = scratch.path().join("tree.tar");
    let out = Command::new("tar")
        .arg("xf")
        .arg(&tarball)
        .arg("-C")
        .arg(&m.a.path)
        .output()
        .unwrap();
    assert!(out.status.success(), "tar x: {out:?}");
    // `tar d` compares mode, owner, mtime, size and contents of every member.
    let mut last = None;
    let same = wait_until(SEEN_WITHIN, || {
        let out = Command::new("tar")
            .arg("df")
            .arg(&tarball)
            .arg("-C")
            .arg(&m.b.path)
            .output()
            .unwrap();
        let ok = out.status.success();
        last = Some(out);
        ok
    });
    assert!(same, "tar d on the other mount: {last:?}");
}

#[test]
fn the_close_sends_the_size_report_and_the_kept_changes_as_one_call() {
    if skip_without_fuse() {
        return;
    }
    let _serial = one_at_a_time();
    let metrics = free_addr();
    let m = two_mounts_with(&format!("metrics={metrics}"));
    let (a, b) = (&m.a.path, &m.b.path);
    let calls = |op: &str| mds_calls(&metrics, op);
    // The one call of the close: a report with the changes, or (data on the MDS, the
    // default) the same carrying the bytes too.
    let closes = || calls("ReportAndSetAttr") + calls("CloseInline");
    let before = (closes(), calls("SetAttr"));

    // What tar does: an exclusive create (which tells the client the MDS does not squash
    // its root, and that the new file has no capability), a write, then through the
    // descriptor times, owner, mode, and the close.
    let f = a.join("tarred");
    let mut w = fs::File::create_new(&f).unwrap();
    w.write_all(b"twelve bytes").unwrap();
    let t = filetime(1_000_000);
    w.set_times(fs::FileTimes::new().set_accessed(t).set_modified(t))
        .unwrap();
    std::os::unix::fs::fchown(&w, Some(1000), Some(1001)).unwrap();
    w.set_permissions(fs::Permissions::from_mode(0o4755))
        .unwrap();
    drop(w);

    let after = (closes(), calls("SetAttr"));
    assert_eq!(
        after.1 - before.1,
        0.0,
        "no setattr of its own: the changes went with the size report"
    );
    assert!(
        after.0 - before.0 >= 1.0,
        "the close sent no ReportAndSetAttr nor CloseInline ({before:?} -> {after:?})"
    );
    let want = (0o4755, 1000, 1001, 1_000_000, 12);
    assert_eq!(seen(&b.join("tarred"), want), want, "another mount");
}

/// A user writing a file that another mount's root gives away before the close.
const WRITER: u32 = 1000;
/// Who the file is given to.
const TAKER: u32 = 2000;

#[test]
fn a_kept_change_the_mds_refuses_fails_the_close_and_the_size_lands() {
    if skip_without_fuse() {
        return;
    }
    let _serial = one_at_a_time();
    let m = two_mounts_with("allow_other");
    let (a, b) = (m.a.path.clone(), &m.b.path);
    let dir = a.join("shared");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();

    // The writer, in a thread of its own acting as WRITER (setfsuid is per thread): it
    // writes, chmods through its descriptor (kept: it owns the file), waits, then closes.
    let (kept_tx, kept_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let path = dir.join("given-away");
    let writer = std::thread::spawn(move || {
        // SAFETY: plain syscalls changing this thread's file-system ids.
        unsafe {
            libc::setfsgid(WRITER);
            libc::setfsuid(WRITER);
        }
        let mut w = fs::File::create_new(&path).unwrap();
        w.write_all(b"twelve bytes").unwrap();
        w.set_permissions(fs::Permissions::from_mode(0o600))
            .unwrap();
        kept_tx.send(()).unwrap();
        go_rx.recv().unwrap();
        let fd = w.into_raw_fd();
        // SAFETY: `fd` is this thread's own descriptor, closed once.
        let r = unsafe { libc::close(fd) };
        if r == 0 {
            0
        } else {
            std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
        }
    });
    kept_rx.recv().unwrap();
    let f = dir.join("given-away");
    assert_eq!(
        stat(&f),
        (0o600, WRITER, WRITER, stat(&f).3, 12),
        "the writer's view"
    );

    // Root on the other mount gives the file away: the writer's chmod is no longer its to
    // make, and the MDS refuses it at the close.
    let g = b.join("shared/given-away");
    std::os::unix::fs::chown(&g, Some(TAKER), Some(TAKER)).unwrap();
    go_tx.send(()).unwrap();
    let closed = writer.join().unwrap();
    assert_eq!(closed, libc::EPERM, "close(2) reports the refused chmod");
    let got = seen(&g, (0o644, TAKER, TAKER, stat(&g).3, 12));
    assert_eq!(
        (got.0, got.1, got.4),
        (0o644, TAKER, 12),
        "the size landed, the mode did not change"
    );
}

/// Holds a new file open for writing in a process of its own (no test fork inherits the
/// descriptor, whose close at the child's exec would be a FUSE flush sending the kept
/// changes): creates `argv[1]` mode 0600, writes, chmods it 0644 through the path, says
/// "kept", and keeps it open until its stdin closes.
const HOLDER: &str = r#"
import os, sys
p = sys.argv[1]
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
os.write(fd, b"readable now")
os.chmod(p, 0o644)
print("kept", flush=True)
sys.stdin.read()
os.close(fd)
"#;

/// An open of a file whose mode change is kept goes to the MDS, which checks the mode it
/// holds: the kept change must reach it first. Here another user reads a file made
/// readable while its writer still holds it open. (pjdfstest open::etxtbsy hit the same
/// refusal: it closes a copy of `sleep`, chmods it 0755 and execs it, and the kernel's
/// release of the writing handle, which sends the kept chmod, can come after the exec's
/// open; the MDS then refused the exec with EACCES.)
#[test]
fn an_open_after_a_kept_chmod_is_checked_against_the_new_mode() {
    if let Some(why) = fuse_or_tools_unavailable(&["python3", "setpriv"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let _serial = one_at_a_time();
    let m = two_mounts_with("allow_other");
    let a = m.a.path.clone();
    let f = a.join("made-readable");
    let mut holder = Command::new("python3")
        .args(["-c", HOLDER])
        .arg(&f)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut said,
    )
    .unwrap();
    assert_eq!(said.trim(), "kept");
    assert_eq!(stat(&f).0, 0o644, "the writer's mount shows the change");
    let read = run_as(TAKER, TAKER, &a, "cat made-readable");
    drop(holder.stdin.take());
    holder.wait().unwrap();
    assert!(
        read.status.success(),
        "another user's open was refused: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert_eq!(read.stdout, b"readable now");
}
