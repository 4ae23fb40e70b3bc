//! [`MemStore`]: an [`ObjectStore`] in memory that can lose, as a power cut would, every
//! change that was not made durable.
//!
//! The contract is [`FileStore`](super::FileStore)'s (`store.rs`, docs/replication.md):
//! POSIX holes; a CRC32C per 4 KiB block kept apart from the bytes, checked before a write
//! builds on a block it covers partly (`Corrupt`, nothing written, when it fails); a block
//! that fails its CRC while the object's length changes around it gets a poisoned entry
//! rather than a fresh CRC; versions only rise; listing in id order; scrub. The conformance
//! suite (`oss/conformance.rs`) runs the same tests against both stores.
//!
//! ## Live and durable images
//! Each object has a *live* image (what calls see) and a *durable* image (what survives a
//! crash); either may be absent. Writes, repairs, truncates, deletes and version changes
//! change the live image only. MemStore makes durable what FileStore makes durable: a
//! `sync` of an object copies its live image to its durable one (bytes, CRCs, version, and
//! its existence or removal, which FileStore makes durable with the directory fsync of a
//! sync), and so does a `write` with `sync` (FileStore's `fdatasync` covers the whole
//! object, earlier unsynced writes included). Nothing else is durable at once: FileStore
//! syncs neither repairs, truncates nor deletes. [`MemStore::crash`] replaces every live
//! image by its durable one.
//!
//! That is the harshest crash the contract allows, not every crash a disk can have: a disk
//! may keep some unsynced changes (a block's bytes and CRC may then disagree, which reads as
//! `Corrupt`), and FileStore's directory fsync makes the creations and removals of *other*
//! objects of that directory durable as a side effect. MemStore keeps no unsynced change and
//! never tears a block.
//!
//! ## Space
//! Blocks are held whole and shared between the two images until one of them changes (copy
//! on write); holes hold nothing. Capacity is the configured total (which
//! [`MemStore::set_capacity`] changes, as a disk filling up); free (and available) is the
//! total minus the blocks the live images hold. A write that needs more blocks than are
//! free is refused with `NoSpace` before it changes anything.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use rustre_proto::checksum::block_crcs;
use rustre_proto::msg::oss::{ObjectId, ObjectInfo};
use rustre_proto::msg::Capacity;

use super::error::ObjectError;
use super::store::{
    admit_version, check_change, check_list, check_object, check_read, check_size, ObjectPage,
    ObjectRead, ObjectStore, ReadData,
};
use super::sums::{self, BLOCK};
use rustre_proto::sync::lock;

/// Bytes of a block.
const BLOCK_BYTES: usize = BLOCK as usize;
/// The bit [`MemStore::corrupt`] flips, as the file tests flip it on disk.
const FLIPPED_BIT: u8 = 0x20;

type Block = [u8; BLOCK_BYTES];

/// One image of an object. Rules: no block and no entry at or past `blocks(size)`, and the
/// bytes of the last block past `size` are zeros (so growing the object shows zeros).
#[derive(Clone, Default)]
struct Image {
    size: u64,
    version: u64,
    /// Blocks holding bytes; a block absent is a hole (zeros).
    blocks: BTreeMap<u64, Arc<Block>>,
    /// Stored CRC entries with the sidecar's meaning (see `sums`): absent reads as 0.
    sums: BTreeMap<u64, u32>,
}

/// How an object is named in messages.
fn name(id: ObjectId) -> String {
    format!("object {:016x}.{}", id.ino, id.stripe)
}

/// The entry of a block that was not written but changes length (it keeps its first
/// `old.0.len()` bytes, cut or zero-padded to `new_len`): its fresh CRC when the old bytes
/// were sound, else a poisoned one.
fn relength_entry(id: ObjectId, block: u64, old: (Vec<u8>, bool), new_len: usize) -> u32 {
    let (mut buf, ok) = old;
    buf.resize(new_len, 0);
    if ok {
        sums::entry_for(&buf)
    } else {
        tracing::warn!(
            object = %name(id),
            block,
            "block failed its checksum while the object's length changed; it stays bad"
        );
        sums::poisoned(&buf)
    }
}

impl Image {
    fn entry(&self, block: u64) -> u32 {
        self.sums.get(&block).copied().unwrap_or(0)
    }

    /// The `len` bytes from `start`, holes as zeros.
    fn bytes(&self, start: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        if len == 0 {
            return out;
        }
        let end = start + len as u64;
        for (&b, block) in self.blocks.range(start / BLOCK..=(end - 1) / BLOCK) {
            let bs = b * BLOCK;
            let (s, e) = (bs.max(start), (bs + BLOCK).min(end));
            out[(s - start) as usize..(e - start) as usize]
                .copy_from_slice(&block[(s - bs) as usize..(e - bs) as usize]);
        }
        out
    }

    /// The current bytes of `block` (shorter at the end) and whether they match its stored
    /// CRC.
    fn old_block(&self, block: u64) -> (Vec<u8>, bool) {
        let start = block * BLOCK;
        let len = self.size.saturating_sub(start).min(BLOCK) as usize;
        let buf = self.bytes(start, len);
        let ok = sums::block_ok(self.entry(block), &buf);
        (buf, ok)
    }

    /// The block `b`, allocated (zeros) if it is a hole, unshared from the other image.
    fn block_mut(&mut self, b: u64) -> &mut Block {
        Arc::make_mut(
            self.blocks
                .entry(b)
                .or_insert_with(|| Arc::new([0; BLOCK_BYTES])),
        )
    }

    /// Copies `data` to `offset`; the length is the caller's business.
    fn put(&mut self, offset: u64, data: &[u8]) {
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let b = at / BLOCK;
            let bs = b * BLOCK;
            let e = (bs + BLOCK).min(end);
            self.block_mut(b)[(at - bs) as usize..(e - bs) as usize]
                .copy_from_slice(&data[(at - offset) as usize..(e - offset) as usize]);
            at = e;
        }
    }

    /// Sets the length, dropping blocks and entries past it and zeroing the rest of a block
    /// it cuts.
    fn set_size(&mut self, size: u64) {
        if size < self.size {
            let keep = sums::blocks(size);
            self.blocks.split_off(&keep);
            self.sums.split_off(&keep);
            let cut = (size % BLOCK) as usize;
            if cut != 0 && self.blocks.contains_key(&(size / BLOCK)) {
                self.block_mut(size / BLOCK)[cut..].fill(0);
            }
        }
        self.size = size;
    }

    /// A write whose payload CRC was checked, as FileStore's `write_locked`: CRCs of whole
    /// blocks from the new bytes, partly written blocks checked first, the old last block
    /// relengthened when the object grows past it. `free` blocks may be allocated.
    fn write(
        &mut self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        free: u64,
    ) -> Result<(), ObjectError> {
        if data.is_empty() {
            return Ok(());
        }
        let size = self.size;
        let end = offset + data.len() as u64;
        let new_size = size.max(end);
        let first = offset / BLOCK;
        let last = (end - 1) / BLOCK;
        let entries = sums::entries_of_write(offset, data, size, &name(id), |block| {
            Ok(self.old_block(block))
        })?;
        // The old last block, when the object grows past it without this write touching
        // it, becomes zero-padded.
        let tail = if end > size && !size.is_multiple_of(BLOCK) && size / BLOCK < first {
            let block = size / BLOCK;
            let entry = relength_entry(id, block, self.old_block(block), BLOCK_BYTES);
            Some((block, entry))
        } else {
            None
        };
        let needed = (first..=last)
            .filter(|b| !self.blocks.contains_key(b))
            .count() as u64;
        if needed > free {
            return Err(ObjectError::NoSpace);
        }
        self.put(offset, data);
        self.size = new_size;
        if let Some((block, entry)) = tail {
            self.sums.insert(block, entry);
        }
        for (block, entry) in (first..).zip(entries) {
            self.sums.insert(block, entry);
        }
        Ok(())
    }

    /// A truncate, as FileStore's: the block the new end falls in (shrinking) or the old
    /// last block (growing) gets the entry of its new length; new blocks are holes.
    fn truncate(&mut self, id: ObjectId, size: u64) {
        let old = self.size;
        let fix = if size < old && !size.is_multiple_of(BLOCK) {
            let block = size / BLOCK;
            let len = (size % BLOCK) as usize;
            Some((block, relength_entry(id, block, self.old_block(block), len)))
        } else if size > old && !old.is_multiple_of(BLOCK) {
            let block = old / BLOCK;
            let len = (size - block * BLOCK).min(BLOCK) as usize;
            Some((block, relength_entry(id, block, self.old_block(block), len)))
        } else {
            None
        };
        self.set_size(size);
        if let Some((block, entry)) = fix {
            self.sums.insert(block, entry);
        }
    }

    /// Flips a bit of byte `at` without touching its CRC; nothing past the end.
    fn corrupt(&mut self, at: u64) {
        if at < self.size {
            self.block_mut(at / BLOCK)[(at % BLOCK) as usize] ^= FLIPPED_BIT;
        }
    }
}

/// The two images of one object.
#[derive(Default)]
struct Slot {
    live: Option<Image>,
    durable: Option<Image>,
}

#[derive(Default)]
struct Inner {
    /// Objects with a live or a durable image (never neither).
    objects: BTreeMap<ObjectId, Slot>,
    /// Blocks the live images hold.
    held: u64,
}

impl Inner {
    fn live(&self, id: ObjectId) -> Option<&Image> {
        self.objects.get(&id).and_then(|s| s.live.as_ref())
    }

    /// Runs `f` on the live image of `id` (made empty first when absent, with `create`) and
    /// the number of free blocks, keeping count of the blocks held. `None` when the object
    /// is absent and `create` is false.
    fn change<R>(
        &mut self,
        id: ObjectId,
        create: bool,
        total: u64,
        f: impl FnOnce(&mut Image, u64) -> Result<R, ObjectError>,
    ) -> Result<Option<R>, ObjectError> {
        let free = total.saturating_sub(self.held);
        let slot = if create {
            self.objects.entry(id).or_default()
        } else {
            match self.objects.get_mut(&id) {
                Some(slot) if slot.live.is_some() => slot,
                _ => return Ok(None),
            }
        };
        let image = slot.live.get_or_insert_with(Image::default);
        let before = image.blocks.len() as u64;
        let result = f(image, free);
        let after = image.blocks.len() as u64;
        self.held = self.held + after - before;
        result.map(Some)
    }

    /// Makes the live image of `id` (or its absence) durable.
    fn sync(&mut self, id: ObjectId) {
        if let Some(slot) = self.objects.get_mut(&id) {
            slot.durable = slot.live.clone();
            if slot.live.is_none() {
                self.objects.remove(&id);
            }
        }
    }
}

/// Objects of one OST in memory, with a live and a durable image each (see the module doc).
pub struct MemStore {
    /// Capacity in blocks ([`MemStore::set_capacity`] changes it).
    total: AtomicU64,
    inner: Mutex<Inner>,
}

impl MemStore {
    /// An empty store of `total_bytes` (rounded down to whole blocks).
    pub fn new(total_bytes: u64) -> MemStore {
        MemStore {
            total: AtomicU64::new(total_bytes / BLOCK),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The capacity in blocks.
    fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Sets the capacity to `total_bytes` (rounded down to whole blocks), as a disk that
    /// fills up or frees space behind the store's back: the objects keep what they hold,
    /// and a write needing more blocks than are then free is refused with `NoSpace`.
    pub fn set_capacity(&self, total_bytes: u64) {
        self.total.store(total_bytes / BLOCK, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every change is checked before it is applied, so a panicking holder leaves no
        // half-made change behind.
        lock(&self.inner)
    }

    /// A power cut: every object goes back to its durable image, and objects never made
    /// durable disappear.
    pub fn crash(&self) {
        let mut inner = self.lock();
        inner.objects.retain(|_, slot| {
            slot.live = slot.durable.clone();
            slot.live.is_some()
        });
        inner.held = inner
            .objects
            .values()
            .filter_map(|s| s.live.as_ref())
            .map(|image| image.blocks.len() as u64)
            .sum();
    }

    /// Flips a bit of byte `at` of object `id` behind the store's back, in both images
    /// (where they hold that byte), leaving its CRC as it was: a disk rotting under the
    /// store, for tests of checksums, scrub and repair. Nothing happens past the end.
    pub fn corrupt(&self, id: ObjectId, at: u64) {
        let mut inner = self.lock();
        let total = self.total();
        // Infallible: no space limit applies to a flipped bit.
        let _ = inner.change(id, false, total, |image, _| {
            image.corrupt(at);
            Ok(())
        });
        if let Some(durable) = inner.objects.get_mut(&id).and_then(|s| s.durable.as_mut()) {
            durable.corrupt(at);
        }
    }
}

impl ObjectStore for MemStore {
    fn read(&self, id: ObjectId, offset: u64, len: u32) -> Result<ObjectRead, ObjectError> {
        check_object(id)?;
        check_read(offset, len)?;
        let inner = self.lock();
        let Some(image) = inner.live(id) else {
            return Ok(ObjectRead::empty(0));
        };
        // At most `len`, so it fits in usize.
        let len = image.size.saturating_sub(offset).min(u64::from(len)) as usize;
        if len == 0 {
            return Ok(ObjectRead::empty(image.version));
        }
        let bytes = image.bytes(offset, len);
        let first = offset / BLOCK;
        let crcs = (first..)
            .zip(bytes.chunks(BLOCK_BYTES))
            .map(|(b, data)| sums::expected_crc(image.entry(b), data))
            .collect();
        Ok(ObjectRead {
            data: ReadData::Bytes(Bytes::from(bytes)),
            crcs,
            version: image.version,
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
    ) -> Result<(), ObjectError> {
        check_change(id, offset, data, crc)?;
        let mut inner = self.lock();
        inner.change(id, true, self.total(), |image, free| {
            admit_version(id, image.version, version)?;
            image.write(id, offset, data, free)?;
            image.version = image.version.max(version);
            Ok(())
        })?;
        if sync {
            inner.sync(id);
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
        check_change(id, offset, data, crc)?;
        let mut inner = self.lock();
        let repaired = inner.change(id, false, self.total(), |image, free| {
            let end = offset + data.len() as u64;
            if end > image.size || block_crcs(&image.bytes(offset, data.len())) != seen {
                return Err(ObjectError::Busy);
            }
            admit_version(id, image.version, version)?;
            image.write(id, offset, data, free)?;
            image.version = image.version.max(version);
            Ok(())
        })?;
        repaired.ok_or(ObjectError::Busy)
    }

    fn checksums(
        &self,
        id: ObjectId,
        first: u64,
        count: usize,
    ) -> Result<(u64, Vec<u32>), ObjectError> {
        check_object(id)?;
        let inner = self.lock();
        let Some(image) = inner.live(id) else {
            return Ok((0, Vec::new()));
        };
        let size = image.size;
        let n = sums::blocks(size).saturating_sub(first).min(count as u64);
        let crcs = (first..first + n)
            .map(|b| match image.entry(b) {
                0 => sums::zero_crc((size - b * BLOCK).min(BLOCK) as usize),
                crc => crc,
            })
            .collect();
        Ok((size, crcs))
    }

    fn truncate(&self, id: ObjectId, size: u64, version: u64) -> Result<(), ObjectError> {
        check_object(id)?;
        check_size(size)?;
        let mut inner = self.lock();
        inner.change(id, true, self.total(), |image, _| {
            admit_version(id, image.version, version)?;
            image.truncate(id, size);
            image.version = image.version.max(version);
            Ok(())
        })?;
        Ok(())
    }

    fn raise_version(&self, id: ObjectId, version: u64) -> Result<(), ObjectError> {
        check_object(id)?;
        let mut inner = self.lock();
        inner.change(id, false, self.total(), |image, _| {
            image.version = image.version.max(version);
            Ok(())
        })?;
        Ok(())
    }

    fn sync(&self, id: ObjectId) -> Result<(), ObjectError> {
        check_object(id)?;
        self.lock().sync(id);
        Ok(())
    }

    fn delete(&self, id: ObjectId) -> Result<(), ObjectError> {
        check_object(id)?;
        let mut inner = self.lock();
        let Some(slot) = inner.objects.get_mut(&id) else {
            return Ok(());
        };
        let freed = slot
            .live
            .take()
            .map_or(0, |image| image.blocks.len() as u64);
        if slot.durable.is_none() {
            inner.objects.remove(&id);
        }
        inner.held -= freed;
        Ok(())
    }

    fn size(&self, id: ObjectId) -> Result<Option<u64>, ObjectError> {
        check_object(id)?;
        Ok(self.lock().live(id).map(|image| image.size))
    }

    fn capacity(&self) -> Result<Capacity, ObjectError> {
        let held = self.lock().held;
        let total = self.total();
        let free = total.saturating_sub(held) * BLOCK;
        Ok(Capacity {
            total_bytes: total * BLOCK,
            free_bytes: free,
            avail_bytes: free,
        })
    }

    fn list(&self, after: Option<ObjectId>, limit: u32) -> Result<ObjectPage, ObjectError> {
        let limit = check_list(limit)?;
        let inner = self.lock();
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut following =
            inner
                .objects
                .range((from, Bound::Unbounded))
                .filter_map(|(id, slot)| {
                    slot.live.as_ref().map(|image| ObjectInfo {
                        id: *id,
                        size: image.size,
                        version: image.version,
                    })
                });
        let objects = following.by_ref().take(limit).collect();
        Ok(ObjectPage {
            objects,
            done: following.next().is_none(),
        })
    }

    fn scrub(&self, id: ObjectId) -> Result<Vec<u64>, ObjectError> {
        check_object(id)?;
        let inner = self.lock();
        let Some(image) = inner.live(id) else {
            return Ok(Vec::new());
        };
        // A block with neither bytes nor an entry is a hole: zeros, expected as zeros.
        let mut candidates: Vec<u64> = image
            .blocks
            .keys()
            .chain(image.sums.keys())
            .copied()
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        Ok(candidates
            .into_iter()
            .filter(|&b| !image.old_block(b).1)
            .collect())
    }

    fn seek(&self, id: ObjectId, offset: u64, data: bool) -> Result<Option<u64>, ObjectError> {
        check_object(id)?;
        let inner = self.lock();
        let Some(image) = inner.live(id).filter(|i| offset < i.size) else {
            return Ok(None);
        };
        let first = offset / BLOCK;
        if data {
            // The first block holding bytes at or after the one of `offset`.
            Ok(image
                .blocks
                .range(first..)
                .next()
                .map(|(&b, _)| (b * BLOCK).max(offset)))
        } else {
            // The first block from `offset`'s without bytes, else the end.
            let mut b = first;
            for (&held, _) in image.blocks.range(first..) {
                if held != b {
                    break;
                }
                b += 1;
            }
            Ok(Some((b * BLOCK).max(offset).min(image.size)))
        }
    }

    fn allocated(&self, id: ObjectId) -> Result<u64, ObjectError> {
        check_object(id)?;
        Ok(self
            .lock()
            .live(id)
            .map_or(0, |image| image.blocks.len() as u64 * BLOCK))
    }
}
