//! What the repair tools walk: every object of an OST, every regular file of the
//! namespace, and (for fsck) the MDS's inode table, directory entries and stale index, page
//! by page.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rustre_proto::msg::fsck::{
    FsckAnswer, FsckEntry, FsckInode, FsckOp, FSCK_KEPT_PAGE_MAX, FSCK_PAGE_MAX,
};
use rustre_proto::msg::mds::MdsResponse;
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::oss::{ObjectId, ObjectInfo, OssOp, OssResponse, LIST_MAX_OBJECTS};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Timestamp, ROOT_INO};
use rustre_proto::Error;

use super::unexpected;
use crate::client::Client;
use rustre_proto::msg::mds::MdsOp;

/// Most directories the namespace walk keeps queued (bounds the queue, not the depth).
pub(super) const WALK_QUEUE_MAX: usize = 10_000_000;

impl Client {
    /// Every object of OST `ost`, by id.
    pub(super) async fn list_objects(
        &self,
        ost: u32,
    ) -> Result<BTreeMap<ObjectId, ObjectInfo>, Error> {
        let mut all = BTreeMap::new();
        let mut after = None;
        loop {
            let op = OssOp::List {
                after,
                limit: LIST_MAX_OBJECTS,
            };
            match self.oss_answer(ost, op).await? {
                OssResponse::Objects { objects, done } => {
                    after = objects.last().map(|o| o.id);
                    for o in objects {
                        all.insert(o.id, o);
                    }
                    if done || after.is_none() {
                        return Ok(all);
                    }
                }
                r => return Err(unexpected(&r)),
            }
        }
    }

    /// Every regular file reachable from the root, by inode (hard links once).
    pub(super) async fn walk_files(&self) -> Result<HashMap<Ino, Attr>, Error> {
        let files = self.walk(false).await?;
        Ok(files.into_iter().map(|(ino, (_, a))| (ino, a)).collect())
    }

    /// [`Self::walk_files`] with a path of each file (one of its names), for reports.
    pub(super) async fn walk_named_files(&self) -> Result<HashMap<Ino, (String, Attr)>, Error> {
        self.walk(true).await
    }

    /// The walk: every regular file by inode, with a path when `named` (otherwise an empty
    /// string, which allocates nothing).
    async fn walk(&self, named: bool) -> Result<HashMap<Ino, (String, Attr)>, Error> {
        let creds = Creds::root();
        let mut files = HashMap::new();
        let mut dirs = vec![(ROOT_INO, String::new())];
        while let Some((dir, dir_path)) = dirs.pop() {
            let entries = match self.readdir_all(&creds, dir, true).await {
                Ok(e) => e,
                // Removed while we walked.
                Err(Error::NotFound) => continue,
                Err(e) => return Err(e),
            };
            for e in entries {
                let path = |name: &str| {
                    if named {
                        format!("{dir_path}/{name}")
                    } else {
                        String::new()
                    }
                };
                match (e.kind, e.attr) {
                    (FileKind::Dir, _) => {
                        if dirs.len() >= WALK_QUEUE_MAX {
                            return Err(Error::Invalid("too many directories queued".into()));
                        }
                        dirs.push((e.ino, path(&e.name)));
                    }
                    (FileKind::File, Some(a)) => {
                        files.insert(a.ino, (path(&e.name), a));
                    }
                    _ => {}
                }
            }
        }
        Ok(files)
    }

    /// One fsck call to the MDS, as root.
    pub(super) async fn fsck_call(&self, op: FsckOp) -> Result<FsckAnswer, Error> {
        match self.mds(&Creds::root(), MdsOp::Fsck(op)).await? {
            MdsResponse::Fsck(a) => Ok(a),
            r => Err(crate::client::unexpected(r)),
        }
    }

    /// Every inode of the MDS's table by number, and the MDS's clock when it read the
    /// first page.
    pub(super) async fn scan_inodes(&self) -> Result<(BTreeMap<Ino, FsckInode>, Timestamp), Error> {
        let mut all = BTreeMap::new();
        let mut after = 0;
        let mut first_now = None;
        loop {
            let op = FsckOp::Inodes {
                after,
                limit: FSCK_PAGE_MAX,
            };
            let FsckAnswer::Inodes { inodes, now, done } = self.fsck_call(op).await? else {
                return Err(Error::Protocol(
                    "fsck: wrong answer to an inode page".into(),
                ));
            };
            first_now.get_or_insert(now);
            after = inodes.last().map_or(after, |i| i.attr.ino);
            let last_page = done || inodes.is_empty();
            all.extend(inodes.into_iter().map(|i| (i.attr.ino, i)));
            if last_page {
                return Ok((all, first_now.unwrap_or(now)));
            }
        }
    }

    /// Every directory entry, in order of parent then name.
    pub(super) async fn scan_entries(&self) -> Result<Vec<FsckEntry>, Error> {
        let mut all: Vec<FsckEntry> = Vec::new();
        loop {
            let op = FsckOp::Entries {
                after: all.last().map(|e| (e.parent, e.name.clone())),
                limit: FSCK_PAGE_MAX,
            };
            let FsckAnswer::Entries { entries, done } = self.fsck_call(op).await? else {
                return Err(Error::Protocol(
                    "fsck: wrong answer to an entry page".into(),
                ));
            };
            let last_page = done || entries.is_empty();
            all.extend(entries);
            if last_page {
                return Ok(all);
            }
        }
    }

    /// Every inode the stale index names.
    pub(super) async fn scan_stale_index(&self) -> Result<BTreeSet<Ino>, Error> {
        let page = |after| FsckOp::StaleIndex {
            after,
            limit: FSCK_PAGE_MAX,
        };
        self.scan_inos("stale-index", page, |a| match a {
            FsckAnswer::StaleIndex { inos, done } => Some((inos, done)),
            _ => None,
        })
        .await
    }

    /// Every inode whose bytes the store keeps (data on the MDS).
    pub(super) async fn scan_kept_bytes(&self) -> Result<BTreeSet<Ino>, Error> {
        let page = |after| FsckOp::KeptBytes {
            after,
            limit: FSCK_KEPT_PAGE_MAX,
        };
        self.scan_inos("kept-bytes", page, |a| match a {
            FsckAnswer::KeptBytes { inos, done } => Some((inos, done)),
            _ => None,
        })
        .await
    }

    /// Every inode of a list paged by inode number: `page(after)` asks for the next page,
    /// `inos_of` takes the inodes and the last-page mark from its answer.
    async fn scan_inos(
        &self,
        what: &str,
        page: impl Fn(Ino) -> FsckOp,
        inos_of: fn(FsckAnswer) -> Option<(Vec<Ino>, bool)>,
    ) -> Result<BTreeSet<Ino>, Error> {
        let mut all = BTreeSet::new();
        let mut after = 0;
        loop {
            let Some((inos, done)) = inos_of(self.fsck_call(page(after)).await?) else {
                return Err(Error::Protocol(format!(
                    "fsck: wrong answer to a {what} page"
                )));
            };
            after = inos.last().copied().unwrap_or(after);
            let last_page = done || inos.is_empty();
            all.extend(inos);
            if last_page {
                return Ok(all);
            }
        }
    }

    /// What the MDS holds about inode `ino` now (`None`: gone), and its clock.
    pub(super) async fn inspect(&self, ino: Ino) -> Result<(Option<FsckInode>, Timestamp), Error> {
        let op = FsckOp::Inodes {
            after: ino.saturating_sub(1),
            limit: 1,
        };
        let FsckAnswer::Inodes { inodes, now, .. } = self.fsck_call(op).await? else {
            return Err(Error::Protocol(
                "fsck: wrong answer to an inode page".into(),
            ));
        };
        Ok((inodes.into_iter().find(|i| i.attr.ino == ino), now))
    }

    /// The OSTs that are up, and those that are not, by index.
    pub(super) fn osts_by_state(&self) -> (Vec<u32>, Vec<u32>) {
        let map = self.cluster.map();
        let (up, down): (Vec<_>, Vec<_>) = map.osts.iter().partition(|o| o.state == NodeState::Up);
        (
            up.iter().map(|o| o.index).collect(),
            down.iter().map(|o| o.index).collect(),
        )
    }
}
