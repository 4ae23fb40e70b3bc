//! Namespace operations, each the body of one transaction: lookup, create, mkdir, mknod,
//! symlink, link, unlink, rmdir, rename and readdir. They run again on conflict, so they
//! touch nothing outside the transaction.

use rustre_proto::msg::mds::{
    DirEntry, NamesChanged, Touched, RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT,
};
use rustre_proto::msg::quota::QuotaUsage;
use rustre_proto::msg::{
    validate_name, Attr, Creds, FileKind, Ino, Layout, LayoutSpec, Timestamp, ROOT_INO,
    SYMLINK_MAX_BYTES,
};
use rustre_proto::Error;

use super::acl;
use super::perm::{self, S_ISGID, W, X};
use super::quota;
use super::store::{self, Dentry, Doomed, Inode};
use crate::meta::Transaction;
use crate::schema;

/// Most hard links one inode may have.
pub const LINK_MAX: u32 = 65_000;
/// Deepest directory chain walked when checking that a rename makes no loop.
pub const MAX_DIR_DEPTH: usize = 4096;

/// Who calls and when: the same for every step of one operation.
pub struct Ctx<'a> {
    pub creds: &'a Creds,
    pub now: Timestamp,
}

/// What a new inode is.
pub struct NewInode {
    pub ino: Ino,
    pub kind: FileKind,
    pub perm: u32,
    /// The creating process's umask: cleared from `perm` unless the directory has a
    /// default ACL ([`acl::for_new_inode`]).
    pub umask: u32,
    pub rdev: u64,
    pub target: Option<String>,
    pub layout: Option<Layout>,
}

/// Resolves `name` in `parent` (needs search permission on `parent`).
pub fn lookup(tx: &mut dyn Transaction, ctx: &Ctx, parent: Ino, name: &str) -> Result<Attr, Error> {
    let p = store::dir(tx, parent)?;
    perm::check(ctx.creds, &p.attr, X)?;
    match name {
        "." => return Ok(p.attr),
        ".." => return Ok(store::inode(tx, p.parent)?.attr),
        _ => validate_name(name)?,
    }
    let d = store::dentry(tx, parent, name)?.ok_or(Error::NotFound)?;
    Ok(store::inode(tx, d.ino)?.attr)
}

/// A directory the caller may add entries to, as read in the current transaction.
pub struct WritableDir(Inode);

impl WritableDir {
    /// The layout new files in this directory inherit, if it has one.
    pub fn default_layout(&self) -> Option<&LayoutSpec> {
        self.0.dir_layout.as_ref()
    }
}

/// Checks that `creds` may add or remove entries of directory `parent`, and returns it.
fn writable_dir_inode(tx: &mut dyn Transaction, ctx: &Ctx, parent: Ino) -> Result<Inode, Error> {
    let p = store::dir(tx, parent)?;
    perm::check(ctx.creds, &p.attr, W | X)?;
    if p.attr.nlink == 0 {
        // The directory was removed; nothing may be created in it.
        return Err(Error::NotFound);
    }
    Ok(p)
}

/// [`writable_dir_inode`], for a caller that creates an entry in it with [`add_entry`].
pub fn writable_dir(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    parent: Ino,
) -> Result<WritableDir, Error> {
    writable_dir_inode(tx, ctx, parent).map(WritableDir)
}

/// Creates `name` in `parent` as `new`; EEXIST if the name is taken.
pub fn create_entry(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    parent: Ino,
    name: &str,
    new: NewInode,
) -> Result<Attr, Error> {
    validate_name(name)?;
    let dir = writable_dir(tx, ctx, parent)?;
    if store::dentry(tx, parent, name)?.is_some() {
        return Err(Error::Exists);
    }
    add_entry(tx, ctx, dir, name, new)
}

/// Adds the new inode `new` as `name` in `dir`. The caller checked `name` (valid, and
/// absent from `dir`) in this transaction.
pub fn add_entry(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    dir: WritableDir,
    name: &str,
    new: NewInode,
) -> Result<Attr, Error> {
    let WritableDir(mut p) = dir;
    let parent = p.attr.ino;
    let is_dir = new.kind == FileKind::Dir;
    if is_dir && p.attr.nlink >= LINK_MAX {
        return Err(Error::TooManyLinks);
    }
    let one = QuotaUsage {
        inodes: 1,
        bytes: 0,
    };
    quota::admit(tx, p.attr.project, one, ctx.now)?;
    let inode = init_inode(ctx, &p, new);
    store::put_inode(tx, &inode)?;
    store::put_dentry(
        tx,
        parent,
        name,
        Dentry {
            ino: inode.attr.ino,
            kind: inode.attr.kind,
        },
    )?;
    if is_dir {
        p.attr.nlink += 1;
    }
    p.attr.mtime = ctx.now;
    p.attr.ctime = ctx.now;
    store::put_inode(tx, &p)?;
    Ok(inode.attr)
}

/// Owner, group, mode and ACLs of a new inode, with the setgid-directory rules and the
/// umask or the directory's default ACL.
fn init_inode(ctx: &Ctx, parent: &Inode, new: NewInode) -> Inode {
    let mut perm = new.perm & 0o7777;
    let gid = if parent.attr.perm & S_ISGID != 0 {
        if new.kind == FileKind::Dir {
            perm |= S_ISGID;
        }
        parent.attr.gid
    } else {
        ctx.creds.gid
    };
    if new.kind != FileKind::Dir
        && perm & S_ISGID != 0
        && ctx.creds.uid != 0
        && !ctx.creds.in_group(gid)
    {
        perm &= !S_ISGID;
    }
    let (perm, acl, default_acl) =
        acl::for_new_inode(parent.default_acl.as_ref(), new.kind, perm, new.umask);
    let size = new.target.as_ref().map_or(0, |t| t.len() as u64);
    Inode {
        attr: Attr {
            ino: new.ino,
            kind: new.kind,
            perm,
            nlink: if new.kind == FileKind::Dir { 2 } else { 1 },
            uid: ctx.creds.uid,
            gid,
            size,
            atime: ctx.now,
            mtime: ctx.now,
            ctime: ctx.now,
            rdev: new.rdev,
            layout: new.layout,
            truncate_version: 0,
            acl: acl.map(Box::new),
            project: parent.attr.project,
            inline: false,
        },
        parent: if new.kind == FileKind::Dir {
            parent.attr.ino
        } else {
            0
        },
        target: new.target,
        dir_layout: if new.kind == FileKind::Dir {
            parent.dir_layout.clone()
        } else {
            None
        },
        default_acl,
        reserved: 0,
    }
}

/// Checks a symlink target.
pub fn validate_target(target: &str) -> Result<(), Error> {
    if target.is_empty() {
        return Err(Error::NotFound);
    }
    if rustre_proto::raw_names::decoded_len(target) > SYMLINK_MAX_BYTES {
        return Err(Error::NameTooLong);
    }
    if target.contains('\0') {
        return Err(Error::Invalid("NUL in symlink target".into()));
    }
    Ok(())
}

/// Adds the name `new_name` in `new_parent` for the existing non-directory `ino`.
pub fn link(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    new_parent: Ino,
    new_name: &str,
) -> Result<Attr, Error> {
    validate_name(new_name)?;
    let mut target = store::inode(tx, ino)?;
    if target.attr.kind == FileKind::Dir {
        return Err(Error::NotPermitted);
    }
    let mut p = writable_dir_inode(tx, ctx, new_parent)?;
    if store::dentry(tx, new_parent, new_name)?.is_some() {
        return Err(Error::Exists);
    }
    quota::check_move(&target, &p)?;
    if target.attr.nlink == 0 {
        return Err(Error::NotFound);
    }
    if target.attr.nlink >= LINK_MAX {
        return Err(Error::TooManyLinks);
    }
    target.attr.nlink += 1;
    target.attr.ctime = ctx.now;
    store::put_inode(tx, &target)?;
    let d = Dentry {
        ino,
        kind: target.attr.kind,
    };
    store::put_dentry(tx, new_parent, new_name, d)?;
    p.attr.mtime = ctx.now;
    p.attr.ctime = ctx.now;
    store::put_inode(tx, &p)?;
    Ok(target.attr)
}

/// What a change of names left, read back in its own transaction: `dirs`, and the inodes
/// `source` and `target` (gone, when it destroyed them).
fn names_changed(
    tx: &mut dyn Transaction,
    dirs: &[Ino],
    source: Ino,
    target: Option<Ino>,
) -> Result<NamesChanged, Error> {
    let mut touched = |ino: Ino| -> Result<Touched, Error> {
        let attr = store::get_inode(tx, ino)?.map(|i| i.attr);
        Ok(Touched { ino, attr })
    };
    let source = touched(source)?;
    let target = target.map(&mut touched).transpose()?;
    let dirs = dirs
        .iter()
        .map(|&d| store::inode(tx, d).map(|i| i.attr))
        .collect::<Result<_, _>>()?;
    Ok(NamesChanged {
        dirs,
        source,
        target,
    })
}

/// Removes the non-directory `name` from `parent`; answers what it left.
pub fn unlink(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    parent: Ino,
    name: &str,
) -> Result<NamesChanged, Error> {
    validate_name(name)?;
    let mut p = writable_dir_inode(tx, ctx, parent)?;
    let d = store::dentry(tx, parent, name)?.ok_or(Error::NotFound)?;
    if d.kind == FileKind::Dir {
        return Err(Error::IsDir);
    }
    let victim = store::inode(tx, d.ino)?;
    perm::check_sticky(ctx.creds, &p.attr, &victim.attr)?;
    tx.clear(&schema::dentry(parent, name));
    drop_link(tx, ctx, victim)?;
    p.attr.mtime = ctx.now;
    p.attr.ctime = ctx.now;
    store::put_inode(tx, &p)?;
    names_changed(tx, &[parent], d.ino, None)
}

/// Removes the empty directory `name` from `parent`; answers what it left.
pub fn rmdir(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    parent: Ino,
    name: &str,
) -> Result<NamesChanged, Error> {
    match name {
        "." => return Err(Error::Invalid("rmdir of \".\"".into())),
        ".." => return Err(Error::NotEmpty),
        _ => validate_name(name)?,
    }
    let mut p = writable_dir_inode(tx, ctx, parent)?;
    let d = store::dentry(tx, parent, name)?.ok_or(Error::NotFound)?;
    if d.kind != FileKind::Dir {
        return Err(Error::NotDir);
    }
    let victim = store::inode(tx, d.ino)?;
    perm::check_sticky(ctx.creds, &p.attr, &victim.attr)?;
    if !store::dir_is_empty(tx, d.ino)? {
        return Err(Error::NotEmpty);
    }
    tx.clear(&schema::dentry(parent, name));
    remove_inode(tx, &victim)?;
    p.attr.nlink -= 1;
    p.attr.mtime = ctx.now;
    p.attr.ctime = ctx.now;
    store::put_inode(tx, &p)?;
    names_changed(tx, &[parent], d.ino, None)
}

/// Drops one link of a non-directory. The last link of a file still open makes it an orphan;
/// otherwise the inode goes and its objects are queued for deletion.
fn drop_link(tx: &mut dyn Transaction, ctx: &Ctx, mut victim: Inode) -> Result<(), Error> {
    victim.attr.nlink = victim.attr.nlink.saturating_sub(1);
    victim.attr.ctime = ctx.now;
    if victim.attr.nlink > 0 {
        return store::put_inode(tx, &victim);
    }
    let (s, e) = schema::open_range(victim.attr.ino);
    if !tx.range(&s, &e, 1)?.is_empty() {
        tx.set(&schema::orphan(victim.attr.ino), &[]);
        return store::put_inode(tx, &victim);
    }
    destroy(tx, victim)
}

/// Removes an inode with no links and no opens, queueing its objects for deletion.
pub fn destroy(tx: &mut dyn Transaction, victim: Inode) -> Result<(), Error> {
    if let Some(layout) = victim.attr.layout.clone() {
        store::put(tx, &schema::destroy(victim.attr.ino), &Doomed { layout })?;
    }
    tx.clear(&schema::orphan(victim.attr.ino));
    // Workers scan these two queues: a blind removal would leave them a tombstone to walk.
    tx.clear_if_set(&schema::stale(victim.attr.ino))?;
    // Its objects go whole: a cut still pending has nothing left to do.
    tx.clear_if_set(&schema::truncate(victim.attr.ino))?;
    tx.clear(&schema::append_lease(victim.attr.ino));
    remove_inode(tx, &victim)
}

/// Removes `inode`'s record and xattrs; what it counted in its project goes.
fn remove_inode(tx: &mut dyn Transaction, inode: &Inode) -> Result<(), Error> {
    let ino = inode.attr.ino;
    quota::removed(tx, inode)?;
    tx.clear(&schema::inode(ino));
    if inode.attr.inline {
        tx.clear(&schema::inline(ino));
    }
    let (s, e) = schema::xattr_range(ino);
    tx.clear_range(&s, &e)?;
    Ok(())
}

/// Renames `parent/name` to `new_parent/new_name` with RENAME_NOREPLACE / RENAME_EXCHANGE /
/// RENAME_WHITEOUT (`whiteout`: the inode number for the whiteout, given with that flag
/// only); answers what it left.
#[allow(clippy::too_many_arguments)] // the rename's own arguments
pub fn rename(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    parent: Ino,
    name: &str,
    new_parent: Ino,
    new_name: &str,
    flags: u32,
    whiteout: Option<Ino>,
) -> Result<NamesChanged, Error> {
    if (flags & RENAME_WHITEOUT != 0) != whiteout.is_some() {
        return Err(Error::Invalid("RENAME_WHITEOUT without its inode".into()));
    }
    if whiteout.is_some() && flags & RENAME_EXCHANGE != 0 {
        return Err(Error::Invalid(
            "RENAME_WHITEOUT with RENAME_EXCHANGE".into(),
        ));
    }
    if whiteout.is_some() && ctx.creds.uid != 0 {
        // As mknod of a device (Linux asks CAP_MKNOD).
        return Err(Error::NotPermitted);
    }
    let plain = flags & !RENAME_WHITEOUT;
    let (source, target) = rename_names(tx, ctx, parent, name, new_parent, new_name, plain)?;
    if let Some(ino) = whiteout.filter(|_| target != Some(source)) {
        // The whiteout takes the name the source left (two links of one inode: nothing
        // moved, nothing to leave).
        let dir = writable_dir(tx, ctx, parent)?;
        let node = NewInode {
            ino,
            kind: FileKind::CharDev,
            perm: 0,
            umask: 0,
            rdev: 0,
            target: None,
            layout: None,
        };
        add_entry(tx, ctx, dir, name, node)?;
    }
    let dirs: &[Ino] = if parent == new_parent {
        &[parent]
    } else {
        &[parent, new_parent]
    };
    names_changed(tx, dirs, source, target)
}

/// The body of [`rename`]: answers the inodes `name` and `new_name` named before.
fn rename_names(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    parent: Ino,
    name: &str,
    new_parent: Ino,
    new_name: &str,
    flags: u32,
) -> Result<(Ino, Option<Ino>), Error> {
    if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE) != 0
        || flags == RENAME_NOREPLACE | RENAME_EXCHANGE
    {
        return Err(Error::Invalid("bad rename flags".into()));
    }
    for n in [name, new_name] {
        if n == "." || n == ".." {
            return Err(Error::Invalid("rename of . or ..".into()));
        }
        validate_name(n)?;
    }
    let src_dir = writable_dir_inode(tx, ctx, parent)?;
    let dst_dir = if new_parent == parent {
        src_dir.clone()
    } else {
        writable_dir_inode(tx, ctx, new_parent)?
    };
    let src = store::dentry(tx, parent, name)?.ok_or(Error::NotFound)?;
    let dst = store::dentry(tx, new_parent, new_name)?;
    let src_inode = store::inode(tx, src.ino)?;
    perm::check_sticky(ctx.creds, &src_dir.attr, &src_inode.attr)?;
    // Also within one directory: while `quota set` walks a tree, an entry it has not
    // labelled yet must not move behind its cursor.
    quota::check_move(&src_inode, &dst_dir)?;

    if flags & RENAME_EXCHANGE != 0 {
        let dst = dst.ok_or(Error::NotFound)?;
        exchange(tx, ctx, (parent, name, src), (new_parent, new_name, dst))?;
        return Ok((src.ino, Some(dst.ino)));
    }
    if let Some(dst) = dst {
        if flags & RENAME_NOREPLACE != 0 {
            return Err(Error::Exists);
        }
        if dst.ino == src.ino {
            // Two names of one inode: POSIX says do nothing.
            return Ok((src.ino, Some(dst.ino)));
        }
        let victim = store::inode(tx, dst.ino)?;
        perm::check_sticky(ctx.creds, &dst_dir.attr, &victim.attr)?;
        match (src.kind == FileKind::Dir, dst.kind == FileKind::Dir) {
            (true, false) => return Err(Error::NotDir),
            (false, true) => return Err(Error::IsDir),
            _ => {}
        }
        if src.kind == FileKind::Dir {
            check_no_loop(tx, src.ino, new_parent)?;
            check_dir_move_allowed(ctx, &src_inode, parent, new_parent)?;
            if !store::dir_is_empty(tx, dst.ino)? {
                return Err(Error::NotEmpty);
            }
            remove_inode(tx, &victim)?;
            // The replaced directory's link from new_parent goes away.
            adjust_nlink(tx, new_parent, -1)?;
        } else {
            drop_link(tx, ctx, victim)?;
        }
    } else if src.kind == FileKind::Dir {
        check_no_loop(tx, src.ino, new_parent)?;
        check_dir_move_allowed(ctx, &src_inode, parent, new_parent)?;
    }

    tx.clear(&schema::dentry(parent, name));
    store::put_dentry(tx, new_parent, new_name, src)?;
    let mut moved = store::inode(tx, src.ino)?;
    moved.attr.ctime = ctx.now;
    if src.kind == FileKind::Dir && parent != new_parent {
        moved.parent = new_parent;
        adjust_nlink(tx, parent, -1)?;
        adjust_nlink(tx, new_parent, 1)?;
    }
    store::put_inode(tx, &moved)?;
    touch_dirs(tx, ctx, parent, new_parent)?;
    Ok((src.ino, dst.map(|d| d.ino)))
}

/// Moving a directory to another parent rewrites its "..": Linux asks for write permission
/// on the directory itself.
fn check_dir_move_allowed(ctx: &Ctx, dir: &Inode, from: Ino, to: Ino) -> Result<(), Error> {
    if from != to {
        perm::check(ctx.creds, &dir.attr, W)?;
    }
    Ok(())
}

fn exchange(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    a: (Ino, &str, Dentry),
    b: (Ino, &str, Dentry),
) -> Result<(), Error> {
    let (pa, na, da) = a;
    let (pb, nb, db) = b;
    if da.ino == db.ino {
        return Ok(());
    }
    let ia = store::inode(tx, da.ino)?;
    let ib = store::inode(tx, db.ino)?;
    let dir_b = store::inode(tx, pb)?;
    perm::check_sticky(ctx.creds, &dir_b.attr, &ib.attr)?;
    quota::check_move(&ia, &dir_b)?;
    quota::check_move(&ib, &store::inode(tx, pa)?)?;
    if pa != pb {
        if da.kind == FileKind::Dir {
            check_no_loop(tx, da.ino, pb)?;
            check_dir_move_allowed(ctx, &ia, pa, pb)?;
        }
        if db.kind == FileKind::Dir {
            check_no_loop(tx, db.ino, pa)?;
            check_dir_move_allowed(ctx, &ib, pb, pa)?;
        }
    }
    store::put_dentry(tx, pa, na, db)?;
    store::put_dentry(tx, pb, nb, da)?;
    for (mut inode, new_parent) in [(ia, pb), (ib, pa)] {
        inode.attr.ctime = ctx.now;
        if inode.attr.kind == FileKind::Dir && pa != pb {
            inode.parent = new_parent;
        }
        store::put_inode(tx, &inode)?;
    }
    if pa != pb {
        let dirs = (da.kind == FileKind::Dir) as i64 - (db.kind == FileKind::Dir) as i64;
        adjust_nlink(tx, pa, -dirs)?;
        adjust_nlink(tx, pb, dirs)?;
    }
    touch_dirs(tx, ctx, pa, pb)
}

/// EINVAL if `target_parent` is `moved` or lies inside it.
fn check_no_loop(tx: &mut dyn Transaction, moved: Ino, target_parent: Ino) -> Result<(), Error> {
    let mut cur = target_parent;
    for _ in 0..MAX_DIR_DEPTH {
        if cur == moved {
            return Err(Error::Invalid("cannot move a directory into itself".into()));
        }
        if cur == ROOT_INO {
            return Ok(());
        }
        cur = store::inode(tx, cur)?.parent;
    }
    Err(Error::Loop)
}

fn adjust_nlink(tx: &mut dyn Transaction, dir: Ino, delta: i64) -> Result<(), Error> {
    if delta == 0 {
        return Ok(());
    }
    let mut d = store::inode(tx, dir)?;
    d.attr.nlink = (d.attr.nlink as i64 + delta).max(0) as u32;
    store::put_inode(tx, &d)
}

fn touch_dirs(tx: &mut dyn Transaction, ctx: &Ctx, a: Ino, b: Ino) -> Result<(), Error> {
    for dir in if a == b { vec![a] } else { vec![a, b] } {
        let mut d = store::inode(tx, dir)?;
        d.attr.mtime = ctx.now;
        d.attr.ctime = ctx.now;
        store::put_inode(tx, &d)?;
    }
    Ok(())
}

/// Up to `limit` entries of directory `ino` after the name `after`, with attributes if `plus`.
pub fn readdir(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    after: Option<&str>,
    limit: usize,
    plus: bool,
) -> Result<(Vec<DirEntry>, bool), Error> {
    let d = store::dir(tx, ino)?;
    perm::check(ctx.creds, &d.attr, perm::R)?;
    entries_of(tx, ino, after, limit, plus)
}

/// Up to `limit` entries of directory `ino` after name `after`, with their attributes when
/// `plus`; true when they end the directory (the caller checked read permission).
fn entries_of(
    tx: &mut dyn Transaction,
    ino: Ino,
    after: Option<&str>,
    limit: usize,
    plus: bool,
) -> Result<(Vec<DirEntry>, bool), Error> {
    let (s, e) = match after {
        Some(name) => schema::dentry_after(ino, name),
        None => schema::dentry_range(ino),
    };
    let rows = tx.range(&s, &e, limit + 1)?;
    let eof = rows.len() <= limit;
    let mut out = Vec::with_capacity(rows.len().min(limit));
    for (k, v) in rows.into_iter().take(limit) {
        let name = schema::parse_dentry_name(&k)
            .ok_or_else(|| Error::Io("corrupt dentry key".into()))?
            .to_string();
        let dentry: Dentry = rustre_proto::codec::decode(&v)?;
        let attr = if plus {
            Some(store::inode(tx, dentry.ino)?.attr)
        } else {
            None
        };
        out.push(DirEntry {
            name,
            ino: dentry.ino,
            kind: dentry.kind,
            attr,
        });
    }
    Ok((out, eof))
}

/// A directory opened for listing (`MdsOp::OpenDir`, needs read permission): its
/// attributes, the inode its `..` names (itself when the caller may not search it), and its
/// first `limit` entries with their attributes; true when they end the directory.
pub fn open_dir(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    limit: usize,
) -> Result<(Attr, Ino, Vec<DirEntry>, bool), Error> {
    let d = store::dir(tx, ino)?;
    perm::check(ctx.creds, &d.attr, perm::R)?;
    let (entries, eof) = entries_of(tx, ino, None, limit, true)?;
    let parent = if perm::check(ctx.creds, &d.attr, X).is_ok() {
        d.parent
    } else {
        ino
    };
    Ok((d.attr, parent, entries, eof))
}
