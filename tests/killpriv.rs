//! Setuid/setgid bits and `security.capability` through a real FUSE mount: every path that
//! changes a file's data clears them by Linux's rules (buffered, O_DSYNC and O_DIRECT writes,
//! fallocate, punch hole
//! and zero range, by the owner and by another user with write permission; root keeps
//! setuid but loses the capability), and fallocate past the OSTs' free space is ENOSPC with
//! nothing changed. Users are switched with `setpriv`; `setcap`/`getcap` are from
//! libcap2-bin, fallocate modes and O_DIRECT are driven by python3 (scripts/install-deps.sh).

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::*;

/// The owner of the files (no such user needs to exist).
const OWNER: u32 = 1000;
/// Another user, writing through the "other" write bit (Debian's `nobody`).
const NOBODY: u32 = 65534;

/// python3 doing one data-changing call on file `sys.argv[2]`: `buf` (a buffered write),
/// `dsync` (an O_DSYNC write), `dio` (an aligned 4 KiB O_DIRECT write), `falloc` (posix_fallocate, mode 0), `punch` (PUNCH_HOLE|KEEP_SIZE),
/// `zero` (ZERO_RANGE) or `big` (mode-0 fallocate of `sys.argv[3]` bytes).
const DATA_OP: &str = r#"
import ctypes, mmap, os, sys
op, path = sys.argv[1], sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
def falloc(fd, mode, off, n):
    if libc.fallocate(fd, mode, off, n) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
if op in ("buf", "dsync"):
    fd = os.open(path, os.O_WRONLY | (os.O_DSYNC if op == "dsync" else 0))
    os.write(fd, b"w" * 100)
elif op == "dio":
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    buf = mmap.mmap(-1, 4096)
    buf.write(b"d" * 4096)
    os.write(fd, buf)
else:
    fd = os.open(path, os.O_WRONLY)
    if op == "falloc":
        os.posix_fallocate(fd, 0, 65536)
    elif op == "punch":
        falloc(fd, 0x01 | 0x02, 0, 4096)
    elif op == "zero":
        falloc(fd, 0x10, 0, 4096)
    elif op == "big":
        falloc(fd, int(sys.argv[4]), 0, int(sys.argv[3]))
os.close(fd)
"#;

/// Why this test cannot run here (FUSE, root, or a tool missing); under `CI=true`, a panic.
fn unavailable() -> Option<String> {
    fuse_or_tools_unavailable(&["setcap", "getcap", "setpriv", "python3"])
}

/// Runs `script` as `uid` in `dir`; panics with its output unless it succeeds.
fn sh_as(uid: u32, dir: &Path, script: &str) -> String {
    let out = run_as(uid, uid, dir, &format!("set -euo pipefail; {script}"));
    assert!(
        out.status.success(),
        "`{script}` as uid {uid} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The python call of [`DATA_OP`] doing `op` on `file` (with `extra` arguments).
fn data_op(op: &str, file: &str, extra: &str) -> String {
    format!("python3 -c '{DATA_OP}' {op} {file} {extra}")
}

/// Makes `name` as root: 8 KiB of data, owned by [`OWNER`], mode 06777 (setgid with
/// group-execute, writable by all), carrying a file capability.
fn setid_file(m: &Path, name: &str) {
    sh_as(
        0,
        m,
        &format!(
            "head -c 8192 /dev/urandom > {name}; chown {OWNER}:{OWNER} {name}; \
             chmod 6777 {name}; setcap cap_net_raw+ep {name}"
        ),
    );
    assert_eq!(sh_as(0, m, &format!("stat -c %a {name}")), "6777\n");
    assert!(sh_as(0, m, &format!("getcap {name}")).contains("cap_net_raw"));
}

/// Mode (octal) and `getcap` output of `name`, read right after the call, as root.
fn mode_and_caps(m: &Path, name: &str) -> (String, String) {
    let mode = sh_as(0, m, &format!("stat -c %a {name}"));
    let caps = sh_as(0, m, &format!("getcap {name}"));
    (mode.trim().to_string(), caps.trim().to_string())
}

#[test]
fn writes_and_fallocate_clear_setid_bits_and_capabilities() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start();
    fs::set_permissions(c.dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "allow_other");
    let m = mount.path.clone();

    for op in ["buf", "dsync", "dio", "falloc", "punch", "zero"] {
        for (who, uid) in [("owner", OWNER), ("other", NOBODY)] {
            let name = format!("{op}-{who}");
            setid_file(&m, &name);
            sh_as(uid, &m, &data_op(op, &name, ""));
            let (mode, caps) = mode_and_caps(&m, &name);
            assert_eq!(mode, "777", "{op} by the {who}: setuid and setgid go");
            assert_eq!(caps, "", "{op} by the {who}: the capability goes");
        }
        // Root (CAP_FSETID) keeps the setid bits, but not the capability.
        let name = format!("{op}-root");
        setid_file(&m, &name);
        sh_as(0, &m, &data_op(op, &name, ""));
        let (mode, caps) = mode_and_caps(&m, &name);
        assert_eq!(mode, "6777", "{op} by root keeps the setid bits");
        assert_eq!(caps, "", "{op} by root: the capability goes");
    }
    // The data changes went through.
    let data = fs::read(m.join("dio-other")).unwrap();
    assert_eq!(&data[..4096], &[b'd'; 4096][..]);
    assert_eq!(fs::read(m.join("zero-owner")).unwrap()[..4096], [0; 4096]);
    assert_eq!(fs::metadata(m.join("falloc-other")).unwrap().len(), 65536);

    // Past the free space of every OST: ENOSPC, for mode 0 and KEEP_SIZE, and nothing moves.
    let st = nix_statvfs(&m);
    let too_big = st.saturating_mul(2).max(1 << 30);
    sh_as(0, &m, "echo hello > big");
    for mode in [0, 1] {
        let out = run_as(
            0,
            0,
            &m,
            &data_op("big", "big", &format!("{too_big} {mode}")),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "fallocate of {too_big} bytes (mode {mode}) worked"
        );
        assert!(
            err.contains("No space left on device"),
            "mode {mode}: {err}"
        );
    }
    assert_eq!(fs::read(m.join("big")).unwrap(), b"hello\n");
    // Within the free space it works.
    sh_as(0, &m, &data_op("big", "big", "1048576 0"));
    assert_eq!(fs::metadata(m.join("big")).unwrap().len(), 1 << 20);
}

/// Bytes free to users on the mount at `m` (statvfs).
fn nix_statvfs(m: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(m)
        .output()
        .expect("stat -f");
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().unwrap());
    it.next().unwrap() * it.next().unwrap()
}

/// Files written.
const NEW_FILES: usize = 50;

/// A file this client has just made has no capability: the kernel's probe before the first
/// write is answered without asking the MDS, for `O_CREAT` without `O_EXCL` too (a shell's
/// `>`, Rust's `fs::write`), and a capability set later still goes on a write.
#[test]
fn new_files_need_no_capability_probe_at_the_mds() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let metrics = free_addr();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, &format!("metrics={metrics}"));
    let m = mount.path.clone();
    let probes = || mds_calls(&metrics, "GetXattr");
    let before = probes();
    for i in 0..NEW_FILES {
        fs::write(m.join(format!("rust-{i}")), b"data").unwrap();
    }
    sh_as(
        0,
        &m,
        &format!("for i in $(seq {NEW_FILES}); do echo data > shell-$i; done"),
    );
    let made = probes() - before;
    // Was one per file (2 x NEW_FILES); a few may be asked where a write came more than
    // the attribute TTL after its create on a loaded machine.
    assert!(
        made < NEW_FILES as f64 / 5.0,
        "{made} capability probes for {} new files",
        2 * NEW_FILES
    );
    // A capability set on a file made here is not hidden by the answer kept at its create:
    // it goes on the next write.
    setid_file(&m, "old");
    sh_as(0, &m, "echo more >> old");
    assert_eq!(mode_and_caps(&m, "old").1, "", "the capability goes");
}
