//! # MGS — the management service
//!
//! The cluster registry: which OSTs exist (index, address, capacity, state), which MDS
//! instances exist, and the layout defaults. Every node registers, then heartbeats every
//! `HEARTBEAT_INTERVAL_MS`; a monitor marks a node down once it has been silent for
//! `NODE_DOWN_AFTER_MS` (two missed beats). Clients follow the versioned [`ClusterMap`]
//! with `GetMap`.
//!
//! ## Rules
//! - Every change of membership, state, address or disk binding moves the epoch by one;
//!   capacity updates from heartbeats do not.
//! - Fencing: a heartbeat from a node that is unknown or marked down is answered `Unknown`,
//!   and the node counts as up again only after it registers (which moves the epoch).
//! - Disk identity: each OST index is bound to the disk (its UUID) that first registered it;
//!   a registration offering another disk is answered `WrongDisk` until an administrator
//!   drops the binding with `ReplaceOst` (`rustre ost replace`, docs/replication.md, "Disk
//!   identity").
//! - The registry (membership, addresses, disk bindings, last capacity, epoch) is saved in
//!   the metadata KV ([`MgsConfig::store`]: the embedded store, or FoundationDB shared with
//!   the MDS) before a new epoch is visible, in one transaction that reads the stored epoch
//!   and moves past it.
//!   After a restart every known node is listed as down until it registers again, and the
//!   epoch moves past the saved one: it never goes backwards and never names two different
//!   maps, even when two MGS run over one FoundationDB cluster.
//! - Liveness (when each node last beat) is kept in memory only. Over FoundationDB the MGS
//!   is therefore stateless (a replacement started anywhere restores the registry), but
//!   several MGS running *at once* each judge liveness from the beats they receive, and the
//!   saved registry is the last saver's: run one MGS at a time per cluster, with a standby
//!   started when it dies (`docs/foundationdb.md`).
//!
//! ## Layout
//! - `registry`: the pure state machine (explicit clock, deterministic tests).
//! - `persist`: the registry record in the KV (and the registry file of earlier versions).
//! - `service`: the RPC handler and the down-marking monitor.
//!
//! [`ClusterMap`]: rustre_proto::msg::mgs::ClusterMap

pub(crate) mod persist;
mod registry;
mod service;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustre_proto::auth::ClusterKey;
use rustre_proto::msg::mgs::LayoutDefaults;
use rustre_proto::msg::{MAX_REPLICAS, MAX_STRIPE_COUNT, MAX_STRIPE_SIZE, MIN_STRIPE_SIZE};
use rustre_proto::net::Listener;
use rustre_proto::rpc::server::serve;
use rustre_proto::Error;
use tokio::sync::watch;
use tokio::time::Instant;

pub use registry::{MAX_MDS, NODE_DOWN_AFTER};
pub use service::MONITOR_INTERVAL;

use crate::checks::validate_cluster_name;
use crate::meta::{Kv, StoreConfig};
use registry::Registry;
use service::Mgs;

/// Where the embedded store of an MGS lives under its data directory.
pub fn embedded_store_dir(data: &Path) -> PathBuf {
    data.join("meta")
}

/// Configuration of an MGS.
#[derive(Debug, Clone)]
pub struct MgsConfig {
    /// Where the registry is kept: the embedded store (by default
    /// [`embedded_store_dir`] of the data directory; locked while the MGS runs) or
    /// FoundationDB, possibly shared with the MDS (MGS keys never collide with MDS keys).
    pub store: StoreConfig,
    /// A data directory of an earlier version, which kept the registry in the file
    /// `mgs.registry`: when the store has no registry yet, that file is imported (so the
    /// epoch carries on from it) and renamed `mgs.registry.imported`.
    pub legacy_registry_dir: Option<PathBuf>,
    /// The cluster's name; clients and servers of another cluster are refused.
    pub cluster: String,
    /// The cluster secret every connecting peer must prove it holds.
    pub key: ClusterKey,
    /// Layout of new files when their directory has none.
    pub defaults: LayoutDefaults,
}

impl MgsConfig {
    /// Checks the configuration before anything is started.
    pub fn validate(&self) -> Result<(), Error> {
        validate_cluster_name(&self.cluster)?;
        let d = &self.defaults;
        if d.stripe_size < MIN_STRIPE_SIZE
            || d.stripe_size > MAX_STRIPE_SIZE
            || !d.stripe_size.is_multiple_of(MIN_STRIPE_SIZE)
        {
            return Err(Error::Invalid(format!(
                "default stripe size {} must be a multiple of {MIN_STRIPE_SIZE} between \
                 {MIN_STRIPE_SIZE} and {MAX_STRIPE_SIZE}",
                d.stripe_size
            )));
        }
        // u32::MAX means "all OSTs", as in a LayoutSpec.
        if d.stripe_count == 0 || (d.stripe_count > MAX_STRIPE_COUNT && d.stripe_count != u32::MAX)
        {
            return Err(Error::Invalid(format!(
                "default stripe count {} must be between 1 and {MAX_STRIPE_COUNT} (or all)",
                d.stripe_count
            )));
        }
        if d.replicas == 0 || d.replicas > MAX_REPLICAS {
            return Err(Error::Invalid(format!(
                "default replica count {} must be between 1 and {MAX_REPLICAS}",
                d.replicas
            )));
        }
        Ok(())
    }
}

/// Runs an MGS on `listener` until `shutdown` turns true (or its sender is dropped).
///
/// Fails before serving when the configuration is invalid, the store cannot be opened (an
/// embedded store is locked by another process, FoundationDB is unreachable), or its registry
/// is damaged or belongs to another cluster; it never starts over with an empty registry in
/// that case, since that would move the epoch backwards.
pub async fn run(
    cfg: MgsConfig,
    listener: impl Into<Listener>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    cfg.validate()?;
    let store = cfg.store.clone();
    let kv = rustre_proto::blocking::unblock(move || store.open())
        .await
        .map_err(|e| Error::Io(format!("opening the MGS store: {e}")))??;
    run_over(cfg, kv, listener, shutdown).await
}

/// [`run`] over a store that is already open (the simulation's in-memory store, which
/// outlives the MGS as FoundationDB would).
pub async fn run_over(
    cfg: MgsConfig,
    kv: Kv,
    listener: impl Into<Listener>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    let listener = listener.into();
    cfg.validate()?;
    let legacy = cfg.legacy_registry_dir.clone();
    let (kv, saved, imported) = rustre_proto::blocking::unblock(move || {
        let saved = kv.transact(persist::load_registry)?;
        let (saved, imported) = match (saved, &legacy) {
            (None, Some(dir)) => match persist::load_registry_file(dir)? {
                Some(file) => (Some(file), true),
                None => (None, false),
            },
            (saved, _) => (saved, false),
        };
        Ok::<_, Error>((kv, saved, imported))
    })
    .await
    .map_err(|e| Error::Io(format!("opening the MGS store: {e}")))??;

    let registry = match saved {
        Some(file) if file.cluster != cfg.cluster => {
            let from = match (&cfg.legacy_registry_dir, imported) {
                (Some(dir), true) => dir.join(persist::REGISTRY_FILE).display().to_string(),
                _ => cfg.store.to_string(),
            };
            return Err(Error::Invalid(format!(
                "{from} holds the registry of cluster {:?}, not {:?}",
                file.cluster, cfg.cluster
            )));
        }
        Some(file) => {
            tracing::info!(
                osts = file.osts.len(),
                mds = file.mds.len(),
                saved_epoch = file.epoch,
                imported,
                "MGS registry restored; every node is down until it registers again"
            );
            Registry::restore(&file, Instant::now())
        }
        None => Registry::new(),
    };
    let mgs = Arc::new(
        Mgs::new(cfg.cluster.clone(), cfg.defaults, kv, registry)
            .requiring_admin(cfg.key.has_admin()),
    );
    // The restored (or first) epoch is in the store before anyone can see it.
    let epoch = mgs.save_live().await?;
    if imported {
        if let Some(dir) = cfg.legacy_registry_dir.clone() {
            rustre_proto::blocking::unblock(move || persist::retire_registry_file(&dir))
                .await
                .map_err(|e| Error::Io(format!("renaming the imported registry: {e}")))??;
        }
    }
    tracing::info!(
        cluster = %cfg.cluster,
        addr = ?listener.local_addr().ok(),
        store = %cfg.store,
        epoch,
        "MGS serving"
    );

    if *shutdown.borrow() {
        return Ok(());
    }
    let monitor = tokio::spawn(service::monitor(mgs.clone(), shutdown.clone()));
    serve(listener, mgs.clone(), cfg.cluster, cfg.key, shutdown).await;
    monitor.abort();
    let _ = monitor.await;
    mgs.stop().await;
    tracing::info!("MGS stopped");
    Ok(())
}
