//! What open descriptors and directory streams see while names come and go, through a real
//! mount (issue 15, items 2 and 3): a file renamed over or a directory removed stays usable
//! through the descriptors open on it, with `st_nlink` 0; `rewinddir` shows names created
//! after `opendir`; a telldir/seekdir walk over a directory that changes under it returns
//! every name that existed throughout exactly once.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::process::Command;

use common::*;

/// Names that exist through the whole walk.
const KEPT: usize = 300;
/// Names removed during the walk (the walk may or may not return them).
const DOOMED: usize = 150;

/// Walks a directory with readdir(3), and every `step` entries notes telldir(3), creates one
/// name (sorting before all others) and removes one, and seekdir(3)s back to the noted place; then rewinds (rewinddir)
/// and lists again. Prints the walk's names, a line "--" and the names after the rewind.
const WALK: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.rewinddir.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]
path, step, doomed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = libc.opendir(path.encode())
assert d, os.strerror(ctypes.get_errno())
def entries():
    while True:
        ctypes.set_errno(0)
        e = libc.readdir(d)
        if not e:
            assert ctypes.get_errno() == 0, os.strerror(ctypes.get_errno())
            return
        yield e.contents.d_name.decode()
walked, made, gone = [], 0, 0
it = entries()
while True:
    name = next(it, None)
    if name is None:
        break
    walked.append(name)
    if len(walked) % step == 0:
        pos = libc.telldir(d)
        open(os.path.join(path, "a-new-%04d" % made), "w").close()
        made += 1
        if gone < doomed:
            os.unlink(os.path.join(path, "doomed-%04d" % gone))
            gone += 1
        libc.seekdir(d, pos)
        it = entries()
libc.rewinddir(d)
again = list(entries())
libc.closedir(d)
print("\n".join(walked))
print("--")
print("\n".join(again))
"#;

fn kept(i: usize) -> String {
    format!("kept-{i:04}")
}

#[test]
fn a_telldir_seekdir_walk_returns_every_lasting_name_once_and_rewinddir_sees_new_ones() {
    if let Some(why) = fuse_or_tools_unavailable(&["python3"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let dir = mount.path.join("walk");
    fs::create_dir(&dir).unwrap();
    for i in 0..KEPT {
        fs::write(dir.join(kept(i)), b"").unwrap();
    }
    for i in 0..DOOMED {
        fs::write(dir.join(format!("doomed-{i:04}")), b"").unwrap();
    }
    // Steps of 1 (a seekdir after every entry) and 7 (mid-way through the C library's
    // buffer of entries).
    for step in [1, 7] {
        let out = Command::new("python3")
            .args(["-c", WALK])
            .arg(&dir)
            .arg(step.to_string())
            .arg(DOOMED.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (walked, again) = text.split_once("--\n").expect("two listings");
        let walked: Vec<&str> = walked.lines().filter(|n| *n != "." && *n != "..").collect();
        for i in 0..KEPT {
            let name = kept(i);
            let n = walked.iter().filter(|w| **w == name).count();
            assert_eq!(n, 1, "step {step}: {name} returned {n} times by the walk");
        }
        for name in &walked {
            let n = walked.iter().filter(|w| *w == name).count();
            assert_eq!(n, 1, "step {step}: {name} returned {n} times by the walk");
        }
        // After the rewind: every name there is now, the ones made during the walk too.
        let mut again: Vec<String> = again
            .lines()
            .filter(|n| *n != "." && *n != "..")
            .map(str::to_string)
            .collect();
        again.sort();
        let mut now: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        now.sort();
        assert!(
            now.iter().any(|n| n.starts_with("a-new-")),
            "the walk made names"
        );
        assert_eq!(again, now, "step {step}: rewinddir");
        // The next walk removes the names this one made, and makes more.
        for n in now.iter().filter(|n| n.starts_with("a-new-")) {
            fs::remove_file(dir.join(n)).unwrap();
        }
        for i in 0..DOOMED {
            let doomed = dir.join(format!("doomed-{i:04}"));
            if !doomed.exists() {
                fs::write(doomed, b"").unwrap();
            }
        }
    }
}

#[test]
fn a_file_renamed_over_and_a_removed_directory_stay_usable_while_open() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let m = mount.path.clone();

    // A file open for reading and writing; another file is renamed over its name.
    fs::write(m.join("target"), b"old contents").unwrap();
    let mut old = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(m.join("target"))
        .unwrap();
    let ino = old.metadata().unwrap().ino();
    fs::write(m.join("replacement"), b"new").unwrap();
    fs::rename(m.join("replacement"), m.join("target")).unwrap();
    let md = old.metadata().expect("fstat of the renamed-over file");
    assert_eq!((md.ino(), md.nlink(), md.len()), (ino, 0, 12));
    let mut text = String::new();
    old.read_to_string(&mut text).unwrap();
    assert_eq!(text, "old contents");
    old.write_all(b" and more").unwrap();
    old.sync_all().unwrap();
    let mut buf = [0u8; 21];
    old.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"old contents and more");
    assert_eq!(old.metadata().unwrap().len(), 21);
    assert_eq!(fs::read(m.join("target")).unwrap(), b"new");
    // A second descriptor opened before the rename sees the same bytes.
    drop(old);
    assert_eq!(fs::read(m.join("target")).unwrap(), b"new");

    // Renamed over while open read-only by two descriptors: both keep reading.
    fs::write(m.join("shared"), b"first").unwrap();
    let mut a = fs::File::open(m.join("shared")).unwrap();
    let b = fs::File::open(m.join("shared")).unwrap();
    fs::write(m.join("next"), b"second").unwrap();
    fs::rename(m.join("next"), m.join("shared")).unwrap();
    drop(b);
    a.seek(SeekFrom::Start(0)).unwrap();
    let mut text = String::new();
    a.read_to_string(&mut text).unwrap();
    assert_eq!(text, "first");
    assert_eq!(a.metadata().unwrap().nlink(), 0);

    // A directory removed while open: fstat works (no links left), listing it is empty.
    fs::create_dir(m.join("gone")).unwrap();
    let d = fs::File::open(m.join("gone")).unwrap();
    fs::remove_dir(m.join("gone")).unwrap();
    let md = d.metadata().expect("fstat of the removed directory");
    assert!(md.is_dir());
    assert_eq!(md.nlink(), 0, "a removed directory has no links");
}

/// Reads one entry of a directory, removes (or renames away) a name further on, seeks back
/// and reads on; then prints whether the removed name still looks present, right away (well
/// inside the 1 s entry timeout a `readdirplus` entry gives the kernel's dentry).
const LIST_PAST_REMOVED: &str = r#"
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.telldir.argtypes = [ctypes.c_void_p]
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.closedir.argtypes = [ctypes.c_void_p]
path, how = sys.argv[1], sys.argv[2]
d = libc.opendir(path.encode())
assert libc.readdir(d)
pos = libc.telldir(d)
victim = os.path.join(path, "x-0100")
if how == "unlink":
    os.unlink(victim)
else:
    os.rename(victim, os.path.join(path, "moved"))
libc.seekdir(d, pos)
while libc.readdir(d):
    pass
libc.closedir(d)
print(os.path.exists(victim))
"#;

#[test]
fn a_name_this_client_removed_is_not_brought_back_by_a_listing_fetched_before() {
    if let Some(why) = fuse_or_tools_unavailable(&["python3"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    for how in ["unlink", "rename"] {
        let dir = mount.path.join(how);
        fs::create_dir(&dir).unwrap();
        for i in 0..200 {
            fs::write(dir.join(format!("x-{i:04}")), b"").unwrap();
        }
        let out = Command::new("python3")
            .args(["-c", LIST_PAST_REMOVED])
            .arg(&dir)
            .arg(how)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "False",
            "{how}: x-0100 looks present right after it went"
        );
        assert!(!dir.join("x-0100").exists(), "{how}: x-0100 is back");
    }
}

/// Names are bytes, as on Linux: names and symlink targets that are not UTF-8 (Latin-1, a
/// lone continuation byte, the bytes of the code points rustre escapes with) are created,
/// listed, renamed, read and removed through a mount like any other; `tar` round-trips a
/// tree of them, and `rustre find` prints the same bytes GNU find does. The length limit
/// counts the bytes: 255 Latin-1 bytes are a name, 256 are ENAMETOOLONG.
#[test]
fn names_that_are_not_utf8_are_names() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let d = mnt.join("raw");
    fs::create_dir(&d).unwrap();
    let names: Vec<&[u8]> = vec![
        b"caf\xe9",
        b"\xff\xfe",
        "caf\u{e9}".as_bytes(),
        b"\xf4\x8f\xbe\x80",
        b"a\xc3(b",
        &[0xe9; 255],
    ];
    for (i, n) in names.iter().enumerate() {
        fs::write(d.join(OsStr::from_bytes(n)), format!("file {i}")).unwrap();
    }
    let too_long = d.join(OsStr::from_bytes(&[0xe9; 256]));
    let err = fs::write(&too_long, b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENAMETOOLONG));
    let mut listed: Vec<Vec<u8>> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    listed.sort();
    let mut want: Vec<Vec<u8>> = names.iter().map(|n| n.to_vec()).collect();
    want.sort();
    assert_eq!(listed, want);
    for (i, n) in names.iter().enumerate() {
        let p = d.join(OsStr::from_bytes(n));
        assert_eq!(fs::read(&p).unwrap(), format!("file {i}").as_bytes());
    }
    // Rename, symlink target and xattr name of raw bytes.
    fs::rename(
        d.join(OsStr::from_bytes(b"\xff\xfe")),
        d.join(OsStr::from_bytes(b"\xfe\xff")),
    )
    .unwrap();
    assert!(d.join(OsStr::from_bytes(b"\xfe\xff")).exists());
    let target = OsStr::from_bytes(b"caf\xe9");
    std::os::unix::fs::symlink(target, d.join(OsStr::from_bytes(b"ln\xfe"))).unwrap();
    let read = fs::read_link(d.join(OsStr::from_bytes(b"ln\xfe"))).unwrap();
    assert_eq!(read.as_os_str().as_bytes(), b"caf\xe9");
    assert_eq!(
        fs::read(d.join(OsStr::from_bytes(b"ln\xfe"))).unwrap(),
        b"file 0"
    );

    // tar out and back in, compared with diff; rustre find and GNU find agree.
    let out = c.path("raw.tar");
    let tar = Command::new("tar")
        .args([
            "-C",
            mnt.to_str().unwrap(),
            "-cf",
            out.to_str().unwrap(),
            "raw",
        ])
        .status()
        .unwrap();
    assert!(tar.success());
    let back = mnt.join("back");
    fs::create_dir(&back).unwrap();
    let untar = Command::new("tar")
        .args(["-C", back.to_str().unwrap(), "-xf", out.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(untar.success());
    let diff = Command::new("diff")
        .args(["-r", "--no-dereference"])
        .arg(&d)
        .arg(back.join("raw"))
        .output()
        .unwrap();
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let gnu = Command::new("find").arg(&d).output().unwrap();
    let mut gnu: Vec<Vec<u8>> = gnu
        .stdout
        .split(|b| *b == b'\n')
        .map(|l| l.to_vec())
        .collect();
    let prefix = mnt.as_os_str().as_bytes().len();
    let mut gnu_rel: Vec<Vec<u8>> = gnu
        .drain(..)
        .filter(|l| !l.is_empty())
        .map(|l| l[prefix..].to_vec())
        .collect();
    let ours = rustre_command()
        .args(["--mgs", &c.mgs_addr, "find", "/raw"])
        .output()
        .unwrap();
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let mut ours: Vec<Vec<u8>> = ours
        .stdout
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect();
    gnu_rel.sort();
    ours.sort();
    assert_eq!(ours, gnu_rel);
    for n in &names {
        fs::remove_file(d.join(OsStr::from_bytes(n))).ok();
    }
    drop(mount);
}
