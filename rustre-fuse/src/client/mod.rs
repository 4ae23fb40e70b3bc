//! The client library: a session with the cluster, metadata calls and striped data I/O.
//!
//! ## Layout
//! - [`meta`]: typed metadata calls to the MDS (with retry of idempotent calls on another MDS).
//! - [`data`]: striped, parallel object reads and writes straight to the OSTs, to every live
//!   copy of a replicated stripe, checksum-verified on read (docs/replication.md).
//! - [`files`]: open-file handles and the sizes this client's writes reached (merged into
//!   every attribute answer, reported to the MDS on flush, fsync, close and setattr).
//! - [`meta_cache`]: names and attributes answered again while every MDS's change feed
//!   says they hold; [`feed`]: the watchers of those feeds.
//! - [`dirs`]: directory handles mapping integer offsets to the MDS's name cookies.
//! - [`cache`]: the page cache and read-ahead for sequential readers.
//! - [`capability`]: recent answers to the kernel's `security.capability` probe.
//! - [`writeback`]: small writes gathered into stripe-sized sends in the background.
//! - [`stripe`]: the layout math.
//! - [`path`]: resolving slash-separated paths for the CLI.

pub mod cache;
pub mod capability;
pub mod data;
pub mod dirs;
pub mod feed;
pub mod files;
#[cfg(feature = "sim-bug")]
pub mod injected_bug;
pub mod meta;
pub mod meta_cache;
pub mod path;
pub mod releases;
pub mod stripe;
pub mod writeback;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustre_proto::cluster::Cluster;
use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::Creds;
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
    /// Numbers mutating calls within the session (see the MDS's request records).
    seq: AtomicU64,
    rr: AtomicU64,
    /// MDS addresses that failed a call recently, and until when to pass them over.
    mds_cooldown: std::sync::Mutex<std::collections::HashMap<String, tokio::time::Instant>>,
    name: String,
    files: files::Files,
    dirs: dirs::Dirs,
    cache: cache::PageCache,
    writeback: writeback::WriteBack,
    capability: capability::CapabilityCache,
    meta_cache: meta_cache::MetaCache,
    releases: releases::ReleaseQueue,
}

impl Client {
    /// Connects to the MGS, opens a session with an MDS and keeps the session alive.
    pub async fn connect(cfg: &ClientConfig) -> Result<Arc<Client>, Error> {
        let cluster =
            Cluster::connect(&cfg.mgs_addr, &cfg.cluster, &cfg.client_name, &cfg.key).await?;
        let client = Arc::new(Client {
            cluster,
            session: AtomicU64::new(0),
            seq: AtomicU64::new(1),
            rr: AtomicU64::new(0),
            mds_cooldown: Default::default(),
            name: cfg.client_name.clone(),
            files: files::Files::default(),
            cache: cache::PageCache::default(),
            writeback: writeback::WriteBack::default(),
            capability: capability::CapabilityCache::default(),
            dirs: dirs::Dirs::default(),
            meta_cache: meta_cache::MetaCache::default(),
            releases: releases::ReleaseQueue::default(),
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
        let weak = Arc::downgrade(&client);
        tokio::spawn(async move {
            let every = Duration::from_millis((lease_ms / 3).max(100));
            loop {
                tokio::time::sleep(every).await;
                let Some(c) = weak.upgrade() else { break };
                match c.mds(&Creds::root(), MdsOp::RenewSession).await {
                    Ok(_) => {}
                    Err(Error::Stale) => {
                        tracing::warn!(
                            "session expired; opening a new one (earlier opens are lost)"
                        );
                        let _ = c.open_session().await;
                    }
                    Err(e) => tracing::debug!("session renewal failed: {e}"),
                }
            }
        });
        Ok(client)
    }

    async fn open_session(&self) -> Result<u64, Error> {
        let op = MdsOp::OpenSession {
            client: self.name.clone(),
        };
        match self.mds(&Creds::root(), op).await? {
            MdsResponse::Session { id, lease_ms } => {
                self.session.store(id, Ordering::SeqCst);
                Ok(lease_ms)
            }
            other => Err(unexpected(other)),
        }
    }

    /// Ends the session (its opens are released at once instead of at lease expiry).
    pub async fn close(&self) -> Result<(), Error> {
        self.mds(&Creds::root(), MdsOp::CloseSession)
            .await
            .map(|_| ())
    }

    /// The cluster view (map and server connections).
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
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

    /// The open-file table (handles and unreported sizes).
    pub fn files(&self) -> &files::Files {
        &self.files
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
