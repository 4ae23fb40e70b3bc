//! Project quotas (docs/quotas.md): the transaction bodies that keep each project's usage
//! and enforce its limits, and (in [`handlers`]) the MDS operations around them.
//!
//! A project is a directory tree: its id is the inode number of its directory, and every
//! inode in the tree carries it (`Attr::project`, inherited at create). The record
//! `quota/{project}` ([`Quota`]) holds the limits and the usage. What an inode counts
//! ([`charge_of`]) moves in the transaction that writes the inode: `store::put_inode` calls
//! [`recount`] ([`usage`]) with the stored and the new record, and removing an inode takes its charge
//! back. Only operations that add do the checking ([`admit`]): creates (an inode), a size
//! growth through setattr or an append, and writers' reservations ([`reserve`]): data goes
//! from clients straight to the OSTs, so a client reserves room up to where it writes before
//! writing, and a size report never fails for quota (its bytes are already written).

use rustre_proto::msg::quota::{QuotaInfo, QuotaLimits, QuotaUsage, NO_PROJECT};
use rustre_proto::msg::{FileKind, Ino, Timestamp};
use rustre_proto::Error;

use super::store::{self, Inode};
use crate::meta::Transaction;
use crate::schema;

#[cfg(test)]
mod handler_tests;
mod handlers;
#[cfg(test)]
mod tests;
pub mod usage;

pub use usage::{charge_of, get, recount, Quota};
use usage::{millis, put};

/// Most directory entries one transaction of the walk of `quota set` visits: far inside
/// the store's transaction limits (size, and FoundationDB's five seconds) at a few hundred
/// bytes read and written each.
pub const QUOTA_SET_BATCH: usize = 512;

/// EDQUOT unless `project` may grow by `add` now.
pub fn admit(
    tx: &mut dyn Transaction,
    project: Ino,
    add: QuotaUsage,
    now: Timestamp,
) -> Result<(), Error> {
    match get(tx, project)? {
        Some(q) => q.admits(add, millis(now)),
        None => Ok(()),
    }
}

/// EDQUOT unless the file `inode` (as stored) may grow to `size` bytes now.
pub fn admit_size(
    tx: &mut dyn Transaction,
    inode: &Inode,
    size: u64,
    now: Timestamp,
) -> Result<(), Error> {
    let had = charge_of(inode).bytes;
    if inode.attr.project == NO_PROJECT || inode.attr.kind != FileKind::File || size <= had {
        return Ok(());
    }
    let add = QuotaUsage {
        bytes: size - had,
        inodes: 0,
    };
    admit(tx, inode.attr.project, add, now)
}

/// A writer of file `ino` (open for writing in `session`; 0: an MDS-internal caller) asks
/// for room up to `end` before writing there, and up to `want` (>= `end`) if the quota
/// allows: the end granted, which the file's charge now covers (`Inode::reserved`); EDQUOT
/// when not even `end` fits. A file in no project (or one whose
/// project lost its quota) has no bound: `u64::MAX`.
pub fn reserve(
    tx: &mut dyn Transaction,
    now: Timestamp,
    session: u64,
    ino: Ino,
    end: u64,
    want: u64,
) -> Result<u64, Error> {
    let mut inode = store::inode(tx, ino)?;
    if inode.attr.kind != FileKind::File {
        return Err(Error::Invalid("quota reservation for a non-file".into()));
    }
    if session != 0 && tx.get(&schema::write_open(ino, session))?.is_none() {
        // Only a writer reserves (as only a writer's size report moves the size).
        return Err(Error::Access);
    }
    if get(tx, inode.attr.project)?.is_none() {
        return Ok(u64::MAX);
    }
    let had = charge_of(&inode).bytes;
    if end <= had {
        return Ok(had);
    }
    for target in [want.max(end), end] {
        if admit_size(tx, &inode, target, now).is_ok() {
            inode.reserved = target;
            store::put_inode(tx, &inode)?;
            return Ok(target);
        }
    }
    Err(Error::QuotaExceeded)
}

/// A writer of `ino` closed it: if it was the last, what writers reserved beyond the size
/// stops counting.
pub fn end_reservation(tx: &mut dyn Transaction, ino: Ino) -> Result<(), Error> {
    let Some(mut inode) = store::get_inode(tx, ino)? else {
        return Ok(());
    };
    if inode.reserved == 0 {
        return Ok(());
    }
    let (s, e) = schema::write_open_range(ino);
    if !tx.range(&s, &e, 1)?.is_empty() {
        return Ok(());
    }
    inode.reserved = 0;
    store::put_inode(tx, &inode)
}

/// EXDEV when `inode` may not get a name in directory `into` because they are in different
/// projects: usage is kept per tree, so moving between trees is a copy (as on XFS). The
/// directory of a project moves anywhere: its tree goes with it.
pub fn check_move(inode: &Inode, into: &Inode) -> Result<(), Error> {
    let p = inode.attr.project;
    let is_root = inode.attr.kind == FileKind::Dir && p == inode.attr.ino;
    if p != into.attr.project && !is_root {
        return Err(Error::CrossDevice);
    }
    Ok(())
}

/// Inode `inode` is being removed: its charge goes, and a project's directory takes its
/// quota with it.
pub fn removed(tx: &mut dyn Transaction, inode: &Inode) -> Result<(), Error> {
    if inode.attr.project == NO_PROJECT {
        return Ok(());
    }
    if inode.attr.kind == FileKind::Dir && inode.attr.project == inode.attr.ino {
        tx.clear(&schema::quota(inode.attr.ino));
        return Ok(());
    }
    recount(tx, Some(inode), None)
}

/// A directory whose entries the walk of `quota set` has yet to visit: its inode, and the
/// last name visited (`None`: none yet).
pub type Pending = (Ino, Option<String>);

/// First transaction of `quota set DIR`: checks the limits and the directory and stores the
/// limits; true when the tree must be walked ([`walk_step`] until nothing is left, then
/// [`finish_set`]), false when the directory had a counted quota. A directory that is not
/// a project's root yet (or whose walk was interrupted) becomes one, with usage counted
/// from its own inode; its tree is then labelled and counted by [`walk_step`]s, as many as
/// it takes, each one transaction. Meanwhile usage grows to its full value
/// (`QuotaInfo::counting`); whatever is created in the tree is counted as it is created,
/// since every directory the walk found carries the project.
pub fn begin_set(
    tx: &mut dyn Transaction,
    now: Timestamp,
    dir: Ino,
    limits: QuotaLimits,
) -> Result<bool, Error> {
    limits.check().map_err(Error::Invalid)?;
    let mut root = store::dir(tx, dir)?;
    let mut q = get(tx, dir)?.unwrap_or_default();
    q.limits = limits;
    q.note_soft(millis(now));
    if !q.counting && root.attr.project == dir {
        put(tx, dir, &q)?;
        return Ok(false);
    }
    q.counting = true;
    put(tx, dir, &q)?;
    if root.attr.project != dir {
        root.attr.project = dir;
        store::put_inode(tx, &root)?;
    }
    Ok(true)
}

/// One transaction of the walk of `quota set` of project `dir`: visits up to
/// [`QUOTA_SET_BATCH`] entries of the directories in `pending` (the last first), labels
/// each inode found with the project (which counts it), and returns what is left to visit.
/// An inode already labelled is skipped (a second name of a file, a directory created since,
/// a walk run again), and so is another project's directory with its subtree.
pub fn walk_step(
    tx: &mut dyn Transaction,
    dir: Ino,
    mut pending: Vec<Pending>,
) -> Result<Vec<Pending>, Error> {
    let mut budget = QUOTA_SET_BATCH;
    while budget > 0 {
        let Some((parent, after)) = pending.pop() else {
            break;
        };
        let (s, e) = match &after {
            Some(name) => schema::dentry_after(parent, name),
            None => schema::dentry_range(parent),
        };
        let rows = tx.range(&s, &e, budget)?;
        let full = rows.len() == budget;
        budget -= rows.len();
        let mut last = None;
        let mut found = Vec::new();
        for (k, v) in rows {
            let d: store::Dentry = rustre_proto::codec::decode(&v)?;
            last = schema::parse_dentry_name(&k).map(str::to_string);
            let Some(mut inode) = store::get_inode(tx, d.ino)? else {
                continue;
            };
            let other_root = inode.attr.kind == FileKind::Dir && inode.attr.project == d.ino;
            if other_root || inode.attr.project == dir {
                continue;
            }
            inode.attr.project = dir;
            store::put_inode(tx, &inode)?;
            if inode.attr.kind == FileKind::Dir {
                found.push((d.ino, None));
            }
        }
        if full {
            // More entries after `last`: this directory comes back after its subdirectories.
            pending.push((parent, last));
        }
        pending.extend(found);
    }
    Ok(pending)
}

/// Last transaction of `quota set` of `dir`: the walk is over, usage is complete.
pub fn finish_set(tx: &mut dyn Transaction, now: Timestamp, dir: Ino) -> Result<QuotaInfo, Error> {
    let mut q = get(tx, dir)?.ok_or(Error::NotFound)?;
    q.counting = false;
    q.note_soft(millis(now));
    put(tx, dir, &q)?;
    Ok(q.info(dir))
}

/// The quota of the project inode `ino` belongs to.
pub fn of_inode(tx: &mut dyn Transaction, ino: Ino) -> Result<Option<QuotaInfo>, Error> {
    let project = store::inode(tx, ino)?.attr.project;
    Ok(get(tx, project)?.map(|q| q.info(project)))
}

/// Up to `limit` quotas of projects numbered above `after`, in order.
pub fn list(tx: &mut dyn Transaction, after: Ino, limit: usize) -> Result<Vec<QuotaInfo>, Error> {
    let Some(from) = after.checked_add(1) else {
        return Ok(Vec::new());
    };
    let (s, e) = schema::quotas_from(from);
    let mut out = Vec::new();
    for (k, v) in tx.range(&s, &e, limit)? {
        let project = schema::parse_quota(&k).ok_or_else(|| Error::Io("bad quota key".into()))?;
        let q: Quota = rustre_proto::codec::decode(&v)?;
        out.push(q.info(project));
    }
    Ok(out)
}
