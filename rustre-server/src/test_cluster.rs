//! Test servers of this crate's unit tests: the cluster secret they share and an MGS to
//! register with. Like `local`, it composes roles, so role tests use it instead of each
//! other.

use std::path::Path;

use rustre_proto::auth::ClusterKey;
use rustre_proto::msg::mgs::LayoutDefaults;
use rustre_proto::Error;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::meta::StoreConfig;
use crate::mgs::{self, embedded_store_dir, MgsConfig};

/// The cluster secret of every test server and client of this crate.
pub(crate) fn test_key() -> ClusterKey {
    static KEY: std::sync::OnceLock<ClusterKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| ClusterKey::generate().unwrap()).clone()
}

pub(crate) struct TestMgs {
    pub(crate) addr: String,
    stop: watch::Sender<bool>,
    pub(crate) task: JoinHandle<Result<(), Error>>,
}

impl TestMgs {
    pub(crate) async fn stop(self) -> Result<(), Error> {
        self.stop.send_replace(true);
        self.task.await.expect("MGS task panicked")
    }
}

pub(crate) fn mgs_config(dir: &Path, cluster: &str) -> MgsConfig {
    MgsConfig {
        store: StoreConfig::Embedded(embedded_store_dir(dir)),
        legacy_registry_dir: None,
        cluster: cluster.to_string(),
        key: test_key(),
        defaults: LayoutDefaults {
            stripe_size: 256 << 10,
            stripe_count: 2,
            replicas: 1,
        },
    }
}

/// Starts an MGS of cluster `cluster` on `listener`.
pub(crate) fn start_mgs_on(listener: TcpListener, dir: &Path, cluster: &str) -> TestMgs {
    start_mgs_with(listener, mgs_config(dir, cluster))
}

/// Starts an MGS configured by `cfg` on `listener`.
pub(crate) fn start_mgs_with(listener: TcpListener, cfg: MgsConfig) -> TestMgs {
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, rx) = watch::channel(false);
    let task = tokio::spawn(mgs::run(cfg, listener, rx));
    TestMgs { addr, stop, task }
}
