//! The resync worker: refills stale copies from up-to-date ones (docs/replication.md,
//! "Resync and repair").
//!
//! Every [`RESYNC_INTERVAL`] it scans the `stale/{ino}` index (from where the last pass
//! stopped, at most [`RESYNC_SCAN_LIMIT`] entries, copying at most
//! [`RESYNC_FILES_PER_PASS`] files) and takes each file that nobody holds open for writing
//! and has a stale copy on an OST that is up (of a stripe that still has an up-to-date copy:
//! a lost stripe, whose every copy is stale, has nothing to copy from and is left alone).
//! For each such copy it:
//! 1. claims the file in the index entry ([`super::replica::claim`]) and notes the layout
//!    version `v`;
//! 2. asks an up-to-date copy for the object's length. No object there (the stripe was never
//!    written, or lost its data to a truncate): the stale copy's object is deleted too, so
//!    both read as the same hole — unless the layout records the stripe as written
//!    (`Layout::written`): then that copy lost its object, the next up-to-date copy is
//!    asked, and with none holding it the copy fails and stays stale (the stripe reads EIO);
//! 3. otherwise cuts the stale object to 0 (so no partial block of old, possibly bad bytes
//!    is ever merged), then copies [`RESYNC_CHUNK`]-byte chunks: each read from an
//!    up-to-date copy and verified against its block CRCs (a bad block makes the chunk come
//!    from the next up-to-date copy; with none good the copy fails and stays stale, logged
//!    as an error), written with its CRC and version `v`; the source's length is where the
//!    data read ends (a short chunk); the object is then truncated to it and synced. The
//!    first cut creates the object, so a stripe of holes only has one on every copy too;
//! 4. clears the copied slots' stale marks in one transaction that requires version `v`,
//!    the claim, and no write open ([`super::replica::finish_resync`]). An open for writing
//!    (or a truncate, a new stale mark, a moved copy) bumps the version meanwhile, so a copy
//!    that may have missed writes is never declared up to date; it is redone on a later
//!    pass.
//!
//! Several MDS sharing one store each run this worker. The claim (an owner and a lease of
//! [`RESYNC_CLAIM_MS`], checked and renewed before every chunk) keeps them off each other's
//! files; should two still race (a claim lapsing under a stalled owner), the version check
//! makes the loser's clear fail, and the loser stops at its next claim check.
//!
//! OSS calls follow the epoch rule of [`rustre_proto::cluster::Cluster::oss_call`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::checksum::{self, CHECKSUM_BLOCK};
use rustre_proto::msg::mgs::{ClusterMap, NodeState};
use rustre_proto::msg::oss::{ObjectId, OneInstance, OssOp, OssResponse};
use rustre_proto::msg::{Creds, Ino, Layout};
use rustre_proto::Error;

use super::error::MdsError;
use super::replica::{self, Claim, Finish};
use super::store::{self, ResyncClaim};
use super::txn::Mutation;
use super::Mds;
use crate::schema;
use rustre_proto::host::now_ms;

/// How often the stale index is scanned.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(2);
/// Most files copied per pass, so a large backlog does not hold the worker for long.
pub const RESYNC_FILES_PER_PASS: usize = 8;
/// Most stale-index entries looked at per pass.
pub const RESYNC_SCAN_LIMIT: usize = 256;
/// Bytes read and written per call while copying (a multiple of [`CHECKSUM_BLOCK`]).
pub const RESYNC_CHUNK: u32 = 1 << 20;
/// How long a claim on a file keeps other MDS off it; renewed while copying.
pub const RESYNC_CLAIM_MS: u64 = 60_000;

const _: () = assert!(RESYNC_CHUNK.is_multiple_of(CHECKSUM_BLOCK));

fn ost_up(map: &ClusterMap, ost: u32) -> bool {
    map.ost(ost).is_some_and(|o| o.state == NodeState::Up)
}

/// True when the stale copy in `slot` can be refilled now: its OST is up and its stripe has
/// an up-to-date copy to copy from (a lost stripe has none: it stays stale, and EIO, for good).
fn refillable(map: &ClusterMap, layout: &Layout, slot: u32) -> bool {
    let slot = slot as usize;
    ost_up(map, layout.osts[slot]) && !layout.is_lost(layout.stripe_of_slot(slot))
}

/// One pass over the stale index. A pass that found it empty from its head is the last
/// until a transaction marks a copy stale (`Kv::take_written`).
pub(super) async fn resync_pass(mds: Arc<Mds>) -> Result<(), MdsError> {
    if !mds.kv.take_written(schema::STALE) {
        return Ok(());
    }
    let from = mds.resync_cursor.load(Ordering::Relaxed);
    let map = mds.cluster.map();
    let owner = mds.cfg.advertise_addr.clone();
    let now = now_ms();
    let (candidates, scanned, last) = mds
        .txn(Creds::root(), vec![], Mutation::ReadOnly, move |tx, _| {
            let (s, e) = schema::stale_from(from);
            let rows = tx.range(&s, &e, RESYNC_SCAN_LIMIT)?;
            let mut out = Vec::new();
            let mut last = from;
            for (k, v) in &rows {
                let Some(ino) = schema::parse_stale(k) else {
                    continue;
                };
                last = ino;
                if !v.is_empty() {
                    let c: ResyncClaim = rustre_proto::codec::decode(v)?;
                    if c.owner != owner && c.until_ms > now {
                        continue;
                    }
                }
                let layout = store::get_inode(tx, ino)?.and_then(|i| i.attr.layout);
                match layout {
                    // Index entries left over: `claim` drops them.
                    None => out.push(ino),
                    Some(l) if l.stale.is_empty() => out.push(ino),
                    Some(l) => {
                        let reachable = l.stale.iter().any(|s| refillable(&map, &l, *s));
                        if reachable && !replica::has_write_opens(tx, ino)? {
                            out.push(ino);
                        }
                    }
                }
            }
            Ok::<_, Error>((out, rows.len(), last))
        })
        .await
        .inspect_err(|_| mds.kv.mark_written(schema::STALE))?;
    if scanned > 0 || from != 0 {
        // Copies stay stale until refilled (their OST may be down), and a pass that started
        // past the head saw only part of the index: look again next pass.
        mds.kv.mark_written(schema::STALE);
    }
    let mut next = if scanned < RESYNC_SCAN_LIMIT {
        0
    } else {
        last.saturating_add(1)
    };
    let mut copied = 0;
    for ino in candidates {
        if copied >= RESYNC_FILES_PER_PASS {
            next = ino;
            break;
        }
        match resync_file(&mds, ino).await {
            Ok(true) => copied += 1,
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(ino, "resync failed: {e}");
                copied += 1;
            }
        }
    }
    mds.resync_cursor.store(next, Ordering::Relaxed);
    Ok(())
}

/// Resyncs the stale copies of `ino` that sit on OSTs that are up. False when there was
/// nothing to do (or someone else is at it).
async fn resync_file(mds: &Arc<Mds>, ino: Ino) -> Result<bool, MdsError> {
    let owner = mds.cfg.advertise_addr.clone();
    let now = now_ms();
    let o = owner.clone();
    let claim = mds
        .txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
            replica::claim(tx, ino, &o, now, now + RESYNC_CLAIM_MS)
        })
        .await?;
    let Claim::Copy(layout) = claim else {
        return Ok(false);
    };
    let map = mds.cluster.map();
    let slots: Vec<u32> = layout
        .stale
        .iter()
        .copied()
        .filter(|s| refillable(&map, &layout, *s))
        .collect();
    if slots.is_empty() {
        mds.txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
            replica::release_claim(tx, ino, &owner)
        })
        .await?;
        return Ok(false);
    }
    let mut done = Vec::new();
    for slot in &slots {
        let ost = layout.osts[*slot as usize];
        match copy_slot(mds, ino, &layout, *slot as usize).await {
            Ok(()) => {
                mds.stuck.refilled(ino, *slot);
                done.push(*slot)
            }
            Err(MdsError::Answer(Error::Busy)) => {
                tracing::debug!(ino, "resync interrupted: the file changed or was claimed");
                break;
            }
            Err(e @ MdsError::Answer(Error::Corrupt(_))) => {
                tracing::error!(ino, slot, "cannot resync: no good source: {e}");
                mds.stuck.failed(ino, *slot, ost, e.to_string());
            }
            Err(e) => {
                tracing::warn!(ino, slot, "resync of a copy failed: {e}");
                mds.stuck.failed(ino, *slot, ost, e.to_string());
            }
        }
    }
    let version = layout.version;
    let o = owner.clone();
    let finish = if done.is_empty() {
        Finish::Changed
    } else {
        mds.txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
            replica::finish_resync(tx, ino, &o, version, &done)
        })
        .await?
    };
    match finish {
        Finish::Cleared => {
            mds.stuck.file_done(ino);
            tracing::info!(ino, "stale copies resynced")
        }
        Finish::Changed => {
            mds.txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
                replica::release_claim(tx, ino, &owner)
            })
            .await?;
        }
    }
    Ok(true)
}

/// Copies stripe `layout.stripe_of_slot(slot)` of `ino` from an up-to-date copy onto the
/// copy in `slot`. `Busy` when the claim was lost or the file changed meanwhile.
async fn copy_slot(mds: &Arc<Mds>, ino: Ino, layout: &Layout, slot: usize) -> Result<(), MdsError> {
    let stripe = layout.stripe_of_slot(slot);
    let target = layout.osts[slot];
    let version = layout.version;
    let object = ObjectId { ino, stripe };
    let written = layout.written.contains(stripe);
    let sources: Vec<u32> = layout
        .live_copies(stripe)
        .into_iter()
        .map(|c| c.1)
        .collect();
    let mut size = Err(Error::Unavailable(format!(
        "no up-to-date copy of stripe {stripe} of inode {ino} answers"
    )));
    for src in &sources {
        match mds
            .cluster
            .oss_call(*src, OssOp::Size { object }, Bytes::new())
            .await
        {
            // The stripe was written: this copy lost its object, and is no source.
            Ok((OssResponse::Size(None), _)) if written => {
                tracing::warn!(ino, stripe, ost = src, "a written object is missing");
                size = Err(Error::Missing(format!(
                    "stripe {stripe} of inode {ino} was written, but OST {src} has no object"
                )));
            }
            Ok((OssResponse::Size(s), _)) => {
                size = Ok(s);
                break;
            }
            Ok((other, _)) => size = Err(unexpected(&other)),
            Err(e) => {
                tracing::debug!(ino, stripe, ost = src, "source copy unavailable: {e}");
                size = Err(e);
            }
        }
    }
    if size?.is_none() {
        done(
            mds.cluster
                .oss_call(target, OssOp::Delete { object }, Bytes::new())
                .await?,
        )?;
        return Ok(());
    }
    let truncate = |size| OssOp::Truncate {
        object,
        size,
        version,
    };
    // Every change to the target must be answered by one instance of its OST, the same that
    // answers the final sync: a target that restarted in between may have lost them.
    let mut target_instance = OneInstance::default();
    target_instance.check(
        &mds.cluster
            .oss_call(target, truncate(0), Bytes::new())
            .await?
            .0,
    )?;
    let mut offset = 0u64;
    loop {
        keep_claim(mds, ino, version).await?;
        let data = read_verified(mds, &sources, object, offset, written).await?;
        let n = data.len() as u64;
        // The target was cut to 0: a chunk of zeros is a hole there already, and stays one.
        if n > 0 && data.iter().any(|b| *b != 0) {
            let op = OssOp::write(object, offset, &data, false, version);
            target_instance.check(&mds.cluster.oss_call(target, op, data).await?.0)?;
        }
        offset += n;
        if n < RESYNC_CHUNK as u64 {
            break;
        }
    }
    target_instance.check(
        &mds.cluster
            .oss_call(target, truncate(offset), Bytes::new())
            .await?
            .0,
    )?;
    target_instance.check(
        &mds.cluster
            .oss_call(target, OssOp::Sync { object }, Bytes::new())
            .await?
            .0,
    )?;
    tracing::debug!(ino, stripe, slot, from = ?sources, to = target, bytes = offset, "copy made");
    Ok(())
}

/// Fails with `Busy` unless this MDS still holds its claim on `ino` at layout `version`.
async fn keep_claim(mds: &Arc<Mds>, ino: Ino, version: u64) -> Result<(), MdsError> {
    let owner = mds.cfg.advertise_addr.clone();
    let now = now_ms();
    let held = mds
        .txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
            replica::keep_claim(
                tx,
                ino,
                &owner,
                version,
                now + RESYNC_CLAIM_MS / 2,
                now + RESYNC_CLAIM_MS,
            )
        })
        .await?;
    if held {
        Ok(())
    } else {
        Err(Error::Busy.into())
    }
}

/// One chunk of `object` at `offset` from the first of `sources` whose blocks all match
/// their checksums (and that has the object, when it `must_exist`).
async fn read_verified(
    mds: &Arc<Mds>,
    sources: &[u32],
    object: ObjectId,
    offset: u64,
    must_exist: bool,
) -> Result<Bytes, Error> {
    let mut last = Error::Unavailable("no up-to-date copy to read from".into());
    for src in sources {
        let op = OssOp::Read {
            object,
            offset,
            len: RESYNC_CHUNK,
            must_exist,
            consistent: false,
        };
        match mds.cluster.oss_call(*src, op, Bytes::new()).await {
            Ok((OssResponse::Data { len, crcs, .. }, payload)) => {
                if payload.len() != len as usize {
                    last = Error::Protocol(format!(
                        "OST {src} announced {len} bytes and sent {}",
                        payload.len()
                    ));
                    continue;
                }
                match checksum::first_bad_block(&payload, &crcs) {
                    None => return Ok(payload),
                    Some(b) => {
                        let block = offset / CHECKSUM_BLOCK as u64 + b as u64;
                        tracing::warn!(
                            ino = object.ino,
                            stripe = object.stripe,
                            ost = src,
                            block,
                            "block fails its checksum; reading another copy"
                        );
                        last = Error::Corrupt(format!(
                            "block {block} of object {}.{} fails its checksum on OST {src}",
                            object.ino, object.stripe
                        ));
                    }
                }
            }
            Ok((other, _)) => last = unexpected(&other),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn unexpected(r: &OssResponse) -> Error {
    Error::Protocol(format!("unexpected OSS answer {r:?}"))
}

fn done((r, _): (OssResponse, Bytes)) -> Result<(), Error> {
    match r {
        OssResponse::Done => Ok(()),
        other => Err(unexpected(&other)),
    }
}
