//! The file-backed [`ObjectStore`]: one plain file per object, and its CRCs in an extended
//! attribute of that file (objects up to 64 KiB) or in a checksum sidecar.
//!
//! ```text
//! DIR/objects/<ino % 256, 2 hex digits>/<ino, 16 hex digits>.<stripe>       the data
//!                                                        (xattr user.rustre.sums: its CRCs)
//! DIR/objects/<ino % 256, 2 hex digits>/<ino, 16 hex digits>.<stripe>.sum   or its CRCs
//! ```
//! The 256 subdirectories are made when the store opens, so no directory grows past what
//! ext4 or XFS handle well before millions of objects. The format of the CRCs, what an
//! entry of 0 means and what happens to an object found without them are in
//! [`super::sums`]; which of the two places holds them, and how they move from one to the
//! other, in `crcs`. A sidecar is created before the object file and removed after it.
//!
//! This module holds the store itself: opening, paths, the handle cache, reads, sizes and
//! deletes. The rest, one job per file:
//! - `write`: writes, repairs, truncates and syncs (how CRCs follow the bytes).
//! - `scan`: whole-store and whole-object walks: listing, scrubbing, checksums, capacity.
//! - `crcs`: where an object's CRCs live (attribute or sidecar).
//! - `open`: opening and creating an object's files.
//!
//! ## Open handles
//! Open files are kept in a bounded [`HandleCache`], the object file and its sidecar
//! together. Rule: a handle enters the cache and a file leaves the directory only under the
//! object's lock (one of [`OBJECT_LOCK_STRIPES`] striped mutexes). Without it, an open racing
//! a delete could cache a handle to the unlinked file, and every later write would vanish
//! into it. A call that took a handle just before a delete may still use it; that call is
//! ordered before the delete, as any interleaving of concurrent calls allows. A cached
//! file that was removed from the directory behind the OSS's back (by hand, by a disk
//! repair) is dropped from the cache when a read or a size call sees it (its link count is
//! 0): from then on the object is absent, as on disk (docs/replication.md, "Which objects
//! exist").
//!
//! ## Reads
//! Reads take no lock and go to the socket with `sendfile` after the CRCs are read, so a
//! read racing a write of the same blocks can return CRCs and bytes from different sides of
//! that write; the caller sees a mismatch and reads again with `read_consistent`, which
//! holds the object's lock (as every write does) while it copies the bytes out, so a
//! mismatch then is real damage, never a race. A read of an object whose handle is cached
//! and whose CRCs are in the page cache (`preadv2` with `RWF_NOWAIT`) waits for nothing and
//! is answered on the async thread (`read_in_place`); when the CRCs are cold, the data is
//! asked for before they are read, so the two disk reads overlap.
//!
//! ## Durability
//! Writes are positional and not synced unless asked; `sync` (or a write with `sync`) is an
//! `fdatasync` of the object and of its sidecar, or an `fsync` of an object whose CRCs are
//! in its attribute. Creating or removing a file changes its
//! directory, which `fdatasync` on the file does not cover, so each object directory carries
//! a dirty flag: creations and removals set it, and a sync in that directory also fsyncs it
//! when set (one directory fsync covers every change made before it, so bursts of creations
//! share one). After a crash, unsynced data and CRCs may disagree: such blocks fail their
//! check (docs/replication.md), and a sidecar longer than its object is cut when the object
//! next grows, so stale entries never pass for holes.

mod crcs;
mod open;
mod recycle;
#[cfg(test)]
mod recycle_tests;
mod scan;
#[cfg(test)]
mod tests;
mod write;

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustre_proto::sync::lock;

use rustre_proto::msg::oss::ObjectId;
use rustre_proto::msg::{Capacity, STAT_BLOCK_BYTES};

use super::error::ObjectError;
use super::handles::HandleCache;
use super::store::{check_object, check_read, ObjectPage, ObjectRead, ObjectStore, ReadData};
use super::sums::{self, BLOCK};
use crate::records::sync_dir;
use crcs::Crcs;

pub use scan::{statvfs, SCRUB_CHUNK_BYTES};

/// Striped object locks (see the module doc); more stripes, fewer false conflicts.
pub const OBJECT_LOCK_STRIPES: usize = 256;
/// Number of object subdirectories, named by `ino % OBJECT_DIRS`.
pub const OBJECT_DIRS: u64 = 256;
/// Name of the directory holding the objects.
pub const OBJECTS_DIR: &str = "objects";
/// Permissions of object files: only the OSS reads them.
const OBJECT_FILE_MODE: u32 = 0o600;

struct DirState {
    /// A file was created or removed since the last fsync of the directory.
    dirty: AtomicBool,
    /// Held across the directory fsync, so a sync that finds the flag clear waits for one
    /// in progress instead of returning before it is done.
    syncing: Mutex<()>,
}

/// The open files of one object.
pub(crate) struct ObjectFiles {
    /// The object's bytes (shared with `sendfile` replies).
    data: Arc<File>,
    /// Its CRCs (in an attribute of `data` or a sidecar).
    crcs: Crcs,
    /// The version in the sidecar's header; changed under the object's lock.
    version: AtomicU64,
}

/// Objects of one OST in plain files under its directory.
pub struct FileStore {
    root: PathBuf,
    objects: PathBuf,
    handles: HandleCache<ObjectFiles>,
    locks: Vec<Mutex<()>>,
    dirs: Vec<DirState>,
    /// New small objects keep their CRCs in an attribute (false once the file system
    /// refused one, or for tests of sidecars).
    xattrs: AtomicBool,
    /// Files of deleted objects that new objects take ([`recycle`]).
    pool: recycle::Recycled,
}

/// How a missing object is to be created: `reach` is where its first write ends (0 when
/// unknown), which decides where its CRCs go.
#[derive(Clone, Copy)]
pub(super) struct Create {
    pub(super) reach: u64,
}

/// Options for opening an object or sidecar file.
fn rw() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.read(true).write(true).mode(OBJECT_FILE_MODE);
    o
}

/// The lock of one object, held: what a function that must run under it takes, and the
/// only way it learns which object it works on.
pub(super) struct ObjectLock<'a> {
    pub(super) id: ObjectId,
    _guard: MutexGuard<'a, ()>,
}

impl FileStore {
    /// Opens (creating if needed) the object store under `root`, caching at most
    /// `open_objects_max` open objects.
    pub fn open(root: &Path, open_objects_max: usize) -> Result<FileStore, ObjectError> {
        let objects = root.join(OBJECTS_DIR);
        std::fs::create_dir_all(&objects).map_err(|e| ObjectError::io(&objects, e))?;
        for d in 0..OBJECT_DIRS {
            let sub = objects.join(format!("{d:02x}"));
            match std::fs::create_dir(&sub) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(ObjectError::io(&sub, e)),
            }
        }
        // Make the directory tree itself durable before any object goes in.
        for dir in [objects.as_path(), root] {
            sync_dir(dir).map_err(|e| ObjectError::io(dir, e))?;
        }
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent).map_err(|e| ObjectError::io(parent, e))?;
        }
        let pool = recycle::Recycled::open(root)
            .map_err(|e| ObjectError::io(&root.join(recycle::RECYCLED_DIR), e))?;
        Ok(FileStore {
            root: root.to_path_buf(),
            objects,
            handles: HandleCache::new(open_objects_max),
            locks: (0..OBJECT_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            dirs: (0..OBJECT_DIRS)
                .map(|_| DirState {
                    dirty: AtomicBool::new(false),
                    syncing: Mutex::new(()),
                })
                .collect(),
            xattrs: AtomicBool::new(true),
            pool,
        })
    }

    /// The same store, keeping every object's CRCs in a sidecar (for tests of that path).
    #[cfg(test)]
    pub(crate) fn with_sidecars_only(self) -> FileStore {
        self.xattrs.store(false, Ordering::Relaxed);
        self
    }

    /// Where object `id` lives.
    pub fn object_path(&self, id: ObjectId) -> PathBuf {
        self.dir_path(id)
            .join(format!("{:016x}.{}", id.ino, id.stripe))
    }

    /// Where the checksum sidecar of object `id` lives.
    pub fn sums_path(&self, id: ObjectId) -> PathBuf {
        self.dir_path(id).join(format!(
            "{:016x}.{}.{}",
            id.ino,
            id.stripe,
            sums::SUMS_SUFFIX
        ))
    }

    /// The file holding the CRCs of `files` (object `id`), for error messages.
    fn crcs_path(&self, id: ObjectId, files: &ObjectFiles) -> PathBuf {
        if files.crcs.is_xattr() {
            self.object_path(id)
        } else {
            self.sums_path(id)
        }
    }

    fn dir_index(id: ObjectId) -> usize {
        (id.ino % OBJECT_DIRS) as usize
    }

    fn dir_path(&self, id: ObjectId) -> PathBuf {
        self.objects.join(format!("{:02x}", id.ino % OBJECT_DIRS))
    }

    fn mark_dirty(&self, id: ObjectId) {
        self.dirs[Self::dir_index(id)]
            .dirty
            .store(true, Ordering::Release);
    }

    fn lock_object(&self, id: ObjectId) -> ObjectLock<'_> {
        ObjectLock {
            id,
            _guard: lock(self.object_mutex(id)),
        }
    }

    /// [`Self::lock_object`] if nobody holds the object's lock now.
    fn try_lock_object(&self, id: ObjectId) -> Option<ObjectLock<'_>> {
        let guard = match self.object_mutex(id).try_lock() {
            Ok(g) => g,
            // The lock guards no data, as in `lock`.
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => return None,
        };
        Some(ObjectLock { id, _guard: guard })
    }

    /// The striped mutex of object `id`.
    fn object_mutex(&self, id: ObjectId) -> &Mutex<()> {
        // Fibonacci hashing spreads consecutive inodes and stripes over the stripes.
        let h = (id.ino ^ (u64::from(id.stripe) << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        &self.locks[(h >> 32) as usize % OBJECT_LOCK_STRIPES]
    }

    /// The allocation of object `id`, whose files are `files` (0 once its file was removed).
    fn allocated_of(&self, id: ObjectId, files: &ObjectFiles) -> Result<u64, ObjectError> {
        let meta = files
            .data
            .metadata()
            .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
        Ok(if meta.nlink() == 0 {
            0
        } else {
            meta.blocks() * STAT_BLOCK_BYTES
        })
    }

    /// Number of open objects cached.
    pub fn cached_handles(&self) -> usize {
        self.handles.len()
    }

    /// The open files of `id`: from the cache, else opened (and, with `create`, created).
    /// `None` when the object does not exist and `create` is false.
    fn handle(&self, id: ObjectId, create: bool) -> Result<Option<Arc<ObjectFiles>>, ObjectError> {
        if let Some(f) = self.handles.get(id) {
            return Ok(Some(f));
        }
        let held = self.lock_object(id);
        let create = create.then_some(Create { reach: 0 });
        self.handle_held(&held, create)
    }

    /// Drops the cached handle of `id` if its file was removed from the directory behind the
    /// OSS's back (its link count is 0; the store's own deletes never leave such a handle
    /// cached), under the object's lock as the cache's rule asks.
    /// Up to `len` bytes of `files` (object `id`) at `offset` with their stored CRCs, the
    /// bytes left in the file for `sendfile`; `None` when the object file was removed
    /// behind the OSS's back (the caller forgets the handle: the object reads as absent).
    fn read_files(
        &self,
        id: ObjectId,
        files: &ObjectFiles,
        offset: u64,
        len: u32,
    ) -> Result<Option<ObjectRead>, ObjectError> {
        let version = files.version.load(Ordering::Acquire);
        let Some(len) = self.read_len(id, files, offset, len)? else {
            return Ok(None);
        };
        if len == 0 {
            return Ok(Some(ObjectRead::empty(version)));
        }
        let (first, count) = (offset / BLOCK, sums::blocks(len) as usize);
        if files.crcs.is_xattr() {
            return self.read_small(id, files, offset, len, version).map(Some);
        }
        let mut crcs = match files.crcs.entries_if_cached(first, count) {
            Some(crcs) => crcs,
            None => {
                // A cold object: its data is read from the disk beside the CRCs.
                start_reading(&files.data, offset, len);
                files
                    .crcs
                    .entries(first, count)
                    .map_err(|e| ObjectError::io(&self.sums_path(id), e))?
            }
        };
        // Entry 0: zeros (a hole) or a real CRC of 0; the block itself tells which.
        let mut buf = Vec::new();
        for (i, crc) in crcs.iter_mut().enumerate().filter(|(_, c)| **c == 0) {
            let at = i as u64 * BLOCK;
            buf.resize((len - at).min(BLOCK) as usize, 0);
            let got = sums::read_full_at(&files.data, &mut buf, offset + at)
                .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
            *crc = sums::expected_crc(0, &buf[..got]);
        }
        Ok(Some(file_read(files, offset, len, crcs, version)))
    }

    /// [`Self::read_files`] of an object whose CRCs are in its attribute: its bytes are
    /// read here, on the caller's blocking thread, rather than by the reply's `sendfile`
    /// on the async one (nothing says they are in the page cache, and a small object's
    /// bytes cost no more to copy than to send from the file).
    fn read_small(
        &self,
        id: ObjectId,
        files: &ObjectFiles,
        offset: u64,
        len: u64,
        version: u64,
    ) -> Result<ObjectRead, ObjectError> {
        let (first, count) = (offset / BLOCK, sums::blocks(len) as usize);
        let mut crcs = files
            .crcs
            .entries(first, count)
            .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
        let mut bytes = vec![0u8; len as usize];
        let got = sums::read_full_at(&files.data, &mut bytes, offset)
            .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
        bytes.truncate(got);
        // Entry 0: zeros (a hole) or a real CRC of 0; the block itself tells which.
        for (i, crc) in crcs.iter_mut().enumerate().filter(|(_, c)| **c == 0) {
            let at = (i as u64 * BLOCK) as usize;
            let block = &bytes[at.min(got)..(at + BLOCK as usize).min(got)];
            *crc = sums::expected_crc(0, block);
        }
        Ok(ObjectRead {
            data: ReadData::Bytes(bytes.into()),
            crcs,
            version,
        })
    }

    /// How many of `len` bytes at `offset` object `id` holds (at most `len`, so it fits in
    /// u32); `None` when its file was removed behind the OSS's back.
    fn read_len(
        &self,
        id: ObjectId,
        files: &ObjectFiles,
        offset: u64,
        len: u32,
    ) -> Result<Option<u64>, ObjectError> {
        let meta = files
            .data
            .metadata()
            .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
        if meta.nlink() == 0 {
            return Ok(None);
        }
        Ok(Some(meta.len().saturating_sub(offset).min(u64::from(len))))
    }

    fn forget_removed(&self, id: ObjectId) {
        let _held = self.lock_object(id);
        if let Some(f) = self.handles.get(id) {
            if f.data.metadata().is_ok_and(|m| m.nlink() == 0) {
                tracing::warn!(object = ?id, "object file removed behind the OSS's back");
                self.handles.remove(id);
            }
        }
    }

    /// fsyncs the directory of `id` if a file was created or removed in it since the last
    /// time.
    fn sync_dir_of(&self, id: ObjectId) -> Result<(), ObjectError> {
        let state = &self.dirs[Self::dir_index(id)];
        let _syncing = lock(&state.syncing);
        if state.dirty.swap(false, Ordering::AcqRel) {
            let dir = self.dir_path(id);
            if let Err(e) = sync_dir(&dir) {
                state.dirty.store(true, Ordering::Release);
                return Err(ObjectError::io(&dir, e));
            }
        }
        Ok(())
    }
}

/// A read of `len` bytes (at most a u32's worth) of `files` at `offset`, sent from the file.
fn file_read(
    files: &ObjectFiles,
    offset: u64,
    len: u64,
    crcs: Vec<u32>,
    version: u64,
) -> ObjectRead {
    ObjectRead {
        data: ReadData::File {
            file: files.data.clone(),
            offset,
            len: len as u32,
        },
        crcs,
        version,
    }
}

/// Asks the kernel to start reading `len` bytes of `file` at `offset` into the page cache
/// and returns at once, so that a cold read's two disk reads (the sidecar's CRCs, read
/// next, and the data `sendfile` sends after) overlap instead of following each other
/// (cold 4 KiB files read ~10 % faster). Only when the CRCs are not cached: otherwise the
/// call costs more than it saves (random reads of a big object, whose sidecar stays
/// cached) and upsets the kernel's own read-ahead of sequential reads. A failure only
/// loses the overlap.
fn start_reading(file: &File, offset: u64, len: u64) {
    let (Ok(off), Ok(n)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return;
    };
    // SAFETY: a plain call on an open descriptor; it touches no memory of ours.
    unsafe { libc::posix_fadvise(file.as_raw_fd(), off, n, libc::POSIX_FADV_WILLNEED) };
}

impl ObjectStore for FileStore {
    fn read(&self, id: ObjectId, offset: u64, len: u32) -> Result<ObjectRead, ObjectError> {
        check_object(id)?;
        check_read(offset, len)?;
        let Some(files) = self.handle(id, false)? else {
            return Ok(ObjectRead::empty(0));
        };
        let read = self.read_files(id, &files, offset, len)?;
        if read.is_none() {
            self.forget_removed(id);
        }
        Ok(read.unwrap_or(ObjectRead::empty(0)))
    }

    fn read_in_place(&self, id: ObjectId, offset: u64, len: u32) -> Option<ObjectRead> {
        check_object(id).ok()?;
        check_read(offset, len).ok()?;
        // An open handle, a size from the inode in memory, CRCs in the page cache, none of
        // them 0 (which would need the block read here to tell a hole): no wait anywhere.
        let files = self.handles.get(id)?;
        let version = files.version.load(Ordering::Acquire);
        let len = self.read_len(id, &files, offset, len).ok()??;
        if len == 0 {
            return None;
        }
        let count = sums::blocks(len) as usize;
        let crcs = files.crcs.entries_if_cached(offset / BLOCK, count)?;
        if crcs.contains(&0) {
            return None;
        }
        if files.crcs.is_xattr() {
            // CRCs in memory say nothing of whether a small object's bytes are cached:
            // read them here only if that waits for nothing.
            let bytes = sums::read_if_cached(&files.data, offset, len as usize)?;
            return Some(ObjectRead {
                data: ReadData::Bytes(bytes.into()),
                crcs,
                version,
            });
        }
        Some(file_read(&files, offset, len, crcs, version))
    }

    fn read_consistent(
        &self,
        id: ObjectId,
        offset: u64,
        len: u32,
    ) -> Result<ObjectRead, ObjectError> {
        check_object(id)?;
        check_read(offset, len)?;
        let removed = {
            // Every write, repair and truncate holds this lock from its first byte to its
            // last CRC, so what is read under it is of one moment.
            let held = self.lock_object(id);
            let Some(files) = self.handle_held(&held, None)? else {
                return Ok(ObjectRead::empty(0));
            };
            match self.read_files(id, &files, offset, len)? {
                Some(mut read) => {
                    if let ReadData::File { file, offset, len } = &read.data {
                        let mut bytes = vec![0u8; *len as usize];
                        let got = sums::read_full_at(file, &mut bytes, *offset)
                            .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
                        bytes.truncate(got);
                        read.data = ReadData::Bytes(bytes.into());
                    }
                    return Ok(read);
                }
                None => true,
            }
        };
        if removed {
            self.forget_removed(id);
        }
        Ok(ObjectRead::empty(0))
    }

    fn write(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
        sync: bool,
    ) -> Result<(), ObjectError> {
        self.write_object(id, offset, data, crc, version, sync)
    }

    fn write_in_place(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
    ) -> Option<Result<u64, ObjectError>> {
        self.write_object_in_place(id, offset, data, crc, version)
    }

    fn repair(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
        seen: &[u32],
    ) -> Result<(), ObjectError> {
        self.repair_object(id, offset, data, crc, version, seen)
    }

    fn checksums(
        &self,
        id: ObjectId,
        first: u64,
        count: usize,
    ) -> Result<(u64, Vec<u32>), ObjectError> {
        self.object_checksums(id, first, count)
    }

    fn truncate(&self, id: ObjectId, size: u64, version: u64) -> Result<(), ObjectError> {
        self.truncate_object(id, size, version)
    }

    fn raise_version(&self, id: ObjectId, version: u64) -> Result<(), ObjectError> {
        self.raise_object_version(id, version)
    }

    fn sync(&self, id: ObjectId) -> Result<(), ObjectError> {
        self.sync_object(id)
    }

    fn delete(&self, id: ObjectId) -> Result<(), ObjectError> {
        check_object(id)?;
        let cached = {
            let _guard = self.lock_object(id);
            let cached = self.handles.remove(id);
            let path = self.object_path(id);
            let recycled = self.recycle(&path);
            if recycled {
                self.mark_dirty(id);
            }
            // The object first: a crash in between leaves a sidecar without an object.
            let gone = (!recycled).then_some(path);
            for path in gone.into_iter().chain([self.sums_path(id)]) {
                match std::fs::remove_file(&path) {
                    Ok(()) => self.mark_dirty(id),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(ObjectError::io(&path, e)),
                }
            }
            cached
        };
        // The last close of an unlinked file frees its blocks: do it outside the lock.
        drop(cached);
        Ok(())
    }

    fn size(&self, id: ObjectId) -> Result<Option<u64>, ObjectError> {
        check_object(id)?;
        let path = self.object_path(id);
        let meta = match self.handles.get(id).map(|f| f.data.metadata()) {
            Some(Ok(m)) if m.nlink() == 0 => {
                self.forget_removed(id);
                std::fs::metadata(&path)
            }
            Some(cached) => cached,
            None => std::fs::metadata(&path),
        };
        match meta {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ObjectError::io(&path, e)),
        }
    }

    fn capacity(&self) -> Result<Capacity, ObjectError> {
        self.store_capacity()
    }

    fn list(&self, after: Option<ObjectId>, limit: u32) -> Result<ObjectPage, ObjectError> {
        self.list_objects(after, limit)
    }

    fn scrub(&self, id: ObjectId) -> Result<Vec<u64>, ObjectError> {
        self.scrub_object(id)
    }

    fn seek(&self, id: ObjectId, offset: u64, data: bool) -> Result<Option<u64>, ObjectError> {
        check_object(id)?;
        let Some(files) = self.handle(id, false)? else {
            return Ok(None);
        };
        let path = self.object_path(id);
        let meta = files
            .data
            .metadata()
            .map_err(|e| ObjectError::io(&path, e))?;
        if meta.nlink() == 0 {
            self.forget_removed(id);
            return Ok(None);
        }
        let Ok(from) = i64::try_from(offset) else {
            return Ok(None);
        };
        if offset >= meta.len() {
            return Ok(None);
        }
        let whence = if data {
            libc::SEEK_DATA
        } else {
            libc::SEEK_HOLE
        };
        // SAFETY: lseek on a descriptor this store owns; every other use of it reads and
        // writes at explicit offsets, so moving its position changes nothing else.
        let at = unsafe { libc::lseek(files.data.as_raw_fd(), from, whence) };
        if at < 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENXIO) => Ok(None),
                _ => Err(ObjectError::io(&path, e)),
            };
        }
        Ok(Some(at as u64))
    }

    fn allocated(&self, id: ObjectId) -> Result<u64, ObjectError> {
        check_object(id)?;
        match self.handle(id, false)? {
            Some(files) => self.allocated_of(id, &files),
            None => Ok(0),
        }
    }
}
