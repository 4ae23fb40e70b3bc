//! Striped, replicated data I/O (docs/replication.md): a file range is split into
//! per-object extents and every extent goes to the OSTs holding its stripe at once. Data
//! never passes through the MDS.
//!
//! - Writes and syncs go to every live (not stale) copy of a stripe in parallel (truncates
//!   are the MDS's: docs/replication.md, "Truncate rule").
//!   Copies that fail while another copy of the same stripe succeeded are marked stale at
//!   the MDS (`MarkStale`) before the call returns, and the file's newest layout (kept by
//!   [`super::files`]) skips them from then on; a stripe whose every copy failed fails the
//!   call and marks nothing. See [`Error::marks_copy_stale`] for which failures count.
//! - Reads ask for whole [`CHECKSUM_BLOCK`]s, try the live copies one after the other (copy
//!   0 first, copies whose OST the cluster map says is down last), and hand out only bytes
//!   that match the CRCs the OSS sent with them. Blocks that failed their check on one copy
//!   and were read good from another are rewritten on the bad copy; no good copy is
//!   [`Error::Corrupt`] (EIO). A range one object read holds whole is handed out as a
//!   slice of the verified answer, not copied ([`assemble`]).
//! - A stripe the layout records as written (`Layout::written`) is read with `must_exist`:
//!   a copy whose object is gone answers [`Error::Missing`] and the next copy is tried; one
//!   that has the data makes the read succeed and the missing copy be marked stale, as the
//!   write rule marks a failed copy, so resync refills it. No copy with the object is EIO,
//!   never a hole. The stripes every live copy acknowledged a write of are noted for the
//!   next size report ([`super::files`]), which is how the MDS learns them.
//! - An OSS answering [`Error::OldEpoch`] gets the call again after a map refresh, at most
//!   [`OLD_EPOCH_ATTEMPTS`](rustre_proto::cluster::OLD_EPOCH_ATTEMPTS) times in all.
//! - When no copy of some stripe can be reached (every copy's OSS down, restarting, or
//!   fenced because the MGS is away), reads, writes, truncates and syncs are tried again,
//!   with the map refreshed in between, for up to [`OSS_RETRY_FOR`] before the error reaches
//!   the application: a restart of an OSS or of the MGS is ridden through, as an MDS
//!   restart is. Resending is safe: writes are positional, truncates absolute, syncs and
//!   verified reads repeatable.
//!
//! How long a dead copy can hold a call: a refused connection or a killed OSS process
//! (its sockets are closed by the kernel) fails at once (`Unavailable`); a host that
//! vanished without closing anything costs the connect timeout (`rpc::CONNECT_TIMEOUT`,
//! 5 s) or, on an open connection, the call timeout (`rpc::RPC_TIMEOUT`, 60 s). Writes and
//! truncates do not wait that long once another copy answered: see [`COPY_GRACE`]; reads
//! give up on a copy after [`COPY_READ_TIMEOUT`] when another copy is left to try.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustre_proto::sync::lock;

use bytes::{Bytes, BytesMut};
use futures::future::{join_all, try_join_all};
use rustre_proto::checksum::{self, CHECKSUM_BLOCK};
use rustre_proto::copies::{call_copies, SlotResults};
use rustre_proto::frame::MAX_PAYLOAD_BYTES;
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse};
use rustre_proto::msg::{Creds, Ino, Layout};
use rustre_proto::Error;
use tokio::time::Instant;

use super::fence::FENCE_WAIT_LIMIT;
use super::pending_marks::PendingMark;
use super::stripe::{extents, read_spans, split_extents, ReadSpan};
use super::unstable::Change;
use super::Client;

/// Once one copy of a stripe acknowledged a write or truncate, how much longer the other
/// copies may take before they count as failed (`TimedOut`, marked stale). Bounds what a
/// copy on a vanished host costs a replicated write below the 60 s call timeout. Syncs
/// are not cut short: a sync with much dirty data may legitimately take long.
pub(super) const COPY_GRACE: Duration = Duration::from_secs(15);
/// How long a read waits for one copy while another live copy is left to try.
pub(super) const COPY_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a data call keeps being retried while no copy of a stripe can be reached.
pub(super) const OSS_RETRY_FOR: Duration = Duration::from_secs(30);
/// First pause between such retries; doubles up to [`OSS_RETRY_PAUSE_MAX`].
pub(super) const OSS_RETRY_PAUSE_MIN: Duration = Duration::from_millis(50);
pub(super) const OSS_RETRY_PAUSE_MAX: Duration = Duration::from_secs(1);

/// Most layout refreshes one read or change makes when OSTs answer with newer versions
/// (waits for a layout fenced ahead, [`super::fence`], are not counted).
pub(super) const LAYOUT_REFRESH_ATTEMPTS: usize = 3;

/// How one copy is read: `OssOp::Read`'s flags.
#[derive(Debug, Clone, Copy)]
struct ReadHow {
    /// The MDS records the stripe as written: an absent object is `Missing`, not a hole.
    must_exist: bool,
    /// Bytes and checksums of one moment (a second look after a checksum mismatch).
    consistent: bool,
}

/// The outcome of one operation on each live copy of one stripe, as (slot, result), in
/// slot (copy) order; a success carries the OST instance that answered a change or a
/// sync (the write verifier, see `super::unstable`), `None` for other answers.
pub(super) type CopyResults = SlotResults<Option<u64>>;

/// Judges the copies' answers of every piece of one operation: the slots to mark stale
/// (sorted, possibly none), or the error the operation fails with — that of the first copy
/// of a piece no copy of which succeeded, or an error that does not mark stale.
fn failed_slots(pieces: &[CopyResults]) -> Result<Vec<u32>, Error> {
    let mut failed = BTreeSet::new();
    for piece in pieces {
        if !piece.iter().any(|(_, r)| r.is_ok()) {
            return Err(piece
                .iter()
                .find_map(|(_, r)| r.clone().err())
                .unwrap_or_else(|| Error::Io("no up-to-date copy of a stripe".into())));
        }
        for (slot, r) in piece {
            if let Err(e) = r {
                if !e.marks_copy_stale() {
                    return Err(e.clone());
                }
                failed.insert(*slot as u32);
            }
        }
    }
    Ok(failed.into_iter().collect())
}

/// What one copy's answer to a read is worth.
#[derive(Debug, PartialEq, Eq)]
enum ReadCheck {
    /// Every returned block matches its CRC.
    Good(Bytes),
    /// Blocks (indices from the start of the read) that do not.
    Bad { data: Bytes, blocks: Vec<usize> },
}

/// True when a read answer comes from an object written under a newer layout version than
/// the reader's: the reader's layout may lack stale marks (a copy being resynced can be
/// cut short meanwhile and would read as a hole), so it must refresh it before trusting
/// any copy.
fn written_under_newer_layout(resp: &OssResponse, layout_version: u64) -> bool {
    matches!(resp, OssResponse::Data { version, .. } if *version > layout_version)
}

/// Checks a read answer of at most `asked` bytes against the CRCs it carries.
fn check_read(resp: OssResponse, data: Bytes, asked: usize) -> Result<ReadCheck, Error> {
    let OssResponse::Data { len, crcs, .. } = resp else {
        return Err(Error::Protocol(format!("unexpected OSS answer {resp:?}")));
    };
    if data.len() != len as usize || data.len() > asked {
        return Err(Error::Protocol(format!(
            "OSS returned {} bytes (said {len}) for a read of {asked}",
            data.len()
        )));
    }
    if crcs.len() != data.len().div_ceil(CHECKSUM_BLOCK as usize) {
        return Err(Error::Protocol(format!(
            "OSS sent {} checksums for {} bytes",
            crcs.len(),
            data.len()
        )));
    }
    if checksum::first_bad_block(&data, &crcs).is_none() {
        return Ok(ReadCheck::Good(data));
    }
    let blocks = data
        .chunks(CHECKSUM_BLOCK as usize)
        .zip(&crcs)
        .enumerate()
        .filter(|(_, (block, crc))| checksum::crc32c(block) != **crc)
        .map(|(i, _)| i)
        .collect();
    Ok(ReadCheck::Bad { data, blocks })
}

/// Byte ranges (from the start of a read) to rewrite on a copy whose answer was `bad_len`
/// bytes long with the blocks `bad` failing, from a good answer `good_len` bytes long:
/// every bad block the good copy returned at the same length (a full block, or the same
/// tail), consecutive blocks merged. A block the good copy has not, or has at another
/// length, is left alone: the copies disagree on the object's length there.
fn repair_ranges(bad: &[usize], bad_len: usize, good_len: usize) -> Vec<(usize, usize)> {
    let block = CHECKSUM_BLOCK as usize;
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &b in bad {
        let start = b * block;
        let end = (start + block).min(bad_len);
        if start >= good_len || end > good_len || (start + block).min(good_len) != end {
            continue;
        }
        match out.last_mut() {
            Some(last) if last.1 == start => last.1 = end,
            _ => out.push((start, end)),
        }
    }
    out
}

/// The `len` bytes a read asked for, from the verified answers to its `spans` (in span
/// order, each from its span's start). A range one span holds whole is a slice of that
/// span's answer, the bytes as they came off the wire; only a range over several spans, or
/// one an object ends inside, is put together in a new buffer, with zeros past an object's
/// end (a hole or a short object).
fn assemble(len: usize, spans: &[ReadSpan], answers: &[Bytes]) -> Bytes {
    if let ([s], [data]) = (spans, answers) {
        if s.buf_offset == 0 && s.want == len && data.len() >= s.skip + len {
            return data.slice(s.skip..s.skip + len);
        }
    }
    let mut buf = BytesMut::zeroed(len);
    for (s, data) in spans.iter().zip(answers) {
        let have = data.len().saturating_sub(s.skip).min(s.want);
        if have > 0 {
            buf[s.buf_offset..s.buf_offset + have].copy_from_slice(&data[s.skip..s.skip + have]);
        }
    }
    buf.freeze()
}

impl Client {
    /// Runs `call` again, with the cluster map refreshed in between, while it fails in a way
    /// [`Error::worth_waiting`] and [`OSS_RETRY_FOR`] has not passed.
    pub(super) async fn riding_through<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let deadline = Instant::now() + OSS_RETRY_FOR;
        let mut pause = OSS_RETRY_PAUSE_MIN;
        loop {
            match call().await {
                Err(e) if e.worth_waiting() && Instant::now() + pause < deadline => {
                    tracing::debug!("no copy of a stripe reachable, retrying: {e}");
                    rustre_proto::metrics::client_retry(rustre_proto::frame::Service::Oss);
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(OSS_RETRY_PAUSE_MAX);
                    if let Err(e) = self.cluster.refresh().await {
                        tracing::debug!("cluster map refresh failed: {e}");
                    }
                }
                r => return r,
            }
        }
    }

    /// Sends `op` (with `payload`) to every live copy of `stripe` at once. With `grace`,
    /// copies still running that long after the first success count as `TimedOut`.
    pub(super) async fn to_live_copies(
        &self,
        layout: &Layout,
        stripe: u32,
        op: OssOp,
        payload: Bytes,
        grace: Option<Duration>,
    ) -> CopyResults {
        let cluster = self.cluster.clone();
        let first_copy = layout.slot(stripe, 0);
        let allocated = Arc::new(Mutex::new(None));
        let results = call_copies(&layout.live_copies(stripe), grace, |slot, ost| {
            let (cluster, op, payload) = (cluster.clone(), op.clone(), payload.clone());
            let seen = (slot == first_copy).then(|| allocated.clone());
            async move {
                let (resp, _) = cluster.oss_call(ost, op, payload).await?;
                if let (Some(seen), OssResponse::Written { allocated, .. }) = (seen, &resp) {
                    *lock(&seen) = *allocated;
                }
                Ok(resp.instance())
            }
        })
        .await;
        let object = match &op {
            OssOp::Write { object, .. }
            | OssOp::Repair { object, .. }
            | OssOp::Truncate { object, .. } => Some(*object),
            _ => None,
        };
        if let (Some(object), Some(bytes)) = (object, *lock(&allocated)) {
            self.files.note_allocated(object.ino, stripe, bytes);
        }
        results
    }

    /// Applies the write rule to the outcome of one operation done with `layout`: fails
    /// with the error of a stripe no copy of which succeeded; otherwise marks the failed
    /// copies stale at the MDS (unless a newer layout known here has them stale already)
    /// and succeeds only once the MDS did.
    pub(super) async fn settle(
        &self,
        ino: Ino,
        layout: &Layout,
        pieces: &[CopyResults],
    ) -> Result<(), Error> {
        let failed = failed_slots(pieces)?;
        if failed.is_empty() {
            return Ok(());
        }
        #[cfg(feature = "sim-bug")]
        if rustre_proto::injected_bug::is_on(rustre_proto::injected_bug::Bug::SkipMarkStale) {
            return Ok(());
        }
        let newest = self.files.newest_layout(ino, layout);
        if newest.version > layout.version && failed.iter().all(|s| newest.is_stale(*s as usize)) {
            return Ok(());
        }
        for piece in pieces {
            for (slot, r) in piece {
                if let Err(e) = r {
                    tracing::warn!(ino, slot, "copy failed, marking it stale: {e}");
                }
            }
        }
        let marked = match self.mark_stale(ino, failed.clone(), layout.version).await {
            Ok(marked) => marked,
            Err(e) if e.worth_waiting() => {
                // The MDS was not reached and the copies differ now: the mark is sent again
                // until the MDS takes it.
                self.pending_marks.keep(
                    ino,
                    PendingMark {
                        slots: failed,
                        version: layout.version,
                    },
                );
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if !failed.iter().all(|s| marked.is_stale(*s as usize)) {
            return Err(Error::Io(format!(
                "the MDS did not mark failed copies {failed:?} of inode {ino} stale"
            )));
        }
        Ok(())
    }

    /// Sends the stale marks kept for `ino` (see [`super::pending_marks`]); those the MDS
    /// does not take are kept again and the first error is returned.
    pub(super) async fn send_pending_marks(&self, ino: Ino) -> Result<(), Error> {
        let mut result = Ok(());
        for mark in self.pending_marks.take(ino) {
            match self.mark_stale(ino, mark.slots.clone(), mark.version).await {
                Ok(_) => tracing::info!(ino, slots = ?mark.slots, "kept stale mark taken"),
                Err(e) if !e.worth_waiting() => {
                    // The MDS answered (the file is gone, or the mark is refused): sending
                    // it again would change nothing.
                    tracing::warn!(ino, slots = ?mark.slots, "kept stale mark refused: {e}");
                }
                Err(e) => {
                    self.pending_marks.keep(ino, mark);
                    if result.is_ok() {
                        result = Err(e);
                    }
                }
            }
        }
        result
    }

    /// Sends every stale mark kept (run with each session renewal).
    pub(super) async fn send_all_pending_marks(&self) {
        for ino in self.pending_marks.inodes() {
            if let Err(e) = self.send_pending_marks(ino).await {
                tracing::warn!(ino, "stale mark still not taken: {e}");
            }
        }
    }

    /// Reads `len` bytes at `offset` of file `ino`; ranges no object holds (holes, or past
    /// an object's end) read as zeros. The caller clips the range to the file size. Every
    /// byte returned was verified against its block's CRC.
    pub(crate) async fn read_data(
        &self,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, Error> {
        let mut layout = layout.clone();
        if self.files.layout_needs_check(ino) {
            // Stale marks reach a reader at most one attribute TTL late.
            match self.getattr_from_mds(&Creds::root(), ino).await {
                Ok(a) => layout = a.layout.unwrap_or(layout),
                Err(e) => tracing::debug!(ino, "layout refresh failed: {e}"),
            }
        }
        let deadline = Instant::now() + FENCE_WAIT_LIMIT;
        for _ in 0..LAYOUT_REFRESH_ATTEMPTS {
            match self
                .riding_through(|| self.read_data_once(ino, &layout, offset, len))
                .await
            {
                Err(Error::Stale) => {
                    tracing::debug!(ino, "an OST has a newer layout version: refreshing");
                    layout = self.newer_layout(ino, &layout, deadline).await?;
                }
                // An object gone: the file may have moved to new objects (a migration
                // retired the old ones) under a layout this reader has not seen yet.
                Err(Error::Missing(why)) => {
                    let fresh = self.getattr_from_mds(&Creds::root(), ino).await?;
                    match fresh.layout {
                        Some(f) if f.version > layout.version => layout = f,
                        _ => return Err(Error::Missing(why)),
                    }
                }
                r => return r,
            }
        }
        Err(Error::Io(format!(
            "inode {ino}: the layout changed {LAYOUT_REFRESH_ATTEMPTS} times during one read"
        )))
    }

    pub(super) async fn read_data_once(
        &self,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        len: usize,
    ) -> Result<Bytes, Error> {
        let layout = self.files.newest_layout(ino, layout);
        let spans = read_spans(&extents(&layout, offset, len), MAX_PAYLOAD_BYTES as usize);
        let reads = spans.iter().map(|s| self.read_span(ino, &layout, s));
        let answers = try_join_all(reads).await?;
        Ok(assemble(len, &spans, &answers))
    }

    /// The live copies of `stripe` in the order reads try them: copy 0 first, except that
    /// copies on OSTs the cluster map says are down come last.
    fn read_order(&self, layout: &Layout, stripe: u32) -> Vec<(usize, u32)> {
        let map = self.cluster.map();
        let mut copies = layout.live_copies(stripe);
        copies.sort_by_key(|(_, ost)| map.ost(*ost).is_none_or(|o| o.state != NodeState::Up));
        copies
    }

    /// Reads one block-aligned span from the first live copy that answers with sound data;
    /// returns the verified bytes from the span's start (shorter at the object's end).
    async fn read_span(&self, ino: Ino, layout: &Layout, s: &ReadSpan) -> Result<Bytes, Error> {
        let object = ObjectId {
            ino,
            stripe: s.stripe,
        };
        let copies = self.read_order(layout, s.stripe);
        let must_exist = layout.written.contains(s.stripe);
        let mut damaged: Vec<(usize, u32, Vec<usize>, Bytes)> = Vec::new();
        let mut missing: CopyResults = Vec::new();
        let mut first_err: Option<Error> = None;
        for (i, &(slot, ost)) in copies.iter().enumerate() {
            let last = i + 1 == copies.len();
            let how = ReadHow {
                must_exist,
                consistent: false,
            };
            let mut answer = self
                .read_copy(object, ost, s, last, layout.version, how)
                .await;
            if matches!(answer, Ok(ReadCheck::Bad { .. })) {
                // A read racing a write of the same blocks can see new bytes with old
                // checksums (the OSS sends the data after reading its checksums): look
                // again, at bytes and checksums of one moment, before calling the copy
                // damaged and "repairing" it. Never EIO for a race.
                let how = ReadHow {
                    consistent: true,
                    ..how
                };
                answer = self
                    .read_copy(object, ost, s, last, layout.version, how)
                    .await;
            }
            match answer {
                // Our layout is older than the copy's data: it may miss stale marks.
                Err(Error::Stale) => return Err(Error::Stale),
                Ok(ReadCheck::Good(data)) => {
                    if !damaged.is_empty() {
                        self.repair(ino, layout, s, &damaged, &data).await;
                    }
                    if !missing.is_empty() {
                        missing.push((slot, Ok(None)));
                        missing.sort_by_key(|(slot, _)| *slot);
                        // Failures are logged only: the read has its data.
                        if let Err(e) = self.settle(ino, layout, &[missing]).await {
                            tracing::warn!(ino, "copies missing an object not marked: {e}");
                        }
                    }
                    return Ok(data);
                }
                Ok(ReadCheck::Bad { data, blocks }) => {
                    tracing::warn!(
                        ino,
                        stripe = s.stripe,
                        ost,
                        offset = s.object_offset,
                        ?blocks,
                        "blocks failed their checksum; trying another copy"
                    );
                    damaged.push((slot, ost, blocks, data));
                }
                Err(e @ Error::Missing(_)) => {
                    tracing::warn!(ino, stripe = s.stripe, ost, "trying another copy: {e}");
                    missing.push((slot, Err(e)));
                }
                Err(e) => {
                    tracing::debug!(ino, stripe = s.stripe, ost, "copy read failed: {e}");
                    first_err.get_or_insert(e);
                }
            }
        }
        if damaged.is_empty() {
            // A copy that may come back (an outage is ridden through) before a missing one.
            let gone = missing.into_iter().find_map(|(_, r)| r.err());
            return Err(first_err
                .or(gone)
                .unwrap_or_else(|| Error::Io("no up-to-date copy of a stripe".into())));
        }
        Err(Error::Corrupt(format!(
            "inode {ino} stripe {} at object offset {}: no copy with sound data",
            s.stripe, s.object_offset
        )))
    }

    /// One read of span `s` from the copy on `ost`, checked against its checksums; bounded
    /// by [`COPY_READ_TIMEOUT`] unless it is the `last` copy left to try. With `must_exist`,
    /// an absent object is [`Error::Missing`].
    async fn read_copy(
        &self,
        object: ObjectId,
        ost: u32,
        s: &ReadSpan,
        last: bool,
        layout_version: u64,
        how: ReadHow,
    ) -> Result<ReadCheck, Error> {
        let op = OssOp::Read {
            object,
            offset: s.object_offset,
            len: s.len as u32,
            must_exist: how.must_exist,
            consistent: how.consistent,
        };
        let call = self.cluster.oss_call(ost, op, Bytes::new());
        let answer = if last {
            call.await
        } else {
            tokio::time::timeout(COPY_READ_TIMEOUT, call)
                .await
                .unwrap_or(Err(Error::TimedOut))
        };
        let (resp, data) = answer?;
        if written_under_newer_layout(&resp, layout_version) {
            return Err(Error::Stale);
        }
        check_read(resp, data, s.len)
    }

    /// Rewrites, on each copy in `damaged` (slot, OST, bad blocks, its answer), the bad
    /// blocks `good` holds. Failures are logged only: the read has its data.
    async fn repair(
        &self,
        ino: Ino,
        layout: &Layout,
        s: &ReadSpan,
        damaged: &[(usize, u32, Vec<usize>, Bytes)],
        good: &Bytes,
    ) {
        let object = ObjectId {
            ino,
            stripe: s.stripe,
        };
        let writes = damaged.iter().flat_map(|(slot, ost, blocks, bad_data)| {
            repair_ranges(blocks, bad_data.len(), good.len())
                .into_iter()
                .map(move |(from, to)| {
                    let payload = good.slice(from..to);
                    let offset = s.object_offset + from as u64;
                    // Only if the copy still holds the bad bytes we saw: a write that came
                    // in between must not be undone.
                    let op = OssOp::Repair {
                        object,
                        offset,
                        crc: checksum::crc32c(&payload),
                        version: layout.version,
                        seen: checksum::block_crcs(&bad_data[from..to]),
                    };
                    async move {
                        match self.cluster.oss_call(*ost, op, payload).await {
                            Ok(_) => tracing::info!(
                                ino,
                                stripe = s.stripe,
                                ost,
                                slot,
                                offset,
                                len = to - from,
                                "repaired bad blocks from another copy"
                            ),
                            Err(e) => tracing::warn!(
                                ino,
                                stripe = s.stripe,
                                ost,
                                slot,
                                offset,
                                "repair of bad blocks failed: {e}"
                            ),
                        }
                    }
                })
        });
        join_all(writes).await;
    }

    /// Writes `data` at `offset` of file `ino`: every piece to every live copy of its
    /// stripe, all in parallel; with `sync` the OSTs have it on disk before this returns.
    /// Copies that failed are marked stale before this returns (see the module docs).
    pub(crate) async fn write_data(
        &self,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        data: Bytes,
        sync: bool,
    ) -> Result<(), Error> {
        self.files.no_inline(ino);
        self.spill_if_inline(ino).await?;
        let data = &data;
        let written = self
            .with_fresh_layout(ino, layout, |layout| async move {
                self.riding_through(|| {
                    self.write_data_once(ino, &layout, offset, data.clone(), sync)
                })
                .await
            })
            .await;
        // A page fetched while these bytes were on their way (after the write reached this
        // client, so after the bump it made) holds what the OSTs had before them:
        // dropped, and any fetch still in flight is not kept.
        self.cache
            .invalidate_range(ino, layout.stripe_size as u64, offset, data.len() as u64);
        written
    }

    /// Runs a change of `ino` with `layout`, and again with the layout fetched afresh from
    /// the MDS when an OST refuses it for carrying an older layout version than the object
    /// was written under (`Stale`: copies may have been marked stale since), at most
    /// [`LAYOUT_REFRESH_ATTEMPTS`] times in all.
    pub(super) async fn with_fresh_layout<F, Fut>(
        &self,
        ino: Ino,
        layout: &Layout,
        mut change: F,
    ) -> Result<(), Error>
    where
        F: FnMut(Layout) -> Fut,
        Fut: std::future::Future<Output = Result<(), Error>>,
    {
        let mut layout = layout.clone();
        let deadline = Instant::now() + FENCE_WAIT_LIMIT;
        for _ in 0..LAYOUT_REFRESH_ATTEMPTS {
            if self.files.is_evicted(ino) {
                // Its opens ended with an expired session: nothing more of it may go out.
                return Err(Error::Io(format!(
                    "inode {ino}: this client was evicted (its session expired)"
                )));
            }
            match change(layout.clone()).await {
                Err(Error::Stale) => {
                    tracing::debug!(ino, "an OST holds a newer layout version: refreshing");
                    layout = self.newer_layout(ino, &layout, deadline).await?;
                }
                r => return r,
            }
        }
        Err(Error::Io(format!(
            "inode {ino}: the layout changed {LAYOUT_REFRESH_ATTEMPTS} times during one change"
        )))
    }

    async fn write_data_once(
        &self,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        data: Bytes,
        sync: bool,
    ) -> Result<(), Error> {
        let layout = self.files.newest_layout(ino, layout);
        let pieces = split_extents(
            extents(&layout, offset, data.len()),
            MAX_PAYLOAD_BYTES as usize,
        );
        let writes = pieces.iter().map(|e| {
            let (op, payload) = e.write(ino, &data, sync, layout.version);
            self.to_live_copies(&layout, e.stripe, op, payload, Some(COPY_GRACE))
        });
        let outcome = join_all(writes).await;
        let stripes: Vec<u32> = pieces.iter().map(|e| e.stripe).collect();
        let keep = !sync && self.writeback.enabled();
        let change = keep.then(|| Change { offset, data });
        self.note_changes(ino, &layout, &stripes, &outcome, change, sync);
        self.settle(ino, &layout, &outcome).await?;
        // Every live copy has these stripes' objects now (copies that failed are stale).
        self.files.wrote_stripes(ino, &stripes);
        Ok(())
    }

    /// Notes, for the write verifiers, which OST instance acknowledged a change of `ino`
    /// on each copy (`outcome` per piece, the pieces on `stripes`), and keeps `change`.
    fn note_changes(
        &self,
        ino: Ino,
        layout: &Layout,
        stripes: &[u32],
        outcome: &[CopyResults],
        change: Option<Change>,
        durable: bool,
    ) {
        let acks: Vec<((u32, u32), u64)> = stripes
            .iter()
            .zip(outcome)
            .flat_map(|(stripe, copies)| {
                copies.iter().filter_map(move |(slot, r)| {
                    let instance = r.as_ref().ok().copied().flatten()?;
                    Some(((*stripe, layout.osts[*slot]), instance))
                })
            })
            .collect();
        self.unstable.noted(ino, layout, &acks, change, durable);
    }
}

#[cfg(test)]
mod tests;
