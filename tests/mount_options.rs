//! End-to-end tests of the mount options Linux has, through real mounts made by mount(8):
//! `mount -o remount,ro` and `remount,rw` (EROFS for every change in between), the flags
//! in /proc/mounts, atime under relatime, noatime, nodiratime and strictatime, and an fstab
//! line mounted with `mount -T`.
//!
//! mount(8) runs /sbin/mount.fuse.rustre, which may be missing or another build. So each
//! test runs on a thread of its own in a private mount namespace ([`in_private_namespace`])
//! where the helper is this build; nothing outside the namespace changes. They need root and
//! /dev/fuse, and fail under `CI=true` without them.

mod common;

use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// Longest wait for the cluster to come up or a mount to appear or go.
const WAIT: Duration = Duration::from_secs(20);
/// How long the mount daemon may take to see a remount's flags (it follows mountinfo).
const FLAGS_SETTLE: Duration = Duration::from_millis(200);

/// The mount-table line of `mnt` as this thread sees it.
fn mount_line(mnt: &Path) -> Option<String> {
    let want = mnt.to_str().unwrap();
    fs::read_to_string("/proc/thread-self/mounts")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(want))
        .map(str::to_string)
}

/// The per-mount options of the mount at `mnt`.
fn flags(mnt: &Path) -> Vec<String> {
    let line = mount_line(mnt).expect("mounted");
    let opts = line.split(' ').nth(3).unwrap();
    opts.split(',').map(str::to_string).collect()
}

/// Runs a command; panics with its stderr unless it succeeds.
fn run(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `mount ARGS` (mount(8)); after a remount, waits for the daemon to see the flags.
fn mount8(args: &[&str]) -> Output {
    let out = run(Command::new("mount").args(args));
    if args.iter().any(|a| a.contains("remount")) {
        std::thread::sleep(FLAGS_SETTLE);
    }
    out
}

/// A `rustre local` cluster and the directory `mnt` to mount it on, which drop unmounts
/// (before the cluster process dies).
struct Cluster {
    mnt: PathBuf,
    _proc: Proc,
    mgs: String,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let (mgs, mnt) = (free_addr(), dir.path().join("mnt"));
        fs::create_dir(&mnt).unwrap();
        let data = dir.path().join("data");
        let data = data.to_str().unwrap();
        let args = ["local", "--data", data, "--listen", &mgs, "--osts", "2"];
        let proc = Proc::start("local", &args);
        let up = wait_until(WAIT, || {
            let out = cli(&mgs, &["status"]);
            out.status.success() && String::from_utf8_lossy(&out.stdout).matches(" up").count() >= 4
        });
        assert!(up, "cluster did not come up");
        Cluster {
            mnt,
            _proc: proc,
            mgs,
            dir,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let m = &self.mnt;
        let gone = wait_until(Duration::from_secs(3), || {
            mount_line(m).is_none()
                || Command::new("umount")
                    .arg(m)
                    .status()
                    .is_ok_and(|s| s.success())
        });
        if !gone {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

/// Asserts that `what` failed with EROFS.
fn erofs<T: std::fmt::Debug>(what: &str, r: std::io::Result<T>) {
    let e = r.expect_err(what);
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{what}: {e}");
}

/// Runs a libc call on `path`, as an io::Result.
fn c_call(path: &Path, f: impl FnOnce(*const libc::c_char) -> libc::c_int) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    match f(c.as_ptr()) {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

#[test]
fn an_fstab_line_mounts_and_remount_ro_refuses_every_change_until_remount_rw() {
    if let Some(why) = fuse_unavailable() {
        return eprintln!("skipped: {why}");
    }
    in_private_namespace(|| {
        let c = Cluster::start();
        // `mount MNT` with an fstab line (`-T`: not /etc/fstab).
        let m = c.mnt.clone();
        let fstab = c.dir.path().join("fstab");
        let line = format!(
            "{} {} fuse.rustre _netdev,allow_other,noexec,nodiratime,secret_file={} 0 0\n",
            c.mgs,
            m.display(),
            test_secret_file().display()
        );
        fs::write(&fstab, line).unwrap();
        let mp = m.to_str().unwrap();
        mount8(&["-T", fstab.to_str().unwrap(), mp]);
        let f = flags(&m);
        for want in ["rw", "nosuid", "nodev", "noexec", "relatime", "nodiratime"] {
            assert!(f.contains(&want.to_string()), "{want} not in {f:?}");
        }
        fs::write(m.join("f"), b"before").unwrap();
        fs::create_dir(m.join("d")).unwrap();

        mount8(&["-o", "remount,ro", mp]);
        assert!(flags(&m).contains(&"ro".to_string()), "{:?}", flags(&m));
        assert_eq!(
            fs::read(m.join("f")).unwrap(),
            b"before",
            "reads still work"
        );
        erofs("create", fs::write(m.join("new"), b"x"));
        erofs(
            "open for writing",
            fs::OpenOptions::new().append(true).open(m.join("f")),
        );
        erofs("mkdir", fs::create_dir(m.join("e")));
        erofs("rmdir", fs::remove_dir(m.join("d")));
        erofs("unlink", fs::remove_file(m.join("f")));
        erofs("rename", fs::rename(m.join("f"), m.join("g")));
        erofs("link", fs::hard_link(m.join("f"), m.join("h")));
        erofs("symlink", std::os::unix::fs::symlink("f", m.join("s")));
        erofs(
            "chmod",
            fs::set_permissions(m.join("f"), fs::Permissions::from_mode(0o600)),
        );
        erofs(
            "chown",
            std::os::unix::fs::chown(m.join("f"), Some(1), None),
        );
        // SAFETY (all three): valid C strings and arguments.
        erofs(
            "truncate",
            c_call(&m.join("f"), |p| unsafe { libc::truncate(p, 1) }),
        );
        erofs(
            "mkfifo",
            c_call(&m.join("p"), |p| unsafe { libc::mkfifo(p, 0o644) }),
        );
        let (name, value) = (c"user.k", b"v");
        erofs(
            "setxattr",
            c_call(&m.join("f"), |p| unsafe {
                libc::setxattr(p, name.as_ptr(), value.as_ptr().cast(), 1, 0)
            }),
        );

        mount8(&["-o", "remount,rw", mp]);
        assert!(flags(&m).contains(&"rw".to_string()), "{:?}", flags(&m));
        fs::OpenOptions::new()
            .append(true)
            .open(m.join("f"))
            .unwrap()
            .write_all(b", after")
            .unwrap();
        assert_eq!(fs::read(m.join("f")).unwrap(), b"before, after");
        fs::create_dir(m.join("e")).unwrap();

        // The helper itself, as `rustre mount` takes it; flags it is not given stay.
        run(rustre_command().args(["mount", &c.mgs, mp, "-o", "remount,noatime,nodiratime"]));
        std::thread::sleep(FLAGS_SETTLE);
        let f = flags(&m);
        for want in ["rw", "nosuid", "nodev", "noatime", "nodiratime"] {
            assert!(f.contains(&want.to_string()), "{want} not in {f:?}");
        }
        let lines = fs::read_to_string("/proc/thread-self/mounts").unwrap();
        assert_eq!(lines.matches(&format!(" {mp} ")).count(), 1, "one mount");
        // An unknown option is refused, and nothing changes.
        let out = Command::new("mount")
            .args(["-o", "remount,bogus", mp])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("unknown mount option \"bogus\""), "{err}");
        assert_eq!(flags(&m), f);
    });
}

/// atime, mtime and ctime of `p` in nanoseconds.
fn times(p: &Path) -> (i128, i128, i128) {
    let md = fs::metadata(p).unwrap();
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    (
        ns(md.atime(), md.atime_nsec()),
        ns(md.mtime(), md.mtime_nsec()),
        ns(md.ctime(), md.ctime_nsec()),
    )
}

/// Lets the clock move past the last timestamp.
fn tick() {
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn reads_and_listings_move_atime_as_linux_does() {
    if let Some(why) = fuse_unavailable() {
        return eprintln!("skipped: {why}");
    }
    in_private_namespace(|| {
        let c = Cluster::start();
        let (m, mp) = (c.mnt.clone(), c.mnt.to_str().unwrap());
        let secret = format!("secret_file={}", test_secret_file().display());
        mount8(&["-t", "fuse.rustre", &c.mgs, mp, "-o", &secret]);
        assert!(flags(&m).contains(&"relatime".to_string()), "the default");
        let f = m.join("f");
        fs::write(&f, b"data").unwrap();
        let (a0, m0, c0) = times(&f);
        tick();
        // relatime: the first read after a write moves atime (not ctime), the next does not.
        assert_eq!(fs::read(&f).unwrap(), b"data");
        let (a1, _, c1) = times(&f);
        assert!(a1 > a0 && a1 > m0, "read after write: {a0} -> {a1}");
        assert_eq!(c1, c0, "atime moves without ctime");
        tick();
        fs::read(&f).unwrap();
        assert_eq!(times(&f).0, a1, "second read");
        // A listing after a change of the directory moves its atime.
        let d = m.join("d");
        fs::create_dir(&d).unwrap();
        fs::write(d.join("x"), b"").unwrap();
        let before = times(&d).0;
        tick();
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
        let listed = times(&d).0;
        assert!(listed > before, "listing: {before} -> {listed}");

        // nodiratime: listings leave directories alone; files still move.
        mount8(&["-o", "remount,nodiratime", mp]);
        assert!(flags(&m).contains(&"nodiratime".to_string()));
        fs::write(d.join("y"), b"").unwrap();
        // Whole pages: the kernel keeps what it wrote through in its page cache, and a read
        // it serves from there never reaches the client (so the open must not keep it).
        fs::write(&f, vec![b'a'; 8192]).unwrap();
        tick();
        fs::read_dir(&d).unwrap().count();
        fs::read(&f).unwrap();
        assert_eq!(times(&d).0, listed, "nodiratime");
        assert!(
            times(&f).0 > times(&f).1,
            "files still move under nodiratime"
        );

        // noatime: nothing moves.
        mount8(&["-o", "remount,noatime", mp]);
        assert!(flags(&m).contains(&"noatime".to_string()));
        fs::write(&f, b"once more").unwrap();
        let (a2, m2, _) = times(&f);
        tick();
        fs::read(&f).unwrap();
        assert_eq!(times(&f).0, a2, "noatime");
        assert!(a2 < m2);

        // strictatime: every read (each open, at most once a second) moves it.
        mount8(&["-o", "remount,strictatime", mp]);
        let strict = flags(&m);
        assert!(
            !strict.contains(&"relatime".to_string()) && !strict.contains(&"noatime".to_string()),
            "{strict:?}"
        );
        fs::read(&f).unwrap();
        let a3 = times(&f).0;
        assert!(a3 > m2);
        std::thread::sleep(Duration::from_millis(1100));
        fs::read(&f).unwrap();
        assert!(times(&f).0 > a3, "strictatime moves atime on every read");
    });
}
