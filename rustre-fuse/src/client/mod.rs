//! The client library: a session with the cluster, metadata calls and striped data I/O.
//!
//! ## The face
//! What callers outside this module use, all on [`Client`]:
//! - the session: [`Client::connect`], [`Client::close`], the cache settings
//!   ([`Client::set_attr_ttl`], [`Client::set_cache_bytes`]), the atime mode
//!   ([`Client::set_atime_mode`]) and the cluster map;
//! - names and attributes, inode-addressed as the kernel asks (`meta`): `lookup`,
//!   `getattr`, `setattr_file`, `create`, `mkdir`, `mknod`, `symlink`, `readlink`, `link`,
//!   `unlink`, `rmdir`, `rename`, `access`, xattrs, `statfs`, `sync_metadata`, directory
//!   layouts; [`path`] resolves slash-separated paths for the CLI;
//! - handles (`handles`): files opened or created into handles that read, write, flush,
//!   fsync, fallocate and release; directories into handles that list;
//! - `put` and `get` (`transfer`): whole files through those handles;
//! - file locks (`locks`): `set_lock`, `test_lock`, `unlock_owner` through the MDS;
//! - the administrator's API ([`admin`]): fsck, scrub, evacuate, the cluster's state;
//! - [`metrics`]: the client's Prometheus metrics (off unless a mount asks).
//!
//! ## Inside
//! Operations (`impl Client`): `meta` (MDS calls, retried on another MDS), `data` (striped,
//! replicated, checksum-verified object I/O straight to the OSTs, docs/replication.md),
//! `durable` (syncs checked against the OSTs' write verifiers), `append` (where O_APPEND
//! writes land, asked of the MDS),
//! `io` (reads through the page cache and read-ahead, writes through write-back),
//! `handles`, `transfer`, `admin`, `path`, `session` (opened, renewed, replaced after an
//! eviction), `feed` (the watchers of every MDS's change
//! feed), `kernel` (other clients' changes passed on to the kernel's caches) and
//! `kernel_names` (names the kernel keeps longer while the feeds vouch for them). State,
//! which never refers back to [`Client`]: `files` (open files and the sizes
//! this client's writes reached), `dirs` (directory handles' offsets), `cache` (the page
//! cache), `writeback` (buffered writes), `unstable` (changes acknowledged but not yet
//! synced, and their write verifiers), `releases` (the queue of closes sent together),
//! `pending_marks` (stale marks the MDS has not taken yet), `atime` (the atime rule and
//! the atimes sent but not answered),
//! `meta_cache` (names and attributes answered while the feeds vouch for them),
//! `capability` (answers to the kernel's `security.capability` probe), `space` (whether
//! the OSTs can take a fallocate) and `stripe` (the layout math).

pub mod admin;
mod append;
mod async_dirops;
mod atime;
mod atime_batch;
mod cache;
mod capability;
mod copy;
mod data;
mod dir_caps;
mod dir_handles;
mod dirops_send;
mod dirs;
mod dirs_ahead;
mod durable;
mod feed;
mod fence;
mod files;
pub(crate) mod first_poll;
mod handles;
mod inline;
mod io;
mod kept_attrs;
mod kernel;
mod kernel_holds;
mod kernel_names;
mod locks;
mod lookahead;
mod mds_call;
mod meta;
mod meta_cache;
mod meta_ops;
pub mod metrics;
mod open_ahead;
mod open_prefetch;
pub mod path;
mod pending_marks;
pub mod quota;
mod releases;
mod seek;
mod session;
mod space;
mod stale_open;
mod stripe;
mod transfer;
mod unstable;
mod writeback;

pub use async_dirops::AsyncDirops;
pub use atime::{AtimeMode, AtimeRule, STRICTATIME_INTERVAL};
pub use cache::DEFAULT_CACHE_BYTES;
pub use copy::COPY_MAX_BYTES;
pub use dirs::Listed;
pub use files::{Opened, FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE};
pub use handles::Written;
pub use kernel::KernelCache;
pub use kernel_holds::RefreshHolds;
pub use kernel_names::{NameTtl, KEPT_ENTRY_TTL};
pub use locks::{signal_pending, LockOutcome};
pub use meta_cache::FEED_LEASE;
pub use transfer::TransferError;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustre_proto::cluster::Cluster;
use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::mgs::ClusterMap;
use rustre_proto::msg::{Attr, Creds};
use rustre_proto::Error;

/// How a client connects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `host:port` of the MGS.
    pub mgs_addr: String,
    pub cluster: String,
    /// Name shown in server logs.
    pub client_name: String,
    /// The cluster secret every connection proves (see `rustre_proto::auth`).
    pub key: rustre_proto::auth::ClusterKey,
}

/// A connected client. Cheap to share (`Arc<Client>`).
pub struct Client {
    cluster: Arc<Cluster>,
    session: AtomicU64,
    /// Most bytes of a file the MDS keeps at its close (data on the MDS, [`inline`]), as
    /// its session's answer said; 0: none.
    inline_max: std::sync::atomic::AtomicU32,
    /// Held while an evicted session is replaced ([`session`]).
    session_change: tokio::sync::Mutex<()>,
    /// Numbers mutating calls within the session (see the MDS's request records).
    seq: AtomicU64,
    rr: AtomicU64,
    /// MDS addresses that failed a call recently, and until when to pass them over.
    mds_cooldown: std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
    name: String,
    files: files::Files,
    dirs: dirs::Dirs,
    cache: cache::PageCache,
    /// Opens that read their small file meanwhile ([`open_prefetch`]).
    prefetches: open_prefetch::PrefetchCounts,
    /// Listing orders, and the small files read ahead of readers that follow them.
    lookahead: lookahead::Lookahead,
    dirs_ahead: dirs_ahead::DirsAhead,
    writeback: writeback::WriteBack,
    unstable: unstable::Unstable,
    capability: capability::CapabilityCache,
    meta_cache: meta_cache::MetaCache,
    releases: releases::ReleaseQueue,
    pending_marks: pending_marks::PendingMarks,
    atimes: atime::Atimes,
    /// Atime updates waiting to be sent together ([`atime_batch`]).
    atime_queue: atime_batch::AtimeQueue,
    /// Who may hold locks on which file through this client ([`locks`]).
    lock_owners: locks::LockOwners,
    /// Tests hold the change feed's answers back with this ([`Client::hold_feed`]).
    feed_held: std::sync::atomic::AtomicBool,
    /// Where other clients' changes are reported beyond `meta_cache` (the kernel).
    kernel: kernel::KernelHook,
    /// Inodes whose feed invalidations wait for the kernel to ask again ([`kernel_holds`]).
    refresh_holds: Arc<kernel_holds::RefreshHolds>,
    /// Migrations begun through this client and not finished ([`admin`]).
    migrations: admin::Migrations,
    /// Unlinks and renames answered before the MDS's answer ([`async_dirops`]).
    dirops_ahead: async_dirops::DiropsAhead,
    /// Names the kernel keeps longer than the mount's TTL ([`kernel_names`]).
    kept_names: kernel_names::KeptNames,
}

impl Client {
    /// Connects to the MGS, opens a session with an MDS and keeps the session alive.
    pub async fn connect(cfg: &ClientConfig) -> Result<Arc<Client>, Error> {
        let cluster =
            Cluster::connect(&cfg.mgs_addr, &cfg.cluster, &cfg.client_name, &cfg.key).await?;
        let client = Arc::new(Client {
            cluster,
            session: AtomicU64::new(0),
            inline_max: std::sync::atomic::AtomicU32::new(0),
            session_change: Default::default(),
            seq: AtomicU64::new(1),
            rr: AtomicU64::new(0),
            mds_cooldown: Default::default(),
            name: cfg.client_name.clone(),
            files: files::Files::default(),
            cache: cache::PageCache::default(),
            prefetches: Default::default(),
            lookahead: Default::default(),
            dirs_ahead: Default::default(),
            writeback: writeback::WriteBack::default(),
            unstable: unstable::Unstable::default(),
            capability: capability::CapabilityCache::default(),
            dirs: dirs::Dirs::default(),
            meta_cache: meta_cache::MetaCache::default(),
            releases: releases::ReleaseQueue::default(),
            pending_marks: pending_marks::PendingMarks::default(),
            atimes: atime::Atimes::default(),
            atime_queue: atime_batch::AtimeQueue::default(),
            lock_owners: locks::LockOwners::default(),
            feed_held: Default::default(),
            kernel: kernel::KernelHook::default(),
            refresh_holds: Default::default(),
            migrations: admin::Migrations::default(),
            dirops_ahead: Default::default(),
            kept_names: Default::default(),
        });
        let weak = Arc::downgrade(&client);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(writeback::WRITEBACK_TICK).await;
                let Some(c) = weak.upgrade() else { break };
                c.send_stale_writes().await;
            }
        });
        let lease_ms = client.open_session().await?;
        feed::start(&client);
        kernel_names::start(&client);
        client.start_renewals(lease_ms);
        Ok(client)
    }

    /// Ends the session (its opens are released at once instead of at lease expiry).
    pub async fn close(&self) -> Result<(), Error> {
        self.mds(&Creds::root(), MdsOp::CloseSession)
            .await
            .map(|_| ())
    }

    /// The cluster view (map and server connections).
    pub(crate) fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// The newest cluster map this client knows (followed from the MGS every second).
    pub fn cluster_map(&self) -> Arc<ClusterMap> {
        self.cluster.map()
    }

    /// Asks the MGS for the cluster map now.
    pub async fn refresh_map(&self) -> Result<Arc<ClusterMap>, Error> {
        self.cluster.refresh().await
    }

    /// How long attributes may be cached (the mount's attribute TTL): answers to the
    /// kernel's `security.capability` probe are kept that long, and so is a replicated
    /// file's layout before a read asks the MDS again.
    /// A zero TTL also turns the metadata cache off (every lookup and getattr asks the MDS).
    pub fn set_attr_ttl(&self, ttl: Duration) {
        self.meta_cache.set_enabled(!ttl.is_zero());
        self.capability.set_ttl(ttl);
        self.files.set_layout_ttl(ttl);
    }

    /// When reads and listings move atime (a mount's `noatime`, `relatime`, ...; a client
    /// moves none until told).
    pub fn set_atime_mode(&self, mode: AtimeMode) {
        self.atimes.set_mode(mode);
    }

    /// The atime mode in force.
    pub fn atime_mode(&self) -> AtimeMode {
        self.atimes.mode()
    }

    /// Merges what this client knows and the MDS may not yet into an attribute answer: the
    /// sizes and mtimes of its writes, and the atimes its reads moved.
    fn merge_local(&self, attr: &mut Attr) {
        self.files.merge(attr);
        self.atimes.merge(attr);
    }

    /// Lookups and getattrs answered from the metadata cache (no MDS round trip) so far.
    pub fn meta_cache_hits(&self) -> u64 {
        self.meta_cache.hits()
    }

    /// This client's session id.
    pub fn session(&self) -> u64 {
        self.session.load(Ordering::SeqCst)
    }
}

/// A response of the wrong kind is a protocol error.
pub(crate) fn unexpected(r: MdsResponse) -> Error {
    Error::Protocol(format!("unexpected MDS response {r:?}"))
}
