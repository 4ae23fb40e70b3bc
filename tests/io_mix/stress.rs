//! Writers and readers of one file, every call a random [`Way`], for [`STRESS_TIME`].
//!
//! The file is [`BLOCKS`] blocks of [`BLOCK`] bytes. Every 8-byte word of block `i` at
//! version `v` holds `(i << 32) | v`; the file starts with every block at version 1. Block
//! `i` belongs to writer `(i / RUN) % WRITERS`, which raises its version by one per write
//! and publishes `started[i]` before the write and `completed[i]` after. A reader notes
//! `completed` before its read and `started` after: a block must read as a version between
//! the two. When no write of the block overlapped the read (the two are equal) the whole
//! block must be exactly that version; otherwise its words may mix versions being written,
//! but every word must still name the block (never zeros, never another block's bytes). A
//! thread beside them calls fallocate(2) (allocating modes, which change no byte) on ranges
//! the others use. At the end every block must hold its last version, through every way and
//! after a remount.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::common::*;
use crate::ways::{fallocate, Aligned, Fds, Mapping, Way};

/// Bytes of a block (the unit of ownership and of versions; one page).
const BLOCK: usize = 4096;
/// Blocks in the file (2 MiB: 32 stripes of 64 KiB over two OSTs).
const BLOCKS: usize = 512;
/// Consecutive blocks a writer owns; a write covers 1 to `RUN` of them.
const RUN: usize = 4;
/// Writer threads.
const WRITERS: usize = 3;
/// Reader threads.
const READERS: usize = 3;
/// Most blocks one read covers.
const READ_MAX_BLOCKS: usize = 8;
/// How long the writers and readers run.
pub(crate) const STRESS_TIME: Duration = Duration::from_secs(60);
/// Pause between two fallocate calls.
const FALLOCATE_PAUSE: Duration = Duration::from_millis(20);
/// One write in this many is followed by fsync (or msync for a mapped one).
const SYNC_ONE_IN: u32 = 32;

/// The word every 8 bytes of block `i` at version `v` hold.
fn word(i: usize, v: u32) -> u64 {
    ((i as u64) << 32) | u64::from(v)
}

fn fill(buf: &mut [u8], first: usize, v: &[u32]) {
    for (k, chunk) in buf.chunks_mut(BLOCK).enumerate() {
        for w in chunk.chunks_mut(8) {
            w.copy_from_slice(&word(first + k, v[k]).to_le_bytes());
        }
    }
}

/// What writers publish and readers check against.
struct Model {
    started: Vec<AtomicU32>,
    completed: Vec<AtomicU32>,
    /// The way of each block's last completed write (index into [`Way::ALL`]).
    last_way: Vec<AtomicU8>,
    stop: AtomicBool,
    /// Calls made, per way (buffered, direct, mapped) and kind (read, write).
    calls: [[AtomicU64; 3]; 2],
}

fn way_index(w: Way) -> usize {
    Way::ALL.iter().position(|x| *x == w).unwrap()
}

/// Checks block `i` as read (`got`), `lo` and `hi` the versions noted before and after.
fn check_block(i: usize, got: &[u8], lo: u32, hi: u32) -> Result<(), String> {
    let mut words = got
        .chunks(8)
        .map(|w| u64::from_le_bytes(w.try_into().unwrap()))
        .enumerate();
    if lo == hi {
        let want = word(i, lo);
        if let Some((k, bad)) = words.find(|(_, w)| *w != want) {
            return Err(format!(
                "block {i} word {k} is {bad:#018x} (block {}, version {}), expected version \
                 {lo} (no write of it overlapped the read)",
                bad >> 32,
                bad as u32
            ));
        }
    } else if let Some((k, w)) = words.find(|(_, w)| (*w >> 32) as usize != i || *w as u32 == 0) {
        return Err(format!(
            "block {i} word {k} is {w:#018x} while versions {lo}..={hi} were written"
        ));
    }
    Ok(())
}

/// The version block `i` reads as now through each way (for a failure's message).
fn second_look(fds: &Fds, map: &Mapping, i: usize) -> String {
    let mut buf = Aligned::zeroed(BLOCK);
    let looks: Vec<String> = Way::ALL
        .iter()
        .map(|way| {
            let data = &mut buf.as_mut_slice()[..BLOCK];
            match fds.read(*way, map, (i * BLOCK) as u64, data) {
                Ok(_) => format!(
                    "{way:?} {:#018x}",
                    u64::from_le_bytes(data[..8].try_into().unwrap())
                ),
                Err(e) => format!("{way:?} {e}"),
            }
        })
        .collect();
    looks.join(", ")
}

fn writer(id: usize, fds: Fds, map: Arc<Mapping>, m: Arc<Model>) {
    let mut rng = StdRng::seed_from_u64(100 + id as u64);
    let runs: Vec<usize> = (0..BLOCKS / RUN).filter(|r| r % WRITERS == id).collect();
    let mut buf = Aligned::zeroed(RUN * BLOCK);
    let mut versions = [0u32; RUN];
    while !m.stop.load(Ordering::Relaxed) {
        let run = runs[rng.random_range(0..runs.len())];
        let first = run * RUN + rng.random_range(0..RUN);
        let n = rng.random_range(1..=RUN - first % RUN);
        for (v, started) in versions.iter_mut().zip(&m.started[first..first + n]) {
            *v = started.load(Ordering::SeqCst) + 1;
            started.store(*v, Ordering::SeqCst);
        }
        let data = &mut buf.as_mut_slice()[..n * BLOCK];
        fill(data, first, &versions[..n]);
        let way = Way::ALL[rng.random_range(0..3)];
        let at = (first * BLOCK) as u64;
        if let Err(e) = fds.write(way, &map, at, data) {
            panic!("{way:?} write of blocks {first}..{}: {e}", first + n);
        }
        if rng.random_ratio(1, SYNC_ONE_IN) {
            match way {
                Way::Mapped => map.sync(at as usize, data.len()),
                _ => fds.buffered.sync_data().unwrap(),
            }
        }
        for (k, v) in versions[..n].iter().enumerate() {
            m.last_way[first + k].store(way_index(way) as u8, Ordering::SeqCst);
            m.completed[first + k].store(*v, Ordering::SeqCst);
        }
        m.calls[1][way_index(way)].fetch_add(1, Ordering::Relaxed);
    }
}

fn reader(id: usize, fds: Fds, map: Arc<Mapping>, m: Arc<Model>) {
    let mut rng = StdRng::seed_from_u64(200 + id as u64);
    let mut buf = Aligned::zeroed(READ_MAX_BLOCKS * BLOCK);
    let mut lo = [0u32; READ_MAX_BLOCKS];
    while !m.stop.load(Ordering::Relaxed) {
        let first = rng.random_range(0..BLOCKS);
        let n = rng.random_range(1..=READ_MAX_BLOCKS.min(BLOCKS - first));
        for (l, completed) in lo.iter_mut().zip(&m.completed[first..first + n]) {
            *l = completed.load(Ordering::SeqCst);
        }
        let way = Way::ALL[rng.random_range(0..3)];
        let data = &mut buf.as_mut_slice()[..n * BLOCK];
        match fds.read(way, &map, (first * BLOCK) as u64, data) {
            Ok(got) if got == data.len() => {}
            Ok(got) => panic!("{way:?} read of blocks {first}..{}: {got} bytes", first + n),
            Err(e) => panic!("{way:?} read of blocks {first}..{}: {e}", first + n),
        }
        for k in 0..n {
            let hi = m.started[first + k].load(Ordering::SeqCst);
            let block = &data[k * BLOCK..(k + 1) * BLOCK];
            if let Err(e) = check_block(first + k, block, lo[k], hi) {
                let by = Way::ALL[m.last_way[first + k].load(Ordering::SeqCst) as usize];
                panic!(
                    "{way:?} read of blocks {first}..{}: {e}; the block's last write went \
                     {by:?}; read again: {}",
                    first + n,
                    second_look(&fds, &map, first + k)
                );
            }
        }
        m.calls[0][way_index(way)].fetch_add(1, Ordering::Relaxed);
    }
}

/// fallocate(2) in the modes that change no byte of the file, on random ranges inside it.
fn allocator(fds: Fds, m: Arc<Model>) -> u64 {
    let mut rng = StdRng::seed_from_u64(300);
    let mut calls = 0;
    while !m.stop.load(Ordering::Relaxed) {
        let at = rng.random_range(0..BLOCKS * BLOCK) as u64;
        let len = rng.random_range(1..=(BLOCKS * BLOCK) as u64 - at);
        let mode = if rng.random_bool(0.5) {
            0
        } else {
            libc::FALLOC_FL_KEEP_SIZE
        };
        fallocate(&fds.buffered, mode, at, len).expect("fallocate");
        calls += 1;
        std::thread::sleep(FALLOCATE_PAUSE);
    }
    calls
}

/// Every block of `path` read `way`, checked to be at its last version.
fn check_final(fds: &Fds, map: &Mapping, m: &Model, way: Way) {
    let mut buf = Aligned::zeroed(BLOCK);
    for i in 0..BLOCKS {
        let data = &mut buf.as_mut_slice()[..BLOCK];
        let got = fds.read(way, map, (i * BLOCK) as u64, data).unwrap();
        assert_eq!(got, BLOCK);
        let v = m.completed[i].load(Ordering::SeqCst);
        if let Err(e) = check_block(i, data, v, v) {
            panic!("final {way:?} read: {e}");
        }
    }
}

/// Makes the file at version 1, runs the threads for `time`, checks the end state.
fn run(path: &Path, time: Duration) -> Arc<Model> {
    let mut first = vec![0u8; BLOCKS * BLOCK];
    fill(&mut first, 0, &[1; BLOCKS]);
    std::fs::write(path, &first).unwrap();
    let m = Arc::new(Model {
        started: (0..BLOCKS).map(|_| AtomicU32::new(1)).collect(),
        completed: (0..BLOCKS).map(|_| AtomicU32::new(1)).collect(),
        last_way: (0..BLOCKS).map(|_| AtomicU8::new(0)).collect(),
        stop: AtomicBool::new(false),
        calls: Default::default(),
    });
    let map = Arc::new(Mapping::new(&Fds::open(path).buffered, BLOCKS * BLOCK));
    let mut threads = Vec::new();
    for id in 0..WRITERS {
        let (fds, map, m) = (Fds::open(path), map.clone(), m.clone());
        threads.push(std::thread::spawn(move || writer(id, fds, map, m)));
    }
    for id in 0..READERS {
        let (fds, map, m) = (Fds::open(path), map.clone(), m.clone());
        threads.push(std::thread::spawn(move || reader(id, fds, map, m)));
    }
    let (fds, mm) = (Fds::open(path), m.clone());
    let alloc = std::thread::spawn(move || allocator(fds, mm));
    let deadline = Instant::now() + time;
    while Instant::now() < deadline && !threads.iter().any(|t| t.is_finished()) {
        std::thread::sleep(Duration::from_millis(100));
    }
    m.stop.store(true, Ordering::SeqCst);
    let mut failure = None;
    for t in threads {
        if let Err(e) = t.join() {
            failure.get_or_insert(e);
        }
    }
    let fallocates = alloc.join().expect("fallocate thread");
    if let Some(e) = failure {
        std::panic::resume_unwind(e);
    }
    let calls = |kind: usize| m.calls[kind].each_ref().map(|c| c.load(Ordering::Relaxed));
    eprintln!(
        "reads (buffered, direct, mapped): {:?}; writes: {:?}; fallocates: {fallocates}",
        calls(0),
        calls(1)
    );
    for kind in 0..2 {
        assert!(
            calls(kind).iter().all(|n| *n >= 100),
            "too few calls of some way to count: {:?}",
            calls(kind)
        );
    }
    let fds = Fds::open(path);
    for way in Way::ALL {
        check_final(&fds, &map, &m, way);
    }
    m
}

#[test]
fn buffered_direct_and_mapped_readers_and_writers_agree_with_the_model() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    cli_ok(
        &c.mgs_addr,
        &["setstripe", "/mixed", "-c", "2", "-S", "64K"],
    );
    let mut mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let path = mount.path.join("mixed");
    let m = run(&path, STRESS_TIME);
    assert!(mount.unmount(), "unmount");
    // Through a new mount (nothing cached): every block at its last version.
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let fds = Fds::open(&mount.path.join("mixed"));
    let map = Mapping::new(&fds.buffered, BLOCKS * BLOCK);
    check_final(&fds, &map, &m, Way::Buffered);
}
