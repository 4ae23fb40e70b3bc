//! The kernel side of a mount: mount(2) of /dev/fuse with type `fuse.rustre` (fusermount3,
//! through fuser, when the caller may not mount), the FUSE handshake, the mount's read-ahead,
//! lookups in /proc/self/mountinfo (with its octal escapes) and lazy unmount.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use fuser::{Config, MountOption, Session, SessionACL};
use tokio::runtime::Handle;

use super::options::{MountArgs, MountOptions};
use super::{FS_TYPE, READ_AHEAD_KB, SUBTYPE};
use crate::client::Client;
use crate::fuse::RustreFs;

fn cstring(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains NUL", p.display()))
}

/// Detaches the mount at `mountpoint` (MNT_DETACH): the session ends once nothing uses it.
pub fn lazy_unmount(mountpoint: &Path) -> Result<(), String> {
    let c = cstring(mountpoint)?;
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(format!(
            "unmount {}: {}",
            mountpoint.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Mounts `client` at `args.mountpoint` and completes the FUSE handshake; the returned
/// session serves once run. The kernel shows type `fuse.rustre` and the MGS address as
/// source. Nothing stays mounted if this fails.
pub fn mount(
    client: Arc<Client>,
    rt: Handle,
    args: &MountArgs,
) -> Result<Session<RustreFs>, String> {
    let o = &args.options;
    let fs = RustreFs::new(client, rt, o.fuse.clone());
    let notifier = fs.notifier_slot();
    let acl = if o.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let mnt = &args.mountpoint;
    let session = match mount_syscall(&args.source, mnt, o)? {
        Some(fd) => Session::from_fd(fs, fd, acl, Config::default()).map_err(|e| {
            let _ = lazy_unmount(mnt);
            format!("FUSE handshake on {}: {e}", mnt.display())
        })?,
        None => {
            // Not allowed to call mount(2): fusermount3 mounts for unprivileged users.
            let mut cfg = Config::default();
            cfg.acl = acl;
            cfg.mount_options = fuser_options(&args.source, o);
            Session::new(fs, mnt, &cfg).map_err(|e| format!("mount {}: {e}", mnt.display()))?
        }
    };
    let _ = notifier.set(session.notifier());
    set_read_ahead(mnt);
    Ok(session)
}

/// fuser's options for the fusermount3 path.
fn fuser_options(source: &str, o: &MountOptions) -> Vec<MountOption> {
    let f = &o.exec_suid_dev_atime;
    let mut v = vec![
        MountOption::FSName(source.to_string()),
        MountOption::Subtype(SUBTYPE.to_string()),
        if o.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
        if f.nosuid {
            MountOption::NoSuid
        } else {
            MountOption::Suid
        },
        if f.nodev {
            MountOption::NoDev
        } else {
            MountOption::Dev
        },
        if f.noexec {
            MountOption::NoExec
        } else {
            MountOption::Exec
        },
    ];
    if f.noatime {
        v.push(MountOption::NoAtime);
    }
    if o.default_permissions {
        v.push(MountOption::DefaultPermissions);
    }
    v
}

/// mount(2) with type `fuse.rustre`; `None` when the caller may not mount (EPERM).
fn mount_syscall(source: &str, mnt: &Path, o: &MountOptions) -> Result<Option<OwnedFd>, String> {
    let dev = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(d) => d,
        // An unprivileged caller: fusermount3 (setuid) opens it.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(format!("/dev/fuse: {e} (is the fuse module loaded?)")),
    };
    let fd = OwnedFd::from(dev);
    let root_mode = std::fs::metadata(mnt)
        .map_err(|e| format!("mount point {}: {e}", mnt.display()))?
        .mode()
        & libc::S_IFMT;
    // SAFETY: identity getters.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode={root_mode:o},user_id={uid},group_id={gid}",
        fd.as_raw_fd()
    );
    if o.default_permissions {
        data.push_str(",default_permissions");
    }
    if o.allow_other {
        data.push_str(",allow_other");
    }
    let f = &o.exec_suid_dev_atime;
    let mut flags: libc::c_ulong = 0;
    for (on, bit) in [
        (o.read_only, libc::MS_RDONLY),
        (f.nosuid, libc::MS_NOSUID),
        (f.nodev, libc::MS_NODEV),
        (f.noexec, libc::MS_NOEXEC),
        (f.noatime, libc::MS_NOATIME),
    ] {
        if on {
            flags |= bit;
        }
    }
    let c_source = CString::new(source).map_err(|_| "source contains NUL".to_string())?;
    let c_mnt = cstring(mnt)?;
    let c_type = CString::new(FS_TYPE).expect("no NUL");
    let c_data = CString::new(data).expect("no NUL");
    // SAFETY: valid C strings; the kernel copies them.
    let r = unsafe {
        libc::mount(
            c_source.as_ptr(),
            c_mnt.as_ptr(),
            c_type.as_ptr(),
            flags,
            c_data.as_ptr().cast(),
        )
    };
    if r == 0 {
        return Ok(Some(fd));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EPERM) {
        return Ok(None);
    }
    Err(format!("mount {}: {e}", mnt.display()))
}

/// Raises the mount's read-ahead to [`READ_AHEAD_KB`]. The device number comes from
/// /proc/self/mountinfo: a stat of the mount point would be a FUSE request nobody serves yet.
fn set_read_ahead(mnt: &Path) {
    let Some(dev) = mount_device(mnt) else {
        tracing::warn!("no mountinfo entry for {}", mnt.display());
        return;
    };
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, READ_AHEAD_KB.to_string()) {
        tracing::warn!("{path}: {e}");
    }
}

/// "major:minor" of the newest mount at `mnt`.
pub fn mount_device(mnt: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = escape_mountinfo(&mnt.to_string_lossy());
    info.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let point = f.nth(1)?;
        (point == want).then(|| dev.to_string())
    })
}

/// Paths in mountinfo escape space, tab, newline and backslash as octal.
pub(super) fn escape_mountinfo(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}
