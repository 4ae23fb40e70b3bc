//! Which bytes of a file a migration still has to copy: the file's blocks
//! ([`CHECKSUM_BLOCK`] each) whose stored checksums differ between the old layout's object
//! and a fresh copy of the new layout, as runs of file offsets.
//!
//! A block past an object's end reads as zeros, as does a hole (whose checksum the OSS
//! answers as that of zeros): those compare equal. A short last block of an object compares
//! equal only to a short last block of the same length and checksum (otherwise it is copied
//! again), so a file whose length is not a multiple of the block settles too.

use rustre_proto::checksum::{self, CHECKSUM_BLOCK};
use rustre_proto::msg::Layout;

const BLOCK: u64 = CHECKSUM_BLOCK as u64;

/// The stored checksums of one object and its length.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct ObjectSums {
    pub size: u64,
    pub crcs: Vec<u32>,
}

/// What a file block holds in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Zeros: past the object's end, or a hole / zeros by checksum.
    Zeros,
    Data(u32),
    /// The object's short last block: its length and stored checksum (of those bytes), if
    /// the OSS answered one.
    Partial(u64, Option<u32>),
}

impl ObjectSums {
    fn block(&self, index: u64, zero_crc: u32) -> Block {
        let start = index * BLOCK;
        if start >= self.size {
            return Block::Zeros;
        }
        let crc = self.crcs.get(index as usize).copied();
        if start + BLOCK > self.size {
            return Block::Partial(self.size - start, crc);
        }
        match crc {
            Some(c) if c == zero_crc => Block::Zeros,
            Some(c) => Block::Data(c),
            None => Block::Partial(BLOCK, None),
        }
    }
}

/// The object (stripe) and object block of file block `k` in `layout`.
fn locate(layout: &Layout, k: u64) -> (u32, u64) {
    let size = u64::from(layout.stripe_size);
    let count = u64::from(layout.stripe_count().max(1));
    let off = k * BLOCK;
    let unit = off / size;
    let object_offset = (unit / count) * size + off % size;
    ((unit % count) as u32, object_offset / BLOCK)
}

/// The file ranges `(offset, len)` below `extent` where some fresh copy differs from the
/// old layout, each at most `max_run` bytes. `old` has the sums of one up-to-date copy of
/// each stripe of `from`; `fresh` those of each fresh slot of `to` as `(stripe, sums)`.
pub(super) fn differing_runs(
    from: &Layout,
    old: &[ObjectSums],
    to: &Layout,
    fresh: &[(u32, ObjectSums)],
    extent: u64,
    max_run: u64,
) -> Vec<(u64, u64)> {
    let zero_crc = checksum::crc32c(&[0u8; CHECKSUM_BLOCK as usize]);
    let same = |a: Block, b: Block| match (a, b) {
        (Block::Zeros, Block::Zeros) => true,
        (Block::Data(x), Block::Data(y)) => x == y,
        // Short last blocks of the same length and checksum: the same bytes.
        (Block::Partial(l, Some(x)), Block::Partial(m, Some(y))) => l == m && x == y,
        _ => false,
    };
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for k in 0..extent.div_ceil(BLOCK) {
        let (os, ob) = locate(from, k);
        let was = old
            .get(os as usize)
            .map_or(Block::Zeros, |s| s.block(ob, zero_crc));
        let (ns, nb) = locate(to, k);
        let differs = fresh
            .iter()
            .filter(|(stripe, _)| *stripe == ns)
            .any(|(_, s)| !same(was, s.block(nb, zero_crc)));
        if !differs {
            continue;
        }
        let off = k * BLOCK;
        match runs.last_mut() {
            Some((start, len)) if *start + *len == off && *len + BLOCK <= max_run => *len += BLOCK,
            _ => runs.push((off, BLOCK)),
        }
    }
    if let Some((start, len)) = runs.last_mut() {
        *len = (*len).min(extent - *start);
    }
    runs
}

/// How far the file's data reaches in `layout` when stripe `i`'s longest up-to-date object
/// is `sizes[i]` bytes: the end of the last byte any object holds.
pub(super) fn data_extent(layout: &Layout, sizes: &[u64]) -> u64 {
    let size = u64::from(layout.stripe_size);
    let count = u64::from(layout.stripe_count().max(1));
    sizes
        .iter()
        .enumerate()
        .filter(|(_, len)| **len > 0)
        .map(|(stripe, len)| {
            let last = len - 1;
            (last / size) * size * count + stripe as u64 * size + last % size + 1
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(bytes: &[u8]) -> ObjectSums {
        ObjectSums {
            size: bytes.len() as u64,
            crcs: bytes.chunks(BLOCK as usize).map(checksum::crc32c).collect(),
        }
    }

    #[test]
    fn a_copy_equal_block_for_block_has_nothing_to_copy() {
        let data: Vec<u8> = (0..8 * BLOCK).map(|i| (i % 251) as u8).collect();
        let from = Layout::striped(4096, vec![0]);
        let to = Layout::striped(4096, vec![1, 2]);
        // Stripe 0 of `to` holds the even blocks, stripe 1 the odd ones.
        let even: Vec<u8> = data.chunks(4096).step_by(2).flatten().copied().collect();
        let odd: Vec<u8> = data
            .chunks(4096)
            .skip(1)
            .step_by(2)
            .flatten()
            .copied()
            .collect();
        let fresh = vec![(0, sums(&even)), (1, sums(&odd))];
        let runs = differing_runs(
            &from,
            &[sums(&data)],
            &to,
            &fresh,
            data.len() as u64,
            1 << 20,
        );
        assert!(runs.is_empty(), "{runs:?}");
    }

    #[test]
    fn an_empty_copy_needs_every_data_block_and_no_hole() {
        let mut data = vec![7u8; 6 * BLOCK as usize];
        data[2 * BLOCK as usize..3 * BLOCK as usize].fill(0);
        let from = Layout::striped(4096, vec![0]);
        let to = Layout::striped(8192, vec![1]);
        let fresh = vec![(0, ObjectSums::default())];
        let runs = differing_runs(
            &from,
            &[sums(&data)],
            &to,
            &fresh,
            data.len() as u64,
            1 << 20,
        );
        assert_eq!(runs, vec![(0, 2 * BLOCK), (3 * BLOCK, 3 * BLOCK)]);
    }

    #[test]
    fn appended_bytes_and_a_short_last_block_are_copied_in_bounded_runs() {
        let old: Vec<u8> = vec![1u8; 10 * BLOCK as usize + 100];
        let copied = &old[..4 * BLOCK as usize];
        let from = Layout::striped(4096, vec![0]);
        let to = Layout::striped(4096, vec![1]);
        let fresh = vec![(0, sums(copied))];
        let runs = differing_runs(
            &from,
            &[sums(&old)],
            &to,
            &fresh,
            old.len() as u64,
            4 * BLOCK,
        );
        assert_eq!(
            runs,
            vec![(4 * BLOCK, 4 * BLOCK), (8 * BLOCK, 2 * BLOCK + 100)]
        );
    }

    #[test]
    fn an_equal_short_last_block_is_not_copied_again() {
        // A file of 1 MiB + 1 byte, copied whole: nothing left to copy (the freeze's passes
        // must reach zero for the migration to commit).
        let data: Vec<u8> = (0..(1 << 20) + 1).map(|i| (i % 253) as u8).collect();
        let from = Layout::striped(1 << 20, vec![0]);
        let to = Layout::striped(1 << 20, vec![1]);
        let fresh = vec![(0, sums(&data))];
        let runs = differing_runs(
            &from,
            &[sums(&data)],
            &to,
            &fresh,
            data.len() as u64,
            4 << 20,
        );
        assert_eq!(runs, vec![]);
        // The same length with other bytes is copied.
        let mut other = data.clone();
        *other.last_mut().unwrap() ^= 1;
        let fresh = vec![(0, sums(&other))];
        let runs = differing_runs(
            &from,
            &[sums(&data)],
            &to,
            &fresh,
            data.len() as u64,
            4 << 20,
        );
        assert_eq!(runs, vec![(1 << 20, 1)]);
    }

    #[test]
    fn the_extent_is_the_end_of_the_furthest_byte() {
        let l = Layout::striped(4096, vec![0, 1, 2]);
        assert_eq!(data_extent(&l, &[0, 0, 0]), 0);
        assert_eq!(data_extent(&l, &[4096, 10, 0]), 4096 + 10);
        assert_eq!(data_extent(&l, &[8192, 4096, 4096]), 3 * 4096 + 4096);
    }
}
