//! The error that crosses the wire. Each variant maps to exactly one errno, so a server's
//! answer reaches the application as the right `errno` through the FUSE adapter.
//!
//! There is deliberately no conversion from `std::io::Error`: which errno an I/O failure
//! means depends on whose I/O it was (a socket: `net::transport`; an OSS object:
//! `ObjectError`; a record file: `RecordError`), so each layer converts its own.

use serde::{Deserialize, Serialize};

/// Result with the wire error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A typed, errno-carrying error. Servers send it; clients return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("invalid argument: {0}")]
    Invalid(String),
    #[error("file name too long")]
    NameTooLong,
    #[error("too many levels of symbolic links")]
    Loop,
    #[error("operation not permitted")]
    NotPermitted,
    #[error("permission denied")]
    Access,
    #[error("no such attribute")]
    NoData,
    #[error("result too large for the buffer")]
    Range,
    #[error("file too large")]
    TooBig,
    #[error("no space left on device")]
    NoSpace,
    #[error("too many links")]
    TooManyLinks,
    #[error("cross-device link")]
    CrossDevice,
    #[error("read-only file system")]
    ReadOnly,
    #[error("operation not supported")]
    NotSupported,
    #[error("stale handle")]
    Stale,
    #[error("resource busy")]
    Busy,
    #[error("timed out")]
    TimedOut,
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("I/O error: {0}")]
    Io(String),
    /// Data failed its checksum (on the wire or on disk); never handed to an application.
    #[error("data corrupted: {0}")]
    Corrupt(String),
    /// The caller's cluster map is older than the server's registration: refresh the map
    /// and retry.
    #[error("cluster map epoch {caller} is older than the server's {server}")]
    OldEpoch { caller: u64, server: u64 },
    /// The server has lost the MGS for longer than its lease and refuses writes, so a
    /// server partitioned away cannot change data the rest of the cluster moved on from.
    #[error("server fenced: {0}")]
    Fenced(String),
    /// The peer did not prove it holds the cluster secret (or refused our proof).
    #[error("authentication failed: {0}")]
    Auth(String),
    /// An object the MDS records as written is absent from its OST (removed by hand, lost
    /// to a disk repair): that copy lost the stripe's data. Never read as a hole.
    #[error("object missing: {0}")]
    Missing(String),
    /// Refused for want of a right the server requires (the admin credential, say); the
    /// text says which, for the operator. EPERM, as `NotPermitted`.
    #[error("operation not permitted: {0}")]
    Denied(String),
    /// A project quota's limit (docs/quotas.md) refuses the growth or the new inode.
    #[error("disk quota exceeded")]
    QuotaExceeded,
}

impl Error {
    /// True for failures of a whole stripe that waiting can cure (a server away, not a bad
    /// request or bad data): data calls are retried on them.
    pub fn worth_waiting(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_) | Error::TimedOut | Error::Fenced(_) | Error::OldEpoch { .. }
        )
    }

    /// True when `self`, answered by (or met on the way to) one copy of a stripe, means that
    /// copy missed the operation while the others may well have it: the copy is marked
    /// stale if another copy of its stripe succeeded (docs/replication.md, write rule).
    ///
    /// - Marked stale: transport failures (`Unavailable`, `TimedOut`), a fenced OSS
    ///   (`Fenced`), a copy whose data or checksums are bad (`Corrupt`) or whose object is
    ///   gone (`Missing`), disk trouble (`Io`,
    ///   `NoSpace`, `ReadOnly`), an OSS too busy to serve (`Busy`), and `OldEpoch` left after
    ///   the map refreshes. All are about that copy's server.
    /// - Not marked (the call fails with the error): everything else — `Invalid`,
    ///   `Protocol`, `TooBig`, `NotSupported`, `Auth`, `Access`, `Stale`… describe the
    ///   request or the configuration and would fail on every copy; marking would only
    ///   spread the damage.
    pub fn marks_copy_stale(&self) -> bool {
        matches!(
            self,
            Error::Unavailable(_)
                | Error::TimedOut
                | Error::Fenced(_)
                | Error::Corrupt(_)
                | Error::Missing(_)
                | Error::Io(_)
                | Error::NoSpace
                | Error::ReadOnly
                | Error::Busy
                | Error::OldEpoch { .. }
        )
    }

    /// The errno an application sees for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::NotFound => libc::ENOENT,
            Error::Exists => libc::EEXIST,
            Error::NotDir => libc::ENOTDIR,
            Error::IsDir => libc::EISDIR,
            Error::NotEmpty => libc::ENOTEMPTY,
            Error::Invalid(_) => libc::EINVAL,
            Error::NameTooLong => libc::ENAMETOOLONG,
            Error::Loop => libc::ELOOP,
            Error::NotPermitted | Error::Denied(_) => libc::EPERM,
            Error::Access | Error::Auth(_) => libc::EACCES,
            Error::NoData => libc::ENODATA,
            Error::Range => libc::ERANGE,
            Error::TooBig => libc::EFBIG,
            Error::NoSpace => libc::ENOSPC,
            Error::TooManyLinks => libc::EMLINK,
            Error::CrossDevice => libc::EXDEV,
            Error::ReadOnly => libc::EROFS,
            Error::NotSupported => libc::EOPNOTSUPP,
            Error::Stale | Error::OldEpoch { .. } => libc::ESTALE,
            Error::Busy => libc::EBUSY,
            Error::QuotaExceeded => libc::EDQUOT,
            Error::TimedOut => libc::ETIMEDOUT,
            Error::Unavailable(_) => libc::ENOTCONN,
            Error::Protocol(_)
            | Error::Io(_)
            | Error::Corrupt(_)
            | Error::Missing(_)
            | Error::Fenced(_) => libc::EIO,
        }
    }

    /// True when the call may be retried on another connection or server.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::TimedOut)
    }
}
