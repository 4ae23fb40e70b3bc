//! # MGS — the management service
//!
//! The cluster registry: which OSTs exist (index, address, capacity, state), which MDS
//! instances exist, and the layout defaults. Every node registers, then heartbeats every
//! `HEARTBEAT_INTERVAL_MS`; a monitor marks a node down once it has been silent for
//! `NODE_DOWN_AFTER_MS` (two missed beats). Clients follow the versioned [`ClusterMap`]
//! with `GetMap`.
//!
//! ## Rules
//! - Every change of membership, state or address moves the epoch by one; capacity updates
//!   from heartbeats do not.
//! - Fencing: a heartbeat from a node that is unknown or marked down is answered `Unknown`,
//!   and the node counts as up again only after it registers (which moves the epoch).
//! - The registry (membership, addresses, last capacity, epoch) is saved atomically in
//!   `data_dir` before a new epoch is visible. After a restart every known node is listed as
//!   down until it registers again, and the epoch moves past the saved one: it never goes
//!   backwards and never names two different maps.
//!
//! ## Layout
//! - `registry`: the pure state machine (explicit clock, deterministic tests).
//! - `persist`: the registry file and the small durable-record helpers the OSS shares.
//! - `service`: the RPC handler and the down-marking monitor.
//!
//! [`ClusterMap`]: rustre_proto::msg::mgs::ClusterMap

pub(crate) mod persist;
mod registry;
mod service;
#[cfg(test)]
pub(crate) mod tests;

use std::path::PathBuf;
use std::sync::Arc;

use rustre_proto::msg::mgs::LayoutDefaults;
use rustre_proto::msg::{MAX_REPLICAS, MAX_STRIPE_COUNT, MAX_STRIPE_SIZE, MIN_STRIPE_SIZE};
use rustre_proto::rpc::server::serve;
use rustre_proto::rpc::MAX_NAME_BYTES;
use rustre_proto::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;

pub use registry::{check_addr, MAX_ADDR_BYTES, MAX_MDS, MAX_OSTS, MAX_OST_INDEX, NODE_DOWN_AFTER};
pub use service::MONITOR_INTERVAL;

use registry::Registry;
use service::Mgs;

/// Configuration of an MGS.
#[derive(Debug, Clone)]
pub struct MgsConfig {
    /// Where the registry is kept (created if absent; locked while the MGS runs).
    pub data_dir: PathBuf,
    /// The cluster's name; clients and servers of another cluster are refused.
    pub cluster: String,
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

/// Checks a cluster name: what the handshake accepts, and printable.
pub fn validate_cluster_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_BYTES {
        return Err(Error::Invalid(format!(
            "cluster name must be 1 to {MAX_NAME_BYTES} bytes"
        )));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::Invalid(format!("bad cluster name {name:?}")));
    }
    Ok(())
}

/// Runs an MGS on `listener` until `shutdown` turns true (or its sender is dropped).
///
/// Fails before serving when the configuration is invalid, the data directory is locked by
/// another process, or its registry is damaged or belongs to another cluster; it never starts
/// over with an empty registry in that case, since that would move the epoch backwards.
pub async fn run(
    cfg: MgsConfig,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    cfg.validate()?;
    let dir = cfg.data_dir.clone();
    let (lock, saved) = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| persist::io_error(&dir, e))?;
        let lock = persist::lock_dir(&dir)?;
        let saved = persist::load_registry(&dir)?;
        Ok::<_, Error>((lock, saved))
    })
    .await
    .map_err(|e| Error::Io(format!("opening the MGS data directory: {e}")))??;

    let registry = match saved {
        Some(file) if file.cluster != cfg.cluster => {
            return Err(Error::Invalid(format!(
                "{} holds the registry of cluster {:?}, not {:?}",
                cfg.data_dir.display(),
                file.cluster,
                cfg.cluster
            )));
        }
        Some(file) => {
            tracing::info!(
                osts = file.osts.len(),
                mds = file.mds.len(),
                saved_epoch = file.epoch,
                "MGS registry restored; every node is down until it registers again"
            );
            Registry::restore(&file, Instant::now())
        }
        None => Registry::new(),
    };
    let mgs = Arc::new(Mgs::new(
        cfg.cluster.clone(),
        cfg.defaults,
        cfg.data_dir.clone(),
        registry.clone(),
    ));
    // The restored (or first) epoch is on disk before anyone can see it.
    mgs.save(&registry).await?;
    tracing::info!(
        cluster = %cfg.cluster,
        addr = ?listener.local_addr().ok(),
        epoch = registry.epoch(),
        "MGS serving"
    );

    if *shutdown.borrow() {
        return Ok(());
    }
    let monitor = tokio::spawn(service::monitor(mgs.clone(), shutdown.clone()));
    serve(listener, mgs.clone(), cfg.cluster, shutdown).await;
    monitor.abort();
    let _ = monitor.await;
    mgs.stop().await;
    drop(lock);
    tracing::info!("MGS stopped");
    Ok(())
}
