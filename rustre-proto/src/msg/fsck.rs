//! `rustre fsck`'s calls to the MDS ([`super::mds::MdsOp::Fsck`]), an administrator's only:
//! pages of the metadata store (inodes with their open and orphan marks, directory entries,
//! the stale index) for the client to check, and repairs that the MDS applies only if what
//! fsck saw still holds, checked again in the transaction that applies them — so a repair
//! decided on a live cluster never undoes a change made after fsck looked.

use serde::{Deserialize, Serialize};

use super::{Attr, FileKind, Ino, Timestamp};

/// Most records one page of [`FsckOp::Inodes`], [`FsckOp::Entries`] or
/// [`FsckOp::StaleIndex`] returns.
pub const FSCK_PAGE_MAX: u32 = 1024;
/// Most bytes of inode records one [`FsckOp::Inodes`] page carries (a page of the widest
/// layouts would otherwise pass the frame's body limit, `MAX_BODY_BYTES`); at least one.
pub const FSCK_PAGE_BYTES: usize = 1 << 20;
/// Most inodes one [`FsckOp::KeptBytes`] page names: the MDS reads the kept bytes (up
/// to 64 KiB each) with their keys.
pub const FSCK_KEPT_PAGE_MAX: u32 = 64;
/// The directory of the root that [`FsckFix::Reattach`] links unreachable inodes into.
pub const LOST_FOUND: &str = "lost+found";

/// One fsck call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsckOp {
    /// Inodes numbered above `after`, in order, at most `limit`: `FsckAnswer::Inodes`.
    Inodes { after: Ino, limit: u32 },
    /// Directory entries after `(parent, name)` (from the first with `None`), in order of
    /// parent then name, at most `limit`: `FsckAnswer::Entries`.
    Entries {
        after: Option<(Ino, String)>,
        limit: u32,
    },
    /// Stale-index entries naming inodes above `after`, at most `limit`:
    /// `FsckAnswer::StaleIndex`.
    StaleIndex { after: Ino, limit: u32 },
    /// Applies `fix` if its condition still holds; with `apply` false only says whether it
    /// would (changes nothing): `FsckAnswer::Repair`.
    Repair { fix: FsckFix, apply: bool },
    /// Inodes above `after` whose bytes the store keeps (data on the MDS), in order, at most
    /// `limit` and [`FSCK_KEPT_PAGE_MAX`]: `FsckAnswer::KeptBytes`.
    KeptBytes { after: Ino, limit: u32 },
}

impl FsckOp {
    /// True for the calls that change nothing (they may be sent again freely).
    pub fn is_read_only(&self) -> bool {
        !matches!(self, FsckOp::Repair { apply: true, .. })
    }
}

/// An inode as fsck sees it: its attributes and what the MDS keeps beside them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckInode {
    pub attr: Attr,
    /// Directories: the parent the inode records. Others: 0.
    pub parent: Ino,
    /// Some session holds it open.
    pub open: bool,
    /// Some session holds it open for writing (its writes may not be reported yet).
    pub write_open: bool,
    /// Unlinked while open: it goes at its last close.
    pub orphan: bool,
    /// Listed in the stale index (the resync worker's list).
    pub stale_indexed: bool,
}

/// A directory entry as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsckEntry {
    pub parent: Ino,
    pub name: String,
    pub ino: Ino,
    pub kind: FileKind,
}

/// A repair, with the condition it was decided on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsckFix {
    /// Sets `ino`'s link count to `nlink`, if it is still `seen` and its ctime still
    /// `ctime` (every change of the entries naming an inode, or of a directory's
    /// subdirectories, changes its ctime).
    SetNlink {
        ino: Ino,
        seen: u32,
        ctime: Timestamp,
        nlink: u32,
    },
    /// Removes entry `name` of `parent`, if it still names `ino` and `ino` or `parent`
    /// does not exist (inode numbers are never reused, so neither comes back).
    RemoveEntry { parent: Ino, name: String, ino: Ino },
    /// Links `ino`, which no entry names, into [`LOST_FOUND`] (made if absent) as `#{ino}`,
    /// if its ctime is still `ctime` and nobody holds it open. A file gets one link; a
    /// directory gets `lost+found` as its parent.
    Reattach { ino: Ino, ctime: Timestamp },
    /// Adds `ino` to the stale index, if its layout has stale copies and it is not there.
    IndexStale { ino: Ino },
    /// Drops `ino` from the stale index, if it is there and its inode has no stale copies
    /// (or does not exist).
    UnindexStale { ino: Ino },
    /// Makes `ino`'s mark of data on the MDS (`Attr::inline`) and the bytes the store keeps
    /// for it agree: drops kept bytes of an inode that is gone or not marked; unmarks an
    /// inode marked with none kept (it read as zeros, as its never-written objects do).
    MendKeptBytes { ino: Ino },
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FixOutcome {
    /// Applied (or, when not asked to apply, would be): what it does.
    Applies(String),
    /// Not applied: what fsck saw no longer holds (changed meanwhile, or already fixed).
    Changed(String),
}

/// Answers to [`FsckOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FsckAnswer {
    /// `now` is the MDS's clock when it read the page (what "changed recently" is
    /// measured against); `done` when no inode follows.
    Inodes {
        inodes: Vec<FsckInode>,
        now: Timestamp,
        done: bool,
    },
    Entries {
        entries: Vec<FsckEntry>,
        done: bool,
    },
    StaleIndex {
        inos: Vec<Ino>,
        done: bool,
    },
    Repair(FixOutcome),
    KeptBytes {
        inos: Vec<Ino>,
        done: bool,
    },
}
