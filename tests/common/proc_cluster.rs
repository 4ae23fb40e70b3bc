//! A cluster of separate `rustre` processes on loopback: one MGS, one MDS and one OSS per
//! OST, each OST in a directory of the test's choosing (a small file system, say), and the
//! `rustre stat` fields the tests read.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{cli, cli_ok, free_addr, wait_until, Proc};

/// Longest wait for the cluster to come up.
pub(crate) const CLUSTER_UP_WAIT: Duration = Duration::from_secs(20);

/// MGS, MDS and OSS processes; each is SIGKILLed when dropped.
pub(crate) struct ProcCluster {
    pub dir: tempfile::TempDir,
    pub mgs_addr: String,
    pub mds_addr: String,
    pub oss_addrs: Vec<String>,
    /// The data directory of each OST (OST `i` is served by OSS `i`).
    pub ost_dirs: Vec<PathBuf>,
    pub mgs: Option<Proc>,
    pub mds: Option<Proc>,
    pub oss: Vec<Option<Proc>>,
}

impl ProcCluster {
    /// Starts a cluster with one OST per entry of `ost_dirs` (`None`: a directory in the
    /// cluster's temporary directory), the MDS with `mds_env` in its environment; waits
    /// until every node is up.
    pub(crate) fn start(ost_dirs: Vec<Option<PathBuf>>, mds_env: &[(&str, &str)]) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        let ost_dirs: Vec<PathBuf> = ost_dirs
            .into_iter()
            .enumerate()
            .map(|(i, d)| d.unwrap_or_else(|| dir.path().join(format!("ost{i}"))))
            .collect();
        let mut c = ProcCluster {
            mgs_addr: free_addr(),
            mds_addr: free_addr(),
            oss_addrs: ost_dirs.iter().map(|_| free_addr()).collect(),
            oss: ost_dirs.iter().map(|_| None).collect(),
            ost_dirs,
            dir,
            mgs: None,
            mds: None,
        };
        let data = c.path("mgs");
        c.mgs = Some(Proc::start(
            "mgs",
            &[
                "mgs",
                "--listen",
                &c.mgs_addr,
                "--data",
                data.to_str().unwrap(),
            ],
        ));
        c.start_mds(mds_env);
        for i in 0..c.ost_dirs.len() {
            let data = c.ost_dirs[i].to_str().unwrap().to_string();
            c.oss[i] = Some(Proc::start(
                "oss",
                &[
                    "--mgs",
                    &c.mgs_addr,
                    "oss",
                    "--listen",
                    &c.oss_addrs[i],
                    "--index",
                    &i.to_string(),
                    "--data",
                    &data,
                ],
            ));
        }
        c.wait_all_up();
        c
    }

    pub(crate) fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// Starts the MDS (again) on its address and data, with `env` in its environment.
    pub(crate) fn start_mds(&mut self, env: &[(&str, &str)]) {
        let data = self.path("mds");
        self.mds = Some(Proc::start_with_env(
            "mds",
            &[
                "--mgs",
                &self.mgs_addr,
                "mds",
                "--listen",
                &self.mds_addr,
                "--data",
                data.to_str().unwrap(),
            ],
            env,
        ));
    }

    /// Waits until the MDS and every OST are up in `rustre status`.
    pub(crate) fn wait_all_up(&self) {
        let nodes = 2 + self.ost_dirs.len();
        assert!(
            wait_until(CLUSTER_UP_WAIT, || {
                let s = cli(&self.mgs_addr, &["status"]);
                let out = String::from_utf8_lossy(&s.stdout).to_string();
                s.status.success() && out.matches(" up").count() >= nodes
            }),
            "cluster did not come up: {}",
            String::from_utf8_lossy(&cli(&self.mgs_addr, &["status"]).stdout)
        );
    }

    /// The object file of `(ino, stripe)` on OST `ost` (docs/operations.md layout).
    pub(crate) fn object_file(&self, ost: usize, ino: u64, stripe: u32) -> PathBuf {
        self.ost_dirs[ost]
            .join("objects")
            .join(format!("{:02x}", ino % 256))
            .join(format!("{ino:016x}.{stripe}"))
    }

    /// `rustre stat PATH` (a path in the file system, from its root).
    pub(crate) fn stat(&self, path: &str) -> String {
        cli_ok(&self.mgs_addr, &["stat", path])
    }
}

/// `key: value` of a `rustre stat`/`getstripe` output.
pub(crate) fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

/// A `rustre stat` field as a number.
pub(crate) fn number(out: &str, key: &str) -> u64 {
    field(out, key)
        .parse()
        .unwrap_or_else(|e| panic!("{key}: {e} in\n{out}"))
}

/// The copy-0 OSTs of a `rustre stat` output.
pub(crate) fn osts(out: &str) -> Vec<u32> {
    field(out, "osts")
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect()
}

/// Length of the file at `p`, `None` if it does not exist.
pub(crate) fn file_len(p: &Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}
