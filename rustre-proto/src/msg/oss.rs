//! OSS messages: object I/O on the OSTs an OSS serves. Data travels as the frame's raw
//! payload, never inside the serde body.

use serde::{Deserialize, Serialize};

use super::{Capacity, Ino};

/// An object: one stripe of one file. Replicas of a stripe have the same id on other OSTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId {
    pub ino: Ino,
    pub stripe: u32,
}

/// Bytes covered by one stored checksum: objects are checksummed in blocks of this size
/// (the last block of an object may be shorter), aligned to object offset 0.
pub const CHECKSUM_BLOCK: u32 = 4096;
/// Most objects one `List` answer carries.
pub const LIST_MAX_OBJECTS: u32 = 4096;
/// Most block checksums one `Checksums` answer carries (256 MiB of object).
pub const CHECKSUMS_MAX_BLOCKS: u32 = 65536;
/// Most objects one [`OssOp::DeleteMany`] names.
pub const DELETE_MANY_MAX_OBJECTS: usize = 256;

/// One call to an OSS: which OST, under which cluster-map epoch, and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OssRequest {
    /// The caller's cluster-map epoch. An OSS refuses callers whose map is older than its
    /// own registration ([`crate::Error::OldEpoch`]): they must refresh the map and retry.
    pub epoch: u64,
    pub ost: u32,
    pub op: OssOp,
}

/// What an OSS knows of one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectInfo {
    pub id: ObjectId,
    pub size: u64,
    /// Highest layout version the object was written with.
    pub version: u64,
}

/// Object operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OssOp {
    /// Reads up to `len` bytes at `offset`, both multiples of [`CHECKSUM_BLOCK`]; the
    /// reply's payload is shorter at the object's end (the rest of a file-level read is a
    /// hole and reads as zeros). The reply carries the stored checksum of every block it
    /// returns, for the caller to verify. With `must_exist` (the MDS records the stripe as
    /// written, `Layout::written`) an absent object is [`crate::Error::Missing`] instead of
    /// a hole: this copy lost the stripe's data.
    Read {
        object: ObjectId,
        offset: u64,
        len: u32,
        must_exist: bool,
        /// Bytes and CRCs of one moment (read under the object's lock, as every write is
        /// made): a CRC mismatch in the answer is damage, not a read racing a write. Slower;
        /// for the second look after blocks failed their CRCs.
        consistent: bool,
    },
    /// Writes the payload at `offset`; `crc` is the CRC32C of the payload, checked before
    /// anything is written. `version` is the writer's layout version; the object keeps the
    /// highest it saw, and refuses a write carrying an older one with `Stale` (nothing
    /// written): the writer must fetch the file's layout again. With `sync`, data and
    /// checksums are on disk before the reply.
    /// Answered with [`OssResponse::Written`]: the OST's instance, the write verifier.
    Write {
        object: ObjectId,
        offset: u64,
        sync: bool,
        crc: u32,
        version: u64,
    },
    /// Rewrites blocks a reader found damaged with good bytes from another copy: the payload
    /// (whole [`CHECKSUM_BLOCK`]s from a block boundary; a shorter last block only at the
    /// object's end) is written at `offset` only if the blocks there still hold the bytes
    /// the reader saw, whose CRC32C are `seen` (one per block). Otherwise `Busy`, nothing
    /// written: a repair never overwrites a write that came in between. `crc` and `version`
    /// as for `Write`; not synced.
    Repair {
        object: ObjectId,
        offset: u64,
        crc: u32,
        version: u64,
        seen: Vec<u32>,
    },
    /// Sets the object's length (creating it if absent); not synced. Answered with
    /// [`OssResponse::Written`].
    Truncate {
        object: ObjectId,
        size: u64,
        version: u64,
    },
    /// Raises the object's layout version to `version` (never lowers it) without changing
    /// its bytes; an absent object stays absent. From then on the OST refuses writes,
    /// repairs and truncates of the object that carry an older version (`Stale`): the MDS
    /// sends this to the live copies of a file whose layout changed (copies marked stale,
    /// a writer's session ended), so a writer holding the old layout learns of the change
    /// before it writes again. Answered with [`OssResponse::Written`]; not synced.
    RaiseVersion { object: ObjectId, version: u64 },
    /// Makes the object's data and checksums durable (fdatasync). Answered with
    /// [`OssResponse::Synced`]: what the OST holds now is durable, which covers the writes
    /// it acknowledged under the same instance and no others (see [`OssResponse::Written`]).
    Sync { object: ObjectId },
    /// Removes the object; removing an absent object succeeds.
    Delete { object: ObjectId },
    /// Length of the object, `None` if absent.
    Size { object: ObjectId },
    /// Capacity of the OST.
    StatFs,
    /// Objects of the OST after `after` (all with `None`), in id order, at most `limit`
    /// (capped at [`LIST_MAX_OBJECTS`]).
    List { after: Option<ObjectId>, limit: u32 },
    /// Reads the whole object and checks every block against its stored checksum.
    Scrub { object: ObjectId },
    /// The stored CRC32C of blocks `first..first + count` of the object (capped at
    /// [`CHECKSUMS_MAX_BLOCKS`] and at its end), without reading its data: what `rustre fsck`
    /// compares copies with. A hole's block answers the CRC of zeros.
    Checksums {
        object: ObjectId,
        first: u64,
        count: u32,
    },
    /// lseek(2) `SEEK_DATA` (with `data`) or `SEEK_HOLE` in the object from `offset`: the
    /// first offset at or after it in data (or in a hole; the object's end is one).
    /// Answered with [`OssResponse::Offset`]: `None` at or past the object's end, when it
    /// is absent, or when no data follows `offset`. Granularity is the store's block.
    Seek {
        object: ObjectId,
        offset: u64,
        data: bool,
    },
    /// Removes each of `objects` (at most [`DELETE_MANY_MAX_OBJECTS`]) as
    /// [`OssOp::Delete`] does, in one call: how the MDS deletes the objects of destroyed
    /// files. Answered with [`OssResponse::DeletedMany`], naming those it could not remove.
    DeleteMany { objects: Vec<ObjectId> },
}

impl OssOp {
    /// A `Write` of `payload` at `offset` of `object`, with the payload's CRC32C, as every
    /// writer (client, resync, migration, the MDS's moves) sends it.
    pub fn write(object: ObjectId, offset: u64, payload: &[u8], sync: bool, version: u64) -> OssOp {
        OssOp::Write {
            object,
            offset,
            sync,
            crc: crate::checksum::crc32c(payload),
            version,
        }
    }
}

/// Answers of an OSS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OssResponse {
    /// Bytes of object data in the payload, with the stored CRC32C of each
    /// [`CHECKSUM_BLOCK`] of it (the last one covers a shorter block at the object's end),
    /// and the object's version (0 when it does not exist).
    Data {
        len: u32,
        crcs: Vec<u32>,
        version: u64,
    },
    Size(Option<u64>),
    Capacity(Capacity),
    Done,
    /// A write, repair or truncate was applied under OST instance `instance`. The instance
    /// is new every time the OST starts: a change acknowledged under one instance and not
    /// yet synced is lost if the OST stops (a crash, a power cut) before a sync, and a
    /// later [`OssResponse::Synced`] answers another instance. This is the write verifier
    /// of NFS's COMMIT: the writer keeps what it wrote until a sync under the same
    /// instance, and sends it again when the instance changed (docs/replication.md).
    Written {
        instance: u64,
        /// After a write, repair or truncate: the bytes the object holds on disk (its
        /// allocated blocks), which the writer reports (`Layout::allocated`).
        allocated: Option<u64>,
    },
    /// A sync made the object durable under OST instance `instance`.
    Synced {
        instance: u64,
    },
    /// One page of `List`; `done` when nothing follows.
    Objects {
        objects: Vec<ObjectInfo>,
        done: bool,
    },
    /// Result of `Checksums`: the object's length (0 when absent) and the CRCs asked for.
    Checksums {
        size: u64,
        crcs: Vec<u32>,
    },
    /// Result of `Scrub`: indices of the blocks whose data does not match their checksum
    /// (empty when the object is sound or absent).
    Scrubbed {
        bad_blocks: Vec<u64>,
    },
    /// Result of `Seek`: the offset found, `None` for none (ENXIO).
    Offset(Option<u64>),
    /// Result of `DeleteMany`: the objects it could not remove (the OSS logs why); the
    /// others are gone.
    DeletedMany {
        failed: Vec<ObjectId>,
    },
}

impl OssResponse {
    /// The write verifier this answer carries: the OST instance of a `Written` or `Synced`.
    pub fn instance(&self) -> Option<u64> {
        match self {
            OssResponse::Written { instance, .. } | OssResponse::Synced { instance } => {
                Some(*instance)
            }
            _ => None,
        }
    }
}

/// The OST instance that answered a run of changes and the sync that ends it, on one OST:
/// all must come from one instance, or the OST restarted in between and may have lost some
/// of them (docs/replication.md, "Write verifiers").
#[derive(Debug, Default)]
pub struct OneInstance(Option<u64>);

impl OneInstance {
    /// Takes the next answer of the run: `Protocol` when it carries no instance,
    /// `Unavailable` when another instance answered before (the run must be made again).
    pub fn check(&mut self, resp: &OssResponse) -> Result<u64, crate::Error> {
        let instance = resp
            .instance()
            .ok_or_else(|| crate::Error::Protocol(format!("unexpected OSS answer {resp:?}")))?;
        match self.0.replace(instance) {
            Some(before) if before != instance => Err(crate::Error::Unavailable(
                "the OST restarted during a run of changes; it may have lost some".into(),
            )),
            _ => Ok(instance),
        }
    }
}
