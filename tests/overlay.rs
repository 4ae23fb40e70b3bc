//! A rustre directory as overlayfs's upper directory (containers and writable overlays on
//! shared storage): overlayfs asks its upper file system for RENAME_WHITEOUT, trusted.*
//! xattrs and d_type. Through a real mount: renameat2(RENAME_WHITEOUT) leaves a character
//! device 0/0 at the old name in the same step; an overlay over a local lower directory
//! copies up, deletes (whiteouts in the upper directory), replaces a directory (opaque),
//! renames, and shows the same tree after it is mounted again.

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::Command;

use common::*;

/// A mounted overlay, unmounted when dropped (also when an assert fails).
struct Overlay<'a>(&'a Path);

impl Drop for Overlay<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

fn mount_overlay<'a>(lower: &Path, upper: &Path, work: &Path, merged: &'a Path) -> Overlay<'a> {
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        upper.display(),
        work.display()
    );
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(merged));
    Overlay(merged)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

fn is_whiteout(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device() && m.rdev() == 0)
}

#[test]
fn an_overlay_with_its_upper_directory_on_rustre() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let _mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");

    // renameat2(RENAME_WHITEOUT) itself.
    let (a, b) = (mnt.join("a"), mnt.join("b"));
    fs::write(&a, b"moved").unwrap();
    let (ca, cb) = (
        std::ffi::CString::new(a.to_str().unwrap()).unwrap(),
        std::ffi::CString::new(b.to_str().unwrap()).unwrap(),
    );
    // SAFETY: two NUL-terminated paths; the call only reads them.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_WHITEOUT,
        )
    };
    assert_eq!(r, 0, "{}", std::io::Error::last_os_error());
    assert!(is_whiteout(&a), "no whiteout at the old name");
    assert_eq!(fs::read(&b).unwrap(), b"moved");

    // An overlay: lower on the local disk, upper and work on rustre.
    let lower = c.path("lower");
    let merged = c.path("merged");
    fs::create_dir_all(lower.join("d")).unwrap();
    fs::create_dir(&merged).unwrap();
    fs::write(lower.join("keep"), b"lower keep").unwrap();
    fs::write(lower.join("edit"), b"lower edit").unwrap();
    fs::write(lower.join("gone"), b"lower gone").unwrap();
    fs::write(lower.join("d/old"), b"lower d/old").unwrap();
    let (upper, work) = (mnt.join("upper"), mnt.join("work"));
    fs::create_dir(&upper).unwrap();
    fs::create_dir(&work).unwrap();
    let overlay = mount_overlay(&lower, &upper, &work, &merged);

    fs::write(merged.join("edit"), b"upper edit").unwrap();
    fs::remove_file(merged.join("gone")).unwrap();
    fs::remove_dir_all(merged.join("d")).unwrap();
    fs::create_dir(merged.join("d")).unwrap();
    fs::write(merged.join("d/new"), b"upper d/new").unwrap();
    fs::write(merged.join("n"), b"upper n").unwrap();
    fs::rename(merged.join("n"), merged.join("n2")).unwrap();

    let check = |m: &Path| {
        assert_eq!(names(m), ["d", "edit", "keep", "n2"]);
        assert_eq!(names(&m.join("d")), ["new"]);
        assert_eq!(fs::read(m.join("edit")).unwrap(), b"upper edit");
        assert_eq!(fs::read(m.join("keep")).unwrap(), b"lower keep");
        assert_eq!(fs::read(m.join("d/new")).unwrap(), b"upper d/new");
        assert_eq!(fs::read(m.join("n2")).unwrap(), b"upper n");
    };
    check(&merged);
    // In rustre: the deleted lower file is a whiteout, the lower file untouched.
    assert!(is_whiteout(&upper.join("gone")), "no whiteout for gone");
    assert_eq!(fs::read(lower.join("gone")).unwrap(), b"lower gone");
    assert_eq!(fs::read(upper.join("edit")).unwrap(), b"upper edit");

    drop(overlay);
    let _again = mount_overlay(&lower, &upper, &work, &merged);
    check(&merged);
}
