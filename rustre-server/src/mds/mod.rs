//! MDS: the namespace, inodes, layouts, xattrs, opens and sessions.
//!
//! Every operation is one transaction on the metadata KV ([`crate::meta::Kv`]), run on a
//! blocking thread. On a durable MDS, changes to the namespace and to attributes are
//! acknowledged after a group commit; bookkeeping (opens, closes, size reports of writes,
//! sessions) is committed at once and made durable by the next sync: a client's fsync
//! ([`MdsOp::SyncMeta`]) or the periodic one ([`COMMIT_INTERVAL`]).
//! The MDS keeps no state of its own beyond caches, so several MDS may share one KV.
//!
//! ## Layout
//! - [`store`]: typed records (keys: [`crate::schema`]).
//! - [`namespace`], [`attr`], [`open`]: the operations, as transaction bodies.
//! - [`perm`]: permission rules. [`layout`]: choosing a new file's layout.
//! - [`feed`]: the change feed clients' metadata caches watch.
//! - [`replica`]: stale copies and moved copies; [`resync`]: the worker that refills them.
//! - this file: configuration, the request dispatch and the background workers.

pub mod attr;
pub mod feed;
pub mod layout;
pub mod namespace;
pub mod open;
pub mod perm;
pub mod replica;
mod requests;
pub mod resync;
pub mod store;
#[cfg(test)]
mod tests;
mod workers;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustre_proto::cluster::Cluster;
use rustre_proto::msg::mds::{
    FsStats, MdsOp, MdsRequest, MdsResponse, READDIR_MAX_ENTRIES, RELEASE_MAX_INOS,
};
use rustre_proto::msg::mgs::{ClusterMap, NodeState};
use rustre_proto::msg::{Capacity, Creds, FileKind, Ino, MAX_GROUPS, ROOT_INO};
use rustre_proto::net::Listener;
use rustre_proto::rpc::server::{self, Handler, Reply};
use rustre_proto::Error;
use serde::{de::DeserializeOwned, Serialize};
use tokio::sync::watch;

use crate::meta::{Kv, Transaction};
use crate::schema;
use namespace::{Ctx, NewInode};

/// Inode numbers taken from the shared counter at a time.
pub const INO_BATCH: u64 = 1024;
/// Longest time a committed change waits for a sync when no client asks for one.
pub const COMMIT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Default lease of a client session.
pub const SESSION_LEASE_MS: u64 = 30_000;
/// Striped in-process locks on directories, so concurrent creates in one directory queue up
/// here instead of conflicting in the KV.
pub const DIR_LOCK_STRIPES: usize = 256;
/// Longest a create waits for enough OSTs to come up for the new file's copies (an MGS
/// restart leaves the map without OSTs until they register again, about a second).
pub const PLACEMENT_WAIT: std::time::Duration = std::time::Duration::from_secs(10);
/// Pause between two tries of such a create (the map is re-read in between).
const PLACEMENT_RETRY: std::time::Duration = std::time::Duration::from_millis(250);
/// Start of the internal `Unavailable` message that makes a create wait for OSTs.
const PLACEMENT_SHORT: &str = "waiting for OSTs: ";

/// How an MDS runs.
#[derive(Debug, Clone)]
pub struct MdsConfig {
    /// The MGS to register with.
    pub mgs_addr: String,
    /// The address clients reach this MDS at.
    pub advertise_addr: String,
    pub cluster: String,
    /// The cluster secret: peers must prove they hold it (and the MGS and OSS too).
    pub key: rustre_proto::auth::ClusterKey,
    /// Acknowledge mutations only once they are on disk (group commit). When false, a
    /// process crash loses nothing but a power loss may lose the last moments.
    pub durable: bool,
    pub session_lease_ms: u64,
}

/// Where the embedded store lives under an MDS data directory.
pub fn embedded_store_dir(data: &std::path::Path) -> PathBuf {
    data.join("meta")
}

/// Runs an MDS over `kv` until `shutdown` turns true.
pub async fn run(
    cfg: MdsConfig,
    kv: Kv,
    listener: impl Into<Listener>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let kv2 = kv.clone();
    rustre_proto::blocking::unblock(move || bootstrap(&kv2))
        .await
        .map_err(|e| Error::Io(e.to_string()))??;
    let cluster = workers::connect_mgs(&cfg, shutdown.clone()).await?;
    let mds = Arc::new(Mds {
        cfg: cfg.clone(),
        kv,
        cluster,
        inos: Mutex::new((0, 0)),
        picker: layout::OstPicker::default(),
        dir_locks: (0..DIR_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        resync_cursor: std::sync::atomic::AtomicU64::new(0),
        feed: feed::Feed::new(),
    });
    workers::spawn_all(mds.clone(), shutdown.clone());
    tracing::info!(addr = %cfg.advertise_addr, "MDS serving");
    server::serve(
        listener,
        mds,
        cfg.cluster.clone(),
        cfg.key.clone(),
        shutdown,
    )
    .await;
    Ok(())
}

/// Creates the root directory of a fresh store.
fn bootstrap(kv: &Kv) -> Result<(), Error> {
    kv.transact(|tx| {
        if tx.get(&schema::inode(ROOT_INO))?.is_some() {
            return Ok(());
        }
        let now = rustre_proto::host::now();
        let root = store::Inode {
            attr: rustre_proto::msg::Attr {
                ino: ROOT_INO,
                kind: FileKind::Dir,
                perm: 0o755,
                nlink: 2,
                uid: 0,
                gid: 0,
                size: 0,
                atime: now,
                mtime: now,
                ctime: now,
                rdev: 0,
                layout: None,
                truncate_version: 0,
            },
            parent: ROOT_INO,
            target: None,
            dir_layout: None,
        };
        store::put_inode(tx, &root)?;
        store::put_counter(tx, schema::COUNTER_NEXT_INO, ROOT_INO + 1)
    })?;
    kv.sync()?;
    Ok(())
}

/// Whether a transaction changes anything, under which request id it is recorded, and
/// whether a durable MDS acknowledges it only once it is on disk.
#[derive(Debug, Clone, Copy)]
enum Mutation {
    ReadOnly,
    Write {
        record: Option<(u64, u64)>,
        /// A namespace or attribute change (acknowledged after the group commit on a
        /// durable MDS), rather than bookkeeping (durable by the next sync).
        durable: bool,
    },
}

impl Mutation {
    /// Bookkeeping with no request id (background work, sessions).
    const WRITE: Mutation = Mutation::Write {
        record: None,
        durable: false,
    };
}

/// One MDS instance.
pub struct Mds {
    cfg: MdsConfig,
    kv: Kv,
    cluster: Arc<Cluster>,
    /// The current batch of inode numbers: next, end.
    inos: Mutex<(u64, u64)>,
    picker: layout::OstPicker,
    dir_locks: Vec<Mutex<()>>,
    /// Where the resync worker's next pass over the stale index starts.
    resync_cursor: std::sync::atomic::AtomicU64,
    /// What this MDS committed, for clients' metadata caches.
    feed: feed::Feed,
}

/// The lock stripes of `dirs`, sorted and without repeats (the order locks are taken in).
fn lock_stripes(dirs: &[Ino]) -> Vec<usize> {
    let mut stripes: Vec<usize> = dirs
        .iter()
        .map(|d| (*d as usize) % DIR_LOCK_STRIPES)
        .collect();
    stripes.sort_unstable();
    stripes.dedup();
    stripes
}

impl Mds {
    /// A fresh inode number (blocking: may run a transaction for a new batch).
    fn alloc_ino(&self) -> Result<Ino, Error> {
        let mut r = self.inos.lock().unwrap();
        if r.0 >= r.1 {
            let start = self.kv.transact(|tx| {
                let next = store::counter(tx, schema::COUNTER_NEXT_INO, ROOT_INO + 1)?;
                store::put_counter(tx, schema::COUNTER_NEXT_INO, next + INO_BATCH)?;
                Ok::<_, Error>(next)
            })?;
            // On disk before any number of the batch is used, so a power loss can never
            // hand out an inode number twice (its objects might still exist).
            self.kv.sync()?;
            *r = (start, start + INO_BATCH);
        }
        let ino = r.0;
        r.0 += 1;
        Ok(ino)
    }

    /// Runs `f` as one transaction holding the stripe locks of `dirs` (on the embedded store
    /// in place when it can, else on a blocking thread), then (for mutations of a durable
    /// MDS) waits for the group commit. A mutation carrying a request id returns the recorded
    /// result if that request already committed (a retry after a lost reply or a dead MDS),
    /// and otherwise records its result in the same transaction.
    async fn txn<T, F>(
        self: &Arc<Self>,
        creds: Creds,
        dirs: Vec<Ino>,
        kind: Mutation,
        f: F,
    ) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        F: Fn(&mut dyn Transaction, &Ctx) -> Result<T, Error> + Send + 'static,
    {
        let (record, wait_durable) = match kind {
            Mutation::Write { record, durable } => (record, durable && self.cfg.durable),
            Mutation::ReadOnly => (None, false),
        };
        let stripes = lock_stripes(&dirs);
        // On the embedded store a transaction takes microseconds: when no other call holds
        // its directories' locks, one try runs in place, saving two thread hops. A
        // conflict, a lock held, or a store across the network go to a blocking thread.
        let in_place = if self.kv.is_local() {
            self.try_lock_stripes(&stripes).and_then(|_guards| {
                let mut changes = Vec::new();
                let out = self
                    .kv
                    .try_transact(|tx| self.attempt(&creds, record, &f, tx, &mut changes))?;
                self.feed.publish(record.unwrap_or((0, 0)), changes);
                Some(out)
            })
        } else {
            None
        };
        let out = match in_place {
            Some(out) => out?,
            None => {
                let this = self.clone();
                rustre_proto::blocking::unblock(move || {
                    let _guards: Vec<_> = stripes
                        .iter()
                        .map(|s| this.dir_locks[*s].lock().unwrap())
                        .collect();
                    // What the transaction writes goes on the change feed, committed or not
                    // (a needless eviction from a client's cache is harmless; a missed one
                    // is not).
                    let mut changes = Vec::new();
                    let out = this
                        .kv
                        .transact(|tx| this.attempt(&creds, record, &f, tx, &mut changes));
                    this.feed.publish(record.unwrap_or((0, 0)), changes);
                    out
                })
                .await
                .map_err(|e| Error::Io(format!("metadata task failed: {e}")))??
            }
        };
        if wait_durable {
            self.kv.durable().await?;
        }
        Ok(out)
    }

    /// One try of a transaction body: `f` under the caller's credentials, recorded under its
    /// request id if it has one, with every key it writes noted in `changes` for the feed.
    fn attempt<T, F>(
        &self,
        creds: &Creds,
        record: Option<(u64, u64)>,
        f: &F,
        tx: &mut dyn Transaction,
        changes: &mut Vec<rustre_proto::msg::mds::Change>,
    ) -> Result<T, Error>
    where
        T: Serialize + DeserializeOwned,
        F: Fn(&mut dyn Transaction, &Ctx) -> Result<T, Error>,
    {
        changes.clear();
        let ctx = Ctx {
            creds,
            now: rustre_proto::host::now(),
        };
        let mut tx = feed::Recorder { tx, changes };
        match record {
            None => f(&mut tx, &ctx),
            Some((session, seq)) => requests::run_once(&mut tx, session, seq, |tx| f(tx, &ctx)),
        }
    }

    /// The directory locks of `stripes` if every one is free now, else `None`.
    fn try_lock_stripes(&self, stripes: &[usize]) -> Option<Vec<std::sync::MutexGuard<'_, ()>>> {
        stripes
            .iter()
            .map(|s| self.dir_locks[*s].try_lock().ok())
            .collect()
    }

    async fn dispatch(self: Arc<Self>, req: MdsRequest) -> Result<MdsResponse, Error> {
        use MdsResponse as R;
        let MdsRequest {
            creds,
            session,
            seq,
            op,
        } = req;
        let record = (session != 0 && seq != 0).then_some((session, seq));
        let w = Mutation::Write {
            record,
            durable: true,
        };
        let bookkeeping = Mutation::Write {
            record,
            durable: false,
        };
        let ro = Mutation::ReadOnly;
        if creds.groups.len() > MAX_GROUPS {
            return Err(Error::Invalid("too many groups".into()));
        }
        let lease = self.cfg.session_lease_ms;
        match op {
            MdsOp::OpenSession { client } => {
                let id = self
                    .txn(creds, vec![], w, move |tx, _| {
                        open::open_session(tx, &client, rustre_proto::host::now_ms(), lease)
                    })
                    .await?;
                Ok(R::Session {
                    id,
                    lease_ms: lease,
                })
            }
            MdsOp::RenewSession => self
                .txn(creds, vec![], ro, move |tx, _| {
                    open::renew_session(tx, session, rustre_proto::host::now_ms(), lease)
                })
                .await
                .map(|_| R::Done),
            MdsOp::CloseSession => {
                while !self
                    .txn(creds.clone(), vec![], Mutation::WRITE, move |tx, _| {
                        open::end_session(tx, session)
                    })
                    .await?
                {}
                Ok(R::Done)
            }
            MdsOp::Lookup { parent, name } => self
                .txn(creds, vec![], ro, move |tx, c| {
                    namespace::lookup(tx, c, parent, &name)
                })
                .await
                .map(R::Attr),
            MdsOp::GetAttr { ino } => self
                .txn(creds, vec![], ro, move |tx, _| {
                    Ok(store::inode(tx, ino)?.attr)
                })
                .await
                .map(R::Attr),
            MdsOp::SetAttr { ino, set } => self
                .txn(creds, vec![ino], w, move |tx, c| {
                    attr::setattr(tx, c, ino, &set)
                })
                .await
                .map(|o| R::Attr(o.attr)),
            MdsOp::Create {
                parent,
                name,
                perm,
                exclusive,
                open_flags,
                layout,
            } => {
                self.create(
                    w, creds, session, parent, name, perm, exclusive, open_flags, layout,
                )
                .await
            }
            MdsOp::Mkdir { parent, name, perm } => {
                let ino = self.alloc_ino_async().await?;
                self.txn(creds, vec![parent], w, move |tx, c| {
                    let new = NewInode {
                        ino,
                        kind: FileKind::Dir,
                        perm,
                        rdev: 0,
                        target: None,
                        layout: None,
                    };
                    namespace::create_entry(tx, c, parent, &name, new)
                })
                .await
                .map(R::Attr)
            }
            MdsOp::Mknod {
                parent,
                name,
                kind,
                perm,
                rdev,
            } => {
                if kind == FileKind::Dir || kind == FileKind::Symlink {
                    return Err(Error::Invalid("mknod of a directory or symlink".into()));
                }
                if kind == FileKind::File {
                    return self
                        .create(w, creds, session, parent, name, perm, true, None, None)
                        .await;
                }
                if matches!(kind, FileKind::CharDev | FileKind::BlockDev) && creds.uid != 0 {
                    return Err(Error::NotPermitted);
                }
                let ino = self.alloc_ino_async().await?;
                self.txn(creds, vec![parent], w, move |tx, c| {
                    let new = NewInode {
                        ino,
                        kind,
                        perm,
                        rdev,
                        target: None,
                        layout: None,
                    };
                    namespace::create_entry(tx, c, parent, &name, new)
                })
                .await
                .map(R::Attr)
            }
            MdsOp::Symlink {
                parent,
                name,
                target,
            } => {
                namespace::validate_target(&target)?;
                let ino = self.alloc_ino_async().await?;
                self.txn(creds, vec![parent], w, move |tx, c| {
                    let new = NewInode {
                        ino,
                        kind: FileKind::Symlink,
                        perm: 0o777,
                        rdev: 0,
                        target: Some(target.clone()),
                        layout: None,
                    };
                    namespace::create_entry(tx, c, parent, &name, new)
                })
                .await
                .map(R::Attr)
            }
            MdsOp::Readlink { ino } => self
                .txn(creds, vec![], ro, move |tx, _| attr::readlink(tx, ino))
                .await
                .map(R::Target),
            MdsOp::Link {
                ino,
                new_parent,
                new_name,
            } => self
                .txn(creds, vec![new_parent, ino], w, move |tx, c| {
                    namespace::link(tx, c, ino, new_parent, &new_name)
                })
                .await
                .map(R::Attr),
            MdsOp::Unlink { parent, name } => self
                .txn(creds, vec![parent], w, move |tx, c| {
                    namespace::unlink(tx, c, parent, &name)
                })
                .await
                .map(|_| R::Done),
            MdsOp::Rmdir { parent, name } => self
                .txn(creds, vec![parent], w, move |tx, c| {
                    namespace::rmdir(tx, c, parent, &name)
                })
                .await
                .map(|_| R::Done),
            MdsOp::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
            } => self
                .txn(creds, vec![parent, new_parent], w, move |tx, c| {
                    namespace::rename(tx, c, parent, &name, new_parent, &new_name, flags)
                })
                .await
                .map(|_| R::Done),
            MdsOp::Readdir {
                ino,
                after,
                limit,
                plus,
            } => {
                let limit = limit.clamp(1, READDIR_MAX_ENTRIES) as usize;
                self.txn(creds, vec![], ro, move |tx, c| {
                    namespace::readdir(tx, c, ino, after.as_deref(), limit, plus)
                })
                .await
                .map(|(entries, eof)| R::Entries { entries, eof })
            }
            // An open is bookkeeping, unless it truncates.
            MdsOp::Open { ino, flags } => self
                .txn(
                    creds,
                    vec![ino],
                    if flags & libc::O_TRUNC != 0 {
                        w
                    } else {
                        bookkeeping
                    },
                    move |tx, c| open::open(tx, c, session, ino, flags, false),
                )
                .await
                .map(R::Attr),
            MdsOp::Release { inos } => {
                if inos.len() > RELEASE_MAX_INOS {
                    return Err(Error::Invalid(format!(
                        "release of {} inodes in one call (at most {RELEASE_MAX_INOS})",
                        inos.len()
                    )));
                }
                self.txn(creds, inos.clone(), bookkeeping, move |tx, _| {
                    inos.iter()
                        .try_for_each(|ino| open::release(tx, session, *ino))
                })
                .await
                .map(|_| R::Done)
            }
            MdsOp::ReportSize {
                ino,
                size,
                mtime,
                truncate_version,
            } => self
                .txn(creds, vec![ino], bookkeeping, move |tx, c| {
                    attr::report_size(tx, c, ino, size, mtime, truncate_version)
                })
                .await
                .map(R::Attr),
            MdsOp::Access { ino, mask } => self
                .txn(creds, vec![], ro, move |tx, c| {
                    attr::access(tx, c, ino, mask)
                })
                .await
                .map(|_| R::Done),
            MdsOp::StatFs => self.statfs().await.map(R::StatFs),
            MdsOp::GetXattr { ino, name } => self
                .txn(creds, vec![], ro, move |tx, c| {
                    attr::get_xattr(tx, c, ino, &name)
                })
                .await
                .map(R::Xattr),
            MdsOp::SetXattr {
                ino,
                name,
                value,
                flags,
            } => self
                .txn(creds, vec![ino], w, move |tx, c| {
                    attr::set_xattr(tx, c, ino, &name, &value, flags)
                })
                .await
                .map(|_| R::Done),
            MdsOp::ListXattr { ino } => self
                .txn(creds, vec![], ro, move |tx, c| attr::list_xattr(tx, c, ino))
                .await
                .map(R::XattrNames),
            MdsOp::RemoveXattr { ino, name } => self
                .txn(creds, vec![ino], w, move |tx, c| {
                    attr::remove_xattr(tx, c, ino, &name)
                })
                .await
                .map(|_| R::Done),
            MdsOp::SetDirLayout { ino, spec } => {
                if let Some(s) = &spec {
                    // Reject what could never produce a valid layout now, not at create time.
                    let map = self.map_for(Some(s)).await;
                    self.picker.choose(Some(s), None, &map)?;
                }
                self.txn(creds, vec![ino], w, move |tx, c| {
                    attr::set_dir_layout(tx, c, ino, spec.clone())
                })
                .await
                .map(|_| R::Done)
            }
            MdsOp::MarkStale {
                ino,
                slots,
                version,
            } => self
                .txn(creds, vec![ino], w, move |tx, _| {
                    replica::mark_stale(tx, ino, &slots, version)
                })
                .await
                .map(R::Attr),
            MdsOp::MoveCopies { ino, ost } => {
                // Evacuating an OST is an administrator's act.
                if creds.uid != 0 {
                    return Err(Error::NotPermitted);
                }
                // Rare and about OSTs coming and going: worth a fresh map.
                let map = self
                    .cluster
                    .refresh()
                    .await
                    .unwrap_or_else(|_| self.cluster.map());
                let up = layout::up_osts(&map);
                let this = self.clone();
                self.txn(creds, vec![ino], w, move |tx, _| {
                    replica::move_copies(tx, &this.picker, ino, ost, &up)
                })
                .await
                .map(R::Attr)
            }
            MdsOp::SyncMeta => {
                self.kv.durable().await?;
                Ok(R::Done)
            }
            MdsOp::Watch { instance, after } => {
                Ok(R::Changes(self.feed.watch(instance, after).await))
            }
            MdsOp::GetDirLayout { ino } => self
                .txn(creds, vec![], ro, move |tx, _| {
                    attr::get_dir_layout(tx, ino)
                })
                .await
                .map(R::DirLayout),
        }
    }

    async fn alloc_ino_async(self: &Arc<Self>) -> Result<Ino, Error> {
        {
            // The common case takes a number from the batch in memory: no thread hop.
            let mut r = self.inos.lock().unwrap();
            if r.0 < r.1 {
                r.0 += 1;
                return Ok(r.0 - 1);
            }
        }
        let this = self.clone();
        rustre_proto::blocking::unblock(move || this.alloc_ino())
            .await
            .map_err(|e| Error::Io(e.to_string()))?
    }

    #[allow(clippy::too_many_arguments)]
    async fn create(
        self: &Arc<Self>,
        w: Mutation,
        creds: Creds,
        session: u64,
        parent: Ino,
        name: String,
        perm: u32,
        exclusive: bool,
        open_flags: Option<i32>,
        spec: Option<rustre_proto::msg::LayoutSpec>,
    ) -> Result<MdsResponse, Error> {
        let ino = self.alloc_ino_async().await?;
        // Right after an MGS restart (or while OSSes come back) fewer OSTs than a layout's
        // copies may be up for a moment: wait for them, bounded, rather than fail the create.
        let started = tokio::time::Instant::now();
        loop {
            let map = self.map_for(spec.as_ref()).await;
            let waiting = started.elapsed() < PLACEMENT_WAIT;
            let r = self
                .create_once(
                    w, &creds, session, parent, &name, perm, exclusive, open_flags, &spec, ino,
                    map, waiting,
                )
                .await;
            match r {
                Err(Error::Unavailable(why)) if waiting && why.starts_with(PLACEMENT_SHORT) => {
                    tracing::debug!("create waits for OSTs: {why}");
                    tokio::time::sleep(PLACEMENT_RETRY).await;
                    let _ = self.cluster.refresh().await;
                }
                r => return r,
            }
        }
    }

    /// One try of `create` under `map`; with `wait_for_osts`, too few OSTs up for the new
    /// file's copies is `Unavailable` (starting with [`PLACEMENT_SHORT`]) so the caller
    /// retries.
    #[allow(clippy::too_many_arguments)]
    async fn create_once(
        self: &Arc<Self>,
        w: Mutation,
        creds: &Creds,
        session: u64,
        parent: Ino,
        name: &str,
        perm: u32,
        exclusive: bool,
        open_flags: Option<i32>,
        spec: &Option<rustre_proto::msg::LayoutSpec>,
        ino: Ino,
        map: Arc<ClusterMap>,
        wait_for_osts: bool,
    ) -> Result<MdsResponse, Error> {
        let (name, spec) = (name.to_string(), spec.clone());
        let this = self.clone();
        self.txn(creds.clone(), vec![parent], w, move |tx, c| {
            let created = match store::dentry(tx, parent, &name)? {
                Some(_) if exclusive => return Err(Error::Exists),
                Some(d) => {
                    if d.kind == FileKind::Dir {
                        return Err(Error::IsDir);
                    }
                    // Creating an existing name opens it, with the usual search check.
                    namespace::lookup(tx, c, parent, &name)?;
                    d.ino
                }
                None => {
                    let dir = store::dir(tx, parent)?;
                    if wait_for_osts {
                        let short = layout::shortfall(spec.as_ref(), dir.dir_layout.as_ref(), &map);
                        if let Some(why) = short {
                            return Err(Error::Unavailable(format!("{PLACEMENT_SHORT}{why}")));
                        }
                    }
                    let layout =
                        this.picker
                            .choose(spec.as_ref(), dir.dir_layout.as_ref(), &map)?;
                    let new = NewInode {
                        ino,
                        kind: FileKind::File,
                        perm,
                        rdev: 0,
                        target: None,
                        layout: Some(layout),
                    };
                    namespace::create_entry(tx, c, parent, &name, new)?;
                    ino
                }
            };
            match open_flags {
                Some(flags) => open::open(tx, c, session, created, flags, created == ino),
                None => Ok(store::inode(tx, created)?.attr),
            }
        })
        .await
        .map(MdsResponse::Attr)
    }

    /// The cluster map to place a layout `spec` with (or to sum capacity with). The map is
    /// followed once a second, so right after start it may predate some OSTs' registration:
    /// when it shows fewer OSTs up than `spec` asks for (or none), it is re-read from the
    /// MGS first, rather than handing out fewer stripes than asked, ENOSPC or a size of 0.
    async fn map_for(&self, spec: Option<&rustre_proto::msg::LayoutSpec>) -> Arc<ClusterMap> {
        let map = self.cluster.map();
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

    async fn statfs(self: &Arc<Self>) -> Result<FsStats, Error> {
        let map = self.map_for(None).await;
        let mut cap = Capacity::default();
        for o in map.osts.iter().filter(|o| o.state == NodeState::Up) {
            cap.total_bytes += o.capacity.total_bytes;
            cap.free_bytes += o.capacity.free_bytes;
            cap.avail_bytes += o.capacity.avail_bytes;
        }
        let next = self
            .txn(Creds::root(), vec![], Mutation::ReadOnly, |tx, _| {
                store::counter(tx, schema::COUNTER_NEXT_INO, ROOT_INO + 1)
            })
            .await?;
        // Inode numbers are handed out in batches, so this counts a few unused ones too.
        let files = next.saturating_sub(1);
        Ok(FsStats {
            capacity: cap,
            files,
            files_free: (1u64 << 48).saturating_sub(files),
        })
    }
}

impl Handler for Mds {
    type Request = MdsRequest;
    type Response = MdsResponse;
    const SERVICE: rustre_proto::frame::Service = rustre_proto::frame::Service::Mds;

    async fn handle(self: Arc<Self>, req: MdsRequest, _payload: Bytes) -> Reply<MdsResponse> {
        Reply::plain(self.dispatch(req).await)
    }
}
