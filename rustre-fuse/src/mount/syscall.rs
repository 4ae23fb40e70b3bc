//! The kernel side of a mount: mount(2) of /dev/fuse with type `fuse.rustre` (fusermount3,
//! through fuser, when the caller may not mount), the FUSE handshake, the mount's read-ahead,
//! [`remount`] and lazy unmount.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use fuser::{Config, MountOption, Session, SessionACL};
use tokio::runtime::Handle;

use super::mountinfo::{entry_at, follow_flags, mount_device};
use super::options::{MountArgs, MountOptions};
use super::{FS_TYPE, READ_AHEAD_KB, SUBTYPE};
use crate::client::AsyncDirops;
use crate::client::{AtimeRule, Client};
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

/// `-o remount,...`: changes the kernel flags of the rustre mounted at `args.mountpoint`
/// in place (mount(2) with MS_REMOUNT; FUSE takes no other change, and the daemon follows
/// the flags from mountinfo). As mount(8), the options apply over the flags in force.
pub(super) fn remount(args: &MountArgs) -> Result<(), String> {
    let mnt = &args.mountpoint;
    let entry = entry_at(mnt)
        .filter(|e| e.fs_type == FS_TYPE)
        .ok_or_else(|| format!("{} is not a mounted {FS_TYPE}", mnt.display()))?;
    let mut o = MountOptions {
        read_only: entry.read_only(),
        exec_suid_dev_atime: entry.flags(),
        ..MountOptions::default()
    };
    for given in &args.given {
        o.apply(given)?;
    }
    let flags = libc::MS_REMOUNT | o.exec_suid_dev_atime.ms_bits(o.read_only);
    let c_mnt = cstring(mnt)?;
    // SAFETY: a valid C string; a remount reads neither source, type nor data.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            c_mnt.as_ptr(),
            std::ptr::null(),
            flags,
            std::ptr::null(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!("remount {}: {e}", mnt.display()));
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
    // Before the first request: the kernel leaves atime to the file system.
    client.set_atime_mode(o.exec_suid_dev_atime.atime_mode(o.read_only));
    let mut fuse = o.fuse.clone();
    // A `sync` mount's changes are on the servers when the call returns.
    if o.exec_suid_dev_atime.sync {
        fuse.async_dirops = AsyncDirops::Off;
    }
    let fs = RustreFs::new(client.clone(), rt, fuse);
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
    follow_flags(mnt, &client);
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
    v.push(match f.atime {
        AtimeRule::Never => MountOption::NoAtime,
        AtimeRule::Relative => MountOption::CUSTOM("relatime".into()),
        AtimeRule::Strict => MountOption::CUSTOM("strictatime".into()),
    });
    if f.nodiratime {
        v.push(MountOption::CUSTOM("nodiratime".into()));
    }
    if f.sync {
        v.push(MountOption::Sync);
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
    let flags = o.exec_suid_dev_atime.ms_bits(o.read_only);
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
