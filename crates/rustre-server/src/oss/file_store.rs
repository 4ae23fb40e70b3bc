//! The file-backed [`ObjectStore`]: one plain file per object.
//!
//! ```text
//! DIR/objects/<ino % 256, 2 hex digits>/<ino, 16 hex digits>.<stripe>
//! ```
//! The 256 subdirectories are made when the store opens, so no directory grows past what
//! ext4 or XFS handle well before millions of objects.
//!
//! ## Open handles
//! Open files are kept in a bounded [`HandleCache`]. Rule: a handle enters the cache and a
//! file leaves the directory only under the object's lock (one of [`OBJECT_LOCK_STRIPES`]
//! striped mutexes). Without it, an open racing a delete could cache a handle to the unlinked
//! file, and every later write would vanish into it. A call that took a handle just before a
//! delete may still use it; that call is ordered before the delete, as any interleaving of
//! concurrent calls allows. Truncation changes the inode every handle shares, so it needs no
//! cache action.
//!
//! ## Durability
//! Writes are positional and not synced unless asked; `sync` (or a write with `sync`) is one
//! `fdatasync`. Creating or removing a file changes its directory, which `fdatasync` on the
//! file does not cover, so each object directory carries a dirty flag: creations and removals
//! set it, and a sync in that directory also fsyncs it when set (one directory fsync covers
//! every change made before it, so bursts of creations share one).

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rustre_proto::msg::oss::ObjectId;
use rustre_proto::msg::Capacity;
use rustre_proto::Error;

use super::handles::HandleCache;
use super::store::{check_object, check_read, check_size, check_write, ObjectStore, ReadData};
use crate::mgs::persist::sync_dir;

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

/// Objects of one OST in plain files under its directory.
pub struct FileStore {
    root: PathBuf,
    objects: PathBuf,
    handles: HandleCache,
    locks: Vec<Mutex<()>>,
    dirs: Vec<DirState>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // These mutexes guard no data of their own, so a panic elsewhere leaves nothing broken.
    m.lock().unwrap_or_else(|e| e.into_inner())
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

impl FileStore {
    /// Opens (creating if needed) the object store under `root`, caching at most
    /// `open_objects_max` open files.
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

    fn dir_index(id: ObjectId) -> usize {
        (id.ino % OBJECT_DIRS) as usize
    }

    fn dir_path(&self, id: ObjectId) -> PathBuf {
        self.objects.join(format!("{:02x}", id.ino % OBJECT_DIRS))
    }

    fn lock_object(&self, id: ObjectId) -> MutexGuard<'_, ()> {
        // Fibonacci hashing spreads consecutive inodes and stripes over the stripes.
        let h = (id.ino ^ (u64::from(id.stripe) << 48)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        lock(&self.locks[(h >> 32) as usize % OBJECT_LOCK_STRIPES])
    }

    /// Number of open files cached.
    pub fn cached_handles(&self) -> usize {
        self.handles.len()
    }

    /// The open file of `id`: from the cache, else opened (and, with `create`, created).
    /// `None` when the object does not exist and `create` is false.
    fn handle(&self, id: ObjectId, create: bool) -> Result<Option<Arc<File>>, Error> {
        if let Some(f) = self.handles.get(id) {
            return Ok(Some(f));
        }
        let _guard = self.lock_object(id);
        if let Some(f) = self.handles.get(id) {
            return Ok(Some(f));
        }
        let path = self.object_path(id);
        let file = match OpenOptions::new().read(true).write(true).open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !create => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(OBJECT_FILE_MODE)
                    .open(&path)
                    .map_err(|e| io_err(&path, e))?;
                self.dirs[Self::dir_index(id)]
                    .dirty
                    .store(true, Ordering::Release);
                f
            }
            Err(e) => return Err(io_err(&path, e)),
        };
        let file = Arc::new(file);
        self.handles.insert(id, file.clone());
        Ok(Some(file))
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
}

impl ObjectStore for FileStore {
    fn read(&self, id: ObjectId, offset: u64, len: u32) -> Result<ReadData, Error> {
        check_object(id)?;
        check_read(offset, len)?;
        let Some(file) = self.handle(id, false)? else {
            return Ok(ReadData::Bytes(Bytes::new()));
        };
        let size = file
            .metadata()
            .map_err(|e| io_err(&self.object_path(id), e))?
            .len();
        // At most `len`, so it fits in u32.
        let len = size.saturating_sub(offset).min(u64::from(len)) as u32;
        Ok(ReadData::File { file, offset, len })
    }

    fn write(&self, id: ObjectId, offset: u64, data: &[u8], sync: bool) -> Result<(), Error> {
        check_object(id)?;
        check_write(offset, data.len())?;
        let file = self
            .handle(id, true)?
            .ok_or_else(|| Error::Io("object vanished while being created".into()))?;
        let io = |e| io_err(&self.object_path(id), e);
        file.write_all_at(data, offset).map_err(io)?;
        if sync {
            file.sync_data().map_err(io)?;
            self.sync_dir_of(id)?;
        }
        Ok(())
    }

    fn truncate(&self, id: ObjectId, size: u64) -> Result<(), Error> {
        check_object(id)?;
        check_size(size)?;
        let file = self
            .handle(id, true)?
            .ok_or_else(|| Error::Io("object vanished while being created".into()))?;
        file.set_len(size)
            .map_err(|e| io_err(&self.object_path(id), e))
    }

    fn sync(&self, id: ObjectId) -> Result<(), Error> {
        check_object(id)?;
        if let Some(file) = self.handle(id, false)? {
            file.sync_data()
                .map_err(|e| io_err(&self.object_path(id), e))?;
        }
        // Also makes a removal in this directory durable.
        self.sync_dir_of(id)
    }

    fn delete(&self, id: ObjectId) -> Result<(), Error> {
        check_object(id)?;
        let path = self.object_path(id);
        let cached = {
            let _guard = self.lock_object(id);
            let cached = self.handles.remove(id);
            match std::fs::remove_file(&path) {
                Ok(()) => self.dirs[Self::dir_index(id)]
                    .dirty
                    .store(true, Ordering::Release),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path, e)),
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
            Some(f) => f.metadata(),
            None => std::fs::metadata(&path),
        };
        match meta {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err(&path, e)),
        }
    }

    fn capacity(&self) -> Result<Capacity, Error> {
        statvfs(&self.root)
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
    use super::*;

    fn id(ino: u64, stripe: u32) -> ObjectId {
        ObjectId { ino, stripe }
    }

    #[test]
    fn object_paths_follow_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        assert_eq!(
            s.object_path(id(0x1234_5678, 3)),
            dir.path().join("objects/78/0000000012345678.3")
        );
        assert!(dir.path().join("objects/ff").is_dir());
        s.write(id(0x1234_5678, 3), 0, b"x", true).unwrap();
        assert!(dir.path().join("objects/78/0000000012345678.3").is_file());
    }

    #[test]
    fn handle_cache_stays_bounded_and_coherent() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        for ino in 1..100 {
            s.write(id(ino, 0), 0, &ino.to_be_bytes(), false).unwrap();
            assert!(s.cached_handles() <= 8);
        }
        for ino in 1..100 {
            let ReadData::File { file, offset, len } = s.read(id(ino, 0), 0, 8).unwrap() else {
                panic!("file store reads files");
            };
            assert_eq!(len, 8);
            let mut buf = [0u8; 8];
            file.read_exact_at(&mut buf, offset).unwrap();
            assert_eq!(u64::from_be_bytes(buf), ino);
        }
        // A cached handle must not outlive a delete.
        let obj = id(7, 1);
        s.write(obj, 0, b"old data", false).unwrap();
        assert_eq!(s.read(obj, 0, 100).unwrap().len(), 8);
        s.delete(obj).unwrap();
        assert_eq!(s.size(obj).unwrap(), None);
        s.write(obj, 0, b"new", false).unwrap();
        assert_eq!(s.read(obj, 0, 100).unwrap().len(), 3);
        assert_eq!(std::fs::read(s.object_path(obj)).unwrap(), b"new");
    }

    #[test]
    fn capacity_is_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path(), 8).unwrap();
        let c = s.capacity().unwrap();
        assert!(c.total_bytes > 0);
        assert!(c.avail_bytes <= c.free_bytes && c.free_bytes <= c.total_bytes);
    }
}
