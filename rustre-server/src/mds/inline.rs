//! Data on the MDS (docs/data-on-mds.md): the bytes of a small file written once, kept in
//! the metadata store under `inline/{ino}` instead of the file's objects, so that writing
//! it costs one MDS call at its close and reading it one at its open.
//!
//! - **In**: only at the close of the session that made the file (`MdsOp::CloseInline`),
//!   when no other session holds it open, it has no written stripe, no truncate cut or
//!   migration is pending, and the bytes fit the MDS's limit ([`close`]). The bytes, the
//!   size report and the attribute changes kept until close go in one transaction.
//! - **Read**: an open for reading only answers the bytes with the attributes; a reader
//!   asks again with `ReadInline` ([`read`]); a reader told the data is gone reads objects.
//! - **Cut**: a truncate shortens the kept bytes (past them, up to the size, the file
//!   reads as zeros); a truncate to 0 drops them, and the file is a plain one ([`cut`]).
//! - **Out**: before any open for writing (other than one truncating to 0) and on
//!   `MdsOp::Spill`, the MDS writes the bytes to the file's objects (every live copy,
//!   synced; a copy that fails is marked stale) and then, in one transaction, drops them
//!   and marks the stripes written ([`Mds::spill`]). An open for writing finding the
//!   file inline is refused in its transaction ([`MdsError::MustSpill`]) and tried again
//!   after the spill, so no writer ever writes the objects of a file whose bytes the
//!   store holds.
//! - **Gone**: removing the inode drops its bytes (`namespace`). A size report naming
//!   written stripes hands the file to its objects ([`objects_written`]).

use std::sync::Arc;

use bytes::Bytes;
use rustre_proto::checksum;
use rustre_proto::copies::call_copies;
use rustre_proto::msg::extent::extents;
use rustre_proto::msg::mds::SetAttr;
use rustre_proto::msg::oss::{ObjectId, OssOp};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Layout, StripeSet};
use rustre_proto::Error;

use rustre_proto::msg::mds::{MdsResponse, INLINE_MAX_BYTES};

use super::attr::{self, ReportedSetAttr, SizeReport};
use super::dispatch::Call;
use super::error::MdsError;
use super::namespace::Ctx;
use super::store;
use super::truncate::{self, CUT_COPY_GRACE, CUT_LOCK_STRIPES};
use super::txn::Mutation;
use super::Mds;
use crate::meta::Transaction;
use crate::schema;

/// How many times a spill starts over when the kept bytes changed while they were written
/// (a truncate in between) before the caller is told to try later.
pub const SPILL_ATTEMPTS: usize = 4;
/// What keeping a file's bytes adds to the store beyond them, about (for the reserve).
pub const INLINE_RECORD_OVERHEAD_BYTES: u64 = 256;
/// How long one write of a spill to one copy may take.
pub const SPILL_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `MdsOp::CloseInline`: keeps `data` as the bytes of `ino`, with `report` and `set`
/// applied as `ReportAndSetAttr` does. `None` (nothing changed) when the file may not go
/// inline: see the module docs (the caller checked `data` against this MDS's limit).
pub fn close(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    session: u64,
    ino: Ino,
    report: &SizeReport,
    data: &[u8],
    set: &SetAttr,
) -> Result<Option<ReportedSetAttr>, Error> {
    if data.is_empty() || data.len() as u64 > report.size {
        return Ok(None);
    }
    let mut inode = store::inode(tx, ino)?;
    if inode.attr.kind != FileKind::File {
        return Err(Error::Invalid("data on the MDS for a non-file".into()));
    }
    let untouched = inode
        .attr
        .layout
        .as_ref()
        .is_some_and(|l| l.written.is_empty());
    if !untouched
        || report.truncate_version != inode.attr.truncate_version
        || session == 0
        || !only_opener(tx, ino, session)?
        || truncate::pending(tx, ino)?
        || tx.get(&schema::migrate(ino))?.is_some()
    {
        return Ok(None);
    }
    tx.set(&schema::inline(ino), data);
    if !inode.attr.inline {
        inode.attr.inline = true;
        store::put_inode(tx, &inode)?;
    }
    attr::report_and_setattr(tx, ctx, ino, report, set).map(Some)
}

/// True when `session` holds `ino` open for writing and no other session holds it open.
fn only_opener(tx: &mut dyn Transaction, ino: Ino, session: u64) -> Result<bool, Error> {
    if tx.get(&schema::write_open(ino, session))?.is_none() {
        return Ok(false);
    }
    let (s, e) = schema::open_range(ino);
    let ours = schema::open(ino, session);
    Ok(tx.range(&s, &e, 2)?.iter().all(|(k, _)| *k == ours))
}

/// The attributes of `ino` and, when its data is on the MDS, its bytes.
pub fn read(tx: &mut dyn Transaction, ino: Ino) -> Result<(Attr, Option<Bytes>), Error> {
    let inode = store::inode(tx, ino)?;
    let data = bytes_of(tx, &inode.attr)?;
    Ok((inode.attr, data))
}

/// The bytes of a file whose data is on the MDS (`None` for any other): an inode marked
/// inline without them reads as zeros (`rustre fsck` reports it).
pub fn bytes_of(tx: &mut dyn Transaction, attr: &Attr) -> Result<Option<Bytes>, Error> {
    if !attr.inline {
        return Ok(None);
    }
    Ok(Some(
        tx.get(&schema::inline(attr.ino))?
            .map(Bytes::from)
            .unwrap_or_default(),
    ))
}

/// A truncate of `attr`'s file to `size`: the kept bytes past it go; at 0 all of them,
/// and the file is no longer inline. Nothing for a file whose data is not on the MDS.
pub fn cut(tx: &mut dyn Transaction, attr: &mut Attr, size: u64) -> Result<(), Error> {
    if !attr.inline {
        return Ok(());
    }
    let key = schema::inline(attr.ino);
    if size == 0 {
        tx.clear(&key);
        attr.inline = false;
        return Ok(());
    }
    if let Some(bytes) = tx.get(&key)? {
        if bytes.len() as u64 > size {
            tx.set(&key, &bytes[..size as usize]);
        }
    }
    Ok(())
}

/// In a size report's transaction: a writer reports stripes it wrote of a file whose
/// bytes the store still holds. No open for writing lets that happen; a client whose
/// `CloseInline` committed but whose answer never came (it gave up after its retries)
/// writes its whole buffer, every byte of the file from offset 0, to the objects and
/// reports them. Its objects then hold the newest bytes: the kept ones go. True when
/// `attr` changed.
pub fn objects_written(
    tx: &mut dyn Transaction,
    attr: &mut Attr,
    written: &StripeSet,
) -> Result<bool, Error> {
    if !attr.inline || written.is_empty() {
        return Ok(false);
    }
    tracing::warn!(
        ino = attr.ino,
        "a writer reports objects of a file whose data is on the MDS: the objects take over"
    );
    tx.clear(&schema::inline(attr.ino));
    attr.inline = false;
    Ok(true)
}

/// In an open's transaction: an open of `ino` with `flags` that may write a file whose
/// data is on the MDS waits for the bytes to move to the objects ([`MdsError::MustSpill`]);
/// a truncate to 0 drops them instead (in the open, [`cut`]).
pub fn check_write_open(tx: &mut dyn Transaction, ino: Ino, flags: i32) -> Result<(), MdsError> {
    let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
    if !writes || flags & libc::O_TRUNC != 0 {
        return Ok(());
    }
    if store::inode(tx, ino)?.attr.inline {
        return Err(MdsError::MustSpill(ino));
    }
    Ok(())
}

/// Drops the kept bytes of `ino` once they are in its objects: only when they are still
/// `data` and the layout is still `version` (else the spill starts over: `false`). The
/// `failed` slots (copies that did not take them) are marked stale, and the stripes the
/// bytes reached written.
fn spilled(
    tx: &mut dyn Transaction,
    ino: Ino,
    data: &[u8],
    version: u64,
    stripes: &StripeSet,
    failed: &[u32],
) -> Result<bool, Error> {
    let inode = store::inode(tx, ino)?;
    if !inode.attr.inline {
        return Ok(true);
    }
    let key = schema::inline(ino);
    let same_bytes = tx.get(&key)?.is_some_and(|b| b == data);
    let same_layout = inode.attr.layout.as_ref().map(|l| l.version) == Some(version);
    if !same_bytes || !same_layout {
        return Ok(false);
    }
    if !failed.is_empty() {
        super::replica::mark_stale(tx, ino, failed, version)?;
    }
    let mut inode = store::inode(tx, ino)?;
    if let Some(layout) = inode.attr.layout.as_mut() {
        layout.note_written(stripes);
    }
    inode.attr.inline = false;
    tx.clear(&key);
    store::put_inode(tx, &inode)?;
    Ok(true)
}

impl Mds {
    /// The most bytes of one file this MDS keeps (0: none).
    pub(super) fn inline_max(&self) -> usize {
        (self.cfg.inline_max as usize).min(INLINE_MAX_BYTES)
    }

    /// `MdsOp::CloseInline`: bookkeeping, as a size report (a durable change when it
    /// carries attribute changes). Refused at once when the bytes are past this MDS's
    /// limit or its store's disk is within its reserve (the caller writes them to the
    /// OSTs instead).
    pub(super) async fn close_inline(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        report: SizeReport,
        data: Bytes,
        set: SetAttr,
    ) -> Result<MdsResponse, MdsError> {
        let max = self.inline_max();
        let room = data.len() as u64 + INLINE_RECORD_OVERHEAD_BYTES;
        if data.len() > max || !self.space.has_room(room, || self.kv.capacity()) {
            return Ok(MdsResponse::InlineRefused);
        }
        let kind = if set == SetAttr::default() {
            call.bookkeeping()
        } else {
            call.change()
        };
        let session = call.session;
        let kept = self
            .txn(call.creds, vec![ino], kind, move |tx, c| {
                close(tx, c, session, ino, &report, &data, &set)
            })
            .await?;
        let Some(r) = kept else {
            return Ok(MdsResponse::InlineRefused);
        };
        if let Some(m) = crate::metrics::get() {
            m.inline_closes.inc();
        }
        Ok(MdsResponse::ReportedSetAttr {
            attr: r.attr,
            refused: r.refused,
        })
    }

    /// `MdsOp::ReadInline`. Reading needs no permission here: the open that gave the
    /// caller its handle checked it, as it does for the objects an OST serves.
    pub(super) async fn read_inline(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
    ) -> Result<MdsResponse, MdsError> {
        let (attr, data) = self
            .txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
                read(tx, ino)
            })
            .await?;
        Ok(MdsResponse::InlineData { attr, data })
    }

    /// `MdsOp::Spill`: the file's attributes once its data is in its objects.
    pub(super) async fn spill_op(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
    ) -> Result<MdsResponse, MdsError> {
        self.spill(ino).await?;
        let (attr, _) = self
            .txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
                read(tx, ino)
            })
            .await?;
        Ok(MdsResponse::Attr(attr))
    }

    /// An open (see `Mds::open`) whose transaction found it must wait for a spill: the
    /// spill, then the open again, at most [`SPILL_ATTEMPTS`] times.
    pub(super) async fn open_after_spills<T, F, Fut>(
        self: &Arc<Self>,
        mut open: F,
    ) -> Result<T, MdsError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, MdsError>>,
    {
        for _ in 0..SPILL_ATTEMPTS {
            match open().await {
                Err(MdsError::MustSpill(ino)) => self.spill(ino).await?,
                r => return r,
            }
        }
        open().await
    }

    /// Moves the bytes of `ino` from the store to its objects, if they are there (see the
    /// module docs). Serialized with the inode's truncate cuts. A copy that cannot be
    /// written is marked stale in the transaction that drops the bytes (resync refills
    /// it); a stripe no copy of which took them fails the move (`Unavailable`, the caller
    /// tries again), and the bytes stay in the store, where every reader still finds them.
    pub(super) async fn spill(self: &Arc<Self>, ino: Ino) -> Result<(), MdsError> {
        let _serial = self.cut_locks[ino as usize % CUT_LOCK_STRIPES].lock().await;
        for _ in 0..SPILL_ATTEMPTS {
            let (attr, data) = self
                .txn(Creds::root(), vec![], Mutation::ReadOnly, move |tx, _| {
                    read(tx, ino)
                })
                .await?;
            let Some(data) = data else { return Ok(()) };
            let layout = attr
                .layout
                .ok_or_else(|| Error::Corrupt(format!("inode {ino}: inline without a layout")))?;
            let (stripes, failed) = self.write_objects(ino, &layout, &data).await?;
            if !failed.is_empty() {
                tracing::warn!(ino, slots = ?failed, "copies missed a move of data on the MDS; marking them stale");
            }
            let version = layout.version;
            let done = self
                .txn(Creds::root(), vec![], Mutation::ON_DISK, move |tx, _| {
                    spilled(tx, ino, &data, version, &stripes, &failed)
                })
                .await?;
            if done {
                if let Some(m) = crate::metrics::get() {
                    m.inline_spills.inc();
                }
                return Ok(());
            }
        }
        Err(Error::Unavailable(format!(
            "inode {ino}: its data kept changing while it moved to its objects"
        ))
        .into())
    }

    /// Writes `data` at offset 0 of the objects of `ino` (every live copy of every stripe
    /// it reaches, synced, all at once); answers the stripes written and the slots of the
    /// copies that failed (to mark stale). A stripe no copy of which took the bytes fails
    /// the whole move.
    async fn write_objects(
        &self,
        ino: Ino,
        layout: &Layout,
        data: &Bytes,
    ) -> Result<(StripeSet, Vec<u32>), MdsError> {
        let mut stripes = StripeSet::default();
        let mut pieces = tokio::task::JoinSet::new();
        for e in extents(layout, 0, data.len()) {
            stripes.insert(e.stripe);
            let payload = data.slice(e.buf_offset..e.buf_offset + e.len);
            let op = OssOp::Write {
                object: ObjectId {
                    ino,
                    stripe: e.stripe,
                },
                offset: e.object_offset,
                sync: true,
                crc: checksum::crc32c(&payload),
                version: layout.version,
            };
            let cluster = self.cluster.clone();
            let copies = layout.live_copies(e.stripe);
            pieces.spawn(async move {
                call_copies(&copies, Some(CUT_COPY_GRACE), |_, ost| {
                    let (cluster, op, payload) = (cluster.clone(), op.clone(), payload.clone());
                    async move {
                        let call = cluster.oss_call(ost, op, payload);
                        match tokio::time::timeout(SPILL_CALL_TIMEOUT, call).await {
                            Ok(r) => r.map(|_| ()),
                            Err(_) => Err(Error::TimedOut),
                        }
                    }
                })
                .await
            });
        }
        let mut results = Vec::new();
        while let Some(joined) = pieces.join_next().await {
            results.push(joined.map_err(|e| Error::Io(format!("a move's write failed: {e}")))?);
        }
        let failed = truncate::failed_slots(&results).map_err(|e| {
            Error::Unavailable(format!("inode {ino}: moving its data to its objects: {e}"))
        })?;
        Ok((stripes, failed))
    }
}
