//! Messages: one request enum per service and the types they share.
//!
//! Each service has exactly one request enum and one response enum; servers `match` the
//! request exhaustively, so a new variant without a handler does not compile.

pub mod mds;
pub mod mgs;
pub mod oss;

use serde::{Deserialize, Serialize};

/// An inode number. Inode 1 is the root directory.
pub type Ino = u64;
/// The root directory's inode.
pub const ROOT_INO: Ino = 1;
/// Longest name of one directory entry, in bytes (as Linux's NAME_MAX).
pub const NAME_MAX_BYTES: usize = 255;
/// Longest symlink target, in bytes (as Linux's PATH_MAX).
pub const SYMLINK_MAX_BYTES: usize = 4095;
/// Most supplementary groups carried with a caller's credentials.
pub const MAX_GROUPS: usize = 64;
/// Largest stripe size a layout may ask for.
pub const MAX_STRIPE_SIZE: u32 = 16 << 20;
/// Smallest stripe size (one page).
pub const MIN_STRIPE_SIZE: u32 = 4096;
/// Most stripes (OSTs) one file may span.
pub const MAX_STRIPE_COUNT: u32 = 256;
/// Most copies of each stripe.
pub const MAX_REPLICAS: u32 = 8;

/// A point in time, as seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        }
    }
}

/// The type of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Fifo,
    Socket,
    CharDev,
    BlockDev,
}

impl FileKind {
    /// The `S_IFMT` bits of this kind.
    pub fn mode_bits(self) -> u32 {
        match self {
            FileKind::File => libc::S_IFREG,
            FileKind::Dir => libc::S_IFDIR,
            FileKind::Symlink => libc::S_IFLNK,
            FileKind::Fifo => libc::S_IFIFO,
            FileKind::Socket => libc::S_IFSOCK,
            FileKind::CharDev => libc::S_IFCHR,
            FileKind::BlockDev => libc::S_IFBLK,
        }
    }

    /// The kind named by the `S_IFMT` bits of `mode`.
    pub fn from_mode(mode: u32) -> Option<FileKind> {
        Some(match mode & libc::S_IFMT {
            libc::S_IFREG => FileKind::File,
            libc::S_IFDIR => FileKind::Dir,
            libc::S_IFLNK => FileKind::Symlink,
            libc::S_IFIFO => FileKind::Fifo,
            libc::S_IFSOCK => FileKind::Socket,
            libc::S_IFCHR => FileKind::CharDev,
            libc::S_IFBLK => FileKind::BlockDev,
            _ => return None,
        })
    }
}

/// How a file's bytes are spread over OSTs (RAID-0 over objects, as Lustre).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Bytes per stripe unit.
    pub stripe_size: u32,
    /// The OST index holding each stripe, in stripe order; its length is the stripe count.
    pub osts: Vec<u32>,
    /// Copies of each stripe (1 = no replication).
    pub replicas: u32,
}

impl Layout {
    /// Number of stripes.
    pub fn stripe_count(&self) -> u32 {
        self.osts.len() as u32
    }

    /// Checks sizes and counts against the protocol limits.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: &str| Err(crate::Error::Invalid(m.to_string()));
        if self.stripe_size < MIN_STRIPE_SIZE
            || self.stripe_size > MAX_STRIPE_SIZE
            || !self.stripe_size.is_multiple_of(MIN_STRIPE_SIZE)
        {
            return bad("stripe size must be a multiple of 4096 between 4 KiB and 16 MiB");
        }
        if self.osts.is_empty() || self.osts.len() > MAX_STRIPE_COUNT as usize {
            return bad("stripe count must be between 1 and 256");
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return bad("replica count must be between 1 and 8");
        }
        Ok(())
    }
}

/// A layout request: what a user asks for; the MDS picks OSTs for what is left open.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayoutSpec {
    pub stripe_size: Option<u32>,
    /// Number of stripes; 0 or absent means the default, u32::MAX means "all OSTs".
    pub stripe_count: Option<u32>,
    /// Explicit OSTs (their count is then the stripe count).
    pub osts: Option<Vec<u32>>,
    pub replicas: Option<u32>,
}

/// Attributes of an inode, as the MDS stores and returns them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub ino: Ino,
    pub kind: FileKind,
    /// Permission bits including setuid, setgid and sticky (no `S_IFMT` bits).
    pub perm: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub rdev: u64,
    /// Regular files: where the data lives.
    pub layout: Option<Layout>,
    /// Bumped by every truncate; size reports carrying an older version are ignored.
    pub truncate_version: u64,
}

/// The caller's identity, carried with every metadata call.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, at most [`MAX_GROUPS`].
    pub groups: Vec<u32>,
}

impl Creds {
    /// The superuser.
    pub fn root() -> Creds {
        Creds::default()
    }

    /// True when the caller is in group `gid`.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Capacity figures of an OST or of the whole cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
}

/// Checks a directory entry name: not empty, no '/', no NUL, not "." or "..", at most 255 bytes.
pub fn validate_name(name: &str) -> Result<(), crate::Error> {
    if name.len() > NAME_MAX_BYTES {
        return Err(crate::Error::NameTooLong);
    }
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
        return Err(crate::Error::Invalid(format!("bad file name {name:?}")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("a").is_ok());
        assert_eq!(
            validate_name(&"x".repeat(256)),
            Err(crate::Error::NameTooLong)
        );
        assert!(validate_name(&"x".repeat(255)).is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b"] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_round_trip_through_mode() {
        for k in [
            FileKind::File,
            FileKind::Dir,
            FileKind::Symlink,
            FileKind::Fifo,
            FileKind::Socket,
            FileKind::CharDev,
            FileKind::BlockDev,
        ] {
            assert_eq!(FileKind::from_mode(k.mode_bits() | 0o644), Some(k));
        }
    }
}
