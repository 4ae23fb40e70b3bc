//! `rustre`: the one binary — server roles, the all-in-one local cluster, admin and client
//! commands. This file only parses the command line and dispatches; the work lives in the
//! library crates.

mod client_cmds;
mod repair_cmds;
mod server_cmds;
mod top;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use rustre_server::mds;

/// rustre: a parallel, distributed POSIX file system.
#[derive(Parser, Debug)]
#[command(name = "rustre", version, about, long_about = None)]
struct Cli {
    /// MGS address (host:port) for client and admin commands.
    #[arg(
        long,
        global = true,
        env = "RUSTRE_MGS",
        default_value = rustre_proto::DEFAULT_MGS_ADDR
    )]
    mgs: String,
    /// Cluster name every connection must agree on.
    #[arg(long, global = true, env = "RUSTRE_CLUSTER", default_value = rustre_proto::DEFAULT_CLUSTER_NAME)]
    cluster: String,
    /// File holding the cluster secret every connection proves (mode 0600)
    /// [default: /etc/rustre/cluster.secret; for `local`: DATA/cluster.secret, created if
    /// missing].
    #[arg(long, global = true, env = "RUSTRE_SECRET_FILE", value_name = "PATH")]
    secret_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the management server (registry, heartbeats, cluster map).
    Mgs {
        /// Address to listen on.
        #[arg(long, default_value = rustre_proto::DEFAULT_MGS_LISTEN)]
        listen: String,
        /// Directory for the MGS's state (its embedded store). With --fdb-cluster-file it is
        /// optional: a registry file an earlier rustre left there is imported once.
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        fdb: server_cmds::FdbArgs,
        #[command(flatten)]
        metrics: server_cmds::MetricsArgs,
    },
    /// Run a metadata server (namespace in the embedded on-disk store, or FoundationDB).
    Mds {
        /// Address to listen on.
        #[arg(long)]
        listen: String,
        /// Address clients use to reach this server (default: the listen address).
        #[arg(long)]
        advertise: Option<String>,
        /// Directory for the embedded metadata store (not with --fdb-cluster-file).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        fdb: server_cmds::FdbArgs,
        /// Acknowledge before the group commit's fsync (a power loss may lose the last
        /// moments; a process crash loses nothing).
        #[arg(long)]
        relaxed: bool,
        /// Seconds a client session lives without renewal: a client silent that long (crashed,
        /// cut off, stopped) is evicted: its opens are dropped, replicated files it had open
        /// for writing are resynced, and its open files fail with EIO until closed.
        #[arg(long, default_value_t = mds::SESSION_LEASE_MS / 1000,
              value_parser = clap::value_parser!(u64)
                  .range(mds::MIN_SESSION_LEASE_SECS..=mds::MAX_SESSION_LEASE_SECS))]
        session_lease: u64,
        #[command(flatten)]
        metrics: server_cmds::MetricsArgs,
    },
    /// Run an object storage server for one or more OSTs (repeat --index/--data in pairs).
    Oss {
        /// Address to listen on.
        #[arg(long)]
        listen: String,
        /// Address clients use to reach this server (default: the listen address).
        #[arg(long)]
        advertise: Option<String>,
        /// OST index; repeat for several OSTs.
        #[arg(long = "index", required = true)]
        indexes: Vec<u32>,
        /// OST directory, one per --index, in the same order.
        #[arg(long = "data", required = true)]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        metrics: server_cmds::MetricsArgs,
    },
    /// Mount rustre with FUSE (what `mount -t fuse.rustre` runs as `mount.fuse.rustre`).
    Mount {
        /// MGS address, HOST:PORT.
        source: String,
        /// Directory to mount on.
        mountpoint: PathBuf,
        /// Mount options, comma-separated (allow_other, ro, default_permissions,
        /// attr_timeout=S, entry_timeout=S, cache_size=BYTES, cluster=NAME,
        /// secret_file=PATH, metrics=HOST:PORT, debug).
        #[arg(short = 'o')]
        options: Vec<String>,
        /// Stay in the foreground.
        #[arg(short = 'f')]
        foreground: bool,
    },
    /// Run a whole single-node cluster (MGS + MDS + N OSTs) in one process.
    Local(server_cmds::LocalArgs),
    /// Create a new cluster secret file (mode 0600).
    ///
    /// Writes it at PATH, else at --secret-file or its default; copy it to every node and
    /// client of the cluster. Never replaces a file.
    GenSecret {
        /// Where to write it.
        path: Option<PathBuf>,
    },
    /// Show every node: up or down, capacity, usage.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show capacity and usage of the file system and of each OST.
    Df {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy a local file into rustre.
    Put {
        local: PathBuf,
        path: String,
        #[command(flatten)]
        stripe: StripeArgs,
    },
    /// Copy a file out of rustre.
    Get { path: String, local: PathBuf },
    /// List a directory (or show one entry).
    Ls { path: String },
    /// Show an entry's attributes and layout.
    Stat {
        path: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Create a directory.
    Mkdir {
        path: String,
        /// Create missing parents too.
        #[arg(short, long)]
        parents: bool,
    },
    /// Remove a file or an empty directory.
    Rm { path: String },
    /// Set a directory's default layout, or create an empty file with a layout.
    Setstripe {
        path: String,
        #[command(flatten)]
        stripe: StripeArgs,
    },
    /// Show a file's layout or a directory's default layout.
    Getstripe {
        path: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check the metadata (link counts, entries naming missing inodes, inodes no entry
    /// names, the stale index) and the namespace against the objects on every OST that is
    /// up: orphan objects, objects longer than their file, missing data, copies that differ.
    /// Safe on a live cluster; exact on a quiet one (data still in clients' write-back caches
    /// is not on the OSTs yet).
    Fsck {
        /// Fix link counts, remove dangling entries, link unreachable inodes into
        /// /lost+found, fix the stale index, delete orphans, truncate overlong objects (not
        /// of files open for writing or changed within the grace period), mark differing
        /// copies stale for resync.
        #[arg(long)]
        repair: bool,
        /// Seconds a file must have been unchanged (mtime and ctime) before its overlong
        /// objects are truncated.
        #[arg(long, value_name = "SECS", default_value_t = rustre_fuse::client::admin::FSCK_GRACE.as_secs())]
        grace: u64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check every block of every object of an OST against its stored checksum.
    Scrub {
        /// OST index.
        ost: u32,
        /// Mark bad copies stale so that resync rewrites them from a good copy.
        #[arg(long)]
        repair: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Move every file's copy off an OST gone for good (resync fills the new copies).
    Evacuate {
        /// OST index.
        ost: u32,
    },
    /// Watch operations and bytes per second of every node and OST, read from their
    /// metrics endpoints (servers' --metrics-listen, mounts' -o metrics=), refreshed every
    /// second.
    Top {
        /// Metrics endpoints, http://HOST:PORT (or HOST:PORT).
        endpoints: Vec<String>,
        /// Print one frame (rates over one interval) and exit.
        #[arg(long, conflicts_with = "iterations")]
        once: bool,
        /// Print this many frames and exit.
        #[arg(long, value_name = "N")]
        iterations: Option<u64>,
        /// Seconds between frames.
        #[arg(long, value_name = "SECS", default_value_t = 1.0)]
        interval: f64,
    },
    /// OST administration.
    Ost {
        #[command(subcommand)]
        cmd: OstCmd,
    },
}

#[derive(Subcommand, Debug)]
enum OstCmd {
    /// Accept a new disk for an OST whose disk was wiped or replaced.
    ///
    /// The MGS refuses the new disk until then. Marks every copy the OST held stale (resync
    /// refills those with another copy), lists the files whose only copy was there (they
    /// read EIO), then lets the new disk register. The OST must be down.
    Replace {
        /// OST index.
        index: u32,
    },
}

/// Layout options.
#[derive(Args, Debug, Clone, Default)]
struct StripeArgs {
    /// Number of OSTs to stripe over (-1: all).
    #[arg(short = 'c', long, allow_hyphen_values = true)]
    stripe_count: Option<i64>,
    /// Bytes per stripe (suffixes K, M allowed).
    #[arg(short = 'S', long, value_parser = parse_size)]
    stripe_size: Option<u32>,
    /// Explicit OST indices, comma-separated.
    #[arg(short = 'o', long = "ost", value_delimiter = ',')]
    osts: Option<Vec<u32>>,
    /// Copies of every stripe, each on its own OST (1..=8).
    #[arg(short = 'r', long)]
    replicas: Option<u32>,
}

fn parse_size(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    u32::try_from(n * mult).map_err(|_| format!("{s:?} is too large"))
}

fn main() {
    // Linked as mount.fuse.rustre, the binary is mount(8)'s helper; mounting forks, so it
    // runs before any runtime thread exists.
    if rustre_fuse::mount::invoked_as_helper() {
        std::process::exit(rustre_fuse::mount::helper_main());
    }
    let cli = Cli::parse();
    if let Cmd::Mount {
        source,
        mountpoint,
        options,
        foreground,
    } = &cli.cmd
    {
        let cluster = Some(cli.cluster.as_str());
        std::process::exit(
            match rustre_fuse::mount::MountArgs::new(
                source,
                mountpoint,
                options,
                *foreground,
                cluster,
                cli.secret_file.as_deref(),
            ) {
                Ok(args) => rustre_fuse::mount::run(args),
                Err(e) => {
                    eprintln!("rustre mount: {e}");
                    2
                }
            },
        );
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(run(cli));
    if let Err(e) = result {
        eprintln!("rustre: {e}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    let g = client_cmds::Global {
        mgs: cli.mgs,
        cluster: cli.cluster,
        secret_file: cli.secret_file,
    };
    match cli.cmd {
        Cmd::Mgs {
            listen,
            data,
            fdb,
            metrics,
        } => server_cmds::mgs(&g, &listen, data, fdb, metrics).await,
        Cmd::Mds {
            listen,
            advertise,
            data,
            fdb,
            relaxed,
            session_lease,
            metrics,
        } => {
            let lease_ms = session_lease * 1000;
            let store = (data, fdb);
            server_cmds::mds(&g, &listen, advertise, store, !relaxed, lease_ms, metrics).await
        }
        Cmd::Oss {
            listen,
            advertise,
            indexes,
            dirs,
            metrics,
        } => server_cmds::oss(&g, &listen, advertise, indexes, dirs, metrics).await,
        Cmd::Mount { .. } => unreachable!("mount runs before the runtime starts"),
        Cmd::Local(args) => server_cmds::local(&g, args).await,
        Cmd::GenSecret { path } => server_cmds::gen_secret(&g, path),
        Cmd::Status { json } => client_cmds::status(&g, json).await,
        Cmd::Df { json } => client_cmds::df(&g, json).await,
        Cmd::Put {
            local,
            path,
            stripe,
        } => client_cmds::put(&g, &local, &path, stripe.spec()?).await,
        Cmd::Get { path, local } => client_cmds::get(&g, &path, &local).await,
        Cmd::Ls { path } => client_cmds::ls(&g, &path).await,
        Cmd::Stat { path, json } => client_cmds::stat(&g, &path, json).await,
        Cmd::Mkdir { path, parents } => client_cmds::mkdir(&g, &path, parents).await,
        Cmd::Rm { path } => client_cmds::rm(&g, &path).await,
        Cmd::Setstripe { path, stripe } => client_cmds::setstripe(&g, &path, stripe.spec()?).await,
        Cmd::Getstripe { path, json } => client_cmds::getstripe(&g, &path, json).await,
        Cmd::Fsck {
            repair,
            grace,
            json,
        } => repair_cmds::fsck(&g, repair, std::time::Duration::from_secs(grace), json).await,
        Cmd::Scrub { ost, repair, json } => repair_cmds::scrub(&g, ost, repair, json).await,
        Cmd::Evacuate { ost } => repair_cmds::evacuate(&g, ost).await,
        Cmd::Top {
            endpoints,
            once,
            iterations,
            interval,
        } => {
            let iterations = if once { Some(1) } else { iterations };
            top::top(top::TopArgs {
                endpoints,
                interval,
                iterations,
            })
            .await
        }
        Cmd::Ost {
            cmd: OstCmd::Replace { index },
        } => repair_cmds::ost_replace(&g, index).await,
    }
}

impl StripeArgs {
    /// The layout request these options describe (`None` when none was given).
    fn spec(&self) -> Result<Option<rustre_proto::msg::LayoutSpec>, String> {
        if self.stripe_count.is_none()
            && self.stripe_size.is_none()
            && self.osts.is_none()
            && self.replicas.is_none()
        {
            return Ok(None);
        }
        let stripe_count = match self.stripe_count {
            None => None,
            Some(-1) => Some(u32::MAX),
            Some(n) if n >= 1 && n <= rustre_proto::msg::MAX_STRIPE_COUNT as i64 => Some(n as u32),
            Some(n) => return Err(format!("stripe count {n} must be -1 or 1..=256")),
        };
        Ok(Some(rustre_proto::msg::LayoutSpec {
            stripe_size: self.stripe_size,
            stripe_count,
            osts: self.osts.clone(),
            replicas: match self.replicas {
                None => None,
                Some(n) if (1..=rustre_proto::msg::MAX_REPLICAS).contains(&n) => Some(n),
                Some(n) => return Err(format!("replica count {n} must be 1..=8")),
            },
        }))
    }
}
