//! The configuration file: one TOML file (`/etc/rustre/rustre.toml` when present, or
//! `--config PATH` / `RUSTRE_CONFIG`) that can hold every flag of every role. [`Config`] is
//! its shape: the common keys (`cluster`, `secret_file`, `mgs_address`), then one table per
//! role — `[mgs]`, `[mds.NAME]` and `[oss.NAME]` (one table per instance, the NAME of
//! `rustre-mds@NAME.service`), `[mount]`, `[local]`. Every table refuses unknown keys
//! (serde `deny_unknown_fields`): a typo is an error naming the key and the file, at start
//! and in `rustre config check`.
//!
//! Precedence, for every setting: a command-line flag, then its environment variable
//! (`RUSTRE_MGS`, `RUSTRE_CLUSTER`, `RUSTRE_SECRET_FILE`), then the file, then the built-in
//! default. The merge itself is done where the flags are known (`src/main.rs`, with
//! [`pick`]); this module only reads and checks the file.

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Where the configuration file is read from when `--config` does not say (only if it
/// exists: without a file, flags and defaults alone apply).
pub(crate) const DEFAULT_CONFIG_PATH: &str = "/etc/rustre/rustre.toml";
/// Largest configuration file read, in bytes.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// Cluster name (`--cluster`).
    pub(crate) cluster: Option<String>,
    /// The cluster secret's file (`--secret-file`).
    pub(crate) secret_file: Option<PathBuf>,
    /// The admin secret's file (`--admin-secret-file`): on admin hosts, the MDS and the MGS.
    pub(crate) admin_secret_file: Option<PathBuf>,
    /// The MGS address every other role and the client commands use (`--mgs`).
    pub(crate) mgs_address: Option<String>,
    pub(crate) mgs: Option<MgsSection>,
    #[serde(default)]
    pub(crate) mds: BTreeMap<String, MdsSection>,
    #[serde(default)]
    pub(crate) oss: BTreeMap<String, OssSection>,
    pub(crate) mount: Option<MountSection>,
    pub(crate) local: Option<LocalSection>,
}

/// `[mgs]`: the flags of `rustre mgs`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MgsSection {
    pub(crate) listen: Option<String>,
    pub(crate) data: Option<PathBuf>,
    pub(crate) fdb_cluster_file: Option<PathBuf>,
    pub(crate) fdb_prefix: Option<String>,
    /// Prometheus address (`--metrics-listen`).
    pub(crate) metrics_listen: Option<String>,
}

/// `[mds.NAME]`: the flags of `rustre mds --instance NAME`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MdsSection {
    pub(crate) listen: Option<String>,
    pub(crate) advertise: Option<String>,
    pub(crate) data: Option<PathBuf>,
    pub(crate) fdb_cluster_file: Option<PathBuf>,
    pub(crate) fdb_prefix: Option<String>,
    pub(crate) relaxed: Option<bool>,
    /// Seconds (`--session-lease`).
    pub(crate) session_lease: Option<u64>,
    /// Bytes (`--inline-max`).
    pub(crate) inline_max: Option<u32>,
    /// `UID[:GID]` (`--root-squash`).
    pub(crate) root_squash: Option<String>,
    /// Client addresses never squashed (`--root-squash-exempt`).
    #[serde(default)]
    pub(crate) root_squash_exempt: Vec<std::net::IpAddr>,
    pub(crate) metrics_listen: Option<String>,
}

/// `[oss.NAME]`: the flags of `rustre oss --instance NAME`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OssSection {
    pub(crate) listen: Option<String>,
    pub(crate) advertise: Option<String>,
    /// The OSTs it serves (`--index`/`--data` pairs).
    #[serde(default)]
    pub(crate) osts: Vec<OstEntry>,
    pub(crate) metrics_listen: Option<String>,
}

/// One OST of an `[oss.NAME]` table: `{ index = 0, data = "/srv/rustre/ost0" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OstEntry {
    pub(crate) index: u32,
    pub(crate) data: PathBuf,
}

/// `[mount]`: what `rustre mount` and the mount helper use when not told.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MountSection {
    /// MGS address to mount (default: `mgs_address`).
    pub(crate) source: Option<String>,
    /// Where `rustre mount` with no arguments mounts.
    pub(crate) mountpoint: Option<PathBuf>,
    /// Mount options (as `-o`), applied before those of the command line or fstab line.
    #[serde(default)]
    pub(crate) options: Vec<String>,
}

/// `[local]`: the flags of `rustre local`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalSection {
    pub(crate) data: Option<PathBuf>,
    pub(crate) osts: Option<u32>,
    pub(crate) mds: Option<u32>,
    pub(crate) listen: Option<String>,
    pub(crate) relaxed: Option<bool>,
    /// Bytes (`--inline-max`).
    pub(crate) inline_max: Option<u32>,
    pub(crate) mount: Option<PathBuf>,
    #[serde(default)]
    pub(crate) mount_options: Vec<String>,
    pub(crate) metrics_listen: Option<String>,
}

/// A flag's value if given, else the file's.
pub(crate) fn pick<T>(flag: Option<T>, file: Option<T>) -> Option<T> {
    flag.or(file)
}

impl Config {
    /// The file at `path`, parsed and checked. Errors start with the path.
    pub(crate) fn load(path: &Path) -> Result<Config, String> {
        let at = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
        let meta = std::fs::metadata(path).map_err(|e| at(&e))?;
        if meta.len() > MAX_CONFIG_BYTES {
            return Err(at(&format_args!(
                "larger than {MAX_CONFIG_BYTES} bytes: not a rustre configuration"
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| at(&e))?;
        Config::parse(&text).map_err(|e| at(&e))
    }

    /// `--config` if given (it must exist), else [`DEFAULT_CONFIG_PATH`] if it exists,
    /// else an empty configuration. Also returns the path read.
    pub(crate) fn find(given: Option<&Path>) -> Result<(Config, Option<PathBuf>), String> {
        let path = match given {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => DEFAULT_CONFIG_PATH.into(),
            None => return Ok((Config::default(), None)),
        };
        Config::load(&path).map(|c| (c, Some(path)))
    }

    /// Text parsed and checked (see [`Config::check`]).
    pub(crate) fn parse(text: &str) -> Result<Config, String> {
        let c: Config = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        c.check()?;
        Ok(c)
    }

    /// What the types alone cannot say: every address parses as HOST:PORT, every OSS
    /// names at least one OST, no OST index is served twice, no empty names.
    fn check(&self) -> Result<(), String> {
        let addr = |key: String, v: &Option<String>| match v {
            Some(a) if !is_host_port(a) => Err(format!("{key} = {a:?}: expected HOST:PORT")),
            _ => Ok(()),
        };
        addr("mgs_address".into(), &self.mgs_address)?;
        if let Some(m) = &self.mgs {
            addr("mgs.listen".into(), &m.listen)?;
            addr("mgs.metrics_listen".into(), &m.metrics_listen)?;
            if m.fdb_prefix.is_some() && m.fdb_cluster_file.is_none() {
                return Err("mgs.fdb_prefix needs mgs.fdb_cluster_file".into());
            }
        }
        for (name, m) in &self.mds {
            addr(format!("mds.{name}.listen"), &m.listen)?;
            addr(format!("mds.{name}.advertise"), &m.advertise)?;
            addr(format!("mds.{name}.metrics_listen"), &m.metrics_listen)?;
            if m.data.is_some() && m.fdb_cluster_file.is_some() {
                return Err(format!(
                    "mds.{name}: data and fdb_cluster_file exclude each other"
                ));
            }
        }
        let mut served = BTreeMap::new();
        for (name, o) in &self.oss {
            addr(format!("oss.{name}.listen"), &o.listen)?;
            addr(format!("oss.{name}.advertise"), &o.advertise)?;
            addr(format!("oss.{name}.metrics_listen"), &o.metrics_listen)?;
            if o.osts.is_empty() {
                return Err(format!(
                    "oss.{name}: osts is empty: give osts = [{{ index = 0, data = \"DIR\" }}, ...]"
                ));
            }
            for ost in &o.osts {
                if let Some(other) = served.insert(ost.index, name) {
                    return Err(format!(
                        "OST {} is served by both oss.{other} and oss.{name}",
                        ost.index
                    ));
                }
            }
        }
        if let Some(l) = &self.local {
            addr("local.listen".into(), &l.listen)?;
        }
        if let Some(c) = &self.cluster {
            if c.is_empty() {
                return Err("cluster = \"\": the cluster name cannot be empty".into());
            }
        }
        Ok(())
    }

    /// The `[mds.NAME]` table for `instance`; without one, the only table if there is
    /// exactly one, else an empty one (flags alone) if there is none.
    pub(crate) fn mds_section(&self, instance: Option<&str>) -> Result<MdsSection, String> {
        instance_of("mds", &self.mds, instance)
    }

    /// The `[oss.NAME]` table for `instance` (chosen as in [`Config::mds_section`]).
    pub(crate) fn oss_section(&self, instance: Option<&str>) -> Result<OssSection, String> {
        instance_of("oss", &self.oss, instance)
    }

    /// A one-line summary of what the file defines, for `rustre config check`.
    pub(crate) fn summary(&self) -> String {
        let mut parts = Vec::new();
        if self.mgs.is_some() {
            parts.push("mgs".to_string());
        }
        parts.extend(self.mds.keys().map(|k| format!("mds.{k}")));
        for (k, o) in &self.oss {
            let idx: Vec<String> = o.osts.iter().map(|t| t.index.to_string()).collect();
            parts.push(format!("oss.{k} (OSTs {})", idx.join(",")));
        }
        if self.mount.is_some() {
            parts.push("mount".into());
        }
        if self.local.is_some() {
            parts.push("local".into());
        }
        if parts.is_empty() {
            "no role tables".into()
        } else {
            parts.join(", ")
        }
    }
}

fn instance_of<T: Clone + Default>(
    role: &str,
    tables: &BTreeMap<String, T>,
    instance: Option<&str>,
) -> Result<T, String> {
    match instance {
        Some(name) => tables.get(name).cloned().ok_or_else(|| {
            let known: Vec<&str> = tables.keys().map(String::as_str).collect();
            format!(
                "no [{role}.{name}] in the configuration (it has: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        }),
        None if tables.len() <= 1 => Ok(tables.values().next().cloned().unwrap_or_default()),
        None => Err(format!(
            "the configuration has several [{role}.NAME] tables: say which with --instance NAME"
        )),
    }
}

/// `HOST:PORT` with a numeric port (HOST may be a bracketed IPv6 address).
fn is_host_port(a: &str) -> bool {
    matches!(a.rsplit_once(':'), Some((h, p)) if !h.is_empty() && p.parse::<u16>().is_ok())
}
