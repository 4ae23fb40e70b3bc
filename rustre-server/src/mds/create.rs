//! Creating regular files: a [`CreateRequest`] (from `Create`, or `Mknod` of a regular file)
//! placed on OSTs by the layout policy ([`super::layout`]) and, optionally, opened in the
//! same transaction.
//!
//! Right after an MGS restart (or while OSSes come back) fewer OSTs than a layout's copies
//! may be up for a moment: a create then waits for them, bounded by [`PLACEMENT_WAIT`],
//! rather than fail. The transaction says so with the typed [`PlacementShortfall`], which
//! rolls it back (nothing is recorded under the request id) before the wait.

use std::sync::Arc;

use rustre_proto::msg::mgs::{ClusterMap, NodeState};
use rustre_proto::msg::{validate_name, Attr, Creds, FileKind, Ino, LayoutSpec};
use rustre_proto::Error;

use super::config::{PLACEMENT_RETRY, PLACEMENT_WAIT};
use super::error::MdsError;
use super::inline::SPILL_ATTEMPTS;
use super::namespace::{self, NewInode};
use super::txn::Mutation;
use super::{layout, open, store, truncate, Mds};

/// A new regular file, as asked.
#[derive(Debug, Clone)]
pub(super) struct CreateRequest {
    pub parent: Ino,
    pub name: String,
    pub perm: u32,
    /// The creating process's umask (see `MdsOp::Create`).
    pub umask: u32,
    /// Fail with `Exists` if the name exists (O_EXCL), rather than open it.
    pub exclusive: bool,
    /// Open the file (new or existing) with these flags in the same transaction.
    pub open_flags: Option<i32>,
    /// The caller's layout request; the directory's default and the cluster's fill the rest.
    pub layout: Option<LayoutSpec>,
}

/// What one try of a create did: the file's attributes, its directory's, and whether an
/// existing file it opened has a truncate pending ([`super::truncate`]).
/// Where a create places a new file: the map, its turn of the OST rotation, and whether
/// too few OSTs up is a [`PlacementShortfall`] to wait out.
struct Placement<'a> {
    map: &'a ClusterMap,
    turn: usize,
    wait_for_osts: bool,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Created {
    attr: Attr,
    parent: Attr,
    cut_pending: bool,
    /// Whether this create made the file (else it opened an existing one).
    new: bool,
}

impl Mds {
    /// Creates (or, unless exclusive, opens) the file `req` names for `session`. Answers its
    /// attributes, its directory's, and whether the file is new.
    pub(super) async fn create(
        self: &Arc<Self>,
        kind: Mutation,
        creds: Creds,
        session: u64,
        req: CreateRequest,
    ) -> Result<(Attr, Attr, bool), MdsError> {
        let ino = self.alloc_ino().await?;
        let req = Arc::new(req);
        // One turn of the OST rotation per create, taken here: the transaction body may run
        // more than once (a conflict), and each run must place the file the same way, or
        // retries would skew where files go.
        let turn = self.picker.turn();
        let started = tokio::time::Instant::now();
        let mut spills = 0;
        loop {
            let map = self.map_for(req.layout.as_ref()).await;
            let waiting = started.elapsed() < PLACEMENT_WAIT;
            let this = self.clone();
            let (req2, map2) = (req.clone(), map.clone());
            let r = self
                .txn(creds.clone(), vec![req.parent], kind, move |tx, c| {
                    let place = Placement {
                        map: &map2,
                        turn,
                        wait_for_osts: waiting,
                    };
                    this.create_in(tx, c, session, &req2, ino, &place)
                })
                .await;
            match r {
                Err(MdsError::MustSpill(existing)) if spills < SPILL_ATTEMPTS => {
                    spills += 1;
                    self.spill(existing).await?;
                }
                Err(MdsError::Placement(short)) if waiting => {
                    tracing::debug!("create waits for OSTs: {short}");
                    tokio::time::sleep(PLACEMENT_RETRY).await;
                    let _ = self.cluster.refresh().await;
                }
                // An existing file opened with a truncate pending: cut before answering.
                Ok(Created {
                    mut attr,
                    parent,
                    cut_pending: true,
                    new,
                }) => {
                    self.cut_before_answer(&mut attr).await?;
                    return Ok((attr, parent, new));
                }
                r => return r.map(|c| (c.attr, c.parent, c.new)),
            }
        }
    }

    /// The transaction body of one try of [`Mds::create`] with inode number `ino`, placed
    /// as `place` says. With `place.wait_for_osts`, too few OSTs up for the new file's
    /// copies is a [`PlacementShortfall`] (the caller waits and tries again); without, the
    /// layout policy refuses it with its own error.
    fn create_in(
        &self,
        tx: &mut dyn crate::meta::Transaction,
        c: &namespace::Ctx,
        session: u64,
        req: &CreateRequest,
        ino: Ino,
        place: &Placement<'_>,
    ) -> Result<Created, MdsError> {
        let map = place.map;
        let (parent, name) = (req.parent, req.name.as_str());
        let created = match store::dentry(tx, parent, name)? {
            Some(_) if req.exclusive => return Err(Error::Exists.into()),
            Some(d) => {
                if d.kind == FileKind::Dir {
                    return Err(Error::IsDir.into());
                }
                // Creating an existing name opens it, with the usual search check.
                namespace::lookup(tx, c, parent, name)?;
                d.ino
            }
            None => {
                validate_name(name)?;
                let dir = namespace::writable_dir(tx, c, parent)?;
                let dir_layout = dir.default_layout();
                if place.wait_for_osts {
                    if let Some(short) = layout::shortfall(req.layout.as_ref(), dir_layout, map) {
                        return Err(short.into());
                    }
                }
                let layout = layout::choose_at(place.turn, req.layout.as_ref(), dir_layout, map)?;
                let new = NewInode {
                    ino,
                    kind: FileKind::File,
                    perm: req.perm,
                    umask: req.umask,
                    rdev: 0,
                    target: None,
                    layout: Some(layout),
                };
                namespace::add_entry(tx, c, dir, name, new)?;
                ino
            }
        };
        let (attr, cut_pending) = match req.open_flags {
            Some(flags) => {
                if created != ino {
                    super::inline::check_write_open(tx, created, flags)?;
                }
                let attr = open::open(tx, c, session, created, flags, created == ino)?;
                (attr, created != ino && truncate::pending(tx, created)?)
            }
            None => (store::inode(tx, created)?.attr, false),
        };
        Ok(Created {
            attr,
            parent: store::inode(tx, parent)?.attr,
            cut_pending,
            new: created == ino,
        })
    }

    /// The cluster map to place a layout `spec` with (or to sum capacity with). The map is
    /// followed once a second, so right after start it may predate some OSTs' registration:
    /// when it shows fewer OSTs up than `spec` asks for (or none), or lacks an OST `spec`
    /// names, it is re-read from the MGS first, rather than handing out fewer stripes than
    /// asked, ENOSPC, a size of 0 or "OST n does not exist".
    pub(super) async fn map_for(&self, spec: Option<&LayoutSpec>) -> Arc<ClusterMap> {
        let map = self.cluster.map();
        let named = spec.and_then(|s| s.osts.as_deref()).unwrap_or_default();
        if named.iter().any(|i| map.ost(*i).is_none()) {
            return self.cluster.refresh().await.unwrap_or(map);
        }
        let up = map.osts.iter().filter(|o| o.state == NodeState::Up).count();
        let stripes = spec
            .and_then(|s| s.osts.as_ref().map(|o| o.len() as u32).or(s.stripe_count))
            .unwrap_or(1);
        // Copies of one stripe need distinct OSTs: as many up as there are copies.
        let replicas = spec
            .and_then(|s| s.replicas)
            .filter(|r| *r != 0)
            .unwrap_or(map.defaults.replicas);
        let asked = stripes.max(replicas) as usize;
        if up == 0 || asked > up {
            return self.cluster.refresh().await.unwrap_or(map);
        }
        map
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mds::error::PlacementShortfall;
    use rustre_proto::msg::mgs::{LayoutDefaults, OstInfo};
    use rustre_proto::msg::Capacity;

    fn map(up: usize) -> ClusterMap {
        ClusterMap {
            epoch: 1,
            cluster_name: "c".into(),
            osts: (0..2)
                .map(|i| OstInfo {
                    index: i,
                    addr: format!("h:{i}"),
                    state: if (i as usize) < up {
                        NodeState::Up
                    } else {
                        NodeState::Down
                    },
                    capacity: Capacity::default(),
                })
                .collect(),
            mds: Vec::new(),
            defaults: LayoutDefaults {
                stripe_size: 1 << 20,
                stripe_count: 1,
                replicas: 2,
            },
        }
    }

    #[test]
    fn too_few_osts_up_is_a_typed_shortfall_not_a_string() {
        assert_eq!(
            layout::shortfall(None, None, &map(1)),
            Some(PlacementShortfall { replicas: 2, up: 1 })
        );
        assert_eq!(layout::shortfall(None, None, &map(2)), None);
        let one_copy = LayoutSpec {
            replicas: Some(1),
            ..LayoutSpec::default()
        };
        assert_eq!(layout::shortfall(Some(&one_copy), None, &map(1)), None);
        assert!(matches!(
            MdsError::from(layout::shortfall(None, None, &map(0)).unwrap()),
            MdsError::Placement(PlacementShortfall { up: 0, .. })
        ));
    }
}

#[cfg(test)]
mod answer_tests {
    use rustre_proto::msg::mds::{MdsOp, MdsResponse};
    use rustre_proto::msg::ROOT_INO;

    use crate::mds::tests::TestCluster;

    /// The directory's attributes in a create's answer are what a getattr of it finds
    /// after the create (a new file moves its mtime and ctime; opening an existing one
    /// moves nothing), and the answer says which of the two happened.
    #[tokio::test]
    async fn a_create_answers_its_directory_as_a_getattr_finds_it() {
        let t = TestCluster::start(1).await;
        let before = t.attr(MdsOp::GetAttr { ino: ROOT_INO }).await.unwrap();
        for exclusive in [true, false] {
            let op = MdsOp::Create {
                parent: ROOT_INO,
                name: "f".into(),
                perm: 0o644,
                umask: 0,
                exclusive,
                open_flags: None,
                layout: None,
            };
            let (attr, parent) = match t.call(op).await.unwrap() {
                MdsResponse::Created {
                    attr, parent, new, ..
                } => {
                    // The first (exclusive) create makes "f", the second opens it.
                    assert_eq!(new, exclusive, "exclusive: {exclusive}");
                    (attr, parent)
                }
                r => panic!("{r:?}"),
            };
            let dir = t.attr(MdsOp::GetAttr { ino: ROOT_INO }).await.unwrap();
            assert_eq!(*parent, dir, "exclusive: {exclusive}");
            assert_eq!(dir.mtime, attr.ctime, "the create's time");
            assert!(dir.mtime > before.mtime);
        }
    }
}
