//! Copies of stripes, each the body of one transaction: marking copies stale after a failed
//! write (`MarkStale`), moving copies off an OST (`MoveCopies`), marking the copies on a
//! replaced disk stale (`MarkLost`), and the resync worker's bookkeeping (claiming a file,
//! clearing its stale marks). See docs/replication.md.
//!
//! Every change of the stale set or of a copy's OST bumps `Layout::version` and keeps the
//! `stale/{ino}` index in step (present exactly while the layout has stale slots), so the
//! resync worker ([`super::resync`]) finds work without scanning every inode.

use rustre_proto::msg::{Attr, FileKind, Ino, Layout};
use rustre_proto::Error;

use super::layout::OstPicker;
use super::store::{self, ResyncClaim};
use crate::meta::Transaction;
use crate::schema;

/// Marks `slots` of `ino`'s layout stale (a writer failed to write them while holding layout
/// version `held`), bumps the version and indexes the file for resync. Slots already stale
/// are left alone; when all of them are, nothing changes. Refused with `Io` when a stripe
/// would be left with no up-to-date copy (the writer's write then fails).
pub fn mark_stale(
    tx: &mut dyn Transaction,
    ino: Ino,
    slots: &[u32],
    held: u64,
) -> Result<Attr, Error> {
    let mut inode = store::inode(tx, ino)?;
    let layout = file_layout(&inode.attr)?;
    let n = layout.osts.len();
    if let Some(bad) = slots.iter().find(|s| **s as usize >= n) {
        return Err(Error::Invalid(format!(
            "slot {bad} is outside the layout of inode {ino} ({n} slots)"
        )));
    }
    let mut fresh: Vec<u32> = slots
        .iter()
        .copied()
        .filter(|s| !layout.is_stale(*s as usize))
        .collect();
    fresh.sort_unstable();
    fresh.dedup();
    if fresh.is_empty() {
        return Ok(inode.attr);
    }
    let mut next = layout.clone();
    next.stale.extend_from_slice(&fresh);
    next.stale.sort_unstable();
    for stripe in 0..next.stripe_count() {
        if next.live_copies(stripe).is_empty() {
            return Err(Error::Io(format!(
                "cannot mark slots {fresh:?} of inode {ino} stale: stripe {stripe} would have \
                 no up-to-date copy left"
            )));
        }
    }
    next.version += 1;
    tracing::info!(
        ino,
        slots = ?fresh,
        held,
        version = next.version,
        "copies marked stale after a failed write"
    );
    inode.attr.layout = Some(next);
    store::put_inode(tx, &inode)?;
    index(tx, ino);
    Ok(inode.attr)
}

/// A writer of `ino` went away with the file open for writing (its session expired): any
/// copy but the first live one of each stripe may have missed some of its writes (it may
/// have died between its parallel copy writes), and nothing says which. Marks those copies
/// stale, bumps the version and indexes the file, so resync makes every copy equal to the
/// first again. Returns the new layout, or `None` when nothing changed (an unreplicated
/// file, one copy live already, or no such file).
pub fn suspect_copies(tx: &mut dyn Transaction, ino: Ino) -> Result<Option<Layout>, Error> {
    let Some(mut inode) = store::get_inode(tx, ino)? else {
        return Ok(None);
    };
    let Ok(layout) = file_layout(&inode.attr) else {
        return Ok(None);
    };
    let mut next = layout.clone();
    for stripe in 0..layout.stripe_count() {
        for (slot, _) in layout.live_copies(stripe).into_iter().skip(1) {
            next.stale.push(slot as u32);
        }
    }
    if next.stale.len() == layout.stale.len() {
        return Ok(None);
    }
    next.stale.sort_unstable();
    next.version += 1;
    tracing::warn!(
        ino,
        stale = ?next.stale,
        version = next.version,
        "a writer's session ended with the file open: its copies are resynced from the first"
    );
    inode.attr.layout = Some(next.clone());
    store::put_inode(tx, &inode)?;
    index(tx, ino);
    Ok(Some(next))
}

/// Moves every copy of `ino` held by OST `ost` to an OST of `up` (the OSTs that are up)
/// holding no copy of that stripe, marked stale for resync. A stripe whose only up-to-date
/// copy is on `ost` cannot move: `Invalid`. Files without a copy there are unchanged.
pub fn move_copies(
    tx: &mut dyn Transaction,
    picker: &OstPicker,
    ino: Ino,
    ost: u32,
    up: &[u32],
) -> Result<Attr, Error> {
    let mut inode = store::inode(tx, ino)?;
    let Some(layout) = inode.attr.layout.as_ref() else {
        return Ok(inode.attr);
    };
    let mut next = layout.clone();
    let mut moved = Vec::new();
    for slot in 0..next.osts.len() {
        if next.osts[slot] != ost {
            continue;
        }
        let stripe = next.stripe_of_slot(slot);
        if !next.live_copies(stripe).iter().any(|(s, _)| *s != slot) {
            return Err(Error::Invalid(format!(
                "stripe {stripe} of inode {ino} has no other copy"
            )));
        }
        let holders: Vec<u32> = next.copies(stripe).iter().map(|c| c.1).collect();
        let to = picker.replacement(up, &holders).ok_or_else(|| {
            Error::Invalid(format!(
                "no OST that is up can take stripe {stripe} of inode {ino} from OST {ost}: \
                 every one holds a copy of it"
            ))
        })?;
        next.osts[slot] = to;
        if !next.is_stale(slot) {
            next.stale.push(slot as u32);
        }
        moved.push((slot, to));
    }
    if moved.is_empty() {
        return Ok(inode.attr);
    }
    next.stale.sort_unstable();
    next.version += 1;
    next.validate()?;
    tracing::info!(ino, from = ost, moved = ?moved, version = next.version, "copies moved");
    inode.attr.layout = Some(next);
    store::put_inode(tx, &inode)?;
    index(tx, ino);
    Ok(inode.attr)
}

/// The disk of OST `ost` was replaced: marks every copy of `ino` held there stale, even the
/// last up-to-date copy of a stripe, which leaves that stripe lost (no copy to read, none to
/// refill from: EIO). Copies of stripes to which the file's size gives no byte are left
/// alone: they held nothing, and the new disk's hole is exactly what they should read as.
/// Bumps the version and indexes the file for resync when something changed; files with
/// no copy there (or not regular files) are unchanged.
pub fn mark_lost(tx: &mut dyn Transaction, ino: Ino, ost: u32) -> Result<Attr, Error> {
    let mut inode = store::inode(tx, ino)?;
    let size = inode.attr.size;
    let Some(layout) = inode.attr.layout.as_ref() else {
        return Ok(inode.attr);
    };
    let mut next = layout.clone();
    let mut marked = Vec::new();
    for slot in 0..next.osts.len() {
        let stripe = next.stripe_of_slot(slot);
        let holds_bytes = size > u64::from(stripe) * u64::from(next.stripe_size);
        if next.osts[slot] == ost && holds_bytes && !next.is_stale(slot) {
            next.stale.push(slot as u32);
            marked.push(slot);
        }
    }
    if marked.is_empty() {
        return Ok(inode.attr);
    }
    next.stale.sort_unstable();
    next.version += 1;
    let lost: Vec<u32> = (0..next.stripe_count())
        .filter(|s| next.is_lost(*s))
        .collect();
    tracing::warn!(
        ino,
        ost,
        slots = ?marked,
        ?lost,
        version = next.version,
        "copies on a replaced disk marked stale; stripes with no other copy are lost"
    );
    inode.attr.layout = Some(next);
    store::put_inode(tx, &inode)?;
    index(tx, ino);
    Ok(inode.attr)
}

/// The layout of a regular file, or `Invalid`.
fn file_layout(attr: &Attr) -> Result<&Layout, Error> {
    match (&attr.kind, &attr.layout) {
        (FileKind::File, Some(l)) => Ok(l),
        _ => Err(Error::Invalid(format!(
            "inode {} is not a regular file with a layout",
            attr.ino
        ))),
    }
}

/// Puts `ino` in the stale index, unclaimed: a resync under way for an older state of the
/// layout stops at its next claim check (its result would be refused anyway).
fn index(tx: &mut dyn Transaction, ino: Ino) {
    tx.set(&schema::stale(ino), &[]);
}

/// True when some session holds `ino` open for writing.
pub fn has_write_opens(tx: &mut dyn Transaction, ino: Ino) -> Result<bool, Error> {
    let (s, e) = schema::write_open_range(ino);
    Ok(!tx.range(&s, &e, 1)?.is_empty())
}

/// The claim recorded in `ino`'s stale-index entry: `None` when the entry is absent,
/// `Some(None)` when present and unclaimed.
fn claim_of(tx: &mut dyn Transaction, ino: Ino) -> Result<Option<Option<ResyncClaim>>, Error> {
    match tx.get(&schema::stale(ino))? {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(Some(None)),
        Some(v) => Ok(Some(Some(rustre_proto::codec::decode(&v)?))),
    }
}

/// What the resync worker may do with a file of the stale index.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Claim {
    /// Claimed by the caller: copy the stale slots of this layout (its version is the one
    /// the clear will require).
    Copy(Layout),
    /// Someone holds it open for writing, or another MDS is copying it: later.
    Busy,
    /// Nothing to do any more (the inode is gone or has no stale slot); the index entry
    /// was removed.
    Done,
}

/// Claims `ino` for resync by `owner` until `until_ms`, unless it is open for writing or
/// another owner's claim is still running at `now_ms`. Drops index entries that no longer
/// point at stale slots.
pub fn claim(
    tx: &mut dyn Transaction,
    ino: Ino,
    owner: &str,
    now_ms: u64,
    until_ms: u64,
) -> Result<Claim, Error> {
    let Some(current) = claim_of(tx, ino)? else {
        return Ok(Claim::Done);
    };
    let layout = store::get_inode(tx, ino)?
        .and_then(|i| i.attr.layout)
        .filter(|l| !l.stale.is_empty());
    let Some(layout) = layout else {
        tx.clear(&schema::stale(ino));
        return Ok(Claim::Done);
    };
    if let Some(c) = current {
        if c.owner != owner && c.until_ms > now_ms {
            return Ok(Claim::Busy);
        }
    }
    if has_write_opens(tx, ino)? {
        return Ok(Claim::Busy);
    }
    let c = ResyncClaim {
        owner: owner.to_string(),
        until_ms,
    };
    store::put(tx, &schema::stale(ino), &c)?;
    Ok(Claim::Copy(layout))
}

/// Checks that `owner` still holds the claim on `ino` for layout version `version` (and
/// that nobody opened it for writing); extends the claim to `until_ms` when it would lapse
/// before `renew_before_ms`. False: stop copying.
pub fn keep_claim(
    tx: &mut dyn Transaction,
    ino: Ino,
    owner: &str,
    version: u64,
    renew_before_ms: u64,
    until_ms: u64,
) -> Result<bool, Error> {
    let Some(Some(c)) = claim_of(tx, ino)? else {
        return Ok(false);
    };
    if c.owner != owner {
        return Ok(false);
    }
    let current = store::get_inode(tx, ino)?
        .and_then(|i| i.attr.layout)
        .map(|l| l.version);
    if current != Some(version) || has_write_opens(tx, ino)? {
        return Ok(false);
    }
    if c.until_ms < renew_before_ms {
        let c = ResyncClaim {
            owner: owner.to_string(),
            until_ms,
        };
        store::put(tx, &schema::stale(ino), &c)?;
    }
    Ok(true)
}

/// How a resync ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Finish {
    /// The slots are up to date again.
    Cleared,
    /// The layout changed, the file was opened for writing, or the claim was lost while
    /// copying: the copy may have missed writes and is redone later.
    Changed,
}

/// Clears the stale marks of `slots` (copied by `owner` from layout version `version`) if
/// the layout is still at that version and nobody holds the file open for writing; bumps
/// the version and drops the index entry when no stale slot remains (otherwise releases
/// the claim).
pub fn finish_resync(
    tx: &mut dyn Transaction,
    ino: Ino,
    owner: &str,
    version: u64,
    slots: &[u32],
) -> Result<Finish, Error> {
    let mine = matches!(claim_of(tx, ino)?, Some(Some(c)) if c.owner == owner);
    let Some(mut inode) = store::get_inode(tx, ino)? else {
        tx.clear(&schema::stale(ino));
        return Ok(Finish::Changed);
    };
    let Some(layout) = inode.attr.layout.as_mut() else {
        tx.clear(&schema::stale(ino));
        return Ok(Finish::Changed);
    };
    if !mine || layout.version != version || has_write_opens(tx, ino)? {
        return Ok(Finish::Changed);
    }
    layout.stale.retain(|s| !slots.contains(s));
    layout.version += 1;
    if layout.stale.is_empty() {
        tx.clear(&schema::stale(ino));
    } else {
        index(tx, ino);
    }
    store::put_inode(tx, &inode)?;
    Ok(Finish::Cleared)
}

/// Gives up `owner`'s claim on `ino` (after a failed copy), so another MDS may try at once.
pub fn release_claim(tx: &mut dyn Transaction, ino: Ino, owner: &str) -> Result<(), Error> {
    if matches!(claim_of(tx, ino)?, Some(Some(c)) if c.owner == owner) {
        index(tx, ino);
    }
    Ok(())
}
