//! The MDS's background work: registering and heartbeating with the MGS, deleting the objects
//! of destroyed inodes from the OSTs (every copy), ending sessions whose lease ran out,
//! resyncing stale copies ([`super::resync`]), carrying out truncates left pending
//! ([`super::truncate`]) and syncing the store every [`super::config::COMMIT_INTERVAL`].

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::cluster::Cluster;
use rustre_proto::msg::mgs::{MgsRequest, MgsResponse, HEARTBEAT_INTERVAL_MS, MGS_CALL_TIMEOUT};
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse, DELETE_MANY_MAX_OBJECTS};
use rustre_proto::msg::{Creds, Ino};
use rustre_proto::Error;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::error::MdsError;
use super::txn::Mutation;
use super::{open, store, Mds, MdsConfig};
use crate::schema;
use rustre_proto::host::now_ms;

/// How often the destroy queue is scanned.
pub(super) const DESTROY_INTERVAL: Duration = Duration::from_millis(500);
/// Most inodes whose objects are deleted per batch (one read of the queue, one transaction
/// clearing the entries of those whose objects are all gone).
pub(super) const DESTROY_BATCH: usize = 256;
/// Most batches one scan takes, each after the last, while the queue has more: a backlog
/// drains at up to `DESTROY_BATCH * DESTROY_SCAN_MAX_BATCHES` inodes per
/// [`DESTROY_INTERVAL`] (2,048 a second), and what failed is tried again next scan. Capped
/// because the deletes share the CPUs and disks with the requests: at 16 batches (8,192 a
/// second) an `rm -rf` of 8,829 files took 0.86 s instead of 0.79 s (bench-tar), at 4 no
/// slower.
pub(super) const DESTROY_SCAN_MAX_BATCHES: usize = 4;
/// How often expired sessions are looked for.
pub(super) const REAP_INTERVAL: Duration = Duration::from_secs(2);
/// Most expired sessions ended per scan.
pub(super) const REAP_BATCH: usize = 64;

/// Connects to the MGS (waiting for it to come up) and registers this MDS.
pub(super) async fn connect_mgs(
    cfg: &MdsConfig,
    mut shutdown: watch::Receiver<bool>,
) -> Result<Arc<Cluster>, Error> {
    let mut warned = false;
    loop {
        match Cluster::connect(&cfg.mgs_addr, &cfg.cluster, "mds", &cfg.key).await {
            Ok(c) => {
                register(&c, cfg).await?;
                return Ok(c);
            }
            // Waiting does not fix a wrong secret: say so and stop.
            Err(e @ Error::Auth(_)) => {
                tracing::error!(mgs = %cfg.mgs_addr, "cannot register with the MGS: {e}");
                return Err(e);
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(mgs = %cfg.mgs_addr, "waiting for the MGS: {e}");
                    warned = true;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(HEARTBEAT_INTERVAL_MS)) => {}
            _ = shutdown.changed() => return Err(Error::Unavailable("shut down".into())),
        }
    }
}

async fn register(c: &Cluster, cfg: &MdsConfig) -> Result<(), Error> {
    let req = MgsRequest::RegisterMds {
        addr: cfg.advertise_addr.clone(),
    };
    match c
        .mgs()
        .call_within(&req, Bytes::new(), MGS_CALL_TIMEOUT)
        .await?
        .0
    {
        MgsResponse::Ok { .. } => Ok(()),
        other => Err(Error::Protocol(format!(
            "MGS refused registration: {other:?}"
        ))),
    }
}

/// Starts every background task of `mds`.
pub(super) fn spawn_all(mds: Arc<Mds>, shutdown: watch::Receiver<bool>) {
    spawn_every(
        mds.clone(),
        shutdown.clone(),
        Duration::from_millis(HEARTBEAT_INTERVAL_MS),
        heartbeat,
    );
    spawn_every(
        mds.clone(),
        shutdown.clone(),
        DESTROY_INTERVAL,
        destroy_objects,
    );
    spawn_every(
        mds.clone(),
        shutdown.clone(),
        super::config::COMMIT_INTERVAL,
        sync_bookkeeping,
    );
    spawn_every(
        mds.clone(),
        shutdown.clone(),
        super::resync::RESYNC_INTERVAL,
        super::resync::resync_pass,
    );
    spawn_every(
        mds.clone(),
        shutdown.clone(),
        super::truncate::REPLAY_INTERVAL,
        super::truncate::replay_pass,
    );
    spawn_every(
        mds.clone(),
        shutdown.clone(),
        super::migrate::worker::MIGRATE_SWEEP_INTERVAL,
        super::migrate::worker::sweep,
    );
    if crate::metrics::get().is_some() {
        spawn_every(
            mds.clone(),
            shutdown.clone(),
            crate::metrics::STORE_GAUGE_INTERVAL,
            count_store_gauges,
        );
    }
    spawn_every(mds, shutdown, REAP_INTERVAL, reap_sessions);
}

/// Sets the metrics read from the store: live sessions, the resync and destroy backlogs
/// (each counted up to [`crate::metrics::STORE_GAUGE_MAX_ROWS`]). A queue its worker found
/// empty, with nothing written to it since, counts 0 without a scan (`Kv::peek_written`).
async fn count_store_gauges(mds: Arc<Mds>) -> Result<(), MdsError> {
    let Some(m) = crate::metrics::get() else {
        return Ok(());
    };
    let scan = [
        true,
        mds.kv.peek_written(schema::STALE),
        mds.kv.peek_written(schema::DESTROY),
    ];
    let counts = mds
        .txn(Creds::root(), vec![], Mutation::ReadOnly, move |tx, _| {
            let mut out = [0i64; 3];
            for (n, prefix) in [schema::SESSION, schema::STALE, schema::DESTROY]
                .into_iter()
                .enumerate()
                .filter(|(n, _)| scan[*n])
            {
                let (s, e) = schema::prefix_range(prefix);
                out[n] = tx
                    .range(&s, &e, crate::metrics::STORE_GAUGE_MAX_ROWS)?
                    .len() as i64;
            }
            Ok::<_, Error>(out)
        })
        .await?;
    m.sessions.set(counts[0]);
    m.resync_backlog.set(counts[1]);
    m.destroy_backlog.set(counts[2]);
    Ok(())
}

/// Bounds how long a committed change that no client waited for (bookkeeping on a durable
/// MDS; everything on a relaxed one) stays short of the disk.
async fn sync_bookkeeping(mds: Arc<Mds>) -> Result<(), MdsError> {
    Ok(mds.kv.durable().await?)
}

fn spawn_every<F, Fut>(mds: Arc<Mds>, mut shutdown: watch::Receiver<bool>, every: Duration, f: F)
where
    F: Fn(Arc<Mds>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), MdsError>> + Send,
{
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = f(mds.clone()).await {
                tracing::debug!("background task: {e}");
            }
        }
    });
}

async fn heartbeat(mds: Arc<Mds>) -> Result<(), MdsError> {
    let req = MgsRequest::MdsHeartbeat {
        addr: mds.cfg.advertise_addr.clone(),
    };
    match mds
        .cluster
        .mgs()
        .call_within(&req, Bytes::new(), MGS_CALL_TIMEOUT)
        .await?
        .0
    {
        MgsResponse::Unknown => Ok(register(&mds.cluster, &mds.cfg).await?),
        _ => Ok(()),
    }
}

/// Deletes the objects of destroyed inodes; an entry stays queued until every object is gone.
/// One scan takes up to [`DESTROY_SCAN_MAX_BATCHES`] batches, each just past the last, and
/// goes round the queue: it starts where the previous scan stopped
/// ([`Mds::destroy_cursor`]) and, at the end of the queue, goes on from its head up to where
/// it started. An entry whose objects could not all be deleted stays where it is and is
/// tried again when a scan comes round to it, so entries that keep failing (an OST that is
/// gone) never hold back those behind them, however many they are. A scan that found the
/// queue empty is the last until a transaction writes to it (`Kv::take_written`).
pub(super) async fn destroy_objects(mds: Arc<Mds>) -> Result<(), MdsError> {
    if !mds.kv.take_written(schema::DESTROY) {
        return Ok(());
    }
    let scan = scan_destroy_queue(&mds).await;
    if !matches!(scan, Ok(false)) {
        // Entries were there (some may be left), or the scan failed: look again next time.
        mds.kv.mark_written(schema::DESTROY);
    }
    scan.map(drop)
}

/// One scan of the destroy queue ([`destroy_objects`]); true if it found any entry.
async fn scan_destroy_queue(mds: &Arc<Mds>) -> Result<bool, MdsError> {
    let (head, end) = schema::prefix_range(schema::DESTROY);
    let started_at = mds.destroy_cursor.load(Ordering::Relaxed);
    let mut from = if started_at == 0 {
        head.clone()
    } else {
        schema::destroy(started_at)
    };
    // Where this lap of the scan ends: the queue's end, then (after going round) where
    // the scan started.
    let mut until = end;
    let mut went_round = started_at == 0;
    let mut found = false;
    for _ in 0..DESTROY_SCAN_MAX_BATCHES {
        let range = (from.clone(), until.clone());
        let doomed = mds
            .txn(Creds::root(), vec![], Mutation::ReadOnly, move |tx, _| {
                let (from, until) = &range;
                let mut out = Vec::new();
                for (k, v) in tx.range(from, until, DESTROY_BATCH)? {
                    let ino =
                        schema::parse_destroy(&k).ok_or_else(|| Error::Io("bad key".into()))?;
                    let d: store::Doomed = rustre_proto::codec::decode(&v)?;
                    out.push((ino, d));
                }
                Ok::<_, Error>(out)
            })
            .await?;
        let full = doomed.len() == DESTROY_BATCH;
        found |= !doomed.is_empty();
        if let Some((last, _)) = doomed.last() {
            // The next batch, and the next scan, start just past this batch's last key.
            let next = last.saturating_add(1);
            mds.destroy_cursor.store(next, Ordering::Relaxed);
            from = schema::destroy(next);
            destroy_batch(mds, doomed).await?;
        }
        if !full {
            // This lap reached its end.
            if went_round {
                mds.destroy_cursor.store(0, Ordering::Relaxed);
                return Ok(found);
            }
            went_round = true;
            from = head.clone();
            until = schema::destroy(started_at);
        }
    }
    Ok(true)
}

/// Deletes every object of `doomed` (every copy of every stripe, stale ones included) with
/// one [`OssOp::DeleteMany`] per OST and [`DELETE_MANY_MAX_OBJECTS`] objects, all OSTs at
/// once, then clears the queue entries of the inodes whose objects are all gone, in one
/// transaction.
async fn destroy_batch(mds: &Arc<Mds>, doomed: Vec<(Ino, store::Doomed)>) -> Result<(), MdsError> {
    // The unlinks that queued these must outlive a power loss before their objects go
    // (on a relaxed MDS they may not be on disk yet): one sync covers the whole batch.
    mds.kv.durable().await?;
    let mut by_ost: BTreeMap<u32, Vec<ObjectId>> = BTreeMap::new();
    for (ino, d) in &doomed {
        for (slot, ost) in d.layout.osts.iter().enumerate() {
            let object = ObjectId {
                ino: *ino,
                stripe: d.layout.stripe_of_slot(slot),
            };
            by_ost.entry(*ost).or_default().push(object);
        }
    }
    let mut deletes = JoinSet::new();
    for (ost, objects) in by_ost {
        for chunk in objects.chunks(DELETE_MANY_MAX_OBJECTS) {
            let (mds, objects) = (mds.clone(), chunk.to_vec());
            deletes.spawn(async move {
                let op = OssOp::DeleteMany {
                    objects: objects.clone(),
                };
                let answer = mds.cluster.oss_call(ost, op, Bytes::new()).await;
                let failed = match answer {
                    Ok((OssResponse::DeletedMany { failed }, _)) => failed,
                    Ok((other, _)) => {
                        tracing::warn!(ost, "object deletes answered {other:?}");
                        objects
                    }
                    Err(e) => {
                        tracing::debug!(ost, "object deletes deferred: {e}");
                        objects
                    }
                };
                failed.into_iter().map(|o| o.ino).collect::<Vec<Ino>>()
            });
        }
    }
    let mut kept = HashSet::new();
    while let Some(done) = deletes.join_next().await {
        // A delete task that panicked: which inodes it kept is not known, so none is cleared.
        let failed = done.map_err(|e| Error::Io(format!("object deletes: {e}")))?;
        kept.extend(failed);
    }
    let gone: Vec<Ino> = doomed
        .iter()
        .map(|(ino, _)| *ino)
        .filter(|ino| !kept.contains(ino))
        .collect();
    if !gone.is_empty() {
        mds.txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
            for ino in &gone {
                tx.clear(&schema::destroy(*ino));
            }
            Ok::<_, Error>(())
        })
        .await?;
    }
    Ok(())
}

/// Ends the sessions whose lease ran out (at most [`REAP_BATCH`] a pass).
///
/// Each session's record is rewritten at every renewal, and the embedded store keeps every
/// version until a compaction, which a scan walks: with 100,000 versions one look through
/// the sessions took 28 ms. So on a store this process alone writes, a pass that saw every
/// session remembers when the earliest running lease ends, and passes before then do not
/// look: renewals only move a lease's end later, and a new session's ends a whole lease
/// from its start, after every lease running now ends ([`Mds::no_lease_ends_before`]).
/// Leases end by the wall clock of [`now_ms`] (the simulation's clock in `sim/`), and so
/// does the wait.
pub(super) async fn reap_sessions(mds: Arc<Mds>) -> Result<(), MdsError> {
    let local = mds.kv.is_local();
    let now = now_ms();
    if local && now < mds.no_lease_ends_before.load(Ordering::Relaxed) {
        return Ok(());
    }
    let scan = mds
        .txn(Creds::root(), vec![], Mutation::ReadOnly, move |tx, _| {
            open::expired_sessions(tx, now, REAP_BATCH)
        })
        .await?;
    let next_end = scan
        .next_end_ms
        .unwrap_or(now.saturating_add(mds.cfg.session_lease_ms));
    let quiet_until = if local && scan.whole { next_end } else { 0 };
    for id in scan.expired {
        tracing::warn!(
            session = id,
            "session lease expired: client evicted, releasing its opens"
        );
        if let Some(m) = crate::metrics::get() {
            m.sessions_expired.inc();
        }
        loop {
            let ended = mds
                .txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
                    open::end_session(tx, id)
                })
                .await?;
            for ino in &ended.unlocked {
                mds.lock_waits.wake(*ino);
            }
            for (ino, layout) in &ended.suspect {
                super::versions::announce(&mds.cluster, *ino, layout).await;
            }
            if ended.done {
                let _ = mds.dir_caps.end_session(id);
                break;
            }
        }
    }
    mds.no_lease_ends_before
        .store(quiet_until, Ordering::Relaxed);
    Ok(())
}
