//! Inode attribute operations, each the body of one transaction: setattr with Linux's
//! ownership and time rules, size reports from writers, access checks, readlink, xattrs
//! (POSIX ACLs among them, kept on the inode: [`acl`]) and directory default layouts.

use rustre_proto::msg::mds::{
    relatime_due, SetAttr, XATTR_CREATE, XATTR_NAME_MAX_BYTES, XATTR_REPLACE, XATTR_VALUE_MAX_BYTES,
};
use rustre_proto::msg::{
    attr_rules, Attr, FileKind, Ino, Layout, LayoutSpec, StripeSet, Timestamp, MAX_OBJECT_BYTES,
};
use rustre_proto::Error;

use super::acl::{self, Which};
use super::namespace::Ctx;
use super::perm::{self, W};
use super::{quota, store, truncate};
use crate::meta::Transaction;
use crate::schema;

/// Most xattrs listed for one inode.
pub const XATTR_LIST_MAX: usize = 1024;

/// The file capability xattr: any change of the file's data removes it, whoever writes
/// (Linux's file_remove_privs).
pub const CAPABILITY_XATTR: &str = "security.capability";

/// What a change of the data of `ino` (a write, truncate or fallocate by `ctx.creds`) does to
/// its privileges, by Linux's rules: setuid goes, and setgid with group-execute, unless the
/// writer is root; the file capability goes whoever writes. True if anything changed (ctime
/// is then `ctx.now`); the caller stores the inode.
pub(super) fn kill_privs(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    attr: &mut Attr,
) -> Result<bool, Error> {
    let mut changed = false;
    let cleared = perm::perm_after_write(ctx.creds, attr);
    if cleared != attr.perm {
        attr.perm = cleared;
        changed = true;
    }
    let key = schema::xattr(attr.ino, CAPABILITY_XATTR);
    if attr.kind == FileKind::File && tx.get(&key)?.is_some() {
        tx.clear(&key);
        changed = true;
    }
    if changed {
        attr.ctime = ctx.now;
    }
    Ok(changed)
}

/// What a setattr did, and whether a size change is waiting for its objects to be cut
/// ([`truncate`]): the caller carries it out before it answers.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SetAttrOutcome {
    pub attr: Attr,
    /// The call set a size and the file has a truncate intent pending (this one's, or an
    /// earlier one's not carried out yet).
    pub cut_pending: bool,
}

/// The largest size a regular file with layout `layout` may have: what its stripes hold
/// ([`Layout::max_file_size`]); one object's worth without a layout.
pub fn max_file_size(layout: Option<&Layout>) -> u64 {
    layout.map_or(MAX_OBJECT_BYTES, Layout::max_file_size)
}

/// Applies `set` to inode `ino` with Linux's permission rules. A size past what the file's
/// stripes can hold is EFBIG, with nothing changed; a size change records its truncate
/// intent in the same transaction.
pub fn setattr(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    set: &SetAttr,
) -> Result<SetAttrOutcome, Error> {
    let mut inode = store::inode(tx, ino)?;
    let before = inode.clone();
    let creds = ctx.creds;
    let a = &mut inode.attr;
    let mut changed = false;
    let mut resized = false;

    changed |= attr_rules::apply_owner_and_mode(creds, a, set)?;
    if let Some(size) = set.size {
        match a.kind {
            FileKind::Dir => return Err(Error::IsDir),
            FileKind::File => {}
            _ => return Err(Error::Invalid("truncate of a special file".into())),
        }
        if !set.via_write_handle {
            perm::check(creds, a, W)?;
        }
        if size > max_file_size(a.layout.as_ref()) {
            return Err(Error::TooBig);
        }
        if size > a.size {
            quota::admit_size(tx, &before, size, ctx.now)?;
        }
        kill_privs(tx, ctx, a)?;
        if size != a.size {
            resized = true;
            a.size = size;
            a.truncate_version += 1;
            super::inline::cut(tx, a, size)?;
            if let Some(l) = a.layout.as_mut() {
                l.forget_written_past(size);
                // The MDS then cuts the up-to-date copies: a resync copying meanwhile must
                // not clear its stale marks (docs/replication.md).
                if !l.stale.is_empty() {
                    l.version += 1;
                }
            }
        }
        a.mtime = ctx.now;
        changed = true;
    }
    changed |= attr_rules::apply_times(creds, a, set, ctx.now)?;
    if changed {
        a.ctime = ctx.now;
        store::put_inode(tx, &inode)?;
    }
    if resized && inode.attr.layout.is_some() {
        truncate::record(tx, ino, inode.attr.size, inode.attr.truncate_version)?;
    }
    let cut_pending = set.size.is_some() && truncate::pending(tx, ino)?;
    Ok(SetAttrOutcome {
        attr: inode.attr,
        cut_pending,
    })
}

/// What a writer reports (`MdsOp::ReportSize`).
#[derive(Debug, Clone)]
pub struct SizeReport {
    pub size: u64,
    pub mtime: Timestamp,
    pub truncate_version: u64,
    /// Stripes its acknowledged writes reached since its last report.
    pub written: StripeSet,
    /// `(stripe, bytes)`: allocation of copy 0 of stripes it wrote (`Layout::allocated`).
    pub allocated: Vec<(u32, u64)>,
}

impl SizeReport {
    /// A report of `size` and `mtime` at `truncate_version` that names no written stripe
    /// (a close whose bytes went to the MDS, not to the objects).
    pub fn new(size: u64, mtime: Timestamp, truncate_version: u64) -> SizeReport {
        SizeReport {
            size,
            mtime,
            truncate_version,
            written: StripeSet::default(),
            allocated: Vec::new(),
        }
    }

    /// This report naming the stripes `written` and the allocation of copy 0 of each.
    pub fn wrote(self, written: StripeSet, allocated: Vec<(u32, u64)>) -> SizeReport {
        SizeReport {
            written,
            allocated,
            ..self
        }
    }
}

/// A writer's report of the size and mtime its data reached, and of the stripes it wrote
/// (added to `Layout::written`, never removed here). The size only grows, and a report made
/// before the latest truncate is ignored, its stripes too; a size past what the stripes hold
/// is EFBIG (the OSTs refuse such writes: no data can be there).
pub fn report_size(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    report: &SizeReport,
) -> Result<Attr, Error> {
    let SizeReport {
        size,
        mtime,
        truncate_version,
        written,
        ref allocated,
    } = *report;
    let mut inode = store::inode(tx, ino)?;
    let a = &mut inode.attr;
    if a.kind != FileKind::File {
        return Err(Error::Invalid("size report for a non-file".into()));
    }
    if size > max_file_size(a.layout.as_ref()) {
        return Err(Error::TooBig);
    }
    if truncate_version != a.truncate_version {
        return Ok(inode.attr);
    }
    let mut changed = super::inline::objects_written(tx, a, &written)?;
    changed |= a
        .layout
        .as_mut()
        .is_some_and(|l| l.note_written(&written) | l.note_allocated(allocated));
    if size > a.size {
        a.size = size;
        changed = true;
    }
    if mtime > a.mtime {
        a.mtime = mtime;
        a.ctime = mtime.max(a.ctime);
        changed = true;
    }
    // A report follows writes (or a fallocate): they cost the file its privileges.
    changed |= kill_privs(tx, ctx, a)?;
    if changed {
        store::put_inode(tx, &inode)?;
    }
    Ok(inode.attr)
}

/// What `MdsOp::ReportAndSetAttr` did: the attributes it left, and the refusal of the
/// attribute changes if the setattr rules refused them (the report landed all the same).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ReportedSetAttr {
    pub attr: Attr,
    pub refused: Option<Error>,
}

/// Whether `e`, from a setattr without a size, is the rules' refusal of the change (which
/// writes nothing) rather than a failure of the store.
fn is_refusal(e: &Error) -> bool {
    matches!(e, Error::NotPermitted | Error::Access)
}

/// A writer's size report and the owner, mode and time changes it kept until its close, by
/// the same caller, in one transaction: [`report_size`], then [`setattr`] with `set` (no
/// size: a size change is carried out apart, objects cut before the answer). Exactly what
/// the two calls did in that order: a refusal of `set` by the rules leaves the report
/// applied and is answered in [`ReportedSetAttr::refused`]; any other failure fails the
/// whole transaction.
pub fn report_and_setattr(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    report: &SizeReport,
    set: &SetAttr,
) -> Result<ReportedSetAttr, Error> {
    if set.size.is_some() {
        return Err(Error::Invalid(
            "a size change is not sent with a size report".into(),
        ));
    }
    let reported = report_size(tx, ctx, ino, report)?;
    match setattr(tx, ctx, ino, set) {
        Ok(o) => Ok(ReportedSetAttr {
            attr: o.attr,
            refused: None,
        }),
        Err(e) if is_refusal(&e) => Ok(ReportedSetAttr {
            attr: reported,
            refused: Some(e),
        }),
        Err(e) => Err(e),
    }
}

/// A read or a listing moved the atime of `ino` to `atime` (with `relative`, only if
/// relatime's rule says so). ctime stays: this is not a change of the inode, as on Linux.
pub fn accessed(
    tx: &mut dyn Transaction,
    ino: Ino,
    atime: Timestamp,
    relative: bool,
) -> Result<Attr, Error> {
    let mut inode = store::inode(tx, ino)?;
    let due = !relative || relatime_due(&inode.attr, atime);
    if due && inode.attr.atime != atime {
        inode.attr.atime = atime;
        store::put_inode(tx, &inode)?;
    }
    Ok(inode.attr)
}

/// access(2): EACCES unless every bit of `mask` is allowed (F_OK = 0 only checks existence).
pub fn access(tx: &mut dyn Transaction, ctx: &Ctx, ino: Ino, mask: u32) -> Result<(), Error> {
    let inode = store::inode(tx, ino)?;
    perm::check(ctx.creds, &inode.attr, mask & 7)
}

/// The target of symlink `ino`.
pub fn readlink(tx: &mut dyn Transaction, ino: Ino) -> Result<String, Error> {
    let inode = store::inode(tx, ino)?;
    inode
        .target
        .ok_or_else(|| Error::Invalid("not a symlink".into()))
}

/// The namespace of an xattr name decides who may touch it.
fn check_xattr(ctx: &Ctx, attr: &Attr, name: &str, write: bool) -> Result<(), Error> {
    if name.is_empty() || rustre_proto::raw_names::decoded_len(name) > XATTR_NAME_MAX_BYTES {
        return Err(if name.is_empty() {
            Error::Invalid("empty xattr name".into())
        } else {
            Error::Range
        });
    }
    if let Some(_rest) = name.strip_prefix("user.") {
        if !matches!(attr.kind, FileKind::File | FileKind::Dir) {
            return Err(if write {
                Error::NotPermitted
            } else {
                Error::NoData
            });
        }
        if attr.kind == FileKind::Dir
            && attr.perm & perm::S_ISVTX != 0
            && write
            && !perm::is_owner(ctx.creds, attr)
        {
            return Err(Error::NotPermitted);
        }
        return perm::check(ctx.creds, attr, if write { W } else { perm::R });
    }
    if name.starts_with("trusted.") || name.starts_with("security.") {
        if ctx.creds.uid != 0 && (write || name.starts_with("trusted.")) {
            return Err(if write {
                Error::NotPermitted
            } else {
                Error::NoData
            });
        }
        return Ok(());
    }
    // Other system.* names (POSIX ACLs are handled apart) and unknown namespaces.
    Err(Error::NotSupported)
}

pub fn get_xattr(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    name: &str,
) -> Result<Vec<u8>, Error> {
    let inode = store::inode(tx, ino)?;
    if let Some(which) = Which::of(name) {
        // Anyone who reached the inode may read its ACLs, as in Linux.
        return acl::get(&inode, which);
    }
    check_xattr(ctx, &inode.attr, name, false)?;
    tx.get(&schema::xattr(ino, name))?.ok_or(Error::NoData)
}

pub fn set_xattr(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    name: &str,
    value: &[u8],
    flags: u32,
) -> Result<(), Error> {
    let mut inode = store::inode(tx, ino)?;
    if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Err(Error::Invalid("bad xattr flags".into()));
    }
    if let Some(which) = Which::of(name) {
        // Linux sets an ACL whatever XATTR_CREATE or XATTR_REPLACE say.
        acl::set(ctx.creds, ctx.now, &mut inode, which, value)?;
        return store::put_inode(tx, &inode);
    }
    check_xattr(ctx, &inode.attr, name, true)?;
    if value.len() > XATTR_VALUE_MAX_BYTES {
        return Err(Error::TooBig);
    }
    let key = schema::xattr(ino, name);
    let exists = tx.get(&key)?.is_some();
    if flags & XATTR_CREATE != 0 && exists {
        return Err(Error::Exists);
    }
    if flags & XATTR_REPLACE != 0 && !exists {
        return Err(Error::NoData);
    }
    if !exists {
        let (s, e) = schema::xattr_range(ino);
        if tx.range(&s, &e, XATTR_LIST_MAX)?.len() >= XATTR_LIST_MAX {
            return Err(Error::NoSpace);
        }
    }
    tx.set(&key, value);
    inode.attr.ctime = ctx.now;
    store::put_inode(tx, &inode)
}

pub fn list_xattr(tx: &mut dyn Transaction, ctx: &Ctx, ino: Ino) -> Result<Vec<String>, Error> {
    let inode = store::inode(tx, ino)?;
    let (s, e) = schema::xattr_range(ino);
    let mut names = acl::names(&inode);
    for (k, _) in tx.range(&s, &e, XATTR_LIST_MAX)? {
        let name =
            schema::parse_xattr_name(&k).ok_or_else(|| Error::Io("corrupt xattr key".into()))?;
        // Like Linux, list only what the caller could read.
        if name.starts_with("trusted.") && ctx.creds.uid != 0 {
            continue;
        }
        names.push(name.to_string());
    }
    Ok(names)
}

pub fn remove_xattr(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    name: &str,
) -> Result<(), Error> {
    let mut inode = store::inode(tx, ino)?;
    if let Some(which) = Which::of(name) {
        // As Linux's removal of an ACL: no error when there is none.
        acl::set(ctx.creds, ctx.now, &mut inode, which, &[])?;
        return store::put_inode(tx, &inode);
    }
    // The kernel removes the file capability before a write as the writer (Linux's
    // killpriv), and refuses an explicit removal without CAP_SETFCAP itself: whoever may
    // write the file may remove it, as a write would.
    let killpriv = name == CAPABILITY_XATTR && perm::allowed(ctx.creds, &inode.attr, W);
    if !killpriv {
        check_xattr(ctx, &inode.attr, name, true)?;
    }
    let key = schema::xattr(ino, name);
    if tx.get(&key)?.is_none() {
        return Err(Error::NoData);
    }
    tx.clear(&key);
    inode.attr.ctime = ctx.now;
    store::put_inode(tx, &inode)
}

/// Sets or clears a directory's default layout (owner or root).
pub fn set_dir_layout(
    tx: &mut dyn Transaction,
    ctx: &Ctx,
    ino: Ino,
    spec: Option<LayoutSpec>,
) -> Result<(), Error> {
    let mut d = store::dir(tx, ino)?;
    perm::check_owner(ctx.creds, &d.attr)?;
    d.dir_layout = spec;
    d.attr.ctime = ctx.now;
    store::put_inode(tx, &d)
}

pub fn get_dir_layout(tx: &mut dyn Transaction, ino: Ino) -> Result<Option<LayoutSpec>, Error> {
    Ok(store::dir(tx, ino)?.dir_layout)
}

#[cfg(test)]
mod tests {
    use rustre_proto::msg::mds::{MdsOp, RELATIME_MAX_AGE_SECS};
    use rustre_proto::msg::Timestamp;

    use crate::mds::tests::TestCluster;

    #[tokio::test]
    async fn accessed_moves_atime_by_relatimes_rule_and_leaves_ctime() {
        let t = TestCluster::start(1).await;
        let a = t.create("f", 1, 1).await.unwrap();
        let at = |sec: i64| Timestamp {
            sec: a.ctime.sec + sec,
            nsec: 0,
        };
        let accessed = |atime, relative| MdsOp::Accessed {
            ino: a.ino,
            atime,
            relative,
        };
        // Not after mtime: the first read moves it; then it is newer, so the next does not.
        let b = t.attr(accessed(at(1), true)).await.unwrap();
        assert_eq!((b.atime, b.ctime, b.mtime), (at(1), a.ctime, a.mtime));
        let c = t.attr(accessed(at(2), true)).await.unwrap();
        assert_eq!(c.atime, at(1));
        // A day later it moves again; without `relative` it always does.
        let d = t
            .attr(accessed(at(1 + RELATIME_MAX_AGE_SECS), true))
            .await
            .unwrap();
        assert_eq!(d.atime, at(1 + RELATIME_MAX_AGE_SECS));
        let e = t.attr(accessed(at(3), false)).await.unwrap();
        assert_eq!((e.atime, e.ctime), (at(3), a.ctime));
    }

    /// Updates sent together follow the same rule each, answer in order, and an inode gone
    /// meanwhile fails none of the others; more than the limit is refused.
    #[tokio::test]
    async fn atimes_sent_together_move_as_each_would() {
        use rustre_proto::msg::mds::{AtimeUpdate, MdsResponse, ACCESSED_MAX_INODES};
        use rustre_proto::Error;
        let t = TestCluster::start(1).await;
        let a = t.create("a", 1, 1).await.unwrap();
        let b = t.create("b", 1, 1).await.unwrap();
        let at = |sec: i64| Timestamp {
            sec: a.ctime.sec + sec,
            nsec: 0,
        };
        let up = |ino, atime, relative| AtimeUpdate {
            ino,
            atime,
            relative,
        };
        let updates = vec![
            up(a.ino, at(5), true),
            up(u64::MAX - 1, at(5), true),
            up(b.ino, at(6), true),
            // The second update of `a` is not due any more under relatime.
            up(a.ino, at(7), true),
        ];
        let answer = t.call(MdsOp::AccessedMany { updates }).await.unwrap();
        let MdsResponse::Attrs(attrs) = answer else {
            panic!("{answer:?}")
        };
        let atimes: Vec<_> = attrs.iter().map(|x| x.as_ref().map(|x| x.atime)).collect();
        assert_eq!(atimes, [Some(at(5)), None, Some(at(6)), Some(at(5))]);
        assert_eq!(
            t.attr(MdsOp::GetAttr { ino: a.ino }).await.unwrap().atime,
            at(5)
        );
        assert_eq!(attrs[2].as_ref().unwrap().ctime, b.ctime, "no ctime change");
        let too_many = vec![up(a.ino, at(8), false); ACCESSED_MAX_INODES + 1];
        assert!(matches!(
            t.call(MdsOp::AccessedMany { updates: too_many }).await,
            Err(Error::Invalid(_))
        ));
    }
}
