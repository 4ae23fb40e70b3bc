//! A cluster of real processes for end-to-end tests: MGS, MDS and [`OSS_COUNT`] OSS as
//! separate `rustre` processes on loopback, each killable and restartable, and the CLI
//! helpers that read a file's placement.

use std::fs;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

/// OSS processes of the test cluster.
pub(crate) const OSS_COUNT: usize = 3;
/// Longest wait for the resync worker to bring a returning copy up to date.
pub(crate) const RESYNC_WAIT: Duration = Duration::from_secs(60);

pub(crate) struct ProcCluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) mgs_addr: String,
    pub(crate) mds_addr: String,
    pub(crate) oss_addrs: Vec<String>,
    pub(crate) mgs: Option<Proc>,
    pub(crate) mds: Option<Proc>,
    pub(crate) oss: Vec<Option<Proc>>,
    /// Environment of every OSS process started.
    pub(crate) oss_env: Vec<(&'static str, &'static str)>,
    /// Arguments added to the MDS's (`rustre mds ...`).
    pub(crate) mds_args: Vec<&'static str>,
}

impl ProcCluster {
    pub(crate) fn start() -> ProcCluster {
        Self::start_with_oss_env(&[])
    }

    /// A cluster whose OSS processes run with `env` set.
    pub(crate) fn start_with_oss_env(env: &[(&'static str, &'static str)]) -> ProcCluster {
        Self::start_with(env, &[])
    }

    /// A cluster whose OSS processes run with `oss_env` set and whose MDS gets `mds_args`.
    pub(crate) fn start_with(
        oss_env: &[(&'static str, &'static str)],
        mds_args: &[&'static str],
    ) -> ProcCluster {
        let mut c = ProcCluster {
            oss_env: oss_env.to_vec(),
            mds_args: mds_args.to_vec(),
            dir: tempfile::tempdir().unwrap(),
            mgs_addr: free_addr(),
            mds_addr: free_addr(),
            oss_addrs: (0..OSS_COUNT).map(|_| free_addr()).collect(),
            mgs: None,
            mds: None,
            oss: (0..OSS_COUNT).map(|_| None).collect(),
        };
        c.start_mgs();
        c.start_mds();
        for i in 0..OSS_COUNT {
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

    pub(crate) fn start_mds(&mut self) {
        let data = self.path("mds");
        let mut args = vec![
            "--mgs",
            &self.mgs_addr,
            "mds",
            "--listen",
            &self.mds_addr,
            "--data",
            data.to_str().unwrap(),
        ];
        args.extend_from_slice(&self.mds_args);
        self.mds = Some(Proc::start("mds", &args));
    }

    pub(crate) fn start_oss(&mut self, i: usize) {
        let data = self.path(&format!("ost{i}"));
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
                data.to_str().unwrap(),
            ],
            &self.oss_env,
        ));
    }

    pub(crate) fn kill_oss(&mut self, i: usize) {
        if let Some(mut p) = self.oss[i].take() {
            p.kill();
        }
    }

    /// Waits until the MDS and every OST are up in `rustre status`.
    pub(crate) fn wait_all_up(&self) {
        assert!(
            wait_until(Duration::from_secs(20), || {
                let s = cli(&self.mgs_addr, &["status"]);
                let out = String::from_utf8_lossy(&s.stdout).to_string();
                s.status.success() && out.matches(" up").count() >= 2 + OSS_COUNT
            }),
            "cluster did not come up: {}",
            String::from_utf8_lossy(&cli(&self.mgs_addr, &["status"]).stdout)
        );
    }

    /// The object file of `(ino, stripe)` on OST `ost` (docs/operations.md layout).
    pub(crate) fn object_file(&self, ost: u32, ino: u64, stripe: u32) -> PathBuf {
        self.path(&format!("ost{ost}"))
            .join("objects")
            .join(format!("{:02x}", ino % 256))
            .join(format!("{ino:016x}.{stripe}"))
    }
}

/// `key: value` of a `rustre stat`/`getstripe` output.
pub(crate) fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

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
