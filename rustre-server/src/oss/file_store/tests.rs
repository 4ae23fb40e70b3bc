//! Tests of what only [`FileStore`] does: the on-disk layout, the handle cache, where CRCs
//! live (an attribute of small objects, a sidecar beyond), objects found without them,
//! stray files, what refused calls leave on disk, and versions read back from disk. The
//! contract it shares with `MemStore` is tested by `oss::conformance`, for both places of
//! the CRCs.

use rustre_proto::checksum::{block_crcs, crc32c};

use super::*;
use crate::oss::conformance::{flip_file, id, pattern, r, sound, w, B};

/// The stored CRC bytes of `o` (header and entries): its attribute's value, else its
/// sidecar's bytes.
fn stored_crc_bytes(s: &FileStore, o: ObjectId) -> Vec<u8> {
    let f = File::open(s.object_path(o)).unwrap();
    match crcs::stored(&f).unwrap() {
        crcs::Stored::Value(v) => v,
        _ => std::fs::read(s.sums_path(o)).unwrap(),
    }
}

/// Whether the object file of `o` has the CRC attribute.
fn has_xattr(s: &FileStore, o: ObjectId) -> bool {
    let f = File::open(s.object_path(o)).unwrap();
    matches!(crcs::stored(&f).unwrap(), crcs::Stored::Value(_))
}

/// Removes the CRC attribute of `o`'s file behind the store's back.
fn remove_xattr(s: &FileStore, o: ObjectId) {
    let path =
        std::ffi::CString::new(s.object_path(o).into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: both arguments are NUL-terminated strings that outlive the call.
    let rc = unsafe { libc::removexattr(path.as_ptr(), crcs::XATTR_NAME.as_ptr()) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
}

#[test]
fn object_paths_follow_the_documented_layout() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap().with_sidecars_only();
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

/// An object file removed by hand while its handle is cached is absent from then on, as on
/// disk, and a later write makes it anew instead of vanishing into the removed file.
#[test]
fn an_object_removed_behind_the_stores_back_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let obj = id(9, 0);
    w(&s, obj, 0, b"written");
    assert_eq!(s.cached_handles(), 1);
    std::fs::remove_file(s.object_path(obj)).unwrap();
    assert_eq!(s.size(obj).unwrap(), None);
    w(&s, obj, 0, b"again");
    std::fs::remove_file(s.object_path(obj)).unwrap();
    let read = s.read(obj, 0, 4096).unwrap();
    assert!(read.data.is_empty() && read.version == 0);
    assert_eq!(
        s.cached_handles(),
        0,
        "the removed file's handle is dropped"
    );
    w(&s, obj, 0, b"new");
    assert_eq!(std::fs::read(s.object_path(obj)).unwrap(), b"new");
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
fn an_object_without_crcs_fails_unless_zeros_and_heals_in_both_places() {
    for in_xattr in [false, true] {
        an_object_without_crcs_fails_unless_zeros_and_heals(in_xattr);
    }
}

fn an_object_without_crcs_fails_unless_zeros_and_heals(in_xattr: bool) {
    let dir = tempfile::tempdir().unwrap();
    let store = || {
        let s = FileStore::open(dir.path(), 8).unwrap();
        if in_xattr {
            s
        } else {
            s.with_sidecars_only()
        }
    };
    let o = id(4, 2);
    let mut data = pattern(3 * B, 9);
    data[B..2 * B].fill(0);
    {
        let s = store();
        w(&s, o, 0, &data);
        assert_eq!(has_xattr(&s, o), in_xattr);
        if in_xattr {
            remove_xattr(&s, o);
        } else {
            std::fs::remove_file(s.sums_path(o)).unwrap();
        }
    }
    let s = store();
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
fn refused_writes_leave_the_files_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let o = id(1, 0);
    let data = pattern(3 * B, 1);
    let bad = s.write(o, 0, &data, crc32c(&data) ^ 1, 5, true);
    assert!(matches!(bad, Err(ObjectError::Corrupt(_))), "{bad:?}");
    assert!(!s.object_path(o).exists() && !s.sums_path(o).exists());
    w(&s, o, 0, &data);
    flip_file(&s, o, (B + 17) as u64);
    let before = std::fs::read(s.object_path(o)).unwrap();
    let sums_before = stored_crc_bytes(&s, o);
    for (at, len) in [(B + 1000, 100), (B / 2, B)] {
        let patch = pattern(len, 7);
        let refused = s.write(o, at as u64, &patch, crc32c(&patch), 2, false);
        assert!(
            matches!(refused, Err(ObjectError::Corrupt(_))),
            "{refused:?}"
        );
    }
    assert_eq!(std::fs::read(s.object_path(o)).unwrap(), before);
    assert_eq!(stored_crc_bytes(&s, o), sums_before);
}

#[test]
fn the_sidecar_never_outgrows_its_object() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let o = id(2, 1);
    w(&s, o, 0, &pattern(12 * B + 5, 2));
    let sidecar = || stored_crc_bytes(&s, o).len() as u64;
    for size in [5 * B + 77, 9 * B + 1, 2 * B, 2 * B + 1, 0, 100] {
        s.truncate(o, size as u64, 1).unwrap();
        assert!(
            sidecar() <= sums::sums_len(size as u64),
            "after truncating to {size}: holes need no entries"
        );
    }
    // A huge hole costs no sidecar entries.
    s.truncate(o, 1 << 36, 1).unwrap();
    assert!(sidecar() <= sums::sums_len(100));
}

#[test]
fn stray_files_are_not_listed() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let o = id(1, 5);
    w(&s, o, 0, b"x");
    for stray in [
        "junk",
        "0000000000000001.05",
        "0000000000000001.x",
        "000000000000001.5",
    ] {
        std::fs::write(dir.path().join("objects/01").join(stray), b"").unwrap();
    }
    let page = s.list(None, 100).unwrap();
    assert!(page.done);
    assert_eq!(page.objects.iter().map(|i| i.id).collect::<Vec<_>>(), [o]);
}

#[test]
fn versions_come_back_from_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let o = id(5, 0);
    {
        let s = FileStore::open(dir.path(), 1).unwrap();
        s.write(o, 0, b"a", crc32c(b"a"), 4, true).unwrap();
        s.truncate(o, 10, 6).unwrap();
        // Out of the cache, the version comes from the sidecar.
        w(&s, id(6, 0), 0, b"evicts");
        assert_eq!(s.list(None, 1).unwrap().objects[0].version, 6);
        assert_eq!(r(&s, o).2, 6);
    }
    let s = FileStore::open(dir.path(), 8).unwrap();
    assert_eq!(r(&s, o).2, 6);
    assert_eq!(s.list(None, 1).unwrap().objects[0].version, 6);
}

/// Rounds of [`a_consistent_read_never_sees_a_write_half_done`].
const RACE_ROUNDS: usize = 3000;

/// While a writer rewrites the same blocks over and over (whole blocks and part of one),
/// every `read_consistent` returns bytes and CRCs that agree: a reader racing writers never
/// sees a mismatch that would make it call a sound copy damaged.
#[test]
fn a_consistent_read_never_sees_a_write_half_done() {
    let dir = tempfile::tempdir().unwrap();
    let s = std::sync::Arc::new(FileStore::open(dir.path(), 8).unwrap());
    let o = id(21, 0);
    w(&*s, o, 0, &pattern(4 * B, 1));
    let done = std::sync::Arc::new(AtomicBool::new(false));
    let writer = {
        let (s, done) = (s.clone(), done.clone());
        std::thread::spawn(move || {
            let mut seed = 2u8;
            while !done.load(Ordering::Relaxed) {
                w(&*s, o, 0, &pattern(2 * B, seed));
                w(&*s, o, B as u64 + 100, &pattern(1000, seed.wrapping_add(1)));
                seed = seed.wrapping_add(2);
            }
        })
    };
    for _ in 0..RACE_ROUNDS {
        let got = s.read_consistent(o, 0, 4 * B as u32).unwrap();
        let bytes = crate::oss::conformance::bytes_of(got.data);
        assert_eq!(
            got.crcs,
            block_crcs(&bytes),
            "bytes and CRCs of two moments"
        );
    }
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

/// A read answered in place (no disk wait) says what the blocking read says; objects
/// without a cached handle, ranges past the end and blocks whose entry is 0 (a hole or a
/// block of CRC 0, told apart only by reading it) go the blocking way.
#[test]
fn a_read_in_place_agrees_with_the_blocking_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let obj = id(21, 0);
    let data = pattern(3 * B + 100, 4);
    w(&s, obj, 0, &data);
    for (offset, len) in [(0, 4096), (B as u64, 2 * B as u32), (2 * B as u64, 1 << 20)] {
        let fast = s.read_in_place(obj, offset, len).expect("cached: in place");
        let slow = s.read(obj, offset, len).unwrap();
        assert_eq!(fast.crcs, slow.crcs, "at {offset}");
        assert_eq!(
            (fast.version, fast.data.len()),
            (slow.version, slow.data.len())
        );
        assert_eq!(
            crate::oss::conformance::bytes_of(fast.data),
            crate::oss::conformance::bytes_of(slow.data)
        );
    }
    assert!(
        s.read_in_place(obj, 4 * B as u64, 4096).is_none(),
        "past the end"
    );
    assert!(
        s.read_in_place(id(22, 0), 0, 4096).is_none(),
        "never opened"
    );
    // A hole in the middle: its entry is 0.
    let holey = id(23, 0);
    w(&s, holey, 2 * B as u64, b"after a hole");
    assert!(s.read_in_place(holey, 0, 3 * B as u32).is_none());
    assert!(s.read_in_place(holey, 2 * B as u64, 4096).is_some());
    // Refused ranges are refused by the blocking read, not answered here.
    assert!(s.read_in_place(obj, 1, 4096).is_none());
}

/// A write in place makes what the blocking write makes (bytes, CRCs, version, the
/// allocation it answers), and is not made when it would wait for the object's lock or is
/// larger than [`IN_PLACE_WRITE_MAX_BYTES`]; a refused one is refused as the blocking
/// write refuses it.
#[test]
fn a_write_in_place_agrees_with_the_blocking_write() {
    use crate::oss::store::IN_PLACE_WRITE_MAX_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let (fast, slow) = (id(31, 0), id(32, 0));
    let data = pattern(B + 300, 5);
    let crc = crc32c(&data);
    let allocated = s
        .write_in_place(fast, 0, &data, crc, 3)
        .expect("nobody holds the lock: in place")
        .unwrap();
    s.write(slow, 0, &data, crc, 3, false).unwrap();
    assert_eq!(allocated, s.allocated(fast).unwrap());
    assert_eq!(allocated, s.allocated(slow).unwrap());
    assert_eq!(r(&s, fast), r(&s, slow));
    assert_eq!(sound(&s, fast), data);
    assert_eq!(stored_crc_bytes(&s, fast), stored_crc_bytes(&s, slow));

    {
        let _held = s.lock_object(fast);
        assert!(
            s.write_in_place(fast, 0, b"x", crc32c(b"x"), 3).is_none(),
            "the lock is held: not in place"
        );
    }
    let big = pattern(IN_PLACE_WRITE_MAX_BYTES + 1, 6);
    assert!(s.write_in_place(fast, 0, &big, crc32c(&big), 3).is_none());

    let bad_crc = s.write_in_place(fast, 0, b"new", crc32c(b"new") ^ 1, 3);
    assert!(matches!(bad_crc, Some(Err(ObjectError::Corrupt(_)))));
    let old_version = s.write_in_place(fast, 0, b"new", crc32c(b"new"), 2);
    assert!(matches!(
        old_version,
        Some(Err(ObjectError::OldVersion { .. }))
    ));
    assert_eq!(sound(&s, fast), data, "refused writes change nothing");
}

/// A small object keeps its CRCs in an attribute of its file (one inode, no sidecar); one
/// whose first write reaches past the attribute's entries starts with a sidecar.
#[test]
fn small_objects_keep_their_crcs_in_an_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let small = id(31, 0);
    let data = pattern(3 * B + 10, 5);
    s.write(small, 0, &data, crc32c(&data), 7, true).unwrap();
    assert!(!s.sums_path(small).exists());
    let value = stored_crc_bytes(&s, small);
    assert_eq!(&value[..sums::SUMS_HEADER_BYTES as usize], &sums::header(7));
    let entries: Vec<u32> = value[sums::SUMS_HEADER_BYTES as usize..]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(entries, block_crcs(&data));
    let largest = crcs::XATTR_ENTRIES_MAX as usize * B;
    let edge = id(32, 0);
    w(&s, edge, 0, &pattern(largest, 6));
    assert!(has_xattr(&s, edge) && !s.sums_path(edge).exists());
    let big = id(33, 0);
    w(&s, big, 0, &pattern(largest + 1, 7));
    assert!(!has_xattr(&s, big) && s.sums_path(big).exists());
    for o in [small, edge, big] {
        sound(&s, o);
    }
}

/// An object that grows past what its attribute holds moves its CRCs to a sidecar once:
/// every block still checks, before and after the store is opened again, the version
/// stays, and the attribute is gone.
#[test]
fn an_object_growing_past_its_attribute_moves_its_crcs_to_a_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let o = id(40, 1);
    let mut data = pattern(2 * B + 3, 1);
    {
        let s = FileStore::open(dir.path(), 8).unwrap();
        s.write(o, 0, &data, crc32c(&data), 3, false).unwrap();
        assert!(has_xattr(&s, o));
        let far = pattern(B, 2);
        let at = crcs::XATTR_ENTRIES_MAX as usize * B + 5 * B;
        s.write(o, at as u64, &far, crc32c(&far), 4, true).unwrap();
        assert!(
            !has_xattr(&s, o),
            "the attribute goes once the sidecar holds all"
        );
        assert!(s.sums_path(o).exists());
        data.resize(at, 0);
        data.extend_from_slice(&far);
        assert_eq!(sound(&s, o), data);
        assert_eq!(r(&s, o).2, 4);
    }
    let s = FileStore::open(dir.path(), 8).unwrap();
    assert_eq!(sound(&s, o), data);
    assert_eq!(r(&s, o).2, 4);
    // Truncated back below the attribute's reach, it keeps its sidecar.
    s.truncate(o, B as u64 + 1, 5).unwrap();
    data.truncate(B + 1);
    assert_eq!(sound(&s, o), data);
    assert!(!has_xattr(&s, o));
}

/// A truncate that extends a small object far keeps its CRCs in the attribute (holes need
/// no entries); one whose cut lands in a block past the attribute's reach moves them.
#[test]
fn truncates_move_crcs_only_when_an_entry_must_be_written_far() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let o = id(41, 0);
    let data = pattern(B + 9, 3);
    w(&s, o, 0, &data);
    let far = (crcs::XATTR_ENTRIES_MAX as usize + 100) * B;
    s.truncate(o, far as u64, 1).unwrap();
    assert!(has_xattr(&s, o), "a hole costs no entries");
    let mut expect = data.clone();
    expect.resize(far, 0);
    assert_eq!(sound(&s, o), expect);
    // The new last block keeps part of a hole: its entry is written, far out.
    let cut = (crcs::XATTR_ENTRIES_MAX as usize + 3) * B + 10;
    s.truncate(o, cut as u64, 2).unwrap();
    assert!(!has_xattr(&s, o) && s.sums_path(o).exists());
    let bytes = sound(&s, o);
    assert_eq!(bytes.len(), cut);
    assert_eq!(&bytes[..B + 9], &data[..]);
    assert!(bytes[B + 9..].iter().all(|&b| b == 0));
}

/// A sidecar next to an object whose file has the attribute is what a move interrupted
/// by a crash left: the attribute counts, and the sidecar goes when the object is opened.
#[test]
fn a_sidecar_beside_the_attribute_is_a_leftover_and_goes() {
    let dir = tempfile::tempdir().unwrap();
    let o = id(42, 0);
    let data = pattern(2 * B, 8);
    {
        let s = FileStore::open(dir.path(), 8).unwrap();
        w(&s, o, 0, &data);
        let mut stale = sums::header(0).to_vec();
        stale.extend_from_slice(&[0xee; 8]);
        std::fs::write(s.sums_path(o), stale).unwrap();
    }
    let s = FileStore::open(dir.path(), 8).unwrap();
    assert_eq!(sound(&s, o), data);
    assert!(!s.sums_path(o).exists());
    assert!(has_xattr(&s, o));
}

/// An empty object file without CRCs (a crash between making it and its attribute) opens
/// quietly with an empty attribute, and what is then written checks.
#[test]
fn an_empty_object_without_crcs_takes_an_attribute() {
    let dir = tempfile::tempdir().unwrap();
    let o = id(43, 0);
    let s = FileStore::open(dir.path(), 8).unwrap();
    std::fs::write(s.object_path(o), b"").unwrap();
    assert!(!has_xattr(&s, o));
    assert_eq!(s.size(o).unwrap(), Some(0));
    w(&s, o, 0, b"after the crash");
    assert!(has_xattr(&s, o) && !s.sums_path(o).exists());
    assert_eq!(sound(&s, o), b"after the crash");
}

/// A small object's CRCs are in memory, which says nothing of its bytes: a read in place
/// takes them only from the page cache, and leaves a cold object to the blocking read.
#[test]
fn a_cold_small_object_is_not_read_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let o = id(44, 0);
    let data = pattern(2 * B + 7, 4);
    s.write(o, 0, &data, crc32c(&data), 1, true).unwrap();
    assert!(has_xattr(&s, o));
    let f = File::open(s.object_path(o)).unwrap();
    // SAFETY: a plain call on an open descriptor; synced above, so its pages are clean.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    assert!(s.read_in_place(o, 0, 4096).is_none(), "cold: not in place");
    assert_eq!(sound(&s, o), data);
    let warm = s
        .read_in_place(o, 0, 3 * B as u32)
        .expect("read once: cached");
    assert_eq!(crate::oss::conformance::bytes_of(warm.data), data);
}
