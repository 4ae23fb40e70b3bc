//! A whole single-node cluster in one process: MGS, one or more MDS (sharing one metadata
//! store) and one OSS serving N OSTs, every role on its own loopback TCP port exactly as in a
//! multi-process cluster. Metadata lives in embedded stores under the data directory, or in
//! one shared store (FoundationDB) given in [`LocalConfig::store`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use rustre_proto::auth::ClusterKey;
use rustre_proto::msg::mgs::LayoutDefaults;
use rustre_proto::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::mds::{self, MdsConfig};
use crate::meta::StoreConfig;
use crate::mgs::{self, MgsConfig};
use crate::oss::{self, OssConfig};
use crate::records::RecordError;

/// How `rustre local` runs.
#[derive(Debug, Clone)]
pub struct LocalConfig {
    /// Everything lives under this directory: `mgs/`, `mds/`, `ost0/`, `ost1/`, ...
    pub data_dir: PathBuf,
    pub osts: u32,
    /// MDS instances, all sharing one store (stateless MDS, as over FDB).
    pub mds: u32,
    /// Where the MGS and the MDS keep their metadata. `None`: embedded stores under
    /// `data_dir` (`mgs/meta` for the MGS, `mds/meta` shared by every MDS). `Some`: one
    /// shared store for the MGS and every MDS, which must allow several openers
    /// ([`StoreConfig::is_shared`], i.e. FoundationDB).
    pub store: Option<StoreConfig>,
    /// Where the MGS listens (clients need only this address).
    pub mgs_listen: SocketAddr,
    pub cluster: String,
    /// The cluster secret: every role serves only peers that prove they hold it, and uses it
    /// to reach the others (`rustre local` keeps it in `DATA/cluster.secret` by default).
    pub key: ClusterKey,
    pub defaults: LayoutDefaults,
    pub durable: bool,
    /// Lease of client sessions (opens of a vanished client are dropped after it).
    pub session_lease_ms: u64,
    /// Most bytes of a file the MDS keeps in its store (data on the MDS); 0: none.
    pub inline_max: u32,
}

/// Addresses of a running local cluster.
#[derive(Debug, Clone)]
pub struct LocalCluster {
    pub mgs_addr: SocketAddr,
    pub mds_addrs: Vec<SocketAddr>,
    pub oss_addr: SocketAddr,
    /// One switch per MDS: sending `true` stops that MDS at once (its connections drop,
    /// calls in flight are lost), as if its process died. Dropping a switch does not stop it.
    pub mds_kill: Vec<watch::Sender<bool>>,
}

/// Starts every role; they run until `shutdown` turns true.
pub async fn start(
    cfg: LocalConfig,
    shutdown: watch::Receiver<bool>,
) -> Result<LocalCluster, Error> {
    if cfg.osts == 0 {
        return Err(Error::Invalid("a cluster needs at least one OST".into()));
    }
    if let Some(store) = cfg.store.as_ref().filter(|s| !s.is_shared()) {
        return Err(Error::Invalid(format!(
            "{store} cannot be shared by the MGS and the MDS; leave the store unset for \
             embedded stores under the data directory"
        )));
    }
    let (mgs_listener, mgs_addr) = listen(cfg.mgs_listen).await?;
    let host = loopback_for(mgs_addr);
    let (oss_listener, oss_addr) = listen((host, 0)).await?;

    let mgs_dir = cfg.data_dir.join("mgs");
    let mgs_cfg = MgsConfig {
        store: match &cfg.store {
            Some(shared) => shared.clone(),
            None => StoreConfig::Embedded(mgs::embedded_store_dir(&mgs_dir)),
        },
        // Only the embedded layout can hold a registry file of earlier versions.
        legacy_registry_dir: cfg.store.is_none().then(|| mgs_dir.clone()),
        cluster: cfg.cluster.clone(),
        key: cfg.key.clone(),
        defaults: cfg.defaults,
    };
    create_dir(&mgs_dir)?;
    let sd = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = mgs::run(mgs_cfg, mgs_listener, sd).await {
            tracing::error!("MGS stopped: {e}");
        }
    });

    let osts = (0..cfg.osts)
        .map(|i| (i, cfg.data_dir.join(format!("ost{i}"))))
        .collect::<Vec<_>>();
    for (_, dir) in &osts {
        create_dir(dir)?;
    }
    let oss_cfg = OssConfig {
        mgs_addr: mgs_addr.to_string(),
        advertise_addr: oss_addr.to_string(),
        cluster: cfg.cluster.clone(),
        key: cfg.key.clone(),
        osts,
    };
    let sd = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = oss::run(oss_cfg, oss_listener, sd).await {
            tracing::error!("OSS stopped: {e}");
        }
    });

    let mds_store = match &cfg.store {
        Some(shared) => shared.clone(),
        None => StoreConfig::Embedded(mds::embedded_store_dir(&cfg.data_dir.join("mds"))),
    };
    let kv = rustre_proto::blocking::unblock(move || mds_store.open())
        .await
        .map_err(|e| Error::Io(format!("opening the MDS store: {e}")))??;
    let mut mds_addrs = Vec::new();
    let mut mds_kill = Vec::new();
    for _ in 0..cfg.mds.max(1) {
        let (listener, addr) = listen((host, 0)).await?;
        let mds_cfg = MdsConfig {
            mgs_addr: mgs_addr.to_string(),
            advertise_addr: addr.to_string(),
            cluster: cfg.cluster.clone(),
            key: cfg.key.clone(),
            durable: cfg.durable,
            session_lease_ms: cfg.session_lease_ms,
            inline_max: cfg.inline_max,
            access: Default::default(),
            // Capabilities live in one MDS's memory: none when several share the store.
            dir_caps: cfg.mds.max(1) == 1,
        };
        // Each MDS stops on the cluster's shutdown or on its own kill switch. A switch that is
        // dropped unused (the caller let go of the `LocalCluster`) kills nothing: that branch
        // is disabled when `changed` fails.
        let (kill, mut killed) = watch::channel(false);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut all = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = all.changed() => {}
                Ok(()) = killed.changed() => {}
            }
            let _ = stop_tx.send(true);
        });
        let kv = kv.clone();
        tokio::spawn(async move {
            if let Err(e) = mds::run(mds_cfg, kv, listener, stop_rx).await {
                tracing::error!("MDS stopped: {e}");
            }
        });
        mds_addrs.push(addr);
        mds_kill.push(kill);
    }
    Ok(LocalCluster {
        mgs_addr,
        mds_addrs,
        oss_addr,
        mds_kill,
    })
}

/// Binds a listener on `addr`; returns it with the address it got (the port, when `addr`
/// asked for any). A failure names the address: the port is taken, or not ours to bind.
async fn listen(addr: impl Into<SocketAddr>) -> Result<(TcpListener, SocketAddr), Error> {
    let addr = addr.into();
    let fail = |e: std::io::Error| Error::Io(format!("cannot listen on {addr}: {e}"));
    let listener = TcpListener::bind(addr).await.map_err(fail)?;
    let bound = listener.local_addr().map_err(fail)?;
    Ok((listener, bound))
}

/// Creates a role's data directory (and its parents); a failure names the directory.
fn create_dir(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| RecordError::io(dir, e).into())
}

/// The address the other roles bind: the MGS's own IP, or 127.0.0.1 if it listens on all.
fn loopback_for(mgs: SocketAddr) -> std::net::IpAddr {
    if mgs.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        mgs.ip()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_port_that_is_taken_is_named_in_the_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = listen(addr).await.unwrap_err();
        assert!(
            matches!(&err, Error::Io(m) if m.contains(&addr.to_string())),
            "{err:?}"
        );
    }

    #[test]
    fn a_data_directory_that_cannot_be_made_is_named_in_the_error() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        std::fs::write(&file, b"").unwrap();
        let dir = file.join("ost0");
        let err = create_dir(&dir).unwrap_err();
        assert!(
            matches!(&err, Error::Io(m) if m.contains(&dir.display().to_string())),
            "{err:?}"
        );
    }
}
