//! `rustre`: the one binary — server roles, the all-in-one local cluster, admin and client
//! commands. This file only parses the command line and dispatches; the work lives in the
//! library crates.

mod client_cmds;
mod config;
mod gen_docs;
mod migrate_cmds;
mod progress;
mod quota_cmds;
mod rebalance_cmd;
mod repair_cmds;
mod roles;
mod server_cmds;
mod top;
mod tree_cmds;

use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use config::{pick, Config};
use rustre_server::mds;

/// mimalloc instead of glibc's malloc: a metadata call allocates and frees many small
/// buffers (frames, keys, the store's entries), and glibc's allocator took a quarter of
/// the MDS's CPU in them. With mimalloc an unlink costs the MDS ~12 % less CPU
/// (docs/benchmarks.md, 2026-12-06).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Configuration file holding any of these flags for every role (docs/operations.md,
    /// "The configuration file"); flags and environment variables override it
    /// [default: /etc/rustre/rustre.toml when it exists].
    #[arg(long, global = true, env = "RUSTRE_CONFIG", value_name = "PATH")]
    config: Option<PathBuf>,
    /// File holding the admin secret (mode 0600; make one with `rustre gen-secret PATH`).
    /// Commands prove it to act as the administrator (fsck, evacuate, ost replace, migrate,
    /// quota set; never root-squashed); an MDS given it refuses administrators' operations to connections
    /// that do not prove it (an MGS given it, `ost replace`). Keep it on admin hosts, the MDS
    /// and the MGS only.
    #[arg(
        long,
        global = true,
        env = "RUSTRE_ADMIN_SECRET_FILE",
        value_name = "PATH"
    )]
    admin_secret_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the management server (registry, heartbeats, cluster map).
    Mgs {
        /// Address to listen on [default: 0.0.0.0:9400].
        #[arg(long)]
        listen: Option<String>,
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
        /// The configuration file's table to read, `[mds.NAME]` (what the unit
        /// rustre-mds@NAME.service passes) [default: the only one].
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
        /// Address clients use to reach this server (default: the listen address).
        #[arg(long)]
        advertise: Option<String>,
        /// Directory for the embedded metadata store (not with --fdb-cluster-file).
        #[arg(long)]
        data: Option<PathBuf>,
        #[command(flatten)]
        fdb: server_cmds::FdbArgs,
        /// Acknowledge namespace changes before their fsync, the default: on disk at the
        /// next client fsync or within 1 s (a power loss may lose that last second; a
        /// process crash loses nothing). Overrides `relaxed = false` in the file.
        #[arg(long)]
        relaxed: bool,
        /// Acknowledge namespace and attribute changes only once on disk (one group-commit
        /// fsync each, shared by concurrent callers); as `relaxed = false` in the file.
        #[arg(long, conflicts_with = "relaxed")]
        durable: bool,
        /// Seconds a client session lives without renewal: a client silent that long (crashed,
        /// cut off, stopped) is evicted: its opens are dropped, replicated files it had open
        /// for writing are resynced, and its open files fail with EIO until closed.
        /// [default: 30]
        #[arg(long, value_parser = clap::value_parser!(u64)
                  .range(mds::MIN_SESSION_LEASE_SECS..=mds::MAX_SESSION_LEASE_SECS))]
        session_lease: Option<u64>,
        /// Most bytes of a file the MDS keeps in its store at the file's close instead of its
        /// objects (data on the MDS, docs/data-on-mds.md): a small file written once then
        /// costs one MDS call to write and one to read. 0 turns it off. [default: 65536,
        /// at most 65536]
        #[arg(long, value_parser = clap::value_parser!(u32)
                  .range(0..=rustre_proto::msg::mds::INLINE_MAX_BYTES as i64))]
        inline_max: Option<u32>,
        /// Root squash: calls from clients as uid 0 run as UID (and gid 0 as GID; default
        /// GID = UID), unless the client proved the admin secret (--admin-secret-file) or
        /// its address is given with --root-squash-exempt. Off unless given; 65534:65534 is
        /// nobody:nogroup.
        #[arg(long, value_name = "UID[:GID]", value_parser = mds::access::parse_squash)]
        root_squash: Option<mds::access::Squash>,
        /// A client address whose root is never squashed (a trusted admin host); repeat for
        /// several. Needs root squash on (here, or `root_squash` in the config file).
        #[arg(long, value_name = "IP")]
        root_squash_exempt: Vec<std::net::IpAddr>,
        #[command(flatten)]
        metrics: server_cmds::MetricsArgs,
    },
    /// Run an object storage server for one or more OSTs (repeat --index/--data in pairs).
    Oss {
        /// The configuration file's table to read, `[oss.NAME]` (what the unit
        /// rustre-oss@NAME.service passes) [default: the only one].
        #[arg(long, value_name = "NAME")]
        instance: Option<String>,
        /// Address to listen on.
        #[arg(long)]
        listen: Option<String>,
        /// Address clients use to reach this server (default: the listen address).
        #[arg(long)]
        advertise: Option<String>,
        /// OST index; repeat for several OSTs (replaces the configuration file's list).
        #[arg(long = "index")]
        indexes: Vec<u32>,
        /// OST directory, one per --index, in the same order.
        #[arg(long = "data")]
        dirs: Vec<PathBuf>,
        #[command(flatten)]
        metrics: server_cmds::MetricsArgs,
    },
    /// Mount rustre with FUSE (what `mount -t fuse.rustre` runs as `mount.fuse.rustre`).
    Mount {
        /// MGS address, HOST:PORT [default: the configuration's mount.source, else
        /// mgs_address].
        source: Option<String>,
        /// Directory to mount on [default: the configuration's mount.mountpoint].
        mountpoint: Option<PathBuf>,
        /// Mount options, comma-separated (allow_other, ro, default_permissions,
        /// attr_timeout=S, entry_timeout=S, cache_size=BYTES, cluster=NAME,
        /// secret_file=PATH, admin_secret_file=PATH, log=PATH, metrics=HOST:PORT, debug), after
        /// the configuration's mount.options.
        #[arg(short = 'o')]
        options: Vec<String>,
        /// Stay in the foreground.
        #[arg(short = 'f')]
        foreground: bool,
    },
    /// Run a whole single-node cluster (MGS + MDS + N OSTs) in one process.
    Local(server_cmds::LocalArgs),
    /// Create a new cluster secret file (mode 0600), or an admin secret file.
    ///
    /// Writes it at PATH, else at --secret-file or its default; copy it to every node and
    /// client of the cluster. Never replaces a file. An admin secret is made the same way
    /// (`rustre gen-secret /etc/rustre/admin.secret`) and copied to the MDS, the MGS and
    /// admin hosts only (--admin-secret-file).
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
    /// Move files (directories: every file under them) to a new layout online: restripe,
    /// add or drop copies, move to other OSTs. Readers and writers of the files go on; a
    /// file's inode, times and xattrs stay. An administrator's command.
    Migrate(migrate_cmds::MigrateArgs),
    /// Move every file's copy off an OST gone for good (resync fills the new copies).
    Evacuate {
        /// OST index.
        ost: u32,
    },
    /// Move objects from the fullest OSTs to the emptiest (after OSTs were added) until
    /// every OST's usage is within the threshold of the mean, online, file by file. Needs
    /// the admin credential. Interrupted, it is finished by running it again.
    Rebalance {
        /// Percentage points of capacity an OST's usage may be from the mean.
        #[arg(long, value_name = "PCT", default_value_t = 100.0 * rustre_fuse::client::admin::REBALANCE_THRESHOLD_DEFAULT)]
        threshold: f64,
        /// Most data copied per second, in MB/s (1 MB = 1,000,000 bytes); unthrottled
        /// without it.
        #[arg(long, value_name = "MB/s")]
        max_rate: Option<f64>,
    },
    /// List entries under a path that pass every test given, walking the namespace at the
    /// MDS (no mount needed): GNU find's -name, -type, -size, -mtime, -maxdepth, -mindepth
    /// and -print0 (one dash or two), and rustre's --stripe-count, --replica-count, --ost,
    /// --stale. Directories are listed several at a time, a page of entries with their
    /// attributes per round trip, so the order differs from find's (pipe through sort).
    Find(tree_cmds::FindArgs),
    /// Sum the space used under each path, walking the namespace at the MDS (no mount
    /// needed), as GNU du: allocated blocks in 1K units (what a mount's stat reports), or
    /// sizes with --apparent-size or -b; -s for the totals only, -h for 4.0K-style sizes.
    Du(tree_cmds::DuArgs),
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
    /// The configuration file.
    Config {
        #[command(subcommand)]
        cmd: ConfigCmd,
    },
    /// Write the man pages and shell completions into DIR (for packaging).
    #[command(hide = true)]
    GenDocs {
        /// Output directory (man/ and completions/ are made under it).
        dir: PathBuf,
    },
    /// Project quotas on directory trees (bytes and inodes).
    Quota {
        #[command(subcommand)]
        cmd: quota_cmds::QuotaCmd,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCmd {
    /// Check a configuration file: TOML syntax, unknown keys, addresses, OST lists.
    Check {
        /// The file [default: --config, else /etc/rustre/rustre.toml].
        path: Option<PathBuf>,
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

pub(crate) fn parse_size(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    u32::try_from(n * mult).map_err(|_| format!("{s:?} is too large"))
}

/// What servers log unless `RUST_LOG` says otherwise: rustre's own events from info up,
/// other crates' (the embedded store's) warnings only.
const SERVER_LOG_FILTER: &str =
    "warn,rustre=info,rustre_server=info,rustre_proto=info,rustre_fuse=info";

fn main() {
    // Linked as mount.fuse.rustre, the binary is mount(8)'s helper; mounting forks, so it
    // runs before any runtime thread exists. The configuration file's [mount] table (and
    // its cluster and secret_file) come before the fstab line's options.
    if rustre_fuse::mount::invoked_as_helper() {
        let given = std::env::var_os("RUSTRE_CONFIG").map(PathBuf::from);
        let defaults = match Config::find(given.as_deref()) {
            Ok((cfg, _)) => roles::mount_defaults(&cfg, None, None),
            Err(e) => {
                eprintln!("mount.fuse.rustre: {e}");
                std::process::exit(1);
            }
        };
        std::process::exit(rustre_fuse::mount::helper_main_with(&defaults));
    }
    let matches =
        Cli::command().get_matches_from(tree_cmds::gnu_find_args(std::env::args_os().collect()));
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // `rustre config check` reports a bad file itself; everything else starts with it read.
    let cfg = match &cli.cmd {
        Cmd::Config { .. } | Cmd::GenDocs { .. } => Config::default(),
        _ => match Config::find(cli.config.as_deref()) {
            Ok((c, _)) => c,
            Err(e) => {
                eprintln!("rustre: configuration: {e}");
                std::process::exit(2);
            }
        },
    };
    apply_common(&mut cli, &matches, &cfg);
    if let Cmd::Mount {
        source,
        mountpoint,
        options,
        foreground,
    } = &cli.cmd
    {
        // `--admin-secret-file` (or its variable) as the option, which `-o` may override.
        let options: Vec<String> = cli
            .admin_secret_file
            .iter()
            .map(|p| format!("admin_secret_file={}", p.display()))
            .chain(options.iter().cloned())
            .collect();
        std::process::exit(
            match roles::mount_args(&cli, &cfg, source, mountpoint, &options, *foreground) {
                Ok(args) => rustre_fuse::mount::run(args),
                Err(e) => {
                    eprintln!("rustre mount: {e}");
                    2
                }
            },
        );
    }
    // Servers log what an operator needs (registrations, take-overs, evictions, resyncs) at
    // info, to stderr, where systemd's journal takes it; client commands only warnings.
    let server = matches!(
        cli.cmd,
        Cmd::Mgs { .. } | Cmd::Mds { .. } | Cmd::Oss { .. } | Cmd::Local(_)
    );
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(if server { SERVER_LOG_FILTER } else { "warn" })
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = rt.block_on(run(cli, cfg));
    if let Err(e) = result {
        eprintln!("rustre: {e}");
        std::process::exit(1);
    }
}

/// The common settings from the configuration file where neither a flag nor an
/// environment variable gave them.
fn apply_common(cli: &mut Cli, matches: &ArgMatches, cfg: &Config) {
    let defaulted = |id: &str| {
        let sub = matches.subcommand().map(|(_, m)| m);
        [Some(matches), sub]
            .into_iter()
            .flatten()
            .all(|m| matches!(m.value_source(id), None | Some(ValueSource::DefaultValue)))
    };
    if let Some(m) = cfg.mgs_address.as_ref().filter(|_| defaulted("mgs")) {
        cli.mgs = m.clone();
    }
    if let Some(c) = cfg.cluster.as_ref().filter(|_| defaulted("cluster")) {
        cli.cluster = c.clone();
    }
    cli.secret_file = pick(cli.secret_file.take(), cfg.secret_file.clone());
    cli.admin_secret_file = pick(cli.admin_secret_file.take(), cfg.admin_secret_file.clone());
}

async fn run(cli: Cli, cfg: Config) -> Result<(), String> {
    let g = client_cmds::Global {
        mgs: cli.mgs,
        cluster: cli.cluster,
        secret_file: cli.secret_file,
        admin_secret_file: cli.admin_secret_file,
    };
    match cli.cmd {
        Cmd::Mgs {
            listen,
            data,
            fdb,
            metrics,
        } => {
            let s = cfg.mgs.clone().unwrap_or_default();
            let fdb = fdb.or_file(s.fdb_cluster_file.clone(), s.fdb_prefix.clone());
            let metrics = metrics.or_file(s.metrics_listen.clone());
            let listen = pick(listen, s.listen).unwrap_or(rustre_proto::DEFAULT_MGS_LISTEN.into());
            server_cmds::mgs(&g, &listen, pick(data, s.data), fdb, metrics).await
        }
        Cmd::Mds {
            instance,
            listen,
            advertise,
            data,
            fdb,
            relaxed,
            durable,
            session_lease,
            inline_max,
            root_squash,
            root_squash_exempt,
            metrics,
        } => {
            let s = cfg.mds_section(instance.as_deref())?;
            let fdb = fdb.or_file(s.fdb_cluster_file.clone(), s.fdb_prefix.clone());
            let metrics = metrics.or_file(s.metrics_listen.clone());
            let listen = pick(listen, s.listen).ok_or(roles::NO_LISTEN)?;
            let durable = roles::durable_mds(durable, relaxed, s.relaxed);
            let lease = pick(session_lease, s.session_lease);
            let lease_ms = roles::session_lease_ms(lease)?;
            let (adv, data) = (pick(advertise, s.advertise), pick(data, s.data));
            let root_squash = match (root_squash, &s.root_squash) {
                (Some(q), _) => Some(q),
                (None, Some(text)) => Some(mds::access::parse_squash(text)?),
                (None, None) => None,
            };
            let squash_exempt = if root_squash_exempt.is_empty() {
                s.root_squash_exempt.clone()
            } else {
                root_squash_exempt
            };
            if root_squash.is_none() && !squash_exempt.is_empty() {
                return Err("--root-squash-exempt (or root_squash_exempt) needs root squash:                             --root-squash UID[:GID], or root_squash in the [mds] table"
                    .into());
            }
            let inline_max = roles::inline_max(pick(inline_max, s.inline_max))?;
            let tuning = server_cmds::MdsTuning {
                durable,
                inline_max,
                session_lease_ms: lease_ms,
                access: mds::access::AccessPolicy {
                    root_squash,
                    squash_exempt,
                },
            };
            server_cmds::mds(&g, &listen, adv, data, fdb, tuning, metrics).await
        }
        Cmd::Oss {
            instance,
            listen,
            advertise,
            indexes,
            dirs,
            metrics,
        } => {
            let s = cfg.oss_section(instance.as_deref())?;
            let metrics = metrics.or_file(s.metrics_listen.clone());
            let listen = pick(listen, s.listen).ok_or(roles::NO_LISTEN)?;
            let (indexes, dirs) = roles::osts(indexes, dirs, &s.osts)?;
            let adv = pick(advertise, s.advertise);
            server_cmds::oss(&g, &listen, adv, indexes, dirs, metrics).await
        }
        Cmd::Mount { .. } => unreachable!("mount runs before the runtime starts"),
        Cmd::Local(args) => {
            let s = cfg.local.clone().unwrap_or_default();
            server_cmds::local(&g, args.with_file(&s)?).await
        }
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
        Cmd::Rebalance {
            threshold,
            max_rate,
        } => rebalance_cmd::rebalance(&g, threshold, max_rate).await,
        Cmd::Migrate(args) => migrate_cmds::migrate(&g, args).await,
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
        Cmd::Config {
            cmd: ConfigCmd::Check { path },
        } => roles::config_check(path.or(cli.config)),
        Cmd::GenDocs { dir } => gen_docs::write_all(Cli::command(), &dir),
        Cmd::Find(args) => tree_cmds::find(&g, args).await,
        Cmd::Du(args) => tree_cmds::du(&g, args).await,
        Cmd::Quota { cmd } => quota_cmds::run(&g, cmd).await,
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
