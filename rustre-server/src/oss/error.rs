//! What can go wrong in an OST's object store: [`ObjectError`], apart from the wire error.
//!
//! A store says what happened to its objects and its disk; the service turns that into the
//! error a client sees in one place (`service::to_wire`), when it answers a request. So the
//! errno of a file on the OSS — an ENOENT under the OST directory, say — is never handed to
//! a client as if it were about the client's own file: a failed disk operation reaches the
//! client as EIO, or as ENOSPC, EFBIG or EROFS when that is what the disk said.

use std::path::{Path, PathBuf};

/// Why an object store refused or failed a call.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// The call itself is malformed: an object id, a range or a page size out of bounds.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The object would grow past the largest object, or the disk said EFBIG.
    #[error("object too large")]
    TooBig,
    /// The disk is full (ENOSPC, or EDQUOT), or a store in memory is.
    #[error("no space left on the OST")]
    NoSpace,
    /// The file system under the OST is read-only (EROFS).
    #[error("the OST is read-only")]
    ReadOnly,
    /// Any other failure of the disk, at `path`.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Bytes failed their CRC32C: a payload, or stored bytes a write would build on.
    #[error("data corrupted: {0}")]
    Corrupt(String),
    /// A conditional change found other bytes than the caller saw (a repair racing a
    /// write); nothing was changed.
    #[error("the blocks changed since they were read")]
    Busy,
    /// A change carried an older layout version than the object was already written with:
    /// the writer's layout is out of date (a copy may have been marked stale since), and
    /// must be fetched again before it writes. Nothing was changed.
    #[error(
        "object {object:?} is at layout version {object_version}, the change carried {version}"
    )]
    OldVersion {
        object: rustre_proto::msg::oss::ObjectId,
        object_version: u64,
        version: u64,
    },
    /// A read that must find the object (the MDS records its stripe as written) found
    /// none: this copy lost the stripe's data (docs/replication.md, "Which objects exist").
    #[error("object {0:?} is missing on this OST, though its stripe was written")]
    Missing(rustre_proto::msg::oss::ObjectId),
    /// The store broke one of its own rules (a bug, not the disk).
    #[error("{0}")]
    Internal(String),
}

impl ObjectError {
    /// The error of a disk operation on `path` that failed with `e`: the errnos a client
    /// can act on get their own variant, everything else is [`ObjectError::Io`].
    pub fn io(path: &Path, e: std::io::Error) -> ObjectError {
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => ObjectError::NoSpace,
            Some(libc::EFBIG) => ObjectError::TooBig,
            Some(libc::EROFS) => ObjectError::ReadOnly,
            _ => ObjectError::Io {
                path: path.to_path_buf(),
                source: e,
            },
        }
    }
}
