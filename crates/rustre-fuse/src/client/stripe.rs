//! Layout math (RAID-0 over objects, as Lustre): which object and object offset hold each
//! byte of a file.
//!
//! Byte `off` lives in stripe `(off / stripe_size) % stripe_count`, at object offset
//! `(off / (stripe_size * stripe_count)) * stripe_size + off % stripe_size`.

use rustre_proto::msg::Layout;

/// One contiguous piece of a file range that lives in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Stripe index (the object is `(ino, stripe)`).
    pub stripe: u32,
    /// OST holding the stripe.
    pub ost: u32,
    /// Offset inside the object.
    pub object_offset: u64,
    /// Offset of this piece from the start of the requested range.
    pub buf_offset: usize,
    pub len: usize,
}

/// Splits `[offset, offset + len)` into per-object extents, in file order.
pub fn extents(layout: &Layout, offset: u64, len: usize) -> Vec<Extent> {
    let size = layout.stripe_size as u64;
    let count = layout.osts.len().max(1) as u64;
    let mut out = Vec::new();
    let mut pos = offset;
    let end = offset + len as u64;
    while pos < end {
        let unit = pos / size;
        let within = pos % size;
        let n = (size - within).min(end - pos);
        let stripe = (unit % count) as u32;
        out.push(Extent {
            stripe,
            ost: layout.osts[stripe as usize],
            object_offset: (unit / count) * size + within,
            buf_offset: (pos - offset) as usize,
            len: n as usize,
        });
        pos += n;
    }
    out
}

/// The length object `stripe` has when the file is `file_size` bytes long.
pub fn object_size(layout: &Layout, stripe: u32, file_size: u64) -> u64 {
    let size = layout.stripe_size as u64;
    let count = layout.osts.len().max(1) as u64;
    let full_rows = file_size / (size * count);
    let rest = file_size % (size * count);
    let mut len = full_rows * size;
    let start_in_row = stripe as u64 * size;
    if rest > start_in_row {
        len += (rest - start_in_row).min(size);
    }
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(stripe_size: u32, osts: Vec<u32>) -> Layout {
        Layout {
            stripe_size,
            osts,
            replicas: 1,
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
                    assert_eq!(e.ost, l.osts[stripe as usize]);
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
}
