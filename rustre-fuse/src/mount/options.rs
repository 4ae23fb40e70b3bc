//! What one mount is asked for: [`MountOptions`] parsed from `-o` strings (seconds, byte
//! sizes, the generic MS_* flags as Linux names them, `remount`, and what mount(8) and fstab
//! pass along for every file system) and [`MountArgs`], the helper's argument convention
//! (`SOURCE MOUNTPOINT [-o OPTS] [-f] [-n] [-s] [-v] [-t TYPE]`), with the checks of the
//! source and the mount point. Argument handling only: nothing here mounts, forks or connects.

use rustre_proto::DEFAULT_MGS_PORT;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustre_proto::auth;

use super::{
    DEFAULT_CLIENT_THREADS, DEFAULT_CLUSTER, FS_TYPE, HELPER_NAME, MAX_CLIENT_THREADS,
    MAX_TIMEOUT_SECS, SUBTYPE,
};
use crate::client::{AsyncDirops, AtimeMode, AtimeRule};
use crate::fuse::FuseConfig;

/// Options of one mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    /// Let users other than the mounting one use the mount (`allow_other`).
    pub allow_other: bool,
    /// Mount read-only (`ro`).
    pub read_only: bool,
    /// Let the kernel check permissions on what it caches (`default_permissions`, with the
    /// ACLs it is told of through `FUSE_POSIX_ACL`); the MDS checks them in any case. On by
    /// default: without it, a path walk through cached names and the open of a FIFO or
    /// device are checked by nobody (docs/mount.md, "Permissions").
    pub default_permissions: bool,
    /// Cluster name the servers must agree on (`cluster=`).
    pub cluster: String,
    /// File holding the cluster secret (`secret_file=`; default `RUSTRE_SECRET_FILE`, else
    /// `/etc/rustre/cluster.secret`).
    pub secret_file: PathBuf,
    /// File holding the admin secret (`admin_secret_file=`; none by default): the mount
    /// proves it, so its root is never root-squashed (an admin host's mount).
    pub admin_secret_file: Option<PathBuf>,
    /// Log at debug level and stay in the foreground (`debug`).
    pub debug: bool,
    /// Stay in the foreground (`-f`).
    pub foreground: bool,
    /// Where the daemon logs once in the background (`log=PATH`, appended to); without it,
    /// syslog (journald) when /dev/log exists, else `FALLBACK_LOG_FILE` (see `daemon.rs`).
    pub log_file: Option<PathBuf>,
    /// Kernel mount flags from `noexec`, `noatime`, `suid`, `dev`, ... (MS_* bits).
    pub exec_suid_dev_atime: MountFlags,
    /// TTLs, cache size and the kernel's write-back cache for the adapter (`attr_timeout=`,
    /// `entry_timeout=`, `cache_size=`, `writeback_cache`).
    pub fuse: FuseConfig,
    /// Worker threads of the client's async runtime (`threads=`).
    pub threads: usize,
    /// Address to serve the client's Prometheus metrics on, `HOST:PORT` (`metrics=`).
    pub metrics: Option<String>,
    /// Change the kernel flags of the mount in place (`remount`): every other option is
    /// checked, and only the flags and `ro`/`rw` take effect.
    pub remount: bool,
    /// The first FUSE kernel option seen (`user_id=`, `group_id=`): mount(8) passes them
    /// back from /proc/mounts on a remount, and nothing else may set them.
    pub(super) kernel_option: Option<String>,
}

/// The MS_* flags the generic mount options set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountFlags {
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    /// `relatime` (also `atime`, the default), `strictatime` or `noatime`.
    pub atime: AtimeRule,
    pub nodiratime: bool,
    /// `sync`: the kernel syncs after every write.
    pub sync: bool,
}

impl MountFlags {
    /// How reads through a mount with these flags move atime (never on a read-only one).
    pub fn atime_mode(&self, read_only: bool) -> AtimeMode {
        AtimeMode {
            rule: if read_only {
                AtimeRule::Never
            } else {
                self.atime
            },
            dirs: !self.nodiratime,
        }
    }

    /// The MS_* bits of these flags and `read_only`, one atime bit always set (so a remount
    /// does not keep the old atime flags).
    pub(super) fn ms_bits(&self, read_only: bool) -> libc::c_ulong {
        let atime = match self.atime {
            AtimeRule::Never => libc::MS_NOATIME,
            AtimeRule::Relative => libc::MS_RELATIME,
            AtimeRule::Strict => libc::MS_STRICTATIME,
        };
        [
            (read_only, libc::MS_RDONLY),
            (self.nosuid, libc::MS_NOSUID),
            (self.nodev, libc::MS_NODEV),
            (self.noexec, libc::MS_NOEXEC),
            (self.nodiratime, libc::MS_NODIRATIME),
            (self.sync, libc::MS_SYNCHRONOUS),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .fold(atime, |bits, (_, bit)| bits | bit)
    }
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            allow_other: false,
            read_only: false,
            default_permissions: true,
            cluster: DEFAULT_CLUSTER.to_string(),
            secret_file: auth::secret_file_or_default(None),
            admin_secret_file: None,
            debug: false,
            foreground: false,
            log_file: None,
            // nosuid and nodev by default, as every FUSE mount.
            exec_suid_dev_atime: MountFlags {
                nosuid: true,
                nodev: true,
                noexec: false,
                atime: AtimeRule::Relative,
                nodiratime: false,
                sync: false,
            },
            fuse: FuseConfig::default(),
            threads: DEFAULT_CLIENT_THREADS,
            metrics: None,
            remount: false,
            kernel_option: None,
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
    pub(super) fn apply(&mut self, opts: &str) -> Result<(), String> {
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
                ("writeback_cache", None) => self.fuse.writeback_cache = true,
                ("nowriteback_cache", None) => self.fuse.writeback_cache = false,
                ("async_dirops", None) => self.fuse.async_dirops = AsyncDirops::Everywhere,
                ("noasync_dirops", None) => self.fuse.async_dirops = AsyncDirops::Off,
                ("threads", Some(v)) => {
                    self.threads = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_CLIENT_THREADS).contains(n))
                        .ok_or_else(|| format!("threads={v}: expected 1 to {MAX_CLIENT_THREADS}"))?
                }
                ("cluster", Some(v)) if !v.is_empty() => self.cluster = v.to_string(),
                ("metrics", Some(v))
                    if v.rsplit_once(':')
                        .is_some_and(|(_, p)| p.parse::<u16>().is_ok()) =>
                {
                    self.metrics = Some(v.to_string())
                }
                ("metrics", _) => return Err(format!("{opt}: expected metrics=HOST:PORT")),
                ("secret_file", Some(v)) if !v.is_empty() => self.secret_file = v.into(),
                ("log", Some(v)) if !v.is_empty() => self.log_file = Some(v.into()),
                ("admin_secret_file", Some(v)) if !v.is_empty() => {
                    self.admin_secret_file = Some(v.into())
                }
                ("suid", None) => f.nosuid = false,
                ("nosuid", None) => f.nosuid = true,
                ("dev", None) => f.nodev = false,
                ("nodev", None) => f.nodev = true,
                ("exec", None) => f.noexec = false,
                ("noexec", None) => f.noexec = true,
                // `atime` only undoes `noatime`, as mount(8)'s.
                ("atime", None) if f.atime == AtimeRule::Never => f.atime = AtimeRule::Relative,
                ("atime", None) => {}
                ("relatime", None) => f.atime = AtimeRule::Relative,
                ("strictatime", None) => f.atime = AtimeRule::Strict,
                ("noatime", None) => f.atime = AtimeRule::Never,
                ("diratime", None) => f.nodiratime = false,
                ("nodiratime", None) => f.nodiratime = true,
                ("sync", None) => f.sync = true,
                ("async", None) => f.sync = false,
                ("remount", None) => self.remount = true,
                ("user_id" | "group_id", Some(v)) if v.parse::<u32>().is_ok() => {
                    self.kernel_option.get_or_insert_with(|| opt.to_string());
                }
                // What mount(8) and fstab pass along for every file system.
                (
                    "_netdev" | "defaults" | "auto" | "noauto" | "user" | "nouser" | "users",
                    None,
                )
                | ("nofail", None) => {}
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
    /// The `-o` strings, in order: a remount applies them over the mount's flags as they are.
    pub(super) given: Vec<String>,
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
        if let Some(k) = options.kernel_option.as_ref().filter(|_| !options.remount) {
            return Err(format!(
                "{k}: set by the mount itself (accepted with remount only)"
            ));
        }
        options.foreground |= foreground;
        let source = mgs_address(source)?;
        Ok(MountArgs {
            source,
            mountpoint: mountpoint.to_path_buf(),
            options,
            given: opts.to_vec(),
        })
    }

    /// The helper's arguments, as mount(8) passes them:
    /// `SOURCE MOUNTPOINT [-o OPTS] [-f] [-n] [-s] [-v] [-t TYPE]`.
    pub(super) fn from_helper_args(args: &[OsString]) -> Result<MountArgs, String> {
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
/// The MGS address a mount source names: `HOST:PORT`, or `HOST` alone for the MGS's
/// default port ([`DEFAULT_MGS_PORT`]).
pub(super) fn mgs_address(source: &str) -> Result<String, String> {
    let bad = || format!("source {source:?} must be the MGS address HOST[:PORT]");
    if source.is_empty() || source.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    match source.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
            Ok(source.to_string())
        }
        Some(_) => Err(bad()),
        None => Ok(format!("{source}:{DEFAULT_MGS_PORT}")),
    }
}

/// The mount point, absolute, if it is an accessible directory.
pub(super) fn check_mountpoint(p: &Path) -> Result<PathBuf, String> {
    let abs = std::fs::canonicalize(p).map_err(|e| format!("mount point {}: {e}", p.display()))?;
    if !abs.is_dir() {
        return Err(format!("mount point {} is not a directory", p.display()));
    }
    Ok(abs)
}
