//! Metadata KV benchmark: file creates per second on the embedded (fjall) store.
//!
//! A "create" is one transaction shaped like the MDS's: read the parent directory's inode,
//! write the new dentry, the new inode and the updated parent inode. Modes:
//!
//! - `nosync`: one writer, commits only (survives a process kill, not a power loss);
//! - `sync-per-commit`: one writer, `durable()` after every commit (one fsync per create);
//! - `group-N`: N concurrent writers, each `durable()` after every commit; concurrent
//!   `durable()` calls share one fsync (group commit). Each writer creates in its own
//!   directory, like N clients in N directories;
//! - `group-16-shared-dir`: 16 writers creating in one directory, so their transactions
//!   conflict on the parent inode and are retried.
//!
//! Every mode runs `--runs` times (default 3) for `--secs` seconds (default 3) on a fresh
//! store and reports the median. Usage:
//!
//! ```text
//! cargo run --release -p rustre-server --example kv_bench -- [--dir DIR] [--secs S] [--runs R] [--only TEXT]
//! ```
//!
//! `--only TEXT` runs just the modes whose name contains TEXT.

use rustre_server::meta::{Kv, KvError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Bytes of an inode record (attributes + layout), roughly what the MDS stores.
const INODE_BYTES: usize = 128;
/// Writer counts for the group-commit modes.
const GROUP_WRITERS: [usize; 3] = [4, 16, 64];
/// Writers in the shared-directory mode.
const SHARED_DIR_WRITERS: usize = 16;

fn inode_key(ino: u64) -> Vec<u8> {
    let mut k = b"inode/".to_vec();
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

fn dentry_key(parent: u64, name: &str) -> Vec<u8> {
    let mut k = b"dentry/".to_vec();
    k.extend_from_slice(&parent.to_be_bytes());
    k.push(b'/');
    k.extend_from_slice(name.as_bytes());
    k
}

/// One create: read the parent, write dentry + inode + parent. Counts closure runs.
fn create(kv: &Kv, parent: u64, ino: u64, attempts: &AtomicU64) -> Result<(), KvError> {
    let name = format!("f{ino}");
    kv.transact(|t| {
        attempts.fetch_add(1, Ordering::Relaxed);
        let mut dir = t
            .get(&inode_key(parent))?
            .unwrap_or_else(|| vec![0; INODE_BYTES]);
        // "mtime/size" of the directory: bump a counter in the record.
        let n = u64::from_le_bytes(dir[..8].try_into().unwrap_or([0; 8])) + 1;
        dir[..8].copy_from_slice(&n.to_le_bytes());
        let mut dentry = ino.to_be_bytes().to_vec();
        dentry.push(1); // file type: regular
        t.set(&dentry_key(parent, &name), &dentry);
        t.set(&inode_key(ino), &[7u8; INODE_BYTES]);
        t.set(&inode_key(parent), &dir);
        Ok(())
    })
}

#[derive(Clone, Copy)]
enum Mode {
    NoSync,
    SyncPerCommit,
    Group { writers: usize, shared_dir: bool },
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::NoSync => "nosync (1 writer)".into(),
            Mode::SyncPerCommit => "sync-per-commit (1 writer)".into(),
            Mode::Group {
                writers,
                shared_dir: false,
            } => format!("group-{writers} (own dirs)"),
            Mode::Group {
                writers,
                shared_dir: true,
            } => format!("group-{writers}-shared-dir"),
        }
    }
}

/// Result of one run.
struct Run {
    creates_per_sec: f64,
    attempts_per_create: f64,
}

fn run(mode: Mode, base: &Path, secs: Duration, index: usize) -> Result<Run, KvError> {
    let dir = base.join(format!("run-{index}"));
    let kv = Kv::open_embedded(&dir)?;
    let attempts = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| KvError::Storage(e.to_string()))?;
    let start = Instant::now();
    let deadline = start + secs;
    let creates = match mode {
        Mode::NoSync => {
            let mut n = 0u64;
            while Instant::now() < deadline {
                create(&kv, 1, (1 << 40) + n, &attempts)?;
                n += 1;
            }
            n
        }
        Mode::SyncPerCommit => rt.block_on(async {
            let mut n = 0u64;
            while Instant::now() < deadline {
                create(&kv, 1, (1 << 40) + n, &attempts)?;
                kv.durable().await?;
                n += 1;
            }
            Ok::<_, KvError>(n)
        })?,
        Mode::Group {
            writers,
            shared_dir,
        } => rt.block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for w in 0..writers as u64 {
                let kv = kv.clone();
                let attempts = attempts.clone();
                let parent = if shared_dir { 1 } else { 1 + w };
                tasks.spawn(async move {
                    let mut n = 0u64;
                    while Instant::now() < deadline {
                        let ino = ((w + 1) << 40) + n;
                        let (kv2, attempts2) = (kv.clone(), attempts.clone());
                        tokio::task::spawn_blocking(move || create(&kv2, parent, ino, &attempts2))
                            .await
                            .map_err(|e| KvError::Storage(e.to_string()))??;
                        kv.durable().await?;
                        n += 1;
                    }
                    Ok::<_, KvError>(n)
                });
            }
            let mut total = 0;
            while let Some(r) = tasks.join_next().await {
                total += r.map_err(|e| KvError::Storage(e.to_string()))??;
            }
            Ok::<_, KvError>(total)
        })?,
    };
    let elapsed = start.elapsed().as_secs_f64();
    drop(kv);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Run {
        creates_per_sec: creates as f64 / elapsed,
        attempts_per_create: attempts.load(Ordering::Relaxed) as f64 / creates.max(1) as f64,
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut dir: Option<PathBuf> = None;
    let mut secs = 3u64;
    let mut runs = 3usize;
    let mut only = String::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--secs" => secs = args.next().ok_or("--secs needs a value")?.parse()?,
            "--runs" => runs = args.next().ok_or("--runs needs a value")?.parse()?,
            "--only" => only = args.next().ok_or("--only needs a value")?,
            _ => return Err(format!("unknown argument {a}; see the example's doc").into()),
        }
    }
    let tmp = match &dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    println!(
        "kv_bench: store under {}, {runs} runs x {secs} s per mode, {} CPUs",
        tmp.path().display(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let mut modes = vec![Mode::NoSync, Mode::SyncPerCommit];
    modes.extend(GROUP_WRITERS.iter().map(|&writers| Mode::Group {
        writers,
        shared_dir: false,
    }));
    modes.push(Mode::Group {
        writers: SHARED_DIR_WRITERS,
        shared_dir: true,
    });
    println!(
        "{:<28} {:>12}  {:<30} {:>9}",
        "mode", "creates/s", "runs", "tries/op"
    );
    let mut index = 0;
    for mode in modes.into_iter().filter(|m| m.name().contains(&only)) {
        let mut rates = Vec::new();
        let mut tries = Vec::new();
        for _ in 0..runs {
            let r = run(mode, tmp.path(), Duration::from_secs(secs), index)?;
            index += 1;
            rates.push(r.creates_per_sec);
            tries.push(r.attempts_per_create);
        }
        let list: Vec<String> = rates.iter().map(|r| format!("{r:.0}")).collect();
        println!(
            "{:<28} {:>12.0}  {:<30} {:>9.2}",
            mode.name(),
            median(rates),
            list.join(" "),
            median(tries)
        );
    }
    Ok(())
}
