//! Where the CRCs of one object are kept: in an extended attribute of the object file while
//! they are few, else in the sidecar file next to it ([`crate::oss::sums`]).
//!
//! Both hold the same bytes: the sidecar's header (magic, format, version) and one entry per
//! block, entry 0 meaning "zeros" (see `sums`). Small objects, the kind a `tar x` or a
//! dataset of small files makes by the thousand, keep them in the attribute
//! [`XATTR_NAME`] of their own file while the entries written stay below
//! [`XATTR_ENTRIES_MAX`]: one inode per object instead of two, which halves what creating
//! and cold-reading a small object costs the OST's file system (docs/benchmarks.md). An
//! object whose first write already reaches past that starts with a sidecar; one that grows
//! past it later moves its CRCs to a sidecar once ([`Crcs::move_to_sidecar`]).
//!
//! ## Which one counts
//! The attribute, when the object file has one: a sidecar next to such an object is what an
//! interrupted move left behind, and is removed. The move writes the sidecar, makes it and
//! its directory entry durable, and only then removes the attribute, so after a crash at
//! any point one of the two holds every CRC the object's synced blocks need. Until the next
//! sync of the object, the attribute's removal may not be on disk: [`Crcs::sync`] then
//! `fsync`s the object file (not only `fdatasync`), as it always does while the CRCs are
//! in the attribute (an attribute is inode metadata, which `fdatasync` does not cover).
//!
//! ## The mirror
//! Every read and write of the attribute goes to the file; the value the store last wrote
//! (or found when it opened the object) is also kept in memory, so that a read answered on
//! the async thread ([`Crcs::entries_if_cached`]) never waits for the disk, as the
//! sidecar's `RWF_NOWAIT` read does not. Only writes, which hold the object's lock, change
//! it; a read racing a write may see CRCs of either side, as with a sidecar, and the caller
//! reads again under the lock when they do not match.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use rustre_proto::sync::lock;

use crate::oss::sums::{self, SUMS_HEADER_BYTES};

/// The extended attribute holding a small object's CRCs.
pub(super) const XATTR_NAME: &CStr = c"user.rustre.sums";
/// Most entries (blocks) whose CRCs stay in the attribute: 16 x 4 KiB = objects up to
/// 64 KiB; 80 bytes, which ext4 keeps inside a 256-byte inode for up to 48 KiB objects and
/// in one attribute block beyond.
pub(super) const XATTR_ENTRIES_MAX: u64 = 16;
/// Largest attribute value read back; a longer one is not ours.
const XATTR_VALUE_MAX_BYTES: usize = 4096;

/// An object's CRCs, in whichever place holds them.
pub(super) struct Crcs {
    /// The object file (the attribute's owner, and what [`Crcs::sync`] syncs).
    data: Arc<File>,
    place: RwLock<Place>,
    /// The attribute was removed (moved to a sidecar) since the object file was last
    /// `fsync`ed.
    xattr_removed_unsynced: AtomicBool,
}

enum Place {
    /// In [`XATTR_NAME`] of the object file; `mirror` is its value as last read or written.
    Xattr { mirror: Mutex<Vec<u8>> },
    /// In the sidecar file.
    Sidecar(File),
}

/// What the object file's attribute holds.
pub(super) enum Stored {
    /// A value (not checked).
    Value(Vec<u8>),
    /// No attribute.
    Missing,
    /// The file system keeps no user attributes on this file.
    Unsupported,
}

/// Reads the attribute of `file`.
pub(super) fn stored(file: &File) -> io::Result<Stored> {
    let mut buf = vec![0u8; XATTR_VALUE_MAX_BYTES];
    // SAFETY: `buf` is writable for `buf.len()` bytes and outlives the call.
    let n = unsafe {
        libc::fgetxattr(
            file.as_raw_fd(),
            XATTR_NAME.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n >= 0 {
        buf.truncate(n as usize);
        return Ok(Stored::Value(buf));
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA) => Ok(Stored::Missing),
        Some(libc::EOPNOTSUPP) => Ok(Stored::Unsupported),
        _ => Err(e),
    }
}

/// Sets the attribute of `file` to `value`.
pub(super) fn store(file: &File, value: &[u8]) -> io::Result<()> {
    // SAFETY: `value` is readable for its length and outlives the call.
    let rc = unsafe {
        libc::fsetxattr(
            file.as_raw_fd(),
            XATTR_NAME.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes the attribute of `file` (none, or a file system without attributes, is fine).
pub(super) fn unstore(file: &File) -> io::Result<()> {
    // SAFETY: a plain call on an open descriptor with a NUL-terminated name.
    let rc = unsafe { libc::fremovexattr(file.as_raw_fd(), XATTR_NAME.as_ptr()) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENODATA | libc::EOPNOTSUPP) => Ok(()),
        _ => Err(e),
    }
}

/// Whether entries up to block `last` (included) may stay in the attribute.
pub(super) fn fits_xattr(last: u64) -> bool {
    last < XATTR_ENTRIES_MAX
}

impl Crcs {
    /// CRCs in the attribute of `data`, whose value is `value`.
    pub(super) fn in_xattr(data: Arc<File>, value: Vec<u8>) -> Crcs {
        Crcs {
            data,
            place: RwLock::new(Place::Xattr {
                mirror: Mutex::new(value),
            }),
            xattr_removed_unsynced: AtomicBool::new(false),
        }
    }

    /// CRCs in `sidecar`.
    pub(super) fn in_sidecar(data: Arc<File>, sidecar: File) -> Crcs {
        Crcs {
            data,
            place: RwLock::new(Place::Sidecar(sidecar)),
            xattr_removed_unsynced: AtomicBool::new(false),
        }
    }

    fn place(&self) -> RwLockReadGuard<'_, Place> {
        self.place.read().unwrap_or_else(|p| p.into_inner())
    }

    fn place_mut(&self) -> RwLockWriteGuard<'_, Place> {
        self.place.write().unwrap_or_else(|p| p.into_inner())
    }

    /// True while the CRCs are in the attribute.
    pub(super) fn is_xattr(&self) -> bool {
        matches!(*self.place(), Place::Xattr { .. })
    }

    /// The attribute's value, read from the file.
    fn xattr_value(&self) -> io::Result<Vec<u8>> {
        Ok(match stored(&self.data)? {
            Stored::Value(v) => v,
            // Removed behind the store's back: as empty as a missing sidecar.
            Stored::Missing | Stored::Unsupported => Vec::new(),
        })
    }

    /// Applies `change` to the attribute's value and writes it back (`place` holds the
    /// attribute). Caller holds the object's lock.
    fn change_xattr(&self, place: &Place, change: impl FnOnce(&mut Vec<u8>)) -> io::Result<()> {
        let Place::Xattr { mirror } = place else {
            unreachable!("change_xattr is only called on an attribute");
        };
        let mut value = self.xattr_value()?;
        change(&mut value);
        store(&self.data, &value)?;
        *lock(mirror) = value;
        Ok(())
    }

    /// The version in the header, `None` if the header is missing or invalid.
    pub(super) fn read_header(&self) -> io::Result<Option<u64>> {
        match &*self.place() {
            Place::Xattr { .. } => Ok(sums::parse_header(&self.xattr_value()?)),
            Place::Sidecar(f) => sums::read_header(f),
        }
    }

    /// Writes the header for `version`, keeping the entries.
    pub(super) fn write_header(&self, version: u64) -> io::Result<()> {
        let place = self.place();
        if let Place::Sidecar(f) = &*place {
            return sums::write_header(f, version);
        }
        self.change_xattr(&place, |v| {
            if v.len() < SUMS_HEADER_BYTES as usize {
                v.resize(SUMS_HEADER_BYTES as usize, 0);
            }
            v[..SUMS_HEADER_BYTES as usize].copy_from_slice(&sums::header(version));
        })
    }

    /// Stored entries `first..first + count` (0 past the end).
    pub(super) fn entries(&self, first: u64, count: usize) -> io::Result<Vec<u32>> {
        match &*self.place() {
            Place::Xattr { .. } => Ok(entries_of(&self.xattr_value()?, first, count)),
            Place::Sidecar(f) => sums::read_entries(f, first, count),
        }
    }

    /// [`Crcs::entries`] when reading them waits for nothing: from the mirror of the
    /// attribute, or from a sidecar whose bytes are in the page cache.
    pub(super) fn entries_if_cached(&self, first: u64, count: usize) -> Option<Vec<u32>> {
        match &*self.place() {
            Place::Xattr { mirror } => Some(entries_of(&lock(mirror), first, count)),
            Place::Sidecar(f) => sums::read_entries_if_cached(f, first, count),
        }
    }

    /// Writes entries from `first` on. In the attribute, the caller has checked that they
    /// fit ([`fits_xattr`]) or moved them to a sidecar.
    pub(super) fn write_entries(&self, first: u64, crcs: &[u32]) -> io::Result<()> {
        let place = self.place();
        if let Place::Sidecar(f) = &*place {
            return sums::write_entries(f, first, crcs);
        }
        self.change_xattr(&place, |v| {
            let start = sums::entry_offset(first) as usize;
            let bytes = sums::encode_entries(crcs);
            if v.len() < start + bytes.len() {
                v.resize(start + bytes.len(), 0);
            }
            v[start..start + bytes.len()].copy_from_slice(&bytes);
        })
    }

    /// Cuts the stored entries to at most those of an object of `size` bytes.
    pub(super) fn cut(&self, size: u64) -> io::Result<()> {
        let want = sums::sums_len(size);
        let place = self.place();
        match &*place {
            Place::Sidecar(f) => {
                if f.metadata()?.len() > want {
                    f.set_len(want)?;
                }
                Ok(())
            }
            // The mirror is what the file holds (unless changed behind the store's back),
            // so an object that only grows costs no attribute call here.
            Place::Xattr { mirror } if lock(mirror).len() as u64 > want => {
                self.change_xattr(&place, |v| v.truncate(want as usize))
            }
            Place::Xattr { .. } => Ok(()),
        }
    }

    /// Moves the CRCs from the attribute to `sidecar` (new and empty): writes them there
    /// and `fdatasync`s it, runs `sync_dir` (which must make the sidecar's directory entry
    /// durable), then removes the attribute. Caller holds the object's lock.
    pub(super) fn move_to_sidecar(
        &self,
        sidecar: File,
        sync_dir: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        let mut place = self.place_mut();
        if !matches!(*place, Place::Xattr { .. }) {
            return Ok(());
        }
        let mut value = self.xattr_value()?;
        if sums::parse_header(&value).is_none() {
            value.resize((SUMS_HEADER_BYTES as usize).max(value.len()), 0);
            value[..SUMS_HEADER_BYTES as usize].copy_from_slice(&sums::header(0));
        }
        std::os::unix::fs::FileExt::write_all_at(&sidecar, &value, 0)?;
        sidecar.sync_data()?;
        sync_dir()?;
        unstore(&self.data)?;
        self.xattr_removed_unsynced.store(true, Ordering::Release);
        *place = Place::Sidecar(sidecar);
        Ok(())
    }

    /// Makes the object's bytes and CRCs durable: `fdatasync` of the object file, or
    /// `fsync` while (or just after) the CRCs are in its attribute, then `fdatasync` of the
    /// sidecar if there is one. A failure says whether the object file (`true`) or the
    /// sidecar failed.
    pub(super) fn sync(&self) -> Result<(), (bool, io::Error)> {
        let place = self.place();
        let whole = matches!(*place, Place::Xattr { .. })
            || self.xattr_removed_unsynced.swap(false, Ordering::AcqRel);
        let synced = if whole {
            self.data.sync_all()
        } else {
            self.data.sync_data()
        };
        if let Err(e) = synced {
            if whole && matches!(*place, Place::Sidecar(_)) {
                self.xattr_removed_unsynced.store(true, Ordering::Release);
            }
            return Err((true, e));
        }
        match &*place {
            Place::Sidecar(f) => f.sync_data().map_err(|e| (false, e)),
            Place::Xattr { .. } => Ok(()),
        }
    }
}

/// Entries `first..first + count` of a header-and-entries value (0 past its end).
fn entries_of(value: &[u8], first: u64, count: usize) -> Vec<u32> {
    let mut buf = vec![0u8; count * sums::SUMS_ENTRY_BYTES as usize];
    let start = (sums::entry_offset(first) as usize).min(value.len());
    let stored = &value[start..(start + buf.len()).min(value.len())];
    buf[..stored.len()].copy_from_slice(stored);
    sums::decode_entries(&buf)
}
