//! fsx with O_DIRECT and mmap: one thread does random operations ([`LONG_RUN_OPS`] in the
//! long run) on a file of a real mount (writes and reads each by a random [`Way`],
//! truncates, fallocate in every mode, fsync, close and reopen) and checks every read, and
//! the whole file every
//! [`VERIFY_EVERY`] operations, against an in-memory copy.

use std::collections::VecDeque;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

use crate::common::*;
use crate::ways::{fallocate, Aligned, Fds, Mapping, Way, DIRECT_ALIGN};

/// Operations of the long run (scripts/test.sh runs it beside fsx's).
const LONG_RUN_OPS: u64 = 100_000;
/// Operations of the run in the ordinary suite.
const SHORT_RUN_OPS: u64 = 3_000;
/// Largest size the file reaches (the mapping covers this much).
const MAX_FILE: usize = 1 << 20;
/// Largest read or write.
const MAX_IO: usize = 64 << 10;
/// The whole file is read back and compared this often.
const VERIFY_EVERY: u64 = 2_000;
/// Operations remembered for the failure message.
const HISTORY: usize = 24;
/// Seed of the operation sequence.
const SEED: u64 = 1515;

const FALLOC_FL_KEEP_SIZE: i32 = libc::FALLOC_FL_KEEP_SIZE;
const FALLOC_FL_PUNCH_HOLE: i32 = libc::FALLOC_FL_PUNCH_HOLE;
const FALLOC_FL_ZERO_RANGE: i32 = libc::FALLOC_FL_ZERO_RANGE;

/// Fills `buf` with xorshift64* output from `seed` (a generator cheap enough for debug builds,
/// which the tests are).
fn fill_random(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

/// The file as it must be, and the open descriptors and mapping on the real one.
struct Run<'a> {
    path: &'a Path,
    model: Vec<u8>,
    fds: Fds,
    map: Mapping,
    rng: StdRng,
    buf: Aligned,
    history: VecDeque<String>,
    op: u64,
}

impl Run<'_> {
    fn note(&mut self, what: String) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(format!("{}: {what}", self.op));
    }

    fn fail(&self, what: String) -> ! {
        let past: Vec<&str> = self.history.iter().map(String::as_str).collect();
        panic!(
            "operation {} (seed {SEED}): {what}\nlast operations:\n{}",
            self.op,
            past.join("\n")
        );
    }

    /// A random range for `way`: aligned for direct I/O, inside the file for mappings.
    fn range(&mut self, way: Way, writing: bool) -> Option<(usize, usize)> {
        let size = self.model.len();
        let (at, len) = match way {
            Way::Mapped => {
                if size == 0 {
                    return None;
                }
                let at = self.rng.random_range(0..size);
                (at, self.rng.random_range(1..=(size - at).min(MAX_IO)))
            }
            Way::Buffered => {
                let end = if writing { MAX_FILE } else { size.max(1) };
                let at = self.rng.random_range(0..end);
                (at, self.rng.random_range(1..=(end - at).min(MAX_IO)))
            }
            Way::Direct => {
                let pages = MAX_FILE / DIRECT_ALIGN;
                let at = self.rng.random_range(0..pages);
                let n = self
                    .rng
                    .random_range(1..=(pages - at).min(MAX_IO / DIRECT_ALIGN));
                (at * DIRECT_ALIGN, n * DIRECT_ALIGN)
            }
        };
        Some((at, len))
    }

    fn write(&mut self, way: Way) {
        let Some((at, len)) = self.range(way, true) else {
            return;
        };
        self.note(format!("{way:?} write {at:#x}+{len:#x}"));
        let data = &mut self.buf.as_mut_slice()[..len];
        fill_random(data, self.rng.next_u64());
        if let Err(e) = self.fds.write(way, &self.map, at as u64, data) {
            self.fail(format!("{way:?} write {at:#x}+{len:#x}: {e}"));
        }
        if self.model.len() < at + len {
            self.model.resize(at + len, 0);
        }
        self.model[at..at + len].copy_from_slice(&self.buf.as_slice()[..len]);
    }

    fn read(&mut self, way: Way) {
        let Some((at, len)) = self.range(way, false) else {
            return;
        };
        self.note(format!("{way:?} read {at:#x}+{len:#x}"));
        let data = &mut self.buf.as_mut_slice()[..len];
        let got = match self.fds.read(way, &self.map, at as u64, data) {
            Ok(n) => n,
            Err(e) => self.fail(format!("{way:?} read {at:#x}+{len:#x}: {e}")),
        };
        let want_len = self.model.len().saturating_sub(at).min(len);
        if got != want_len {
            self.fail(format!(
                "{way:?} read {at:#x}+{len:#x}: {got} bytes, not {want_len}"
            ));
        }
        if got == 0 || self.buf.as_slice()[..got] == self.model[at..at + got] {
            return;
        }
        if let Some(k) = (0..got).find(|k| self.buf.as_slice()[*k] != self.model[at + k]) {
            let (g, w) = (self.buf.as_slice()[k], self.model[at + k]);
            self.fail(format!(
                "{way:?} read {at:#x}+{len:#x}: byte {:#x} is {g:#04x}, not {w:#04x}",
                at + k
            ));
        }
    }

    fn truncate(&mut self) {
        let size = self.rng.random_range(0..=MAX_FILE);
        self.note(format!("truncate {size:#x}"));
        if let Err(e) = self.fds.buffered.set_len(size as u64) {
            self.fail(format!("truncate {size:#x}: {e}"));
        }
        self.model.resize(size, 0);
    }

    fn fallocate(&mut self) {
        const MODES: [i32; 5] = [
            0,
            FALLOC_FL_KEEP_SIZE,
            FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
            FALLOC_FL_ZERO_RANGE,
            FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
        ];
        let mode = MODES[self.rng.random_range(0..MODES.len())];
        let at = self.rng.random_range(0..MAX_FILE);
        let len = self.rng.random_range(1..=(MAX_FILE - at).min(4 * MAX_IO));
        self.note(format!("fallocate mode {mode:#x} {at:#x}+{len:#x}"));
        if let Err(e) = fallocate(&self.fds.buffered, mode, at as u64, len as u64) {
            self.fail(format!("fallocate mode {mode:#x} {at:#x}+{len:#x}: {e}"));
        }
        let size = self.model.len();
        let keep = mode & FALLOC_FL_KEEP_SIZE != 0;
        if !keep && size < at + len {
            self.model.resize(at + len, 0);
        }
        if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) != 0 {
            let end = (at + len).min(self.model.len());
            if at < end {
                self.model[at..end].fill(0);
            }
        }
    }

    fn reopen(&mut self) {
        self.note("close and reopen".into());
        self.fds = Fds::open(self.path);
        self.map = Mapping::new(&self.fds.buffered, MAX_FILE);
    }

    fn fsync(&mut self) {
        self.note("fsync".into());
        if let Err(e) = self.fds.buffered.sync_all() {
            self.fail(format!("fsync: {e}"));
        }
    }

    /// The size and every byte of the file, read buffered.
    fn verify(&mut self) {
        let len = self.fds.buffered.metadata().unwrap().len();
        if len != self.model.len() as u64 {
            self.fail(format!("size is {len:#x}, not {:#x}", self.model.len()));
        }
        let mut got = vec![0; self.model.len()];
        if let Err(e) = std::os::unix::fs::FileExt::read_exact_at(&self.fds.buffered, &mut got, 0) {
            self.fail(format!("whole-file read: {e}"));
        }
        if got == self.model {
            return;
        }
        if let Some(k) = (0..got.len()).find(|k| got[*k] != self.model[*k]) {
            self.fail(format!(
                "whole-file read: byte {k:#x} is {:#04x}, not {:#04x}",
                got[k], self.model[k]
            ));
        }
    }

    fn step(&mut self) {
        let way = Way::ALL[self.rng.random_range(0..3)];
        match self.rng.random_range(0..100) {
            0..=34 => self.write(way),
            35..=74 => self.read(way),
            75..=80 => self.truncate(),
            81..=90 => self.fallocate(),
            91..=94 => self.fsync(),
            _ => self.reopen(),
        }
    }
}

#[test]
fn random_operations_by_every_way_match_the_model() {
    run_model(SHORT_RUN_OPS);
}

#[test]
#[ignore = "slow (about 4 minutes; scripts/test.sh runs it): cargo test --test io_mix -- --ignored"]
fn random_operations_by_every_way_match_the_model_100000_times() {
    run_model(LONG_RUN_OPS);
}

/// `ops` random operations on a file striped over two OSTs, checked against the model.
fn run_model(ops: u64) {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    std::fs::create_dir(&mnt).unwrap();
    cli_ok(
        &c.mgs_addr,
        &["setstripe", "/model", "-c", "2", "-S", "64K"],
    );
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let path = mount.path.join("model");
    std::fs::File::create(&path).unwrap();
    let fds = Fds::open(&path);
    let map = Mapping::new(&fds.buffered, MAX_FILE);
    let mut run = Run {
        path: &path,
        model: Vec::new(),
        fds,
        map,
        rng: StdRng::seed_from_u64(SEED),
        buf: Aligned::zeroed(MAX_IO),
        history: VecDeque::new(),
        op: 0,
    };
    while run.op < ops {
        run.op += 1;
        run.step();
        if run.op.is_multiple_of(VERIFY_EVERY) {
            run.verify();
        }
    }
    run.verify();
}
