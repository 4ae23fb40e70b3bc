//! Messages: one request enum per service and the types they share.
//!
//! Each service has exactly one request enum and one response enum; servers `match` the
//! request exhaustively, so a new variant without a handler does not compile.

pub mod acl;
pub mod attr_rules;
pub mod extent;
pub mod fsck;
pub mod mds;
pub mod mgs;
pub mod migrate;
pub mod oss;
pub mod quota;
pub mod stripe_set;

pub use stripe_set::StripeSet;

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
/// Largest object an OST stores (16 TiB): writes and truncates past it are EFBIG. A file
/// can hold at most this much per stripe ([`Layout::max_file_size`]); the OSS refuses
/// objects past it and the MDS refuses sizes past what the stripes hold.
pub const MAX_OBJECT_BYTES: u64 = 1 << 44;

/// A point in time, as seconds and nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Timestamp {
    pub sec: i64,
    pub nsec: u32,
}

impl Timestamp {
    /// The time `d` after the Unix epoch (the wall clock is [`crate::host::now`]).
    pub fn since_epoch(d: std::time::Duration) -> Timestamp {
        Timestamp {
            sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
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

/// How a file's bytes are spread over OSTs (RAID-0 over objects, as Lustre), and where the
/// copies of each stripe live (RAID-1 over OSTs when `replicas > 1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Bytes per stripe unit.
    pub stripe_size: u32,
    /// The OST of every copy of every stripe, replica-major: copy `r` of stripe `i` is at
    /// slot `r * stripe_count + i`. Its length is `stripe_count * replicas`, so the first
    /// `stripe_count` entries are copy 0 of each stripe.
    pub osts: Vec<u32>,
    /// Copies of each stripe (1 = no replication).
    pub replicas: u32,
    /// Slots (indices into `osts`) whose copy missed a write and must not be read until it
    /// is resynced. Every copy of one stripe only when the stripe lost its data (its only
    /// up-to-date copies were on a replaced disk, `MdsOp::MarkLost`): nothing can refill it,
    /// and reading or writing it fails with EIO.
    pub stale: Vec<u32>,
    /// Bumped each time a slot turns stale, is resynced or moves; carried by every object
    /// write and kept with the object, so a copy that missed writes is recognisable.
    pub version: u64,
    /// Stripes that hold written data: a writer reported writes to them that every live
    /// copy acknowledged (`MdsOp::ReportSize`). Every live copy of such a stripe has its
    /// object, so a read finding none there is EIO (`Error::Missing`), never a hole; a
    /// stripe not in it may have no object (never written: it reads as zeros). Only a
    /// truncate that leaves a stripe no byte removes it (docs/replication.md, "Which
    /// objects exist"). The version does not change with it.
    pub written: StripeSet,
    /// Bytes the object of copy 0 of each stripe holds on its OST's disk (its allocated
    /// blocks, holes excluded), as writers last saw it (`OssResponse::Written`, reported
    /// with `MdsOp::ReportSize`): what `st_blocks` counts ([`Layout::blocks`]). A written
    /// stripe without an entry (or with [`UNKNOWN_ALLOCATION`]: written by a client that
    /// does not report it) counts as dense. The version does not change with it.
    pub allocated: Vec<u64>,
}

/// An entry of `Layout::allocated` no writer reported.
pub const UNKNOWN_ALLOCATION: u64 = u64::MAX;
/// Bytes of one `st_blocks` unit.
pub const STAT_BLOCK_BYTES: u64 = 512;
/// Allocation unit a dense stripe is counted in (the OSTs' file system block).
const DENSE_BLOCK_BYTES: u64 = 4096;

impl Layout {
    /// An unreplicated layout over `osts` (one stripe per OST).
    pub fn striped(stripe_size: u32, osts: Vec<u32>) -> Layout {
        Layout {
            stripe_size,
            osts,
            replicas: 1,
            stale: Vec::new(),
            version: 0,
            written: StripeSet::default(),
            allocated: Vec::new(),
        }
    }

    /// Number of stripes.
    pub fn stripe_count(&self) -> u32 {
        (self.osts.len() / self.replicas.max(1) as usize) as u32
    }

    /// The slot (index into `osts`) of copy `replica` of `stripe`.
    pub fn slot(&self, stripe: u32, replica: u32) -> usize {
        (replica * self.stripe_count() + stripe) as usize
    }

    /// The stripe a slot holds a copy of.
    pub fn stripe_of_slot(&self, slot: usize) -> u32 {
        (slot % self.stripe_count().max(1) as usize) as u32
    }

    /// True when the copy in `slot` missed writes.
    pub fn is_stale(&self, slot: usize) -> bool {
        self.stale.iter().any(|s| *s as usize == slot)
    }

    /// Every copy of `stripe` as (slot, OST), copy 0 first.
    pub fn copies(&self, stripe: u32) -> Vec<(usize, u32)> {
        (0..self.replicas)
            .map(|r| {
                let slot = self.slot(stripe, r);
                (slot, self.osts[slot])
            })
            .collect()
    }

    /// The copies of `stripe` that are up to date (may be read), as (slot, OST).
    pub fn live_copies(&self, stripe: u32) -> Vec<(usize, u32)> {
        self.copies(stripe)
            .into_iter()
            .filter(|(slot, _)| !self.is_stale(*slot))
            .collect()
    }

    /// Adds the stripes of `written` this layout has (a writer's report); true when one was
    /// new.
    pub fn note_written(&mut self, written: &StripeSet) -> bool {
        let count = self.stripe_count();
        let mut w = *written;
        w.retain(|s| s < count);
        self.written.union_with(&w)
    }

    /// Records what writers saw of the allocation of copy 0 of stripes (`(stripe, bytes)`,
    /// stripes past the count ignored); true when an entry changed.
    pub fn note_allocated(&mut self, allocated: &[(u32, u64)]) -> bool {
        let count = self.stripe_count() as usize;
        let mut changed = false;
        for &(stripe, bytes) in allocated.iter().filter(|(s, _)| (*s as usize) < count) {
            if self.allocated.len() < count {
                self.allocated.resize(count, UNKNOWN_ALLOCATION);
            }
            changed |= std::mem::replace(&mut self.allocated[stripe as usize], bytes) != bytes;
        }
        changed
    }

    /// `st_blocks` (512-byte units) of a file of `size` bytes: per stripe, nothing when it
    /// was never written, else the allocation reported (at most the object's length rounded
    /// up to 4 KiB, which covers a truncate since), else (not reported) that length.
    pub fn blocks(&self, size: u64) -> u64 {
        let bytes: u64 = (0..self.stripe_count())
            .filter(|s| self.written.contains(*s))
            .map(|s| {
                let dense = self
                    .object_size(s, size)
                    .div_ceil(DENSE_BLOCK_BYTES)
                    .saturating_mul(DENSE_BLOCK_BYTES);
                match self.allocated.get(s as usize) {
                    Some(&a) if a != UNKNOWN_ALLOCATION => a.min(dense),
                    _ => dense,
                }
            })
            .fold(0, u64::saturating_add);
        bytes.div_ceil(STAT_BLOCK_BYTES)
    }

    /// Forgets the written stripes to which a file of `size` bytes gives no byte: a truncate
    /// to `size` removed their whole content.
    pub fn forget_written_past(&mut self, size: u64) {
        let mut w = self.written;
        w.retain(|s| self.object_size(s, size) > 0);
        self.written = w;
    }

    /// True when no copy of `stripe` is up to date: the stripe lost its data.
    pub fn is_lost(&self, stripe: u32) -> bool {
        self.live_copies(stripe).is_empty()
    }

    /// The length object `stripe` has when the file is `file_size` bytes long. Byte `off`
    /// of the file lives in stripe `(off / stripe_size) % stripe_count`, at object offset
    /// `(off / (stripe_size * stripe_count)) * stripe_size + off % stripe_size`.
    pub fn object_size(&self, stripe: u32, file_size: u64) -> u64 {
        let size = self.stripe_size.max(1) as u64;
        let count = self.stripe_count().max(1) as u64;
        let full_rows = file_size / (size * count);
        let rest = file_size % (size * count);
        let mut len = full_rows * size;
        let start_in_row = stripe as u64 * size;
        if rest > start_in_row {
            len += (rest - start_in_row).min(size);
        }
        len
    }

    /// The largest size a file of this layout can have: the size at which its first object
    /// (the longest) reaches [`MAX_OBJECT_BYTES`]. `stripe_count * MAX_OBJECT_BYTES` when the
    /// stripe size divides it (every power of two does).
    pub fn max_file_size(&self) -> u64 {
        let size = self.stripe_size.max(1) as u64;
        let count = self.stripe_count().max(1) as u64;
        (MAX_OBJECT_BYTES / size) * size * count + MAX_OBJECT_BYTES % size
    }

    /// Checks sizes and counts against the protocol limits, and that copies of one stripe
    /// sit on distinct OSTs. A stripe may have no up-to-date copy left: it lost its data
    /// (its only copies were on a replaced disk, `MdsOp::MarkLost`), and its reads and writes
    /// fail with EIO.
    pub fn validate(&self) -> Result<(), crate::Error> {
        let bad = |m: &str| Err(crate::Error::Invalid(m.to_string()));
        if self.stripe_size < MIN_STRIPE_SIZE
            || self.stripe_size > MAX_STRIPE_SIZE
            || !self.stripe_size.is_multiple_of(MIN_STRIPE_SIZE)
        {
            return bad("stripe size must be a multiple of 4096 between 4 KiB and 16 MiB");
        }
        if self.replicas == 0 || self.replicas > MAX_REPLICAS {
            return bad("replica count must be between 1 and 8");
        }
        if self.osts.is_empty()
            || !self.osts.len().is_multiple_of(self.replicas as usize)
            || self.stripe_count() > MAX_STRIPE_COUNT
        {
            return bad("stripe count must be between 1 and 256, with every copy placed");
        }
        if self.stale.len() > self.osts.len()
            || self.stale.iter().any(|s| *s as usize >= self.osts.len())
        {
            return bad("a stale slot is outside the layout");
        }
        if self.written.iter().any(|s| s >= self.stripe_count()) {
            return bad("a written stripe is outside the layout");
        }
        for stripe in 0..self.stripe_count() {
            let mut osts: Vec<u32> = self.copies(stripe).iter().map(|c| c.1).collect();
            osts.sort_unstable();
            osts.dedup();
            if osts.len() != self.replicas as usize {
                return bad("two copies of one stripe are on the same OST");
            }
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
    /// An extended POSIX access ACL: what it holds beyond the mode, whose group bits are
    /// then its mask ([`acl`]). `None`: the mode says everything. Boxed: most inodes have
    /// none, and caches hold many attributes.
    pub acl: Option<Box<acl::ExtAcl>>,
    /// The project (directory tree with a quota, [`quota`]) the inode belongs to;
    /// [`quota::NO_PROJECT`] for none.
    pub project: Ino,
    /// Regular files: the file's bytes live in the metadata store, not in its objects
    /// (data on the MDS, docs/data-on-mds.md): a reader asks the MDS for them
    /// (`MdsOp::ReadInline`), a writer has them moved to the objects first
    /// (`MdsOp::Spill`). The layout's objects then hold nothing.
    pub inline: bool,
}

impl Attr {
    /// `st_blocks` (512-byte units): what the objects of a regular file hold on the OSTs'
    /// disks ([`Layout::blocks`]); for a file whose data is on the MDS and for other
    /// inodes, the size rounded up to units. What a
    /// mount's stat reports, and what `rustre du` adds up.
    pub fn blocks(&self) -> u64 {
        if self.inline {
            return self.size.div_ceil(STAT_BLOCK_BYTES);
        }
        self.layout
            .as_ref()
            .map_or(self.size.div_ceil(STAT_BLOCK_BYTES), |l| {
                l.blocks(self.size)
            })
    }
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

/// True when `creds` may access `attr` with `mask` (read 4, write 2, execute/search 1), as
/// Linux decides: root reads and writes anything, searches any directory and executes what
/// anyone may execute; the owner gets the owner's bits; anyone else, with an access ACL,
/// what its POSIX.1e check gives ([`acl::ExtAcl::grants`]), else the group's bits for a
/// member and the others' for the rest. The MDS and the client's metadata cache both ask
/// this.
pub fn may_access(creds: &Creds, attr: &Attr, mask: u32) -> bool {
    if creds.uid == 0 {
        return mask & 1 == 0 || attr.kind == FileKind::Dir || attr.perm & 0o111 != 0;
    }
    let bits = if creds.uid == attr.uid {
        (attr.perm >> 6) & 7
    } else if let Some(acl) = &attr.acl {
        return acl.grants(creds, attr, mask);
    } else if creds.in_group(attr.gid) {
        (attr.perm >> 3) & 7
    } else {
        attr.perm & 7
    };
    bits & mask == mask
}

/// Capacity figures of an OST or of the whole cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capacity {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
}

/// Checks a directory entry name: not empty, no '/', no NUL, not "." or "..", standing for
/// at most 255 bytes ([`crate::raw_names`]).
pub fn validate_name(name: &str) -> Result<(), crate::Error> {
    // The bytes the name stands for (names that are not UTF-8: `crate::raw_names`).
    if crate::raw_names::decoded_len(name) > NAME_MAX_BYTES {
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
    fn blocks_count_what_writers_reported_and_nothing_for_unwritten_stripes() {
        const MIB: u64 = 1 << 20;
        let mut l = Layout::striped(1 << 20, vec![0, 1, 2]);
        assert_eq!(l.blocks(3 << 30), 0, "never written: all holes");
        l.note_written(&[0, 1].into_iter().collect());
        // Written by a client that reports no allocation: dense.
        assert_eq!(l.blocks(3 * MIB + 1), (2 * MIB + 4096) / 512);
        assert!(
            l.note_allocated(&[(0, 4096), (9, 1)]),
            "stripe 9 is ignored"
        );
        assert!(!l.note_allocated(&[(0, 4096)]));
        assert_eq!(l.allocated, [4096, UNKNOWN_ALLOCATION, UNKNOWN_ALLOCATION]);
        assert_eq!(l.blocks(3 << 30), (4096 + (1 << 30)) / 512);
        l.note_allocated(&[(1, 8192)]);
        assert_eq!(l.blocks(3 << 30), (4096 + 8192) / 512);
        // A truncate since the report: at most what the objects can hold.
        assert_eq!(l.blocks(100), 4096 / 512);
        assert_eq!(l.blocks(0), 0);
    }

    #[test]
    fn layouts_place_copies_replica_major() {
        let mut l = Layout {
            stripe_size: 4096,
            osts: vec![0, 1, 2, 3, 4, 5],
            replicas: 2,
            stale: vec![],
            version: 0,
            written: StripeSet::default(),
            allocated: Vec::new(),
        };
        assert!(l.validate().is_ok());
        assert_eq!(l.stripe_count(), 3);
        assert_eq!(l.copies(1), vec![(1, 1), (4, 4)]);
        assert_eq!(l.stripe_of_slot(4), 1);
        l.stale = vec![4];
        assert_eq!(l.live_copies(1), vec![(1, 1)]);
        assert!(l.validate().is_ok());
        l.stale = vec![4, 1];
        assert!(l.is_lost(1) && !l.is_lost(0));
        assert!(
            l.validate().is_ok(),
            "a stripe that lost its data is a valid layout"
        );
        l.stale = vec![9];
        assert!(l.validate().is_err(), "a slot outside the layout");
        l.stale = vec![];
        l.osts = vec![0, 1, 2, 0, 4, 5];
        assert!(l.validate().is_err(), "two copies on one OST");
        l.osts = vec![0, 1, 2, 3, 4];
        assert!(l.validate().is_err(), "a copy missing");
    }

    #[test]
    fn written_stripes_stay_within_the_layout_until_a_cut_empties_them() {
        let mut l = Layout::striped(4096, vec![0, 1, 2]);
        assert!(l.note_written(&[0, 2, 3].into_iter().collect()));
        assert!(!l.note_written(&[2].into_iter().collect()), "nothing new");
        assert_eq!(l.written.iter().collect::<Vec<_>>(), [0, 2], "no stripe 3");
        assert!(l.validate().is_ok());
        l.written.insert(3);
        assert!(l.validate().is_err(), "a written stripe outside the layout");
        l.written.remove_all(&[3].into_iter().collect());
        // 5000 bytes: stripe 0 keeps 4096, stripe 1 904, stripe 2 none.
        l.forget_written_past(5000);
        assert_eq!(l.written.iter().collect::<Vec<_>>(), [0]);
        l.forget_written_past(0);
        assert!(l.written.is_empty());
    }

    #[test]
    fn a_file_holds_at_most_max_object_bytes_per_stripe() {
        let mut l = Layout::striped(1 << 20, vec![0]);
        assert_eq!(l.max_file_size(), MAX_OBJECT_BYTES);
        assert_eq!(l.object_size(0, l.max_file_size()), MAX_OBJECT_BYTES);
        l.osts = vec![0, 1, 2, 3];
        assert_eq!(l.max_file_size(), 4 * MAX_OBJECT_BYTES);
        // A stripe size that does not divide the object limit: the first object is the one
        // that reaches it, one byte more would pass it.
        l.stripe_size = 3 * 4096;
        let max = l.max_file_size();
        assert!(max < 4 * MAX_OBJECT_BYTES);
        assert_eq!(l.object_size(0, max), MAX_OBJECT_BYTES);
        assert_eq!(l.object_size(0, max + 1), MAX_OBJECT_BYTES + 1);
        assert!((1..4).all(|s| l.object_size(s, max) <= MAX_OBJECT_BYTES));
    }

    #[test]
    fn object_sizes_follow_the_striping() {
        let l = Layout::striped(4096, vec![0, 1, 2]);
        // 2 full rows (24 KiB) and 5000 bytes: stripe 0 gets 4096 more, stripe 1 904.
        let size = 2 * 3 * 4096 + 5000;
        assert_eq!(l.object_size(0, size), 3 * 4096);
        assert_eq!(l.object_size(1, size), 2 * 4096 + 904);
        assert_eq!(l.object_size(2, size), 2 * 4096);
        let total: u64 = (0..3).map(|s| l.object_size(s, size)).sum();
        assert_eq!(total, size);
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
