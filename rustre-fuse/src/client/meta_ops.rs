//! What each MDS operation means to the client apart from sending it: what a change of this
//! client did, for its metadata cache ([`own_results`]), the names a request names
//! ([`request_entries`]), and which calls are session bookkeeping or may be sent again
//! unchanged ([`is_session_op`], [`idempotent`]), and whether an answer's layout is sound
//! ([`check_layout`]). Pure functions of the request and answer.

use rustre_proto::msg::mds::{MdsOp, MdsResponse, RENAME_EXCHANGE};
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
    use OwnResult::{Changed, Entry, NewDir, Renamed, Unknown};
    let attr = match resp {
        MdsResponse::Attr(a)
        | MdsResponse::Reserved { attr: a, .. }
        | MdsResponse::ReportedSetAttr { attr: a, .. }
        | MdsResponse::Created { attr: a, .. }
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
    // A new file (or an existing one opened, maybe truncated) and its directory's
    // attributes, which the answer carries.
    if let (MdsOp::Create { parent, name, .. }, MdsResponse::Created { parent: p, .. }, Some(a)) =
        (op, resp, &attr)
    {
        if p.ino == *parent {
            return vec![
                entry(*parent, name, Some(a.clone())),
                OwnResult::Attr((**p).clone()),
            ];
        }
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
        (MdsOp::ReportAndSetAttr { .. }, Some(a))
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
        // Open bookkeeping, except that a last release destroys an inode with no names.
        (MdsOp::Release { inos }, _) => inos.iter().map(|i| OwnResult::Released(*i)).collect(),
        // The removed inode is the one the cache knows by that name, if it does.
        (MdsOp::Unlink { parent, name } | MdsOp::Rmdir { parent, name }, _)
            if matches!(resp, MdsResponse::Done) =>
        {
            vec![
                OwnResult::Unlinked {
                    parent: *parent,
                    name: name.clone(),
                },
                entry(*parent, name, None),
                Changed(*parent),
            ]
        }
        (
            MdsOp::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
            },
            _,
        ) if matches!(resp, MdsResponse::Done) => vec![
            Renamed {
                from: (*parent, name.clone()),
                to: (*new_parent, new_name.clone()),
                exchange: flags & RENAME_EXCHANGE != 0,
            },
            Changed(*parent),
            Changed(*new_parent),
        ],
        _ => vec![Unknown],
    }
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
    ) || matches!(op, MdsOp::Fsck(f) if f.is_read_only())
}
