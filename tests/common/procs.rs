//! A cluster of real processes for end-to-end tests: MGS, MDS and one OSS per OST
//! ([`OSS_COUNT`] by default, or OSTs in directories of the test's choosing) as separate
//! `rustre` processes on loopback, each killable and restartable, and the helpers that read
//! `rustre stat` fields and a file's placement.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// OSS processes of the test cluster.
pub(crate) const OSS_COUNT: usize = 3;
/// Longest wait for the cluster to come up.
pub(crate) const CLUSTER_UP_WAIT: Duration = Duration::from_secs(20);
/// Longest wait for the resync worker to bring a returning copy up to date.
pub(crate) const RESYNC_WAIT: Duration = Duration::from_secs(60);

/// What a [`ProcCluster`] is made of beyond its defaults.
#[derive(Default)]
pub(crate) struct ClusterSpec {
    /// One entry per OST (OST `i` is served by OSS `i`): `None` is a directory in the
    /// cluster's temporary directory, `Some` one of the test's choosing (a small file
    /// system, say). Empty: [`OSS_COUNT`] OSTs in the temporary directory.
    pub(crate) ost_dirs: Vec<Option<PathBuf>>,
    /// The MDS's data directory; `None`: `mds` in the cluster's temporary directory.
    pub(crate) mds_dir: Option<PathBuf>,
    /// Environment of the MDS process.
    pub(crate) mds_env: Vec<(&'static str, &'static str)>,
    /// Arguments added to the MDS's (`rustre mds ...`).
    pub(crate) mds_args: Vec<&'static str>,
    /// Environment of every OSS process.
    pub(crate) oss_env: Vec<(&'static str, &'static str)>,
}

/// MGS, MDS and OSS processes; each is SIGKILLed when dropped.
pub(crate) struct ProcCluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) mgs_addr: String,
    pub(crate) mds_addr: String,
    pub(crate) oss_addrs: Vec<String>,
    /// The data directory of each OST.
    pub(crate) ost_dirs: Vec<PathBuf>,
    pub(crate) mgs: Option<Proc>,
    pub(crate) mds: Option<Proc>,
    pub(crate) oss: Vec<Option<Proc>>,
    spec: ClusterSpec,
}

impl ProcCluster {
    /// [`OSS_COUNT`] OSTs, nothing changed.
    pub(crate) fn start() -> ProcCluster {
        Self::start_spec(ClusterSpec::default())
    }

    /// A cluster whose OSS processes run with `env` set.
    pub(crate) fn start_with_oss_env(env: &[(&'static str, &'static str)]) -> ProcCluster {
        Self::start_spec(ClusterSpec {
            oss_env: env.to_vec(),
            ..ClusterSpec::default()
        })
    }

    /// A cluster whose MDS gets `mds_args`.
    pub(crate) fn start_with_mds_args(mds_args: &[&'static str]) -> ProcCluster {
        Self::start_spec(ClusterSpec {
            mds_args: mds_args.to_vec(),
            ..ClusterSpec::default()
        })
    }

    /// A cluster with one OST per entry of `ost_dirs` (see [`ClusterSpec::ost_dirs`]),
    /// its MDS with `mds_env` in its environment.
    pub(crate) fn start_on(
        ost_dirs: Vec<Option<PathBuf>>,
        mds_env: &[(&'static str, &'static str)],
    ) -> ProcCluster {
        Self::start_spec(ClusterSpec {
            ost_dirs,
            mds_env: mds_env.to_vec(),
            ..ClusterSpec::default()
        })
    }

    /// Starts every process of `spec` and waits until every node is up.
    pub(crate) fn start_spec(mut spec: ClusterSpec) -> ProcCluster {
        let dir = tempfile::tempdir().unwrap();
        if spec.ost_dirs.is_empty() {
            spec.ost_dirs = vec![None; OSS_COUNT];
        }
        let chosen = spec.mds_args.contains(&"--inline-max");
        if let Some(max) = test_inline_max().filter(|_| !chosen) {
            // The whole suite once more with data on the MDS set otherwise (CI runs the
            // mount tests with it off, scripts/test.sh).
            let max: &'static str = Box::leak(max.to_string().into_boxed_str());
            spec.mds_args.extend(["--inline-max", max]);
        }
        let ost_dirs: Vec<PathBuf> = std::mem::take(&mut spec.ost_dirs)
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
            spec,
        };
        c.start_mgs();
        c.start_mds();
        for i in 0..c.ost_dirs.len() {
            c.start_oss(i);
        }
        c.wait_all_up();
        c
    }

    pub(crate) fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    pub(crate) fn start_mgs(&mut self) {
        let data = self.path("mgs");
        self.mgs = Some(Proc::start(
            "mgs",
            &[
                "mgs",
                "--listen",
                &self.mgs_addr,
                "--data",
                data.to_str().unwrap(),
            ],
        ));
    }

    /// Starts the MDS (again) on its address and data, as the spec says.
    pub(crate) fn start_mds(&mut self) {
        let env = self.spec.mds_env.clone();
        self.start_mds_with_env(&env);
    }

    /// As [`Self::start_mds`], with `env` in its environment instead of the spec's.
    pub(crate) fn start_mds_with_env(&mut self, env: &[(&str, &str)]) {
        let data = self
            .spec
            .mds_dir
            .clone()
            .unwrap_or_else(|| self.path("mds"));
        let mut args = vec![
            "--mgs",
            &self.mgs_addr,
            "mds",
            "--listen",
            &self.mds_addr,
            "--data",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(&self.spec.mds_args);
        self.mds = Some(Proc::start_with_env("mds", &args, env));
    }

    /// Starts the OSS of OST `i` (again) on its address and data directory.
    pub(crate) fn start_oss(&mut self, i: usize) {
        let data = self.ost_dirs[i].to_str().unwrap().to_string();
        self.oss[i] = Some(Proc::start_with_env(
            "oss",
            &[
                "--mgs",
                &self.mgs_addr,
                "oss",
                "--listen",
                &self.oss_addrs[i],
                "--index",
                &i.to_string(),
                "--data",
                &data,
            ],
            &self.spec.oss_env,
        ));
    }

    /// Adds an OST in `dir` to the running cluster (the next index), served by a new OSS,
    /// and starts it; returns its index. Wait for it with [`Self::wait_all_up`].
    pub(crate) fn add_ost(&mut self, dir: PathBuf) -> usize {
        self.ost_dirs.push(dir);
        self.oss_addrs.push(free_addr());
        self.oss.push(None);
        let i = self.ost_dirs.len() - 1;
        self.start_oss(i);
        i
    }

    pub(crate) fn kill_oss(&mut self, i: usize) {
        if let Some(mut p) = self.oss[i].take() {
            p.kill();
        }
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
    pub(crate) fn object_file(&self, ost: u32, ino: u64, stripe: u32) -> PathBuf {
        self.ost_dirs[ost as usize]
            .join("objects")
            .join(format!("{:02x}", ino % 256))
            .join(format!("{ino:016x}.{stripe}"))
    }

    /// Bytes of object data on every OST (checksum sidecars left out).
    pub(crate) fn objects_bytes(&self) -> u64 {
        self.ost_dirs
            .iter()
            .map(|d| object_bytes(&d.join("objects")))
            .sum()
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
    numbers(field(out, "osts"))
}

/// Length of the file at `p`, `None` if it does not exist.
pub(crate) fn file_len(p: &Path) -> Option<u64> {
    fs::metadata(p).ok().map(|m| m.len())
}

/// A comma-separated list of numbers.
pub(crate) fn numbers(list: &str) -> Vec<u32> {
    list.split(',').map(|n| n.trim().parse().unwrap()).collect()
}

/// Inode, copy-0 OSTs and copy-1 OSTs (none for a file of one copy) of a file, per
/// `rustre stat`.
pub(crate) fn placement(mgs: &str, path: &str) -> (u64, Vec<u32>, Vec<u32>) {
    let out = cli_ok(mgs, &["stat", path]);
    let ino = field(&out, "inode").parse().unwrap();
    let copy1 = if out.contains("replica 1 osts: ") {
        numbers(field(&out, "replica 1 osts"))
    } else {
        Vec::new()
    };
    (ino, numbers(field(&out, "osts")), copy1)
}

/// True once the file's layout has no stale copy left.
pub(crate) fn in_sync(mgs: &str, path: &str) -> bool {
    let out = cli(mgs, &["stat", path]);
    out.status.success() && !String::from_utf8_lossy(&out.stdout).contains("stale slots")
}

pub(crate) fn drop_caches() {
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
}

/// Makes `/rep` with two copies of every stripe, one stripe per file.
pub(crate) fn replicated_dir(mgs: &str, name: &str, replicas: &str) {
    cli_ok(mgs, &["mkdir", name]);
    cli_ok(
        mgs,
        &[
            "setstripe",
            name,
            "--replicas",
            replicas,
            "--stripe-count",
            "1",
        ],
    );
}
