//! Mounting rustre: mount options, the mount(8) helper convention, going to the background.
//!
//! `mount -t fuse.rustre mgs-host:9400 /mnt/rustre -o OPTS` (or an /etc/fstab line) runs
//! `mount.fuse.rustre mgs-host:9400 /mnt/rustre -o OPTS` — the `rustre` binary under that
//! name (install with `ln -sf $(which rustre) /sbin/mount.fuse.rustre`). `rustre mount`
//! takes the same arguments. The mount:
//!
//! 1. checks the arguments and options (an unknown option is an error);
//! 2. forks; the parent waits on a pipe and exits 0 only once the child reports the mount up,
//!    otherwise it prints the child's one-line error and exits 1 (mount(8) waits for it);
//!    The cluster secret is read from `secret_file=` (default: `RUSTRE_SECRET_FILE`, else
//!    `/etc/rustre/cluster.secret`) before anything else happens;
//! 3. the child connects to the MGS (bounded by `CONNECT_TIMEOUT`), mounts with type
//!    `fuse.rustre` and the MGS address as source, completes the FUSE handshake, raises the
//!    mount's read-ahead to `READ_AHEAD_KB`, sets the client's atime mode from the mount's
//!    flags (and follows them), reports success, detaches from the terminal and serves until
//!    the file system is unmounted; then it ends its MDS session and exits.
//!
//! Nothing is left mounted when a step fails. With `-f` (or `-o debug`) it stays in the
//! foreground. SIGINT/SIGTERM detach the mount, which ends the daemon the same way.
//!
//! `-o remount,...` (what `mount -o remount,ro /mnt/rustre` runs) starts no daemon: it
//! changes the kernel flags of the mount in place, and the daemon, which keeps atime
//! itself, learns them from /proc/self/mountinfo (`mountinfo.rs`).
//!
//! ## Layout
//!
//! One file per job. Every file may read the names and limits defined in `mod.rs`; imports
//! between the files run one way only, as listed:
//! - `mod.rs`: the names and limits (constants), the helper's entry points
//!   ([`invoked_as_helper`], [`helper_main`]), [`connect`] and `serve_metrics` (shared by
//!   both kinds of mount)
//!   and the re-exports.
//! - `options.rs`: [`MountOptions`] and [`MountArgs`], the `-o` parsing and the helper's
//!   argument convention. Imports no sibling.
//! - `mountinfo.rs`: a mount's entry in /proc/self/mountinfo ([`mount_device`], its flags)
//!   and the thread that keeps the client's atime mode in step with them. Imports `options`.
//! - `syscall.rs`: mount(2)/fusermount3 and the FUSE handshake ([`mount`]), read-ahead,
//!   the remount, [`lazy_unmount`]. Imports `options` and `mountinfo`.
//! - `daemon.rs`: [`run`]: fork, the status pipe to the waiting parent, the daemon's serving
//!   loop, detaching stdio, logging. Imports `options`, `syscall`, `log` and `connect`.
//! - `log.rs`: where the daemon's log lines go (standard error, `log=PATH`, syslog, the
//!   fallback file). Imports no sibling.
//! - `in_process.rs`: [`InProcessMount`], served by a thread of the caller. Imports
//!   `options`, `syscall` and `connect`.
//! - `tests.rs`: unit tests.

mod daemon;
mod in_process;
mod log;
mod mountinfo;
mod options;
mod syscall;
#[cfg(test)]
mod tests;

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustre_proto::auth::ClusterKey;

use crate::client::{Client, ClientConfig};

pub use daemon::run;
pub use in_process::InProcessMount;
pub use log::FALLBACK_LOG_FILE;
pub use mountinfo::mount_device;
pub use options::{MountArgs, MountFlags, MountOptions};
pub use syscall::{lazy_unmount, mount};

/// The helper's name: mount(8) runs `mount.fuse.rustre` for `-t fuse.rustre`.
const HELPER_NAME: &str = "mount.fuse.rustre";
/// The file-system type the kernel shows.
const FS_TYPE: &str = "fuse.rustre";
/// The FUSE subtype (what follows "fuse.").
const SUBTYPE: &str = "rustre";
/// Cluster name used when `cluster=` is not given.
const DEFAULT_CLUSTER: &str = rustre_proto::DEFAULT_CLUSTER_NAME;
/// Longest wait for the MGS and the first MDS session before the mount fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often `rustre local --mount` looks for its OSTs before mounting.
const OST_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for ending the MDS session at unmount.
const SESSION_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-ahead of the mount, in KiB (the default stripe size); the kernel's FUSE default is
/// 128 KiB, which would split buffered reads into 128 KiB requests.
const READ_AHEAD_KB: u32 = 1024;
/// Worker threads of the mount daemon's runtime when the mount does not say (`threads=`).
const DEFAULT_CLIENT_THREADS: usize = 2;
/// Most worker threads `threads=` accepts.
const MAX_CLIENT_THREADS: usize = 64;
/// Longest attr_timeout/entry_timeout accepted, in seconds.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// Longest error message the mounting child passes to the waiting parent.
const STATUS_MESSAGE_MAX_BYTES: u64 = 4096;

/// True when this process runs under the helper's name.
pub fn invoked_as_helper() -> bool {
    std::env::args_os()
        .next()
        .map(PathBuf::from)
        .and_then(|p| {
            p.file_name()
                .map(|n| n.as_bytes() == HELPER_NAME.as_bytes())
        })
        .unwrap_or(false)
}

/// The helper's `main`: parses mount(8)'s arguments, mounts, returns the exit code.
pub fn helper_main() -> i32 {
    helper_main_with(&[])
}

/// [`helper_main`], with `defaults` (`-o` strings, e.g. from a configuration file) applied
/// before the options mount(8) passes.
pub fn helper_main_with(defaults: &[String]) -> i32 {
    let mut args: Vec<OsString> = Vec::new();
    for d in defaults {
        args.push("-o".into());
        args.push(d.into());
    }
    args.extend(std::env::args_os().skip(1));
    match MountArgs::from_helper_args(&args) {
        Ok(a) => run(a),
        Err(e) => {
            eprintln!("{HELPER_NAME}: {e}");
            1
        }
    }
}

/// Serves this process's client metrics at `addr` (`-o metrics=`) until the returned sender
/// is dropped or sent `true`; returns the bound address too.
pub(crate) async fn serve_metrics(
    addr: &str,
) -> Result<(std::net::SocketAddr, tokio::sync::watch::Sender<bool>), String> {
    let mut registry = prometheus_client::registry::Registry::default();
    crate::client::metrics::enable(&mut registry);
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let bound = rustre_proto::metrics::http::listen(addr, registry, shutdown)
        .await
        .map_err(|e| e.to_string())?;
    Ok((bound, stop))
}

/// Connects to the cluster with `key`, bounded by `CONNECT_TIMEOUT`, and starts the
/// periodic size reports of a mount.
pub async fn connect(mgs: &str, cluster: &str, key: &ClusterKey) -> Result<Arc<Client>, String> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let cfg = ClientConfig {
        mgs_addr: mgs.to_string(),
        cluster: cluster.to_string(),
        client_name: format!("fuse-{}-{}", host.trim(), std::process::id()),
        key: key.clone(),
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, Client::connect(&cfg)).await {
        Ok(Ok(c)) => {
            c.start_size_reports();
            Ok(c)
        }
        Ok(Err(e)) => Err(format!("cannot reach the cluster at {mgs}: {e}")),
        Err(_) => Err(format!(
            "cannot reach the cluster at {mgs}: no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}
