//! What `fsck` reports: each problem it found ([`Finding`]), why it leaves an overlong object
//! alone ([`Held`]), and what a repair did ([`Repaired`]), each with the line the `rustre`
//! binary prints.

use std::time::Duration;

use rustre_proto::msg::oss::ObjectId;
use rustre_proto::msg::{FileKind, Ino, Timestamp};

/// One problem fsck found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// An object whose inode does not exist.
    Orphan { ost: u32, id: ObjectId },
    /// An object longer than its file's size gives it; `held` says why a repair leaves it
    /// alone (the bytes past the size may be a writer's, not reported yet).
    TooLong {
        ost: u32,
        id: ObjectId,
        size: u64,
        want: u64,
        version: u64,
        held: Option<Held>,
    },
    /// Up-to-date copies of one stripe of different lengths: the shorter ones' slots.
    Diverged {
        ino: Ino,
        slots: Vec<u32>,
        version: u64,
    },
    /// The stripe holding the file's last byte has it on no copy.
    Missing { ino: Ino, stripe: u32 },
    /// Copies of equal length whose stored checksums differ from `block` on.
    Differs {
        ino: Ino,
        stripe: u32,
        block: u64,
        slots: Vec<u32>,
        version: u64,
    },
    /// An inode whose link count is not the number of entries naming it (a directory: 2
    /// plus its subdirectories). `ctime` is the one fsck read (the repair's condition).
    LinkCount {
        ino: Ino,
        kind: FileKind,
        nlink: u32,
        want: u32,
        ctime: Timestamp,
    },
    /// An entry naming an inode that does not exist, or in a directory that does not.
    DanglingEntry {
        parent: Ino,
        name: String,
        ino: Ino,
        parent_missing: bool,
    },
    /// An inode that no entry names and nobody holds open.
    Unreachable {
        ino: Ino,
        kind: FileKind,
        ctime: Timestamp,
    },
    /// A file with stale copies that the stale index lacks: resync would never copy them.
    NotIndexed { ino: Ino },
    /// A stale-index entry for an inode without stale copies (or without an inode).
    NeedlessIndex { ino: Ino },
    /// A file marked as data on the MDS whose bytes the store does not keep (it reads as
    /// zeros).
    KeptBytesLost { ino: Ino },
    /// Bytes the store keeps for an inode that is gone or not marked as data on the MDS.
    NeedlessKeptBytes { ino: Ino },
}

/// Why fsck leaves an overlong object alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Some client holds the file open for writing.
    OpenForWriting,
    /// The file's mtime or ctime is this recent, within the grace period.
    ChangedRecently(Duration),
}

/// What a repair did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repaired {
    /// Repaired, and how.
    Done(String),
    /// Left alone on purpose, and why (in use, or changed since fsck looked).
    LeftAlone(String),
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Held::OpenForWriting => write!(f, "the file is open for writing"),
            Held::ChangedRecently(d) => write!(f, "the file changed {} s ago", d.as_secs()),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Finding::Orphan { ost, id } => write!(
                f,
                "orphan object {}.{} on OST {ost}: no such inode",
                id.ino, id.stripe
            ),
            Finding::TooLong {
                ost,
                id,
                size,
                want,
                held,
                ..
            } => {
                write!(
                    f,
                    "object {}.{} on OST {ost} is {size} bytes, its file says {want}",
                    id.ino, id.stripe
                )?;
                match held {
                    Some(h) => write!(f, " (not truncated: {h})"),
                    None => Ok(()),
                }
            }
            Finding::Diverged { ino, slots, .. } => write!(
                f,
                "inode {ino}: up-to-date copies differ; shorter copies in slots {slots:?}"
            ),
            Finding::Differs {
                ino,
                stripe,
                block,
                slots,
                ..
            } => write!(
                f,
                "inode {ino}: stripe {stripe}: copies in slots {slots:?} differ from the first \
                 up-to-date copy from block {block} on"
            ),
            Finding::Missing { ino, stripe } => write!(
                f,
                "inode {ino}: stripe {stripe} holds the file's last byte but no copy has it"
            ),
            Finding::LinkCount {
                ino,
                kind,
                nlink,
                want,
                ..
            } => {
                let what = if *kind == FileKind::Dir {
                    "2 plus its subdirectories"
                } else {
                    "entries naming it"
                };
                write!(f, "inode {ino}: link count {nlink}, {what}: {want}")
            }
            Finding::DanglingEntry {
                parent,
                name,
                ino,
                parent_missing: false,
            } => write!(
                f,
                "entry {name:?} of directory {parent} names inode {ino}, which does not exist"
            ),
            Finding::DanglingEntry {
                parent, name, ino, ..
            } => write!(
                f,
                "entry {name:?} (inode {ino}) is in directory {parent}, which does not exist"
            ),
            Finding::Unreachable { ino, kind, .. } => {
                write!(
                    f,
                    "inode {ino} ({kind:?}) is named by no entry and not open"
                )
            }
            Finding::NotIndexed { ino } => write!(
                f,
                "inode {ino} has stale copies but is not in the stale index: resync misses it"
            ),
            Finding::NeedlessIndex { ino } => write!(
                f,
                "the stale index names inode {ino}, which has no stale copies"
            ),
            Finding::KeptBytesLost { ino } => write!(
                f,
                "inode {ino} is data on the MDS, but the store keeps no bytes for it: it reads as zeros"
            ),
            Finding::NeedlessKeptBytes { ino } => write!(
                f,
                "the store keeps bytes for inode {ino}, which is gone or not data on the MDS"
            ),
        }
    }
}

impl std::fmt::Display for Repaired {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Repaired::Done(what) => write!(f, "repaired: {what}"),
            Repaired::LeftAlone(why) => write!(f, "left alone: {why}"),
        }
    }
}
