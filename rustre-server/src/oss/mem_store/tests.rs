//! Tests of what only [`MemStore`] does: a crash keeps exactly what was made durable, and
//! the space it reports follows the blocks it holds. The contract it shares with
//! `FileStore` is tested by `oss::conformance`.

use rustre_proto::checksum::{block_crcs, crc32c};

use super::*;
use crate::oss::conformance::{id, pattern, r, sound, w, B};

/// A store of 64 blocks.
fn small() -> MemStore {
    MemStore::new(64 * BLOCK)
}

#[test]
fn an_unsynced_write_is_gone_after_a_crash() {
    let s = small();
    let o = id(1, 0);
    w(&s, o, 0, &pattern(3 * B, 1));
    assert_eq!(s.size(o).unwrap(), Some(3 * BLOCK));
    s.crash();
    assert_eq!(s.size(o).unwrap(), None, "never synced: never created");
    let read = s.read(o, 0, B as u32).unwrap();
    assert!(read.data.is_empty());
    assert_eq!(read.version, 0);
    assert!(s.list(None, 10).unwrap().objects.is_empty());
}

#[test]
fn a_synced_write_survives_and_later_ones_do_not() {
    let s = small();
    let o = id(1, 0);
    let first = pattern(2 * B + 100, 1);
    s.write(o, 0, &first, crc32c(&first), 3, false).unwrap();
    s.sync(o).unwrap();
    // Unsynced after the sync: an overwrite, growth, a new version.
    let later = pattern(B, 2);
    s.write(o, 100, &later, crc32c(&later), 7, false).unwrap();
    s.write(o, 10 * BLOCK, b"far", crc32c(b"far"), 7, false)
        .unwrap();
    assert_eq!(r(&s, o).2, 7);
    s.crash();
    assert_eq!(sound(&s, o), first);
    assert_eq!(r(&s, o).2, 3, "the version goes back with the bytes");
}

#[test]
fn a_write_with_sync_survives_with_what_came_before_it() {
    let s = small();
    let (a, b) = (id(1, 0), id(2, 0));
    w(&s, a, 0, b"unsynced first");
    w(&s, b, 0, b"another object");
    let data = pattern(B + 7, 3);
    s.write(a, B as u64, &data, crc32c(&data), 2, true).unwrap();
    s.crash();
    // The sync covers the whole object (as fdatasync does), not other objects.
    let mut model = b"unsynced first".to_vec();
    model.resize(B, 0);
    model.extend_from_slice(&data);
    assert_eq!(sound(&s, a), model);
    assert_eq!(r(&s, a).2, 2);
    assert_eq!(s.size(b).unwrap(), None);
}

#[test]
fn an_unsynced_truncate_is_undone() {
    let s = small();
    let o = id(1, 0);
    let data = pattern(3 * B, 4);
    w(&s, o, 0, &data);
    s.sync(o).unwrap();
    s.truncate(o, 100, 5).unwrap();
    assert_eq!(sound(&s, o), &data[..100]);
    s.crash();
    assert_eq!(sound(&s, o), data);
    assert_eq!(r(&s, o).2, 1);
    // Synced, it stays; growing back shows zeros, not the old bytes.
    s.truncate(o, 100, 5).unwrap();
    s.sync(o).unwrap();
    s.crash();
    s.truncate(o, 2 * BLOCK, 5).unwrap();
    let mut model = data[..100].to_vec();
    model.resize(2 * B, 0);
    assert_eq!(sound(&s, o), model);
}

#[test]
fn deletes_and_repairs_last_only_once_synced() {
    let s = small();
    let o = id(1, 0);
    let data = vec![1u8; 2 * B];
    s.write(o, 0, &data, crc32c(&data), 1, true).unwrap();
    s.delete(o).unwrap();
    s.crash();
    assert_eq!(sound(&s, o), data, "an unsynced delete is undone");
    s.delete(o).unwrap();
    s.sync(o).unwrap();
    s.crash();
    assert_eq!(s.size(o).unwrap(), None, "a synced delete is not");

    // A repair is not synced either; the rotten byte, like a disk's, outlives the crash.
    s.write(o, 0, &data, crc32c(&data), 1, true).unwrap();
    s.corrupt(o, 5000);
    let seen = block_crcs(&r(&s, o).0[B..]);
    let good = &data[B..];
    s.repair(o, BLOCK, good, crc32c(good), 1, &seen).unwrap();
    assert!(s.scrub(o).unwrap().is_empty());
    s.crash();
    assert_eq!(s.scrub(o).unwrap(), vec![1]);
    s.repair(o, BLOCK, good, crc32c(good), 1, &seen).unwrap();
    s.sync(o).unwrap();
    s.crash();
    assert_eq!(sound(&s, o), data);
}

#[test]
fn space_follows_the_blocks_held() {
    let s = small();
    let total = 64 * BLOCK;
    let free = |s: &MemStore| {
        let c = s.capacity().unwrap();
        assert_eq!(c.total_bytes, total);
        assert_eq!(c.avail_bytes, c.free_bytes);
        c.free_bytes
    };
    assert_eq!(free(&s), total);
    let o = id(1, 0);
    // Holes hold nothing; a byte holds its block.
    s.truncate(o, 1 << 40, 1).unwrap();
    assert_eq!(free(&s), total);
    w(&s, o, 5 * BLOCK + 1, b"x");
    assert_eq!(free(&s), total - BLOCK);
    // A write needing more than is free is refused whole.
    let big = vec![1u8; 64 * B];
    let full = s.write(id(2, 0), 0, &big, crc32c(&big), 1, false);
    assert!(matches!(full, Err(ObjectError::NoSpace)), "{full:?}");
    assert_eq!(
        s.size(id(2, 0)).unwrap(),
        Some(0),
        "created, as a file would be"
    );
    assert_eq!(free(&s), total - BLOCK);
    w(&s, id(2, 0), 0, &big[..63 * B]);
    assert_eq!(free(&s), 0);
    // Overwriting held blocks needs no space; truncating and deleting give it back.
    w(&s, id(2, 0), 0, &big[..B]);
    s.truncate(id(2, 0), 60 * BLOCK, 1).unwrap();
    assert_eq!(free(&s), 3 * BLOCK);
    s.delete(id(2, 0)).unwrap();
    assert_eq!(free(&s), total - BLOCK);
    // A crash gives back what only the lost changes held.
    s.sync(o).unwrap();
    w(&s, id(3, 0), 0, &big[..10 * B]);
    s.crash();
    assert_eq!(free(&s), total - BLOCK);
}

#[test]
fn a_disk_that_fills_up_refuses_new_blocks_until_it_has_room_again() {
    let s = small();
    let o = id(1, 0);
    w(&s, o, 0, &pattern(2 * B, 1));
    // Full: exactly what is held.
    s.set_capacity(2 * BLOCK);
    let c = s.capacity().unwrap();
    assert_eq!((c.total_bytes, c.free_bytes), (2 * BLOCK, 0));
    let more = pattern(B, 2);
    let grow = s.write(o, 2 * BLOCK, &more, crc32c(&more), 1, false);
    assert!(matches!(grow, Err(ObjectError::NoSpace)), "{grow:?}");
    // Held blocks can still be overwritten.
    w(&s, o, 0, &more);
    // Room again.
    s.set_capacity(64 * BLOCK);
    w(&s, o, 2 * BLOCK, &more);
    assert_eq!(s.size(o).unwrap(), Some(3 * BLOCK));
}
