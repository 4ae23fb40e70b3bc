//! Private mount namespaces for the tests that drive mount(8): `/sbin` shows this build's
//! mount helper there, and nothing outside the namespace changes.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::rustre_bin;

/// The mount helper's name in /sbin.
pub(crate) const HELPER: &str = "mount.fuse.rustre";

/// mount(2) of `src` on `target` with `flags` (binds and propagation changes); panics on
/// failure.
pub(crate) fn sys_mount(src: &Path, target: &Path, flags: libc::c_ulong) {
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let (s, t) = (c(src), c(target));
    // SAFETY: valid C strings; a bind or propagation change reads no type or data.
    let r = unsafe {
        libc::mount(
            s.as_ptr(),
            t.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    assert_eq!(
        r,
        0,
        "mount {}: {}",
        target.display(),
        std::io::Error::last_os_error()
    );
}

/// Bind mounts made in a private namespace, detached when dropped (on a panic too).
struct Binds(Vec<PathBuf>);

impl Drop for Binds {
    fn drop(&mut self) {
        for p in self.0.iter().rev() {
            let c = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
            // SAFETY: a valid C string.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// Runs `f` on a new thread in a private mount namespace in which /sbin shows links to
/// its real entries, and [`HELPER`] links to this build's binary. The real /sbin is bound
/// into a scratch directory there, which is removed from this thread, outside the namespace,
/// where no bind mount shows through it (removing it inside would empty the real /sbin).
pub(crate) fn in_private_namespace(f: impl FnOnce() + Send + 'static) {
    let scratch = tempfile::tempdir().unwrap();
    let (real, links) = (scratch.path().join("real"), scratch.path().join("links"));
    fs::create_dir(&real).unwrap();
    fs::create_dir(&links).unwrap();
    let joined = std::thread::spawn(move || {
        // SAFETY: unshares this thread's mount namespace (and its fs context) only.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNS) }, 0, "unshare");
        sys_mount(
            Path::new("none"),
            Path::new("/"),
            libc::MS_REC | libc::MS_PRIVATE,
        );
        let sbin = fs::canonicalize("/sbin").unwrap();
        sys_mount(&sbin, &real, libc::MS_BIND);
        let mut binds = Binds(vec![real.clone()]);
        for e in fs::read_dir(&real).unwrap().flatten() {
            if e.file_name() != HELPER {
                std::os::unix::fs::symlink(e.path(), links.join(e.file_name())).unwrap();
            }
        }
        std::os::unix::fs::symlink(rustre_bin(), links.join(HELPER)).unwrap();
        sys_mount(&links, &sbin, libc::MS_BIND);
        binds.0.push(sbin);
        f();
    })
    .join();
    // Outside the namespace `real` is an empty directory; were it not, removing it would
    // remove what it shows, so it is left in place.
    let real = scratch.path().join("real");
    if !fs::read_dir(&real).is_ok_and(|mut d| d.next().is_none()) {
        panic!("{} is not empty: left in place", scratch.keep().display());
    }
    drop(scratch);
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}
