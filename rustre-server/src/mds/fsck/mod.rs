//! `rustre fsck`'s side of the MDS ([`FsckOp`], root only): pages of the inodes (with their
//! open, orphan and stale-index marks), of every directory entry and of the stale index,
//! each page read in one transaction; and repairs ([`FsckFix`]), each applied in one
//! transaction only if the condition fsck decided it on still holds, so a repair decided on a
//! live cluster never undoes a change made after fsck looked (docs/replication.md, "Resync
//! and repair"). The checks themselves run in the client (`rustre_fuse::client::admin`).

use std::sync::Arc;

use rustre_proto::codec;
use rustre_proto::msg::fsck::{
    FixOutcome, FsckAnswer, FsckEntry, FsckFix, FsckInode, FsckOp, FSCK_KEPT_PAGE_MAX,
    FSCK_PAGE_BYTES, FSCK_PAGE_MAX, LOST_FOUND,
};
use rustre_proto::msg::mds::MdsResponse;
use rustre_proto::msg::{FileKind, Ino, Timestamp, ROOT_INO};
use rustre_proto::Error;

use super::dispatch::Call;
use super::error::MdsError;
use super::namespace::{self, Ctx, NewInode, LINK_MAX};
use super::store::{self, Dentry, Inode};
use super::txn::Mutation;
use super::Mds;
use crate::meta::Transaction;
use crate::schema::{self, KeyOf};

#[cfg(test)]
mod tests;

/// Permissions of the `lost+found` directory a repair makes.
pub const LOST_FOUND_PERM: u32 = 0o700;

impl Mds {
    /// One fsck call: an administrator's only.
    pub(super) async fn fsck(
        self: &Arc<Self>,
        call: Call,
        op: FsckOp,
    ) -> Result<MdsResponse, MdsError> {
        // fsck reads every inode and entry past their permissions, and repairs.
        call.require_admin(if op.is_read_only() {
            "rustre fsck"
        } else {
            "rustre fsck --repair"
        })?;
        let read = Mutation::ReadOnly;
        let answer = match op {
            FsckOp::Inodes { after, limit } => {
                let limit = page(limit);
                let (inodes, done, now) = self
                    .txn(call.creds, vec![], read, move |tx, c| {
                        inodes(tx, after, limit).map(|(i, done)| (i, done, c.now))
                    })
                    .await?;
                FsckAnswer::Inodes { inodes, now, done }
            }
            FsckOp::Entries { after, limit } => {
                let limit = page(limit);
                let (entries, done) = self
                    .txn(call.creds, vec![], read, move |tx, _| {
                        entries(tx, after.as_ref().map(|(p, n)| (*p, n.as_str())), limit)
                    })
                    .await?;
                FsckAnswer::Entries { entries, done }
            }
            FsckOp::StaleIndex { after, limit } => {
                let limit = page(limit);
                let (inos, done) = self
                    .txn(call.creds, vec![], read, move |tx, _| {
                        stale_index(tx, after, limit)
                    })
                    .await?;
                FsckAnswer::StaleIndex { inos, done }
            }
            FsckOp::KeptBytes { after, limit } => {
                let limit = page(limit.min(FSCK_KEPT_PAGE_MAX));
                let (inos, done) = self
                    .txn(call.creds, vec![], read, move |tx, _| {
                        kept_bytes(tx, after, limit)
                    })
                    .await?;
                FsckAnswer::KeptBytes { inos, done }
            }
            FsckOp::Repair { fix, apply } => {
                // A reattach may make lost+found: its number is taken before the transaction.
                let new_dir = match (&fix, apply) {
                    (FsckFix::Reattach { .. }, true) => self.alloc_ino().await?,
                    _ => 0,
                };
                let kind = if apply { call.change() } else { read };
                let dirs = locks_of(&fix);
                let outcome = self
                    .txn(call.creds, dirs, kind, move |tx, c| {
                        repair(tx, c, &fix, apply, new_dir)
                    })
                    .await?;
                FsckAnswer::Repair(outcome)
            }
        };
        Ok(MdsResponse::Fsck(answer))
    }
}

/// A page size within [`FSCK_PAGE_MAX`].
fn page(limit: u32) -> usize {
    limit.clamp(1, FSCK_PAGE_MAX) as usize
}

/// The directories (and inodes) whose lock stripes a repair takes.
fn locks_of(fix: &FsckFix) -> Vec<Ino> {
    match fix {
        FsckFix::SetNlink { ino, .. }
        | FsckFix::IndexStale { ino }
        | FsckFix::UnindexStale { ino }
        | FsckFix::MendKeptBytes { ino } => vec![*ino],
        FsckFix::RemoveEntry { parent, .. } => vec![*parent],
        FsckFix::Reattach { ino, .. } => vec![ROOT_INO, *ino],
    }
}

/// Up to `limit` inodes numbered above `after` (and about [`FSCK_PAGE_BYTES`] of records),
/// with their marks; true when none follows.
pub fn inodes(
    tx: &mut dyn Transaction,
    after: Ino,
    limit: usize,
) -> Result<(Vec<FsckInode>, bool), Error> {
    let Some(from) = after.checked_add(1) else {
        return Ok((Vec::new(), true));
    };
    let (s, e) = schema::inodes_from(from);
    let rows = tx.range(&s, &e, limit)?;
    let mut done = rows.len() < limit;
    let mut out = Vec::with_capacity(rows.len());
    let mut bytes = 0;
    for (k, v) in rows {
        // A stored record is about as long as its answer (which drops a symlink's target).
        bytes += v.len();
        if bytes > FSCK_PAGE_BYTES && !out.is_empty() {
            done = false;
            break;
        }
        let inode: Inode = store::decode_inode(&v)
            .map_err(|e| Error::Io(format!("corrupt inode record {k:?}: {e}")))?;
        let ino = inode.attr.ino;
        let (os, oe) = schema::open_range(ino);
        let (ws, we) = schema::write_open_range(ino);
        out.push(FsckInode {
            open: !tx.range(&os, &oe, 1)?.is_empty(),
            write_open: !tx.range(&ws, &we, 1)?.is_empty(),
            orphan: tx.get(&schema::orphan(ino))?.is_some(),
            stale_indexed: tx.get(&schema::stale(ino))?.is_some(),
            parent: inode.parent,
            attr: inode.attr,
        });
    }
    Ok((out, done))
}

/// Up to `limit` directory entries after `(parent, name)`; true when none follows.
pub fn entries(
    tx: &mut dyn Transaction,
    after: Option<(Ino, &str)>,
    limit: usize,
) -> Result<(Vec<FsckEntry>, bool), Error> {
    let (s, e) = match after {
        Some((parent, name)) => schema::dentries_after(parent, name),
        None => schema::prefix_range(schema::DENTRY),
    };
    let rows = tx.range(&s, &e, limit)?;
    let done = rows.len() < limit;
    let mut out = Vec::with_capacity(rows.len());
    for (k, v) in rows {
        let Some(KeyOf::Dentry { parent, name }) = schema::parse_key(&k) else {
            return Err(Error::Io(format!("corrupt dentry key {k:?}")));
        };
        let d: Dentry = codec::decode(&v)
            .map_err(|e| Error::Io(format!("corrupt dentry record {k:?}: {e}")))?;
        out.push(FsckEntry {
            parent,
            name: String::from_utf8_lossy(name).into_owned(),
            ino: d.ino,
            kind: d.kind,
        });
    }
    Ok((out, done))
}

/// Up to `limit` inodes of the stale index numbered above `after`; true when none follows.
pub fn stale_index(
    tx: &mut dyn Transaction,
    after: Ino,
    limit: usize,
) -> Result<(Vec<Ino>, bool), Error> {
    inos_keyed(tx, after, limit, schema::stale_from, schema::parse_stale)
}

/// Up to `limit` inodes numbered above `after` whose bytes the store keeps (data on the
/// MDS, `super::inline`); true when none follows.
pub fn kept_bytes(
    tx: &mut dyn Transaction,
    after: Ino,
    limit: usize,
) -> Result<(Vec<Ino>, bool), Error> {
    inos_keyed(tx, after, limit, schema::inlines_from, schema::parse_inline)
}

/// Up to `limit` inodes above `after` of the keys that `range_from` spans from an inode
/// on, parsed by `parse`; true when none follows.
fn inos_keyed(
    tx: &mut dyn Transaction,
    after: Ino,
    limit: usize,
    range_from: fn(Ino) -> (Vec<u8>, Vec<u8>),
    parse: fn(&[u8]) -> Option<Ino>,
) -> Result<(Vec<Ino>, bool), Error> {
    let Some(from) = after.checked_add(1) else {
        return Ok((Vec::new(), true));
    };
    let (s, e) = range_from(from);
    let rows = tx.range(&s, &e, limit)?;
    let done = rows.len() < limit;
    rows.iter()
        .map(|(k, _)| parse(k).ok_or_else(|| Error::Io(format!("corrupt key {k:?}"))))
        .collect::<Result<Vec<_>, _>>()
        .map(|inos| (inos, done))
}

/// Applies `fix` if its condition holds (with `apply` false: only says whether it would).
/// `new_dir` is the inode number lost+found gets if a reattach must make it.
pub fn repair(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    fix: &FsckFix,
    apply: bool,
    new_dir: Ino,
) -> Result<FixOutcome, Error> {
    match fix {
        FsckFix::SetNlink {
            ino,
            seen,
            ctime,
            nlink,
        } => set_nlink(tx, ctx, *ino, (*seen, *ctime), *nlink, apply),
        FsckFix::RemoveEntry { parent, name, ino } => remove_entry(tx, *parent, name, *ino, apply),
        FsckFix::Reattach { ino, ctime } => reattach(tx, ctx, *ino, *ctime, apply, new_dir),
        FsckFix::IndexStale { ino } => {
            let stale = has_stale_slots(tx, *ino)?;
            if !stale || tx.get(&schema::stale(*ino))?.is_some() {
                return Ok(changed("the stale index already agrees with the layout"));
            }
            if apply {
                // Empty: unclaimed, as `replica` indexes a file.
                tx.set(&schema::stale(*ino), &[]);
            }
            Ok(FixOutcome::Applies("added to the stale index".into()))
        }
        FsckFix::UnindexStale { ino } => {
            let stale = has_stale_slots(tx, *ino)?;
            if stale || tx.get(&schema::stale(*ino))?.is_none() {
                return Ok(changed("the stale index already agrees with the layout"));
            }
            if apply {
                tx.clear(&schema::stale(*ino));
            }
            Ok(FixOutcome::Applies("dropped from the stale index".into()))
        }
        FsckFix::MendKeptBytes { ino } => mend_kept_bytes(tx, *ino, apply),
    }
}

/// [`FsckFix::MendKeptBytes`].
fn mend_kept_bytes(tx: &mut dyn Transaction, ino: Ino, apply: bool) -> Result<FixOutcome, Error> {
    let kept = tx.get(&schema::inline(ino))?.is_some();
    match store::get_inode(tx, ino)? {
        Some(mut inode) if inode.attr.inline && !kept => {
            if apply {
                inode.attr.inline = false;
                store::put_inode(tx, &inode)?;
            }
            Ok(FixOutcome::Applies(
                "unmarked as data on the MDS (no bytes kept: it reads as zeros)".into(),
            ))
        }
        Some(inode) if inode.attr.inline || !kept => {
            Ok(changed("its mark and kept bytes already agree"))
        }
        None if !kept => Ok(changed("no bytes kept for it")),
        _ => {
            if apply {
                tx.clear(&schema::inline(ino));
            }
            Ok(FixOutcome::Applies(
                "dropped bytes kept for an inode that is gone or not data on the MDS".into(),
            ))
        }
    }
}

fn changed(why: &str) -> FixOutcome {
    FixOutcome::Changed(why.to_string())
}

/// True when `ino` exists and its layout has stale copies.
fn has_stale_slots(tx: &mut dyn Transaction, ino: Ino) -> Result<bool, Error> {
    Ok(store::get_inode(tx, ino)?
        .and_then(|i| i.attr.layout)
        .is_some_and(|l| !l.stale.is_empty()))
}

/// [`FsckFix::SetNlink`]: `seen` is the (link count, ctime) fsck read.
fn set_nlink(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    seen: (u32, Timestamp),
    nlink: u32,
    apply: bool,
) -> Result<FixOutcome, Error> {
    if nlink == 0 || nlink > LINK_MAX {
        return Err(Error::Invalid(format!("link count {nlink} out of range")));
    }
    let Some(mut inode) = store::get_inode(tx, ino)? else {
        return Ok(changed("the inode is gone"));
    };
    if (inode.attr.nlink, inode.attr.ctime) != seen {
        return Ok(changed("the inode changed since fsck read it"));
    }
    if apply {
        inode.attr.nlink = nlink;
        inode.attr.ctime = ctx.now;
        store::put_inode(tx, &inode)?;
    }
    Ok(FixOutcome::Applies(format!("link count set to {nlink}")))
}

/// [`FsckFix::RemoveEntry`].
fn remove_entry(
    tx: &mut dyn Transaction,
    parent: Ino,
    name: &str,
    ino: Ino,
    apply: bool,
) -> Result<FixOutcome, Error> {
    let key = schema::dentry(parent, name);
    if store::get::<Dentry>(tx, &key)?.map(|d| d.ino) != Some(ino) {
        return Ok(changed("the entry no longer names that inode"));
    }
    let target = tx.get(&schema::inode(ino))?.is_some();
    let dir = store::get_inode(tx, parent)?.is_some_and(|p| p.attr.kind == FileKind::Dir);
    if target && dir {
        return Ok(changed("the inode and its directory both exist"));
    }
    if apply {
        // The directory's link count is fsck's to fix apart (`SetNlink`): it counted only
        // entries naming existing directories.
        tx.clear(&key);
    }
    Ok(FixOutcome::Applies("entry removed".into()))
}

/// [`FsckFix::Reattach`].
fn reattach(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    ctime: Timestamp,
    apply: bool,
    new_dir: Ino,
) -> Result<FixOutcome, Error> {
    if ino == ROOT_INO {
        return Err(Error::Invalid("the root is never reattached".into()));
    }
    let Some(mut lost) = store::get_inode(tx, ino)? else {
        return Ok(changed("the inode is gone"));
    };
    if lost.attr.ctime != ctime {
        return Ok(changed("the inode changed since fsck read it"));
    }
    let (s, e) = schema::open_range(ino);
    if !tx.range(&s, &e, 1)?.is_empty() || tx.get(&schema::orphan(ino))?.is_some() {
        return Ok(changed("the inode is open, or unlinked while open"));
    }
    let name = format!("#{ino}");
    let dir = match store::dentry(tx, ROOT_INO, LOST_FOUND)? {
        Some(d) => {
            let dir = store::inode(tx, d.ino)?;
            if dir.attr.kind != FileKind::Dir {
                return Err(Error::Invalid(format!("/{LOST_FOUND} is not a directory")));
            }
            if store::dentry(tx, dir.attr.ino, &name)?.is_some() {
                return Ok(changed("lost+found already has an entry of that name"));
            }
            Some(dir)
        }
        None => None,
    };
    let what = format!("linked as /{LOST_FOUND}/{name}");
    if !apply {
        return Ok(FixOutcome::Applies(what));
    }
    let mut dir = match dir {
        Some(dir) => dir,
        None => {
            if new_dir == 0 {
                return Err(Error::Invalid("no inode number for lost+found".into()));
            }
            let made = NewInode {
                ino: new_dir,
                kind: FileKind::Dir,
                perm: LOST_FOUND_PERM,
                umask: 0,
                rdev: 0,
                target: None,
                layout: None,
            };
            namespace::create_entry(tx, ctx, ROOT_INO, LOST_FOUND, made)?;
            store::inode(tx, new_dir)?
        }
    };
    let d = Dentry {
        ino,
        kind: lost.attr.kind,
    };
    store::put_dentry(tx, dir.attr.ino, &name, d)?;
    if lost.attr.kind == FileKind::Dir {
        if dir.attr.nlink >= LINK_MAX {
            return Err(Error::TooManyLinks);
        }
        lost.parent = dir.attr.ino;
        dir.attr.nlink += 1;
    } else {
        lost.attr.nlink = 1;
    }
    lost.attr.ctime = ctx.now;
    dir.attr.mtime = ctx.now;
    dir.attr.ctime = ctx.now;
    store::put_inode(tx, &lost)?;
    store::put_inode(tx, &dir)?;
    Ok(FixOutcome::Applies(what))
}
