//! The MDS operations of data on the MDS (`CloseInline`, `ReadInline`, `Spill`) and the
//! move of a file's kept bytes to its objects ([`Mds::spill`]), built on the rules of
//! [`super`].

use std::sync::Arc;

use bytes::Bytes;
use rustre_proto::copies::call_copies;
use rustre_proto::msg::extent::extents;
use rustre_proto::msg::mds::{MdsResponse, SetAttr, INLINE_MAX_BYTES};
use rustre_proto::msg::{Creds, Ino, Layout, StripeSet};
use rustre_proto::Error;

use super::{
    keep, read, spilled, INLINE_RECORD_OVERHEAD_BYTES, SPILL_ATTEMPTS, SPILL_CALL_TIMEOUT,
};
use crate::mds::attr::{self, SizeReport};
use crate::mds::dispatch::Call;
use crate::mds::error::MdsError;
use crate::mds::truncate::{self, CUT_COPY_GRACE, CUT_LOCK_STRIPES};
use crate::mds::txn::Mutation;
use crate::mds::Mds;

impl Mds {
    /// The most bytes of one file this MDS keeps (0: none).
    pub(in crate::mds) fn inline_max(&self) -> usize {
        (self.cfg.inline_max as usize).min(INLINE_MAX_BYTES)
    }

    /// `MdsOp::CloseInline`: bookkeeping, as a size report (a durable change when it
    /// carries attribute changes). Refused at once when the bytes are past this MDS's
    /// limit or its store's disk is within its reserve (the caller writes them to the
    /// OSTs instead).
    pub(in crate::mds) async fn close_inline(
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
                let (size, version) = (report.size, report.truncate_version);
                if !keep(tx, session, ino, size, version, &data)? {
                    return Ok(None);
                }
                attr::report_and_setattr(tx, c, ino, &report, &set).map(Some)
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
    pub(in crate::mds) async fn read_inline(
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
    pub(in crate::mds) async fn spill_op(
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
    pub(in crate::mds) async fn open_after_spills<T, F, Fut>(
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
    pub(in crate::mds) async fn spill(self: &Arc<Self>, ino: Ino) -> Result<(), MdsError> {
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
            let (op, payload) = e.write(ino, data, true, layout.version);
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
