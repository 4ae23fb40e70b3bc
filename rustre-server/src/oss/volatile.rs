//! A test-only [`ObjectStore`] that loses what was not synced when its process dies: the
//! power cut of a real OST, made by `kill -9` (docs/replication.md, "Write verifiers").
//!
//! Objects live in memory (a [`MemStore`]); [`ObjectStore::sync`] writes the object's
//! bytes as they are now to a [`FileStore`] underneath and syncs it there, and a delete
//! goes to both. At start the file store's objects are loaded into memory. So after a
//! crash exactly what was synced survives, as on a disk whose page cache the power cut
//! took, and a write acknowledged but not synced is gone.
//!
//! An OSS serves its OSTs this way only when [`VOLATILE_WRITES_ENV`] is set to `1`: end-to-
//! end tests of the write verifiers use it. Never in production: a crash of the process
//! loses acknowledged, unsynced writes by design, and a sync rewrites the whole object.

use bytes::Bytes;
use rustre_proto::checksum::crc32c;
use rustre_proto::frame::MAX_PAYLOAD_BYTES;
use rustre_proto::msg::oss::ObjectId;
use rustre_proto::msg::Capacity;
use rustre_proto::sync::lock;
use std::sync::Mutex;

use super::error::ObjectError;
use super::file_store::FileStore;
use super::mem_store::MemStore;
use super::store::{ObjectPage, ObjectRead, ObjectStore, ReadData};

/// The environment variable that turns this mode on for every OST of an OSS (`1`).
pub const VOLATILE_WRITES_ENV: &str = "RUSTRE_TEST_VOLATILE_WRITES";

/// How much of an object one step of a copy moves (a multiple of the checksum block).
const COPY_CHUNK: u32 = MAX_PAYLOAD_BYTES / 2;

/// True when the environment asks for volatile OSTs.
pub(crate) fn volatile_writes_wanted() -> bool {
    std::env::var(VOLATILE_WRITES_ENV).is_ok_and(|v| v == "1")
}

/// Objects in memory until synced to a file store.
pub struct VolatileStore {
    mem: MemStore,
    disk: FileStore,
    /// Held across a sync's copy, so two syncs of objects do not interleave their writes.
    syncing: Mutex<()>,
}

impl VolatileStore {
    /// Serves `disk`'s objects from memory; loads them now.
    pub fn load(disk: FileStore) -> Result<VolatileStore, ObjectError> {
        let capacity = disk.capacity()?;
        let store = VolatileStore {
            mem: MemStore::new(capacity.total_bytes),
            disk,
            syncing: Mutex::new(()),
        };
        let mut after = None;
        loop {
            let page = store.disk.list(after, 1024)?;
            for info in &page.objects {
                copy_object(&store.disk, &store.mem, info.id)?;
                store.mem.sync(info.id)?;
            }
            after = page.objects.last().map(|o| o.id);
            if page.done || after.is_none() {
                break;
            }
        }
        Ok(store)
    }

    /// Flips a bit of byte `at` of object `id` in memory (see [`MemStore::corrupt`]).
    #[cfg(test)]
    pub(crate) fn corrupt(&self, id: ObjectId, at: u64) {
        self.mem.corrupt(id, at);
    }
}

/// Copies object `id` from `from` to `to` as it is now (holes stay holes), then syncs it
/// there; removes it from `to` when `from` has none.
fn copy_object(
    from: &dyn ObjectStore,
    to: &dyn ObjectStore,
    id: ObjectId,
) -> Result<(), ObjectError> {
    let Some(size) = from.size(id)? else {
        return to.delete(id);
    };
    let first = from.read(id, 0, COPY_CHUNK)?;
    let version = first.version;
    to.truncate(id, 0, version)?;
    let mut next = Some(first);
    let mut offset = 0u64;
    while offset < size {
        let read = match next.take() {
            Some(read) => read,
            None => from.read(id, offset, COPY_CHUNK)?,
        };
        let bytes = match read.data {
            ReadData::Bytes(b) => b,
            ReadData::File { file, offset, len } => read_file(&file, offset, len)?,
        };
        if bytes.is_empty() {
            break;
        }
        if bytes.iter().any(|b| *b != 0) {
            to.write(id, offset, &bytes, crc32c(&bytes), version, false)?;
        }
        offset += bytes.len() as u64;
    }
    to.truncate(id, size, version)?;
    to.sync(id)
}

fn read_file(file: &std::fs::File, offset: u64, len: u32) -> Result<Bytes, ObjectError> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len as usize];
    file.read_exact_at(&mut buf, offset)
        .map_err(|e| ObjectError::Internal(format!("reading an object to copy: {e}")))?;
    Ok(Bytes::from(buf))
}

impl ObjectStore for VolatileStore {
    fn read(&self, id: ObjectId, offset: u64, len: u32) -> Result<ObjectRead, ObjectError> {
        self.mem.read(id, offset, len)
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
        self.mem.write(id, offset, data, crc, version, false)?;
        if sync {
            self.sync(id)?;
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
    ) -> Result<(), ObjectError> {
        self.mem.repair(id, offset, data, crc, version, seen)
    }

    fn checksums(
        &self,
        id: ObjectId,
        first: u64,
        count: usize,
    ) -> Result<(u64, Vec<u32>), ObjectError> {
        self.mem.checksums(id, first, count)
    }

    fn truncate(&self, id: ObjectId, size: u64, version: u64) -> Result<(), ObjectError> {
        self.mem.truncate(id, size, version)
    }

    fn raise_version(&self, id: ObjectId, version: u64) -> Result<(), ObjectError> {
        self.mem.raise_version(id, version)
    }

    fn sync(&self, id: ObjectId) -> Result<(), ObjectError> {
        let _one_at_a_time = lock(&self.syncing);
        copy_object(&self.mem, &self.disk, id)?;
        self.mem.sync(id)
    }

    fn delete(&self, id: ObjectId) -> Result<(), ObjectError> {
        self.mem.delete(id)?;
        self.disk.delete(id)?;
        self.disk.sync(id)
    }

    fn size(&self, id: ObjectId) -> Result<Option<u64>, ObjectError> {
        self.mem.size(id)
    }

    fn capacity(&self) -> Result<Capacity, ObjectError> {
        self.disk.capacity()
    }

    fn list(&self, after: Option<ObjectId>, limit: u32) -> Result<ObjectPage, ObjectError> {
        self.mem.list(after, limit)
    }

    fn scrub(&self, id: ObjectId) -> Result<Vec<u64>, ObjectError> {
        self.mem.scrub(id)
    }

    fn seek(&self, id: ObjectId, offset: u64, data: bool) -> Result<Option<u64>, ObjectError> {
        self.mem.seek(id, offset, data)
    }

    fn allocated(&self, id: ObjectId) -> Result<u64, ObjectError> {
        self.mem.allocated(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object() -> ObjectId {
        ObjectId { ino: 5, stripe: 0 }
    }

    fn contents(store: &dyn ObjectStore) -> Vec<u8> {
        let read = store.read(object(), 0, 1 << 20).unwrap();
        match read.data {
            ReadData::Bytes(b) => b.to_vec(),
            ReadData::File { file, offset, len } => read_file(&file, offset, len).unwrap().to_vec(),
        }
    }

    #[test]
    fn only_what_was_synced_survives_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolatileStore::load(FileStore::open(dir.path(), 16).unwrap()).unwrap();
        let synced = vec![1u8; 8192];
        store
            .write(object(), 0, &synced, crc32c(&synced), 3, false)
            .unwrap();
        store.sync(object()).unwrap();
        let later = vec![2u8; 4096];
        store
            .write(object(), 8192, &later, crc32c(&later), 3, false)
            .unwrap();
        assert_eq!(contents(&store).len(), 12288, "served from memory");
        drop(store);

        let again = VolatileStore::load(FileStore::open(dir.path(), 16).unwrap()).unwrap();
        assert_eq!(contents(&again), synced, "the unsynced write is gone");
        assert_eq!(again.read(object(), 0, 4096).unwrap().version, 3);
        again.delete(object()).unwrap();
        drop(again);
        let empty = VolatileStore::load(FileStore::open(dir.path(), 16).unwrap()).unwrap();
        assert_eq!(empty.size(object()).unwrap(), None);
    }

    #[test]
    fn a_synced_hole_stays_a_hole() {
        let dir = tempfile::tempdir().unwrap();
        let store = VolatileStore::load(FileStore::open(dir.path(), 16).unwrap()).unwrap();
        let tail = vec![9u8; 4096];
        store
            .write(object(), 1 << 19, &tail, crc32c(&tail), 1, true)
            .unwrap();
        let on_disk = FileStore::open(dir.path(), 16).unwrap();
        assert_eq!(on_disk.size(object()).unwrap(), Some((1 << 19) + 4096));
        let mut expect = vec![0u8; 1 << 19];
        expect.extend_from_slice(&tail);
        assert_eq!(contents(&on_disk), expect);
    }
}
