//! The kernel's write-back cache, `-o writeback_cache` (opt-in; docs/mount.md, "The
//! kernel's write-back cache"): the kernel really uses it (small writes reach the client
//! in batches, where a mount without it gets every write(2)); what is written through it
//! reads back exactly, size and mtime included, from another mount after the close
//! (close-to-open); and a writer that does not own the file closes it without error (the
//! kernel's write-back of the file's times is not a utimensat the MDS would refuse); and fsx
//! passes on such a mount.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Small writes each test makes through one descriptor.
const SMALL_WRITES: usize = 64;
/// Bytes of each of them: far below a page, so the kernel's cache merges them.
const SMALL_WRITE_BYTES: usize = 64;
/// Most write requests the client may see for [`SMALL_WRITES`] cached writes (the kernel
/// writes the one dirty page back once; a little room for a background write-back that
/// starts midway).
const MOST_BATCHED_CALLS: f64 = 4.0;

/// A cluster and two mounts of it: `a` with the options given, `b` without any.
struct Mounts {
    c: ProcCluster,
    a: ForegroundMount,
    b: ForegroundMount,
}

fn two_mounts_with(a_opts: &str, b_opts: &str) -> Mounts {
    let c = ProcCluster::start();
    let (pa, pb): (PathBuf, PathBuf) = (c.path("a"), c.path("b"));
    fs::create_dir(&pa).unwrap();
    fs::create_dir(&pb).unwrap();
    let a = ForegroundMount::start(&c.mgs_addr, &pa, a_opts);
    let b = ForegroundMount::start(&c.mgs_addr, &pb, b_opts);
    Mounts { c, a, b }
}

/// The writes that reached the client of the mount serving metrics at `addr` so far.
fn write_calls(addr: &str) -> f64 {
    let mut s = TcpStream::connect(addr).expect("the mount's metrics endpoint");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find(|l| l.starts_with("rustre_client_write_calls_total "))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
        .expect("rustre_client_write_calls_total in the mount's metrics")
}

/// [`SMALL_WRITES`] writes of [`SMALL_WRITE_BYTES`] to a new file `path`, then the close;
/// returns what was written.
fn small_writes(path: &Path) -> Vec<u8> {
    let data = random_bytes(SMALL_WRITES * SMALL_WRITE_BYTES, 17);
    let mut f = fs::File::create_new(path).unwrap();
    for chunk in data.chunks(SMALL_WRITE_BYTES) {
        f.write_all(chunk).unwrap();
    }
    drop(f);
    data
}

#[test]
fn small_writes_reach_the_client_in_batches_only_with_the_option() {
    if skip_without_fuse() {
        return;
    }
    let (ma, mb) = (free_addr(), free_addr());
    let m = two_mounts_with(
        &format!("writeback_cache,metrics={ma}"),
        &format!("metrics={mb}"),
    );
    let before = (write_calls(&ma), write_calls(&mb));
    let on = small_writes(&m.a.path.join("on"));
    let off = small_writes(&m.b.path.join("off"));
    let calls = (write_calls(&ma) - before.0, write_calls(&mb) - before.1);
    assert!(
        calls.1 >= SMALL_WRITES as f64,
        "without the option every write(2) is a request: {} for {SMALL_WRITES}",
        calls.1
    );
    assert!(
        calls.0 >= 1.0 && calls.0 <= MOST_BATCHED_CALLS,
        "with writeback_cache the kernel sends its cached page: {} requests for {SMALL_WRITES} writes",
        calls.0
    );
    // Each mount reads the other's file back whole.
    assert_eq!(fs::read(m.b.path.join("on")).unwrap(), on);
    assert_eq!(fs::read(m.a.path.join("off")).unwrap(), off);
}

#[test]
fn what_is_written_through_the_cache_is_read_back_from_another_mount_after_close() {
    if skip_without_fuse() {
        return;
    }
    let m = two_mounts_with("writeback_cache", "");
    let (a, b) = (&m.a.path, &m.b.path);
    // 1 MiB and an odd tail in 1000-byte writes (none page-aligned), then a partial-page
    // overwrite inside it (the kernel reads the page in first) and one past the end that
    // leaves a hole.
    let mut want = random_bytes((1 << 20) + 777, 3);
    let path = a.join("file");
    let mut f = fs::File::create_new(&path).unwrap();
    for chunk in want.chunks(1000) {
        f.write_all(chunk).unwrap();
    }
    drop(f);
    let patch = random_bytes(3000, 4);
    let mut f = fs::File::options().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(4097)).unwrap();
    f.write_all(&patch).unwrap();
    want[4097..4097 + patch.len()].copy_from_slice(&patch);
    let end = want.len() as u64 + 10_000;
    f.seek(SeekFrom::Start(end)).unwrap();
    f.write_all(b"tail").unwrap();
    drop(f);
    want.resize(end as usize, 0);
    want.extend_from_slice(b"tail");

    let (on_a, on_b) = (
        fs::metadata(&path).unwrap(),
        fs::metadata(b.join("file")).unwrap(),
    );
    assert_eq!(on_a.len(), want.len() as u64, "the writer's size");
    assert_eq!(on_b.len(), want.len() as u64, "the size another mount sees");
    assert_eq!(
        (on_b.mtime(), on_b.mtime_nsec()),
        (on_a.mtime(), on_a.mtime_nsec()),
        "the mtime the writer's kernel gave its writes reached the MDS"
    );
    assert!(
        fs::read(b.join("file")).unwrap() == want,
        "the bytes another mount reads"
    );
}

/// A user writing a file root owns.
const WRITER: u32 = 1000;

#[test]
fn a_writer_that_does_not_own_the_file_closes_it_without_error() {
    if skip_without_fuse() {
        return;
    }
    let m = two_mounts_with("writeback_cache,allow_other", "");
    let dir = m.a.path.join("shared");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
    let file = dir.join("rootfile");
    fs::write(&file, b"old").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o666)).unwrap();
    // dd reports a failed close (of its output), which a shell redirection would not.
    let script = "printf ' and new' | dd of=rootfile oflag=append conv=notrunc status=none";
    let out = run_as(WRITER, WRITER, &dir, script);
    assert!(
        out.status.success(),
        "write and close by uid {WRITER}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let on_b = m.b.path.join("shared/rootfile");
    assert_eq!(fs::read(&on_b).unwrap(), b"old and new");
    let meta = fs::metadata(&on_b).unwrap();
    assert_eq!(
        (meta.uid(), meta.len()),
        (0, 11),
        "owner kept, size reported"
    );
}

/// fsx operations on a `writeback_cache` mount (every operation fsx has:
/// tests/data/fsx.toml); 100,000 were run by hand (docs/mount.md).
const FSX_OPERATIONS: u32 = 3000;

#[test]
fn fsx_passes_on_a_writeback_cache_mount() {
    if let Some(why) = fuse_or_tools_unavailable(&["fsx"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let m = two_mounts_with("writeback_cache", "");
    // Striped over both OSTs in 64 KiB units, so operations cross stripe boundaries.
    let dir = m.a.path.join("striped");
    fs::create_dir(&dir).unwrap();
    let args = ["setstripe", "/striped", "-c", "2", "-S", "64K"];
    assert!(
        wait_until(Duration::from_secs(20), || cli(&m.c.mgs_addr, &args)
            .status
            .success()),
        "setstripe"
    );
    let artifacts = tempfile::tempdir().unwrap();
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/fsx.toml");
    let out = std::process::Command::new("fsx")
        .args(["-N", &FSX_OPERATIONS.to_string(), "-S", "77", "-f"])
        .arg(&conf)
        .arg("-P")
        .arg(artifacts.path())
        .arg(dir.join("fsx.file"))
        .output()
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && all.contains("All operations completed A-OK"),
        "{all}"
    );
}
