//! The mount table as the kernel shows it (/proc/self/mountinfo, with its octal escapes): a
//! mount's entry ([`MountEntry`]: its id, device, type and flags), and [`follow_flags`],
//! which keeps a client's atime mode in step with its mount's flags. The kernel tells a FUSE
//! file system nothing of its mount's flags, at mount or at a remount, while atime is the
//! file system's job; but mountinfo is pollable and signals every change of the table, a
//! remount's included.

use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Weak};

use super::options::MountFlags;
use crate::client::{AtimeRule, Client};

/// Longest the flag follower sleeps before it checks that its client still exists.
const FOLLOW_POLL_MS: i32 = 1000;

/// One line of /proc/self/mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountEntry {
    pub(super) id: u64,
    /// "major:minor".
    pub(super) device: String,
    /// As escaped in mountinfo.
    pub(super) mountpoint: String,
    pub(super) fs_type: String,
    /// The per-mount options (`rw,nosuid,relatime`).
    mount_options: String,
    /// The superblock's options (`rw,user_id=0,group_id=0`).
    super_options: String,
}

impl MountEntry {
    /// Parses one line: `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE
    /// SOURCE SUPER_OPTIONS`.
    pub(super) fn parse(line: &str) -> Option<MountEntry> {
        let (head, tail) = line.split_once(" - ")?;
        let f: Vec<&str> = head.split(' ').collect();
        let t: Vec<&str> = tail.split(' ').collect();
        if f.len() < 6 || t.len() < 3 {
            return None;
        }
        Some(MountEntry {
            id: f[0].parse().ok()?,
            device: f[2].to_string(),
            mountpoint: f[4].to_string(),
            mount_options: f[5].to_string(),
            fs_type: t[0].to_string(),
            super_options: t[2].to_string(),
        })
    }

    fn has(options: &str, word: &str) -> bool {
        options.split(',').any(|o| o == word)
    }

    /// Read-only, as a mount or as a superblock.
    pub(super) fn read_only(&self) -> bool {
        Self::has(&self.mount_options, "ro") || Self::has(&self.super_options, "ro")
    }

    /// The flags in force (no atime word means strictatime).
    pub(super) fn flags(&self) -> MountFlags {
        let m = |w| Self::has(&self.mount_options, w);
        MountFlags {
            nosuid: m("nosuid"),
            nodev: m("nodev"),
            noexec: m("noexec"),
            atime: if m("noatime") {
                AtimeRule::Never
            } else if m("relatime") {
                AtimeRule::Relative
            } else {
                AtimeRule::Strict
            },
            nodiratime: m("nodiratime"),
            sync: Self::has(&self.super_options, "sync"),
        }
    }
}

fn entries() -> Vec<MountEntry> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(MountEntry::parse)
        .collect()
}

/// The newest mount at `mnt` (the one a path lookup reaches).
pub(super) fn entry_at(mnt: &Path) -> Option<MountEntry> {
    let want = escape_mountinfo(&mnt.to_string_lossy());
    entries().into_iter().rev().find(|e| e.mountpoint == want)
}

/// "major:minor" of the newest mount at `mnt`.
pub fn mount_device(mnt: &Path) -> Option<String> {
    entry_at(mnt).map(|e| e.device)
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

/// Sets `client`'s atime mode from the flags of the mount just made at `mnt` and keeps it
/// in step with them (a remount changes them) from a thread that waits for changes of the
/// mount table. The thread ends when the mount or the client is gone.
pub(super) fn follow_flags(mnt: &Path, client: &Arc<Client>) {
    let Some(id) = entry_at(mnt).map(|e| e.id) else {
        tracing::warn!("no mountinfo entry for {}", mnt.display());
        return;
    };
    let weak = Arc::downgrade(client);
    // Opened before the first read, so no change after that read goes unseen.
    let table = match std::fs::File::open("/proc/self/mountinfo") {
        Ok(f) => f,
        Err(e) => return tracing::warn!("/proc/self/mountinfo: {e}"),
    };
    if !apply_flags(id, &weak) {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("rustre-mountinfo".into())
        .spawn(move || loop {
            let mut p = libc::pollfd {
                fd: table.as_raw_fd(),
                events: libc::POLLPRI,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let n = unsafe { libc::poll(&mut p, 1, FOLLOW_POLL_MS) };
            if weak.strong_count() == 0 || (n > 0 && !apply_flags(id, &weak)) {
                return;
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("mount flags will not be followed: {e}");
    }
}

/// Sets the client's atime mode from mount `id`'s flags; false once the mount or the
/// client is gone.
fn apply_flags(id: u64, client: &Weak<Client>) -> bool {
    let (Some(e), Some(c)) = (entries().into_iter().find(|e| e.id == id), client.upgrade()) else {
        return false;
    };
    let mode = e.flags().atime_mode(e.read_only());
    if c.atime_mode() != mode {
        tracing::info!(?mode, "mount flags changed");
        c.set_atime_mode(mode);
    }
    true
}
