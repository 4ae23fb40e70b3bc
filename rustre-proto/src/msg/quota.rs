//! Project quotas on the wire (docs/quotas.md): the limits an administrator sets on a
//! directory tree, and what the MDS reports of one.
//!
//! A directory with a quota is the root of a *project*; the project's id is the directory's
//! inode number, and every inode created under it carries that id (`Attr::project`). The MDS
//! keeps the project's usage (inodes; bytes as the files' sizes) in the transactions that
//! change it.

use serde::{Deserialize, Serialize};

use super::Ino;

/// No project: the inode lies in no directory tree with a quota.
pub const NO_PROJECT: Ino = 0;
/// Longest grace period a soft limit may have (a year).
pub const MAX_GRACE_SECS: u64 = 365 * 24 * 60 * 60;
/// Grace period of a soft limit when none is given (a week, as XFS and Lustre).
pub const DEFAULT_GRACE_SECS: u64 = 7 * 24 * 60 * 60;

/// The limits of one project. A limit of 0 is no limit (as in XFS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    /// Bytes (sum of the files' sizes) past which growth fails with EDQUOT.
    pub hard_bytes: u64,
    /// Bytes past which the grace period starts; EDQUOT once it ran out.
    pub soft_bytes: u64,
    /// Inodes (files, directories, links, devices) past which creates fail with EDQUOT.
    pub hard_inodes: u64,
    /// Inodes past which the grace period starts.
    pub soft_inodes: u64,
    /// How long usage may stay over a soft limit.
    pub grace_secs: u64,
}

/// What a project uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaUsage {
    /// Sum over its regular files of the larger of size and space reserved by writers.
    pub bytes: u64,
    /// Its inodes, the quota's directory included.
    pub inodes: u64,
}

/// One project's quota as `quota get`/`quota list` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaInfo {
    /// The project id: the inode number of its directory.
    pub project: Ino,
    pub limits: QuotaLimits,
    pub usage: QuotaUsage,
    /// Wall-clock milliseconds at which usage went over the soft byte limit (0: it is not).
    pub bytes_over_since_ms: u64,
    /// Wall-clock milliseconds at which usage went over the soft inode limit (0: it is not).
    pub inodes_over_since_ms: u64,
    /// `quota set` is still counting what the tree held: usage is not complete yet.
    pub counting: bool,
}

impl QuotaLimits {
    /// EINVAL-worthy problems of a set of limits: a soft limit above its hard one, or a
    /// grace period past [`MAX_GRACE_SECS`].
    pub fn check(&self) -> Result<(), String> {
        if self.hard_bytes != 0 && self.soft_bytes > self.hard_bytes {
            return Err("the soft byte limit is above the hard one".into());
        }
        if self.hard_inodes != 0 && self.soft_inodes > self.hard_inodes {
            return Err("the soft inode limit is above the hard one".into());
        }
        if self.grace_secs > MAX_GRACE_SECS {
            return Err(format!("grace period past {MAX_GRACE_SECS} seconds"));
        }
        Ok(())
    }
}
