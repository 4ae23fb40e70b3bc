//! Online migration with real processes (docs/migrate.md): a 1 GiB file restriped from one
//! stripe to four, then given a second copy, each time while one process reads it in a loop
//! (O_DIRECT, so every read goes to the OSTs) checking every byte and another appends to
//! it. No error, no wrong byte, no lost append; afterwards the layout is the new one, the
//! old object is gone from its OST, and `rustre fsck` is clean.

mod common;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// The file migrated.
const FILE_BYTES: u64 = 1 << 30;
/// What the reader reads per call (O_DIRECT: a multiple of the page size).
const READ_CHUNK: usize = 4 << 20;
/// One append: a record whose every byte tells its number.
const RECORD: usize = 4096;
/// Longest wait for the old objects to be deleted after the migration.
const RETIRE_WAIT: Duration = Duration::from_secs(60);

/// The byte at `off` of the first [`FILE_BYTES`].
fn pattern(off: u64) -> u8 {
    let w = (off / 8).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (w >> (8 * (off % 8))) as u8
}

fn fill(buf: &mut [u8], at: u64) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b = pattern(at + i as u64);
    }
}

/// Longest wait for a migrate to start writing its fresh objects.
const COPY_START_WAIT: Duration = Duration::from_secs(30);
/// How often [`wait_until_copying`] looks at the OSTs.
const COPY_POLL: Duration = Duration::from_millis(2);

/// Waits until the OSTs of `c` hold more object bytes than `before` (a migrate started
/// writing its fresh objects). Fails if `migrate` ends first or nothing comes within
/// [`COPY_START_WAIT`]. Not [`wait_until`]: its 100 ms steps are a third of the whole copy
/// here, and the migrate's end must stop the wait.
fn wait_until_copying(c: &ProcCluster, before: u64, migrate: &mut std::process::Child) {
    let deadline = Instant::now() + COPY_START_WAIT;
    loop {
        let held = c.objects_bytes();
        if held > before {
            return;
        }
        if let Some(status) = migrate.try_wait().unwrap() {
            panic!("the migrate ended ({status}) before its fresh objects took a byte");
        }
        assert!(
            Instant::now() < deadline,
            "the migrate wrote no fresh object within {COPY_START_WAIT:?} (OSTs hold {held} bytes)"
        );
        std::thread::sleep(COPY_POLL);
    }
}

/// Record `n`'s bytes.
fn record(n: u64) -> Vec<u8> {
    let mut r = vec![0u8; RECORD];
    for (i, b) in r.iter_mut().enumerate() {
        *b = (n.wrapping_mul(31).wrapping_add(i as u64 / 512)) as u8;
    }
    r
}

fn write_file(path: &Path) {
    let mut f = File::create(path).unwrap();
    let mut buf = vec![0u8; 8 << 20];
    let mut at = 0;
    while at < FILE_BYTES {
        fill(&mut buf, at);
        f.write_all(&buf).unwrap();
        at += buf.len() as u64;
    }
    f.sync_all().unwrap();
}

/// What the load did while the migration ran.
struct Load {
    stop: Arc<AtomicBool>,
    read: Arc<AtomicU64>,
    appended: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// A reader checking the first [`FILE_BYTES`] again and again with O_DIRECT, and an
/// appender adding records from number `first` on; either panics on any error or wrong byte.
fn start_load(path: &Path, first: u64) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let read = Arc::new(AtomicU64::new(0));
    let appended = Arc::new(AtomicU64::new(0));
    let reader = {
        let (path, stop, read) = (path.to_path_buf(), stop.clone(), read.clone());
        std::thread::spawn(move || {
            let f = OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_DIRECT)
                .open(&path)
                .unwrap();
            let mut raw = vec![0u8; READ_CHUNK + 4096];
            let skip = raw.as_ptr().align_offset(4096);
            let mut want = vec![0u8; READ_CHUNK];
            let mut at = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let buf = &mut raw[skip..skip + READ_CHUNK];
                let n = f
                    .read_at(buf, at)
                    .unwrap_or_else(|e| panic!("read at {at} during the migration: {e}"));
                assert_eq!(n, READ_CHUNK, "short read at {at}");
                fill(&mut want, at);
                if buf[..] != want[..] {
                    let bad = (0..READ_CHUNK).find(|i| buf[*i] != want[*i]).unwrap();
                    panic!("wrong byte at {} during the migration", at + bad as u64);
                }
                read.fetch_add(n as u64, Ordering::Relaxed);
                at = (at + READ_CHUNK as u64) % FILE_BYTES;
            }
        })
    };
    let appender = {
        let (path, stop, appended) = (path.to_path_buf(), stop.clone(), appended.clone());
        std::thread::spawn(move || {
            let mut f = OpenOptions::new().append(true).open(&path).unwrap();
            let mut n = first;
            while !stop.load(Ordering::Relaxed) {
                f.write_all(&record(n))
                    .unwrap_or_else(|e| panic!("append of record {n} during the migration: {e}"));
                n += 1;
                appended.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
            f.sync_all().unwrap();
        })
    };
    Load {
        stop,
        read,
        appended,
        threads: vec![reader, appender],
    }
}

impl Load {
    /// Stops both and returns (bytes read and checked, records appended).
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("the reader or the appender failed");
        }
        (
            self.read.load(Ordering::Relaxed),
            self.appended.load(Ordering::Relaxed),
        )
    }
}

/// Checks the whole file afresh: the pattern, then records `0..records` in order.
fn check_all(path: &Path, records: u64) {
    drop_caches();
    let f = File::open(path).unwrap();
    assert_eq!(
        f.metadata().unwrap().len(),
        FILE_BYTES + records * RECORD as u64,
        "every append is there"
    );
    let mut buf = vec![0u8; 8 << 20];
    let mut want = vec![0u8; 8 << 20];
    let mut at = 0;
    while at < FILE_BYTES {
        f.read_exact_at(&mut buf, at).unwrap();
        fill(&mut want, at);
        assert!(buf == want, "wrong bytes in [{at}, +8 MiB)");
        at += buf.len() as u64;
    }
    let mut r = vec![0u8; RECORD];
    for n in 0..records {
        f.read_exact_at(&mut r, FILE_BYTES + n * RECORD as u64)
            .unwrap();
        assert!(r == record(n), "append {n} lost or wrong");
    }
}

/// Runs `rustre migrate` on `/m/big.bin` with `args` under the load; returns the records
/// appended.
fn migrate_under_load(m: &str, file: &Path, first: u64, args: &[&str]) -> u64 {
    let load = start_load(file, first);
    // Let both get going before the copy starts.
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let mut cmd = vec!["migrate", "/m/big.bin"];
    cmd.extend_from_slice(args);
    let out = cli_ok(m, &cmd);
    eprintln!("rustre {cmd:?} took {:?}: {out}", started.elapsed());
    std::thread::sleep(Duration::from_millis(500));
    let (read, appended) = load.finish();
    eprintln!("during it: {read} bytes read and checked, {appended} records appended");
    assert!(
        read > 0 && appended > 0,
        "the load did not run during the migration"
    );
    appended
}

/// Waits until the object of `(ino, stripe)` on OST `ost` is gone.
fn wait_gone(c: &ProcCluster, ost: u32, ino: u64, stripe: u32) {
    let obj: PathBuf = c.object_file(ost, ino, stripe);
    assert!(
        wait_until(RETIRE_WAIT, || !obj.exists()),
        "old object {} still there",
        obj.display()
    );
}

#[test]
fn a_1_gib_file_restriped_and_replicated_under_a_reader_and_an_appender() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start_spec(ClusterSpec {
        ost_dirs: vec![None; 4],
        ..ClusterSpec::default()
    });
    let m = c.mgs_addr.clone();
    cli_ok(&m, &["mkdir", "/m"]);
    cli_ok(&m, &["setstripe", "/m", "--stripe-count", "1"]);
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let _mount = ForegroundMount::start(&m, &mnt, "");
    let file = mnt.join("m/big.bin");
    write_file(&file);
    let (ino, before, _) = placement(&m, "/m/big.bin");
    assert_eq!(before.len(), 1);

    // One stripe to four.
    let mut records = migrate_under_load(&m, &file, 0, &["--stripe-count", "4"]);
    let (same_ino, after, copy1) = placement(&m, "/m/big.bin");
    assert_eq!(same_ino, ino, "the inode stays");
    assert_eq!(after.len(), 4, "four stripes: {after:?}");
    assert!(copy1.is_empty());
    let shown = cli_ok(&m, &["getstripe", "/m/big.bin"]);
    assert_eq!(field(&shown, "stripe_count"), "4", "{shown}");
    assert_eq!(field(&shown, "replicas"), "1", "{shown}");
    wait_gone(&c, before[0], ino, 0);
    check_all(&file, records);

    // One copy to two.
    records += migrate_under_load(&m, &file, records, &["--replicas", "2"]);
    let (_, copy0, copy1) = placement(&m, "/m/big.bin");
    assert_eq!(copy0, after, "the first copies stay where they were");
    assert_eq!(copy1.len(), 4, "a second copy of every stripe: {copy1:?}");
    let shown = cli_ok(&m, &["getstripe", "/m/big.bin"]);
    assert_eq!(field(&shown, "replicas"), "2", "{shown}");
    for (i, (a, b)) in copy0.iter().zip(&copy1).enumerate() {
        assert_ne!(a, b, "both copies of stripe {i} on OST {a}");
        assert!(c.object_file(*b, ino, i as u32).exists());
    }
    check_all(&file, records);
    assert!(
        in_sync(&m, "/m/big.bin"),
        "no stale copy after the migration"
    );

    // Nothing left over: fsck finds every object where the layout says, and no other.
    let fsck = cli_ok(&m, &["fsck"]);
    assert!(!fsck.contains("orphan"), "{fsck}");
}

#[test]
fn an_interrupted_migrate_gives_the_file_up_at_once() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    cli_ok(&m, &["mkdir", "/m"]);
    cli_ok(&m, &["setstripe", "/m", "--stripe-count", "1"]);
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let _mount = ForegroundMount::start(&m, &mnt, "");
    let file = mnt.join("m/big.bin");
    write_file(&file);
    let (ino, before, _) = placement(&m, "/m/big.bin");

    let mut cmd = rustre_command();
    cmd.args(["--mgs", &m, "migrate", "/m/big.bin", "--replicas", "2"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let held = c.objects_bytes();
    let mut child = cmd.spawn().unwrap();
    // Inside the copy of 1 GiB: as soon as its fresh objects take bytes (a fixed wait was
    // not: an optimized build copied the whole file within 300 ms).
    wait_until_copying(&c, held, &mut child);
    // SAFETY: kill(2) on the child we spawned, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the migrate was not interrupted");
    assert!(err.contains("interrupted"), "{err}");
    let (_, after, copy1) = placement(&m, "/m/big.bin");
    assert_eq!((after, copy1), (before.clone(), vec![]), "the layout stays");

    // Given up at once (not left to its lease): a new migrate of the file is not refused
    // as busy, and the fresh objects of the first go.
    cli_ok(&m, &["migrate", "/m/big.bin", "--replicas", "2"]);
    let (same, copy0, copy1) = placement(&m, "/m/big.bin");
    assert_eq!((same, copy0), (ino, before));
    assert_eq!(copy1.len(), 1);
    check_all(&file, 0);
}
