//! Size changes made durable: the intent a truncate records and the MDS carrying it out
//! (docs/replication.md, "Truncate rule").
//!
//! The transaction that changes a regular file's size (`SetAttr` with a size, an `Open` with
//! `O_TRUNC`, a `Create` opening an existing file with it) also writes `truncate/{ino}`
//! ([`TruncateIntent`], merged with one still pending). Before it answers, the MDS cuts every
//! up-to-date copy of every stripe to the length it has at the new size ([`Mds::finish_truncate`]),
//! then removes the intent. So when a truncate returns, its cut is done; the client never cuts.
//!
//! - A copy that fails while another copy of its stripe was cut is marked stale in the
//!   transaction that removes the intent (as the write rule does); resync refills it.
//! - While no copy of some stripe can be reached, the caller keeps trying for [`CUT_WAIT`];
//!   then it answers `Unavailable` (the client resends the call with its request id, and the
//!   repeat carries the cut out again) and the intent stays.
//! - An intent left behind (the MDS died before the cut, or the cut failed) is carried out
//!   by the worker ([`replay_pass`], every [`REPLAY_INTERVAL`]) and by any open of the file,
//!   which is answered only once it is done. A repeated call of the truncate itself (same
//!   request id) carries it out before it answers too.
//! - Cuts of one inode are serialized on an in-process lock, and across the MDS sharing the
//!   store by a claim in the intent (owner and lease, [`CUT_CLAIM_MS`], longer than one try's
//!   calls can run); a caller answers only once no intent is left. So a cut is never sent
//!   after the answer to the truncate (or to an open) it belongs to, and never lands on data
//!   written after that answer.

#[cfg(test)]
pub(super) mod tests;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::cluster::Cluster;
use rustre_proto::copies::{call_copies, SlotResults};
use rustre_proto::msg::oss::{ObjectId, OneInstance, OssOp};
use rustre_proto::msg::{Creds, Ino, Layout};
use rustre_proto::Error;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::error::MdsError;
use super::replica;
use super::store::{self, TruncateIntent};
use super::txn::Mutation;
use super::Mds;
use crate::meta::Transaction;
use crate::schema;
use rustre_proto::host::now_ms;

/// In-process locks serializing the cuts of one inode (inode number modulo this).
pub const CUT_LOCK_STRIPES: usize = 64;
/// How long a caller keeps trying to cut while no copy of some stripe can be reached,
/// before it answers `Unavailable` (below the client's 15 s wait for one try of a call).
pub const CUT_WAIT: Duration = Duration::from_secs(10);
/// First pause between such tries; doubles up to [`CUT_PAUSE_MAX`].
pub const CUT_PAUSE_MIN: Duration = Duration::from_millis(50);
pub const CUT_PAUSE_MAX: Duration = Duration::from_secs(1);
/// Once one copy of a stripe is cut, how much longer the others may take before they count
/// as failed (`TimedOut`, marked stale): a copy on a host that vanished would otherwise
/// hold the cut for the 60 s call timeout.
pub const CUT_COPY_GRACE: Duration = Duration::from_secs(5);
/// Longest wait for the answer to one `Truncate` call (then `TimedOut`).
pub const CUT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim on an intent keeps other MDS sharing the store from cutting the same
/// objects: longer than one try can have calls in flight (two calls of [`CUT_CALL_TIMEOUT`]
/// per copy), renewed at every try.
pub const CUT_CLAIM_MS: u64 = 30_000;

const _: () = assert!(CUT_CLAIM_MS > 2 * CUT_CALL_TIMEOUT.as_millis() as u64);

/// How often the worker looks for intents left behind.
pub const REPLAY_INTERVAL: Duration = Duration::from_secs(1);
/// Most intents the worker carries out per pass.
pub const REPLAY_BATCH: usize = 64;
/// Most intents one caller carries out in a row for one inode (each new one is a truncate
/// that committed meanwhile); past it the caller answers and the worker goes on.
const CUT_ROUNDS_MAX: usize = 16;

/// TEST ONLY. With this environment variable set to `1`, an MDS process exits (status
/// [`TEST_EXIT_STATUS`]) right after a `SetAttr` that changed a file's size committed,
/// before any object is cut: what `tests/truncate.rs` uses to crash an MDS between the two.
/// Never set it on a real cluster.
pub const TEST_EXIT_AFTER_TRUNCATE_COMMIT_ENV: &str = "RUSTRE_TEST_MDS_EXIT_AFTER_TRUNCATE_COMMIT";
/// The exit status of an MDS stopped by [`TEST_EXIT_AFTER_TRUNCATE_COMMIT_ENV`].
pub const TEST_EXIT_STATUS: i32 = 75;

/// In a transaction that changed the size of `ino` to `size` (its truncate version now
/// `truncate_version`): records the intent to cut its objects, merged with one still
/// pending so that the smallest size cut to survives (and the pending one's claim with it:
/// whoever is cutting goes on, and cuts the merged intent next).
pub fn record(
    tx: &mut dyn Transaction,
    ino: Ino,
    size: u64,
    truncate_version: u64,
) -> Result<(), Error> {
    let key = schema::truncate(ino);
    let pending: Option<TruncateIntent> = store::get(tx, &key)?;
    let intent = match pending {
        Some(p) => TruncateIntent {
            size,
            cut_to: p.cut_to.min(size),
            truncate_version,
            ..p
        },
        None => TruncateIntent {
            size,
            cut_to: size,
            truncate_version,
            owner: String::new(),
            until_ms: 0,
        },
    };
    store::put(tx, &key, &intent)
}

/// True when `ino` has a size change whose objects are not cut yet.
pub fn pending(tx: &mut dyn Transaction, ino: Ino) -> Result<bool, Error> {
    Ok(tx.get(&schema::truncate(ino))?.is_some())
}

/// What an MDS may do about the intent of an inode.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Claim {
    /// No intent (an intent whose inode is gone, or has no layout, was dropped).
    Nothing,
    /// Another MDS (this address) is cutting the objects and its claim still runs.
    Busy(String),
    /// Claimed by the caller: cut the objects of this layout (the inode's current one).
    Cut(TruncateIntent, Layout),
}

/// Claims the intent of `ino` for `owner` until `until_ms`, unless another MDS's claim still
/// runs at `now_ms` (renews the caller's own).
pub fn claim(
    tx: &mut dyn Transaction,
    ino: Ino,
    owner: &str,
    now_ms: u64,
    until_ms: u64,
) -> Result<Claim, Error> {
    let key = schema::truncate(ino);
    let Some(mut intent) = store::get::<TruncateIntent>(tx, &key)? else {
        return Ok(Claim::Nothing);
    };
    if !intent.owner.is_empty() && intent.owner != owner && intent.until_ms > now_ms {
        return Ok(Claim::Busy(intent.owner));
    }
    let Some(layout) = store::get_inode(tx, ino)?.and_then(|i| i.attr.layout) else {
        tx.clear(&key);
        return Ok(Claim::Nothing);
    };
    intent.owner = owner.to_string();
    intent.until_ms = until_ms;
    store::put(tx, &key, &intent)?;
    Ok(Claim::Cut(intent, layout))
}

/// How a carried-out intent was settled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Settled {
    /// The intent is gone (or a newer one, still claimed by the caller, is next); with the
    /// new layout if copies were marked stale.
    Done(Option<Layout>),
    /// The layout changed while cutting (a copy marked stale or moved), or the caller's
    /// claim lapsed and another MDS took the intent: try again.
    Again,
}

/// After `intent` of `ino` was carried out by `owner` with layout version `version`, the
/// copies in `failed` having failed while another copy of their stripe was cut: marks those
/// stale and removes the intent, unless the layout changed or the claim was lost meanwhile.
/// An intent a newer truncate merged into meanwhile stays (its own cut follows).
pub fn settle(
    tx: &mut dyn Transaction,
    ino: Ino,
    intent: &TruncateIntent,
    owner: &str,
    version: u64,
    failed: &[u32],
) -> Result<Settled, Error> {
    let key = schema::truncate(ino);
    let Some(current) = store::get::<TruncateIntent>(tx, &key)? else {
        // Settled by another MDS whose claim replaced a lapsed one of ours.
        return Ok(Settled::Done(None));
    };
    if current.owner != owner {
        return Ok(Settled::Again);
    }
    let Some(inode) = store::get_inode(tx, ino)? else {
        tx.clear(&key);
        return Ok(Settled::Done(None));
    };
    if inode.attr.layout.as_ref().map(|l| l.version) != Some(version) {
        return Ok(Settled::Again);
    }
    let marked = if failed.is_empty() {
        None
    } else {
        replica::mark_stale(tx, ino, failed, version)?.layout
    };
    if current.same_change(intent) {
        tx.clear(&key);
    }
    Ok(Settled::Done(marked))
}

/// The cut of every live copy of one stripe: `(slot, result)`.
pub(super) type StripeCuts = SlotResults<()>;

/// Judges the cuts of every stripe: the slots to mark stale, or the error of the first
/// stripe no copy of which was cut (or of a failure that marks nothing).
pub(super) fn failed_slots(stripes: &[StripeCuts]) -> Result<Vec<u32>, Error> {
    let mut failed = Vec::new();
    for cuts in stripes {
        if !cuts.iter().any(|(_, r)| r.is_ok()) {
            return Err(cuts
                .iter()
                .find_map(|(_, r)| r.clone().err())
                .unwrap_or_else(|| Error::Io("a stripe without an up-to-date copy".into())));
        }
        for (slot, r) in cuts {
            match r {
                Ok(()) => {}
                Err(e) if e.marks_copy_stale() => failed.push(*slot as u32),
                Err(e) => return Err(e.clone()),
            }
        }
    }
    failed.sort_unstable();
    Ok(failed)
}

/// A mutation that removes an intent or marks copies stale: on disk before anyone is told
/// the cut is done (a forgotten stale mark would let a copy that missed the cut be read).
const SETTLE: Mutation = Mutation::ON_DISK;

/// Whether the test-only crash point is armed ([`TEST_EXIT_AFTER_TRUNCATE_COMMIT_ENV`]).
fn exit_after_commit_armed() -> bool {
    static ARMED: OnceLock<bool> = OnceLock::new();
    *ARMED
        .get_or_init(|| std::env::var(TEST_EXIT_AFTER_TRUNCATE_COMMIT_ENV).is_ok_and(|v| v == "1"))
}

/// TEST ONLY: exits the process here when [`TEST_EXIT_AFTER_TRUNCATE_COMMIT_ENV`] is set.
pub(super) fn test_crash_point(ino: Ino) {
    if exit_after_commit_armed() {
        tracing::error!(
            ino,
            "{TEST_EXIT_AFTER_TRUNCATE_COMMIT_ENV} is set: exiting after the size change \
             committed, before its cut"
        );
        std::process::exit(TEST_EXIT_STATUS);
    }
}

impl Mds {
    /// Carries out the pending size change of `ino` (and any that commit meanwhile) before
    /// the caller answers, trying for [`CUT_WAIT`] while no copy of some stripe can be
    /// reached. Returns the file's new layout when copies were marked stale.
    pub(super) async fn finish_truncate(
        self: &Arc<Self>,
        ino: Ino,
    ) -> Result<Option<Layout>, MdsError> {
        let deadline = Instant::now() + CUT_WAIT;
        let mut pause = CUT_PAUSE_MIN;
        loop {
            match self.carry_out(ino).await {
                Err(MdsError::Answer(e)) if e.worth_waiting() => {
                    if Instant::now() + pause >= deadline {
                        return Err(Error::Unavailable(format!(
                            "cannot cut the objects of inode {ino} yet: {e}"
                        ))
                        .into());
                    }
                    tracing::debug!(ino, "cut waits for an OST: {e}");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(CUT_PAUSE_MAX);
                    if let Err(e) = self.cluster.refresh().await {
                        tracing::debug!("cluster map refresh failed: {e}");
                    }
                }
                r => return r,
            }
        }
    }

    /// One try at the intents of `ino`, holding its cut lock: each one found is claimed, cut
    /// and settled, until none is left. `Unavailable` while another MDS holds the claim.
    pub(super) async fn carry_out(self: &Arc<Self>, ino: Ino) -> Result<Option<Layout>, MdsError> {
        let _serial = self.cut_locks[ino as usize % CUT_LOCK_STRIPES].lock().await;
        let owner = self.cfg.advertise_addr.clone();
        let mut new_layout = None;
        for _ in 0..CUT_ROUNDS_MAX {
            let (now, o) = (now_ms(), owner.clone());
            let claim = self
                .txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
                    claim(tx, ino, &o, now, now + CUT_CLAIM_MS)
                })
                .await?;
            let (intent, layout) = match claim {
                Claim::Nothing => return Ok(new_layout),
                Claim::Busy(other) => {
                    return Err(Error::Unavailable(format!(
                        "the objects of inode {ino} are being cut by the MDS at {other}"
                    ))
                    .into())
                }
                Claim::Cut(intent, layout) => (intent, layout),
            };
            // The size change that asked for this cut must outlive a power loss before any
            // object is cut (a durable MDS synced it before answering it).
            if !self.cfg.durable {
                self.kv.durable().await?;
            }
            let cuts = self.cut_objects(ino, &intent, &layout).await;
            let failed = failed_slots(&cuts)?;
            if !failed.is_empty() {
                tracing::warn!(ino, slots = ?failed, "copies missed a cut; marking them stale");
            }
            let (version, o) = (layout.version, owner.clone());
            let settled = self
                .txn(Creds::root(), vec![ino], SETTLE, move |tx, _| {
                    settle(tx, ino, &intent, &o, version, &failed)
                })
                .await?;
            match settled {
                Settled::Done(Some(l)) => new_layout = Some(l),
                Settled::Done(None) | Settled::Again => {}
            }
        }
        Err(Error::Unavailable(format!(
            "inode {ino}: {CUT_ROUNDS_MAX} truncates in a row while cutting"
        ))
        .into())
    }

    /// Cuts every live copy of every stripe of `ino` to the length it has at
    /// `intent.cut_to`, then sets it to the length it has at `intent.size`; all stripes at
    /// once.
    async fn cut_objects(
        &self,
        ino: Ino,
        intent: &TruncateIntent,
        layout: &Layout,
    ) -> Vec<StripeCuts> {
        let mut stripes = JoinSet::new();
        for stripe in 0..layout.stripe_count() {
            let cut = StripeCut {
                object: ObjectId { ino, stripe },
                lengths: [
                    layout.object_size(stripe, intent.cut_to),
                    layout.object_size(stripe, intent.size),
                ],
                version: layout.version,
            };
            let (cluster, copies) = (self.cluster.clone(), layout.live_copies(stripe));
            stripes.spawn(async move { (stripe, cut.run(cluster, copies).await) });
        }
        let mut out: Vec<StripeCuts> = vec![Vec::new(); layout.stripe_count() as usize];
        while let Some(done) = stripes.join_next().await {
            match done {
                Ok((stripe, cuts)) => out[stripe as usize] = cuts,
                Err(e) => tracing::error!(ino, "cut task failed: {e}"),
            }
        }
        out
    }
}

/// The cut of one stripe's object.
#[derive(Debug, Clone, Copy)]
struct StripeCut {
    object: ObjectId,
    /// The length to cut to, then the length to set (equal for a shrink).
    lengths: [u64; 2],
    /// The layout version the cut is made under (kept with the object, as writes do).
    version: u64,
}

impl StripeCut {
    /// Cuts every copy in `copies` (slot, OST) at once. Once one copy is cut, the others
    /// have [`CUT_COPY_GRACE`] left before they count as `TimedOut`; each call has at most
    /// [`CUT_CALL_TIMEOUT`].
    async fn run(self, cluster: Arc<Cluster>, copies: Vec<(usize, u32)>) -> StripeCuts {
        call_copies(&copies, Some(CUT_COPY_GRACE), |_, ost| {
            let cluster = cluster.clone();
            async move { self.on_copy(&cluster, ost).await }
        })
        .await
    }

    /// The cut of one copy: one `Truncate`, two for an extend after a pending shrink, then
    /// a `Sync`, so the cut is durable before the intent goes. Every answer must come from
    /// one instance of the OST (the write verifier, docs/replication.md): an OST that
    /// restarted in between may have lost the cut, and the copy counts as failed.
    async fn on_copy(self, cluster: &Cluster, ost: u32) -> Result<(), Error> {
        let [cut, set] = self.lengths;
        let sizes: &[u64] = if cut == set { &[cut] } else { &[cut, set] };
        let mut ops: Vec<OssOp> = sizes
            .iter()
            .map(|&size| OssOp::Truncate {
                object: self.object,
                size,
                version: self.version,
            })
            .collect();
        ops.push(OssOp::Sync {
            object: self.object,
        });
        let mut one = OneInstance::default();
        for op in ops {
            let call = cluster.oss_call(ost, op, Bytes::new());
            let (resp, _) = tokio::time::timeout(CUT_CALL_TIMEOUT, call)
                .await
                .map_err(|_| Error::TimedOut)??;
            one.check(&resp)?;
        }
        Ok(())
    }
}

/// The worker: carries out intents left behind (an MDS that died before its cut, a cut
/// that could not reach an OST), at most [`REPLAY_BATCH`] per pass, one try each. A pass
/// that found none is the last until a transaction records an intent (`Kv::take_written`).
pub(super) async fn replay_pass(mds: Arc<Mds>) -> Result<(), MdsError> {
    if !mds.kv.take_written(schema::TRUNCATE) {
        return Ok(());
    }
    let inos = mds
        .txn(Creds::root(), vec![], Mutation::ReadOnly, |tx, _| {
            let (s, e) = schema::prefix_range(schema::TRUNCATE);
            let rows = tx.range(&s, &e, REPLAY_BATCH)?;
            Ok::<_, Error>(
                rows.iter()
                    .filter_map(|(k, _)| schema::parse_truncate(k))
                    .collect::<Vec<Ino>>(),
            )
        })
        .await
        .inspect_err(|_| mds.kv.mark_written(schema::TRUNCATE))?;
    if !inos.is_empty() {
        // Some may be deferred: look again next pass.
        mds.kv.mark_written(schema::TRUNCATE);
    }
    for ino in inos {
        match mds.carry_out(ino).await {
            Ok(_) => tracing::debug!(ino, "pending truncate carried out"),
            Err(e) => tracing::debug!(ino, "pending truncate deferred: {e}"),
        }
    }
    Ok(())
}
