//! The pool of deleted objects' files (`recycle`): a deleted object's file is emptied and
//! kept, a new object takes it once its quarantine is over, and nothing of the old object
//! shows through (bytes, CRCs, sidecar).

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use super::recycle::{RECYCLED_DIR, RECYCLE_QUARANTINE};
use super::*;
use crate::oss::conformance::{id, pattern, sound, w, B};

/// The inode number of `o`'s file.
fn inode_of(s: &FileStore, o: ObjectId) -> u64 {
    std::fs::metadata(s.object_path(o)).unwrap().ino()
}

/// Waits until what went into the pool may be taken.
fn past_quarantine() {
    std::thread::sleep(RECYCLE_QUARANTINE + Duration::from_millis(50));
}

#[test]
fn a_deleted_objects_file_is_emptied_and_taken_by_a_new_object() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let (old, new) = (id(7, 0), id(9, 1));
    w(&s, old, 0, &pattern(3 * B, 1));
    let ino = inode_of(&s, old);
    s.delete(old).unwrap();
    assert_eq!(s.size(old).unwrap(), None);
    assert!(!s.object_path(old).exists());
    assert_eq!(s.recycled_files(), 1);
    let pooled = std::fs::read_dir(dir.path().join(RECYCLED_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect::<Vec<_>>();
    assert_eq!(pooled.len(), 1);
    let f = File::open(&pooled[0]).unwrap();
    assert_eq!(f.metadata().unwrap().len(), 0, "blocks freed");
    assert!(matches!(crcs::stored(&f).unwrap(), crcs::Stored::Missing));

    // Within its quarantine the file stays in the pool: a new object gets a new inode.
    let early = id(8, 0);
    w(&s, early, 0, b"early");
    assert_ne!(inode_of(&s, early), ino);
    assert_eq!(s.recycled_files(), 1);

    past_quarantine();
    let data = pattern(B + 100, 2);
    w(&s, new, 0, &data);
    assert_eq!(
        inode_of(&s, new),
        ino,
        "the new object took the deleted one's file"
    );
    assert_eq!(s.recycled_files(), 0);
    assert_eq!(
        sound(&s, new),
        data,
        "its bytes and CRCs, nothing of the old object"
    );
    // And again from a fresh handle, as after a restart.
    let again = FileStore::open(dir.path(), 8).unwrap();
    assert_eq!(sound(&again, new), data);
}

#[test]
fn a_sidecar_objects_file_is_taken_by_a_small_object_without_its_crcs() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let big = id(11, 0);
    // More blocks than the attribute holds: CRCs in a sidecar.
    w(&s, big, 0, &pattern(40 * B, 3));
    assert!(s.sums_path(big).exists());
    s.delete(big).unwrap();
    assert!(!s.sums_path(big).exists());
    assert_eq!(s.recycled_files(), 1);
    past_quarantine();
    let small = id(12, 0);
    w(&s, small, 0, b"small");
    assert_eq!(s.recycled_files(), 0);
    assert!(!s.sums_path(small).exists());
    assert_eq!(sound(&s, small), b"small");
    let again = FileStore::open(dir.path(), 8).unwrap();
    assert_eq!(sound(&again, small), b"small");
}

#[test]
fn a_store_opened_again_takes_its_pool_and_drops_what_does_not_belong() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = FileStore::open(dir.path(), 8).unwrap();
        for ino in 1..=3 {
            w(&s, id(ino, 0), 0, b"gone soon");
            s.delete(id(ino, 0)).unwrap();
        }
        assert_eq!(s.recycled_files(), 3);
    }
    let pool = dir.path().join(RECYCLED_DIR);
    std::fs::write(pool.join("999"), b"not empty").unwrap();
    std::fs::write(pool.join("stray"), b"").unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    assert_eq!(s.recycled_files(), 3);
    assert!(!pool.join("999").exists());
    assert!(!pool.join("stray").exists());
    // Ready at once: a store just started takes them without waiting.
    w(&s, id(5, 0), 0, b"new");
    assert_eq!(s.recycled_files(), 2);
    assert_eq!(sound(&s, id(5, 0)), b"new");
    // Pool files are not objects.
    let listed = s.list(None, 100).unwrap();
    assert_eq!(listed.objects.len(), 1);
}

#[test]
fn a_kept_file_whose_attribute_came_back_is_taken_by_a_large_object_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let s = FileStore::open(dir.path(), 8).unwrap();
    let old = id(21, 0);
    w(&s, old, 0, b"small, CRCs in the attribute");
    let header = match crcs::stored(&File::open(s.object_path(old)).unwrap()).unwrap() {
        crcs::Stored::Value(v) => v,
        _ => panic!("no attribute"),
    };
    s.delete(old).unwrap();
    // As a power loss could leave it: the removal of the attribute undone.
    let kept = std::fs::read_dir(dir.path().join(RECYCLED_DIR))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    crcs::store(&File::open(&kept).unwrap(), &header).unwrap();
    past_quarantine();
    // More blocks than the attribute holds: CRCs in a sidecar, made first.
    let big = id(22, 0);
    let data = pattern(40 * B, 5);
    w(&s, big, 0, &data);
    assert_eq!(s.recycled_files(), 0, "the kept file was taken");
    let again = FileStore::open(dir.path(), 8).unwrap();
    assert!(again.sums_path(big).exists(), "the sidecar stays");
    assert_eq!(sound(&again, big), data);
}
