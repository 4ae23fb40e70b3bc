//! O_APPEND writes: the MDS decides where each one lands. `ReserveAppend` hands out the
//! next `len` bytes at the file's end and moves its size past them in the same
//! transaction, so writers on any number of clients get ranges that never overlap
//! (docs/mount.md, "Appends"). The request is recorded under its id like every mutation:
//! a retry gets the same range.

use std::sync::Arc;

use rustre_proto::msg::mds::MdsResponse;
use rustre_proto::msg::{Attr, FileKind, Ino};
use rustre_proto::Error;

use super::attr::max_file_size;
use super::dispatch::Call;
use super::error::MdsError;
use super::{store, Mds};
use crate::meta::Transaction;
use crate::schema;

/// What an appender asks for (`MdsOp::ReserveAppend`).
#[derive(Debug, Clone, Copy)]
pub struct AppendRequest {
    pub len: u64,
    /// The size the caller's own unreported writes reached.
    pub known_size: u64,
    /// The truncate version `known_size` belongs to.
    pub truncate_version: u64,
}

/// A range handed out: the caller writes `len` bytes at `offset`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reserved {
    pub offset: u64,
    pub len: u64,
    pub attr: Attr,
}

/// Reserves `req.len` bytes at the end of regular file `ino` for `session` (which must hold
/// it open for writing; session 0, the MDS's own tools, need not). The end is the larger of
/// the size and the caller's `known_size` of the current truncate version; the size moves to
/// the end of the range at once (mtime and ctime move with the writer's size report, as for
/// any write). Cut short at `max_file_size`; nothing left there is EFBIG.
pub fn reserve(
    tx: &mut dyn Transaction,
    session: u64,
    ino: Ino,
    req: AppendRequest,
) -> Result<Reserved, Error> {
    let mut inode = store::inode(tx, ino)?;
    let a = &mut inode.attr;
    if a.kind != FileKind::File {
        return Err(Error::Invalid("append to a non-file".into()));
    }
    if req.len == 0 {
        return Err(Error::Invalid("append of no bytes".into()));
    }
    if session != 0 && tx.get(&schema::write_open(ino, session))?.is_none() {
        // Only a writer may move the end (as only a writer's size report moves the size).
        return Err(Error::Access);
    }
    let mut offset = a.size;
    if req.truncate_version == a.truncate_version {
        offset = offset.max(req.known_size);
    }
    let max = max_file_size(a.layout.as_ref());
    if offset >= max {
        return Err(Error::TooBig);
    }
    let len = req.len.min(max - offset);
    a.size = offset + len;
    store::put_inode(tx, &inode)?;
    Ok(Reserved {
        offset,
        len,
        attr: inode.attr,
    })
}

impl Mds {
    /// Bookkeeping, as a size report: durable by the next sync. An MDS that crashes before
    /// may hand the range out again after its restart, but only to bytes no fsync covered
    /// (the appender's fsync syncs the MDS's store), which a crash may lose anyway.
    pub(super) async fn reserve_append(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        req: AppendRequest,
    ) -> Result<MdsResponse, MdsError> {
        let (kind, session) = (call.bookkeeping(), call.session);
        let r = self
            .txn(call.creds, vec![ino], kind, move |tx, _| {
                reserve(tx, session, ino, req)
            })
            .await?;
        Ok(MdsResponse::Reserved {
            offset: r.offset,
            len: r.len,
            attr: r.attr,
        })
    }
}
