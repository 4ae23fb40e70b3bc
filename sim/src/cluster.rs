//! The simulated cluster: one host per server process, each running the real server code
//! (the same `run` functions as `rustre mgs|mds|oss`) on a simulated listener. A crashed
//! host loses everything in its memory; on restart its software starts from the beginning
//! over what survives: the metadata store (in memory here, outside every host, as
//! FoundationDB is outside the MDS) and what each OST made durable. Every OST is a
//! [`MemStore`], also outside the hosts, served through `oss::run_on_stores`; a crash of an
//! OSS host is a power cut ([`Cluster::crash`]): its store keeps only what was synced.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustre_proto::auth::ClusterKey;
use rustre_proto::msg::mgs::LayoutDefaults;
use rustre_server::meta::{Kv, StoreConfig};
use rustre_server::oss::{MemStore, ObjectStore};
use rustre_server::{mds, mgs, oss};
use tokio::sync::watch;

use crate::simnet;

pub const MGS: &str = "mgs";
pub const MDS: &str = "mds";
pub const CLIENT: &str = "client";
/// The OSS hosts; OSS `i` serves OST `i`.
pub const OSS: [&str; 3] = ["oss0", "oss1", "oss2"];
pub const MGS_PORT: u16 = 9400;
pub const MDS_PORT: u16 = 9500;
pub const OSS_PORT: u16 = 9600;
pub const CLUSTER_NAME: &str = "simfs";
/// Every file: 2 stripes of 64 KiB, 2 copies of each (so a copy of every file is on each
/// OSS that is down, and one OSS can die without any stripe losing its last copy).
pub const LAYOUT: LayoutDefaults = LayoutDefaults {
    stripe_size: 64 << 10,
    stripe_count: 2,
    replicas: 2,
};
/// Client sessions lapse this long after their last renewal.
pub const SESSION_LEASE: Duration = Duration::from_secs(15);
/// What each simulated OST holds at most (it reports this capacity in its heartbeats).
pub const OST_BYTES: u64 = 1 << 40;

/// What the client and the checker need to know about the cluster.
#[derive(Clone)]
pub struct Cluster {
    pub key: ClusterKey,
    /// The OSTs' stores, by OST index: they outlive the OSS hosts.
    pub stores: Vec<Arc<MemStore>>,
}

impl Cluster {
    /// Adds the server hosts to `sim`, each OST on a new [`MemStore`].
    pub fn start(sim: &mut turmoil::Sim<'_>) -> Cluster {
        let key = ClusterKey::from_secret(b"simulated cluster secret, 32+ bytes long")
            .expect("a valid secret");
        let store = Kv::open_memory();

        let mgs_cfg = mgs::MgsConfig {
            store: StoreConfig::Embedded(PathBuf::from("(in memory)")),
            legacy_registry_dir: None,
            cluster: CLUSTER_NAME.into(),
            key: key.clone(),
            defaults: LAYOUT,
        };
        let kv = store.clone();
        sim.host(MGS, move || {
            let (cfg, kv) = (mgs_cfg.clone(), kv.clone());
            async move {
                let listener = simnet::listen(MGS_PORT).await?;
                let (_keep, shutdown) = watch::channel(false);
                mgs::run_over(cfg, kv, listener, shutdown).await?;
                Ok(())
            }
        });

        let mds_cfg = mds::MdsConfig {
            mgs_addr: format!("{MGS}:{MGS_PORT}"),
            advertise_addr: format!("{MDS}:{MDS_PORT}"),
            cluster: CLUSTER_NAME.into(),
            key: key.clone(),
            durable: true,
            session_lease_ms: SESSION_LEASE.as_millis() as u64,
            inline_max: rustre_server::mds::DEFAULT_INLINE_MAX,
            access: Default::default(),
            dir_caps: true,
        };
        let kv = store.clone();
        sim.host(MDS, move || {
            let (cfg, kv) = (mds_cfg.clone(), kv.clone());
            async move {
                let listener = simnet::listen(MDS_PORT).await?;
                let (_keep, shutdown) = watch::channel(false);
                mds::run(cfg, kv, listener, shutdown).await?;
                Ok(())
            }
        });

        let mut stores = Vec::new();
        for (index, host) in OSS.iter().enumerate() {
            let store = Arc::new(MemStore::new(OST_BYTES));
            stores.push(store.clone());
            let cfg = oss::OssConfig {
                mgs_addr: format!("{MGS}:{MGS_PORT}"),
                advertise_addr: format!("{host}:{OSS_PORT}"),
                cluster: CLUSTER_NAME.into(),
                key: key.clone(),
                osts: vec![(index as u32, PathBuf::from("(in memory)"))],
            };
            sim.host(*host, move || {
                let cfg = cfg.clone();
                let store: Arc<dyn ObjectStore> = store.clone();
                async move {
                    let listener = simnet::listen(OSS_PORT).await?;
                    let (_keep, shutdown) = watch::channel(false);
                    oss::run_on_stores(cfg, vec![store], listener, shutdown).await?;
                    Ok(())
                }
            });
        }
        Cluster { key, stores }
    }

    /// Fills the OST of OSS `host`: its capacity becomes what it holds.
    pub fn fill(&self, host: &str) {
        let store = &self.stores[oss_index(host)];
        let c = store.capacity().expect("a simulated store's capacity");
        store.set_capacity(c.total_bytes - c.free_bytes);
    }

    /// Gives the OST of OSS `host` its whole capacity back.
    pub fn make_room(&self, host: &str) {
        self.stores[oss_index(host)].set_capacity(OST_BYTES);
    }

    /// Crashes `host`: its software stops and its memory is lost; an OSS also loses power,
    /// so its OST keeps only what it made durable.
    pub fn crash(&self, sim: &mut turmoil::Sim<'_>, host: &str) {
        sim.crash(host);
        if OSS.contains(&host) {
            self.stores[oss_index(host)].crash();
        }
    }
}

/// The OST index of OSS `host`.
fn oss_index(host: &str) -> usize {
    OSS.iter()
        .position(|h| *h == host)
        .unwrap_or_else(|| panic!("{host} is no OSS"))
}
