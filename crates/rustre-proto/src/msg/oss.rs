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

/// One call to an OSS: which OST, under which cluster-map epoch, and what.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OssRequest {
    /// The caller's cluster-map epoch.
    pub epoch: u64,
    pub ost: u32,
    pub op: OssOp,
}

/// Object operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OssOp {
    /// Reads up to `len` bytes at `offset`; the reply's payload is shorter at the object's
    /// end (the rest of a file-level read is a hole and reads as zeros).
    Read {
        object: ObjectId,
        offset: u64,
        len: u32,
    },
    /// Writes the payload at `offset`; with `sync`, the data is on disk before the reply.
    Write {
        object: ObjectId,
        offset: u64,
        sync: bool,
    },
    /// Sets the object's length (creating it if absent).
    Truncate { object: ObjectId, size: u64 },
    /// Makes the object's data durable (fdatasync).
    Sync { object: ObjectId },
    /// Removes the object; removing an absent object succeeds.
    Delete { object: ObjectId },
    /// Length of the object, `None` if absent.
    Size { object: ObjectId },
    /// Capacity of the OST.
    StatFs,
}

/// Answers of an OSS.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum OssResponse {
    /// Bytes of object data in the payload.
    Data {
        len: u32,
    },
    Size(Option<u64>),
    Capacity(Capacity),
    Done,
}
