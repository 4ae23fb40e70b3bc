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
//! 3. the child connects to the MGS (bounded by [`CONNECT_TIMEOUT`]), mounts with type
//!    `fuse.rustre` and the MGS address as source, completes the FUSE handshake, raises the
//!    mount's read-ahead to [`READ_AHEAD_KB`], reports success, detaches from the terminal
//!    and serves until the file system is unmounted; then it ends its MDS session and exits.
//!
//! Nothing is left mounted when a step fails. With `-f` (or `-o debug`) it stays in the
//! foreground. SIGINT/SIGTERM detach the mount, which ends the daemon the same way.

use std::ffi::{CString, OsString};
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fuser::{BackgroundSession, Config, MountOption, Session, SessionACL};
use rustre_proto::auth::{self, ClusterKey};
use rustre_proto::msg::mgs::NodeState;
use tokio::runtime::Handle;

use crate::client::{Client, ClientConfig};
use crate::fuse::{FuseConfig, RustreFs};

/// The helper's name: mount(8) runs `mount.fuse.rustre` for `-t fuse.rustre`.
pub const HELPER_NAME: &str = "mount.fuse.rustre";
/// The file-system type the kernel shows.
pub const FS_TYPE: &str = "fuse.rustre";
/// The FUSE subtype (what follows "fuse.").
pub const SUBTYPE: &str = "rustre";
/// Cluster name used when `cluster=` is not given.
pub const DEFAULT_CLUSTER: &str = "rustre";
/// Longest wait for the MGS and the first MDS session before the mount fails.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How often `rustre local --mount` looks for its OSTs before mounting.
const OST_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Longest wait for ending the MDS session at unmount.
pub const SESSION_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Read-ahead of the mount, in KiB (the default stripe size); the kernel's FUSE default is
/// 128 KiB, which would split buffered reads into 128 KiB requests.
pub const READ_AHEAD_KB: u32 = 1024;
/// Worker threads of the mount daemon's runtime when the mount does not say (`threads=`).
pub const DEFAULT_CLIENT_THREADS: usize = 2;
/// Most worker threads `threads=` accepts.
pub const MAX_CLIENT_THREADS: usize = 64;
/// Longest attr_timeout/entry_timeout accepted, in seconds.
pub const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// Longest error message the mounting child passes to the waiting parent.
const STATUS_MESSAGE_MAX_BYTES: u64 = 4096;

/// Options of one mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Let users other than the mounting one use the mount (`allow_other`).
    pub allow_other: bool,
    /// Mount read-only (`ro`).
    pub read_only: bool,
    /// Let the kernel check permissions from the mode bits (`default_permissions`); the MDS
    /// checks them in any case.
    pub default_permissions: bool,
    /// Cluster name the servers must agree on (`cluster=`).
    pub cluster: String,
    /// File holding the cluster secret (`secret_file=`; default `RUSTRE_SECRET_FILE`, else
    /// `/etc/rustre/cluster.secret`).
    pub secret_file: PathBuf,
    /// Log at debug level and stay in the foreground (`debug`).
    pub debug: bool,
    /// Stay in the foreground (`-f`).
    pub foreground: bool,
    /// Kernel mount flags from `noexec`, `noatime`, `suid`, `dev`, ... (MS_* bits).
    pub exec_suid_dev_atime: MountFlags,
    /// TTLs and cache size for the adapter (`attr_timeout=`, `entry_timeout=`, `cache_size=`).
    pub fuse: FuseConfig,
    /// Worker threads of the client's async runtime (`threads=`).
    pub threads: usize,
}

/// The MS_* flags the generic mount options set.
#[derive(Debug, Clone, Copy)]
pub struct MountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    pub noatime: bool,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            allow_other: false,
            read_only: false,
            default_permissions: false,
            cluster: DEFAULT_CLUSTER.to_string(),
            secret_file: auth::secret_file_or_default(None),
            debug: false,
            foreground: false,
            // nosuid and nodev by default, as every FUSE mount.
            exec_suid_dev_atime: MountFlags {
                nosuid: true,
                nodev: true,
                noexec: false,
                noatime: false,
            },
            fuse: FuseConfig::default(),
            threads: DEFAULT_CLIENT_THREADS,
        }
    }
}

fn parse_secs(key: &str, v: &str) -> Result<Duration, String> {
    match v.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.0..=MAX_TIMEOUT_SECS).contains(&s) => {
            Ok(Duration::from_secs_f64(s))
        }
        _ => Err(format!(
            "{key}={v}: expected seconds between 0 and {MAX_TIMEOUT_SECS}"
        )),
    }
}

fn parse_bytes(key: &str, v: &str) -> Result<u64, String> {
    let (num, mult) = match v.chars().last() {
        Some('k' | 'K') => (&v[..v.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&v[..v.len() - 1], 1 << 20),
        Some('g' | 'G') => (&v[..v.len() - 1], 1 << 30),
        _ => (v, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{key}={v}: expected a byte count (suffixes K, M, G)"))
}

impl MountOptions {
    /// Applies one comma-separated `-o` string.
    pub fn apply(&mut self, opts: &str) -> Result<(), String> {
        for opt in opts.split(',').filter(|o| !o.is_empty()) {
            let (key, value) = match opt.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (opt, None),
            };
            let f = &mut self.exec_suid_dev_atime;
            match (key, value) {
                ("allow_other", None) => self.allow_other = true,
                ("ro", None) => self.read_only = true,
                ("rw", None) => self.read_only = false,
                ("default_permissions", None) => self.default_permissions = true,
                ("debug", None) => {
                    self.debug = true;
                    self.foreground = true;
                }
                ("attr_timeout", Some(v)) => self.fuse.attr_ttl = parse_secs(key, v)?,
                ("entry_timeout", Some(v)) => self.fuse.entry_ttl = parse_secs(key, v)?,
                ("negative_timeout", Some(v)) => self.fuse.negative_ttl = Some(parse_secs(key, v)?),
                ("cache_size", Some(v)) => self.fuse.page_cache_bytes = parse_bytes(key, v)?,
                ("threads", Some(v)) => {
                    self.threads = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_CLIENT_THREADS).contains(n))
                        .ok_or_else(|| format!("threads={v}: expected 1 to {MAX_CLIENT_THREADS}"))?
                }
                ("cluster", Some(v)) if !v.is_empty() => self.cluster = v.to_string(),
                ("secret_file", Some(v)) if !v.is_empty() => self.secret_file = v.into(),
                ("suid", None) => f.nosuid = false,
                ("nosuid", None) => f.nosuid = true,
                ("dev", None) => f.nodev = false,
                ("nodev", None) => f.nodev = true,
                ("exec", None) => f.noexec = false,
                ("noexec", None) => f.noexec = true,
                ("atime" | "relatime", None) => f.noatime = false,
                ("noatime", None) => f.noatime = true,
                // What mount(8) and fstab pass along for every file system.
                (
                    "_netdev" | "defaults" | "auto" | "noauto" | "user" | "nouser" | "users",
                    None,
                )
                | ("nofail" | "async", None) => {}
                _ if key.starts_with("x-") => {}
                _ => return Err(format!("unknown mount option {opt:?}")),
            }
        }
        Ok(())
    }
}

/// Everything one mount needs.
#[derive(Debug, Clone)]
pub struct MountArgs {
    /// `host:port` of the MGS.
    pub source: String,
    pub mountpoint: PathBuf,
    pub options: MountOptions,
}

impl MountArgs {
    /// Arguments from their parts: `opts` are `-o` strings, applied in order (after
    /// `cluster` and `secret_file`, so the options have the last word).
    pub fn new(
        source: &str,
        mountpoint: &Path,
        opts: &[String],
        foreground: bool,
        cluster: Option<&str>,
        secret_file: Option<&Path>,
    ) -> Result<MountArgs, String> {
        let mut options = MountOptions::default();
        if let Some(c) = cluster {
            options.cluster = c.to_string();
        }
        if let Some(f) = secret_file {
            options.secret_file = f.to_path_buf();
        }
        for o in opts {
            options.apply(o)?;
        }
        options.foreground |= foreground;
        check_source(source)?;
        Ok(MountArgs {
            source: source.to_string(),
            mountpoint: mountpoint.to_path_buf(),
            options,
        })
    }

    /// The helper's arguments, as mount(8) passes them:
    /// `SOURCE MOUNTPOINT [-o OPTS] [-f] [-n] [-s] [-v] [-t TYPE]`.
    pub fn from_helper_args(args: &[OsString]) -> Result<MountArgs, String> {
        let mut positional = Vec::new();
        let mut opts = Vec::new();
        let mut foreground = false;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let s = a
                .to_str()
                .ok_or_else(|| format!("argument {a:?} is not UTF-8"))?;
            match s {
                "-o" => opts.push(
                    it.next()
                        .and_then(|o| o.to_str())
                        .ok_or("-o needs an option list")?
                        .to_string(),
                ),
                "-t" => {
                    let t = it
                        .next()
                        .and_then(|t| t.to_str())
                        .ok_or("-t needs a type")?;
                    if t != FS_TYPE && t != SUBTYPE {
                        return Err(format!("file-system type {t:?} is not {FS_TYPE}"));
                    }
                }
                "-f" => foreground = true,
                // no mtab (there is none to write), sloppy, verbose: nothing to do.
                "-n" | "-s" | "-v" => {}
                _ if s.starts_with("-o") && s.len() > 2 => opts.push(s[2..].to_string()),
                _ if s.starts_with('-') => return Err(format!("unknown argument {s:?}")),
                _ => positional.push(s.to_string()),
            }
        }
        match positional.as_slice() {
            [source, mountpoint] => {
                MountArgs::new(source, Path::new(mountpoint), &opts, foreground, None, None)
            }
            [_] => Err("missing mount point".into()),
            [] => Err("missing source (MGS host:port) and mount point".into()),
            _ => Err(format!(
                "too many arguments: {}; usage: {HELPER_NAME} MGS_HOST:PORT MOUNTPOINT [-o OPTIONS]",
                positional.join(" ")
            )),
        }
    }
}

/// `host:port` with a numeric port.
fn check_source(source: &str) -> Result<(), String> {
    match source.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(()),
        _ => Err(format!(
            "source {source:?} must be the MGS address HOST:PORT"
        )),
    }
}

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
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    match MountArgs::from_helper_args(&args) {
        Ok(a) => run(a),
        Err(e) => {
            eprintln!("{HELPER_NAME}: {e}");
            1
        }
    }
}

fn init_logging(debug: bool) {
    let filter = if debug {
        tracing_subscriber::EnvFilter::new("debug")
    } else {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Mounts and serves until unmounted; goes to the background once the mount is up unless
/// asked to stay in the foreground. Returns the exit code. Must be called before any other
/// thread exists (it forks).
pub fn run(mut args: MountArgs) -> i32 {
    init_logging(args.options.debug);
    let fail = |msg: String| {
        eprintln!("{HELPER_NAME}: {msg}");
        1
    };
    args.mountpoint = match check_mountpoint(&args.mountpoint) {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    let key = match ClusterKey::load(&args.options.secret_file) {
        Ok(k) => k,
        Err(e) => return fail(e.to_string()),
    };
    if args.options.foreground {
        return match serve(&args, &key, &mut None) {
            Ok(()) => 0,
            Err(e) => fail(e),
        };
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return fail(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors were just created and are owned here alone.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no other thread exists yet (the runtime is built in the child), so the child
    // may go on running Rust code.
    match unsafe { libc::fork() } {
        -1 => fail(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            drop(rd);
            // SAFETY: plain syscalls in the child.
            unsafe {
                libc::setsid();
            }
            let mut status = Some(std::fs::File::from(wr));
            let code = match serve(&args, &key, &mut status) {
                Ok(()) => 0,
                Err(e) => {
                    // The parent prints it (unless the mount was already reported up).
                    if let Some(mut s) = status {
                        let _ = s.write_all(format!("ERR {e}").as_bytes());
                    }
                    1
                }
            };
            std::process::exit(code);
        }
        child => {
            drop(wr);
            let mut msg = String::new();
            let _ = std::fs::File::from(rd)
                .take(STATUS_MESSAGE_MAX_BYTES)
                .read_to_string(&mut msg);
            if msg == "OK" {
                return 0;
            }
            let mut st = 0;
            // SAFETY: reaps our own child if it already exited.
            unsafe { libc::waitpid(child, &mut st, libc::WNOHANG) };
            match msg.strip_prefix("ERR ") {
                Some(e) => fail(e.to_string()),
                None => fail("the mount daemon exited before the mount was up".into()),
            }
        }
    }
}

/// The mount point, absolute, if it is an accessible directory.
fn check_mountpoint(p: &Path) -> Result<PathBuf, String> {
    let abs = std::fs::canonicalize(p).map_err(|e| format!("mount point {}: {e}", p.display()))?;
    if !abs.is_dir() {
        return Err(format!("mount point {} is not a directory", p.display()));
    }
    Ok(abs)
}

/// The daemon's life: connect, mount, report, serve, clean up. `status` is the pipe to the
/// waiting parent; it is closed (taken) once the mount is reported up.
fn serve(
    args: &MountArgs,
    key: &ClusterKey,
    status: &mut Option<std::fs::File>,
) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.options.threads)
        .enable_all()
        .thread_name("rustre-client")
        .build()
        .map_err(|e| format!("tokio runtime: {e}"))?;
    let client = rt.block_on(connect(&args.source, &args.options.cluster, key))?;
    let session = match mount(client.clone(), rt.handle().clone(), args) {
        Ok(s) => s,
        Err(e) => {
            let _ = rt.block_on(async {
                tokio::time::timeout(SESSION_CLOSE_TIMEOUT, client.close()).await
            });
            return Err(e);
        }
    };
    if let Some(mut pipe) = status.take() {
        if let Err(e) = pipe.write_all(b"OK") {
            let _ = lazy_unmount(&args.mountpoint);
            return Err(format!("report to the parent: {e}"));
        }
        drop(pipe);
        detach_stdio();
    }
    let mountpoint = args.mountpoint.clone();
    rt.spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => return,
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal: detaching {}", mountpoint.display());
        let _ = lazy_unmount(&mountpoint);
    });
    let served = session.run();
    let _ =
        rt.block_on(async { tokio::time::timeout(SESSION_CLOSE_TIMEOUT, client.close()).await });
    rt.shutdown_timeout(SESSION_CLOSE_TIMEOUT);
    served.map_err(|e| format!("FUSE session: {e}"))
}

/// Standard input, output and error to /dev/null, and out of any mount's way.
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
    let _ = std::env::set_current_dir("/");
}

/// Connects to the cluster with `key`, bounded by [`CONNECT_TIMEOUT`], and starts the
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

fn cstring(p: &Path) -> Result<CString, String> {
    CString::new(p.as_os_str().as_bytes()).map_err(|_| format!("{} contains NUL", p.display()))
}

/// Detaches the mount at `mountpoint` (MNT_DETACH): the session ends once nothing uses it.
pub fn lazy_unmount(mountpoint: &Path) -> Result<(), String> {
    let c = cstring(mountpoint)?;
    // SAFETY: a valid C string.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
        return Err(format!(
            "unmount {}: {}",
            mountpoint.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Mounts `client` at `args.mountpoint` and completes the FUSE handshake; the returned
/// session serves once run. The kernel shows type `fuse.rustre` and the MGS address as
/// source. Nothing stays mounted if this fails.
pub fn mount(
    client: Arc<Client>,
    rt: Handle,
    args: &MountArgs,
) -> Result<Session<RustreFs>, String> {
    let o = &args.options;
    let fs = RustreFs::new(client, rt, o.fuse.clone());
    let notifier = fs.notifier_slot();
    let acl = if o.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let mnt = &args.mountpoint;
    let session = match mount_syscall(&args.source, mnt, o)? {
        Some(fd) => Session::from_fd(fs, fd, acl, Config::default()).map_err(|e| {
            let _ = lazy_unmount(mnt);
            format!("FUSE handshake on {}: {e}", mnt.display())
        })?,
        None => {
            // Not allowed to call mount(2): fusermount3 mounts for unprivileged users.
            let mut cfg = Config::default();
            cfg.acl = acl;
            cfg.mount_options = fuser_options(&args.source, o);
            Session::new(fs, mnt, &cfg).map_err(|e| format!("mount {}: {e}", mnt.display()))?
        }
    };
    let _ = notifier.set(session.notifier());
    set_read_ahead(mnt);
    Ok(session)
}

/// fuser's options for the fusermount3 path.
fn fuser_options(source: &str, o: &MountOptions) -> Vec<MountOption> {
    let f = &o.exec_suid_dev_atime;
    let mut v = vec![
        MountOption::FSName(source.to_string()),
        MountOption::Subtype(SUBTYPE.to_string()),
        if o.read_only {
            MountOption::RO
        } else {
            MountOption::RW
        },
        if f.nosuid {
            MountOption::NoSuid
        } else {
            MountOption::Suid
        },
        if f.nodev {
            MountOption::NoDev
        } else {
            MountOption::Dev
        },
        if f.noexec {
            MountOption::NoExec
        } else {
            MountOption::Exec
        },
    ];
    if f.noatime {
        v.push(MountOption::NoAtime);
    }
    if o.default_permissions {
        v.push(MountOption::DefaultPermissions);
    }
    v
}

/// mount(2) with type `fuse.rustre`; `None` when the caller may not mount (EPERM).
fn mount_syscall(source: &str, mnt: &Path, o: &MountOptions) -> Result<Option<OwnedFd>, String> {
    let dev = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(d) => d,
        // An unprivileged caller: fusermount3 (setuid) opens it.
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(e) => return Err(format!("/dev/fuse: {e} (is the fuse module loaded?)")),
    };
    let fd = OwnedFd::from(dev);
    let root_mode = std::fs::metadata(mnt)
        .map_err(|e| format!("mount point {}: {e}", mnt.display()))?
        .mode()
        & libc::S_IFMT;
    // SAFETY: identity getters.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mut data = format!(
        "fd={},rootmode={root_mode:o},user_id={uid},group_id={gid}",
        fd.as_raw_fd()
    );
    if o.default_permissions {
        data.push_str(",default_permissions");
    }
    if o.allow_other {
        data.push_str(",allow_other");
    }
    let f = &o.exec_suid_dev_atime;
    let mut flags: libc::c_ulong = 0;
    for (on, bit) in [
        (o.read_only, libc::MS_RDONLY),
        (f.nosuid, libc::MS_NOSUID),
        (f.nodev, libc::MS_NODEV),
        (f.noexec, libc::MS_NOEXEC),
        (f.noatime, libc::MS_NOATIME),
    ] {
        if on {
            flags |= bit;
        }
    }
    let c_source = CString::new(source).map_err(|_| "source contains NUL".to_string())?;
    let c_mnt = cstring(mnt)?;
    let c_type = CString::new(FS_TYPE).expect("no NUL");
    let c_data = CString::new(data).expect("no NUL");
    // SAFETY: valid C strings; the kernel copies them.
    let r = unsafe {
        libc::mount(
            c_source.as_ptr(),
            c_mnt.as_ptr(),
            c_type.as_ptr(),
            flags,
            c_data.as_ptr().cast(),
        )
    };
    if r == 0 {
        return Ok(Some(fd));
    }
    let e = std::io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EPERM) {
        return Ok(None);
    }
    Err(format!("mount {}: {e}", mnt.display()))
}

/// Raises the mount's read-ahead to [`READ_AHEAD_KB`]. The device number comes from
/// /proc/self/mountinfo: a stat of the mount point would be a FUSE request nobody serves yet.
fn set_read_ahead(mnt: &Path) {
    let Some(dev) = mount_device(mnt) else {
        tracing::warn!("no mountinfo entry for {}", mnt.display());
        return;
    };
    let path = format!("/sys/class/bdi/{dev}/read_ahead_kb");
    if let Err(e) = std::fs::write(&path, READ_AHEAD_KB.to_string()) {
        tracing::warn!("{path}: {e}");
    }
}

/// "major:minor" of the newest mount at `mnt`.
pub fn mount_device(mnt: &Path) -> Option<String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = escape_mountinfo(&mnt.to_string_lossy());
    info.lines().rev().find_map(|l| {
        let mut f = l.split(' ');
        let dev = f.nth(2)?;
        let point = f.nth(1)?;
        (point == want).then(|| dev.to_string())
    })
}

/// Paths in mountinfo escape space, tab, newline and backslash as octal.
fn escape_mountinfo(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// A mount served by a thread of this process (`rustre local --mount`).
pub struct InProcessMount {
    session: BackgroundSession,
    mountpoint: PathBuf,
    client: Arc<Client>,
}

impl InProcessMount {
    /// Connects to the cluster at `mgs` with `key` (the cluster's own; a `secret_file=`
    /// option is not read), waits until `osts` OSTs are up (they register a moment after a
    /// local cluster starts) and mounts it, serving from a background thread and running calls
    /// on the current runtime.
    pub async fn start(
        mgs: &str,
        mountpoint: &Path,
        opts: &[String],
        osts: usize,
        key: &ClusterKey,
    ) -> Result<Self, String> {
        let mut args = MountArgs::new(mgs, mountpoint, opts, true, None, None)?;
        args.mountpoint = check_mountpoint(&args.mountpoint)?;
        let client = connect(mgs, &args.options.cluster, key).await?;
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            let map = client
                .cluster()
                .refresh()
                .await
                .map_err(|e| e.to_string())?;
            let up = map.osts.iter().filter(|o| o.state == NodeState::Up).count();
            if up >= osts {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("only {up} of {osts} OSTs came up"));
            }
            tokio::time::sleep(OST_POLL_INTERVAL).await;
        }
        let (c, rt) = (client.clone(), Handle::current());
        let a = args.clone();
        let session = tokio::task::spawn_blocking(move || {
            mount(c, rt, &a).and_then(|s| s.spawn().map_err(|e| format!("FUSE session: {e}")))
        })
        .await
        .map_err(|e| format!("mount task: {e}"))??;
        Ok(InProcessMount {
            session,
            mountpoint: args.mountpoint,
            client,
        })
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Detaches the mount, waits for the session to end and closes the MDS session.
    pub async fn stop(self) -> Result<(), String> {
        let detached = lazy_unmount(&self.mountpoint);
        let session = self.session;
        let joined = tokio::task::spawn_blocking(move || session.join())
            .await
            .map_err(|e| format!("session thread: {e}"))?;
        let _ = tokio::time::timeout(SESSION_CLOSE_TIMEOUT, self.client.close()).await;
        detached?;
        joined.map_err(|e| format!("FUSE session: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn helper_arguments_as_mount_passes_them() {
        let a = MountArgs::from_helper_args(&os(&[
            "10.0.0.1:9400",
            "/mnt/r",
            "-o",
            "rw,_netdev,allow_other,attr_timeout=2.5,x-systemd.automount,cache_size=64M,threads=1,negative_timeout=0",
            "-n",
        ]))
        .unwrap();
        assert_eq!(a.options.threads, 1);
        assert_eq!(a.options.fuse.negative_ttl, Some(Duration::ZERO));
        assert_eq!(a.source, "10.0.0.1:9400");
        assert!(a.options.allow_other && !a.options.read_only && !a.options.foreground);
        assert_eq!(a.options.fuse.attr_ttl, Duration::from_millis(2500));
        assert_eq!(a.options.fuse.page_cache_bytes, 64 << 20);
        let b = MountArgs::from_helper_args(&os(&[
            "h:1",
            "/m",
            "-oro,cluster=c2,debug,secret_file=/k/s",
        ]))
        .unwrap();
        assert!(b.options.read_only && b.options.debug && b.options.foreground);
        assert_eq!(b.options.cluster, "c2");
        assert_eq!(b.options.secret_file, Path::new("/k/s"));
        // `rustre mount --secret-file F -o secret_file=G`: the option wins.
        let opts = ["secret_file=/g".to_string()];
        let c = MountArgs::new(
            "h:1",
            Path::new("/m"),
            &opts,
            false,
            None,
            Some(Path::new("/f")),
        );
        assert_eq!(c.unwrap().options.secret_file, Path::new("/g"));
        let d = MountArgs::new(
            "h:1",
            Path::new("/m"),
            &[],
            false,
            None,
            Some(Path::new("/f")),
        );
        assert_eq!(d.unwrap().options.secret_file, Path::new("/f"));
    }

    #[test]
    fn bad_input_is_refused() {
        for bad in [
            &["h:1", "/m", "-o", "bogus"][..],
            &["h:1"],
            &[],
            &["h:1", "/m", "-o", "attr_timeout=-1"],
            &["h:1", "/m", "-o", "cache_size=lots"],
            &["h:1", "/m", "-o", "threads=0"],
            &["h:1", "/m", "-o", "threads=1000"],
            &["nohostport", "/m"],
            &["h:1", "/m", "extra"],
            &["h:1", "/m", "-x"],
            &["h:1", "/m", "-t", "nfs"],
        ] {
            assert!(MountArgs::from_helper_args(&os(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(escape_mountinfo("/a b\\c"), "/a\\040b\\134c");
    }
}
