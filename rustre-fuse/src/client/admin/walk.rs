//! What the repair tools walk: every object of an OST, and every regular file of the
//! namespace.

use std::collections::{BTreeMap, HashMap};

use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::oss::{ObjectId, ObjectInfo, OssOp, OssResponse, LIST_MAX_OBJECTS};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, ROOT_INO};
use rustre_proto::Error;

use super::unexpected;
use crate::client::Client;

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
