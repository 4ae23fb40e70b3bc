//! A real multi-process cluster on loopback: MGS, MDS and two OSS as separate `rustre`
//! processes, driven through the `rustre` CLI.

mod common;

use std::time::Duration;

use common::*;

struct Cluster {
    mgs_addr: String,
    dir: tempfile::TempDir,
    mgs: Option<Proc>,
    mds: Option<Proc>,
    oss: Vec<Proc>,
    oss_addrs: Vec<String>,
    mds_addr: String,
}

impl Cluster {
    fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mgs_addr = free_addr();
        let mds_addr = free_addr();
        let oss_addrs = vec![free_addr(), free_addr()];
        let mut c = Cluster {
            mgs: None,
            mds: None,
            oss: vec![],
            mgs_addr,
            mds_addr,
            oss_addrs,
            dir,
        };
        c.start_mgs();
        c.start_mds();
        for i in 0..2 {
            let p = c.start_oss(i);
            c.oss.push(p);
        }
        assert!(
            wait_until(Duration::from_secs(10), || {
                let s = cli(&c.mgs_addr, &["status"]);
                let out = String::from_utf8_lossy(&s.stdout).to_string();
                s.status.success() && out.matches(" up").count() >= 4
            }),
            "cluster did not come up"
        );
        c
    }

    fn path(&self, sub: &str) -> String {
        self.dir.path().join(sub).to_string_lossy().into_owned()
    }

    fn start_mgs(&mut self) {
        let data = self.path("mgs");
        self.mgs = Some(Proc::start(
            "mgs",
            &["mgs", "--listen", &self.mgs_addr, "--data", &data],
        ));
    }

    fn start_mds(&mut self) {
        let data = self.path("mds");
        self.mds = Some(Proc::start(
            "mds",
            &[
                "--mgs",
                &self.mgs_addr,
                "mds",
                "--listen",
                &self.mds_addr,
                "--data",
                &data,
            ],
        ));
    }

    fn start_oss(&self, i: usize) -> Proc {
        let data = self.path(&format!("ost{i}"));
        let idx = i.to_string();
        Proc::start(
            "oss",
            &[
                "--mgs",
                &self.mgs_addr,
                "oss",
                "--listen",
                &self.oss_addrs[i],
                "--index",
                &idx,
                "--data",
                &data,
            ],
        )
    }

    fn status(&self) -> String {
        cli_ok(&self.mgs_addr, &["status"])
    }
}

fn ost_line(status: &str, index: u32) -> String {
    let tag = format!("OST{index:04}");
    status
        .lines()
        .find(|l| l.starts_with(&tag))
        .unwrap_or_else(|| panic!("no {tag} in status:\n{status}"))
        .to_string()
}

#[test]
fn striped_put_get_survives_sigkill_of_every_process() {
    let mut c = Cluster::start();
    let src = c.dir.path().join("src.bin");
    let data = random_bytes(64 << 20, 7);
    std::fs::write(&src, &data).unwrap();
    let m = c.mgs_addr.clone();
    cli_ok(&m, &["mkdir", "/data"]);
    cli_ok(
        &m,
        &[
            "put",
            src.to_str().unwrap(),
            "/data/big.bin",
            "--stripe-count",
            "2",
            "--stripe-size",
            "1M",
        ],
    );
    cli_ok(&m, &["mkdir", "-p", "/data/a/b/c"]);
    let small = c.dir.path().join("small.txt");
    std::fs::write(&small, b"hello rustre\n").unwrap();
    cli_ok(
        &m,
        &["put", small.to_str().unwrap(), "/data/a/b/c/small.txt"],
    );

    let stat = cli_ok(&m, &["stat", "/data/big.bin"]);
    assert!(stat.contains("size: 67108864"), "{stat}");
    assert!(stat.contains("stripe_size: 1048576"), "{stat}");
    assert!(stat.contains("stripe_count: 2"), "{stat}");
    assert!(
        stat.contains("osts: 0,1") || stat.contains("osts: 1,0"),
        "{stat}"
    );

    let out = c.dir.path().join("out.bin");
    cli_ok(&m, &["get", "/data/big.bin", out.to_str().unwrap()]);
    assert!(
        std::fs::read(&out).unwrap() == data,
        "data differs after get"
    );

    // Each OST holds half of the striped file (plus the small file on one of them).
    let b0 = dir_bytes(&c.dir.path().join("ost0/objects"));
    let b1 = dir_bytes(&c.dir.path().join("ost1/objects"));
    let half = 32u64 << 20;
    assert!(b0 >= half && b0 <= half + 13, "ost0 holds {b0}");
    assert!(b1 >= half && b1 <= half + 13, "ost1 holds {b1}");

    // SIGKILL everything, restart, and find it all again.
    c.mgs = None;
    c.mds = None;
    for p in &mut c.oss {
        p.kill();
    }
    c.oss.clear();
    c.start_mgs();
    c.start_mds();
    for i in 0..2 {
        let p = c.start_oss(i);
        c.oss.push(p);
    }
    assert!(wait_until(Duration::from_secs(10), || {
        let s = cli(&m, &["get", "/data/big.bin", out.to_str().unwrap()]);
        s.status.success()
    }));
    assert!(
        std::fs::read(&out).unwrap() == data,
        "data differs after restart"
    );
    let ls = cli_ok(&m, &["ls", "/data"]);
    assert!(ls.contains("big.bin") && ls.contains(" a"), "{ls}");
    let small_out = c.dir.path().join("small.out");
    cli_ok(
        &m,
        &["get", "/data/a/b/c/small.txt", small_out.to_str().unwrap()],
    );
    assert_eq!(std::fs::read(&small_out).unwrap(), b"hello rustre\n");
}

#[test]
fn status_tracks_an_oss_going_down_and_coming_back() {
    let mut c = Cluster::start();
    assert!(ost_line(&c.status(), 1).contains(" up"));
    c.oss[1].kill();
    let start = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(3), || ost_line(&c.status(), 1)
            .contains(" down")),
        "OST0001 not reported down within 3 s:\n{}",
        c.status()
    );
    eprintln!("OST reported down after {:?}", start.elapsed());
    assert!(ost_line(&c.status(), 0).contains(" up"));
    c.oss[1] = c.start_oss(1);
    assert!(
        wait_until(Duration::from_secs(5), || ost_line(&c.status(), 1)
            .contains(" up")),
        "OST0001 not back up:\n{}",
        c.status()
    );
}

#[test]
fn cli_errors_are_one_line_and_nonzero() {
    let c = Cluster::start();
    let m = &c.mgs_addr;
    for (args, needle) in [
        (vec!["stat", "/nope"], "no such file"),
        (vec!["get", "/nope", "/tmp/x"], "no such file"),
        (vec!["rm", "/"], "root"),
        (vec!["mkdir", "/a/b/c"], "no such file"),
    ] {
        let out = cli(m, &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.to_lowercase().contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
    cli_ok(m, &["mkdir", "/d"]);
    cli_ok(m, &["mkdir", "/d/e"]);
    let out = cli(m, &["rm", "/d"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));
    let out = cli("127.0.0.1:1", &["status"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}
