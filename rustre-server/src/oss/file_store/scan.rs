//! Walks of a [`FileStore`]: listing the objects of the OST (and parsing their file names),
//! scrubbing an object, reading an object's stored checksums, and the OST's capacity
//! (`statvfs`).

use std::collections::BinaryHeap;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::Ordering;

use rustre_proto::msg::oss::{ObjectId, ObjectInfo};
use rustre_proto::msg::Capacity;

use super::{crcs, FileStore, OBJECT_DIRS};
use crate::oss::error::ObjectError;
use crate::oss::store::{check_list, check_object, ObjectPage, ObjectStore};
use crate::oss::sums::{self, BLOCK};

/// Bytes a scrub reads (and checks) per step; the object's lock is held for one step.
pub const SCRUB_CHUNK_BYTES: usize = 1 << 20;

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
    /// [`ObjectStore::checksums`](crate::oss::ObjectStore::checksums).
    pub(super) fn object_checksums(
        &self,
        id: ObjectId,
        first: u64,
        count: usize,
    ) -> Result<(u64, Vec<u32>), ObjectError> {
        check_object(id)?;
        let held = self.lock_object(id);
        let Some(files) = self.handle_held(&held, None)? else {
            return Ok((0, Vec::new()));
        };
        let size = files
            .data
            .metadata()
            .map_err(|e| ObjectError::io(&self.object_path(id), e))?
            .len();
        let blocks = sums::blocks(size);
        let n = blocks.saturating_sub(first).min(count as u64) as usize;
        let mut crcs = files
            .crcs
            .entries(first, n)
            .map_err(|e| ObjectError::io(&self.crcs_path(id, &files), e))?;
        for (i, crc) in crcs.iter_mut().enumerate() {
            if *crc == 0 {
                let start = (first + i as u64) * BLOCK;
                *crc = sums::zero_crc((size - start).min(BLOCK) as usize);
            }
        }
        Ok((size, crcs))
    }

    /// [`ObjectStore::capacity`](crate::oss::ObjectStore::capacity): the file
    /// system's, or the fixed figure of `rustre_proto::host::disk_space`.
    pub(super) fn store_capacity(&self) -> Result<Capacity, ObjectError> {
        match rustre_proto::host::disk_space() {
            Some(fixed) => Ok(fixed),
            None => statvfs(&self.root),
        }
    }

    /// [`ObjectStore::list`](crate::oss::ObjectStore::list).
    ///
    /// Reads every name of the OST's 256 object directories on each call (O(objects of
    /// the OST) time, O(`limit`) memory: a bounded heap keeps the `limit` smallest ids after
    /// `after`), then stats the listed objects and reads their sidecar headers.
    pub(super) fn list_objects(
        &self,
        after: Option<ObjectId>,
        limit: u32,
    ) -> Result<ObjectPage, ObjectError> {
        let limit = check_list(limit)?;
        let mut smallest: BinaryHeap<ObjectId> = BinaryHeap::with_capacity(limit + 1);
        let mut following = 0usize;
        for d in 0..OBJECT_DIRS {
            let dir = self.objects.join(format!("{d:02x}"));
            let entries = std::fs::read_dir(&dir).map_err(|e| ObjectError::io(&dir, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| ObjectError::io(&dir, e))?;
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

    /// Version of object `id` for a listing: from its cached handle, else the header of
    /// its CRCs, in the object file's attribute or its sidecar (0 when missing or invalid).
    fn listed_version(&self, id: ObjectId) -> u64 {
        if let Some(f) = self.handles.get(id) {
            return f.version.load(Ordering::Acquire);
        }
        let in_xattr = File::open(self.object_path(id))
            .ok()
            .and_then(|f| match crcs::stored(&f) {
                Ok(crcs::Stored::Value(v)) => Some(sums::parse_header(&v).unwrap_or(0)),
                _ => None,
            });
        in_xattr.unwrap_or_else(|| {
            File::open(self.sums_path(id))
                .ok()
                .and_then(|f| sums::read_header(&f).ok().flatten())
                .unwrap_or(0)
        })
    }

    /// [`ObjectStore::scrub`](crate::oss::ObjectStore::scrub).
    pub(super) fn scrub_object(&self, id: ObjectId) -> Result<Vec<u64>, ObjectError> {
        check_object(id)?;
        let mut bad = Vec::new();
        let mut buf = vec![0u8; SCRUB_CHUNK_BYTES];
        let mut block = 0u64;
        loop {
            // One chunk under the lock, so no write lands between its bytes and its CRCs.
            let (got, crcs) = {
                let held = self.lock_object(id);
                let Some(files) = self.handle_held(&held, None)? else {
                    break;
                };
                let size = files
                    .data
                    .metadata()
                    .map_err(|e| ObjectError::io(&self.object_path(id), e))?
                    .len();
                let start = block * BLOCK;
                if start >= size {
                    break;
                }
                let len = (size - start).min(SCRUB_CHUNK_BYTES as u64) as usize;
                let got = sums::read_full_at(&files.data, &mut buf[..len], start)
                    .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
                let crcs = files
                    .crcs
                    .entries(block, sums::blocks(len as u64) as usize)
                    .map_err(|e| ObjectError::io(&self.crcs_path(id, &files), e))?;
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

/// Capacity of the file system holding `path`.
pub fn statvfs(path: &Path) -> Result<Capacity, ObjectError> {
    crate::space::statvfs(path).map_err(|e| ObjectError::io(path, e))
}
