//! End-to-end tests of running rustre as an operator does (docs/operations.md):
//!
//! - `rustre config check` on good and bad files;
//! - a cluster started from ONE configuration file by the systemd units in
//!   packaging/systemd/. systemd is not PID 1 here (nor in CI), so the units' `ExecStart=`
//!   lines are run directly: parsed out of the unit files, `%i` replaced by the instance,
//!   `/usr/bin/rustre` by the binary under test, and their `Environment=` kept except
//!   `RUSTRE_CONFIG`, pointed at the test's file instead of /etc/rustre/rustre.toml. Then
//!   `mount -a -T FSTAB` mounts it from an fstab line (`_netdev`, never /etc/fstab), in a
//!   private mount namespace where /sbin/mount.fuse.rustre is this build; the mount daemon,
//!   in the background, writes a line to its `log=` file when it returns EIO to an
//!   application (a corrupt block of a file's only copy); without `log=`, to syslog (a
//!   socket at /dev/log of an overlay of /dev in a private namespace);
//! - the Debian package: built by scripts/build-deb.sh from the binary under test, installed
//!   with `dpkg --root` into an empty root, `rustre --version` run from there.
//!
//! The FUSE test needs root and /dev/fuse, the package test cargo-deb and dpkg; each fails
//! under `CI=true` without them (scripts/install-deps.sh installs them).

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use rustre_proto::auth::SECRET_FILE_ENV;

/// Longest wait for the cluster to come up, a mount to appear, or a log line to land.
const WAIT: Duration = Duration::from_secs(30);
/// Where the units read their configuration (replaced by the test's file).
const UNIT_CONFIG: &str = "/etc/rustre/rustre.toml";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `rustre ARGS` with the configuration file `cfg` (and no secret from the environment:
/// the file names it).
fn rustre_with(cfg: &Path) -> Command {
    let mut c = Command::new(rustre_bin());
    c.env("RUSTRE_CONFIG", cfg).env_remove(SECRET_FILE_ENV);
    c
}

#[test]
fn config_check_accepts_the_example_and_names_an_unknown_key_and_its_file() {
    let example = repo().join("packaging/rustre.toml");
    let out = rustre_with(&example)
        .args(["config", "check"])
        .arg(&example)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok: mgs, mds.a, oss.host2 (OSTs 0,1)"),
        "{stdout}"
    );

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    fs::write(&bad, "[mds.a]\nlisten = \"h:1\"\nrelaxd = true\n").unwrap();
    for args in [
        vec![
            "config".to_string(),
            "check".into(),
            bad.display().to_string(),
        ],
        // Every command reads the file at start: an unknown key stops it too.
        vec!["status".into()],
    ] {
        let out = rustre_with(&bad).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains("relaxd"), "{args:?}: {err}");
        assert!(err.contains(&bad.display().to_string()), "{args:?}: {err}");
    }
}

#[test]
fn a_squash_exempt_address_on_the_command_line_takes_root_squash_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let (mgs, listen) = (free_addr(), free_addr());
    let with = |squash: &str| {
        let cfg = dir.path().join(format!("rustre{}.toml", squash.len()));
        let text = format!(
            "mgs_address = \"{mgs}\"\nsecret_file = \"{d}/secret\"\n\n[mds.a]\n\
             listen = \"{listen}\"\ndata = \"{d}/mds\"\n{squash}"
        );
        fs::write(&cfg, text).unwrap();
        cfg
    };
    let secret = dir.path().join("secret");
    fs::write(&secret, "0123456789abcdef0123456789abcdef\n").unwrap();
    fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mds = |cfg: &Path| {
        rustre_with(cfg)
            .args([
                "mds",
                "--instance",
                "a",
                "--root-squash-exempt",
                "127.0.0.9",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // Squash on in the file: the exempt address on the command line is taken, and the MDS
    // runs (waiting for its MGS, which is not there).
    let mut running = Proc {
        child: mds(&with("root_squash = \"65534\"\n")),
        name: "mds".into(),
    };
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "the MDS refused an exempt address with root squash in its config file"
    );
    running.kill();
    // Squash nowhere: refused with a reason.
    let out = mds(&with("")).wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs root squash"), "{err}");
}

#[test]
fn rustre_local_and_mount_take_their_settings_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (listen, d) = (free_addr(), dir.path().display());
    let cfg = dir.path().join("rustre.toml");
    let text = format!(
        "mgs_address = \"{listen}\"\nsecret_file = \"{d}/secret\"\n\n[local]\ndata = \"{d}/data\"\n\
         listen = \"{listen}\"\nosts = 3\n"
    );
    fs::write(&cfg, text).unwrap();
    let proc = Proc {
        child: rustre_with(&cfg)
            .arg("local")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        name: "local".into(),
    };
    // Three OSTs, at the file's address, with the file's secret (created by `local`).
    let up = wait_until(WAIT, || {
        let out = rustre_with(&cfg)
            .args(["status", "--json"])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout).is_ok_and(|v| {
            v["osts"]
                .as_array()
                .is_some_and(|a| a.len() == 3 && a.iter().all(|o| o["state"] == "up"))
        })
    });
    assert!(up, "rustre local did not start from [local]");
    assert!(dir.path().join("secret").is_file());
    drop(proc);
    // `rustre mount` with no mount point and none in the file says what is missing.
    let out = rustre_with(&cfg).arg("mount").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("mount.mountpoint"), "{err}");
}

/// The `ExecStart=` command line and `Environment=` pairs of a unit file, `%i` replaced.
fn unit_command(unit: &str, instance: &str) -> (Vec<String>, Vec<(String, String)>) {
    let text = fs::read_to_string(repo().join("packaging/systemd").join(unit)).unwrap();
    let mut exec = None;
    let mut env = Vec::new();
    for line in text.lines() {
        if let Some(cmd) = line.strip_prefix("ExecStart=") {
            let words = cmd.replace("%i", instance);
            exec = Some(words.split_whitespace().map(str::to_string).collect());
        } else if let Some(kv) = line.strip_prefix("Environment=") {
            let (k, v) = kv.split_once('=').expect("KEY=VALUE");
            env.push((k.to_string(), v.to_string()));
        }
    }
    (exec.expect("an ExecStart= line"), env)
}

/// Starts what unit `unit` (instance `instance`) runs, reading `cfg` instead of
/// /etc/rustre/rustre.toml.
fn start_unit(unit: &str, instance: &str, cfg: &Path) -> Proc {
    let (exec, env) = unit_command(unit, instance);
    assert_eq!(exec[0], "/usr/bin/rustre", "{unit}: {exec:?}");
    assert!(
        env.iter()
            .any(|(k, v)| k == "RUSTRE_CONFIG" && v == UNIT_CONFIG),
        "{unit} reads {UNIT_CONFIG}: {env:?}"
    );
    let child = Command::new(rustre_bin())
        .args(&exec[1..])
        .env_remove(SECRET_FILE_ENV)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("RUSTRE_CONFIG", cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("start {unit}: {e}"));
    Proc {
        child,
        name: format!("{unit}:{instance}"),
    }
}

/// The cluster of [`units_start_a_cluster_from_one_config_file_and_fstab_mounts_it`]: its
/// configuration file and the processes its units run (SIGKILLed when dropped).
struct UnitCluster {
    /// First, so that the processes die before their directories go.
    _procs: Vec<Proc>,
    dir: tempfile::TempDir,
    cfg: PathBuf,
    mgs: String,
}

impl UnitCluster {
    fn start() -> UnitCluster {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let (mgs, mds, left, right) = (free_addr(), free_addr(), free_addr(), free_addr());
        let cfg = dir.path().join("rustre.toml");
        let text = format!(
            r#"cluster = "opstest"
secret_file = "{secret}"
mgs_address = "{mgs}"

[mgs]
listen = "{mgs}"
data = "{d}/mgs"

[mds.a]
listen = "{mds}"
data = "{d}/mds"

[oss.left]
listen = "{left}"
osts = [{{ index = 0, data = "{d}/ost0" }}, {{ index = 1, data = "{d}/ost1" }}]

[oss.right]
listen = "{right}"
osts = [{{ index = 2, data = "{d}/ost2" }}]

[mount]
options = ["noatime"]
"#,
            secret = test_secret_file().display(),
        );
        fs::write(&cfg, text).unwrap();
        let check = rustre_with(&cfg)
            .args(["config", "check"])
            .arg(&cfg)
            .output();
        assert!(check.unwrap().status.success());
        let procs = vec![
            start_unit("rustre-mgs.service", "", &cfg),
            start_unit("rustre-mds@.service", "a", &cfg),
            start_unit("rustre-oss@.service", "left", &cfg),
            start_unit("rustre-oss@.service", "right", &cfg),
        ];
        let c = UnitCluster {
            dir,
            cfg,
            mgs,
            _procs: procs,
        };
        let up = wait_until(WAIT, || {
            let Ok(out) = rustre_with(&c.cfg).args(["status", "--json"]).output() else {
                return false;
            };
            let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
                return false;
            };
            let all_up = |k: &str, n: usize| {
                v[k].as_array()
                    .is_some_and(|a| a.len() == n && a.iter().all(|x| x["state"] == "up"))
            };
            v["cluster"] == "opstest" && all_up("mds", 1) && all_up("osts", 3)
        });
        assert!(up, "the cluster of the units did not come up");
        c
    }

    /// `rustre ARGS` against this cluster, through its configuration file; its stdout.
    fn cli_ok(&self, args: &[&str]) -> String {
        let out = rustre_with(&self.cfg).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

#[test]
fn units_start_a_cluster_from_one_config_file_and_fstab_mounts_it() {
    if skip_without_fuse() {
        return;
    }
    let c = UnitCluster::start();
    let (mnt, log, fstab) = (
        c.dir.path().join("mnt"),
        c.dir.path().join("mount.log"),
        c.dir.path().join("fstab"),
    );
    fs::create_dir(&mnt).unwrap();
    // The secret and the cluster name come from the configuration file, `noatime` from its
    // [mount] table: the line names only the MGS, the mount point and the log.
    let line = format!(
        "{} {} fuse.rustre _netdev,log={} 0 0\n",
        c.mgs,
        mnt.display(),
        log.display()
    );
    fs::write(&fstab, line).unwrap();

    // A file whose only copy is on OST 2, put before the mount exists.
    let data = random_bytes(256 << 10, 18);
    let local = c.dir.path().join("single.bin");
    fs::write(&local, &data).unwrap();
    let l = local.to_str().unwrap();
    c.cli_ok(&["put", l, "/single.bin", "-c", "1", "--ost", "2"]);
    let ino: u64 = field(&c.cli_ok(&["stat", "/single.bin"]), "inode")
        .parse()
        .unwrap();

    let (cfg, dir) = (c.cfg.clone(), c.dir.path().to_path_buf());
    in_private_namespace(move || {
        let _unmount = LazyUnmount(mnt.clone());
        let out = Command::new("mount")
            .args(["-a", "-T"])
            .arg(&fstab)
            .env("RUSTRE_CONFIG", &cfg)
            .env_remove(SECRET_FILE_ENV)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount -a: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mounted = mount_line(&mnt).expect("mounted by mount -a");
        assert!(mounted.contains("fuse.rustre"), "{mounted}");
        assert!(mounted.contains("noatime"), "[mount] options: {mounted}");

        // A round trip through the mount, and out through the CLI.
        let payload = random_bytes(1 << 20, 7);
        fs::write(mnt.join("round.bin"), &payload).unwrap();
        assert!(fs::read(mnt.join("round.bin")).unwrap() == payload);
        let back = dir.join("round.out");
        let out = rustre_with(&cfg)
            .args(["get", "/round.bin"])
            .arg(&back)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert!(fs::read(&back).unwrap() == payload);

        // A corrupt block of the only copy: the application gets EIO, and the daemon, in
        // the background, writes one line naming the inode to its log file.
        flip_byte(&object_file(&dir.join("ost2"), ino), 5);
        let e = fs::read(mnt.join("single.bin")).expect_err("a corrupt block read");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        let logged = wait_until(WAIT, || {
            fs::read_to_string(&log).is_ok_and(|l| {
                l.lines()
                    .any(|l| l.contains("EIO") && l.contains(&format!("ino {ino}")))
            })
        });
        let text = fs::read_to_string(&log).unwrap_or_default();
        assert!(logged, "no EIO line for inode {ino} in the log:\n{text}");
        eprintln!("mount log:\n{text}");

        let out = Command::new("umount").arg(&mnt).output().unwrap();
        assert!(out.status.success(), "umount: {out:?}");
        assert!(wait_until(WAIT, || mount_line(&mnt).is_none()));
    });
}

#[test]
fn a_background_mount_without_log_logs_to_syslog() {
    if skip_without_fuse() {
        return;
    }
    let c = UnitCluster::start();
    let data = random_bytes(64 << 10, 3);
    let local = c.dir.path().join("one.bin");
    fs::write(&local, &data).unwrap();
    c.cli_ok(&[
        "put",
        local.to_str().unwrap(),
        "/one.bin",
        "-c",
        "1",
        "--ost",
        "0",
    ]);
    let ino: u64 = field(&c.cli_ok(&["stat", "/one.bin"]), "inode")
        .parse()
        .unwrap();
    let (cfg, dir, mgs) = (c.cfg.clone(), c.dir.path().to_path_buf(), c.mgs.clone());
    with_syslog_socket(dir.clone(), move |syslog| {
        let mnt = dir.join("mnt");
        fs::create_dir(&mnt).unwrap();
        let _unmount = LazyUnmount(mnt.clone());
        let out = rustre_with(&cfg)
            .arg("mount")
            .arg(&mgs)
            .arg(&mnt)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "rustre mount: {out:?}");
        flip_byte(&object_file(&dir.join("ost0"), ino), 9);
        let e = fs::read(mnt.join("one.bin")).expect_err("a corrupt block read");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        // Datagrams as syslog(3) sends them: "<PRI>TIMESTAMP mount.fuse.rustre[PID]: ...".
        let want = format!("ino {ino}: returned EIO");
        let mut seen = Vec::new();
        let mut buf = vec![0u8; 16 << 10];
        let found = wait_until(WAIT, || match syslog.recv(&mut buf) {
            Ok(n) => {
                let line = String::from_utf8_lossy(&buf[..n]).into_owned();
                let hit = line.contains(&want) && line.contains("mount.fuse.rustre[");
                seen.push(line);
                hit
            }
            Err(_) => false,
        });
        assert!(found, "no syslog line with {want:?}: {seen:#?}");
        let out = Command::new("umount").arg(&mnt).output().unwrap();
        assert!(out.status.success(), "umount: {out:?}");
    });
}

#[test]
fn the_deb_builds_and_installs_into_a_clean_root() {
    for tool in ["cargo-deb", "dpkg", "strip"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            let why = unavailable_here(format!("{tool} is missing (scripts/install-deps.sh)"));
            return eprintln!("skipped: {why}");
        }
    }
    let started = std::time::Instant::now();
    let out = Command::new(repo().join("scripts/build-deb.sh"))
        .arg("--dev")
        .env("RUSTRE_BIN", rustre_bin())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build-deb.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deb = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .chain(String::from_utf8_lossy(&out.stderr).lines().rev())
        .find(|l| l.trim_end().ends_with(".deb"))
        .map(|l| PathBuf::from(l.trim()))
        .expect("the package's path");
    eprintln!("built {} in {:?}", deb.display(), started.elapsed());

    // An empty root with only dpkg's database.
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir_all(r.join("var/lib/dpkg/info")).unwrap();
    fs::create_dir_all(r.join("var/lib/dpkg/updates")).unwrap();
    fs::write(r.join("var/lib/dpkg/status"), "").unwrap();
    let out = Command::new("dpkg")
        .arg(format!("--root={}", r.display()))
        .args(["--force-depends", "-i"])
        .arg(&deb)
        .output()
        .unwrap();
    assert!(out.status.success(), "dpkg -i: {out:?}");

    let version = Command::new(r.join("usr/bin/rustre"))
        .arg("--version")
        .output()
        .unwrap();
    let v = String::from_utf8_lossy(&version.stdout);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(v.trim(), format!("rustre {}", env!("CARGO_PKG_VERSION")));
    let link = fs::read_link(r.join("sbin").join(HELPER)).unwrap();
    assert_eq!(link, Path::new("/usr/bin/rustre"));
    for f in [
        "lib/systemd/system/rustre-mgs.service",
        "lib/systemd/system/rustre-mds@.service",
        "lib/systemd/system/rustre-oss@.service",
        "usr/share/man/man1/rustre.1.gz",
        "usr/share/man/man1/rustre-mount.1.gz",
        "usr/share/bash-completion/completions/rustre",
        "usr/share/zsh/vendor-completions/_rustre",
        "usr/share/fish/vendor_completions.d/rustre.fish",
        "usr/share/doc/rustre/examples/rustre.toml",
    ] {
        assert!(r.join(f).is_file(), "{f} not installed");
    }
    let listed = Command::new("dpkg")
        .arg(format!("--root={}", r.display()))
        .args(["-s", "rustre"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&listed.stdout).contains("Status: install ok installed"));
}

// ---- helpers ----

/// Detaches the mount at its path when dropped (on a panic too), so that its daemon ends.
struct LazyUnmount(PathBuf);

impl Drop for LazyUnmount {
    fn drop(&mut self) {
        if mount_line(&self.0).is_some() {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// The object file of stripe 0 of inode `ino` in OST directory `ost` (docs/operations.md).
fn object_file(ost: &Path, ino: u64) -> PathBuf {
    ost.join("objects")
        .join(format!("{:02x}", ino % 256))
        .join(format!("{ino:016x}.0"))
}

/// XORs one byte of `path` in place (a bit rot the checksums must catch).
fn flip_byte(path: &Path, offset: u64) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
}

/// The mount-table line of `mnt` as this thread sees it.
fn mount_line(mnt: &Path) -> Option<String> {
    let want = mnt.to_str().unwrap();
    fs::read_to_string("/proc/thread-self/mounts")
        .unwrap()
        .lines()
        .find(|l| l.split(' ').nth(1) == Some(want))
        .map(str::to_string)
}

/// Runs `f` on a new thread in a private mount namespace in which /dev is an overlay of the
/// real one (device nodes and all) with a syslog socket at /dev/log, which `f` reads: the
/// machine's own /dev, where there may be no /dev/log, is left as it is. The overlay's
/// upper layers live under `scratch`.
fn with_syslog_socket(
    scratch: PathBuf,
    f: impl FnOnce(&std::os::unix::net::UnixDatagram) + Send + 'static,
) {
    let joined = std::thread::spawn(move || {
        // SAFETY: unshares this thread's mount namespace (and its fs context) only.
        assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNS) }, 0, "unshare");
        sys_mount(
            Path::new("none"),
            Path::new("/"),
            libc::MS_REC | libc::MS_PRIVATE,
        );
        let (upper, work) = (scratch.join("dev-upper"), scratch.join("dev-work"));
        fs::create_dir(&upper).unwrap();
        fs::create_dir(&work).unwrap();
        let opts = format!(
            "lowerdir=/dev,upperdir={},workdir={}",
            upper.display(),
            work.display()
        );
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let (ovl, dev, o) = (c("overlay"), c("/dev"), c(&opts));
        // SAFETY: valid C strings; an overlay mount on /dev of this namespace only.
        let r = unsafe {
            libc::mount(
                ovl.as_ptr(),
                dev.as_ptr(),
                ovl.as_ptr(),
                0,
                o.as_ptr().cast(),
            )
        };
        assert_eq!(r, 0, "overlay on /dev: {}", std::io::Error::last_os_error());
        let _ = fs::remove_file("/dev/log");
        let sock = std::os::unix::net::UnixDatagram::bind("/dev/log").expect("bind /dev/log");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        f(&sock);
    })
    .join();
    if let Err(panic) = joined {
        std::panic::resume_unwind(panic);
    }
}
