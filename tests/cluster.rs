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
    let b0 = object_bytes(&c.dir.path().join("ost0/objects"));
    let b1 = object_bytes(&c.dir.path().join("ost1/objects"));
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

/// `rustre --secret-file FILE ARGS` against `mgs` (the explicit option beats the tests'
/// `RUSTRE_SECRET_FILE`).
fn cli_with_secret(mgs: &str, secret: &std::path::Path, args: &[&str]) -> std::process::Output {
    rustre_command()
        .arg("--mgs")
        .arg(mgs)
        .arg("--secret-file")
        .arg(secret)
        .args(args)
        .output()
        .expect("run rustre")
}

/// The one line a failed command printed, after checking it failed.
fn one_line_failure(out: &std::process::Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "{what} succeeded");
    assert_eq!(err.trim_end().lines().count(), 1, "{what}: {err}");
    err
}

#[test]
fn peers_without_the_cluster_secret_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let c = Cluster::start();
    let m = &c.mgs_addr;
    let right = std::fs::read_to_string(test_secret_file()).unwrap();

    // A secret of another cluster, made by `rustre gen-secret`: mode 0600, never replaced.
    let wrong = c.dir.path().join("wrong.secret");
    let out = rustre_command()
        .args(["gen-secret", wrong.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mode = std::fs::metadata(&wrong).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let wrong_secret = std::fs::read_to_string(&wrong).unwrap();
    let again = rustre_command()
        .args(["gen-secret", wrong.to_str().unwrap()])
        .output()
        .unwrap();
    one_line_failure(&again, "gen-secret over an existing file");
    assert_eq!(std::fs::read_to_string(&wrong).unwrap(), wrong_secret);

    // The wrong secret: refused, with a clear one-line error and a non-zero exit, by the MGS
    // (status), and by every server a client command reaches.
    for args in [&["status"][..], &["ls", "/"], &["mkdir", "/nope"]] {
        let out = cli_with_secret(m, &wrong, args);
        let err = one_line_failure(&out, &format!("{args:?} with the wrong secret"));
        assert!(
            err.contains("authentication failed") && err.contains("wrong cluster secret"),
            "{args:?}: {err}"
        );
        assert!(!err.contains(right.trim()) && !err.contains(wrong_secret.trim()));
    }

    // No secret file.
    let missing = c.dir.path().join("missing.secret");
    let err = one_line_failure(&cli_with_secret(m, &missing, &["status"]), "no secret");
    assert!(
        err.contains("no such file") && err.contains("missing.secret"),
        "{err}"
    );

    // The right secret in a file others may read: refused before connecting.
    let open = c.dir.path().join("open.secret");
    std::fs::write(&open, &right).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = one_line_failure(&cli_with_secret(m, &open, &["status"]), "mode 0644");
    assert!(
        err.contains("chmod 600") && err.contains("open.secret"),
        "{err}"
    );
    assert!(!err.contains(right.trim()));

    // The right secret works (here named explicitly, too).
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = cli_with_secret(m, &open, &["status"]);
    assert!(out.status.success(), "{out:?}");
    cli_ok(m, &["mkdir", "/yes"]);

    // A server with the wrong secret cannot join: an MDS stops with the reason.
    let mds = rustre_command()
        .args(["--mgs", m, "--secret-file", wrong.to_str().unwrap(), "mds"])
        .args(["--listen", &free_addr(), "--data"])
        .arg(c.dir.path().join("mds-wrong"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&mds.stderr);
    assert!(!mds.status.success(), "an MDS with the wrong secret ran");
    assert!(err.contains("authentication failed"), "{err}");
}

#[test]
fn a_server_logs_refused_peers_by_address_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let log = dir.path().join("mgs.log");
    let mut mgs = rustre_command()
        .args(["mgs", "--listen", &addr, "--data"])
        .arg(dir.path().join("mgs"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    assert!(wait_until(Duration::from_secs(10), || cli(
        &addr,
        &["status"]
    )
    .status
    .success()));
    let wrong = dir.path().join("wrong.secret");
    rustre_proto::auth::ClusterKey::create(&wrong).unwrap();
    assert!(!cli_with_secret(&addr, &wrong, &["status"]).status.success());
    // A peer that skips the handshake and sends garbage is refused too.
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        let _ = s.write_all(&[0x42; 64]);
    }
    let logged = wait_until(Duration::from_secs(5), || {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        l.matches("refused connection").count() >= 2
    });
    let _ = mgs.kill();
    let _ = mgs.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(logged, "refusals not logged:\n{text}");
    assert!(
        text.contains("WARN") && text.contains("127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("cluster secret"),
        "the reason is not logged:\n{text}"
    );
    for secret in [test_secret_file(), wrong.as_path()] {
        let s = std::fs::read_to_string(secret).unwrap();
        assert!(!text.contains(s.trim()), "a secret reached the log");
    }
}
