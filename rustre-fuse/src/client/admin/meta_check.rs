//! fsck's checks of the metadata alone, from the MDS's pages (`walk`): link counts, entries
//! naming inodes (or in directories) that do not exist, inodes no entry names, the stale
//! index against the layouts, and the bytes kept on the MDS against the files marked as data
//! on the MDS. The pages are not one snapshot of a live store, so every
//! problem seen is checked again by the MDS (a dry run of its repair, whose condition is what
//! fsck saw) before it is reported, and once more in the transaction that repairs it.
//!
//! The counting rules follow the MDS (`rustre-server/src/mds/namespace.rs`): a file's link
//! count is the number of entries naming it; a directory's is 2 (its entry in its parent and
//! its own `.`) plus one per subdirectory (their `..`); the root has no entry. An inode no
//! entry names is unreachable unless someone holds it open (an unlinked file still open lives
//! on as an orphan until its last close; a file whose inode is gone waits in the destroy
//! queue, which holds no inode). Repair links unreachable inodes into `/lost+found`.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rustre_proto::msg::fsck::{FixOutcome, FsckAnswer, FsckEntry, FsckFix, FsckInode, FsckOp};
use rustre_proto::msg::{FileKind, Ino, ROOT_INO};
use rustre_proto::Error;

use super::finding::{Finding, Repaired};
use crate::client::Client;

/// The problems the pages show, unconfirmed, in the order they are best repaired: entries
/// first (link counts leave them out), then link counts, the stale index and the kept
/// bytes, and unreachable inodes last (linking them in may make `/lost+found`, which
/// changes the root's count). `indexed`: the inodes the stale index names; `kept`: those
/// whose bytes the store keeps.
pub(super) fn candidates(
    inodes: &BTreeMap<Ino, FsckInode>,
    entries: &[FsckEntry],
    indexed: &BTreeSet<Ino>,
    kept: &BTreeSet<Ino>,
) -> Vec<Finding> {
    let is_dir = |ino: &Ino| {
        inodes
            .get(ino)
            .is_some_and(|i| i.attr.kind == FileKind::Dir)
    };
    let mut out = Vec::new();
    let mut names: HashMap<Ino, u32> = HashMap::new();
    let mut subdirs: HashMap<Ino, u32> = HashMap::new();
    for e in entries {
        let parent_ok = is_dir(&e.parent);
        if !parent_ok || !inodes.contains_key(&e.ino) {
            out.push(Finding::DanglingEntry {
                parent: e.parent,
                name: e.name.clone(),
                ino: e.ino,
                parent_missing: !parent_ok,
            });
            continue;
        }
        *names.entry(e.ino).or_default() += 1;
        if is_dir(&e.ino) {
            *subdirs.entry(e.parent).or_default() += 1;
        }
    }
    let mut unreachable = Vec::new();
    for (ino, i) in inodes {
        let a = &i.attr;
        let named = names.get(ino).copied().unwrap_or(0);
        if *ino != ROOT_INO && named == 0 {
            if !i.open && !i.orphan {
                unreachable.push(Finding::Unreachable {
                    ino: *ino,
                    kind: a.kind,
                    ctime: a.ctime,
                });
            }
            // Linking a file back in gives it its one link; a directory's count is about
            // its subdirectories all the same.
            if a.kind != FileKind::Dir {
                check_index(i, &mut out);
                continue;
            }
        }
        let want = if a.kind == FileKind::Dir {
            2 + subdirs.get(ino).copied().unwrap_or(0)
        } else {
            named
        };
        if a.nlink != want {
            out.push(Finding::LinkCount {
                ino: *ino,
                kind: a.kind,
                nlink: a.nlink,
                want,
                ctime: a.ctime,
            });
        }
        check_index(i, &mut out);
    }
    for ino in indexed.iter().filter(|i| !inodes.contains_key(i)) {
        out.push(Finding::NeedlessIndex { ino: *ino });
    }
    for (ino, i) in inodes {
        match (i.attr.inline, kept.contains(ino)) {
            (true, false) => out.push(Finding::KeptBytesLost { ino: *ino }),
            (false, true) => out.push(Finding::NeedlessKeptBytes { ino: *ino }),
            _ => {}
        }
    }
    for ino in kept.iter().filter(|i| !inodes.contains_key(i)) {
        out.push(Finding::NeedlessKeptBytes { ino: *ino });
    }
    out.extend(unreachable);
    out
}

/// The stale index must list exactly the files whose layout has stale copies.
fn check_index(i: &FsckInode, out: &mut Vec<Finding>) {
    let stale = i.attr.layout.as_ref().is_some_and(|l| !l.stale.is_empty());
    let ino = i.attr.ino;
    match (stale, i.stale_indexed) {
        (true, false) => out.push(Finding::NotIndexed { ino }),
        (false, true) => out.push(Finding::NeedlessIndex { ino }),
        _ => {}
    }
}

/// The MDS's repair of a metadata finding (`None` for findings about objects).
pub(super) fn fix_of(f: &Finding) -> Option<FsckFix> {
    Some(match f {
        Finding::LinkCount {
            ino,
            nlink,
            want,
            ctime,
            ..
        } => FsckFix::SetNlink {
            ino: *ino,
            seen: *nlink,
            ctime: *ctime,
            nlink: *want,
        },
        Finding::DanglingEntry {
            parent, name, ino, ..
        } => FsckFix::RemoveEntry {
            parent: *parent,
            name: name.clone(),
            ino: *ino,
        },
        Finding::Unreachable { ino, ctime, .. } => FsckFix::Reattach {
            ino: *ino,
            ctime: *ctime,
        },
        Finding::NotIndexed { ino } => FsckFix::IndexStale { ino: *ino },
        Finding::NeedlessIndex { ino } => FsckFix::UnindexStale { ino: *ino },
        Finding::KeptBytesLost { ino } | Finding::NeedlessKeptBytes { ino } => {
            FsckFix::MendKeptBytes { ino: *ino }
        }
        _ => return None,
    })
}

impl Client {
    /// Asks the MDS to apply `fix` (or with `apply` false, whether it would).
    async fn fsck_fix(&self, fix: FsckFix, apply: bool) -> Result<FixOutcome, Error> {
        match self.fsck_call(FsckOp::Repair { fix, apply }).await? {
            FsckAnswer::Repair(outcome) => Ok(outcome),
            other => Err(Error::Protocol(format!(
                "fsck: wrong answer to a repair: {other:?}"
            ))),
        }
    }

    /// The candidates that still hold (the MDS's dry run of each repair), and how many
    /// changed while fsck looked. One whose dry run fails (a repair the MDS refuses) is kept:
    /// it is a problem all the same.
    pub(super) async fn confirm(
        &self,
        candidates: Vec<Finding>,
    ) -> Result<(Vec<Finding>, usize), Error> {
        let mut kept = Vec::with_capacity(candidates.len());
        let mut changed = 0;
        for f in candidates {
            let Some(fix) = fix_of(&f) else {
                kept.push(f);
                continue;
            };
            match self.fsck_fix(fix, false).await {
                Ok(FixOutcome::Changed(_)) => changed += 1,
                Ok(FixOutcome::Applies(_)) | Err(Error::Invalid(_)) => kept.push(f),
                Err(e) => return Err(e),
            }
        }
        Ok((kept, changed))
    }

    /// Repairs the metadata finding whose fix is `fix`.
    pub(super) async fn repair_metadata(&self, fix: FsckFix) -> Result<Repaired, Error> {
        Ok(match self.fsck_fix(fix, true).await? {
            FixOutcome::Applies(what) => Repaired::Done(what),
            FixOutcome::Changed(why) => {
                Repaired::LeftAlone(format!("changed since fsck looked ({why})"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::{Attr, Layout, Timestamp};

    fn inode(ino: Ino, kind: FileKind, nlink: u32) -> FsckInode {
        FsckInode {
            attr: Attr {
                ino,
                kind,
                perm: 0o755,
                nlink,
                uid: 0,
                gid: 0,
                size: 0,
                atime: Timestamp::default(),
                mtime: Timestamp::default(),
                ctime: Timestamp::default(),
                rdev: 0,
                layout: (kind == FileKind::File).then(|| Layout::striped(1 << 20, vec![0])),
                truncate_version: 0,
                acl: None,
                project: 0,
                inline: false,
            },
            parent: 0,
            open: false,
            write_open: false,
            orphan: false,
            stale_indexed: false,
        }
    }

    fn entry(parent: Ino, name: &str, ino: Ino, kind: FileKind) -> FsckEntry {
        FsckEntry {
            parent,
            name: name.into(),
            ino,
            kind,
        }
    }

    #[test]
    fn a_consistent_tree_has_no_candidates() {
        use FileKind::{Dir, File};
        let inodes: BTreeMap<Ino, FsckInode> =
            [inode(ROOT_INO, Dir, 3), inode(2, Dir, 2), inode(3, File, 2)]
                .into_iter()
                .map(|i| (i.attr.ino, i))
                .collect();
        let entries = [
            entry(ROOT_INO, "d", 2, Dir),
            entry(ROOT_INO, "a", 3, File),
            entry(2, "b", 3, File),
        ];
        assert_eq!(
            candidates(&inodes, &entries, &BTreeSet::new(), &BTreeSet::new()),
            vec![]
        );
    }

    #[test]
    fn each_inconsistency_is_a_candidate_in_repair_order() {
        use FileKind::{Dir, File};
        let mut open_orphan = inode(6, File, 0);
        (open_orphan.open, open_orphan.orphan) = (true, true);
        let mut stale = inode(7, File, 1);
        stale.attr.layout.as_mut().unwrap().stale = vec![0];
        let mut needless = inode(8, File, 1);
        needless.stale_indexed = true;
        let mut inline = inode(9, File, 1);
        inline.attr.inline = true;
        let mut inline_lost = inode(10, File, 1);
        inline_lost.attr.inline = true;
        let inodes: BTreeMap<Ino, FsckInode> = [
            // The root counts a dangling subdirectory entry and misses nothing else.
            inode(ROOT_INO, Dir, 3),
            inode(3, File, 1),
            inode(4, File, 1),
            inode(5, Dir, 2),
            open_orphan,
            stale,
            needless,
            inline,
            inline_lost,
        ]
        .into_iter()
        .map(|i| (i.attr.ino, i))
        .collect();
        let entries = [
            entry(ROOT_INO, "a", 3, File),
            entry(ROOT_INO, "a2", 3, File),
            entry(ROOT_INO, "gone", 99, Dir),
            entry(ROOT_INO, "s", 7, File),
            entry(ROOT_INO, "n", 8, File),
            entry(ROOT_INO, "i", 9, File),
            entry(ROOT_INO, "l", 10, File),
            entry(1234, "lost", 4, File),
        ];
        // Bytes kept for 9 (marked: right), 3 (not marked) and 777 (no inode); none for 10.
        let kept = BTreeSet::from([3, 9, 777]);
        let got = candidates(&inodes, &entries, &BTreeSet::from([8, 555]), &kept);
        let ctime = Timestamp::default();
        assert_eq!(
            got,
            vec![
                Finding::DanglingEntry {
                    parent: ROOT_INO,
                    name: "gone".into(),
                    ino: 99,
                    parent_missing: false,
                },
                Finding::DanglingEntry {
                    parent: 1234,
                    name: "lost".into(),
                    ino: 4,
                    parent_missing: true,
                },
                Finding::LinkCount {
                    ino: ROOT_INO,
                    kind: Dir,
                    nlink: 3,
                    want: 2,
                    ctime,
                },
                Finding::LinkCount {
                    ino: 3,
                    kind: File,
                    nlink: 1,
                    want: 2,
                    ctime,
                },
                Finding::NotIndexed { ino: 7 },
                Finding::NeedlessIndex { ino: 8 },
                Finding::NeedlessIndex { ino: 555 },
                Finding::NeedlessKeptBytes { ino: 3 },
                Finding::KeptBytesLost { ino: 10 },
                Finding::NeedlessKeptBytes { ino: 777 },
                Finding::Unreachable {
                    ino: 4,
                    kind: File,
                    ctime,
                },
                Finding::Unreachable {
                    ino: 5,
                    kind: Dir,
                    ctime,
                },
            ]
        );
    }
}
