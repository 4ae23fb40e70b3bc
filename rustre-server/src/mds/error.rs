//! The MDS's own errors, converted to the wire [`Error`] once, where a request is answered
//! ([`MdsError::into_wire`], called by the dispatcher).
//!
//! Transaction bodies answer the caller with wire errors (`NotFound`, `Exists`, ...: they are
//! POSIX answers, not failures of the MDS); what fails *around* them keeps its own type until
//! the answer is made: the metadata store ([`KvError`]) and a create that waits for OSTs
//! ([`PlacementShortfall`]).

use rustre_proto::Error;

use crate::meta::KvError;

/// Too few OSTs up for a new file's copies right now (an MGS or OSS restart): a create waits
/// for them, bounded by `PLACEMENT_WAIT`, before it answers with the shortfall.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{replicas} copies asked, {up} OSTs up")]
pub struct PlacementShortfall {
    /// Copies of each stripe the new file needs, each on its own OST.
    pub replicas: usize,
    /// OSTs up in the cluster map.
    pub up: usize,
}

/// Why an MDS request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MdsError {
    /// The answer for the caller, as it crosses the wire.
    #[error(transparent)]
    Answer(#[from] Error),
    /// The metadata store failed (or conflicted too often).
    #[error(transparent)]
    Kv(#[from] KvError),
    /// Too few OSTs up to place a new file's copies.
    #[error("waiting for OSTs: {0}")]
    Placement(#[from] PlacementShortfall),
    /// An open that may write found the file's data on the MDS: the bytes move to its
    /// objects first, then the open runs again (`super::inline`).
    #[error("inode {0}: its data on the MDS moves to its objects first")]
    MustSpill(rustre_proto::msg::Ino),
}

impl MdsError {
    /// The error the caller gets.
    pub fn into_wire(self) -> Error {
        match self {
            MdsError::Answer(e) => e,
            MdsError::Kv(e) => e.into(),
            MdsError::Placement(p) => Error::Unavailable(format!("waiting for OSTs: {p}")),
            e @ MdsError::MustSpill(_) => Error::Unavailable(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_reaches_the_wire_as_its_errno() {
        assert_eq!(MdsError::from(Error::NotFound).into_wire(), Error::NotFound);
        let busy = MdsError::from(KvError::RetriesExhausted).into_wire();
        assert_eq!(busy.errno(), libc::EBUSY);
        let io = MdsError::from(KvError::Storage("disk".into())).into_wire();
        assert_eq!(io.errno(), libc::EIO);
        let short = MdsError::from(PlacementShortfall { replicas: 2, up: 1 }).into_wire();
        assert_eq!(short.errno(), libc::ENOTCONN);
        assert!(
            short.to_string().contains("2 copies asked, 1 OSTs up"),
            "{short}"
        );
    }
}
