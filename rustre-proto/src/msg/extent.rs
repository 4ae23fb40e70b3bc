//! Which object, and where in it, holds each byte of a file range (RAID-0 over objects, as
//! Lustre): byte `off` lives in stripe `(off / stripe_size) % stripe_count`, at object offset
//! `(off / (stripe_size * stripe_count)) * stripe_size + off % stripe_size`. The clients'
//! data path and the MDS's moves of data on the MDS to objects both map ranges with it.

use bytes::Bytes;

use super::oss::{ObjectId, OssOp};
use super::{Ino, Layout};

/// One contiguous piece of a file range that lives in one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extent {
    /// Stripe index (the object is `(ino, stripe)` on every OST holding a copy of it).
    pub stripe: u32,
    /// Offset inside the object.
    pub object_offset: u64,
    /// Offset of this piece from the start of the requested range.
    pub buf_offset: usize,
    pub len: usize,
}

impl Extent {
    /// The bytes of this piece in `data`, the buffer of the whole range.
    pub fn payload(&self, data: &Bytes) -> Bytes {
        data.slice(self.buf_offset..self.buf_offset + self.len)
    }

    /// The write of this piece of `data` (the whole range's buffer) to its object of file
    /// `ino`, and its payload.
    pub fn write(&self, ino: Ino, data: &Bytes, sync: bool, version: u64) -> (OssOp, Bytes) {
        let object = ObjectId {
            ino,
            stripe: self.stripe,
        };
        let payload = self.payload(data);
        let op = OssOp::write(object, self.object_offset, &payload, sync, version);
        (op, payload)
    }
}

/// Splits `[offset, offset + len)` into per-object extents, in file order.
pub fn extents(layout: &Layout, offset: u64, len: usize) -> Vec<Extent> {
    let size = layout.stripe_size as u64;
    let count = layout.stripe_count().max(1) as u64;
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
            object_offset: (unit / count) * size + within,
            buf_offset: (pos - offset) as usize,
            len: n as usize,
        });
        pos += n;
    }
    out
}
