//! The tests every [`ObjectStore`] must pass, run against a [`FileStore`] on a temporary
//! directory and against a [`MemStore`]: reads of holes and past the end, writes past the
//! end, partial-block writes, payloads and stored blocks failing their CRC, truncation both
//! ways, versions, deletes, list paging, scrub, SEEK_DATA/SEEK_HOLE, allocation, repairs, capacity, concurrent writes, and
//! random operations against a model. Each check is a function of the store and of a way to
//! flip a stored byte behind the store's back (a bad disk); `conformance!` makes one test of
//! it per store (`oss::conformance::{file_store, mem_store, volatile_store}::<check>`).
//!
//! The helpers are shared with the tests of each store.

use std::os::unix::fs::FileExt;

use rustre_proto::checksum::{block_crcs, crc32c, first_bad_block, CHECKSUM_BLOCK};
use rustre_proto::msg::oss::ObjectId;
use rustre_proto::msg::MAX_STRIPE_COUNT;

use super::error::ObjectError;
use super::store::{ObjectStore, ReadData, MAX_OBJECT_BYTES};
use super::sums::{zero_crc, BLOCK};
use super::{FileStore, MemStore, VolatileStore};

pub(super) const B: usize = CHECKSUM_BLOCK as usize;
/// Capacity of the [`MemStore`] the suite runs on.
const MEM_STORE_BYTES: u64 = 1 << 30;

/// Flips a stored byte of an object without its store knowing.
type Flip<'a> = &'a dyn Fn(ObjectId, u64);

pub(super) fn id(ino: u64, stripe: u32) -> ObjectId {
    ObjectId { ino, stripe }
}

/// Writes `data` at `offset` with its true CRC, version 1, unsynced.
pub(super) fn w(s: &dyn ObjectStore, o: ObjectId, offset: u64, data: &[u8]) {
    s.write(o, offset, data, crc32c(data), 1, false).unwrap();
}

/// The bytes of a read, whatever form they came in.
pub(super) fn bytes_of(data: ReadData) -> Vec<u8> {
    match data {
        ReadData::File { file, offset, len } => {
            let mut buf = vec![0u8; len as usize];
            file.read_exact_at(&mut buf, offset).unwrap();
            buf
        }
        ReadData::Bytes(b) => b.to_vec(),
    }
}

/// The whole object: bytes, returned CRCs, version.
pub(super) fn r(s: &dyn ObjectStore, o: ObjectId) -> (Vec<u8>, Vec<u32>, u64) {
    let size = s.size(o).unwrap().unwrap_or(0);
    let len = size.div_ceil(BLOCK) * BLOCK;
    let got = s.read(o, 0, len as u32).unwrap();
    assert_eq!(u64::from(got.data.len()), size);
    (bytes_of(got.data), got.crcs, got.version)
}

/// Reads the whole object and checks that its CRCs are those of its bytes.
pub(super) fn sound(s: &dyn ObjectStore, o: ObjectId) -> Vec<u8> {
    let (bytes, crcs, _) = r(s, o);
    assert_eq!(
        crcs,
        block_crcs(&bytes),
        "returned CRCs disagree with the bytes"
    );
    assert!(s.scrub(o).unwrap().is_empty());
    bytes
}

pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
        .collect()
}

/// Flips a bit of byte `at` of object `o`'s file, as [`MemStore::corrupt`] does in memory.
pub(super) fn flip_file(s: &FileStore, o: ObjectId, at: u64) {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.object_path(o))
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, at).unwrap();
    b[0] ^= 0x20;
    f.write_all_at(&b, at).unwrap();
}

/// A FileStore on a fresh directory, caching one open object, so that every switch of
/// object reopens files (and versions come back from disk).
fn file_store() -> (tempfile::TempDir, FileStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::open(dir.path(), 1).unwrap();
    (dir, store)
}

macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod file_store {
            $(
                #[test]
                fn $check() {
                    let (_dir, store) = super::file_store();
                    super::$check(&store, &|o, at| super::flip_file(&store, o, at));
                }
            )*
        }
        mod file_store_sidecars {
            $(
                #[test]
                fn $check() {
                    let (_dir, store) = super::file_store();
                    let store = store.with_sidecars_only();
                    super::$check(&store, &|o, at| super::flip_file(&store, o, at));
                }
            )*
        }
        mod mem_store {
            $(
                #[test]
                fn $check() {
                    let store = super::MemStore::new(super::MEM_STORE_BYTES);
                    super::$check(&store, &|o, at| store.corrupt(o, at));
                }
            )*
        }
        mod volatile_store {
            $(
                #[test]
                fn $check() {
                    let (_dir, files) = super::file_store();
                    let store = super::VolatileStore::load(files).unwrap();
                    super::$check(&store, &|o, at| store.corrupt(o, at));
                }
            )*
        }
    };
}

conformance!(
    holes_and_reads_past_the_end,
    stored_checksums_equal_the_crcs_of_the_bytes_holes_included,
    payload_crc_mismatch_writes_nothing,
    holes_growth_and_truncation_keep_crcs_right,
    corruption_is_seen_and_never_laundered,
    a_repair_never_overwrites_a_write_that_came_in_between,
    older_versions_are_refused_and_versions_only_rise,
    deletes_and_syncs,
    list_pages_in_id_order,
    requests_out_of_bounds_are_refused,
    capacity_is_plausible,
    concurrent_partial_writes_lose_no_crc,
    random_operations_match_a_model,
    seek_finds_data_and_holes,
    allocation_counts_blocks_holding_bytes,
);

fn holes_and_reads_past_the_end(s: &dyn ObjectStore, _: Flip) {
    let o = id(1, 0);
    let absent = s.read(o, 0, B as u32).unwrap();
    assert!(absent.data.is_empty() && absent.crcs.is_empty());
    assert_eq!(absent.version, 0);
    assert_eq!(s.size(o).unwrap(), None);
    assert_eq!(s.checksums(o, 0, 4).unwrap(), (0, vec![]));
    assert!(s.scrub(o).unwrap().is_empty());
    // Past the end: a hole of two blocks and ten bytes before the data.
    let data = pattern(100, 1);
    let at = 2 * B + 10;
    s.write(o, at as u64, &data, crc32c(&data), 3, false)
        .unwrap();
    assert_eq!(s.size(o).unwrap(), Some((at + 100) as u64));
    let mut model = vec![0u8; at];
    model.extend_from_slice(&data);
    assert_eq!(sound(s, o), model);
    // A block of the hole alone, the short last block alone, and past the end.
    let hole = s.read(o, BLOCK, B as u32).unwrap();
    assert_eq!(hole.crcs, vec![zero_crc(B)]);
    assert_eq!(bytes_of(hole.data), vec![0u8; B]);
    let tail = s.read(o, 2 * BLOCK, 2 * B as u32).unwrap();
    assert_eq!(tail.data.len(), 110);
    assert_eq!(tail.version, 3);
    let past = s.read(o, 4 * BLOCK, B as u32).unwrap();
    assert!(past.data.is_empty() && past.crcs.is_empty());
    assert_eq!(
        past.version, 3,
        "a read past the end still tells the version"
    );
    // An empty write creates the object and raises its version.
    let e = id(2, 0);
    s.write(e, 0, &[], crc32c(&[]), 5, false).unwrap();
    assert_eq!(s.size(e).unwrap(), Some(0));
    assert_eq!(s.read(e, 0, B as u32).unwrap().version, 5);
}

fn stored_checksums_equal_the_crcs_of_the_bytes_holes_included(s: &dyn ObjectStore, _: Flip) {
    let obj = id(6, 1);
    assert_eq!(s.checksums(obj, 0, 10).unwrap(), (0, vec![]));
    let data = vec![9u8; 5000];
    // A hole of two blocks, then 5000 bytes (one full block and a short tail).
    s.write(obj, 8192, &data, crc32c(&data), 1, false).unwrap();
    let mut whole = vec![0u8; 8192];
    whole.extend_from_slice(&data);
    let (size, crcs) = s.checksums(obj, 0, 100).unwrap();
    assert_eq!(size, whole.len() as u64);
    assert_eq!(crcs, block_crcs(&whole));
    assert_eq!(s.checksums(obj, 3, 1).unwrap().1, crcs[3..4].to_vec());
    assert!(s.checksums(obj, 9, 1).unwrap().1.is_empty());
}

fn payload_crc_mismatch_writes_nothing(s: &dyn ObjectStore, _: Flip) {
    let o = id(1, 0);
    let data = pattern(3 * B, 1);
    let bad = s.write(o, 0, &data, crc32c(&data) ^ 1, 5, true);
    assert!(matches!(bad, Err(ObjectError::Corrupt(_))), "{bad:?}");
    assert_eq!(s.size(o).unwrap(), None, "a refused write creates nothing");
    w(s, o, 0, &data);
    let other = pattern(B, 9);
    let bad = s.write(o, B as u64, &other, crc32c(&data), 5, false);
    assert!(matches!(bad, Err(ObjectError::Corrupt(_))), "{bad:?}");
    assert_eq!(sound(s, o), data);
    assert_eq!(r(s, o).2, 1, "the version of a refused write is not kept");
}

fn holes_growth_and_truncation_keep_crcs_right(s: &dyn ObjectStore, _: Flip) {
    let o = id(2, 1);
    let mut model = pattern(3000, 2);
    w(s, o, 0, &model);
    assert_eq!(sound(s, o), model);
    // Past the end: the old last block grows (zero-padded), blocks 1 and 2 are holes.
    let far = pattern(200, 3);
    let at = 3 * B + 100;
    w(s, o, at as u64, &far);
    model.resize(at, 0);
    model.extend_from_slice(&far);
    assert_eq!(sound(s, o), model);
    // Into a hole, partly; and across a block boundary.
    let mid = pattern(5000, 4);
    w(s, o, (B + 10) as u64, &mid);
    model[B + 10..B + 10 + 5000].copy_from_slice(&mid);
    assert_eq!(sound(s, o), model);
    // Appending mid-block.
    let tail = pattern(7000, 5);
    w(s, o, model.len() as u64, &tail);
    model.extend_from_slice(&tail);
    assert_eq!(sound(s, o), model);
    // Shrinking into a block, growing by truncate (a hole), shrinking to a boundary.
    for size in [5 * B + 77, 9 * B + 1, 2 * B, 2 * B + 1, 0, 100] {
        s.truncate(o, size as u64, 1).unwrap();
        model.resize(size, 0);
        assert_eq!(sound(s, o), model, "after truncating to {size}");
    }
    // A huge hole reads as zeros with the CRCs of zeros.
    s.truncate(o, 1 << 36, 1).unwrap();
    let got = s.read(o, (1 << 36) - 2 * BLOCK, 2 * B as u32).unwrap();
    assert_eq!(got.data.len(), 2 * B as u32);
    assert_eq!(got.crcs, block_crcs(&vec![0u8; 2 * B]));
    // Reads must be block-aligned.
    assert!(matches!(s.read(o, 1, 4096), Err(ObjectError::Invalid(_))));
    assert!(matches!(s.read(o, 0, 100), Err(ObjectError::Invalid(_))));
}

fn corruption_is_seen_and_never_laundered(s: &dyn ObjectStore, flip: Flip) {
    let o = id(3, 0);
    let data = pattern(4 * B + 500, 6);
    w(s, o, 0, &data);
    flip(o, (B + 17) as u64);
    assert_eq!(s.scrub(o).unwrap(), vec![1]);
    let before = r(s, o);
    assert_eq!(first_bad_block(&before.0, &before.1), Some(1));
    // A write over part of the bad block is refused and changes nothing.
    let patch = pattern(100, 7);
    let refused = s.write(o, (B + 1000) as u64, &patch, crc32c(&patch), 2, false);
    assert!(
        matches!(refused, Err(ObjectError::Corrupt(_))),
        "{refused:?}"
    );
    let straddling = pattern(B, 8);
    let refused = s.write(
        o,
        (B / 2) as u64,
        &straddling,
        crc32c(&straddling),
        2,
        false,
    );
    assert!(
        matches!(refused, Err(ObjectError::Corrupt(_))),
        "{refused:?}"
    );
    assert_eq!(r(s, o), before);
    // Other blocks are still writable; a whole-block write repairs the bad one.
    w(s, o, 10, b"fine");
    w(s, o, B as u64, &data[B..2 * B]);
    let mut model = data.clone();
    model[10..14].copy_from_slice(b"fine");
    assert_eq!(sound(s, o), model);

    // A bad last block stays bad when the object grows past it or shrinks into it.
    flip(o, (4 * B + 3) as u64);
    assert_eq!(s.scrub(o).unwrap(), vec![4]);
    w(s, o, (6 * B) as u64, b"beyond");
    assert_eq!(s.scrub(o).unwrap(), vec![4]);
    s.truncate(o, (4 * B + 100) as u64, 1).unwrap();
    assert_eq!(s.scrub(o).unwrap(), vec![4]);
    let (bytes, crcs, _) = r(s, o);
    assert_eq!(first_bad_block(&bytes, &crcs), Some(4));
    // Cutting the bad block away leaves a sound object.
    s.truncate(o, (4 * B) as u64, 1).unwrap();
    assert_eq!(sound(s, o), &model[..4 * B]);
}

fn a_repair_never_overwrites_a_write_that_came_in_between(s: &dyn ObjectStore, flip: Flip) {
    let obj = id(5, 0);
    let old = vec![1u8; 2 * B];
    w(s, obj, 0, &old);
    // Block 1 goes bad; a reader saw it and fetched good bytes elsewhere.
    flip(obj, 5000);
    let bad = bytes_of(s.read(obj, BLOCK, B as u32).unwrap().data);
    let seen = block_crcs(&bad);
    let good = &old[B..];
    // A write lands in between: the repair must not undo it.
    let newer = vec![7u8; B];
    w(s, obj, BLOCK, &newer);
    let busy = s.repair(obj, BLOCK, good, crc32c(good), 1, &seen);
    assert!(matches!(busy, Err(ObjectError::Busy)), "{busy:?}");
    assert_eq!(r(s, obj).0[B..], newer[..]);
    // Without one, the bad block is rewritten (the same flip makes the same bad bytes).
    s.write(obj, BLOCK, good, crc32c(good), 2, false).unwrap();
    flip(obj, 5000);
    s.repair(obj, BLOCK, good, crc32c(good), 2, &seen).unwrap();
    assert_eq!(sound(s, obj), old);
    assert_eq!(r(s, obj).2, 2);
    // Nothing to repair: an absent object, or blocks past the end.
    let busy = s.repair(id(6, 0), 0, good, crc32c(good), 1, &seen);
    assert!(matches!(busy, Err(ObjectError::Busy)), "{busy:?}");
    assert_eq!(
        s.size(id(6, 0)).unwrap(),
        None,
        "a refused repair creates nothing"
    );
    let busy = s.repair(obj, 2 * BLOCK, good, crc32c(good), 2, &seen);
    assert!(matches!(busy, Err(ObjectError::Busy)), "{busy:?}");
    let refused = s.repair(obj, BLOCK, good, crc32c(good) ^ 1, 2, &seen);
    assert!(
        matches!(refused, Err(ObjectError::Corrupt(_))),
        "{refused:?}"
    );
}

fn older_versions_are_refused_and_versions_only_rise(s: &dyn ObjectStore, _: Flip) {
    let o = id(5, 0);
    s.write(o, 0, b"a", crc32c(b"a"), 4, false).unwrap();
    let old = s.write(o, 0, b"b", crc32c(b"b"), 2, false);
    assert!(
        matches!(
            old,
            Err(ObjectError::OldVersion {
                object_version: 4,
                version: 2,
                ..
            })
        ),
        "{old:?}"
    );
    assert_eq!(sound(s, o), b"a", "a refused write changes nothing");
    assert_eq!(r(s, o).2, 4);
    s.truncate(o, 10, 6).unwrap();
    assert!(matches!(
        s.truncate(o, 1, 3),
        Err(ObjectError::OldVersion { .. })
    ));
    assert_eq!(
        s.size(o).unwrap(),
        Some(10),
        "a refused truncate changes nothing"
    );
    assert_eq!(r(s, o).2, 6);
    w(s, id(6, 0), 0, b"another");
    let page = s.list(None, 10).unwrap();
    assert_eq!(page.objects[0].id, o);
    assert_eq!(page.objects[0].version, 6);
    assert_eq!(page.objects[0].size, 10);
    let seen = block_crcs(&r(s, o).0);
    let same = r(s, o).0;
    assert!(matches!(
        s.repair(o, 0, &same, crc32c(&same), 5, &seen),
        Err(ObjectError::OldVersion { .. })
    ));
    s.repair(o, 0, &same, crc32c(&same), 9, &seen).unwrap();
    assert_eq!(r(s, o).2, 9, "a repair raises the version too");
    // Raised without a change: the bytes stay, older writers are refused.
    s.raise_version(o, 12).unwrap();
    s.raise_version(o, 10).unwrap();
    assert_eq!(r(s, o).2, 12, "never lowered");
    assert!(s.write(o, 0, b"z", crc32c(b"z"), 11, false).is_err());
    s.write(o, 0, b"z", crc32c(b"z"), 12, false).unwrap();
    s.raise_version(id(98, 0), 3).unwrap();
    assert_eq!(
        s.size(id(98, 0)).unwrap(),
        None,
        "an absent object stays absent"
    );
    assert_eq!(s.read(id(99, 0), 0, 4096).unwrap().version, 0);
}

fn deletes_and_syncs(s: &dyn ObjectStore, _: Flip) {
    let o = id(7, 1);
    s.write(o, 0, b"old data", crc32c(b"old data"), 4, true)
        .unwrap();
    s.sync(o).unwrap();
    assert_eq!(sound(s, o), b"old data");
    s.delete(o).unwrap();
    assert_eq!(s.size(o).unwrap(), None);
    let gone = s.read(o, 0, B as u32).unwrap();
    assert!(gone.data.is_empty());
    assert_eq!(gone.version, 0);
    assert!(s.list(None, 10).unwrap().objects.is_empty());
    assert!(s.scrub(o).unwrap().is_empty());
    assert_eq!(s.checksums(o, 0, 1).unwrap(), (0, vec![]));
    // Deleting or syncing an absent object succeeds.
    s.delete(o).unwrap();
    s.sync(o).unwrap();
    s.sync(id(8, 0)).unwrap();
    // A new object of the same id starts afresh.
    w(s, o, 0, b"new");
    assert_eq!(sound(s, o), b"new");
    assert_eq!(r(s, o).2, 1);
}

fn list_pages_in_id_order(s: &dyn ObjectStore, _: Flip) {
    let mut ids = Vec::new();
    for ino in [1u64, 2, 255, 256, 257, 0x1_0000_0001, 513, u64::MAX] {
        for stripe in [0u32, 2, 10] {
            let o = id(ino, stripe);
            w(s, o, 0, &vec![1u8; (ino % 7) as usize + stripe as usize]);
            ids.push(o);
        }
    }
    ids.sort();
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
    // A page that ends exactly at the last object says so.
    let exact = s.list(Some(ids[ids.len() - 4]), 3).unwrap();
    assert_eq!(exact.objects.len(), 3);
    assert!(exact.done);
    // Deleted objects are not listed.
    s.delete(ids[1]).unwrap();
    let page = s.list(Some(ids[0]), 1).unwrap();
    assert_eq!(page.objects[0].id, ids[2]);
    assert!(matches!(s.list(None, 0), Err(ObjectError::Invalid(_))));
}

fn requests_out_of_bounds_are_refused(s: &dyn ObjectStore, _: Flip) {
    let invalid = |r: Result<(), ObjectError>| {
        assert!(matches!(r, Err(ObjectError::Invalid(_))), "{r:?}");
    };
    for bad in [
        id(0, 0),
        ObjectId {
            ino: 1,
            stripe: MAX_STRIPE_COUNT,
        },
    ] {
        invalid(s.read(bad, 0, B as u32).map(drop));
        invalid(s.write(bad, 0, b"x", crc32c(b"x"), 1, false));
        invalid(s.repair(bad, 0, b"x", crc32c(b"x"), 1, &[crc32c(b"x")]));
        invalid(s.checksums(bad, 0, 1).map(drop));
        invalid(s.truncate(bad, 1, 1));
        invalid(s.sync(bad));
        invalid(s.delete(bad));
        invalid(s.size(bad).map(drop));
        invalid(s.scrub(bad).map(drop));
    }
    let o = id(1, 0);
    let too_big = s.write(o, MAX_OBJECT_BYTES - 1, b"xy", crc32c(b"xy"), 1, false);
    assert!(matches!(too_big, Err(ObjectError::TooBig)), "{too_big:?}");
    let too_big = s.truncate(o, MAX_OBJECT_BYTES + 1, 1);
    assert!(matches!(too_big, Err(ObjectError::TooBig)), "{too_big:?}");
    invalid(s.write(o, u64::MAX, b"x", crc32c(b"x"), 1, false));
    assert_eq!(s.size(o).unwrap(), None, "refused calls create nothing");
}

fn capacity_is_plausible(s: &dyn ObjectStore, _: Flip) {
    let c = s.capacity().unwrap();
    assert!(c.total_bytes > 0);
    assert!(c.avail_bytes <= c.free_bytes && c.free_bytes <= c.total_bytes);
}

fn concurrent_partial_writes_lose_no_crc(s: &dyn ObjectStore, _: Flip) {
    let o = id(8, 0);
    w(s, o, 0, &vec![0u8; 2 * B]);
    std::thread::scope(|scope| {
        for t in 0..4u8 {
            scope.spawn(move || {
                for i in 0..200u64 {
                    // Every thread writes its own bytes of the same two blocks.
                    let at = (i * 4 + u64::from(t)) * 9 % (2 * BLOCK);
                    let byte = [t.wrapping_add(i as u8) | 1];
                    s.write(o, at, &byte, crc32c(&byte), 1, false).unwrap();
                }
            });
        }
    });
    sound(s, o);
}

/// Random writes and truncates against a model in memory.
fn random_operations_match_a_model(s: &dyn ObjectStore, _: Flip) {
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
            w(s, o, at as u64, &data);
            if model.len() < at + len {
                model.resize(at + len, 0);
            }
            model[at..at + len].copy_from_slice(&data);
        }
        let (bytes, crcs, _) = r(s, o);
        assert_eq!(bytes, model, "step {step}");
        assert_eq!(crcs, block_crcs(&bytes), "step {step}");
    }
    assert!(s.scrub(o).unwrap().is_empty());
}

fn seek_finds_data_and_holes(s: &dyn ObjectStore, _: Flip) {
    const FAR: u64 = 1 << 20;
    const END: u64 = 4 << 20;
    let o = id(60, 0);
    assert_eq!(s.seek(o, 0, true).unwrap(), None, "absent object");
    w(s, o, 0, &pattern(B, 1));
    w(s, o, FAR, &pattern(B, 2));
    s.truncate(o, END, 1).unwrap();
    assert_eq!(s.seek(o, 0, true).unwrap(), Some(0));
    assert_eq!(s.seek(o, 100, true).unwrap(), Some(100));
    assert_eq!(s.seek(o, 0, false).unwrap(), Some(BLOCK));
    assert_eq!(s.seek(o, BLOCK, true).unwrap(), Some(FAR));
    assert_eq!(s.seek(o, FAR, false).unwrap(), Some(FAR + BLOCK));
    assert_eq!(s.seek(o, FAR + BLOCK, true).unwrap(), None, "no data after");
    assert_eq!(s.seek(o, FAR + BLOCK, false).unwrap(), Some(FAR + BLOCK));
    assert_eq!(s.seek(o, END, false).unwrap(), None, "at the end");
    assert_eq!(s.seek(o, END, true).unwrap(), None, "at the end");
    // A dense object's only hole is its end.
    let d = id(61, 0);
    w(s, d, 0, &pattern(3 * B, 3));
    assert_eq!(s.seek(d, 10, false).unwrap(), Some(3 * BLOCK));
}

fn allocation_counts_blocks_holding_bytes(s: &dyn ObjectStore, _: Flip) {
    let o = id(62, 0);
    assert_eq!(s.allocated(o).unwrap(), 0, "absent object");
    w(s, o, 0, &pattern(B, 1));
    w(s, o, 512 << 20, &pattern(B, 2));
    s.truncate(o, 1 << 30, 1).unwrap();
    let sparse = s.allocated(o).unwrap();
    // Two blocks, give or take the disk's own metadata; nowhere near the length.
    assert!((2 * BLOCK..=1 << 20).contains(&sparse), "{sparse}");
    s.truncate(o, BLOCK, 1).unwrap();
    assert!(
        s.allocated(o).unwrap() < sparse,
        "a cut frees the far block"
    );
    s.delete(o).unwrap();
    assert_eq!(s.allocated(o).unwrap(), 0, "deleted");
}
