//! Network partitions between real hosts made with `ip netns`: the MGS and MDS on one host,
//! each OSS on its own, the client (a FUSE mount) on another, all on one bridge. Cutting a
//! host off is taking its bridge port down; cutting it off from the MGS only is a blackhole
//! route on that host. The rules under test are in docs/replication.md.

mod common;

use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;
use rustre_proto::auth::SECRET_FILE_ENV;

/// OSS hosts.
const OSS_COUNT: usize = 3;
/// Longest wait for a resync, a node state change or a cut-off call to give up.
const LONG_WAIT: Duration = Duration::from_secs(90);

/// The hosts: network namespaces on one bridge. Removed (processes first) on drop.
struct Net {
    tag: String,
    subnet: u32,
    hosts: Vec<String>,
}

impl Net {
    fn new() -> Net {
        let pid = std::process::id();
        let net = Net {
            tag: format!("rp{}", pid % 100_000),
            subnet: 100 + pid % 100,
            hosts: Vec::new(),
        };
        run(Command::new("ip").args(["link", "add", &net.bridge(), "type", "bridge"]));
        run(Command::new("ip").args(["link", "set", &net.bridge(), "up"]));
        net
    }

    fn bridge(&self) -> String {
        format!("{}br", self.tag)
    }

    fn ns(&self, host: &str) -> String {
        format!("{}-{host}", self.tag)
    }

    /// The root-side end of a host's link (its bridge port).
    fn port(&self, host: &str) -> String {
        format!("{}{host}", self.tag)
    }

    fn ip(&self, last: u32) -> String {
        format!("10.{}.0.{last}", self.subnet)
    }

    /// Adds host `name` with address `.last`.
    fn add_host(&mut self, name: &str, last: u32) {
        let ns = self.ns(name);
        run(Command::new("ip").args(["netns", "add", &ns]));
        self.hosts.push(name.to_string());
        run(Command::new("ip").args([
            "link",
            "add",
            &self.port(name),
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]));
        run(Command::new("ip").args([
            "link",
            "set",
            &self.port(name),
            "master",
            &self.bridge(),
            "up",
        ]));
        let cidr = format!("{}/24", self.ip(last));
        run(Command::new("ip").args(["-n", &ns, "addr", "add", &cidr, "dev", "eth0"]));
        run(Command::new("ip").args(["-n", &ns, "link", "set", "eth0", "up"]));
        run(Command::new("ip").args(["-n", &ns, "link", "set", "lo", "up"]));
    }

    /// A command that runs `rustre ARGS` on `host` with the tests' cluster secret.
    fn rustre(&self, host: &str) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net=/run/netns/{}", self.ns(host)))
            .arg(rustre_bin())
            .env(SECRET_FILE_ENV, test_secret_file());
        c
    }

    /// Starts a server process on `host`, SIGKILLed on drop.
    fn start(&self, host: &str, args: &[&str]) -> Proc {
        let child = self
            .rustre(host)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start rustre in a namespace");
        Proc {
            child,
            name: format!("{host}: {args:?}"),
        }
    }

    /// Takes `host`'s bridge port down (`false`) or up (`true`).
    fn link(&self, host: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        run(Command::new("ip").args(["link", "set", &self.port(host), state]));
    }

    /// Drops (`true`) or restores (`false`) everything `host` sends to address `to`.
    fn blackhole(&self, host: &str, to: &str, on: bool) {
        let verb = if on { "add" } else { "del" };
        run(Command::new("ip").args(["-n", &self.ns(host), "route", verb, "blackhole", to]));
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for h in &self.hosts {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.ns(h)])
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge()])
            .status();
    }
}

/// `key: value` of `rustre stat` output.
fn field<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

fn first_number(list: &str) -> u32 {
    list.split(',').next().unwrap().trim().parse().unwrap()
}

fn object_file(dir: &Path, ost: u32, ino: u64) -> PathBuf {
    dir.join(format!("ost{ost}/objects/{:02x}/{ino:016x}.0", ino % 256))
}

fn why_skipped() -> Option<String> {
    if let Some(why) = fuse_unavailable() {
        return Some(why.to_string());
    }
    for tool in ["ip", "nsenter"] {
        let ok = Command::new(tool)
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            return Some(unavailable_here(format!(
                "the partition test needs `{tool}`"
            )));
        }
    }
    None
}

#[test]
fn a_partitioned_oss_is_fenced_and_its_copies_converge_after_healing() {
    if let Some(why) = why_skipped() {
        eprintln!("skipped: {why}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut net = Net::new();
    net.add_host("srv", 1);
    for i in 0..OSS_COUNT {
        net.add_host(&format!("oss{i}"), 10 + i as u32);
    }
    net.add_host("cli", 20);
    let mgs = format!("{}:9400", net.ip(1));
    let mds = format!("{}:9401", net.ip(1));
    let path = |s: &str| dir.path().join(s).to_string_lossy().into_owned();
    let mut procs = vec![
        net.start("srv", &["mgs", "--listen", &mgs, "--data", &path("mgs")]),
        net.start(
            "srv",
            &[
                "--mgs",
                &mgs,
                "mds",
                "--listen",
                &mds,
                "--data",
                &path("mds"),
            ],
        ),
    ];
    for i in 0..OSS_COUNT {
        let listen = format!("{}:9500", net.ip(10 + i as u32));
        let data = path(&format!("ost{i}"));
        procs.push(net.start(
            &format!("oss{i}"),
            &[
                "--mgs",
                &mgs,
                "oss",
                "--listen",
                &listen,
                "--index",
                &i.to_string(),
                "--data",
                &data,
            ],
        ));
    }
    let cli = |args: &[&str]| -> Output {
        net.rustre("cli")
            .arg("--mgs")
            .arg(&mgs)
            .args(args)
            .output()
            .unwrap()
    };
    let cli_ok = |args: &[&str]| -> String {
        let o = cli(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    };
    let ost_state = |ost: u32| -> String {
        let s = cli_ok(&["status"]);
        s.lines()
            .find(|l| l.starts_with(&format!("OST{ost:04}")))
            .unwrap_or("")
            .to_string()
    };
    assert!(
        wait_until(Duration::from_secs(30), || {
            let o = cli(&["status"]);
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).matches(" up").count() >= 2 + OSS_COUNT
        }),
        "cluster did not come up across the namespaces"
    );
    cli_ok(&["mkdir", "/rep"]);
    cli_ok(&[
        "setstripe",
        "/rep",
        "--replicas",
        "2",
        "--stripe-count",
        "1",
    ]);
    let mnt = dir.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start_in_netns(&net.ns("cli"), &mgs, &mnt, "");
    let place = |name: &str| -> (u64, u32, u32) {
        let out = cli_ok(&["stat", &format!("/rep/{name}")]);
        (
            field(&out, "inode").parse().unwrap(),
            first_number(field(&out, "osts")),
            first_number(field(&out, "replica 1 osts")),
        )
    };
    let in_sync = |name: &str| {
        let o = cli(&["stat", &format!("/rep/{name}")]);
        o.status.success() && !String::from_utf8_lossy(&o.stdout).contains("stale slots")
    };

    // Phase 1: one OSS cut off from everybody.
    let a = random_bytes(8 << 20, 31);
    fs::write(mnt.join("rep/a.bin"), &a).unwrap();
    fs::File::open(mnt.join("rep/a.bin"))
        .unwrap()
        .sync_all()
        .unwrap();
    let (ino_a, cut, other) = place("a.bin");
    let cut_host = format!("oss{cut}");
    net.link(&cut_host, false);
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(
        fs::read(mnt.join("rep/a.bin")).unwrap() == a,
        "reads of a replicated file must keep working with a copy cut off"
    );
    // Writes follow the rule: the unreachable copy is marked stale, the write completes.
    let more = random_bytes(4 << 20, 32);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(mnt.join("rep/a.bin"))
        .unwrap();
    f.write_all(&more).unwrap();
    f.sync_all().expect("fsync with a copy cut off");
    drop(f);
    let mut a_all = a.clone();
    a_all.extend_from_slice(&more);
    assert!(!in_sync("a.bin"), "the cut-off copy must be marked stale");
    assert!(
        wait_until(LONG_WAIT, || ost_state(cut).contains(" down")),
        "the MGS did not mark the cut-off OST down"
    );
    let cut_before = fs::read(object_file(dir.path(), cut, ino_a)).unwrap();
    assert_eq!(
        cut_before, a,
        "the cut-off side has only what it had before the cut"
    );
    net.link(&cut_host, true);
    assert!(
        wait_until(LONG_WAIT, || in_sync("a.bin")),
        "no resync after healing"
    );
    assert!(fs::read(object_file(dir.path(), cut, ino_a)).unwrap() == a_all);
    assert!(fs::read(object_file(dir.path(), other, ino_a)).unwrap() == a_all);

    // Phase 2: an OSS that clients still reach but that has lost the MGS fences itself:
    // once its lease is over it refuses writes, and the rest of the cluster moves on.
    let b = random_bytes(2 << 20, 33);
    fs::write(mnt.join("rep/b.bin"), &b).unwrap();
    fs::File::open(mnt.join("rep/b.bin"))
        .unwrap()
        .sync_all()
        .unwrap();
    let (ino_b, _, fenced) = place("b.bin");
    let fenced_host = format!("oss{fenced}");
    net.blackhole(&fenced_host, &net.ip(1), true);
    assert!(
        wait_until(LONG_WAIT, || ost_state(fenced).contains(" down")),
        "the MGS did not mark the isolated OST down"
    );
    // Past the OSS lease (docs/replication.md): it refuses writes now.
    std::thread::sleep(Duration::from_secs(6));
    let patch = random_bytes(1 << 20, 34);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(mnt.join("rep/b.bin"))
        .unwrap();
    f.seek(SeekFrom::Start(0)).unwrap();
    f.write_all(&patch).unwrap();
    f.sync_all().expect("fsync while a copy's OSS is fenced");
    drop(f);
    let mut b_all = b.clone();
    b_all[..patch.len()].copy_from_slice(&patch);
    assert!(
        fs::read(object_file(dir.path(), fenced, ino_b)).unwrap() == b,
        "the fenced side wrote something"
    );
    assert!(!in_sync("b.bin"), "the fenced copy must be marked stale");
    net.blackhole(&fenced_host, &net.ip(1), false);
    assert!(
        wait_until(LONG_WAIT, || in_sync("b.bin")),
        "no resync after healing"
    );
    assert!(fs::read(object_file(dir.path(), fenced, ino_b)).unwrap() == b_all);
    fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(fs::read(mnt.join("rep/b.bin")).unwrap() == b_all);
    assert!(mount.unmount());
    let fsck = cli(&["fsck"]);
    let out = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        fsck.status.success() && out.contains("fsck: clean"),
        "{out}"
    );
    procs.clear();
}
