//! Writes, repairs, truncates and syncs of a [`FileStore`]: how the checksum sidecar
//! follows the bytes.
//!
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
//! A sync is an `fdatasync` of the object, then of its sidecar (an `fsync` of the object
//! whose CRCs are in its attribute; `sync_files`), then of the object's directory when a
//! file was created or removed in it.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustre_proto::msg::oss::ObjectId;

use super::{crcs, Create, FileStore, ObjectFiles, ObjectLock};
use crate::oss::error::ObjectError;
use crate::oss::store::{
    admit_version, check_change, check_object, check_size, IN_PLACE_WRITE_MAX_BYTES,
};
use crate::oss::sums::{self, BLOCK};

impl FileStore {
    /// [`ObjectStore::write`](crate::oss::ObjectStore::write).
    pub(super) fn write_object(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
        sync: bool,
    ) -> Result<(), ObjectError> {
        check_change(id, offset, data, crc)?;
        let files = {
            let held = self.lock_object(id);
            self.write_locked(&held, offset, data, version)?
        };
        if sync {
            self.sync_files(id, &files)?;
            self.sync_dir_of(id)?;
        }
        Ok(())
    }

    /// [`ObjectStore::write_in_place`](crate::oss::ObjectStore::write_in_place): when the
    /// object's lock is free now.
    pub(super) fn write_object_in_place(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
    ) -> Option<Result<u64, ObjectError>> {
        if data.len() > IN_PLACE_WRITE_MAX_BYTES {
            return None;
        }
        // The lock first: a write that goes to a blocking thread instead checks its payload
        // there, once.
        let held = self.try_lock_object(id)?;
        Some(
            check_change(id, offset, data, crc)
                .and_then(|()| self.write_locked(&held, offset, data, version))
                .and_then(|files| self.allocated_of(id, &files)),
        )
    }

    /// The body of a write whose request was checked, under the object's lock: the object
    /// made if absent, the version admitted, the bytes and CRCs written, the version raised.
    /// Answers the object's files.
    fn write_locked(
        &self,
        held: &ObjectLock<'_>,
        offset: u64,
        data: &[u8],
        version: u64,
    ) -> Result<Arc<ObjectFiles>, ObjectError> {
        let id = held.id;
        let create = Create {
            reach: offset + data.len() as u64,
        };
        let files = self
            .handle_held(held, Some(create))?
            .ok_or_else(|| ObjectError::Internal("object vanished while being created".into()))?;
        admit_version(id, files.version.load(Ordering::Acquire), version)?;
        self.write_held(held, &files, offset, data)?;
        self.raise_version(id, &files, version)?;
        Ok(files)
    }

    /// [`ObjectStore::repair`](crate::oss::ObjectStore::repair).
    pub(super) fn repair_object(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
        seen: &[u32],
    ) -> Result<(), ObjectError> {
        check_change(id, offset, data, crc)?;
        let changed = || ObjectError::Busy;
        let held = self.lock_object(id);
        let files = self.handle_held(&held, None)?.ok_or_else(changed)?;
        admit_version(id, files.version.load(Ordering::Acquire), version)?;
        let mut now = vec![0u8; data.len()];
        let got = sums::read_full_at(&files.data, &mut now, offset)
            .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
        if got != data.len() || rustre_proto::checksum::block_crcs(&now) != seen {
            return Err(changed());
        }
        self.write_held(&held, &files, offset, data)?;
        self.raise_version(id, &files, version)
    }

    /// [`ObjectStore::truncate`](crate::oss::ObjectStore::truncate).
    pub(super) fn truncate_object(
        &self,
        id: ObjectId,
        size: u64,
        version: u64,
    ) -> Result<(), ObjectError> {
        check_object(id)?;
        check_size(size)?;
        let held = self.lock_object(id);
        let files = self
            .handle_held(&held, Some(Create { reach: 0 }))?
            .ok_or_else(|| ObjectError::Internal("object vanished while being created".into()))?;
        admit_version(id, files.version.load(Ordering::Acquire), version)?;
        let path = || self.object_path(id);
        let cpath = || self.crcs_path(id, &files);
        let old = files
            .data
            .metadata()
            .map_err(|e| ObjectError::io(&path(), e))?
            .len();
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
            if let Some((block, _)) = fix {
                self.room_for(&held, &files, block)?;
            }
            files
                .data
                .set_len(size)
                .map_err(|e| ObjectError::io(&path(), e))?;
            self.cut_sums(id, &files, size)?;
            if let Some((block, entry)) = fix {
                files
                    .crcs
                    .write_entries(block, &[entry])
                    .map_err(|e| ObjectError::io(&cpath(), e))?;
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
            if let Some((block, _)) = fix {
                self.room_for(&held, &files, block)?;
            }
            self.cut_sums(id, &files, old)?;
            files
                .data
                .set_len(size)
                .map_err(|e| ObjectError::io(&path(), e))?;
            if let Some((block, entry)) = fix {
                files
                    .crcs
                    .write_entries(block, &[entry])
                    .map_err(|e| ObjectError::io(&cpath(), e))?;
            }
        }
        self.raise_version(id, &files, version)
    }

    /// [`ObjectStore::raise_version`](crate::oss::ObjectStore::raise_version).
    pub(super) fn raise_object_version(
        &self,
        id: ObjectId,
        version: u64,
    ) -> Result<(), ObjectError> {
        check_object(id)?;
        let held = self.lock_object(id);
        match self.handle_held(&held, None)? {
            Some(files) => self.raise_version(id, &files, version),
            None => Ok(()),
        }
    }

    /// [`ObjectStore::sync`](crate::oss::ObjectStore::sync).
    pub(super) fn sync_object(&self, id: ObjectId) -> Result<(), ObjectError> {
        check_object(id)?;
        if let Some(files) = self.handle(id, false)? {
            self.sync_files(id, &files)?;
        }
        // Also makes a removal in this directory durable.
        self.sync_dir_of(id)
    }

    /// Syncs the object's data and CRCs ([`Crcs::sync`](super::crcs::Crcs::sync)): what a
    /// sync makes durable besides the directory.
    fn sync_files(&self, id: ObjectId, files: &ObjectFiles) -> Result<(), ObjectError> {
        files.crcs.sync().map_err(|(data, e)| {
            let path = if data {
                self.object_path(id)
            } else {
                self.sums_path(id)
            };
            ObjectError::io(&path, e)
        })
    }

    /// Makes room for entries up to block `last` (included): CRCs in the attribute move
    /// to a sidecar when they would not fit there.
    fn room_for(
        &self,
        held: &ObjectLock<'_>,
        files: &ObjectFiles,
        last: u64,
    ) -> Result<(), ObjectError> {
        if !files.crcs.is_xattr() || crcs::fits_xattr(last) {
            return Ok(());
        }
        let id = held.id;
        let sidecar = self.new_sidecar(id)?;
        files
            .crcs
            .move_to_sidecar(sidecar, || {
                self.sync_dir_of(id)
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })
            .map_err(|e| ObjectError::io(&self.sums_path(id), e))
    }

    /// The body of a write whose payload CRC was checked, under the object's lock.
    fn write_held(
        &self,
        held: &ObjectLock<'_>,
        files: &ObjectFiles,
        offset: u64,
        data: &[u8],
    ) -> Result<(), ObjectError> {
        let id = held.id;
        if data.is_empty() {
            return Ok(());
        }
        let path = || self.object_path(id);
        let cpath = || self.crcs_path(id, files);
        let size = files
            .data
            .metadata()
            .map_err(|e| ObjectError::io(&path(), e))?
            .len();
        let end = offset + data.len() as u64;
        let first = offset / BLOCK;
        self.room_for(held, files, (end - 1) / BLOCK)?;
        let entries = sums::entries_of_write(offset, data, size, &path().display(), |block| {
            self.old_block(id, files, block, size)
        })?;
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
            .map_err(|e| ObjectError::io(&path(), e))?;
        if let Some((block, entry)) = tail {
            files
                .crcs
                .write_entries(block, &[entry])
                .map_err(|e| ObjectError::io(&cpath(), e))?;
        }
        files
            .crcs
            .write_entries(first, &entries)
            .map_err(|e| ObjectError::io(&cpath(), e))
    }

    /// whether they match the block's stored CRC. Caller holds the object's lock.
    fn old_block(
        &self,
        id: ObjectId,
        files: &ObjectFiles,
        block: u64,
        size: u64,
    ) -> Result<(Vec<u8>, bool), ObjectError> {
        let start = block * BLOCK;
        let len = size.saturating_sub(start).min(BLOCK) as usize;
        let mut buf = vec![0u8; len];
        let got = sums::read_full_at(&files.data, &mut buf, start)
            .map_err(|e| ObjectError::io(&self.object_path(id), e))?;
        buf.truncate(got);
        let stored = files
            .crcs
            .entries(block, 1)
            .map_err(|e| ObjectError::io(&self.crcs_path(id, files), e))?[0];
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

    /// Cuts the stored CRCs of `files` to at most the entries of an object of `size`
    /// bytes (leftovers of a crash must not pass for the CRCs of holes).
    fn cut_sums(&self, id: ObjectId, files: &ObjectFiles, size: u64) -> Result<(), ObjectError> {
        files
            .crcs
            .cut(size)
            .map_err(|e| ObjectError::io(&self.crcs_path(id, files), e))
    }

    /// Raises the stored version of `files` to `version`. Caller holds the object's lock.
    /// Not durable until the object is synced, as its bytes are not.
    fn raise_version(
        &self,
        id: ObjectId,
        files: &ObjectFiles,
        version: u64,
    ) -> Result<(), ObjectError> {
        if version > files.version.load(Ordering::Acquire) {
            files
                .crcs
                .write_header(version)
                .map_err(|e| ObjectError::io(&self.crcs_path(id, files), e))?;
            files.version.store(version, Ordering::Release);
        }
        Ok(())
    }
}
