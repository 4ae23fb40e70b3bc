//! The file-backed [`ObjectStore`]: one plain file per object, plus its checksum sidecar.
//!
//! ```text
//! DIR/objects/<ino % 256, 2 hex digits>/<ino, 16 hex digits>.<stripe>       the data
//! DIR/objects/<ino % 256, 2 hex digits>/<ino, 16 hex digits>.<stripe>.sum   its CRCs
//! ```
//! The 256 subdirectories are made when the store opens, so no directory grows past what
//! ext4 or XFS handle well before millions of objects. The sidecar format, what an entry of
//! 0 means and what happens to an object found without a sidecar are in [`super::sums`].
//! The sidecar is created before the object file and removed after it.
//!
//! ## Open handles
//! Open files are kept in a bounded [`HandleCache`], the object file and its sidecar
//! together. Rule: a handle enters the cache and a file leaves the directory only under the
//! object's lock (one of [`OBJECT_LOCK_STRIPES`] striped mutexes). Without it, an open racing
//! a delete could cache a handle to the unlinked file, and every later write would vanish
//! into it. A call that took a handle just before a delete may still use it; that call is
//! ordered before the delete, as any interleaving of concurrent calls allows.
//!
//! ## Writes, truncates and checksums
//! Writes and truncates run wholly under the object's lock: the object's length, the bytes
//! of partly written blocks and their sidecar entries are read, checked and rewritten as one
//! step, so concurrent writes to one block never lose a CRC. A write checks its payload's
//! CRC first; blocks it covers whole get the CRC of the new bytes without reading anything;
//! a block it covers partly is read and checked against its stored CRC first (`Corrupt`,
//! nothing written, when it fails). When an object grows, its old last block becomes longer
//! (zero-padded) and gets a new CRC; when it shrinks into a block, that block gets the CRC of
//! what remains. Those two blocks are not part of what the caller wrote, so rather than
//! refusing the call, a block whose old bytes fail their CRC gets a *poisoned* entry
//! ([`sums::poisoned`]) that the new content fails too: the block stays known-bad, never
//! laundered. Data is written before its sidecar entries; a failed data write (no space)
//! may leave some of its blocks failing their CRC, which reads as `Corrupt` rather than as
//! wrong bytes.
//!
//! Reads take no lock and go to the socket with `sendfile` after the CRCs are read, so a
//! read racing a write of the same blocks can return CRCs and bytes from different sides of
//! that write; the caller sees a mismatch and should read again before calling the copy bad.
//!
//! ## Durability
//! Writes are positional and not synced unless asked; `sync` (or a write with `sync`) is an
//! `fdatasync` of the object and of its sidecar. Creating or removing a file changes its
//! directory, which `fdatasync` on the file does not cover, so each object directory carries
//! a dirty flag: creations and removals set it, and a sync in that directory also fsyncs it
//! when set (one directory fsync covers every change made before it, so bursts of creations
//! share one). After a crash, unsynced data and CRCs may disagree: such blocks fail their
//! check (docs/replication.md), and a sidecar longer than its object is cut when the object
//! next grows, so stale entries never pass for holes.

use std::collections::BinaryHeap;
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustre_proto::checksum::crc32c;
use rustre_proto::msg::oss::{ObjectId, ObjectInfo};
use rustre_proto::msg::Capacity;
use rustre_proto::Error;

use super::handles::HandleCache;
use super::store::{
    check_list, check_object, check_read, check_size, check_write, ObjectPage, ObjectRead,
    ObjectStore, ReadData,
};
use super::sums::{self, BLOCK};
use crate::records::sync_dir;

/// Striped object locks (see the module doc); more stripes, fewer false conflicts.
pub const OBJECT_LOCK_STRIPES: usize = 256;
/// Number of object subdirectories, named by `ino % OBJECT_DIRS`.
pub const OBJECT_DIRS: u64 = 256;
/// Name of the directory holding the objects.
pub const OBJECTS_DIR: &str = "objects";
/// Bytes a scrub reads (and checks) per step; the object's lock is held for one step.
pub const SCRUB_CHUNK_BYTES: usize = 1 << 20;
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
    /// Its checksum sidecar.
    sums: File,
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
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // These mutexes guard no data of their own, so a panic elsewhere leaves nothing broken.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Checks a payload that arrived for `offset` against the CRC32C its sender computed.
fn check_payload(data: &[u8], offset: u64, crc: u32) -> Result<(), Error> {
    let actual = crc32c(data);
    if actual != crc {
        return Err(Error::Corrupt(format!(
            "{} bytes for offset {offset}: payload CRC {actual:#010x}, sender said {crc:#010x}",
            data.len()
        )));
    }
    Ok(())
}

/// An I/O error as the client should see it: no space and too big keep their errno, the rest
/// names the path for the operator.
fn io_err(path: &Path, e: std::io::Error) -> Error {
    match e.raw_os_error() {
        Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::NoSpace,
        Some(libc::EFBIG) => Error::TooBig,
        _ => Error::Io(format!("{}: {e}", path.display())),
    }
}

/// The object named `name` in an object directory: `<16 hex digits>.<decimal stripe>`
/// exactly as [`FileStore::object_path`] writes it; `None` for sidecars and anything else.
fn parse_object_name(name: &str) -> Option<ObjectId> {
    let (ino, stripe) = name.split_once('.')?;
    if ino.len() != 16 || !ino.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    if stripe.is_empty() || !stripe.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id = ObjectId {
        ino: u64::from_str_radix(ino, 16).ok()?,
        stripe: stripe.parse().ok()?,
    };
    // No leading zeros: the name must be the one the store writes.
    (id.stripe.to_string() == stripe && check_object(id).is_ok()).then_some(id)
}

impl FileStore {
    /// Opens (creating if needed) the object store under `root`, caching at most
    /// `open_objects_max` open objects.
    pub fn open(root: &Path, open_objects_max: usize) -> Result<FileStore, Error> {
        let objects = root.join(OBJECTS_DIR);
        std::fs::create_dir_all(&objects).map_err(|e| io_err(&objects, e))?;
        for d in 0..OBJECT_DIRS {
            let sub = objects.join(format!("{d:02x}"));
            match std::fs::create_dir(&sub) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err(&sub, e)),
            }
        }
        // Make the directory tree itself durable before any object goes in.
        for dir in [objects.as_path(), root] {
            sync_dir(dir).map_err(|e| io_err(dir, e))?;
        }
        if let Some(parent) = root.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent).map_err(|e| io_err(parent, e))?;
        }
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
        })
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

    fn lock_object(&self, id: ObjectId) -> MutexGuard<'_, ()> {
        // Fibonacci hashing spreads consecutive inodes and stripes over the stripes.
        let h = (id.ino ^ (u64::from(id.stripe) << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        lock(&self.locks[(h >> 32) as usize % OBJECT_LOCK_STRIPES])
    }

    /// Number of open objects cached.
    pub fn cached_handles(&self) -> usize {
        self.handles.len()
    }

    /// The open files of `id`: from the cache, else opened (and, with `create`, created).
    /// `None` when the object does not exist and `create` is false.
    fn handle(&self, id: ObjectId, create: bool) -> Result<Option<Arc<ObjectFiles>>, Error> {
        if let Some(f) = self.handles.get(id) {
            return Ok(Some(f));
        }
        let _guard = self.lock_object(id);
        self.handle_locked(id, create)
    }

    /// [`Self::handle`] for a caller holding the object's lock.
    fn handle_locked(&self, id: ObjectId, create: bool) -> Result<Option<Arc<ObjectFiles>>, Error> {
        if let Some(f) = self.handles.get(id) {
            return Ok(Some(f));
        }
        let path = self.object_path(id);
        let spath = self.sums_path(id);
        let rw = || {
            let mut o = OpenOptions::new();
            o.read(true).write(true).mode(OBJECT_FILE_MODE);
            o
        };
        let files = match rw().open(&path) {
            Ok(data) => {
                let (sums, created) = match rw().open(&spath) {
                    Ok(f) => (f, false),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        let f = rw()
                            .create_new(true)
                            .open(&spath)
                            .map_err(|e| io_err(&spath, e))?;
                        self.mark_dirty(id);
                        (f, true)
                    }
                    Err(e) => return Err(io_err(&spath, e)),
                };
                let version = match sums::read_header(&sums).map_err(|e| io_err(&spath, e))? {
                    Some(v) => v,
                    None => {
                        if created {
                            tracing::warn!(
                                object = %path.display(),
                                "object without a checksum sidecar: its blocks fail \
                                 verification unless zeros until rewritten"
                            );
                        } else {
                            tracing::warn!(
                                sidecar = %spath.display(),
                                "checksum sidecar with a bad header: header rewritten, \
                                 version 0"
                            );
                        }
                        sums::write_header(&sums, 0).map_err(|e| io_err(&spath, e))?;
                        0
                    }
                };
                ObjectFiles {
                    data: Arc::new(data),
                    sums,
                    version: AtomicU64::new(version),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // Sidecar first: a crash in between leaves a sidecar without an object
                // (ignored, and reset here next time), never an object without a sidecar.
                let sums = rw()
                    .create(true)
                    .truncate(true)
                    .open(&spath)
                    .map_err(|e| io_err(&spath, e))?;
                sums::write_header(&sums, 0).map_err(|e| io_err(&spath, e))?;
                let data = rw()
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| io_err(&path, e))?;
                self.mark_dirty(id);
                ObjectFiles {
                    data: Arc::new(data),
                    sums,
                    version: AtomicU64::new(0),
                }
            }
            Err(e) => return Err(io_err(&path, e)),
        };
        let files = Arc::new(files);
        self.handles.insert(id, files.clone());
        Ok(Some(files))
    }

    /// fsyncs the directory of `id` if a file was created or removed in it since the last
    /// time.
    fn sync_dir_of(&self, id: ObjectId) -> Result<(), Error> {
        let state = &self.dirs[Self::dir_index(id)];
        let _syncing = lock(&state.syncing);
        if state.dirty.swap(false, Ordering::AcqRel) {
            let dir = self.dir_path(id);
            if let Err(e) = sync_dir(&dir) {
                state.dirty.store(true, Ordering::Release);
                return Err(io_err(&dir, e));
            }
        }
        Ok(())
    }

    /// The current bytes of `block` of an object of `size` bytes (shorter at its end) and
    /// whether they match the block's stored CRC. Caller holds the object's lock.
    fn old_block(
        &self,
        id: ObjectId,
        files: &ObjectFiles,
        block: u64,
        size: u64,
    ) -> Result<(Vec<u8>, bool), Error> {
        let start = block * BLOCK;
        let len = size.saturating_sub(start).min(BLOCK) as usize;
        let mut buf = vec![0u8; len];
        let got = sums::read_full_at(&files.data, &mut buf, start)
            .map_err(|e| io_err(&self.object_path(id), e))?;
        buf.truncate(got);
        let stored = sums::read_entries(&files.sums, block, 1)
            .map_err(|e| io_err(&self.sums_path(id), e))?[0];
        let ok = got == len && sums::block_ok(stored, &buf);
        Ok((buf, ok))
    }

    /// The entry of a block that was not written but changes length (it keeps its first
    /// `old.len()` bytes, cut or zero-padded to `new_len`): its fresh CRC when the old bytes
    /// were sound, else a poisoned one.
    fn relength_entry(
        &self,
        id: ObjectId,
        block: u64,
        old: (Vec<u8>, bool),
        new_len: usize,
    ) -> u32 {
        let (mut buf, ok) = old;
        buf.resize(new_len, 0);
        if ok {
            sums::entry_for(&buf)
        } else {
            tracing::warn!(
                object = %self.object_path(id).display(),
                block,
                "block failed its checksum while the object's length changed; it stays bad"
            );
            sums::poisoned(&buf)
        }
    }

    /// Cuts the sidecar of `files` to at most the entries of an object of `size` bytes
    /// (leftovers of a crash must not pass for the CRCs of holes).
    fn cut_sums(&self, id: ObjectId, files: &ObjectFiles, size: u64) -> Result<(), Error> {
        let spath = || self.sums_path(id);
        let want = sums::sums_len(size);
        let have = files
            .sums
            .metadata()
            .map_err(|e| io_err(&spath(), e))?
            .len();
        if have > want {
            files.sums.set_len(want).map_err(|e| io_err(&spath(), e))?;
        }
        Ok(())
    }

    /// Raises the stored version of `files` to `version`. Caller holds the object's lock.
    fn raise_version(&self, id: ObjectId, files: &ObjectFiles, version: u64) -> Result<(), Error> {
        if version > files.version.load(Ordering::Acquire) {
            sums::write_header(&files.sums, version).map_err(|e| io_err(&self.sums_path(id), e))?;
            files.version.store(version, Ordering::Release);
        }
        Ok(())
    }

    /// Version of object `id` for a listing: from its cached handle, else its sidecar's
    /// header (0 when missing or invalid).
    fn listed_version(&self, id: ObjectId) -> u64 {
        if let Some(f) = self.handles.get(id) {
            return f.version.load(Ordering::Acquire);
        }
        File::open(self.sums_path(id))
            .ok()
            .and_then(|f| sums::read_header(&f).ok().flatten())
            .unwrap_or(0)
    }
}

impl ObjectStore for FileStore {
    fn read(&self, id: ObjectId, offset: u64, len: u32) -> Result<ObjectRead, Error> {
        check_object(id)?;
        check_read(offset, len)?;
        let Some(files) = self.handle(id, false)? else {
            return Ok(ObjectRead::empty(0));
        };
        let version = files.version.load(Ordering::Acquire);
        let size = files
            .data
            .metadata()
            .map_err(|e| io_err(&self.object_path(id), e))?
            .len();
        // At most `len`, so it fits in u32.
        let len = size.saturating_sub(offset).min(u64::from(len));
        if len == 0 {
            return Ok(ObjectRead::empty(version));
        }
        let first = offset / BLOCK;
        let mut crcs = sums::read_entries(&files.sums, first, sums::blocks(len) as usize)
            .map_err(|e| io_err(&self.sums_path(id), e))?;
        // Entry 0: zeros (a hole) or a real CRC of 0; the block itself tells which.
        let mut buf = Vec::new();
        for (i, crc) in crcs.iter_mut().enumerate().filter(|(_, c)| **c == 0) {
            let at = i as u64 * BLOCK;
            buf.resize((len - at).min(BLOCK) as usize, 0);
            let got = sums::read_full_at(&files.data, &mut buf, offset + at)
                .map_err(|e| io_err(&self.object_path(id), e))?;
            *crc = sums::expected_crc(0, &buf[..got]);
        }
        Ok(ObjectRead {
            data: ReadData::File {
                file: files.data.clone(),
                offset,
                len: len as u32,
            },
            crcs,
            version,
        })
    }

    fn write(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
        sync: bool,
    ) -> Result<(), Error> {
        check_object(id)?;
        check_write(offset, data.len())?;
        check_payload(data, offset, crc)?;
        let files = {
            let _guard = self.lock_object(id);
            let files = self
                .handle_locked(id, true)?
                .ok_or_else(|| Error::Io("object vanished while being created".into()))?;
            self.write_locked(id, &files, offset, data)?;
            self.raise_version(id, &files, version)?;
            files
        };
        if sync {
            files
                .data
                .sync_data()
                .map_err(|e| io_err(&self.object_path(id), e))?;
            files
                .sums
                .sync_data()
                .map_err(|e| io_err(&self.sums_path(id), e))?;
            self.sync_dir_of(id)?;
        }
        Ok(())
    }

    fn repair(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
        seen: &[u32],
    ) -> Result<(), Error> {
        check_object(id)?;
        check_write(offset, data.len())?;
        check_payload(data, offset, crc)?;
        let changed = || Error::Busy;
        let _guard = self.lock_object(id);
        let files = self.handle_locked(id, false)?.ok_or_else(changed)?;
        let mut now = vec![0u8; data.len()];
        let got = sums::read_full_at(&files.data, &mut now, offset)
            .map_err(|e| io_err(&self.object_path(id), e))?;
        if got != data.len() || rustre_proto::checksum::block_crcs(&now) != seen {
            return Err(changed());
        }
        self.write_locked(id, &files, offset, data)?;
        self.raise_version(id, &files, version)
    }

    fn checksums(&self, id: ObjectId, first: u64, count: usize) -> Result<(u64, Vec<u32>), Error> {
        check_object(id)?;
        let _guard = self.lock_object(id);
        let Some(files) = self.handle_locked(id, false)? else {
            return Ok((0, Vec::new()));
        };
        let size = files
            .data
            .metadata()
            .map_err(|e| io_err(&self.object_path(id), e))?
            .len();
        let blocks = sums::blocks(size);
        let n = blocks.saturating_sub(first).min(count as u64) as usize;
        let mut crcs = sums::read_entries(&files.sums, first, n)
            .map_err(|e| io_err(&self.sums_path(id), e))?;
        for (i, crc) in crcs.iter_mut().enumerate() {
            if *crc == 0 {
                let start = (first + i as u64) * BLOCK;
                *crc = sums::zero_crc((size - start).min(BLOCK) as usize);
            }
        }
        Ok((size, crcs))
    }

    fn truncate(&self, id: ObjectId, size: u64, version: u64) -> Result<(), Error> {
        check_object(id)?;
        check_size(size)?;
        let _guard = self.lock_object(id);
        let files = self
            .handle_locked(id, true)?
            .ok_or_else(|| Error::Io("object vanished while being created".into()))?;
        let path = || self.object_path(id);
        let spath = || self.sums_path(id);
        let old = files.data.metadata().map_err(|e| io_err(&path(), e))?.len();
        if size < old {
            // The new last block keeps a prefix of its bytes.
            let fix = if !size.is_multiple_of(BLOCK) {
                let block = size / BLOCK;
                let before = self.old_block(id, &files, block, old)?;
                Some((
                    block,
                    self.relength_entry(id, block, before, (size % BLOCK) as usize),
                ))
            } else {
                None
            };
            files.data.set_len(size).map_err(|e| io_err(&path(), e))?;
            self.cut_sums(id, &files, size)?;
            if let Some((block, entry)) = fix {
                sums::write_entries(&files.sums, block, &[entry])
                    .map_err(|e| io_err(&spath(), e))?;
            }
        } else if size > old {
            // The old last block gets zero-padded; the new blocks are holes (entry 0).
            let fix = if !old.is_multiple_of(BLOCK) {
                let block = old / BLOCK;
                let before = self.old_block(id, &files, block, old)?;
                let new_len = (size - block * BLOCK).min(BLOCK) as usize;
                Some((block, self.relength_entry(id, block, before, new_len)))
            } else {
                None
            };
            self.cut_sums(id, &files, old)?;
            files.data.set_len(size).map_err(|e| io_err(&path(), e))?;
            if let Some((block, entry)) = fix {
                sums::write_entries(&files.sums, block, &[entry])
                    .map_err(|e| io_err(&spath(), e))?;
            }
        }
        self.raise_version(id, &files, version)
    }

    fn sync(&self, id: ObjectId) -> Result<(), Error> {
        check_object(id)?;
        if let Some(files) = self.handle(id, false)? {
            files
                .data
                .sync_data()
                .map_err(|e| io_err(&self.object_path(id), e))?;
            files
                .sums
                .sync_data()
                .map_err(|e| io_err(&self.sums_path(id), e))?;
        }
        // Also makes a removal in this directory durable.
        self.sync_dir_of(id)
    }

    fn delete(&self, id: ObjectId) -> Result<(), Error> {
        check_object(id)?;
        let cached = {
            let _guard = self.lock_object(id);
            let cached = self.handles.remove(id);
            // The object first: a crash in between leaves a sidecar without an object.
            for path in [self.object_path(id), self.sums_path(id)] {
                match std::fs::remove_file(&path) {
                    Ok(()) => self.mark_dirty(id),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_err(&path, e)),
                }
            }
            cached
        };
        // The last close of an unlinked file frees its blocks: do it outside the lock.
        drop(cached);
        Ok(())
    }

    fn size(&self, id: ObjectId) -> Result<Option<u64>, Error> {
        check_object(id)?;
        let path = self.object_path(id);
        let meta = match self.handles.get(id) {
            Some(f) => f.data.metadata(),
            None => std::fs::metadata(&path),
        };
        match meta {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn capacity(&self) -> Result<Capacity, Error> {
        match rustre_proto::host::disk_space() {
            Some(fixed) => Ok(fixed),
            None => statvfs(&self.root),
        }
    }

    /// Reads every name of the OST's 256 object directories on each call (O(objects of
    /// the OST) time, O(`limit`) memory: a bounded heap keeps the `limit` smallest ids after
    /// `after`), then stats the listed objects and reads their sidecar headers.
    fn list(&self, after: Option<ObjectId>, limit: u32) -> Result<ObjectPage, Error> {
        let limit = check_list(limit)?;
        let mut smallest: BinaryHeap<ObjectId> = BinaryHeap::with_capacity(limit + 1);
        let mut following = 0usize;
        for d in 0..OBJECT_DIRS {
            let dir = self.objects.join(format!("{d:02x}"));
            let entries = std::fs::read_dir(&dir).map_err(|e| io_err(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_err(&dir, e))?;
                let Some(id) = entry.file_name().to_str().and_then(parse_object_name) else {
                    continue;
                };
                if after.is_some_and(|a| id <= a) {
                    continue;
                }
                following += 1;
                smallest.push(id);
                if smallest.len() > limit {
                    smallest.pop();
                }
            }
        }
        let mut objects = Vec::with_capacity(smallest.len());
        for id in smallest.into_sorted_vec() {
            // Deleted since the directory was read: not listed.
            let Some(size) = self.size(id)? else {
                continue;
            };
            objects.push(ObjectInfo {
                id,
                size,
                version: self.listed_version(id),
            });
        }
        Ok(ObjectPage {
            objects,
            done: following <= limit,
        })
    }

    fn scrub(&self, id: ObjectId) -> Result<Vec<u64>, Error> {
        check_object(id)?;
        let mut bad = Vec::new();
        let mut buf = vec![0u8; SCRUB_CHUNK_BYTES];
        let mut block = 0u64;
        loop {
            // One chunk under the lock, so no write lands between its bytes and its CRCs.
            let (got, crcs) = {
                let _guard = self.lock_object(id);
                let Some(files) = self.handle_locked(id, false)? else {
                    break;
                };
                let size = files
                    .data
                    .metadata()
                    .map_err(|e| io_err(&self.object_path(id), e))?
                    .len();
                let start = block * BLOCK;
                if start >= size {
                    break;
                }
                let len = (size - start).min(SCRUB_CHUNK_BYTES as u64) as usize;
                let got = sums::read_full_at(&files.data, &mut buf[..len], start)
                    .map_err(|e| io_err(&self.object_path(id), e))?;
                let crcs =
                    sums::read_entries(&files.sums, block, sums::blocks(len as u64) as usize)
                        .map_err(|e| io_err(&self.sums_path(id), e))?;
                if got < len {
                    // Shorter than its length says: the missing blocks are bad.
                    let first_missing = sums::blocks(got as u64);
                    bad.extend((first_missing..crcs.len() as u64).map(|b| block + b));
                }
                (got, crcs)
            };
            for (i, (data, stored)) in buf[..got].chunks(BLOCK as usize).zip(&crcs).enumerate() {
                if !sums::block_ok(*stored, data) {
                    bad.push(block + i as u64);
                }
            }
            block += crcs.len() as u64;
        }
        bad.sort_unstable();
        bad.dedup();
        Ok(bad)
    }
}

impl FileStore {
    /// The body of a write whose payload CRC was checked, under the object's lock.
    fn write_locked(
        &self,
        id: ObjectId,
        files: &ObjectFiles,
        offset: u64,
        data: &[u8],
    ) -> Result<(), Error> {
        if data.is_empty() {
            return Ok(());
        }
        let path = || self.object_path(id);
        let spath = || self.sums_path(id);
        let size = files.data.metadata().map_err(|e| io_err(&path(), e))?.len();
        let end = offset + data.len() as u64;
        let new_size = size.max(end);
        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;
        let mut entries = Vec::with_capacity((last - first + 1) as usize);
        for block in first..=last {
            let bs = block * BLOCK;
            let be = (bs + BLOCK).min(new_size);
            let (ws, we) = (bs.max(offset), be.min(end));
            let new = &data[(ws - offset) as usize..(we - offset) as usize];
            if ws == bs && we == be {
                entries.push(sums::entry_for(new));
                continue;
            }
            // Partly written: the rest of the block is its old bytes (checked) or zeros.
            let mut buf = if size > bs {
                let (old, ok) = self.old_block(id, files, block, size)?;
                if !ok {
                    return Err(Error::Corrupt(format!(
                        "{}: block {block} fails its checksum; refusing a write over part of it",
                        path().display()
                    )));
                }
                old
            } else {
                Vec::new()
            };
            buf.resize((be - bs) as usize, 0);
            buf[(ws - bs) as usize..(we - bs) as usize].copy_from_slice(new);
            entries.push(sums::entry_for(&buf));
        }
        // The old last block, when the object grows past it without this write touching
        // it, becomes zero-padded.
        let tail = if end > size && !size.is_multiple_of(BLOCK) && size / BLOCK < first {
            let block = size / BLOCK;
            let before = self.old_block(id, files, block, size)?;
            Some((
                block,
                self.relength_entry(id, block, before, BLOCK as usize),
            ))
        } else {
            None
        };
        if end > size {
            self.cut_sums(id, files, size)?;
        }
        files
            .data
            .write_all_at(data, offset)
            .map_err(|e| io_err(&path(), e))?;
        if let Some((block, entry)) = tail {
            sums::write_entries(&files.sums, block, &[entry]).map_err(|e| io_err(&spath(), e))?;
        }
        sums::write_entries(&files.sums, first, &entries).map_err(|e| io_err(&spath(), e))
    }
}

/// Capacity of the file system holding `path`.
pub fn statvfs(path: &Path) -> Result<Capacity, Error> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::Invalid(format!("{} contains a NUL byte", path.display())))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a valid, writable statvfs.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io_err(path, std::io::Error::last_os_error()));
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

#[cfg(test)]
mod tests {
    use rustre_proto::checksum::{block_crcs, first_bad_block, CHECKSUM_BLOCK};

    use super::*;

    const B: usize = CHECKSUM_BLOCK as usize;

    fn id(ino: u64, stripe: u32) -> ObjectId {
        ObjectId { ino, stripe }
    }

    fn w(s: &FileStore, o: ObjectId, offset: u64, data: &[u8]) {
        s.write(o, offset, data, crc32c(data), 1, false).unwrap();
    }

    /// The whole object: bytes, returned CRCs, version.
    fn r(s: &FileStore, o: ObjectId) -> (Vec<u8>, Vec<u32>, u64) {
        let size = s.size(o).unwrap().unwrap_or(0);
        let len = size.div_ceil(BLOCK) * BLOCK;
        let got = s.read(o, 0, len as u32).unwrap();
        assert_eq!(u64::from(got.data.len()), size);
        let bytes = match got.data {
            ReadData::File { file, offset, len } => {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, offset).unwrap();
                buf
            }
            ReadData::Bytes(b) => b.to_vec(),
        };
        (bytes, got.crcs, got.version)
    }

    /// Reads the whole object and checks that its CRCs are those of its bytes.
    fn sound(s: &FileStore, o: ObjectId) -> Vec<u8> {
        let (bytes, crcs, _) = r(s, o);
        assert_eq!(
            crcs,
            block_crcs(&bytes),
            "returned CRCs disagree with the bytes"
        );
        assert!(s.scrub(o).unwrap().is_empty());
        bytes
    }

    fn flip(s: &FileStore, o: ObjectId, at: u64) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(s.object_path(o))
            .unwrap();
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).unwrap();
        b[0] ^= 0x20;
        f.write_all_at(&b, at).unwrap();
    }

    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect()
    }

    #[test]
    fn stored_checksums_equal_the_crcs_of_the_bytes_holes_included() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let obj = id(6, 1);
        assert_eq!(s.checksums(obj, 0, 10).unwrap(), (0, vec![]));
        let data = vec![9u8; 5000];
        // A hole of two blocks, then 5000 bytes (one full block and a short tail).
        s.write(obj, 8192, &data, crc32c(&data), 1, false).unwrap();
        let mut whole = vec![0u8; 8192];
        whole.extend_from_slice(&data);
        let (size, crcs) = s.checksums(obj, 0, 100).unwrap();
        assert_eq!(size, whole.len() as u64);
        assert_eq!(crcs, rustre_proto::checksum::block_crcs(&whole));
        assert_eq!(s.checksums(obj, 3, 1).unwrap().1, crcs[3..4].to_vec());
        assert!(s.checksums(obj, 9, 1).unwrap().1.is_empty());
    }

    #[test]
    fn a_repair_never_overwrites_a_write_that_came_in_between() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let obj = id(5, 0);
        let old = vec![1u8; 8192];
        s.write(obj, 0, &old, crc32c(&old), 1, false).unwrap();
        // On disk, block 1 went bad; a reader saw it and fetched good bytes elsewhere.
        let mut bad = old.clone();
        bad[5000] ^= 0xff;
        std::fs::OpenOptions::new()
            .write(true)
            .open(s.object_path(obj))
            .unwrap()
            .write_all_at(&bad[4096..], 4096)
            .unwrap();
        let seen = rustre_proto::checksum::block_crcs(&bad[4096..]);
        let good = &old[4096..];
        // A write lands in between: the repair must not undo it.
        let newer = vec![7u8; 4096];
        s.write(obj, 4096, &newer, crc32c(&newer), 1, false)
            .unwrap();
        assert_eq!(
            s.repair(obj, 4096, good, crc32c(good), 1, &seen),
            Err(Error::Busy)
        );
        assert_eq!(
            std::fs::read(s.object_path(obj)).unwrap()[4096..],
            newer[..]
        );
        // Without one, the bad block is rewritten.
        std::fs::OpenOptions::new()
            .write(true)
            .open(s.object_path(obj))
            .unwrap()
            .write_all_at(&bad[4096..], 4096)
            .unwrap();
        s.repair(obj, 4096, good, crc32c(good), 1, &seen).unwrap();
        assert_eq!(std::fs::read(s.object_path(obj)).unwrap(), old);
        assert!(s.scrub(obj).unwrap().is_empty());
    }

    #[test]
    fn object_paths_follow_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        assert_eq!(
            s.object_path(id(0x1234_5678, 3)),
            dir.path().join("objects/78/0000000012345678.3")
        );
        assert_eq!(
            s.sums_path(id(0x1234_5678, 3)),
            dir.path().join("objects/78/0000000012345678.3.sum")
        );
        assert!(dir.path().join("objects/ff").is_dir());
        s.write(id(0x1234_5678, 3), 0, b"x", crc32c(b"x"), 9, true)
            .unwrap();
        assert!(dir.path().join("objects/78/0000000012345678.3").is_file());
        let sidecar = std::fs::read(dir.path().join("objects/78/0000000012345678.3.sum")).unwrap();
        assert_eq!(&sidecar[..4], b"RSUM");
        assert_eq!(&sidecar[4..8], &1u32.to_le_bytes());
        assert_eq!(&sidecar[8..16], &9u64.to_le_bytes());
        assert_eq!(&sidecar[16..], &crc32c(b"x").to_le_bytes());
    }

    #[test]
    fn handle_cache_stays_bounded_and_coherent() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        for ino in 1..100 {
            w(&s, id(ino, 0), 0, &ino.to_be_bytes());
            assert!(s.cached_handles() <= 8);
        }
        for ino in 1..100 {
            let (bytes, crcs, _) = r(&s, id(ino, 0));
            assert_eq!(bytes, ino.to_be_bytes());
            assert_eq!(crcs, vec![crc32c(&ino.to_be_bytes())]);
        }
        // A cached handle must not outlive a delete.
        let obj = id(7, 1);
        w(&s, obj, 0, b"old data");
        assert_eq!(s.read(obj, 0, 4096).unwrap().data.len(), 8);
        s.delete(obj).unwrap();
        assert_eq!(s.size(obj).unwrap(), None);
        assert!(!s.sums_path(obj).exists());
        w(&s, obj, 0, b"new");
        assert_eq!(s.read(obj, 0, 4096).unwrap().data.len(), 3);
        assert_eq!(std::fs::read(s.object_path(obj)).unwrap(), b"new");
        assert_eq!(sound(&s, obj), b"new");
    }

    #[test]
    fn capacity_is_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let c = s.capacity().unwrap();
        assert!(c.total_bytes > 0);
        assert!(c.avail_bytes <= c.free_bytes && c.free_bytes <= c.total_bytes);
    }

    #[test]
    fn payload_crc_mismatch_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let o = id(1, 0);
        let data = pattern(3 * B, 1);
        let bad = s.write(o, 0, &data, crc32c(&data) ^ 1, 5, true);
        assert!(matches!(bad, Err(Error::Corrupt(_))), "{bad:?}");
        assert_eq!(s.size(o).unwrap(), None, "a refused write creates nothing");
        assert!(!s.sums_path(o).exists());
        w(&s, o, 0, &data);
        let other = pattern(B, 9);
        let bad = s.write(o, B as u64, &other, crc32c(&data), 5, false);
        assert!(matches!(bad, Err(Error::Corrupt(_))), "{bad:?}");
        assert_eq!(sound(&s, o), data);
        assert_eq!(r(&s, o).2, 1, "the version of a refused write is not kept");
    }

    #[test]
    fn holes_growth_and_truncation_keep_crcs_right() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let o = id(2, 1);
        let mut model = pattern(3000, 2);
        w(&s, o, 0, &model);
        assert_eq!(sound(&s, o), model);
        // Past the end: the old last block grows (zero-padded), blocks 1 and 2 are holes.
        let far = pattern(200, 3);
        let at = 3 * B + 100;
        w(&s, o, at as u64, &far);
        model.resize(at, 0);
        model.extend_from_slice(&far);
        assert_eq!(sound(&s, o), model);
        // Into a hole, partly; and across a block boundary.
        let mid = pattern(5000, 4);
        w(&s, o, (B + 10) as u64, &mid);
        model[B + 10..B + 10 + 5000].copy_from_slice(&mid);
        assert_eq!(sound(&s, o), model);
        // Appending mid-block.
        let tail = pattern(7000, 5);
        w(&s, o, model.len() as u64, &tail);
        model.extend_from_slice(&tail);
        assert_eq!(sound(&s, o), model);
        // Shrinking into a block, growing by truncate (a hole), shrinking to a boundary.
        for size in [5 * B + 77, 9 * B + 1, 2 * B, 2 * B + 1, 0, 100] {
            s.truncate(o, size as u64, 1).unwrap();
            model.resize(size, 0);
            assert_eq!(sound(&s, o), model, "after truncating to {size}");
            assert!(
                std::fs::metadata(s.sums_path(o)).unwrap().len() <= sums::sums_len(size as u64),
                "the sidecar never outgrows the object (holes need no entries)"
            );
        }
        // A huge hole costs no sidecar writes: the sidecar stays sparse.
        s.truncate(o, 1 << 36, 1).unwrap();
        let (bytes, crcs, _) = {
            let got = s.read(o, (1 << 36) - 2 * BLOCK, 2 * BLOCK as u32).unwrap();
            (got.data.len(), got.crcs, got.version)
        };
        assert_eq!(bytes, 2 * B as u32);
        assert_eq!(crcs, block_crcs(&vec![0u8; 2 * B]));
        // Reads must be block-aligned.
        assert!(matches!(s.read(o, 1, 4096), Err(Error::Invalid(_))));
        assert!(matches!(s.read(o, 0, 100), Err(Error::Invalid(_))));
    }

    #[test]
    fn corruption_is_seen_and_never_laundered() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let o = id(3, 0);
        let data = pattern(4 * B + 500, 6);
        w(&s, o, 0, &data);
        flip(&s, o, (B + 17) as u64);
        assert_eq!(s.scrub(o).unwrap(), vec![1]);
        let (bytes, crcs, _) = r(&s, o);
        assert_eq!(first_bad_block(&bytes, &crcs), Some(1));
        // A write over part of the bad block is refused and changes nothing.
        let before = std::fs::read(s.object_path(o)).unwrap();
        let sums_before = std::fs::read(s.sums_path(o)).unwrap();
        let patch = pattern(100, 7);
        let refused = s.write(o, (B + 1000) as u64, &patch, crc32c(&patch), 2, false);
        assert!(matches!(refused, Err(Error::Corrupt(_))), "{refused:?}");
        let straddling = pattern(B, 8);
        let refused = s.write(
            o,
            (B / 2) as u64,
            &straddling,
            crc32c(&straddling),
            2,
            false,
        );
        assert!(matches!(refused, Err(Error::Corrupt(_))), "{refused:?}");
        assert_eq!(std::fs::read(s.object_path(o)).unwrap(), before);
        assert_eq!(std::fs::read(s.sums_path(o)).unwrap(), sums_before);
        // Other blocks are still writable; a whole-block write repairs the bad one.
        w(&s, o, 10, b"fine");
        w(&s, o, B as u64, &data[B..2 * B]);
        let mut model = data.clone();
        model[10..14].copy_from_slice(b"fine");
        assert_eq!(sound(&s, o), model);

        // A bad last block stays bad when the object grows past it or shrinks into it.
        flip(&s, o, (4 * B + 3) as u64);
        assert_eq!(s.scrub(o).unwrap(), vec![4]);
        w(&s, o, (6 * B) as u64, b"beyond");
        assert_eq!(s.scrub(o).unwrap(), vec![4]);
        s.truncate(o, (4 * B + 100) as u64, 1).unwrap();
        assert_eq!(s.scrub(o).unwrap(), vec![4]);
        let (bytes, crcs, _) = r(&s, o);
        assert_eq!(first_bad_block(&bytes, &crcs), Some(4));
        // Cutting the bad block away leaves a sound object.
        s.truncate(o, (4 * B) as u64, 1).unwrap();
        assert_eq!(sound(&s, o), &model[..4 * B]);
    }

    #[test]
    fn an_object_without_sidecar_fails_unless_zeros_and_heals() {
        let dir = tempfile::tempdir().unwrap();
        let o = id(4, 2);
        let mut data = pattern(3 * B, 9);
        data[B..2 * B].fill(0);
        {
            let s = FileStore::open(dir.path(), 8).unwrap();
            w(&s, o, 0, &data);
            std::fs::remove_file(s.sums_path(o)).unwrap();
        }
        let s = FileStore::open(dir.path(), 8).unwrap();
        let (bytes, crcs, version) = r(&s, o);
        assert_eq!(bytes, data);
        assert_eq!(version, 0);
        let expected = block_crcs(&bytes);
        assert_ne!(crcs[0], expected[0]);
        assert_eq!(crcs[1], expected[1], "a zero block passes");
        assert_ne!(crcs[2], expected[2]);
        assert_eq!(s.scrub(o).unwrap(), vec![0, 2]);
        assert!(s.sums_path(o).exists());
        let patch = b"patch";
        let refused = s.write(o, 5, patch, crc32c(patch), 1, false);
        assert!(matches!(refused, Err(Error::Corrupt(_))));
        w(&s, o, 0, &data[..B]);
        w(&s, o, 2 * B as u64, &data[2 * B..]);
        assert_eq!(sound(&s, o), data);
    }

    #[test]
    fn versions_keep_the_highest() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 1).unwrap();
        let o = id(5, 0);
        s.write(o, 0, b"a", crc32c(b"a"), 4, false).unwrap();
        s.write(o, 0, b"b", crc32c(b"b"), 2, false).unwrap();
        assert_eq!(r(&s, o).2, 4);
        s.truncate(o, 10, 6).unwrap();
        s.truncate(o, 10, 3).unwrap();
        assert_eq!(r(&s, o).2, 6);
        // Out of the cache, the version comes from the sidecar.
        w(&s, id(6, 0), 0, b"evicts");
        let page = s.list(None, 10).unwrap();
        assert_eq!(page.objects[0].version, 6);
        assert_eq!(page.objects[0].size, 10);
        assert_eq!(r(&s, o).2, 6);
        assert_eq!(s.read(id(99, 0), 0, 4096).unwrap().version, 0);
    }

    #[test]
    fn list_pages_in_id_order() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let mut ids = Vec::new();
        for ino in [1u64, 2, 255, 256, 257, 0x1_0000_0001, 513, u64::MAX] {
            for stripe in [0u32, 2, 10] {
                let o = id(ino, stripe);
                w(&s, o, 0, &vec![1u8; (ino % 7) as usize + stripe as usize]);
                ids.push(o);
            }
        }
        ids.sort();
        // Strays are not objects.
        std::fs::write(dir.path().join("objects/01/junk"), b"").unwrap();
        std::fs::write(dir.path().join("objects/01/0000000000000001.05"), b"").unwrap();
        std::fs::write(dir.path().join("objects/01/0000000000000001.x"), b"").unwrap();
        let all = s.list(None, 1000).unwrap();
        assert!(all.done);
        assert_eq!(all.objects.iter().map(|i| i.id).collect::<Vec<_>>(), ids);
        for info in &all.objects {
            assert_eq!(info.size, (info.id.ino % 7) + u64::from(info.id.stripe));
            assert_eq!(info.version, 1);
        }
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = s.list(after, 5).unwrap();
            assert!(page.objects.len() <= 5);
            paged.extend(page.objects.iter().map(|i| i.id));
            after = page.objects.last().map(|i| i.id);
            if page.done {
                break;
            }
            assert_eq!(page.objects.len(), 5);
        }
        assert_eq!(paged, ids);
        let last = s.list(Some(*ids.last().unwrap()), 5).unwrap();
        assert!(last.done && last.objects.is_empty());
        assert!(matches!(s.list(None, 0), Err(Error::Invalid(_))));
    }

    #[test]
    fn concurrent_partial_writes_lose_no_crc() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(FileStore::open(dir.path(), 8).unwrap());
        let o = id(8, 0);
        w(&s, o, 0, &vec![0u8; 2 * B]);
        let threads: Vec<_> = (0..4u8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..200u64 {
                        // Every thread writes its own bytes of the same two blocks.
                        let at = (i * 4 + u64::from(t)) * 9 % (2 * BLOCK);
                        let byte = [t.wrapping_add(i as u8) | 1];
                        s.write(o, at, &byte, crc32c(&byte), 1, false).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sound(&s, o);
    }

    /// Random writes and truncates against a model in memory.
    #[test]
    fn random_operations_match_a_model() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let o = id(9, 3);
        let mut model: Vec<u8> = Vec::new();
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for step in 0..300 {
            if next(5) == 0 {
                let size = next(12 * BLOCK) as usize;
                s.truncate(o, size as u64, 1).unwrap();
                model.resize(size, 0);
            } else {
                let at = next(10 * BLOCK) as usize;
                let len = match next(3) {
                    0 => next(64) as usize + 1,
                    1 => B,
                    _ => next(3 * BLOCK) as usize + 1,
                };
                let at = if next(2) == 0 { at / B * B } else { at };
                let data = pattern(len, step as u8);
                w(&s, o, at as u64, &data);
                if model.len() < at + len {
                    model.resize(at + len, 0);
                }
                model[at..at + len].copy_from_slice(&data);
            }
            let (bytes, crcs, _) = r(&s, o);
            assert_eq!(bytes, model, "step {step}");
            assert_eq!(crcs, block_crcs(&bytes), "step {step}");
        }
        assert!(s.scrub(o).unwrap().is_empty());
    }
}
