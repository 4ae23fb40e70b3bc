//! The checksum sidecar of an object: `<16 hex ino>.<stripe>.sum` next to the object file.
//! An object of up to 64 KiB keeps the same bytes in an extended attribute of its file
//! instead (`file_store/crcs.rs`); what follows holds for both, "sidecar" standing for
//! either.
//!
//! ```text
//! offset 0   magic  b"RSUM"
//! offset 4   format u32 LE (1)
//! offset 8   object version u64 LE (highest layout version the object was written with)
//! offset 16  one u32 LE CRC32C per CHECKSUM_BLOCK of the object, block 0 first
//! ```
//!
//! ## Entry 0: holes
//! An entry of 0 stands for a block of zeros: holes in the object (never written, or made by
//! growing the object) leave the sidecar sparse or cut short, so a 1 TiB hole costs nothing in
//! the sidecar either. Entries past the sidecar's end read as 0. A written block whose CRC32C
//! really is 0 (one block in 2^32) is stored as 0 too; so wherever the OSS needs the expected
//! CRC of a block whose entry is 0 ([`expected_crc`]) it looks at the block: all zeros → the
//! CRC of zeros of the block's length, else 0. A corruption is missed only if a block whose
//! real CRC is 0 turns into all zeros.
//!
//! ## Objects without a sidecar
//! The store creates the sidecar before the object file (or the attribute before anything
//! is written) and removes it after, so an object holding bytes without one only arises
//! from outside (files copied in, a sidecar removed by hand, an OST
//! written by an OSS without checksums). When the store opens such an object it creates an
//! empty sidecar (version 0) and logs it: every block then "expects zeros", so every block
//! that is not all zeros fails verification (client reads, `Scrub`, partial-block writes are
//! refused with `Corrupt`) until it is rewritten whole, truncated away or resynced. Nothing
//! unverified is ever given a fresh CRC. A sidecar with a bad header gets a fresh header
//! (version 0) and keeps its entries, which at worst make blocks fail verification.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;

use rustre_proto::checksum::{crc32c, CHECKSUM_BLOCK};

use super::error::ObjectError;

/// Suffix of sidecar file names.
pub(super) const SUMS_SUFFIX: &str = "sum";
/// Magic at the start of a sidecar.
pub const SUMS_MAGIC: [u8; 4] = *b"RSUM";
/// Format of the sidecar.
pub const SUMS_FORMAT: u32 = 1;
/// Bytes before the first entry.
pub const SUMS_HEADER_BYTES: u64 = 16;
/// Bytes of one entry.
pub(super) const SUMS_ENTRY_BYTES: u64 = 4;

/// The block size as u64.
pub(super) const BLOCK: u64 = CHECKSUM_BLOCK as u64;

static ZEROS: [u8; CHECKSUM_BLOCK as usize] = [0; CHECKSUM_BLOCK as usize];

/// The header of a sidecar for an object of `version`.
pub(super) fn header(version: u64) -> [u8; SUMS_HEADER_BYTES as usize] {
    let mut h = [0u8; SUMS_HEADER_BYTES as usize];
    h[..4].copy_from_slice(&SUMS_MAGIC);
    h[4..8].copy_from_slice(&SUMS_FORMAT.to_le_bytes());
    h[8..].copy_from_slice(&version.to_le_bytes());
    h
}

/// The version of a sidecar header, `None` if it is not one of format 1.
pub(super) fn parse_header(h: &[u8]) -> Option<u64> {
    if h.len() < SUMS_HEADER_BYTES as usize
        || h[..4] != SUMS_MAGIC
        || h[4..8] != SUMS_FORMAT.to_le_bytes()
    {
        return None;
    }
    Some(u64::from_le_bytes(h[8..16].try_into().ok()?))
}

/// Reads the header of `file`: its version, `None` if missing or invalid.
pub(super) fn read_header(file: &File) -> std::io::Result<Option<u64>> {
    let mut h = [0u8; SUMS_HEADER_BYTES as usize];
    let n = read_full_at(file, &mut h, 0)?;
    Ok(parse_header(&h[..n]))
}

/// Writes the header of `file` for `version`.
pub(super) fn write_header(file: &File, version: u64) -> std::io::Result<()> {
    file.write_all_at(&header(version), 0)
}

/// Byte offset of entry `block`.
pub(super) fn entry_offset(block: u64) -> u64 {
    SUMS_HEADER_BYTES + block * SUMS_ENTRY_BYTES
}

/// Sidecar length holding exactly the entries of an object of `size` bytes.
pub(super) fn sums_len(size: u64) -> u64 {
    entry_offset(blocks(size))
}

/// Number of blocks of an object of `size` bytes.
pub(super) fn blocks(size: u64) -> u64 {
    size.div_ceil(BLOCK)
}

/// Reads up to `buf.len()` bytes at `offset`, stopping early only at the end of the file.
/// Returns how many were read.
pub(super) fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// Stored entries `first..first + count` (0 for entries past the sidecar's end).
pub(super) fn read_entries(file: &File, first: u64, count: usize) -> std::io::Result<Vec<u32>> {
    let mut buf = vec![0u8; count * SUMS_ENTRY_BYTES as usize];
    // Bytes past the end stay 0.
    read_full_at(file, &mut buf, entry_offset(first))?;
    Ok(decode_entries(&buf))
}

/// [`read_entries`] when every byte of them is in the page cache already: `None` when
/// reading them would wait for the disk (or the sidecar ends before them, or the read
/// failed; [`read_entries`] tells those apart).
pub(super) fn read_entries_if_cached(file: &File, first: u64, count: usize) -> Option<Vec<u32>> {
    let len = count * SUMS_ENTRY_BYTES as usize;
    read_if_cached(file, entry_offset(first), len).map(|buf| decode_entries(&buf))
}

/// `len` bytes of `file` at `offset` if every one is in the page cache (`preadv2` with
/// `RWF_NOWAIT`), else `None` (also when the file ends before them or the read failed).
pub(super) fn read_if_cached(file: &File, offset: u64, len: usize) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let at = libc::off_t::try_from(offset).ok()?;
    let iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: `iov` points at `buf`, which outlives the call and holds `iov_len` bytes.
    let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, at, libc::RWF_NOWAIT) };
    (usize::try_from(n).ok()? == len).then_some(buf)
}

/// The entries stored in `buf`, in order.
pub(super) fn decode_entries(buf: &[u8]) -> Vec<u32> {
    buf.chunks_exact(SUMS_ENTRY_BYTES as usize)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The stored form of `crcs`.
pub(super) fn encode_entries(crcs: &[u32]) -> Vec<u8> {
    crcs.iter().flat_map(|c| c.to_le_bytes()).collect()
}

/// Writes entries from `first` on.
pub(super) fn write_entries(file: &File, first: u64, crcs: &[u32]) -> std::io::Result<()> {
    file.write_all_at(&encode_entries(crcs), entry_offset(first))
}

/// CRC32C of `len` (at most one block) zero bytes.
pub(super) fn zero_crc(len: usize) -> u32 {
    crc32c(&ZEROS[..len])
}

/// The CRC a block holding `data` must have, given its stored entry (see the module doc
/// for entry 0).
pub(super) fn expected_crc(stored: u32, data: &[u8]) -> u32 {
    if stored != 0 {
        stored
    } else if data.iter().all(|&b| b == 0) {
        zero_crc(data.len())
    } else {
        0
    }
}

/// True when `data` (one block) matches its stored entry.
pub(super) fn block_ok(stored: u32, data: &[u8]) -> bool {
    crc32c(data) == expected_crc(stored, data)
}

/// A stored entry for a block whose content is `data` but could not be verified before it
/// changed (its old bytes failed their CRC): a value that `data` fails, so the block stays
/// known-bad instead of being laundered into a fresh CRC.
pub(super) fn poisoned(data: &[u8]) -> u32 {
    let good = crc32c(data);
    // Never 0 (that would mean "zeros or CRC 0") and never `good`.
    match good ^ 1 {
        0 => 2,
        p => p,
    }
}

/// The entry to store for a block now holding `data` (verified or freshly written).
pub(super) fn entry_for(data: &[u8]) -> u32 {
    crc32c(data)
}

/// The sidecar entries of a write of `data` (not empty) at `offset` into an object `size`
/// bytes long: one per block the write touches, from block `offset / BLOCK` on. A block the
/// write covers only in part keeps the rest of its old bytes, which `old_block(block)`
/// returns with whether they match their stored CRC; old bytes that do not make the write
/// [`ObjectError::Corrupt`] (the OSS never launders bad bytes into a fresh CRC). `object`
/// names the object in that error.
pub(super) fn entries_of_write(
    offset: u64,
    data: &[u8],
    size: u64,
    object: &dyn std::fmt::Display,
    mut old_block: impl FnMut(u64) -> Result<(Vec<u8>, bool), ObjectError>,
) -> Result<Vec<u32>, ObjectError> {
    let end = offset + data.len() as u64;
    let new_size = size.max(end);
    let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
    let mut entries = Vec::with_capacity((last - first + 1) as usize);
    for block in first..=last {
        let bs = block * BLOCK;
        let be = (bs + BLOCK).min(new_size);
        let (ws, we) = (bs.max(offset), be.min(end));
        let new = &data[(ws - offset) as usize..(we - offset) as usize];
        if ws == bs && we == be {
            entries.push(entry_for(new));
            continue;
        }
        // Partly written: the rest of the block is its old bytes (checked) or zeros.
        let mut buf = if size > bs {
            let (old, ok) = old_block(block)?;
            if !ok {
                return Err(ObjectError::Corrupt(format!(
                    "{object}: block {block} fails its checksum; refusing a write over part of it"
                )));
            }
            old
        } else {
            Vec::new()
        };
        buf.resize((be - bs) as usize, 0);
        buf[(ws - bs) as usize..(we - bs) as usize].copy_from_slice(new);
        entries.push(entry_for(&buf));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = header(0x0102_0304_0506_0708);
        assert_eq!(&h[..4], b"RSUM");
        assert_eq!(&h[4..8], &1u32.to_le_bytes());
        assert_eq!(parse_header(&h), Some(0x0102_0304_0506_0708));
        assert_eq!(parse_header(&h[..15]), None);
        let mut bad = h;
        bad[0] = b'X';
        assert_eq!(parse_header(&bad), None);
        let mut other_format = h;
        other_format[4] = 2;
        assert_eq!(parse_header(&other_format), None);
    }

    /// Entries in the page cache come back as `read_entries` reads them; entries past the
    /// sidecar's end are not "cached" (the caller reads them the blocking way, as zeros).
    #[test]
    fn cached_entries_read_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(dir.path().join("x.sum"))
            .unwrap();
        file.write_all_at(&header(7), 0).unwrap();
        let crcs: Vec<u32> = (1..=40).map(|i| i * 0x0101_0101).collect();
        write_entries(&file, 0, &crcs).unwrap();
        let cached = read_entries_if_cached(&file, 3, 10).expect("just written: cached");
        assert_eq!(cached, crcs[3..13]);
        assert_eq!(cached, read_entries(&file, 3, 10).unwrap());
        assert_eq!(read_entries_if_cached(&file, 35, 10), None, "past the end");
        let past = read_entries(&file, 35, 10).unwrap();
        assert_eq!(&past[..5], &crcs[35..]);
        assert_eq!(&past[5..], &[0; 5]);
    }

    #[test]
    fn entry_zero_means_zeros_or_crc_zero() {
        let zeros = [0u8; 100];
        assert!(block_ok(0, &zeros));
        assert!(block_ok(0, &ZEROS));
        assert!(!block_ok(0, b"not zeros"));
        assert!(block_ok(crc32c(b"data"), b"data"));
        assert!(!block_ok(crc32c(b"data"), b"dat4"));
        // A block whose CRC is not 0 never matches entry 0 unless it is zeros.
        assert_eq!(expected_crc(0, b"x"), 0);
    }

    #[test]
    fn poisoned_entries_fail() {
        for data in [&b""[..], b"abc", &ZEROS[..]] {
            let p = poisoned(data);
            assert_ne!(p, 0);
            assert!(!block_ok(p, data));
        }
    }

    #[test]
    fn entries_past_the_end_read_as_zero() {
        let f = tempfile::tempfile().unwrap();
        write_header(&f, 3).unwrap();
        write_entries(&f, 2, &[7, 8]).unwrap();
        assert_eq!(read_entries(&f, 0, 6).unwrap(), vec![0, 0, 7, 8, 0, 0]);
        assert_eq!(read_header(&f).unwrap(), Some(3));
        assert_eq!(sums_len(0), 16);
        assert_eq!(sums_len(1), 20);
        assert_eq!(sums_len(BLOCK), 20);
        assert_eq!(sums_len(BLOCK + 1), 24);
    }
}
