//! Permissions through a real FUSE mount, checked by the MDS (the mount runs without
//! `default_permissions`): POSIX ACLs set and read with `setfacl`/`getfacl`, enforced for
//! the users they name, inherited from a directory's default ACL without the umask, kept
//! through chmod and rename; and exec of binaries whose only execute bit is the caller's
//! class. Users are switched with `setpriv`, the tools are from the `acl` package
//! (scripts/install-deps.sh).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

/// uid and gid of `nobody` on Debian, the user named by the ACLs here.
const NOBODY: u32 = 65534;
/// A user no ACL names (Debian's `daemon`).
const OTHER: u32 = 1;
/// The owner of the binaries of the exec test (no such user needs to exist).
const OWNER: u32 = 1000;

/// Why this test cannot run here (FUSE, root, or a tool missing); under `CI=true`, a panic.
fn unavailable() -> Option<String> {
    fuse_or_tools_unavailable(&["setfacl", "getfacl", "getfattr", "setpriv"])
}

/// True when `script` succeeds as `uid`:`gid` in `dir`.
fn ok_as(uid: u32, gid: u32, dir: &Path, script: &str) -> bool {
    run_as(uid, gid, dir, script).status.success()
}

#[test]
fn posix_acls_and_exec_bits_through_a_mount() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start();
    // Other users must reach the mount point through the cluster's directory.
    fs::set_permissions(c.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "allow_other");
    let m = mount.path.clone();

    // An access ACL: the named user reads and writes, another user may not read.
    sh(&m, "echo hello > f; chmod 640 f; setfacl -m u:65534:rw f");
    assert!(ok_as(NOBODY, NOBODY, &m, "cat f && echo more >> f"));
    assert!(!ok_as(OTHER, OTHER, &m, "cat f"));
    assert_eq!(sh(&m, "cat f"), "hello\nmore\n");
    let acl = sh(&m, "getfacl -cn f");
    assert!(acl.contains("user:65534:rw-\n"), "{acl}");
    assert!(acl.contains("mask::rw-\n"), "{acl}");
    assert_eq!(
        sh(&m, "stat -c %a f"),
        "660\n",
        "the mask is the group bits"
    );
    assert!(sh(&m, "getfattr -d -m - f").contains("system.posix_acl_access"));

    // A chmod changes the mask: the entry is still there, and no longer effective.
    sh(&m, "chmod 600 f");
    let acl = sh(&m, "getfacl -cn f");
    assert!(acl.contains("user:65534:rw-\t#effective:---"), "{acl}");
    assert!(acl.contains("mask::---"), "{acl}");
    assert!(!ok_as(NOBODY, NOBODY, &m, "cat f"));
    // The ACL goes with the inode through a rename.
    sh(&m, "chmod 660 f; mv f g");
    assert!(ok_as(NOBODY, NOBODY, &m, "cat g"));
    // Only the owner sets ACLs.
    assert!(!ok_as(NOBODY, NOBODY, &m, "setfacl -m u:1:r g"));

    // A default ACL: new entries inherit it, masked by their mode, the umask left aside.
    sh(&m, "mkdir d; setfacl -d -m u:65534:rwx d");
    sh(&m, "umask 077; touch d/new; mkdir d/sub");
    let acl = sh(&m, "getfacl -cn d/new");
    assert!(acl.contains("user:65534:rwx\t#effective:rw-"), "{acl}");
    assert!(acl.contains("mask::rw-"), "{acl}");
    assert_eq!(sh(&m, "stat -c %a d/new d/sub"), "664\n775\n");
    assert!(ok_as(
        NOBODY,
        NOBODY,
        &m,
        "echo x > d/new && touch d/sub/mine"
    ));
    assert!(!ok_as(OTHER, OTHER, &m, "echo x > d/new"));
    let acl = sh(&m, "getfacl -cn d/sub");
    assert!(acl.contains("default:user:65534:rwx"), "{acl}");
    // Elsewhere the umask applies.
    sh(&m, "umask 027; touch plain");
    assert_eq!(sh(&m, "stat -c %a plain"), "640\n");

    // Exec follows the execute bit of the caller's class, with no read permission.
    sh(
        &m,
        "for p in 0001 0010 0100; do cp /bin/true x$p; chown 1000:1 x$p; chmod $p x$p; done",
    );
    let runs = |uid, gid, p: &str| ok_as(uid, gid, &m, &format!("./x{p}"));
    for (p, who) in [("0001", "other"), ("0010", "group"), ("0100", "owner")] {
        assert_eq!(runs(NOBODY, NOBODY, p), who == "other", "nobody runs x{p}");
        assert_eq!(
            runs(NOBODY, 1, p),
            who == "group",
            "a group member runs x{p}"
        );
        assert_eq!(runs(OWNER, OWNER, p), who == "owner", "the owner runs x{p}");
        assert!(runs(0, 0, p), "root runs x{p}: it has an execute bit");
    }
    // Root may not execute what no one may, and access(X_OK) says the same.
    sh(&m, "cp /bin/true plainbin; chmod 644 plainbin");
    assert!(!ok_as(0, 0, &m, "./plainbin"));
    assert!(!ok_as(0, 0, &m, "test -x plainbin"));
    assert!(ok_as(0, 0, &m, "test -x x0001"));
    assert!(ok_as(
        NOBODY,
        NOBODY,
        &m,
        "test -x x0001 && ! test -r x0001"
    ));
}

/// `tar --xattrs --acls` through a mount both ways: tar makes each file with
/// mknod(S_IFREG) to set its attributes before the data (that failed with EIO once: the
/// client took the MDS's answer to such a mknod for an error), and the user xattrs, ACLs,
/// bytes and modes come back as they went in.
#[test]
fn tar_with_xattrs_and_acls_round_trips_through_a_mount() {
    if let Some(why) = fuse_or_tools_unavailable(&["tar", "setfattr", "getfattr", "getfacl"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let m = mount.path.clone();
    sh(
        &m,
        "mkdir src && for i in 1 2 3; do head -c $((i * 5000)) /dev/urandom > src/f$i; done; \
         setfattr -n user.color -v blue src/f1; setfattr -n user.empty src/f2; \
         setfacl -m u:65534:r src/f3; chmod 751 src/f2; \
         tar --xattrs --acls -cf x.tar src && mkdir out && tar --xattrs --acls -xf x.tar -C out",
    );
    sh(&m, "diff -r src out/src");
    let attrs = |dir: &str| sh(&m, &format!("cd {dir} && getfattr -d -m user. f1 f2 f3"));
    assert!(attrs("src").contains("user.color=\"blue\""));
    assert_eq!(attrs("src"), attrs("out/src"), "user xattrs");
    let acl = |dir: &str| sh(&m, &format!("cd {dir} && getfacl -cn f3"));
    assert!(acl("out/src").contains("user:65534:r--"));
    assert_eq!(acl("src"), acl("out/src"), "ACL");
    let modes = |dir: &str| sh(&m, &format!("cd {dir} && stat -c '%n %a %s' f1 f2 f3"));
    assert_eq!(modes("src"), modes("out/src"));
}
