//! Sparse files through a real FUSE mount: a 1 GiB file with two 4 KiB blocks written far
//! apart, of one stripe and of two. `du` and `st_blocks` count what the objects hold
//! (`Layout::allocated`, from the OSTs' write answers), and lseek(2) `SEEK_DATA` and
//! `SEEK_HOLE` find the holes and the data (the client asks each stripe's object,
//! `OssOp::Seek`).

mod common;

use std::fs;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

/// Size of the sparse files.
const GIB: u64 = 1 << 30;
/// Where the second block goes: half-way, plus one stripe of 1 MiB (so stripe 1 of two).
const FAR: u64 = (512 << 20) + (1 << 20);
/// Bytes of each written block.
const BLOCK: u64 = 4096;

/// Makes `path` a `GIB`-byte file with `BLOCK` bytes written at 0 and at `FAR`, then
/// prints, one per line, lseek(2) from a fresh descriptor: each `(offset, whence)` of the
/// list gives the offset found or -1 for ENXIO.
const SCRIPT: &str = r#"
import os, sys, errno
path, size, far, block = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, size)
os.pwrite(fd, b"a" * block, 0)
os.pwrite(fd, b"b" * block, far)
os.fsync(fd)
os.close(fd)
fd = os.open(path, os.O_RDONLY)
asks = [(0, os.SEEK_DATA), (0, os.SEEK_HOLE), (block, os.SEEK_DATA), (far, os.SEEK_HOLE),
        (far + block, os.SEEK_DATA), (far + block, os.SEEK_HOLE), (size, os.SEEK_DATA),
        (size, os.SEEK_HOLE)]
for off, whence in asks:
    try:
        print(os.lseek(fd, off, whence))
    except OSError as e:
        if e.errno != errno.ENXIO:
            raise
        print(-1)
"#;

/// Most `du` may report for the sparse file, in KiB.
const DU_MAX_KIB: u64 = 1024;
/// Longest wait for the size report to reach every attribute cache.
const ATTR_WAIT: Duration = Duration::from_secs(5);

/// `stat -c %b` and `du -k` of `path` through the mount.
fn blocks_and_du(path: &Path) -> (u64, u64) {
    let run = |cmd: &str, args: &[&str]| {
        let out = Command::new(cmd).args(args).arg(path).output().unwrap();
        assert!(out.status.success(), "{cmd}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .next()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    (run("stat", &["-c", "%b"]), run("du", &["-k"]))
}

/// Checks that `path` counts its two written blocks and none of its holes.
fn counts_only_written_blocks(path: &Path) {
    let fits =
        |(blocks, du): (u64, u64)| (16..=DU_MAX_KIB * 2).contains(&blocks) && du <= DU_MAX_KIB;
    assert!(
        wait_until(ATTR_WAIT, || fits(blocks_and_du(path))),
        "st_blocks and du -k of {}: {:?}",
        path.display(),
        blocks_and_du(path)
    );
}

/// What [`SCRIPT`] must print.
fn expected() -> Vec<i64> {
    let (far, block) = (FAR as i64, BLOCK as i64);
    vec![0, block, far, far + block, -1, far + block, -1, -1]
}

/// Runs [`SCRIPT`] on `path`; its lines as numbers.
fn seeks(path: &std::path::Path) -> Vec<i64> {
    let out = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(path)
        .args([GIB, FAR, BLOCK].map(|n| n.to_string()))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.parse().unwrap())
        .collect()
}

#[test]
fn a_sparse_file_counts_its_blocks_and_seeks_find_its_holes() {
    if let Some(why) = fuse_unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let m = mount.path.clone();

    let one = m.join("one");
    assert_eq!(seeks(&one), expected(), "one stripe");
    assert_eq!(fs::metadata(&one).unwrap().len(), GIB);
    counts_only_written_blocks(&one);

    cli_ok(&c.mgs_addr, &["setstripe", "/two", "-c", "2", "-S", "1M"]);
    assert_eq!(number(&c.stat("/two"), "stripe_count"), 2);
    let two = m.join("two");
    assert_eq!(seeks(&two), expected(), "two stripes");
    counts_only_written_blocks(&two);
    // The data read back is what was written, and the holes are zeros.
    let f = fs::File::open(&two).unwrap();
    let read = |at: u64| {
        let mut buf = vec![0u8; BLOCK as usize];
        f.read_exact_at(&mut buf, at).unwrap();
        buf
    };
    assert!(read(0).iter().all(|&b| b == b'a'));
    assert!(read(FAR - BLOCK).iter().all(|&b| b == 0));
    assert!(read(FAR).iter().all(|&b| b == b'b'));
}
