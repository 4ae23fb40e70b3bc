//! Space kept free on the disks the servers write to (docs/operations.md, "Full disks").
//!
//! The embedded metadata store must never meet ENOSPC: fjall poisons itself when a journal
//! write fails, and every later change, removals included, then fails with EIO until the
//! MDS restarts: a full disk would leave no way to free it. So:
//!
//! - The MDS refuses what adds to the namespace (creates, directories, nodes, symlinks,
//!   links, xattrs) with ENOSPC once its store's file system has less than
//!   [`MDS_RESERVE`] free, and takes everything else: removals, renames, attribute changes,
//!   opens and closes write little, and free space.
//! - An OST served from a directory refuses writes (and repairs) with ENOSPC once its file
//!   system has less than [`OST_RESERVE`] free, a larger share, and reports its available
//!   space without the reserve (so placement and `df` see it full). On a disk the OSTs share
//!   with the MDS (`rustre local`, small clusters), data stops first and leaves the MDS the
//!   room to remove files. A write that would fail half-way also never leaves blocks whose
//!   checksums could not be written.
//!
//! A reserve is a share of the file system with a floor, and at most a fixed share of a
//! small one (a test's tmpfs stays usable). The free space is read with `statvfs` at most
//! every [`SPACE_CHECK_INTERVAL`], so a check costs a mutex in between.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustre_proto::msg::Capacity;
use rustre_proto::sync::lock;

/// How long a free-space reading is trusted.
pub const SPACE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// How much of a file system a reserve keeps free: `1/share` of it, at least `min_bytes`,
/// and never more than `1/most_share` of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReserveRule {
    pub min_bytes: u64,
    pub share: u64,
    pub most_share: u64,
}

impl ReserveRule {
    /// The reserve on a file system of `total` bytes.
    pub fn bytes(&self, total: u64) -> u64 {
        self.min_bytes
            .max(total / self.share)
            .min(total / self.most_share)
    }
}

/// The MDS's reserve on its store's file system: 1 %, at least 256 MiB, at most an eighth.
/// The store writes more than the changes it takes: a memtable flush writes a table before
/// its journal goes (`meta/fjall_store.rs`: memtables of `MEMTABLE_BYTES`, 64 MiB, which the
/// floor holds; a file system under 512 MiB gets a reserve below that), and compactions
/// rewrite tables.
pub const MDS_RESERVE: ReserveRule = ReserveRule {
    min_bytes: 256 << 20,
    share: 100,
    most_share: 8,
};

/// An OST's reserve: 2 %, at least 512 MiB, at most a quarter; larger than the MDS's, so
/// that data stops first on a shared disk.
pub const OST_RESERVE: ReserveRule = ReserveRule {
    min_bytes: 512 << 20,
    share: 50,
    most_share: 4,
};

/// The capacity of the file system holding `path`.
pub fn statvfs(path: &Path) -> std::io::Result<Capacity> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other(format!("{} contains a NUL byte", path.display())))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    let (frsize, blocks, bfree, bavail) = (
        u64::from(st.f_frsize),
        u64::from(st.f_blocks),
        u64::from(st.f_bfree),
        u64::from(st.f_bavail),
    );
    Ok(Capacity {
        total_bytes: blocks.saturating_mul(frsize),
        free_bytes: bfree.saturating_mul(frsize),
        avail_bytes: bavail.saturating_mul(frsize),
    })
}

/// Whether a file system still has more free space than a reserve. The space is read with
/// `statvfs` at most every [`SPACE_CHECK_INTERVAL`]; in between, the bytes each admitted
/// change declares are taken off the last reading, and a change the estimate no longer
/// covers reads the space again at once (a fast writer would cross a reserve within one
/// interval). `what` names the server in the log lines said when the space falls into the
/// reserve and when it comes back.
pub struct SpaceGuard {
    rule: ReserveRule,
    what: String,
    state: Mutex<Reading>,
}

/// The last reading of a [`SpaceGuard`].
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    /// When it was taken; `None` before the first.
    at: Option<Instant>,
    /// The reserve of the file system read.
    reserve: u64,
    /// Its free bytes then, less what was admitted since; `u64::MAX` when it could not
    /// be read (nothing is refused without a reading).
    free_left: u64,
    /// Whether the last check found room.
    room: bool,
}

impl SpaceGuard {
    pub fn new(rule: ReserveRule, what: impl Into<String>) -> SpaceGuard {
        SpaceGuard {
            rule,
            what: what.into(),
            state: Mutex::new(Reading::default()),
        }
    }

    /// True (and `bytes` counted as used) when a change writing about `bytes` leaves more
    /// free space than the reserve on the file system `capacity` reads.
    pub fn has_room(&self, bytes: u64, capacity: impl FnOnce() -> Option<Capacity>) -> bool {
        let mut st = lock(&self.state);
        let fresh = st.at.is_some_and(|at| at.elapsed() < SPACE_CHECK_INTERVAL);
        if fresh && st.free_left.saturating_sub(bytes) > st.reserve {
            st.free_left -= bytes;
            return true;
        }
        let was = st.at.map(|_| st.room);
        let reading = capacity();
        let (reserve, free) = match reading {
            Some(c) => (self.rule.bytes(c.total_bytes), c.free_bytes),
            None => (0, u64::MAX),
        };
        let room = free.saturating_sub(bytes) > reserve;
        *st = Reading {
            at: Some(Instant::now()),
            reserve,
            free_left: if room { free - bytes } else { free },
            room,
        };
        drop(st);
        match (was, room) {
            (Some(true) | None, false) => tracing::warn!(
                "{}: free space ({} MiB) within the reserve of {} MiB: what would fill it is \
                 refused with ENOSPC until files are removed",
                self.what,
                free >> 20,
                reserve >> 20
            ),
            (Some(false), true) => {
                tracing::info!("{}: free space above the reserve again", self.what)
            }
            _ => {}
        }
        room
    }

    /// `c` as the cluster should see it: the reserve is not available.
    pub fn without_reserve(&self, c: Capacity) -> Capacity {
        let usable = c.free_bytes.saturating_sub(self.rule.bytes(c.total_bytes));
        Capacity {
            avail_bytes: c.avail_bytes.min(usable),
            ..c
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const MIB: u64 = 1 << 20;

    fn cap(total: u64, free: u64) -> Capacity {
        Capacity {
            total_bytes: total,
            free_bytes: free,
            avail_bytes: free,
        }
    }

    #[test]
    fn a_reserve_is_a_share_with_a_floor_and_a_ceiling() {
        assert_eq!(
            MDS_RESERVE.bytes(1 << 40),
            (1 << 40) / 100,
            "a big disk: the share"
        );
        assert_eq!(
            MDS_RESERVE.bytes(10 << 30),
            256 * MIB,
            "a middling disk: the floor"
        );
        assert_eq!(
            MDS_RESERVE.bytes(96 * MIB),
            12 * MIB,
            "a small one: an eighth"
        );
        assert_eq!(OST_RESERVE.bytes(64 * MIB), 16 * MIB);
        for total in [64 * MIB, 96 * MIB, 10 << 30, 1 << 40] {
            assert!(
                OST_RESERVE.bytes(total) > MDS_RESERVE.bytes(total),
                "data stops first on a shared disk of {total} bytes"
            );
        }
    }

    #[test]
    fn the_guard_refuses_inside_the_reserve_and_counts_what_it_admits_between_readings() {
        let g = SpaceGuard::new(MDS_RESERVE, "test");
        let reads = Cell::new(0);
        let read = |free| {
            reads.set(reads.get() + 1);
            Some(cap(96 * MIB, free))
        };
        // The reserve of 96 MiB is 12 MiB.
        assert!(g.has_room(MIB, || read(20 * MIB)));
        assert!(
            g.has_room(MIB, || read(0)),
            "19 MiB left: the reading is kept"
        );
        assert_eq!(reads.get(), 1);
        for _ in 0..5 {
            assert!(g.has_room(MIB, || read(0)));
        }
        assert_eq!(reads.get(), 1, "13 MiB left by the estimate");
        assert!(
            !g.has_room(MIB, || read(12 * MIB + MIB / 2)),
            "the estimate reached the reserve: read again, and refused"
        );
        assert_eq!(reads.get(), 2);
        assert!(!g.has_room(MIB, || read(12 * MIB)), "at the reserve");
        assert_eq!(reads.get(), 3, "a refusal reads again every time");
        assert!(
            g.has_room(1, || read(30 * MIB)),
            "room again after a removal"
        );
        g.state.lock().unwrap().at = None;
        assert!(g.has_room(u64::MAX / 2, || None), "no reading: no refusal");
    }

    #[test]
    fn the_reserve_is_not_available_to_the_cluster() {
        let g = SpaceGuard::new(OST_RESERVE, "test");
        assert_eq!(
            g.without_reserve(cap(64 * MIB, 40 * MIB)).avail_bytes,
            24 * MIB
        );
        assert_eq!(g.without_reserve(cap(64 * MIB, 10 * MIB)).avail_bytes, 0);
        let c = g.without_reserve(cap(64 * MIB, 40 * MIB));
        assert_eq!((c.total_bytes, c.free_bytes), (64 * MIB, 40 * MIB));
    }

    #[test]
    fn statvfs_reads_this_file_system() {
        let c = statvfs(Path::new("/")).unwrap();
        assert!(c.total_bytes > 0 && c.free_bytes <= c.total_bytes);
        assert!(statvfs(Path::new("/no/such/dir")).is_err());
    }
}
