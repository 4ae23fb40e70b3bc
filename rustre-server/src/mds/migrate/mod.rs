//! Online migration at the MDS (docs/migrate.md): the record of a file's migration in
//! progress, the transactions of its steps, and the old objects a migration leaves to
//! delete.
//!
//! A migration of file `ino` whose layout has version `v`:
//! 1. `begin` records the target layout ([`plan::place`]) under `migrate/{ino}` with a
//!    token and a lease of [`MIGRATE_LEASE_MS`]; the administrator's client copies the file
//!    into the target's fresh slots while writers go on writing the old objects.
//! 2. `Freeze` marks the record frozen; the handler then raises every up-to-date old copy to
//!    version `v + 1` (`OssOp::RaiseVersion`), ahead of the layout the MDS hands out, so
//!    every write (and read) with the old layout is refused with `Stale`, and clients wait
//!    until the layout they fetch is newer than `v` (the client's "fence ahead" wait).
//! 3. `Commit` (after the last delta is copied) stores the target with version `v + 2`:
//!    clients fetch it and go on with the new objects. The old objects the target does not
//!    keep go to `retired/{ino}`, deleted by [`worker`] once no writer holds the file open
//!    and [`RETIRE_GRACE_MS`] has passed.
//!
//! A freeze or commit finding the layout's version changed since `begin` (a copy was marked
//! stale, resynced or moved meanwhile) is refused with `Stale`, and the migration is given
//! up ([`abandon`]): a frozen file gets version `v + 1`, which lets writers through the
//! fence again, and the fresh objects are retired. An expired lease (a migrator that died)
//! is given up the same way by the worker or by the next `begin`.

mod handlers;
pub mod plan;
pub(super) mod worker;

use rustre_proto::msg::migrate::{MigratePlan, MigrateStep, MigrateTarget};
use rustre_proto::msg::{Attr, FileKind, Ino, Layout, StripeSet};
use rustre_proto::Error;
use serde::{Deserialize, Serialize};

use super::store;
use crate::meta::Transaction;
use crate::schema;

/// How long a migration lives without a step from its migrator.
pub const MIGRATE_LEASE_MS: u64 = 120_000;
/// The same once frozen: readers and writers of the file wait meanwhile (at most the
/// client's fence wait, 60 s), so a migrator that died then is given up sooner.
pub const MIGRATE_FROZEN_LEASE_MS: u64 = 20_000;
/// How long retired objects are kept at least after the commit, so that readers holding the
/// old layout meet the fence (`Stale`) and fetch the new one rather than a missing object.
pub const RETIRE_GRACE_MS: u64 = 5_000;

/// A migration in progress, under `migrate/{ino}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub token: u64,
    /// The layout version when it began: freeze and commit require it still.
    pub from_version: u64,
    pub to: Layout,
    pub fresh: Vec<u32>,
    pub frozen: bool,
    /// Wall-clock milliseconds after which it is given up unless renewed.
    pub until_ms: u64,
}

/// Old objects of a migrated file, under `retired/{ino}`: `(stripe, OST)` pairs, deleted
/// once no writer holds the file open and `not_before_ms` has passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Retired {
    pub objects: Vec<(u32, u32)>,
    pub not_before_ms: u64,
}

/// What a step's transaction leaves the handler to do at the OSTs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Stepped {
    Done,
    /// Raise the up-to-date copies of this layout (the old one, its version already the
    /// fence's) before answering.
    Fence(Layout),
    Committed(Attr),
    /// The layout changed since the migration began: it was given up (the caller answers
    /// `Stale`; the transaction keeps what giving up wrote).
    GaveUp,
}

fn record(tx: &mut dyn Transaction, ino: Ino) -> Result<Option<Migration>, Error> {
    store::get(tx, &schema::migrate(ino))
}

fn retired(tx: &mut dyn Transaction, ino: Ino) -> Result<Retired, Error> {
    Ok(store::get(tx, &schema::retired(ino))?.unwrap_or_default())
}

/// Adds `objects` of `ino` to its retired list, to delete no sooner than `not_before_ms`.
fn retire(
    tx: &mut dyn Transaction,
    ino: Ino,
    objects: impl IntoIterator<Item = (u32, u32)>,
    not_before_ms: u64,
) -> Result<(), Error> {
    let mut r = retired(tx, ino)?;
    let before = r.objects.len();
    for o in objects {
        if !r.objects.contains(&o) {
            r.objects.push(o);
        }
    }
    if r.objects.len() == before {
        return Ok(());
    }
    r.not_before_ms = r.not_before_ms.max(not_before_ms);
    store::put(tx, &schema::retired(ino), &r)
}

/// The `(stripe, OST)` pairs of `layout`'s slots in `slots`.
fn pairs(layout: &Layout, slots: &[u32]) -> Vec<(u32, u32)> {
    slots
        .iter()
        .map(|s| (layout.stripe_of_slot(*s as usize), layout.osts[*s as usize]))
        .collect()
}

/// Gives migration `m` of `ino` up: the record goes, its fresh objects are retired, and a
/// frozen file's layout version moves past the fence so writers go on with the old layout.
pub fn abandon(tx: &mut dyn Transaction, ino: Ino, m: &Migration, now: u64) -> Result<(), Error> {
    tx.clear(&schema::migrate(ino));
    retire(tx, ino, pairs(&m.to, &m.fresh), now)?;
    if !m.frozen {
        return Ok(());
    }
    let Some(mut inode) = store::get_inode(tx, ino)? else {
        return Ok(());
    };
    if let Some(l) = inode.attr.layout.as_mut() {
        let past = m.from_version + 1;
        if l.version < past {
            l.version = past;
            tracing::warn!(
                ino,
                version = past,
                "migration given up while frozen: fence lifted"
            );
            store::put_inode(tx, &inode)?;
        }
    }
    Ok(())
}

/// `MigrateBegin`'s transaction: the plan, recorded (or, when the target is the layout the
/// file has, a plan with token 0 and nothing recorded).
pub fn begin(
    tx: &mut dyn Transaction,
    ino: Ino,
    target: &MigrateTarget,
    osts: &plan::Osts,
    now: u64,
    token: u64,
) -> Result<MigratePlan, Error> {
    let inode = store::inode(tx, ino)?;
    let from = match (&inode.attr.kind, &inode.attr.layout) {
        (FileKind::File, Some(l)) => l.clone(),
        _ => return Err(Error::Invalid(format!("inode {ino} is not a regular file"))),
    };
    if let Some(m) = record(tx, ino)? {
        if m.until_ms > now {
            return Err(Error::Busy);
        }
        tracing::warn!(ino, "a migration whose migrator went silent is given up");
        abandon(tx, ino, &m, now)?;
    }
    let avoid = retired(tx, ino)?.objects;
    let placed = plan::place(&from, target, osts, &avoid)?;
    let unchanged = placed.fresh.is_empty()
        && placed.to.osts == from.osts
        && placed.to.stripe_size == from.stripe_size
        && placed.to.replicas == from.replicas
        && from.stale.is_empty();
    if unchanged {
        return Ok(MigratePlan {
            token: 0,
            from: from.clone(),
            to: from,
            fresh: Vec::new(),
        });
    }
    let m = Migration {
        token,
        from_version: from.version,
        to: placed.to.clone(),
        fresh: placed.fresh.clone(),
        frozen: false,
        until_ms: now + MIGRATE_LEASE_MS,
    };
    store::put(tx, &schema::migrate(ino), &m)?;
    tracing::info!(ino, from = ?from.osts, to = ?m.to.osts, fresh = ?m.fresh, "migration begun");
    Ok(MigratePlan {
        token,
        from,
        to: placed.to,
        fresh: placed.fresh,
    })
}

/// `MigrateStep`'s transaction.
pub fn step(
    tx: &mut dyn Transaction,
    ino: Ino,
    token: u64,
    step: MigrateStep,
    now: u64,
) -> Result<Stepped, Error> {
    let mut m = match record(tx, ino)? {
        Some(m) if m.token == token => m,
        _ => {
            return Err(Error::Invalid(format!(
                "inode {ino} has no migration {token} (it was given up, or finished)"
            )))
        }
    };
    if step == MigrateStep::Abort {
        abandon(tx, ino, &m, now)?;
        return Ok(Stepped::Done);
    }
    let mut inode = store::inode(tx, ino)?;
    let Some(from) = inode.attr.layout.clone() else {
        return Err(Error::Invalid(format!("inode {ino} has no layout")));
    };
    if from.version != m.from_version {
        // Copies were marked stale, resynced or moved meanwhile: what was copied may be
        // from copies no longer up to date. The migrator begins again.
        abandon(tx, ino, &m, now)?;
        return Ok(Stepped::GaveUp);
    }
    match step {
        MigrateStep::Renew => {
            m.until_ms = now + lease_ms(m.frozen);
            store::put(tx, &schema::migrate(ino), &m)?;
            Ok(Stepped::Done)
        }
        MigrateStep::Freeze => {
            m.frozen = true;
            m.until_ms = now + lease_ms(true);
            store::put(tx, &schema::migrate(ino), &m)?;
            let mut fence = from;
            fence.version = m.from_version + 1;
            Ok(Stepped::Fence(fence))
        }
        MigrateStep::Commit => {
            if !m.frozen {
                return Err(Error::Invalid(format!(
                    "migration {token} of inode {ino} commits only after its freeze"
                )));
            }
            let to = committed_layout(&from, &m);
            let keeps = |stripe: u32, ost: u32| {
                same_geometry(&from, &to)
                    && to
                        .copies(stripe)
                        .iter()
                        .any(|(slot, o)| *o == ost && !m.fresh.contains(&(*slot as u32)))
            };
            let old: Vec<(u32, u32)> = (0..from.osts.len())
                .map(|s| (from.stripe_of_slot(s), from.osts[s]))
                .filter(|(i, o)| !keeps(*i, *o))
                .collect();
            tx.clear(&schema::migrate(ino));
            retire(tx, ino, old, now + RETIRE_GRACE_MS)?;
            tracing::info!(ino, osts = ?to.osts, version = to.version, "migration committed");
            inode.attr.layout = Some(to);
            store::put_inode(tx, &inode)?;
            Ok(Stepped::Committed(inode.attr))
        }
        MigrateStep::Abort => unreachable!("handled above"),
    }
}

/// How long a migration lives from its last step.
fn lease_ms(frozen: bool) -> u64 {
    if frozen {
        MIGRATE_FROZEN_LEASE_MS
    } else {
        MIGRATE_LEASE_MS
    }
}

fn same_geometry(a: &Layout, b: &Layout) -> bool {
    a.stripe_size == b.stripe_size && a.stripe_count() == b.stripe_count()
}

/// The layout a commit stores: the target, past the fence's version, every copy up to
/// date; a stripe counts as written when all its copies are fresh (the migrator created
/// every fresh object) or, geometry unchanged, when it was written before.
fn committed_layout(from: &Layout, m: &Migration) -> Layout {
    let mut to = m.to.clone();
    to.version = m.from_version + 2;
    to.stale.clear();
    to.allocated.clear();
    let mut written = StripeSet::default();
    for i in 0..to.stripe_count() {
        let all_fresh = to
            .copies(i)
            .iter()
            .all(|(slot, _)| m.fresh.contains(&(*slot as u32)));
        let was = same_geometry(from, &to) && from.written.contains(i);
        if all_fresh || was {
            written.insert(i);
        }
    }
    to.written = written;
    to
}

#[cfg(test)]
mod tests;
