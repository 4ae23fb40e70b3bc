//! Commands that run server roles in the foreground until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use rustre_fuse::mount::InProcessMount;
use rustre_proto::auth::ClusterKey;
use rustre_proto::msg::mgs::LayoutDefaults;
use rustre_server::meta::{self, StoreConfig};
use rustre_server::{local, mds, mgs, oss};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::client_cmds::Global;

/// Options of `rustre local` (each may come from the configuration's `[local]` table).
#[derive(Args, Debug)]
pub(crate) struct LocalArgs {
    /// Directory holding every role's data.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Number of OSTs [default: 2].
    #[arg(long)]
    osts: Option<u32>,
    /// Number of MDS instances (stateless, sharing the embedded store) [default: 1].
    #[arg(long)]
    mds: Option<u32>,
    /// MGS address [default: 127.0.0.1:9400].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Acknowledge namespace changes before their fsync (the default); on disk at the next
    /// client fsync or within 1 s (see `rustre mds --relaxed`, docs/operations.md).
    /// Overrides `relaxed = false` in the file.
    #[arg(long)]
    relaxed: bool,
    /// Acknowledge namespace and attribute changes only once on disk (`rustre mds
    /// --durable`); as `relaxed = false` in the file.
    #[arg(long, conflicts_with = "relaxed")]
    durable: bool,
    /// Most bytes of a file the MDS keeps in its store (`rustre mds --inline-max`; 0: off)
    /// [default: 65536].
    #[arg(long, value_parser = clap::value_parser!(u32)
              .range(0..=rustre_proto::msg::mds::INLINE_MAX_BYTES as i64))]
    inline_max: Option<u32>,
    /// Also mount the cluster here, served by this process.
    #[arg(long, value_name = "MNT")]
    mount: Option<PathBuf>,
    /// Options of that mount (as `rustre mount -o`; added to the configuration's).
    #[arg(long = "mount-options", value_name = "OPTS")]
    mount_options: Vec<String>,
    #[command(flatten)]
    metrics: MetricsArgs,
}

/// Where a server serves its Prometheus metrics (every role; off by default).
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct MetricsArgs {
    /// Serve Prometheus metrics at http://ADDR/metrics (HOST:PORT; port 0 picks one, printed
    /// on stderr). `rustre local` serves every role, and its mount, on one address.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<String>,
}

impl MetricsArgs {
    /// The flag, else the configuration file's `metrics_listen` (docs/operations.md, "The
    /// configuration file").
    pub(crate) fn or_file(self, file: Option<String>) -> MetricsArgs {
        MetricsArgs {
            metrics_listen: self.metrics_listen.or(file),
        }
    }

    /// The address metrics are served at, if any.
    #[cfg(test)]
    pub(crate) fn listen(&self) -> Option<&str> {
        self.metrics_listen.as_deref()
    }

    /// Turns the server metrics on (and the client's too, with `client`) and serves them
    /// until `shutdown` turns true; nothing without --metrics-listen.
    async fn serve(&self, client: bool, shutdown: watch::Receiver<bool>) -> Result<(), String> {
        let Some(addr) = &self.metrics_listen else {
            return Ok(());
        };
        let mut registry = prometheus_client::registry::Registry::default();
        rustre_server::metrics::enable(&mut registry);
        if client {
            rustre_fuse::client::metrics::enable(&mut registry);
        }
        let bound = rustre_proto::metrics::http::listen(addr, registry, shutdown)
            .await
            .map_err(|e| format!("--metrics-listen: {e}"))?;
        eprintln!("metrics at http://{bound}/metrics");
        Ok(())
    }
}

/// `rustre local`'s settings, flags over the configuration file over the defaults.
#[derive(Debug)]
pub(crate) struct LocalRun {
    data: PathBuf,
    osts: u32,
    mds: u32,
    listen: SocketAddr,
    /// Acknowledge namespace changes only once on disk.
    durable: bool,
    /// Most bytes of a file the MDS keeps in its store.
    inline_max: u32,
    mount: Option<PathBuf>,
    mount_options: Vec<String>,
    metrics: MetricsArgs,
}

/// OSTs of `rustre local` when neither flag nor file says.
const LOCAL_DEFAULT_OSTS: u32 = 2;
/// MDS instances of `rustre local` when neither flag nor file says.
const LOCAL_DEFAULT_MDS: u32 = 1;

impl LocalArgs {
    /// These flags over the configuration's `[local]` table.
    pub(crate) fn with_file(self, s: &crate::config::LocalSection) -> Result<LocalRun, String> {
        let listen = match (self.listen, &s.listen) {
            (Some(l), _) => l,
            (None, Some(l)) => l
                .parse()
                .map_err(|e| format!("local.listen = {l:?}: {e}"))?,
            (None, None) => rustre_proto::DEFAULT_MGS_ADDR
                .parse()
                .expect("a socket address"),
        };
        let mount = self.mount.or(s.mount.clone());
        let mut mount_options = s.mount_options.clone();
        mount_options.extend(self.mount_options);
        if mount.is_none() && !mount_options.is_empty() {
            return Err("--mount-options needs --mount (or local.mount)".into());
        }
        Ok(LocalRun {
            data: self
                .data
                .or(s.data.clone())
                .ok_or("give --data DIR (or data in the configuration's [local])")?,
            osts: self.osts.or(s.osts).unwrap_or(LOCAL_DEFAULT_OSTS),
            mds: self.mds.or(s.mds).unwrap_or(LOCAL_DEFAULT_MDS),
            listen,
            durable: crate::roles::durable_mds(self.durable, self.relaxed, s.relaxed),
            inline_max: crate::roles::inline_max(self.inline_max.or(s.inline_max))?,
            mount,
            mount_options,
            metrics: self.metrics.or_file(s.metrics_listen.clone()),
        })
    }
}

/// Options that put a role's metadata in FoundationDB (`rustre mgs`, `rustre mds`). They exist
/// in every build; one built without the cargo feature `fdb` refuses them with a message.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct FdbArgs {
    /// Keep the metadata in FoundationDB, through this cluster file, instead of under --data
    /// (needs rustre built with `--features fdb`).
    #[arg(long, value_name = "PATH")]
    fdb_cluster_file: Option<PathBuf>,
    /// Prefix of every key in FoundationDB; MGS and MDS of one cluster use the same one
    /// [default: rustre/<cluster name>/].
    #[arg(long, value_name = "PREFIX", requires = "fdb_cluster_file")]
    fdb_prefix: Option<String>,
}

impl FdbArgs {
    /// These flags, each missing one taken from the configuration file.
    pub(crate) fn or_file(self, cluster_file: Option<PathBuf>, prefix: Option<String>) -> FdbArgs {
        FdbArgs {
            fdb_cluster_file: self.fdb_cluster_file.or(cluster_file),
            fdb_prefix: self.fdb_prefix.or(prefix),
        }
    }

    /// The FoundationDB store these options name; `None` without --fdb-cluster-file.
    fn store(&self, cluster: &str) -> Result<Option<StoreConfig>, String> {
        let Some(file) = &self.fdb_cluster_file else {
            return Ok(None);
        };
        let prefix = match &self.fdb_prefix {
            Some(p) => p.as_bytes().to_vec(),
            None => meta::default_fdb_prefix(cluster),
        };
        StoreConfig::fdb(file, &prefix)
            .map(Some)
            .map_err(|e| format!("--fdb-cluster-file: {e}"))
    }
}

/// The error when neither --data nor --fdb-cluster-file says where metadata goes.
const NO_STORE: &str = "give --data DIR (or --fdb-cluster-file PATH for FoundationDB)";
/// The error when an MDS is given both.
const MDS_TWO_STORES: &str =
    "--data and --fdb-cluster-file exclude each other: an MDS keeps its metadata in one store";

/// A watch channel that turns true on SIGINT or SIGTERM.
fn shutdown_on_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        let _ = tx.send(true);
    });
    rx
}

async fn bind(listen: &str) -> Result<TcpListener, String> {
    TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))
}

/// The address to advertise: the given one, else the bound address if it is specific.
fn advertise(given: Option<String>, bound: SocketAddr) -> Result<String, String> {
    match given {
        Some(a) => Ok(a),
        None if bound.ip().is_unspecified() => Err(format!(
            "listening on {bound}: pass --advertise HOST:PORT so clients know where to connect"
        )),
        None => Ok(bound.to_string()),
    }
}

pub(crate) async fn mgs(
    g: &Global,
    listen: &str,
    data: Option<PathBuf>,
    fdb: FdbArgs,
    metrics: MetricsArgs,
) -> Result<(), String> {
    // With FoundationDB, --data is optional: it only offers an old registry file to import.
    let store = match (fdb.store(&g.cluster)?, &data) {
        (Some(store), _) => store,
        (None, Some(d)) => StoreConfig::Embedded(mgs::embedded_store_dir(d)),
        (None, None) => return Err(NO_STORE.into()),
    };
    let key = g.key()?;
    if let Some(d) = &data {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let l = bind(listen).await?;
    let cfg = mgs::MgsConfig {
        store,
        legacy_registry_dir: data,
        cluster: g.cluster.clone(),
        key,
        defaults: LayoutDefaults::default(),
    };
    let shutdown = shutdown_on_signal();
    metrics.serve(false, shutdown.clone()).await?;
    mgs::run(cfg, l, shutdown).await.map_err(|e| e.to_string())
}

/// How an MDS runs beyond where it listens and keeps its store.
pub(crate) struct MdsTuning {
    /// Acknowledge only what is on disk (not `--relaxed`).
    pub durable: bool,
    pub session_lease_ms: u64,
    /// Root squash and its exemptions.
    pub access: mds::access::AccessPolicy,
    /// Most bytes of a file kept on the MDS (`--inline-max`).
    pub inline_max: u32,
}

pub(crate) async fn mds(
    g: &Global,
    listen: &str,
    adv: Option<String>,
    data: Option<PathBuf>,
    fdb: FdbArgs,
    tuning: MdsTuning,
    metrics: MetricsArgs,
) -> Result<(), String> {
    let MdsTuning {
        durable,
        session_lease_ms,
        access,
        inline_max,
    } = tuning;
    let store = match (fdb.store(&g.cluster)?, data) {
        (Some(_), Some(_)) => return Err(MDS_TWO_STORES.into()),
        (Some(store), None) => store,
        (None, Some(d)) => StoreConfig::Embedded(mds::embedded_store_dir(&d)),
        (None, None) => return Err(NO_STORE.into()),
    };
    let key = g.key()?;
    let l = bind(listen).await?;
    let advertise_addr = advertise(adv, l.local_addr().map_err(|e| e.to_string())?)?;
    let kv = store.open().map_err(|e| format!("{store}: {e}"))?;
    let cfg = mds::MdsConfig {
        mgs_addr: g.mgs.clone(),
        advertise_addr,
        cluster: g.cluster.clone(),
        key,
        durable,
        session_lease_ms,
        access,
        inline_max,
        // An embedded store is this process's alone; over FoundationDB `mds::run` grants
        // none (other MDS serve the same namespace).
        dir_caps: true,
    };
    let shutdown = shutdown_on_signal();
    metrics.serve(false, shutdown.clone()).await?;
    mds::run(cfg, kv, l, shutdown)
        .await
        .map_err(|e| e.to_string())
}

pub(crate) async fn oss(
    g: &Global,
    listen: &str,
    adv: Option<String>,
    indexes: Vec<u32>,
    dirs: Vec<PathBuf>,
    metrics: MetricsArgs,
) -> Result<(), String> {
    if indexes.len() != dirs.len() {
        return Err(format!(
            "{} --index but {} --data: give them in pairs",
            indexes.len(),
            dirs.len()
        ));
    }
    let key = g.key()?;
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let l = bind(listen).await?;
    let advertise_addr = advertise(adv, l.local_addr().map_err(|e| e.to_string())?)?;
    let cfg = oss::OssConfig {
        mgs_addr: g.mgs.clone(),
        advertise_addr,
        cluster: g.cluster.clone(),
        key,
        osts: indexes.into_iter().zip(dirs).collect(),
    };
    let shutdown = shutdown_on_signal();
    metrics.serve(false, shutdown.clone()).await?;
    oss::run(cfg, l, shutdown).await.map_err(|e| e.to_string())
}

/// Where `rustre local` keeps the cluster secret unless told otherwise.
pub(crate) const LOCAL_SECRET_FILE: &str = "cluster.secret";

pub(crate) async fn local(g: &Global, args: LocalRun) -> Result<(), String> {
    // The secret: --secret-file (or RUSTRE_SECRET_FILE), else DATA/cluster.secret; created
    // when missing, so a first `rustre local` needs no preparation.
    let secret_file = g
        .secret_file
        .clone()
        .unwrap_or_else(|| args.data.join(LOCAL_SECRET_FILE));
    let (key, created) = ClusterKey::load_or_create(&secret_file).map_err(|e| e.to_string())?;
    if created {
        eprintln!(
            "created the cluster secret {} (mode 0600): clients need it (--secret-file, \
             RUSTRE_SECRET_FILE or the mount option secret_file=)",
            secret_file.display()
        );
    }
    let mut signal = shutdown_on_signal();
    // The servers stop only after the mount is gone, so its last calls still get answers.
    let (stop_servers, shutdown) = watch::channel(false);
    args.metrics
        .serve(args.mount.is_some(), shutdown.clone())
        .await?;
    let cfg = local::LocalConfig {
        data_dir: args.data,
        osts: args.osts,
        mds: args.mds,
        store: None,
        mgs_listen: args.listen,
        cluster: g.cluster.clone(),
        key: key.clone(),
        defaults: LayoutDefaults::default(),
        durable: args.durable,
        session_lease_ms: mds::SESSION_LEASE_MS,
        inline_max: args.inline_max,
    };
    let running = local::start(cfg, shutdown.clone())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "rustre local cluster {:?} up: MGS {}, MDS {:?}, OSS {} ({} OSTs), secret {}",
        g.cluster,
        running.mgs_addr,
        running.mds_addrs,
        running.oss_addr,
        args.osts,
        secret_file.display()
    );
    let mounted = match &args.mount {
        Some(mnt) => {
            let mut opts = vec![format!("cluster={}", g.cluster)];
            opts.extend(args.mount_options.iter().cloned());
            let mgs = running.mgs_addr.to_string();
            let m = InProcessMount::start(&mgs, mnt, &opts, args.osts as usize, &key).await?;
            eprintln!("mounted on {}", m.mountpoint().display());
            Some(m)
        }
        None => None,
    };
    let _ = signal.changed().await;
    let stopped = match mounted {
        Some(m) => m.stop().await,
        None => Ok(()),
    };
    let _ = stop_servers.send(true);
    stopped
}

/// `rustre gen-secret [PATH]`: a new secret file, never replacing one.
pub(crate) fn gen_secret(g: &Global, path: Option<PathBuf>) -> Result<(), String> {
    let path = path.unwrap_or_else(|| g.secret_path());
    ClusterKey::create(&path).map_err(|e| e.to_string())?;
    println!(
        "wrote a new cluster secret to {} (mode 0600); copy it, with that mode, to every node \
         and client of the cluster",
        path.display()
    );
    Ok(())
}
