//! Layout math (RAID-0 over objects, as Lustre): which object and object offset hold each
//! byte of a file, and the checksum-block alignment of object reads.
//!
//! Byte `off` lives in stripe `(off / stripe_size) % stripe_count`, at object offset
//! `(off / (stripe_size * stripe_count)) * stripe_size + off % stripe_size`. The stripe count
//! is [`Layout::stripe_count`], not the length of `Layout::osts` (which lists every copy of
//! every stripe); which copy (OST) an extent goes to is decided by the data path.

use rustre_proto::checksum::CHECKSUM_BLOCK;
use rustre_proto::msg::Layout;

pub(super) use rustre_proto::msg::extent::{extents, Extent};

/// The length object `stripe` has when the file is `file_size` bytes long
/// ([`Layout::object_size`], which the MDS uses too when it cuts objects).
pub(super) fn object_size(layout: &Layout, stripe: u32, file_size: u64) -> u64 {
    layout.object_size(stripe, file_size)
}

/// The first offset of object `stripe` whose byte lies at or after file offset `offset`.
pub(super) fn object_from(layout: &Layout, stripe: u32, offset: u64) -> u64 {
    let size = layout.stripe_size.max(1) as u64;
    let count = layout.stripe_count().max(1) as u64;
    let unit = offset / size;
    let (row, col) = (unit / count, unit % count);
    match col.cmp(&u64::from(stripe)) {
        std::cmp::Ordering::Equal => row * size + offset % size,
        std::cmp::Ordering::Less => row * size,
        std::cmp::Ordering::Greater => (row + 1) * size,
    }
}

/// The file offset of byte `object_offset` of object `stripe` (the inverse of
/// [`extents`]' mapping).
pub(super) fn file_offset(layout: &Layout, stripe: u32, object_offset: u64) -> u64 {
    let size = layout.stripe_size.max(1) as u64;
    let count = layout.stripe_count().max(1) as u64;
    let (row, within) = (object_offset / size, object_offset % size);
    (row * count + u64::from(stripe)) * size + within
}

/// Splits extents longer than `max` bytes into consecutive pieces of at most `max`.
pub(super) fn split_extents(ex: Vec<Extent>, max: usize) -> Vec<Extent> {
    let max = max.max(1);
    let mut out = Vec::with_capacity(ex.len());
    for e in ex {
        let mut done = 0;
        while done < e.len {
            let n = (e.len - done).min(max);
            out.push(Extent {
                object_offset: e.object_offset + done as u64,
                buf_offset: e.buf_offset + done,
                len: n,
                ..e
            });
            done += n;
        }
    }
    out
}

/// The smallest range of whole checksum blocks (aligned to object offset 0) covering
/// `[offset, offset + len)`, as (start, length).
pub(super) fn block_align(offset: u64, len: u64) -> (u64, u64) {
    let block = CHECKSUM_BLOCK as u64;
    let start = offset - offset % block;
    let end = (offset + len).div_ceil(block) * block;
    (start, end - start)
}

/// One object read: a block-aligned range of object `stripe` (what the OSS is asked for)
/// and the part of it the caller wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadSpan {
    pub stripe: u32,
    /// Start in the object, a multiple of [`CHECKSUM_BLOCK`].
    pub object_offset: u64,
    /// Bytes asked for, a multiple of [`CHECKSUM_BLOCK`].
    pub len: usize,
    /// Where the wanted bytes start, from `object_offset`.
    pub skip: usize,
    /// Wanted bytes.
    pub want: usize,
    /// Where the wanted bytes go, from the start of the caller's range.
    pub buf_offset: usize,
}

/// Turns extents into block-aligned object reads of at most `max` bytes each (`max` is
/// rounded down to whole blocks, at least one).
pub(super) fn read_spans(ex: &[Extent], max: usize) -> Vec<ReadSpan> {
    let block = CHECKSUM_BLOCK as u64;
    let max = ((max as u64 / block).max(1) * block) as usize;
    let mut out = Vec::with_capacity(ex.len());
    for e in ex.iter().filter(|e| e.len > 0) {
        let (want_start, want_end) = (e.object_offset, e.object_offset + e.len as u64);
        let (start, len) = block_align(want_start, e.len as u64);
        let mut chunk = start;
        while chunk < start + len {
            let chunk_end = (chunk + max as u64).min(start + len);
            let from = want_start.max(chunk);
            let to = want_end.min(chunk_end);
            out.push(ReadSpan {
                stripe: e.stripe,
                object_offset: chunk,
                len: (chunk_end - chunk) as usize,
                skip: (from - chunk) as usize,
                want: (to - from) as usize,
                buf_offset: e.buf_offset + (from - want_start) as usize,
            });
            chunk = chunk_end;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(stripe_size: u32, osts: Vec<u32>) -> Layout {
        Layout::striped(stripe_size, osts)
    }

    #[test]
    fn object_and_file_offsets_map_both_ways() {
        let l = layout(16, vec![7, 3, 9]);
        for off in 0..200u64 {
            let e = extents(&l, off, 1)[0];
            assert_eq!(file_offset(&l, e.stripe, e.object_offset), off);
            for stripe in 0..3 {
                let from = object_from(&l, stripe, off);
                // The first byte of the stripe at or after `off`, by brute force.
                let want = (off..)
                    .find(|&f| extents(&l, f, 1)[0].stripe == stripe)
                    .unwrap();
                assert_eq!(
                    file_offset(&l, stripe, from),
                    want,
                    "off {off} stripe {stripe}"
                );
            }
        }
    }

    #[test]
    fn extents_follow_the_formula_byte_by_byte() {
        let l = layout(4096, vec![7, 3, 9]);
        for (offset, len) in [
            (0u64, 1usize),
            (4095, 2),
            (1000, 50_000),
            (12288 * 5 + 17, 9000),
        ] {
            let ex = extents(&l, offset, len);
            assert_eq!(ex.iter().map(|e| e.len).sum::<usize>(), len);
            for e in &ex {
                for i in [0, e.len - 1] {
                    let off = offset + (e.buf_offset + i) as u64;
                    let stripe = (off / 4096) % 3;
                    let obj = (off / (4096 * 3)) * 4096 + off % 4096;
                    assert_eq!(e.stripe as u64, stripe);
                    assert_eq!(e.object_offset + i as u64, obj);
                }
            }
        }
    }

    #[test]
    fn object_sizes_sum_to_file_size() {
        let l = layout(4096, vec![0, 1, 2, 3]);
        for file_size in [0u64, 1, 4096, 4097, 16384, 16385, 100_000, 1 << 20] {
            let sum: u64 = (0..4).map(|s| object_size(&l, s, file_size)).sum();
            assert_eq!(sum, file_size, "file size {file_size}");
        }
        assert_eq!(object_size(&l, 1, 4097), 1);
        assert_eq!(object_size(&l, 0, 16384 + 10), 4096 + 10);
    }

    /// Copies do not add stripes: a 3-stripe layout with 2 copies (6 OSTs) maps bytes
    /// exactly as the unreplicated 3-stripe layout does.
    #[test]
    fn replicas_do_not_change_the_stripe_math() {
        let plain = layout(4096, vec![7, 3, 9]);
        let replicated = Layout {
            stripe_size: 4096,
            osts: vec![7, 3, 9, 1, 2, 4],
            replicas: 2,
            stale: vec![4],
            version: 3,
            written: Default::default(),
            allocated: Vec::new(),
        };
        assert_eq!(replicated.stripe_count(), 3);
        for (offset, len) in [(0u64, 100_000usize), (4095, 2), (12288 * 5 + 17, 9000)] {
            assert_eq!(
                extents(&replicated, offset, len),
                extents(&plain, offset, len)
            );
        }
        for file_size in [0u64, 4097, 16385, 1 << 20] {
            let sum: u64 = (0..3).map(|s| object_size(&replicated, s, file_size)).sum();
            assert_eq!(sum, file_size);
            for s in 0..3 {
                assert_eq!(
                    object_size(&replicated, s, file_size),
                    object_size(&plain, s, file_size)
                );
            }
        }
        // Byte 4096 * 4 is in stripe 1, second row.
        let e = extents(&replicated, 4096 * 4, 1)[0];
        assert_eq!((e.stripe, e.object_offset), (1, 4096));
    }

    #[test]
    fn block_alignment_covers_the_range() {
        assert_eq!(block_align(0, 0), (0, 0));
        assert_eq!(block_align(0, 1), (0, 4096));
        assert_eq!(block_align(4096, 4096), (4096, 4096));
        assert_eq!(block_align(4095, 2), (0, 8192));
        assert_eq!(block_align(10_000, 100), (8192, 4096));
        assert_eq!(block_align(8191, 4098), (4096, 12288));
    }

    #[test]
    fn splitting_keeps_every_byte_in_order() {
        let ex = vec![Extent {
            stripe: 2,
            object_offset: 100,
            buf_offset: 7,
            len: 10_000,
        }];
        let parts = split_extents(ex, 4096);
        assert_eq!(
            parts.iter().map(|e| e.len).collect::<Vec<_>>(),
            [4096, 4096, 1808]
        );
        assert_eq!(parts[1].object_offset, 4196);
        assert_eq!(parts[2].buf_offset, 7 + 8192);
        assert!(parts.iter().all(|e| e.stripe == 2));
    }

    /// Every wanted byte is covered by exactly one span, at the right place, and every span
    /// asks for whole blocks no longer than the limit.
    #[test]
    fn read_spans_are_aligned_and_cover_the_range() {
        let l = Layout {
            stripe_size: 8192,
            osts: vec![0, 1, 2, 3],
            replicas: 2,
            stale: vec![],
            version: 0,
            written: Default::default(),
            allocated: Vec::new(),
        };
        for (offset, len, max) in [
            (0u64, 1usize, 1 << 20),
            (1, 4095, 4096),
            (4095, 2, 4096),
            (5000, 70_000, 8192),
            (5000, 70_000, 5000),
            (16384 * 3 + 4097, 20_000, 1 << 20),
        ] {
            let spans = read_spans(&extents(&l, offset, len), max);
            let mut covered = vec![0u8; len];
            for s in &spans {
                assert_eq!(s.object_offset % 4096, 0);
                assert_eq!(s.len % 4096, 0);
                assert!(s.len > 0 && s.len <= max.max(4096));
                assert!(s.skip + s.want <= s.len);
                for i in 0..s.want {
                    covered[s.buf_offset + i] += 1;
                    // The byte at this object offset is the file byte at this buffer offset.
                    let off = offset + (s.buf_offset + i) as u64;
                    let e = extents(&l, off, 1)[0];
                    assert_eq!(e.stripe, s.stripe);
                    assert_eq!(e.object_offset, s.object_offset + (s.skip + i) as u64);
                }
            }
            assert!(covered.iter().all(|c| *c == 1), "{offset} {len} {max}");
        }
    }
}
