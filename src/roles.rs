//! Settings of a role taken from its flags and the configuration file (`config`), where
//! the merge needs more than [`crate::config::pick`]: the OST list of an OSS, the session
//! lease, the mount's arguments and the helper's default options; and `rustre config check`.

use std::path::{Path, PathBuf};

use rustre_server::mds;

use crate::config::{Config, OstEntry, DEFAULT_CONFIG_PATH};
use crate::Cli;

/// The error when no listen address is given for an MDS or OSS.
pub(crate) const NO_LISTEN: &str =
    "give --listen HOST:PORT (or listen in the configuration's table of this role)";

/// The OSTs of an OSS: the `--index`/`--data` pairs if any were given (they replace the
/// file's list), else the file's.
pub(crate) fn osts(
    indexes: Vec<u32>,
    dirs: Vec<PathBuf>,
    file: &[OstEntry],
) -> Result<(Vec<u32>, Vec<PathBuf>), String> {
    if indexes.is_empty() && dirs.is_empty() {
        if file.is_empty() {
            return Err(
                "give --index N --data DIR (repeat for several OSTs), or osts in the \
                        configuration's [oss.NAME] table"
                    .into(),
            );
        }
        return Ok(file.iter().map(|o| (o.index, o.data.clone())).unzip());
    }
    Ok((indexes, dirs))
}

/// The MDS session lease in milliseconds: the given seconds (checked as the flag is), or the
/// default.
pub(crate) fn session_lease_ms(secs: Option<u64>) -> Result<u64, String> {
    match secs {
        None => Ok(mds::SESSION_LEASE_MS),
        Some(s) if (mds::MIN_SESSION_LEASE_SECS..=mds::MAX_SESSION_LEASE_SECS).contains(&s) => {
            Ok(s * 1000)
        }
        Some(s) => Err(format!(
            "session_lease = {s}: expected {} to {} seconds",
            mds::MIN_SESSION_LEASE_SECS,
            mds::MAX_SESSION_LEASE_SECS
        )),
    }
}

/// The most bytes of a file the MDS keeps in its store: the given number (checked as the
/// flag is), or the default, [`mds::DEFAULT_INLINE_MAX`].
pub(crate) fn inline_max(bytes: Option<u32>) -> Result<u32, String> {
    let max = rustre_proto::msg::mds::INLINE_MAX_BYTES as u32;
    match bytes {
        None => Ok(mds::DEFAULT_INLINE_MAX),
        Some(b) if b <= max => Ok(b),
        Some(b) => Err(format!("inline_max = {b}: expected 0 to {max} bytes")),
    }
}

/// Whether an MDS (or `rustre local`) acknowledges namespace changes only once on disk:
/// with `--durable`, or the file's `relaxed = false` unless `--relaxed` overrides it.
/// Relaxed is the default (docs/operations.md, "Durability").
pub(crate) fn durable_mds(
    durable_flag: bool,
    relaxed_flag: bool,
    file_relaxed: Option<bool>,
) -> bool {
    durable_flag || (!relaxed_flag && file_relaxed == Some(false))
}

/// The `-o` strings a mount starts from: the file's cluster and secret_file (unless the
/// command line gave them), then its `[mount]` options.
pub(crate) fn mount_defaults(
    cfg: &Config,
    cluster: Option<&str>,
    secret_file: Option<&Path>,
) -> Vec<String> {
    let mut opts = Vec::new();
    if let Some(c) = cluster.or(cfg.cluster.as_deref()) {
        opts.push(format!("cluster={c}"));
    }
    if let Some(f) = secret_file.or(cfg.secret_file.as_deref()) {
        opts.push(format!("secret_file={}", f.display()));
    }
    if let Some(m) = &cfg.mount {
        opts.extend(m.options.iter().cloned());
    }
    opts
}

/// `rustre mount`'s arguments: source and mount point from the command line, else from the
/// configuration; options: the configuration's, then `-o`.
pub(crate) fn mount_args(
    cli: &Cli,
    cfg: &Config,
    source: &Option<String>,
    mountpoint: &Option<PathBuf>,
    options: &[String],
    foreground: bool,
) -> Result<rustre_fuse::mount::MountArgs, String> {
    let section = cfg.mount.clone().unwrap_or_default();
    let source = source
        .clone()
        .or(section.source)
        .or(cfg.mgs_address.clone())
        .ok_or("give the MGS address HOST:PORT (or mount.source in the configuration)")?;
    let mountpoint = mountpoint
        .clone()
        .or(section.mountpoint)
        .ok_or("give the mount point (or mount.mountpoint in the configuration)")?;
    let mut opts = mount_defaults(cfg, Some(&cli.cluster), cli.secret_file.as_deref());
    opts.extend(options.iter().cloned());
    rustre_fuse::mount::MountArgs::new(&source, &mountpoint, &opts, foreground, None, None)
}

/// `rustre config check [PATH]`: reads and checks the file, prints what it defines.
pub(crate) fn config_check(path: Option<PathBuf>) -> Result<(), String> {
    let path = path.unwrap_or_else(|| DEFAULT_CONFIG_PATH.into());
    let cfg = Config::load(&path)?;
    println!("{}: ok: {}", path.display(), cfg.summary());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relaxed_is_the_default_and_durable_is_asked_for() {
        assert!(!durable_mds(false, false, None));
        assert!(!durable_mds(false, false, Some(true)));
        assert!(durable_mds(false, false, Some(false)));
        assert!(durable_mds(true, false, None));
        assert!(durable_mds(true, false, Some(true)));
        assert!(!durable_mds(false, true, Some(false)));
    }

    #[test]
    fn oss_flags_replace_the_files_ost_list() {
        let file = vec![OstEntry {
            index: 3,
            data: "/f".into(),
        }];
        let (i, d) = osts(vec![], vec![], &file).unwrap();
        assert_eq!((i, d), (vec![3], vec![PathBuf::from("/f")]));
        let (i, _) = osts(vec![7], vec!["/g".into()], &file).unwrap();
        assert_eq!(i, vec![7]);
        assert!(osts(vec![], vec![], &[]).unwrap_err().contains("--index"));
    }

    #[test]
    fn the_inline_limit_is_checked_as_the_flag_is() {
        assert_eq!(inline_max(None).unwrap(), mds::DEFAULT_INLINE_MAX);
        assert_eq!(inline_max(Some(0)).unwrap(), 0);
        assert_eq!(inline_max(Some(65536)).unwrap(), 65536);
        assert!(inline_max(Some(65537)).is_err());
    }

    #[test]
    fn the_session_lease_is_checked_as_the_flag_is() {
        assert_eq!(session_lease_ms(None).unwrap(), mds::SESSION_LEASE_MS);
        let s = mds::MIN_SESSION_LEASE_SECS;
        assert_eq!(session_lease_ms(Some(s)).unwrap(), s * 1000);
        assert!(session_lease_ms(Some(mds::MAX_SESSION_LEASE_SECS + 1)).is_err());
    }

    #[test]
    fn mount_defaults_take_the_command_line_first_then_the_file() {
        let cfg = Config::parse(
            "cluster = \"c\"\nsecret_file = \"/s\"\n[mount]\noptions = [\"noatime\"]\n",
        )
        .unwrap();
        assert_eq!(
            mount_defaults(&cfg, None, None),
            ["cluster=c", "secret_file=/s", "noatime"]
        );
        assert_eq!(
            mount_defaults(&cfg, Some("flag"), Some(Path::new("/t")))[..2],
            ["cluster=flag", "secret_file=/t"]
        );
    }

    #[test]
    fn a_metrics_flag_wins_over_the_files_address() {
        use crate::server_cmds::MetricsArgs;
        let file = Some("127.0.0.1:2".to_string());
        let from_file = MetricsArgs::default().or_file(file.clone());
        assert_eq!(from_file.listen(), Some("127.0.0.1:2"));
        let flag = MetricsArgs::default()
            .or_file(Some("127.0.0.1:1".into()))
            .or_file(file);
        assert_eq!(flag.listen(), Some("127.0.0.1:1"));
        assert_eq!(MetricsArgs::default().or_file(None).listen(), None);
    }
}
