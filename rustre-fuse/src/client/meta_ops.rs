//! What each MDS operation means to the client apart from sending it: what a change of this
//! client did, for its metadata cache ([`own_results`]), the names a request names
//! ([`request_entries`]), and which calls are session bookkeeping or may be sent again
//! unchanged ([`is_session_op`], [`idempotent`]), and whether an answer's layout is sound
//! ([`check_layout`]). Pure functions of the request and answer.

use rustre_proto::msg::mds::{
    MdsOp, MdsResponse, NamesChanged, Touched, RENAME_EXCHANGE, RENAME_WHITEOUT,
};
use rustre_proto::msg::{Attr, Ino};
use rustre_proto::Error;

use super::meta_cache::OwnResult;

/// The stripe math divides by the stripe size and indexes the OST list: a layout breaking
/// the protocol's limits is refused here, not panicked on.
pub(super) fn check_layout(a: &Attr) -> Result<(), Error> {
    match &a.layout {
        Some(l) => l
            .validate()
            .map_err(|e| Error::Protocol(format!("MDS sent a bad layout: {e}"))),
        None => Ok(()),
    }
}

/// What one of this client's changes did, from its request and answer, for the metadata
/// cache. Every inode and name the MDS's transaction touches is either named here or covered
/// by `OwnResult::Unknown` (the feed's report of the same change evicts everything anyway;
/// this only decides what the cache may answer before that report arrives).
pub(super) fn own_results(op: &MdsOp, resp: &MdsResponse) -> Vec<OwnResult> {
    use OwnResult::{Changed, Entry, NewDir, Unknown};
    let attr = match resp {
        MdsResponse::Attr(a)
        | MdsResponse::Reserved { attr: a, .. }
        | MdsResponse::ReportedSetAttr { attr: a, .. }
        | MdsResponse::Created { attr: a, .. }
        | MdsResponse::InlineData { attr: a, .. }
            if check_layout(a).is_ok() =>
        {
            Some(a.clone())
        }
        _ => None,
    };
    let entry = |parent: Ino, name: &str, attr: Option<Attr>| Entry {
        parent,
        name: name.to_string(),
        attr,
    };
    // A new file (or an existing one opened, maybe truncated), directory or other node, and
    // its directory's attributes, which the answer carries.
    if let (
        MdsOp::Create { parent, name, .. }
        | MdsOp::Mkdir { parent, name, .. }
        | MdsOp::Mknod { parent, name, .. }
        | MdsOp::Symlink { parent, name, .. },
        MdsResponse::Created { parent: p, .. },
        Some(a),
    ) = (op, resp, &attr)
    {
        if p.ino == *parent {
            let mut known = vec![
                entry(*parent, name, Some(a.clone())),
                OwnResult::Attr((**p).clone()),
            ];
            if matches!(op, MdsOp::Mkdir { .. }) {
                known.push(NewDir(a.ino));
            }
            return known;
        }
    }
    if let MdsResponse::NamesChanged(n) = resp {
        return names_changed(op, n).unwrap_or_else(|| vec![Unknown]);
    }
    match (op, attr) {
        // A new name (or an existing file opened, maybe truncated) and its directory's times.
        (
            MdsOp::Create { parent, name, .. }
            | MdsOp::Mknod { parent, name, .. }
            | MdsOp::Symlink { parent, name, .. }
            | MdsOp::Link {
                new_parent: parent,
                new_name: name,
                ..
            },
            Some(a),
        ) => vec![entry(*parent, name, Some(a)), Changed(*parent)],
        (MdsOp::Mkdir { parent, name, .. }, Some(a)) => {
            let dir = a.ino;
            vec![entry(*parent, name, Some(a)), Changed(*parent), NewDir(dir)]
        }
        // A size report whose attribute changes were refused: the answer is the inode's
        // attributes, and the refusal says this client's view of them was out of date (as
        // a refused setattr does, below).
        (MdsOp::ReportAndSetAttr { .. } | MdsOp::CloseInline { .. }, Some(a))
            if matches!(
                resp,
                MdsResponse::ReportedSetAttr {
                    refused: Some(_),
                    ..
                }
            ) =>
        {
            vec![OwnResult::Attr(a), Unknown]
        }
        // The inode alone, and the answer is its attributes now (an open's O_TRUNC, a size
        // report, a layout change).
        (
            MdsOp::SetAttr { .. }
            | MdsOp::ReportAndSetAttr { .. }
            | MdsOp::CloseInline { .. }
            | MdsOp::Spill { .. }
            | MdsOp::Open { .. }
            | MdsOp::ReportSize { .. }
            | MdsOp::MarkStale { .. }
            | MdsOp::MoveCopies { .. }
            | MdsOp::MarkLost { .. }
            | MdsOp::Accessed { .. }
            | MdsOp::ReserveAppend { .. }
            | MdsOp::MigrateStep { .. },
            Some(a),
        ) => vec![OwnResult::Attr(a)],
        // The inode alone, not in the answer.
        (
            MdsOp::SetXattr { ino, .. }
            | MdsOp::RemoveXattr { ino, .. }
            | MdsOp::SetDirLayout { ino, .. }
            | MdsOp::ReturnAppendLease { ino, .. }
            | MdsOp::QuotaReserve { ino, .. },
            _,
        ) => vec![Changed(*ino)],
        // Refused: nothing changed.
        (MdsOp::CloseInline { .. }, None) if matches!(resp, MdsResponse::InlineRefused) => {
            Vec::new()
        }
        // Open bookkeeping, except that a last release destroys an inode with no names.
        (MdsOp::Release { inos }, _) => inos.iter().map(|i| OwnResult::Released(*i)).collect(),
        // Atimes: each inode's atime now (its other attributes may be older than what
        // this client's other calls answered meanwhile), or gone.
        (MdsOp::AccessedMany { updates }, _) => match resp {
            MdsResponse::Attrs(attrs) if attrs.len() == updates.len() => updates
                .iter()
                .zip(attrs)
                .map(|(u, a)| match a {
                    Some(a) if a.ino == u.ino => OwnResult::Atime(a.ino, a.atime),
                    _ => Changed(u.ino),
                })
                .collect(),
            _ => vec![Unknown],
        },
        _ => vec![Unknown],
    }
}

/// What an unlink, rmdir or rename did, from its answer: the names it changed, the inodes
/// they named and the directories, all as its transaction left them. `None` (the cache
/// then waits for the feed) for an answer that does not fit the request.
fn names_changed(op: &MdsOp, n: &NamesChanged) -> Option<Vec<OwnResult>> {
    let attrs = n.dirs.iter().chain(n.source.attr.as_ref());
    let attrs = attrs.chain(n.target.iter().flat_map(|t| t.attr.as_ref()));
    if attrs.clone().any(|a| check_layout(a).is_err()) {
        return None;
    }
    let dir_inos: Vec<Ino> = n.dirs.iter().map(|d| d.ino).collect();
    let touched = |t: &Touched| match &t.attr {
        Some(a) if a.ino == t.ino => Some(OwnResult::Attr(a.clone())),
        Some(_) => None,
        None => Some(OwnResult::Gone(t.ino)),
    };
    let entry = |parent: Ino, name: &str, attr: Option<&Attr>| OwnResult::Entry {
        parent,
        name: name.to_string(),
        attr: attr.cloned(),
    };
    let mut out = match op {
        MdsOp::Unlink { parent, name } | MdsOp::Rmdir { parent, name }
            if dir_inos == [*parent] && n.target.is_none() =>
        {
            vec![touched(&n.source)?, entry(*parent, name, None)]
        }
        MdsOp::Rename {
            parent,
            name,
            new_parent,
            new_name,
            flags,
        } if flags & RENAME_WHITEOUT == 0
            && (dir_inos == [*parent] && parent == new_parent
                || dir_inos == [*parent, *new_parent] && parent != new_parent) =>
        {
            let moved = n.source.attr.as_ref().filter(|a| a.ino == n.source.ino)?;
            let target = n.target.as_ref();
            // What `name` names now: the other inode of an exchange, the same inode when
            // both names were links of it (nothing changed), else nothing.
            let left = match target {
                Some(t) if flags & RENAME_EXCHANGE != 0 || t.ino == moved.ino => {
                    Some(t.attr.as_ref().filter(|a| a.ino == t.ino)?)
                }
                _ if flags & RENAME_EXCHANGE != 0 => return None,
                _ => None,
            };
            let mut out = Vec::new();
            if let (Some(t), None) = (target, left) {
                // Replaced: one link fewer, or gone.
                out.push(touched(t)?);
            }
            out.push(entry(*parent, name, left));
            out.push(entry(*new_parent, new_name, Some(moved)));
            out
        }
        _ => return None,
    };
    out.extend(n.dirs.iter().cloned().map(OwnResult::Attr));
    Some(out)
}

/// The inodes an unlink, rmdir or rename destroyed (its last name went and no one had it
/// open): their cached pages have nothing left to read.
pub(super) fn destroyed(n: &NamesChanged) -> impl Iterator<Item = Ino> + '_ {
    let touched = std::iter::once(&n.source).chain(n.target.as_ref());
    touched.filter(|t| t.attr.is_none()).map(|t| t.ino)
}

/// The names a change names in its request (what its answer or refusal will settle).
pub(super) fn request_entries(op: &MdsOp) -> Vec<(Ino, String)> {
    match op {
        MdsOp::Create { parent, name, .. }
        | MdsOp::Mkdir { parent, name, .. }
        | MdsOp::Mknod { parent, name, .. }
        | MdsOp::Symlink { parent, name, .. }
        | MdsOp::Unlink { parent, name }
        | MdsOp::Rmdir { parent, name }
        | MdsOp::Link {
            new_parent: parent,
            new_name: name,
            ..
        } => vec![(*parent, name.clone())],
        MdsOp::Rename {
            parent,
            name,
            new_parent,
            new_name,
            ..
        } => vec![(*parent, name.clone()), (*new_parent, new_name.clone())],
        _ => Vec::new(),
    }
}

/// Session bookkeeping is not recorded per request: it is idempotent enough by itself.
pub(super) fn is_session_op(op: &MdsOp) -> bool {
    matches!(
        op,
        MdsOp::OpenSession { .. } | MdsOp::CloseSession | MdsOp::RenewSession
    )
}

/// True for calls that may be sent again without changing their outcome.
pub(super) fn idempotent(op: &MdsOp) -> bool {
    matches!(
        op,
        MdsOp::Lookup { .. }
            | MdsOp::GetAttr { .. }
            | MdsOp::Readlink { .. }
            | MdsOp::Readdir { .. }
            | MdsOp::OpenDir { .. }
            | MdsOp::Access { .. }
            | MdsOp::StatFs
            | MdsOp::GetXattr { .. }
            | MdsOp::ListXattr { .. }
            | MdsOp::GetDirLayout { .. }
            | MdsOp::SyncMeta
            | MdsOp::RenewSession
            | MdsOp::Watch { .. }
            | MdsOp::StuckCopies
            // Setting or dropping a lock twice is doing it once.
            | MdsOp::SetLock { .. }
            | MdsOp::GetLock { .. }
            | MdsOp::UnlockOwner { .. }
            | MdsOp::QuotaGet { .. }
            | MdsOp::QuotaList { .. }
            | MdsOp::ReadInline { .. }
            // A second move of a file's data to its objects finds nothing to move.
            | MdsOp::Spill { .. }
            // Giving a capability back twice is giving it back once.
            | MdsOp::ReturnDirCaps { .. }
    ) || matches!(op, MdsOp::Fsck(f) if f.is_read_only())
}
