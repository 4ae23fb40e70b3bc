//! O_APPEND writes: the MDS decides where each one lands. `ReserveAppend` hands out the
//! next `len` bytes at the file's end and moves its size past them in the same
//! transaction, so writers on any number of clients get ranges that never overlap
//! (docs/mount.md, "Appends"). The request is recorded under its id like every mutation:
//! a retry gets the same range.
//!
//! A file one client appends to alone is leased to it: the MDS records that the client's
//! session may append past the end without asking, up to a limit, for a while
//! (`append_lease/{ino}`). When another session asks, the MDS marks the lease as being taken
//! back and answers "retry"; the write it makes shows on the change feed, which the holder
//! follows: it gives the lease back with the end its appends reached (`ReturnAppendLease`),
//! and the other's next try lands after that. A holder that never answers loses the lease
//! when it expires; the next range then starts at the lease's limit, past anything it may
//! have written. A file taken back that way is contended: no lease for a while.

use std::sync::Arc;

use rustre_proto::msg::mds::MdsResponse;
use rustre_proto::msg::quota::NO_PROJECT;
use rustre_proto::msg::{Attr, FileKind, Ino, Timestamp};
use rustre_proto::Error;
use serde::{Deserialize, Serialize};

use super::attr::max_file_size;
use super::dispatch::Call;
use super::error::MdsError;
use super::{quota, store, Mds};
use crate::meta::Transaction;
use crate::schema;

/// How long an append lease lasts at the MDS (its holder stops using it earlier).
pub const APPEND_LEASE_MS: u64 = 2_000;
/// How far past the end a lease lets its holder append.
pub const APPEND_LEASE_BYTES: u64 = 1 << 20;
/// After a lease was taken back because another client appended, how long no lease is
/// granted for the file (two appenders would otherwise pass it back and forth).
pub const APPEND_CONTENDED_MS: u64 = 10_000;

/// What an appender asks for (`MdsOp::ReserveAppend`).
#[derive(Debug, Clone, Copy)]
pub struct AppendRequest {
    pub len: u64,
    /// The size the caller's own unreported writes reached.
    pub known_size: u64,
    /// The truncate version `known_size` belongs to.
    pub truncate_version: u64,
    pub want_lease: bool,
}

/// A range handed out: the caller writes `len` bytes at `offset` (nothing, with `retry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reserved {
    pub offset: u64,
    pub len: u64,
    pub attr: Attr,
    /// 0: no lease.
    pub lease_ms: u64,
    pub lease_limit: u64,
    pub retry: bool,
}

/// The record under `append_lease/{ino}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Lease {
    /// The holder; 0 when nobody holds it (the record then only says the file is contended).
    session: u64,
    /// The holder appends below this, never at or past it.
    limit: u64,
    /// MDS clock, milliseconds since the epoch.
    expires_ms: u64,
    truncate_version: u64,
    /// Another session asked: the holder is to give the lease back.
    revoking: bool,
    /// No new lease before this (MDS clock, ms).
    contended_until_ms: u64,
}

fn millis(t: Timestamp) -> u64 {
    u64::try_from(t.sec).unwrap_or(0) * 1000 + u64::from(t.nsec / 1_000_000)
}

/// Stores `lease`, or drops the record when it says nothing any more.
fn put_lease(tx: &mut dyn Transaction, ino: Ino, lease: &Lease, now: u64) -> Result<(), Error> {
    if lease.session == 0 && lease.contended_until_ms <= now {
        tx.clear(&schema::append_lease(ino));
        Ok(())
    } else {
        store::put(tx, &schema::append_lease(ino), lease)
    }
}

/// Reserves `req.len` bytes at the end of regular file `ino` for `session` (which must hold
/// it open for writing; session 0, the MDS's own tools, need not). The end is the larger of
/// the size and the caller's `known_size` of the current truncate version, and past the
/// limit of an expired lease of another session; the size moves to the end of the range at
/// once (mtime and ctime move with the writer's size report, as for any write). Cut short
/// at `max_file_size`; nothing left there is EFBIG. While another session's live lease is
/// taken back: `retry`, nothing reserved.
pub fn reserve(
    tx: &mut dyn Transaction,
    now: Timestamp,
    session: u64,
    ino: Ino,
    req: AppendRequest,
) -> Result<Reserved, Error> {
    let ts = now;
    let now = millis(now);
    let mut inode = store::inode(tx, ino)?;
    let before = inode.clone();
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
    let mut lease: Option<Lease> = store::get(tx, &schema::append_lease(ino))?;
    if let Some(l) = lease.as_mut() {
        let live = l.session != 0 && l.truncate_version == a.truncate_version;
        if live && l.session != session {
            if l.expires_ms > now {
                if !l.revoking {
                    l.revoking = true;
                    l.contended_until_ms = now + APPEND_CONTENDED_MS;
                    store::put(tx, &schema::append_lease(ino), &*l)?;
                    // The holder learns it from the change feed, which shows this inode.
                    store::put_inode(tx, &inode)?;
                }
                return Ok(Reserved {
                    offset: 0,
                    len: 0,
                    attr: inode.attr,
                    lease_ms: 0,
                    lease_limit: 0,
                    retry: true,
                });
            }
            // Expired, not given back: its holder may have written anywhere below the limit.
            offset = offset.max(l.limit);
        }
        // The holder asking again counts its leased appends in `known_size`.
        l.session = 0;
    }
    let max = max_file_size(a.layout.as_ref());
    if offset >= max {
        return Err(Error::TooBig);
    }
    let len = req.len.min(max - offset);
    quota::admit_size(tx, &before, offset + len, ts)?;
    let a = &mut inode.attr;
    a.size = offset + len;
    let contended = lease.as_ref().is_some_and(|l| l.contended_until_ms > now);
    let (mut lease_ms, mut lease_limit) = (0, 0);
    // A file in a project gets no lease: every append is counted before it is written.
    if req.want_lease && session != 0 && !contended && a.project == NO_PROJECT {
        lease_ms = APPEND_LEASE_MS;
        lease_limit = a.size.saturating_add(APPEND_LEASE_BYTES).min(max);
        lease = Some(Lease {
            session,
            limit: lease_limit,
            expires_ms: now + APPEND_LEASE_MS,
            truncate_version: a.truncate_version,
            revoking: false,
            contended_until_ms: 0,
        });
    }
    if let Some(l) = &lease {
        put_lease(tx, ino, l, now)?;
    }
    store::put_inode(tx, &inode)?;
    Ok(Reserved {
        offset,
        len,
        attr: inode.attr,
        lease_ms,
        lease_limit,
        retry: false,
    })
}

/// `session` gives back its lease of `ino`: the size moves to `end` (within the lease's
/// limit) when the truncate version is still `truncate_version`. Nothing when it holds no
/// lease (it expired, or was never granted).
pub fn give_back(
    tx: &mut dyn Transaction,
    now: Timestamp,
    session: u64,
    ino: Ino,
    end: u64,
    truncate_version: u64,
) -> Result<(), Error> {
    let now = millis(now);
    let Some(mut l) = store::get::<Lease>(tx, &schema::append_lease(ino))? else {
        return Ok(());
    };
    if l.session != session || session == 0 {
        return Ok(());
    }
    let mut inode = store::inode(tx, ino)?;
    if truncate_version == inode.attr.truncate_version
        && l.truncate_version == truncate_version
        && end > inode.attr.size
    {
        inode.attr.size = end.min(l.limit);
        store::put_inode(tx, &inode)?;
    }
    l.session = 0;
    put_lease(tx, ino, &l, now)
}

impl Mds {
    /// Bookkeeping, as a size report: durable by the next sync. An MDS that crashes before
    /// may hand the range out again after its restart, but only to bytes no fsync covered
    /// (the appender's fsync syncs the MDS's store), which a crash may lose anyway. A call
    /// that may take a lease is on disk before its answer instead (on every MDS): a lease the
    /// MDS forgot in a crash
    /// would let its holder append where others are handed ranges (such calls are rare: the
    /// client asks again only when its lease runs out, and not for a while after one was
    /// refused).
    pub(super) async fn reserve_append(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        len: u64,
        known_size: u64,
        truncate_version: u64,
        want_lease: bool,
    ) -> Result<MdsResponse, MdsError> {
        let req = AppendRequest {
            len,
            known_size,
            truncate_version,
            want_lease,
        };
        let kind = if req.want_lease {
            call.on_disk()
        } else {
            call.bookkeeping()
        };
        let session = call.session;
        let r = self
            .txn(call.creds, vec![ino], kind, move |tx, c| {
                reserve(tx, c.now, session, ino, req)
            })
            .await?;
        Ok(MdsResponse::Reserved {
            offset: r.offset,
            len: r.len,
            attr: r.attr,
            lease_ms: r.lease_ms,
            lease_limit: r.lease_limit,
            retry: r.retry,
        })
    }

    pub(super) async fn return_append_lease(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        end: u64,
        truncate_version: u64,
    ) -> Result<MdsResponse, MdsError> {
        let (kind, session) = (call.bookkeeping(), call.session);
        self.txn(call.creds, vec![ino], kind, move |tx, c| {
            give_back(tx, c.now, session, ino, end, truncate_version)
        })
        .await?;
        Ok(MdsResponse::Done)
    }
}
