//! End-to-end data checksums: CRC32C (Castagnoli, hardware-accelerated where the CPU has
//! it) over [`CHECKSUM_BLOCK`]-sized blocks of an object.
//!
//! The client checksums what it writes (one CRC over each write's payload, checked by the
//! OSS before anything reaches disk); the OSS keeps one CRC per block of every object and
//! returns them with the data it reads, and the client checks them before the bytes reach
//! its cache or an application.

pub use crate::msg::oss::CHECKSUM_BLOCK;

/// CRC32C of `data`.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}

/// CRC32C of each [`CHECKSUM_BLOCK`] of `data` (the last may be shorter), `data` starting
/// at a block boundary.
pub fn block_crcs(data: &[u8]) -> Vec<u32> {
    data.chunks(CHECKSUM_BLOCK as usize).map(crc32c).collect()
}

/// Index of the first block of `data` (starting at a block boundary) whose CRC differs
/// from `crcs`, or whose CRC is missing.
pub fn first_bad_block(data: &[u8], crcs: &[u32]) -> Option<usize> {
    let blocks = data.len().div_ceil(CHECKSUM_BLOCK as usize);
    if crcs.len() != blocks {
        return Some(crcs.len().min(blocks));
    }
    data.chunks(CHECKSUM_BLOCK as usize)
        .zip(crcs)
        .position(|(block, crc)| crc32c(block) != *crc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_value() {
        // The CRC32C check value (RFC 3720 / iSCSI).
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn blocks_are_checked_one_by_one() {
        let mut data = vec![7u8; CHECKSUM_BLOCK as usize * 2 + 100];
        let crcs = block_crcs(&data);
        assert_eq!(crcs.len(), 3);
        assert_eq!(first_bad_block(&data, &crcs), None);
        data[CHECKSUM_BLOCK as usize + 5] ^= 1;
        assert_eq!(first_bad_block(&data, &crcs), Some(1));
        assert_eq!(first_bad_block(&data, &crcs[..2]), Some(2));
    }
}
