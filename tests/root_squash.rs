//! Root squash and the admin credential, with real processes and real mounts: an MDS run
//! with `--root-squash` and an admin secret; root on a plain mount is nobody (EACCES on
//! another user's 0600 file, files it makes are nobody's), root on a mount holding the admin
//! secret is root; `rustre fsck --repair` is refused with a clear error without the admin
//! secret (or with a wrong one) and runs with it.

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// How long another mount may take to see a change (the feed lease, with room for a loaded
/// machine).
const SEEN_WITHIN: Duration = Duration::from_secs(10);

/// The uid and gid squashed root runs as in this test.
const SQUASH_ID: u32 = 65534;
/// The unprivileged user owning the private file.
const USER: u32 = 1000;

/// Writes a new secret at `path` with `rustre gen-secret`.
fn gen_secret(path: &Path) {
    let out = Command::new(rustre_bin())
        .arg("gen-secret")
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A path that lives as long as the test process (the cluster spec takes `&'static str`).
fn leak(p: &Path) -> &'static str {
    Box::leak(p.to_str().unwrap().to_string().into_boxed_str())
}

#[test]
fn root_is_squashed_and_admin_commands_need_the_admin_secret() {
    if let Some(why) = fuse_or_tools_unavailable(&["setpriv"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let keys = tempfile::tempdir().unwrap();
    let admin_secret = keys.path().join("admin.secret");
    let wrong_secret = keys.path().join("wrong.secret");
    gen_secret(&admin_secret);
    gen_secret(&wrong_secret);
    let admin = leak(&admin_secret);
    let c = ProcCluster::start_spec(ClusterSpec {
        mds_args: vec!["--root-squash", "65534:65534"],
        mds_env: vec![("RUSTRE_ADMIN_SECRET_FILE", admin)],
        ..ClusterSpec::default()
    });
    let m = c.mgs_addr.clone();
    let (adm, plain) = (c.path("admin-mnt"), c.path("plain-mnt"));
    fs::create_dir(&adm).unwrap();
    fs::create_dir(&plain).unwrap();
    let _admin_mount =
        ForegroundMount::start(&m, &adm, &format!("allow_other,admin_secret_file={admin}"));
    let _plain_mount = ForegroundMount::start(&m, &plain, "allow_other");

    // On the admin host's mount root is root: it makes a home for the user and a shared
    // scratch directory.
    fs::create_dir(adm.join("home")).unwrap();
    std::os::unix::fs::chown(adm.join("home"), Some(USER), Some(USER)).unwrap();
    fs::create_dir(adm.join("scratch")).unwrap();
    fs::set_permissions(adm.join("scratch"), fs::Permissions::from_mode(0o1777)).unwrap();

    // The user writes a private file through the plain mount.
    let out = run_as(
        USER,
        USER,
        &plain.join("home"),
        "printf private > mine && chmod 600 mine",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Root on the plain mount is nobody: no reading it, no writing at the top, and what it
    // makes is nobody's.
    let read = fs::read(plain.join("home/mine")).unwrap_err();
    assert_eq!(read.raw_os_error(), Some(libc::EACCES), "{read}");
    let top = fs::write(plain.join("rootfile"), b"x").unwrap_err();
    assert_eq!(top.raw_os_error(), Some(libc::EACCES), "{top}");
    fs::write(plain.join("scratch/made-by-root"), b"x").unwrap();
    // Another mount sees a new name within a change-feed round trip, not at once
    // (docs/metadata-cache.md, "The consistency rule").
    let made = adm.join("scratch/made-by-root");
    assert!(
        wait_until(SEEN_WITHIN, || made.exists()),
        "the admin mount never saw the file"
    );
    let meta = fs::metadata(&made).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (SQUASH_ID, SQUASH_ID));
    let chown = std::os::unix::fs::chown(plain.join("home/mine"), Some(0), None).unwrap_err();
    assert_eq!(chown.raw_os_error(), Some(libc::EPERM), "{chown}");

    // Root on the admin mount is root (once that mount sees the user's file).
    let mine = adm.join("home/mine");
    assert!(
        wait_until(SEEN_WITHIN, || mine.exists()),
        "the admin mount never saw it"
    );
    assert_eq!(fs::read(&mine).unwrap(), b"private");

    // fsck --repair: refused without the admin secret, and with a wrong one, with a message
    // saying what is missing; done with it.
    let admin_error = |args: &[&str]| {
        let out = cli(&m, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "{args:?} ran without the admin secret"
        );
        assert!(
            stderr.contains("operation not permitted") && stderr.contains("admin credential"),
            "{args:?}: {stderr}"
        );
    };
    admin_error(&["fsck", "--repair"]);
    let wrong = wrong_secret.to_str().unwrap();
    admin_error(&["--admin-secret-file", wrong, "fsck", "--repair"]);
    let fsck = cli_ok(
        &m,
        &["--admin-secret-file", admin, "fsck", "--repair", "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(&fsck).unwrap();
    assert!(report["files"].as_u64() >= Some(2), "{report}");
}
