//! # OSS — the object storage service
//!
//! One OSS process serves one or more OSTs, each a directory. An object is one stripe of one
//! file, `ObjectId = (ino, stripe)`, stored as one plain file; reads go to the socket with
//! `sendfile`, writes are positional, `sync` is `fdatasync`. Every object has CRC32Cs, one
//! per 4 KiB block, in an extended attribute of its file (small objects) or a sidecar file
//! (docs/replication.md). The OSS registers every OST with the
//! MGS and heartbeats it every second with fresh capacity; an OST refuses callers with a map
//! older than its registration, and refuses changes while it holds no lease from the MGS
//! (fencing).
//!
//! ## Layout
//! - `store`: the narrow [`ObjectStore`] trait and the request checks.
//! - `error`: [`ObjectError`], what a store answers; the service alone turns it into the
//!   wire error.
//! - `file_store`: [`FileStore`], objects as files (see its doc for the on-disk layout,
//!   the handle-cache locking rule and durability; `file_store/write.rs` for how checksums
//!   follow writes and truncates, `file_store/crcs.rs` for where they live).
//! - `mem_store`: [`MemStore`], objects in memory with a live and a durable image each, and
//!   a simulated power cut ([`MemStore::crash`]); for tests and the simulation.
//! - `sums`: the format of an object's CRCs (a sidecar's bytes, or an attribute's value).
//! - `handles`: the bounded cache of open object files.
//! - `fence`: registration epoch and lease of an OST, and whether it serves at all.
//! - `identity`: the identity file of an OST directory and the UUID of its disk.
//! - `instance`: the OST's write verifier, kept across process restarts within one boot.
//! - `service`: the RPC handler.
//! - `mgs_link`: registration and heartbeats.
//! - `volatile`: a test-only store that keeps unsynced writes in memory, so `kill -9` of
//!   the OSS is a power cut (`RUSTRE_TEST_VOLATILE_WRITES=1`).
//! - `conformance` (tests): the suite the stores pass; `tests/`: the OSS over TCP
//!   (`tests/registration.rs`: with a real MGS, fencing and disk identity).
//!
//! ## An OST directory
//! ```text
//! DIR/LOCK            flock'ed while an OSS serves the OST
//! DIR/ost.identity    cluster name, OST index, disk UUID, accepted by the MGS or not;
//!                     written on first use
//! DIR/ost.instance    the instance (write verifier) of the current boot of the host
//! DIR/objects/..      the objects
//! ```
//! The identity file stops a directory from being served as another OST or in another
//! cluster, which would silently hand out the wrong data; its disk UUID lets the MGS refuse
//! a wiped or replaced directory in place of the disk it replaced (see `identity`).

#[cfg(test)]
mod conformance;
mod error;
mod fence;
mod file_store;
mod handles;
mod identity;
mod instance;
mod mem_store;
mod mgs_link;
mod service;
mod store;
mod sums;
#[cfg(test)]
mod tests;
mod volatile;

use crate::space::{SpaceGuard, OST_RESERVE};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustre_proto::auth::ClusterKey;
use rustre_proto::net::Listener;
use rustre_proto::rpc::server::serve;
use rustre_proto::Error;
use tokio::sync::watch;

pub use error::ObjectError;
pub use fence::{OSS_LEASE, REGISTRATION_WAIT};
pub use file_store::{
    statvfs, FileStore, OBJECTS_DIR, OBJECT_DIRS, OBJECT_LOCK_STRIPES, SCRUB_CHUNK_BYTES,
};
pub use identity::IDENTITY_FILE;
pub use mem_store::MemStore;
pub use mgs_link::MGS_CALL_TIMEOUT;
pub use service::OSS_IO_MAX_IN_FLIGHT;
pub use store::{
    check_change, check_list, check_object, check_payload, check_read, check_size, check_write,
    ObjectPage, ObjectRead, ObjectStore, ReadData, IN_PLACE_WRITE_MAX_BYTES, MAX_OBJECT_BYTES,
};
pub use sums::{SUMS_FORMAT, SUMS_HEADER_BYTES, SUMS_MAGIC};
pub use volatile::{VolatileStore, VOLATILE_WRITES_ENV};

use crate::checks::{check_addr, check_ost_index, validate_cluster_name};
use crate::records::RecordError;
use identity::{claim_ost_dir, OstDisk};

/// Most open object files cached per OSS process, shared evenly by its OSTs.
pub const OPEN_OBJECTS_MAX: usize = 1024;
/// Fewest open object files cached per OST, however many OSTs share the process.
pub const OPEN_OBJECTS_MIN_PER_OST: usize = 64;
/// Most OSTs one OSS serves.
pub const MAX_OSTS_PER_OSS: usize = 256;

/// Configuration of an OSS.
#[derive(Debug, Clone)]
pub struct OssConfig {
    /// Address of the MGS (`host:port`).
    pub mgs_addr: String,
    /// The address clients reach this OSS at, as published in the cluster map.
    pub advertise_addr: String,
    /// The cluster's name.
    pub cluster: String,
    /// The cluster secret: peers must prove they hold it, and so must the MGS.
    pub key: ClusterKey,
    /// The OSTs served: index and directory (created if absent).
    pub osts: Vec<(u32, PathBuf)>,
}

impl OssConfig {
    /// Checks the configuration before anything is started.
    pub fn validate(&self) -> Result<(), Error> {
        validate_cluster_name(&self.cluster)?;
        check_addr(&self.mgs_addr).map_err(|e| Error::Invalid(format!("MGS address: {e}")))?;
        check_addr(&self.advertise_addr)
            .map_err(|e| Error::Invalid(format!("advertised address: {e}")))?;
        if self.osts.is_empty() || self.osts.len() > MAX_OSTS_PER_OSS {
            return Err(Error::Invalid(format!(
                "an OSS serves 1 to {MAX_OSTS_PER_OSS} OSTs, not {}",
                self.osts.len()
            )));
        }
        let mut seen = HashSet::new();
        for (index, dir) in &self.osts {
            check_ost_index(*index)?;
            if !seen.insert(*index) {
                return Err(Error::Invalid(format!("OST {index} is listed twice")));
            }
            if dir.as_os_str().is_empty() {
                return Err(Error::Invalid(format!("OST {index} has no directory")));
            }
        }
        Ok(())
    }
}

/// An opened OST: its store, its disk, its instance and the lock on its directory.
struct OpenedOst {
    index: u32,
    store: Arc<dyn ObjectStore>,
    disk: Arc<OstDisk>,
    instance: u64,
    _lock: File,
}

/// An OST ready to serve.
struct ServableOst {
    index: u32,
    store: Arc<dyn ObjectStore>,
    disk: Arc<OstDisk>,
    /// Its write verifier ([`instance`]).
    instance: u64,
    /// The free space its disk keeps ([`crate::space`]): OSTs served from directories only.
    reserve: Option<Arc<SpaceGuard>>,
}

fn open_osts(cfg: &OssConfig) -> Result<Vec<OpenedOst>, Error> {
    let per_ost = (OPEN_OBJECTS_MAX / cfg.osts.len()).max(OPEN_OBJECTS_MIN_PER_OST);
    let mut dirs = HashSet::new();
    let mut opened = Vec::with_capacity(cfg.osts.len());
    for (index, dir) in &cfg.osts {
        std::fs::create_dir_all(dir).map_err(|e| RecordError::io(dir, e))?;
        let canonical = dir.canonicalize().map_err(|e| RecordError::io(dir, e))?;
        if !dirs.insert(canonical) {
            return Err(Error::Invalid(format!(
                "{} is given for two OSTs",
                dir.display()
            )));
        }
        let (lock, disk) = claim_ost_dir(dir, &cfg.cluster, *index)?;
        // Start-up, not an answer; the same conversion keeps the error what it was.
        let files = FileStore::open(dir, per_ost).map_err(service::to_wire)?;
        let volatile = volatile::volatile_writes_wanted();
        let store: Arc<dyn ObjectStore> = if volatile {
            tracing::warn!(
                index,
                "{}=1: TEST MODE, unsynced writes are kept in memory only and lost when \
                 this process dies",
                volatile::VOLATILE_WRITES_ENV
            );
            Arc::new(volatile::VolatileStore::load(files).map_err(service::to_wire)?)
        } else {
            Arc::new(files)
        };
        // The volatile test store loses unsynced writes with the process: a new instance.
        let instance = if volatile {
            service::new_instance()
        } else {
            instance::instance_of_this_boot(dir, disk.uuid(), service::new_instance())?
        };
        opened.push(OpenedOst {
            index: *index,
            store,
            disk: Arc::new(disk),
            instance,
            _lock: lock,
        });
    }
    Ok(opened)
}

/// Raises the soft limit on open files to the hard one: the handle cache and the client
/// connections both need descriptors, and many systems start with a soft limit of 1024.
fn raise_open_files_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, owned rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let old = lim.rlim_cur;
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 {
                tracing::debug!(from = old, to = lim.rlim_cur, "raised the open files limit");
            }
        }
    }
}

/// Runs an OSS on `listener` until `shutdown` turns true (or its sender is dropped).
///
/// Fails before serving when the configuration is invalid or an OST directory cannot be
/// opened, is locked by another process, or belongs to another OST or cluster. Once serving,
/// it never exits because of the MGS: it keeps registering and heartbeating in the background.
/// Until an OST is registered (and whenever its [`OSS_LEASE`] runs out) it refuses writes,
/// truncates and deletes with `Fenced`; reads are served from the start, except by an OST
/// whose disk the MGS has never accepted (new, or refused as not the disk bound to the
/// index), which serves nothing until a registration of it is accepted.
pub async fn run(
    cfg: OssConfig,
    listener: impl Into<Listener>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    run_with_lease(cfg, listener, shutdown, OSS_LEASE).await
}

/// [`run`] over stores the caller made, instead of OST directories: `stores` holds the store
/// of each OST of `cfg.osts`, in the same order, and the directories are neither opened nor
/// locked. The simulation serves its in-memory [`MemStore`]s this way, to cut their power.
pub async fn run_on_stores(
    cfg: OssConfig,
    stores: Vec<Arc<dyn ObjectStore>>,
    listener: impl Into<Listener>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), Error> {
    cfg.validate()?;
    if stores.len() != cfg.osts.len() {
        return Err(Error::Invalid(format!(
            "{} stores for {} OSTs",
            stores.len(),
            cfg.osts.len()
        )));
    }
    let osts = cfg
        .osts
        .iter()
        .zip(stores)
        .map(|((index, _), store)| {
            let disk = Arc::new(OstDisk::given(&cfg.cluster, *index));
            // A store made by the caller (the simulation's) loses its unsynced writes on
            // every restart: each start is a new instance.
            ServableOst {
                index: *index,
                store,
                disk,
                instance: service::new_instance(),
                reserve: None,
            }
        })
        .collect();
    serve_osts(cfg, listener.into(), shutdown, OSS_LEASE, osts).await;
    tracing::info!("OSS stopped");
    Ok(())
}

/// [`run`] with another lease (tests use a short one).
pub(crate) async fn run_with_lease(
    cfg: OssConfig,
    listener: impl Into<Listener>,
    shutdown: watch::Receiver<bool>,
    lease: Duration,
) -> Result<(), Error> {
    let listener = listener.into();
    cfg.validate()?;
    raise_open_files_limit();
    let open_cfg = cfg.clone();
    let opened = rustre_proto::blocking::unblock(move || open_osts(&open_cfg))
        .await
        .map_err(|e| Error::Io(format!("opening the OSTs: {e}")))??;
    let osts = opened
        .iter()
        .map(|o| ServableOst {
            index: o.index,
            store: o.store.clone(),
            disk: o.disk.clone(),
            instance: o.instance,
            reserve: Some(Arc::new(SpaceGuard::new(
                OST_RESERVE,
                format!("OST {}", o.index),
            ))),
        })
        .collect();
    serve_osts(cfg, listener, shutdown, lease, osts).await;
    drop(opened);
    tracing::info!("OSS stopped");
    Ok(())
}

/// Serves `osts` (index and store, in the configured order) until `shutdown`: registration
/// and heartbeats with the MGS in the background, requests on `listener`.
async fn serve_osts(
    cfg: OssConfig,
    listener: Listener,
    shutdown: watch::Receiver<bool>,
    lease: Duration,
    osts: Vec<ServableOst>,
) {
    if let Some(m) = crate::metrics::get() {
        osts.iter().for_each(|o| m.ost_known(o.index));
    }
    let served: HashMap<u32, service::ServedOst> = osts
        .iter()
        .map(|o| {
            let ost_lease = Arc::new(fence::OstLease::new(lease));
            if !o.disk.accepted() {
                ost_lease.hold();
            }
            let ost = service::ServedOst {
                store: o.store.clone(),
                lease: ost_lease,
                instance: o.instance,
                reserve: o.reserve.clone(),
            };
            (o.index, ost)
        })
        .collect();
    // In the configured order, as before.
    let linked = osts
        .iter()
        .map(|o| mgs_link::LinkedOst {
            index: o.index,
            store: served[&o.index].store.clone(),
            lease: served[&o.index].lease.clone(),
            disk: o.disk.clone(),
            reserve: o.reserve.clone(),
        })
        .collect();
    let oss = Arc::new(service::Oss::new(served));
    if *shutdown.borrow() {
        return;
    }
    let link_cfg = mgs_link::LinkConfig {
        mgs_addr: cfg.mgs_addr.clone(),
        advertise_addr: cfg.advertise_addr.clone(),
        cluster: cfg.cluster.clone(),
        key: cfg.key.clone(),
    };
    let link = tokio::spawn(mgs_link::run(link_cfg, linked, shutdown.clone()));
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        advertise = %cfg.advertise_addr,
        osts = ?osts.iter().map(|o| o.index).collect::<Vec<_>>(),
        "OSS serving"
    );
    serve(listener, oss, cfg.cluster, cfg.key, shutdown).await;
    link.abort();
    let _ = link.await;
}
