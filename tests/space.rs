//! Space with real processes: an OST on a 64 MiB ext4 file system (a loop mount) beside an
//! ordinary one. Filling the small OST gives the writer ENOSPC, other files keep working,
//! a file's own blocks can still be rewritten, new files avoid the full OST, and its space
//! comes back after `rm` (docs/architecture.md, "Layouts and striping").

mod common;

use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// Size of the small OST's file system.
const SMALL_FS: &str = "64M";
/// Most bytes the test writes to fill it.
const FILL_MAX_BYTES: usize = 256 << 20;
/// Longest wait for capacity to reach the MDS (heartbeats) or space to come back.
const WAIT: Duration = Duration::from_secs(30);

/// An ext4 file system in an image file, loop-mounted; unmounted (lazily) when dropped, so
/// nothing is left behind whatever the test did.
struct LoopFs {
    mnt: PathBuf,
    /// Holds the image; removed after the unmount ([`Drop`] runs before the fields drop).
    _scratch: tempfile::TempDir,
}

impl LoopFs {
    /// A file system of `size` for a test that also mounts rustre, or `None` when this host
    /// cannot give one (which fails the test under `CI`).
    fn for_mount_test(size: &str) -> Option<LoopFs> {
        if let Some(why) = fuse_unavailable() {
            eprintln!("skipped: {why}");
            return None;
        }
        let scratch = tempfile::tempdir().unwrap();
        match LoopFs::mount(scratch, size) {
            Ok(fs) => Some(fs),
            Err(why) => {
                eprintln!("skipped: {}", unavailable_here(why));
                None
            }
        }
    }

    /// Makes and mounts a file system of `size` (`truncate -s` syntax) in `scratch`, or
    /// says why it cannot.
    fn mount(scratch: tempfile::TempDir, size: &str) -> Result<LoopFs, String> {
        let dir = scratch.path();
        // SAFETY: identity getter.
        if unsafe { libc::geteuid() } != 0 {
            return Err("loop mounts need root".into());
        }
        let img = dir.join("small.img");
        let mnt = dir.join("small");
        fs::create_dir_all(&mnt).map_err(|e| e.to_string())?;
        let run = |cmd: &mut Command| -> Result<(), String> {
            let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "{cmd:?}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        };
        run(Command::new("truncate").args(["-s", size]).arg(&img))?;
        // No blocks reserved for root: the OSS runs as root and would fill those too.
        run(Command::new("mkfs.ext4")
            .args(["-q", "-F", "-m", "0"])
            .arg(&img))?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt))?;
        Ok(LoopFs {
            mnt,
            _scratch: scratch,
        })
    }
}

impl Drop for LoopFs {
    fn drop(&mut self) {
        // Lazy: an OSS killed a moment ago may still hold files open; the loop device goes
        // with the last reference (mount -o loop sets autoclear).
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}

/// The use% of OST `index` as the MGS's map has it (`rustre df`).
fn ost_use_percent(mgs: &str, index: u32) -> Option<u64> {
    let out = cli(mgs, &["df"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let name = format!("OST{index:04}");
    let line = text.lines().find(|l| l.starts_with(&name))?;
    line.split_whitespace()
        .last()?
        .trim_end_matches('%')
        .parse()
        .ok()
}

/// Writes `chunk`-sized pieces to `path` until an error, or `max` bytes; then fsyncs. The
/// error (from a write or from the fsync) and the bytes written before it.
fn fill(path: &Path, chunk: &[u8], max: usize) -> (Option<std::io::Error>, usize) {
    let mut f = fs::File::create(path).unwrap();
    let mut written = 0;
    while written < max {
        if let Err(e) = f.write_all(chunk) {
            return (Some(e), written);
        }
        written += chunk.len();
    }
    (f.sync_all().err(), written)
}

#[test]
fn a_full_ost_gives_enospc_new_files_avoid_it_and_rm_brings_space_back() {
    // Declared before the cluster: dropped after it, once no OSS holds its files.
    let Some(small) = LoopFs::for_mount_test(SMALL_FS) else {
        return;
    };
    let c = ProcCluster::start_on(vec![None, Some(small.mnt.join("ost1"))], &[]);
    let m = c.mgs_addr.clone();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let _mount = ForegroundMount::start(&m, &mnt, "");

    // A directory whose files all go to the small OST, full or not, and one whose files go
    // to the other OST.
    cli_ok(&m, &["mkdir", "/small"]);
    cli_ok(&m, &["setstripe", "/small", "--ost", "1"]);
    cli_ok(&m, &["mkdir", "/big"]);
    cli_ok(&m, &["setstripe", "/big", "--ost", "0"]);
    let other = random_bytes(4 << 20, 4);
    fs::write(mnt.join("big/other"), &other[..1 << 20]).unwrap();
    let chunk = random_bytes(1 << 20, 3);
    let (err, written) = fill(&mnt.join("small/fill"), &chunk, FILL_MAX_BYTES);
    let err = err.unwrap_or_else(|| panic!("{written} bytes fit on a {SMALL_FS} OST"));
    eprintln!("ENOSPC after {written} bytes written: {err}");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    assert_eq!(err.kind(), ErrorKind::StorageFull);
    assert!(written >= 16 << 20, "ENOSPC after only {written} bytes");
    assert_eq!(osts(&c.stat("/small/fill")), vec![1]);

    // The full OST still takes rewrites of what its files hold, as a full local file
    // system does (a database rewriting its pages): the first MiB of the file, in place.
    let rewrite = random_bytes(1 << 20, 5);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("small/fill"))
        .unwrap();
    f.write_all_at(&rewrite, 0).unwrap();
    f.sync_all().unwrap();
    drop(f);
    let mut head = vec![0; 1 << 20];
    fs::File::open(mnt.join("small/fill"))
        .unwrap()
        .read_exact_at(&mut head, 0)
        .unwrap();
    assert!(head == rewrite, "the rewritten MiB reads back otherwise");
    // Growing it is still ENOSPC.
    let grow = fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("small/fill"))
        .unwrap();
    let grown = (&grow).write_all(&chunk).and_then(|_| grow.sync_all());
    let err = grown.expect_err("the full OST took more data");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    drop(grow);

    // Other files keep working meanwhile: one made before grows, its start still there.
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("big/other"))
        .unwrap();
    f.write_all(&other[1 << 20..]).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert!(fs::read(mnt.join("big/other")).unwrap() == other);

    // Once the map shows the small OST full, new files avoid it: with two OSTs round-robin
    // would alternate, so eight new files in a row on OST 0 say it is skipped.
    assert!(
        wait_until(WAIT, || ost_use_percent(&m, 1).is_some_and(|p| p >= 95)),
        "the map never showed OST 1 full: {}",
        cli_ok(&m, &["df"])
    );
    let mut in_a_row = 0;
    let mut n = 0;
    assert!(
        wait_until(WAIT, || {
            n += 1;
            let name = format!("new{n}");
            fs::write(mnt.join(&name), &chunk[..64 << 10]).unwrap();
            let on = osts(&c.stat(&format!("/{name}")));
            in_a_row = if on == [0] { in_a_row + 1 } else { 0 };
            in_a_row >= 8
        }),
        "new files kept going to the full OST"
    );

    // rm gives the space back: the OST has room again, and takes data.
    let fill_ino = number(&c.stat("/small/fill"), "inode");
    fs::remove_file(mnt.join("small/fill")).unwrap();
    assert!(
        wait_until(WAIT, || !c.object_file(1, fill_ino, 0).exists()),
        "the objects of the removed file stayed"
    );
    assert!(
        wait_until(WAIT, || ost_use_percent(&m, 1).is_some_and(|p| p < 50)),
        "the space never came back: {}",
        cli_ok(&m, &["df"])
    );
    let again = random_bytes(16 << 20, 6);
    let mut f = fs::File::create(mnt.join("small/again")).unwrap();
    f.write_all(&again).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert!(fs::read(mnt.join("small/again")).unwrap() == again);
    // And new files go there again, once the MDS's map (followed once a second) shows the
    // room: round-robin alternates, so some of a few new files land on OST 1.
    let mut i = 0;
    assert!(
        wait_until(WAIT, || {
            i += 1;
            let name = format!("later{i}");
            fs::write(mnt.join(&name), b"y").unwrap();
            osts(&c.stat(&format!("/{name}"))) == [1]
        }),
        "no new file went to the OST that has room again"
    );
}

/// Size of the file system the MDS and an OST share in the shared-disk test.
const SHARED_FS: &str = "256M";
/// Size of each xattr value that fills the MDS's store.
const XATTR_BYTES: usize = 64 << 10;
/// Most xattrs the test sets before the MDS must have said ENOSPC (what the OST's reserve
/// leaves above the MDS's on 256 MiB, 32 MiB: about 500 of them).
const XATTRS_MAX: usize = 2_000;
/// Most directories made after that before the MDS must have said ENOSPC (what is left
/// above the reserve is less than one more xattr: 64 KiB, a few hundred directories).
const DIRS_MAX: usize = 20_000;

/// Sets xattr `user.fill` of `path` to `value`.
fn set_xattr(path: &Path, value: &[u8]) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated path and name, a value of the given length.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            c"user.fill".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The MDS's store and the only OST on one small file system, as `rustre local` puts them
/// on one disk: data fills it up to the OST's reserve (ENOSPC), metadata up to the MDS's
/// (ENOSPC), and removals still work, so `rm` brings everything back. Before the reserves,
/// the OST filled the disk, the store's next journal write failed, and the MDS answered EIO
/// to everything, `rm` included, until it was restarted (docs/operations.md, "Full disks").
#[test]
fn a_disk_shared_by_the_mds_and_an_ost_fills_and_empties_with_enospc_never_eio() {
    // Declared before the cluster: dropped after it, once no server holds its files.
    let Some(shared) = LoopFs::for_mount_test(SHARED_FS) else {
        return;
    };
    let c = ProcCluster::start_spec(ClusterSpec {
        ost_dirs: vec![Some(shared.mnt.join("ost0"))],
        mds_dir: Some(shared.mnt.join("mds")),
        ..ClusterSpec::default()
    });
    let m = c.mgs_addr.clone();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let _mount = ForegroundMount::start(&m, &mnt, "");

    // Data first: ENOSPC at the OST's reserve.
    let chunk = random_bytes(1 << 20, 7);
    let (err, written) = fill(&mnt.join("big"), &chunk, FILL_MAX_BYTES);
    let err = err.unwrap_or_else(|| panic!("{written} bytes fit on a {SHARED_FS} disk"));
    eprintln!("data: ENOSPC after {written} bytes: {err}");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");

    // Then metadata: big xattrs on new files, until the MDS's reserve says ENOSPC.
    fs::create_dir(mnt.join("meta")).unwrap();
    // Random: the store compresses, and would make little of a repeated byte.
    let value = random_bytes(XATTR_BYTES, 9);
    let mut set = 0;
    let err = loop {
        assert!(set < XATTRS_MAX, "{set} xattrs of {XATTR_BYTES} bytes fit");
        let path = mnt.join(format!("meta/x{set}"));
        if let Err(e) = fs::File::create(&path).and_then(|_| set_xattr(&path, &value)) {
            break e;
        }
        set += 1;
    };
    eprintln!("metadata: ENOSPC after {set} xattrs: {err}");
    assert_eq!(err.raw_os_error(), Some(libc::ENOSPC), "{err}");
    // What still fits above the reserve goes (a directory is smaller than an xattr), until
    // it too is refused.
    let refused = (0..DIRS_MAX)
        .find_map(|i| fs::create_dir(mnt.join(format!("meta/d{i}"))).err())
        .unwrap_or_else(|| panic!("{DIRS_MAX} directories fit after the xattrs"));
    eprintln!("metadata: then ENOSPC at a directory: {refused}");
    assert_eq!(refused.raw_os_error(), Some(libc::ENOSPC), "{refused}");

    // Removals are taken, and bring the room back.
    fs::remove_file(mnt.join("big")).unwrap_or_else(|e| panic!("rm on a full disk: {e}"));
    fs::remove_dir_all(mnt.join("meta")).unwrap_or_else(|e| panic!("rm -r: {e}"));
    let again = random_bytes(8 << 20, 8);
    assert!(
        wait_until(WAIT, || {
            fs::create_dir_all(mnt.join("after")).is_ok()
                && fs::write(mnt.join("after/file"), &again).is_ok()
        }),
        "creates and writes never worked again after rm"
    );
    drop_caches();
    assert!(fs::read(mnt.join("after/file")).unwrap() == again);
    let fsck = cli(&m, &["fsck"]);
    let out = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        fsck.status.success() && out.contains("fsck: clean"),
        "{out}"
    );
}

/// Longest wait for the MDS to exit once its disk is full to the last block.
const POISON_EXIT_WAIT: Duration = Duration::from_secs(60);
/// Exit status of a server whose store poisoned itself (`STORE_POISONED_EXIT`).
const STORE_POISONED_EXIT: i32 = 75;

/// Something else fills the MDS's disk to the last block, past its reserve: the store's next
/// journal write fails, which poisons it. The MDS exits with status 75 instead of answering
/// EIO to every change until someone restarts it, and once there is room again a restart
/// (what its unit does) serves everything acknowledged before (docs/operations.md, "Full
/// disks").
#[test]
fn an_mds_that_cannot_write_its_journal_exits_and_a_restart_has_everything() {
    // Declared before the cluster: dropped after it, once no server holds its files.
    let Some(small) = LoopFs::for_mount_test(SMALL_FS) else {
        return;
    };
    let mut c = ProcCluster::start_spec(ClusterSpec {
        mds_dir: Some(small.mnt.join("mds")),
        ..ClusterSpec::default()
    });
    let m = c.mgs_addr.clone();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let _mount = ForegroundMount::start(&m, &mnt, "");
    let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
    for n in &names {
        fs::write(mnt.join(n), n.as_bytes()).unwrap();
    }

    // Another process takes every block left (no blocks are reserved for root there).
    let filler = small.mnt.join("filler");
    let (err, _) = fill(&filler, &random_bytes(1 << 20, 11), FILL_MAX_BYTES);
    assert!(err.is_some(), "the filler never met ENOSPC");
    let mut f = fs::OpenOptions::new().append(true).open(&filler).unwrap();
    while f.write_all(&[1; 4096]).and_then(|_| f.sync_all()).is_ok() {}
    drop(f);

    // Attribute changes pass the reserve check; the first commit that cannot be written
    // poisons the store, and the MDS goes.
    let started = std::time::Instant::now();
    let mut modes = [0o600, 0o644].into_iter().cycle();
    let status = loop {
        if let Some(status) = c.mds.as_mut().unwrap().child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < POISON_EXIT_WAIT,
            "the MDS still runs on a full disk"
        );
        let mode = modes.next().unwrap();
        let _ = fs::set_permissions(mnt.join("f0"), fs::Permissions::from_mode(mode));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(STORE_POISONED_EXIT), "{status}");

    fs::remove_file(&filler).unwrap();
    c.start_mds();
    c.wait_all_up();
    for n in &names {
        let got = fs::read(mnt.join(n)).unwrap_or_else(|e| panic!("{n} after the restart: {e}"));
        assert_eq!(got, n.as_bytes(), "{n}");
    }
    fs::set_permissions(mnt.join("f1"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(mnt.join("after"), b"after").unwrap();
    let fsck = cli(&m, &["fsck"]);
    let out = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        fsck.status.success() && out.contains("fsck: clean"),
        "{out}"
    );
}
