//! The narrow interface between the OSS service and the storage of one OST, and the checks
//! every request passes before it reaches a store.
//!
//! Object contents follow POSIX file semantics: a write past the end extends the object and
//! leaves a hole that reads as zeros; a read returns at most what lies before the end.
//!
//! Every object carries a CRC32C per [`CHECKSUM_BLOCK`] (docs/replication.md): writes bring
//! the CRC of their payload, which the store checks before anything reaches the disk; reads
//! are block-aligned and return the stored CRCs with the data, unverified (the caller
//! verifies); [`ObjectStore::scrub`] verifies on the OSS.
//!
//! Stores and checks answer [`ObjectError`]s, never wire errors: the service converts them
//! when it answers a request.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use rustre_proto::checksum::crc32c;
use rustre_proto::frame::MAX_PAYLOAD_BYTES;
use rustre_proto::msg::oss::{ObjectId, ObjectInfo, CHECKSUM_BLOCK, LIST_MAX_OBJECTS};
use rustre_proto::msg::{Capacity, MAX_STRIPE_COUNT};
use rustre_proto::rpc::server::Payload;

use super::error::ObjectError;

/// Largest object, in bytes: 16 TiB, the largest file ext4 holds with 4 KiB blocks. A file of
/// stripe count N may reach N times this. Defined in `rustre-proto` (one definition for the
/// OSS that refuses bigger objects and the MDS that refuses bigger files).
pub use rustre_proto::msg::MAX_OBJECT_BYTES;

/// Largest write [`ObjectStore::write_in_place`] makes on an async thread: a small file's
/// bytes, whose copy to the page cache takes microseconds; larger writes go to a blocking
/// thread, where their time costs no other request anything.
pub const IN_PLACE_WRITE_MAX_BYTES: usize = 64 * 1024;

/// The bytes a read found.
pub enum ReadData {
    /// `len` bytes of `file` from `offset`; sent to the socket with `sendfile`.
    File {
        file: Arc<File>,
        offset: u64,
        len: u32,
    },
    /// Bytes in memory.
    Bytes(Bytes),
}

impl ReadData {
    /// Number of bytes read.
    pub fn len(&self) -> u32 {
        match self {
            ReadData::File { len, .. } => *len,
            // At most MAX_PAYLOAD_BYTES, below u32::MAX.
            ReadData::Bytes(b) => b.len() as u32,
        }
    }

    /// True when nothing was read (past the end, or an absent object).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The reply payload carrying these bytes.
    pub fn into_payload(self) -> Payload {
        match self {
            ReadData::File { file, offset, len } => Payload::File { file, offset, len },
            ReadData::Bytes(b) => Payload::Bytes(b),
        }
    }
}

/// What a read found: the bytes, the stored CRC of each [`CHECKSUM_BLOCK`] of them (the
/// last one over a shorter block at the object's end), and the object's version.
pub struct ObjectRead {
    pub data: ReadData,
    pub crcs: Vec<u32>,
    /// Highest layout version the object was written with; 0 when absent.
    pub version: u64,
}

impl ObjectRead {
    /// Nothing: an absent object, or a read past its end.
    pub fn empty(version: u64) -> ObjectRead {
        ObjectRead {
            data: ReadData::Bytes(Bytes::new()),
            crcs: Vec::new(),
            version,
        }
    }
}

/// One page of [`ObjectStore::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPage {
    pub objects: Vec<ObjectInfo>,
    /// No object follows the last one of the page.
    pub done: bool,
}

/// The objects of one OST. Every method but [`ObjectStore::read_in_place`] may block on
/// the disk, so callers run them on a blocking thread. Callers check ranges with [`check_object`], [`check_read`],
/// [`check_write`] and [`check_size`]; stores check them again and refuse what fails.
pub trait ObjectStore: Send + Sync + 'static {
    /// Up to `len` bytes at `offset` (both multiples of [`CHECKSUM_BLOCK`]) with their
    /// stored CRCs: fewer at the object's end, none past it or when the object does not exist
    /// (the caller sees a hole). Nothing is verified here.
    fn read(&self, id: ObjectId, offset: u64, len: u32) -> Result<ObjectRead, ObjectError>;

    /// [`ObjectStore::read`] when it can be answered without waiting for the disk or a lock,
    /// so on an async thread (a read of an object in use: most reads); `None` when it
    /// cannot, and the caller reads the blocking way. The default never can.
    fn read_in_place(&self, _id: ObjectId, _offset: u64, _len: u32) -> Option<ObjectRead> {
        None
    }

    /// As [`Self::read`], with bytes and CRCs of one moment: no write, repair or truncate of
    /// the object lands between reading the ones and the others. A checksum mismatch in
    /// what it returns is damage, not a race. Slower (the bytes are copied out under the
    /// object's lock); for a second look after `read` returned blocks failing their CRCs.
    /// The default suits stores whose `read` is already of one moment.
    fn read_consistent(
        &self,
        id: ObjectId,
        offset: u64,
        len: u32,
    ) -> Result<ObjectRead, ObjectError> {
        self.read(id, offset, len)
    }

    /// Writes `data` at `offset`, creating the object if absent. `crc` is the CRC32C of
    /// `data`: a mismatch is [`ObjectError::Corrupt`] and nothing is written, as is a write
    /// partly covering a block whose stored bytes fail their CRC. A `version` below the
    /// object's is [`ObjectError::OldVersion`] and nothing is written (so for repairs and
    /// truncates too); otherwise the object's version becomes `version`. With `sync`, the data, its CRCs (and the
    /// object's existence) are on disk when this returns.
    fn write(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
        sync: bool,
    ) -> Result<(), ObjectError>;

    /// [`Self::write`] without sync, made on the calling (async) thread when that waits for
    /// no lock and the write is at most [`IN_PLACE_WRITE_MAX_BYTES`]: its answer and then the
    /// object's allocation ([`Self::allocated`]). `None` when it cannot, and the caller
    /// writes the blocking way. It may still wait briefly for the disk (a page-cache write,
    /// a new object's file made), which is why its caller lets one such call run at a time.
    /// The default never can.
    fn write_in_place(
        &self,
        _id: ObjectId,
        _offset: u64,
        _data: &[u8],
        _crc: u32,
        _version: u64,
    ) -> Option<Result<u64, ObjectError>> {
        None
    }

    /// Writes `data` (whole blocks from a block boundary, a short last block only at the
    /// object's end) at `offset` only if the blocks there now hold bytes whose CRC32C are
    /// `seen`, one per block; otherwise [`ObjectError::Busy`] and nothing is written. `crc` and
    /// `version` as for [`Self::write`]. Not synced.
    fn repair(
        &self,
        id: ObjectId,
        offset: u64,
        data: &[u8],
        crc: u32,
        version: u64,
        seen: &[u32],
    ) -> Result<(), ObjectError>;

    /// The object's length (0 when absent) and the stored CRC of `count` blocks from
    /// `first` (fewer at its end; a hole's block answers the CRC of zeros).
    fn checksums(
        &self,
        id: ObjectId,
        first: u64,
        count: usize,
    ) -> Result<(u64, Vec<u32>), ObjectError>;

    /// Sets the object's length, creating it if absent, and raises its version to `version`.
    /// Not durable until [`Self::sync`].
    fn truncate(&self, id: ObjectId, size: u64, version: u64) -> Result<(), ObjectError>;

    /// Raises the object's version to `version` (never lowers it) without changing its
    /// bytes; an absent object stays absent. Not durable until [`Self::sync`].
    fn raise_version(&self, id: ObjectId, version: u64) -> Result<(), ObjectError>;

    /// Makes everything written to the object durable; an absent object is already durable
    /// as far as this OST knows.
    fn sync(&self, id: ObjectId) -> Result<(), ObjectError>;

    /// Removes the object; removing an absent object succeeds.
    fn delete(&self, id: ObjectId) -> Result<(), ObjectError>;

    /// The object's length, `None` if absent.
    fn size(&self, id: ObjectId) -> Result<Option<u64>, ObjectError>;

    /// The OST's capacity.
    fn capacity(&self) -> Result<Capacity, ObjectError>;

    /// Objects after `after` (from the first with `None`) in id order, at most `limit`
    /// (checked with [`check_list`]).
    fn list(&self, after: Option<ObjectId>, limit: u32) -> Result<ObjectPage, ObjectError>;

    /// Reads the whole object and checks every block against its stored CRC; the indices of
    /// the blocks that fail (none for an absent object).
    fn scrub(&self, id: ObjectId) -> Result<Vec<u64>, ObjectError>;

    /// lseek(2) `SEEK_DATA` (with `data`) or `SEEK_HOLE` from `offset`: the first offset at
    /// or after it in data (or in a hole, the object's end being one). `None` at or past the
    /// object's end, for an absent object, and for data when none follows `offset`.
    fn seek(&self, id: ObjectId, offset: u64, data: bool) -> Result<Option<u64>, ObjectError>;

    /// Bytes the object holds on disk (its allocated blocks; holes hold none), 0 when
    /// absent.
    fn allocated(&self, id: ObjectId) -> Result<u64, ObjectError>;
}

/// Checks an object id: inode 0 names nothing, and a stripe index is below the stripe count
/// limit.
pub fn check_object(id: ObjectId) -> Result<(), ObjectError> {
    if id.ino == 0 {
        return Err(ObjectError::Invalid("object of inode 0".into()));
    }
    if id.stripe >= MAX_STRIPE_COUNT {
        return Err(ObjectError::Invalid(format!(
            "stripe index {} is not below the limit {MAX_STRIPE_COUNT}",
            id.stripe
        )));
    }
    Ok(())
}

/// Checks a read: block-aligned, one reply payload at most, wholly below
/// [`MAX_OBJECT_BYTES`].
pub fn check_read(offset: u64, len: u32) -> Result<(), ObjectError> {
    if !offset.is_multiple_of(u64::from(CHECKSUM_BLOCK)) || !len.is_multiple_of(CHECKSUM_BLOCK) {
        return Err(ObjectError::Invalid(format!(
            "read of {len} bytes at {offset} is not aligned to {CHECKSUM_BLOCK}-byte blocks"
        )));
    }
    if len > MAX_PAYLOAD_BYTES {
        return Err(ObjectError::Invalid(format!(
            "read of {len} bytes exceeds {MAX_PAYLOAD_BYTES}"
        )));
    }
    match offset.checked_add(u64::from(len)) {
        Some(end) if end <= MAX_OBJECT_BYTES => Ok(()),
        _ => Err(ObjectError::Invalid(format!(
            "read of {len} bytes at {offset} ends past the largest object ({MAX_OBJECT_BYTES})"
        ))),
    }
}

/// Checks a write: it must end at or below [`MAX_OBJECT_BYTES`] (EFBIG otherwise, as the
/// kernel answers a write past the largest file).
pub fn check_write(offset: u64, len: usize) -> Result<(), ObjectError> {
    let end = u64::try_from(len)
        .ok()
        .and_then(|len| offset.checked_add(len))
        .ok_or_else(|| {
            ObjectError::Invalid(format!("write of {len} bytes at {offset} overflows"))
        })?;
    if end > MAX_OBJECT_BYTES {
        return Err(ObjectError::TooBig);
    }
    Ok(())
}

/// Checks a payload that arrived for `offset` against the CRC32C its sender computed.
pub fn check_payload(data: &[u8], offset: u64, crc: u32) -> Result<(), ObjectError> {
    let actual = crc32c(data);
    if actual != crc {
        return Err(ObjectError::Corrupt(format!(
            "{} bytes for offset {offset}: payload CRC {actual:#010x}, sender said {crc:#010x}",
            data.len()
        )));
    }
    Ok(())
}

/// Checks a write or repair of `data` at `offset` of object `id` before anything is
/// written: the object id, the range, and the payload against the CRC32C its sender gave.
pub fn check_change(id: ObjectId, offset: u64, data: &[u8], crc: u32) -> Result<(), ObjectError> {
    check_object(id)?;
    check_write(offset, data.len())?;
    check_payload(data, offset, crc)
}

/// Checks a `List` page size and caps it at [`LIST_MAX_OBJECTS`].
pub fn check_list(limit: u32) -> Result<usize, ObjectError> {
    if limit == 0 {
        return Err(ObjectError::Invalid("a list of at most 0 objects".into()));
    }
    Ok(limit.min(LIST_MAX_OBJECTS) as usize)
}

/// Checks a new object length.
pub fn check_size(size: u64) -> Result<(), ObjectError> {
    if size > MAX_OBJECT_BYTES {
        return Err(ObjectError::TooBig);
    }
    Ok(())
}

/// Refuses a change carrying layout `version` to object `id`, which was last changed under
/// `object_version`, when it is older: [`ObjectError::OldVersion`] (docs/replication.md,
/// "Layout versions at the OSTs"). Both stores call it, holding the object's lock.
pub(super) fn admit_version(
    id: ObjectId,
    object_version: u64,
    version: u64,
) -> Result<(), ObjectError> {
    // The simulation's injected bug `old-version` (test-only: docs/simulation.md).
    #[cfg(feature = "sim-bug")]
    if rustre_proto::injected_bug::is_on(rustre_proto::injected_bug::Bug::AcceptOldVersion) {
        return Ok(());
    }
    if version < object_version {
        return Err(ObjectError::OldVersion {
            object: id,
            object_version,
            version,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_checks() {
        assert!(check_read(0, MAX_PAYLOAD_BYTES).is_ok());
        assert!(check_read(0, MAX_PAYLOAD_BYTES + CHECKSUM_BLOCK).is_err());
        assert!(check_read(u64::MAX - 4095, 4096).is_err());
        let b = u64::from(CHECKSUM_BLOCK);
        assert!(check_read(MAX_OBJECT_BYTES - b, CHECKSUM_BLOCK).is_ok());
        assert!(check_read(MAX_OBJECT_BYTES, CHECKSUM_BLOCK).is_err());
        assert!(check_read(1, CHECKSUM_BLOCK).is_err());
        assert!(check_read(0, 100).is_err());
        assert!(check_read(b, 0).is_ok());
        assert!(check_list(0).is_err());
        assert_eq!(check_list(7).unwrap(), 7);
        assert_eq!(check_list(u32::MAX).unwrap(), LIST_MAX_OBJECTS as usize);
        assert!(check_write(MAX_OBJECT_BYTES - 4, 4).is_ok());
        assert!(matches!(
            check_write(MAX_OBJECT_BYTES - 4, 5),
            Err(ObjectError::TooBig)
        ));
        assert!(matches!(
            check_write(u64::MAX, 1),
            Err(ObjectError::Invalid(_))
        ));
        assert!(check_size(MAX_OBJECT_BYTES).is_ok());
        assert!(matches!(
            check_size(MAX_OBJECT_BYTES + 1),
            Err(ObjectError::TooBig)
        ));
        assert!(check_object(ObjectId { ino: 0, stripe: 0 }).is_err());
        assert!(check_object(ObjectId {
            ino: 1,
            stripe: MAX_STRIPE_COUNT
        })
        .is_err());
        assert!(check_object(ObjectId {
            ino: u64::MAX,
            stripe: MAX_STRIPE_COUNT - 1
        })
        .is_ok());
    }
}
