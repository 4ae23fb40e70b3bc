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
//! - [`perm`]: permission rules; [`acl`]: POSIX ACLs (their xattr form, inheritance). [`layout`]: choosing a new file's layout (placement).
//! - [`locks`]: flock and fcntl locks (their table in the store, waits, deadlocks).
//! - [`append`]: O_APPEND writes' ranges, handed out at the file's end.
//! - [`dir_caps`]: directories a client may change ahead of this MDS, and their recalls.
//! - [`feed`]: the change feed clients' metadata caches watch.
//! - [`replica`]: stale copies and moved copies; [`resync`]: the worker that refills them.
//! - [`fsck`]: `rustre fsck`'s pages of the store and its conditional repairs.
//! - `truncate`: size changes as durable intents, and the cuts of objects that carry them
//!   out (before the truncate is answered, else by a worker).
//! - [`config`]: configuration and limits. `txn`: the transaction engine (directory locks,
//!   request records, the feed, group commit) and inode numbers.
//! - `dispatch`: one handler (`handlers`) per operation, and the one conversion of an
//!   [`MdsError`] (`error`) to the wire error. `create`: regular files and placement.
//! - `workers`: registration, heartbeats and the background work.
//! - this file: the [`Mds`] itself and its start.

pub mod access;
pub mod acl;
pub mod append;
#[cfg(test)]
mod append_tests;
pub mod attr;
mod batch;
#[cfg(test)]
mod batch_tests;
pub mod config;
mod create;
#[cfg(test)]
mod destroy_tests;
pub mod dir_caps;
#[cfg(test)]
mod dir_caps_tests;
mod dispatch;
mod error;
pub mod feed;
pub mod fsck;
mod handlers;
pub mod inline;
#[cfg(test)]
mod killpriv_tests;
pub mod layout;
pub mod locks;
pub mod migrate;
#[cfg(test)]
mod names_changed_tests;
pub mod namespace;
pub mod open;
pub mod perm;
pub mod quota;
#[cfg(test)]
mod reap_tests;
pub mod replica;
#[cfg(test)]
mod report_setattr_tests;
mod requests;
pub mod resync;
pub mod store;
mod stuck;
#[cfg(test)]
mod tests;
pub mod truncate;
mod txn;
mod versions;
mod workers;
#[cfg(test)]
mod written_tests;

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use rustre_proto::cluster::Cluster;
use rustre_proto::msg::{Attr, FileKind, ROOT_INO};
use rustre_proto::net::Listener;
use rustre_proto::rpc::server;
use rustre_proto::Error;
use tokio::sync::watch;

use crate::meta::Kv;
use crate::schema;
use crate::space::{SpaceGuard, MDS_RESERVE};

pub use config::{
    embedded_store_dir, MdsConfig, COMMIT_INTERVAL, DEFAULT_INLINE_MAX, DIR_LOCK_STRIPES,
    INO_BATCH, MAX_SESSION_LEASE_SECS, MIN_SESSION_LEASE_SECS, PLACEMENT_WAIT, SESSION_LEASE_MS,
};
pub use error::{MdsError, PlacementShortfall};

/// Runs an MDS over `kv` until `shutdown` turns true.
pub async fn run(
    cfg: MdsConfig,
    kv: Kv,
    listener: impl Into<Listener>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let kv2 = kv.clone();
    rustre_proto::blocking::unblock(move || bootstrap(&kv2)).await??;
    let kv_is_local = kv.is_local();
    let cluster = workers::connect_mgs(&cfg, shutdown.clone()).await?;
    let mds = Arc::new(Mds {
        cfg: cfg.clone(),
        kv,
        cluster,
        inos: Mutex::new((0, 0)),
        picker: layout::OstPicker::default(),
        dir_locks: (0..DIR_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        in_place_turn: tokio::sync::Mutex::new(()),
        resync_cursor: AtomicU64::new(0),
        destroy_cursor: AtomicU64::new(0),
        no_lease_ends_before: AtomicU64::new(0),
        stuck: stuck::StuckCopies::default(),
        feed: feed::Feed::new(),
        cut_locks: cut_locks(),
        lock_waits: locks::serve::Waits::default(),
        space: SpaceGuard::new(MDS_RESERVE, "MDS store"),
        dir_caps: dir_caps::DirCaps::new(cfg.dir_caps && kv_is_local),
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
            attr: Attr {
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
                acl: None,
                project: 0,
                inline: false,
            },
            parent: ROOT_INO,
            target: None,
            dir_layout: None,
            default_acl: None,
            reserved: 0,
        };
        store::put_inode(tx, &root)?;
        store::put_counter(tx, schema::COUNTER_NEXT_INO, ROOT_INO + 1)
    })?;
    kv.sync()?;
    Ok(())
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
    /// Taken by a transaction run in place on a runtime worker (`txn.rs`): one at a time.
    in_place_turn: tokio::sync::Mutex<()>,
    /// Where the resync worker's next pass over the stale index starts.
    resync_cursor: AtomicU64,
    /// The inode number the next scan of the destroy queue starts at (0: its head).
    destroy_cursor: AtomicU64,
    /// No session's lease ends before this wall-clock time in ms (as the last look through
    /// all of them found; 0: look): the session reaper skips its passes until then
    /// ([`workers::reap_sessions`]).
    no_lease_ends_before: AtomicU64,
    /// What this MDS committed, for clients' metadata caches.
    feed: feed::Feed,
    /// Stale copies the resync worker could not refill.
    stuck: stuck::StuckCopies,
    /// Serialize the cuts of one inode's objects ([`truncate`]), by inode number.
    cut_locks: Vec<tokio::sync::Mutex<()>>,
    /// Wake-ups of the lock requests this MDS holds ([`locks`]).
    lock_waits: locks::serve::Waits,
    /// The free space its store's disk keeps ([`crate::space`]).
    space: SpaceGuard,
    /// The directory capabilities it granted ([`dir_caps`]).
    dir_caps: dir_caps::DirCaps,
}

/// The cut locks of a new [`Mds`].
fn cut_locks() -> Vec<tokio::sync::Mutex<()>> {
    (0..truncate::CUT_LOCK_STRIPES)
        .map(|_| tokio::sync::Mutex::new(()))
        .collect()
}
