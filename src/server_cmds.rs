//! Commands that run server roles in the foreground until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use rustre_fuse::mount::InProcessMount;
use rustre_proto::msg::mgs::LayoutDefaults;
use rustre_server::{local, mds, meta::Kv, mgs, oss};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::client_cmds::Global;

/// Options of `rustre local`.
#[derive(Args, Debug)]
pub struct LocalArgs {
    /// Directory holding every role's data.
    #[arg(long)]
    data: PathBuf,
    /// Number of OSTs.
    #[arg(long, default_value_t = 2)]
    osts: u32,
    /// Number of MDS instances (stateless, sharing the embedded store).
    #[arg(long, default_value_t = 1)]
    mds: u32,
    /// MGS address.
    #[arg(long, default_value = "127.0.0.1:9400")]
    listen: SocketAddr,
    /// Acknowledge metadata before its fsync (see `rustre mds --relaxed`).
    #[arg(long)]
    relaxed: bool,
    /// Also mount the cluster here, served by this process.
    #[arg(long, value_name = "MNT")]
    mount: Option<PathBuf>,
    /// Options of that mount (as `rustre mount -o`).
    #[arg(long = "mount-options", value_name = "OPTS", requires = "mount")]
    mount_options: Vec<String>,
}

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

pub async fn mgs(g: &Global, listen: &str, data: PathBuf) -> Result<(), String> {
    std::fs::create_dir_all(&data).map_err(|e| format!("{}: {e}", data.display()))?;
    let l = bind(listen).await?;
    let cfg = mgs::MgsConfig {
        data_dir: data,
        cluster: g.cluster.clone(),
        defaults: LayoutDefaults::default(),
    };
    mgs::run(cfg, l, shutdown_on_signal())
        .await
        .map_err(|e| e.to_string())
}

pub async fn mds(
    g: &Global,
    listen: &str,
    adv: Option<String>,
    data: PathBuf,
    durable: bool,
) -> Result<(), String> {
    let l = bind(listen).await?;
    let advertise_addr = advertise(adv, l.local_addr().map_err(|e| e.to_string())?)?;
    let dir = mds::embedded_store_dir(&data);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let kv = Kv::open_embedded(&dir).map_err(|e| e.to_string())?;
    let cfg = mds::MdsConfig {
        mgs_addr: g.mgs.clone(),
        advertise_addr,
        cluster: g.cluster.clone(),
        durable,
        session_lease_ms: mds::SESSION_LEASE_MS,
    };
    mds::run(cfg, kv, l, shutdown_on_signal())
        .await
        .map_err(|e| e.to_string())
}

pub async fn oss(
    g: &Global,
    listen: &str,
    adv: Option<String>,
    indexes: Vec<u32>,
    dirs: Vec<PathBuf>,
) -> Result<(), String> {
    if indexes.len() != dirs.len() {
        return Err(format!(
            "{} --index but {} --data: give them in pairs",
            indexes.len(),
            dirs.len()
        ));
    }
    for d in &dirs {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let l = bind(listen).await?;
    let advertise_addr = advertise(adv, l.local_addr().map_err(|e| e.to_string())?)?;
    let cfg = oss::OssConfig {
        mgs_addr: g.mgs.clone(),
        advertise_addr,
        cluster: g.cluster.clone(),
        osts: indexes.into_iter().zip(dirs).collect(),
    };
    oss::run(cfg, l, shutdown_on_signal())
        .await
        .map_err(|e| e.to_string())
}

pub async fn local(g: &Global, args: LocalArgs) -> Result<(), String> {
    let mut shutdown = shutdown_on_signal();
    let cfg = local::LocalConfig {
        data_dir: args.data,
        osts: args.osts,
        mds: args.mds,
        mgs_listen: args.listen,
        cluster: g.cluster.clone(),
        defaults: LayoutDefaults::default(),
        durable: !args.relaxed,
        session_lease_ms: mds::SESSION_LEASE_MS,
    };
    let running = local::start(cfg, shutdown.clone())
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "rustre local cluster {:?} up: MGS {}, MDS {:?}, OSS {} ({} OSTs)",
        g.cluster, running.mgs_addr, running.mds_addrs, running.oss_addr, args.osts
    );
    let mounted = match &args.mount {
        Some(mnt) => {
            let mut opts = vec![format!("cluster={}", g.cluster)];
            opts.extend(args.mount_options.iter().cloned());
            let m = InProcessMount::start(&running.mgs_addr.to_string(), mnt, &opts).await?;
            eprintln!("mounted on {}", m.mountpoint().display());
            Some(m)
        }
        None => None,
    };
    let _ = shutdown.changed().await;
    if let Some(m) = mounted {
        m.stop().await?;
    }
    Ok(())
}
