//! Tests of [`FileStore`] on a temporary directory: layout, checksums through holes,
//! growth and truncation, corruption, repairs, versions, listing, the handle cache.

use std::os::unix::fs::FileExt;

use rustre_proto::checksum::{block_crcs, crc32c, first_bad_block, CHECKSUM_BLOCK};

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
    assert!(matches!(
        s.repair(obj, 4096, good, crc32c(good), 1, &seen),
        Err(ObjectError::Busy)
    ));
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
    assert!(matches!(bad, Err(ObjectError::Corrupt(_))), "{bad:?}");
    assert_eq!(s.size(o).unwrap(), None, "a refused write creates nothing");
    assert!(!s.sums_path(o).exists());
    w(&s, o, 0, &data);
    let other = pattern(B, 9);
    let bad = s.write(o, B as u64, &other, crc32c(&data), 5, false);
    assert!(matches!(bad, Err(ObjectError::Corrupt(_))), "{bad:?}");
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
    assert!(matches!(s.read(o, 1, 4096), Err(ObjectError::Invalid(_))));
    assert!(matches!(s.read(o, 0, 100), Err(ObjectError::Invalid(_))));
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
    assert!(matches!(refused, Err(ObjectError::Corrupt(_))));
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
    assert!(matches!(s.list(None, 0), Err(ObjectError::Invalid(_))));
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
