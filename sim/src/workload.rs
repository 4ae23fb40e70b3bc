//! The simulated client: a random workload through the client library, a model of what the
//! cluster acknowledged, and the checks of the invariants.
//!
//! The model maps each path to [`Entry::Known`] bytes (the operations that made them were
//! all acknowledged: writes followed by a successful fsync) or [`Entry::Unsure`] (some
//! operation on it failed, so it may or may not exist and its bytes are unknown). A path
//! absent from the model must not exist.
//!
//! Violations: a read that returns bytes other than the acknowledged ones (during the faults
//! or after), an acknowledged file missing, a name present that no operation made, a
//! create of a name known absent refused as existing, and, after the faults are healed and
//! resync had time to run, a file that still has stale copies or copies of one stripe that
//! differ in their stores; then again (contents and copies) after a power cut of every OSS.
//! And a run in which fewer than [`MIN_SUCCEEDED_PERCENT`] of the operations succeeded
//! checked too little: that is a violation too.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_fuse::client::{Client, ClientConfig};
use rustre_proto::msg::oss::ObjectId;
use rustre_proto::msg::{Creds, Ino, ROOT_INO};
use rustre_proto::Error;
use rustre_server::oss::{MemStore, ObjectStore, ReadData};

use crate::cluster::{self, Cluster};
use crate::rng::Rng;
use crate::{Options, Phase, SharedRef};

/// Directories of the workload (under the root) and file names in each.
const DIRS: u64 = 3;
const FILES_PER_DIR: u64 = 5;
/// Largest file the workload writes in one go.
const MAX_WRITE: u64 = 200 << 10;
/// Largest single write call.
const MAX_CHUNK: u64 = 64 << 10;
/// Chance (percent) that a writer waits before its fsync, up to [`MAX_FSYNC_DELAY`]: the
/// write-back sends the bytes meanwhile, and an OSS may lose them in a power cut before the
/// fsync (which must then give them again or fail).
const FSYNC_DELAY_PERCENT: u64 = 50;
const MAX_FSYNC_DELAY: Duration = Duration::from_secs(3);
/// Bytes asked per read call.
const READ_CHUNK: usize = 128 << 10;
/// How long one workload operation may take before it counts as failed.
const OP_LIMIT: Duration = Duration::from_secs(150);
/// Quiet time after healing, before the checks (registrations, leases, resync).
const SETTLE: Duration = Duration::from_secs(20);
/// How long the checks wait for resync to leave no stale copy.
const RESYNC_WAIT: Duration = Duration::from_secs(120);
/// Fewest operations (pauses aside) that must succeed, in percent of those tried: a run in
/// which (nearly) everything failed checked nothing. Under the normal faults nearly all
/// succeed (47 of 47 to 58 of 58 over seeds 1 to 60), under `--heavy` at least 50 of 56.
const MIN_SUCCEEDED_PERCENT: usize = 50;
/// Tries of a check read that fails (not one that returns wrong bytes).
const CHECK_TRIES: u32 = 5;
/// Bytes per read when the checks read an object straight from its store (a multiple of
/// the checksum block).
const STORE_READ_CHUNK: u32 = 1 << 20;

/// What the model knows of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Known(Vec<u8>),
    Unsure,
}

struct Workload {
    client: Arc<Client>,
    shared: SharedRef,
    rng: Rng,
    creds: Creds,
    dirs: Vec<Ino>,
    model: BTreeMap<(u64, u64), Entry>,
    /// Operations tried (pauses aside) and those that succeeded.
    tried: usize,
    succeeded: usize,
}

/// The client host's software: connect, run the workload, heal, check.
pub async fn run(opts: Options, shared: SharedRef, cluster: Cluster) -> turmoil::Result {
    let client = match connect(&cluster, &shared).await {
        Some(c) => c,
        None => return Ok(()),
    };
    let mut w = Workload {
        client,
        shared: shared.clone(),
        rng: Rng::new(opts.seed, 2),
        creds: Creds::root(),
        dirs: Vec::new(),
        model: BTreeMap::new(),
        tried: 0,
        succeeded: 0,
    };
    if !w.make_dirs().await {
        return Ok(());
    }
    for n in 0..opts.ops {
        w.step(n).await;
    }
    shared.borrow_mut().phase = Phase::Check;
    w.trace(format!(
        "workload done ({} of {} operations succeeded); faults healed",
        w.succeeded, w.tried
    ));
    if !enough_succeeded(w.succeeded, w.tried) {
        w.violation(format!(
            "only {} of {} operations succeeded (at least {MIN_SUCCEEDED_PERCENT} % must)",
            w.succeeded, w.tried
        ));
    }
    tokio::time::sleep(SETTLE).await;
    w.check_namespace().await;
    w.check_contents("after healing").await;
    w.check_copies(&cluster).await;
    // Every acknowledged byte must be durable, not only in the OSTs' memory.
    shared.borrow_mut().power_cut = true;
    tokio::time::sleep(SETTLE).await;
    w.check_contents("after the power cut").await;
    w.check_copies(&cluster).await;
    w.trace(format!(
        "checks done: {} known files, {} unsure",
        w.model.values().filter(|e| **e != Entry::Unsure).count(),
        w.model.values().filter(|e| **e == Entry::Unsure).count()
    ));
    Ok(())
}

async fn connect(cluster: &Cluster, shared: &SharedRef) -> Option<Arc<Client>> {
    let cfg = ClientConfig {
        mgs_addr: format!("{}:{}", cluster::MGS, cluster::MGS_PORT),
        cluster: cluster::CLUSTER_NAME.into(),
        client_name: "sim-client".into(),
        key: cluster.key.clone(),
    };
    for _ in 0..60 {
        match Client::connect(&cfg).await {
            Ok(c) => return Some(c),
            Err(e) => tracing::debug!("client connect: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    shared
        .borrow_mut()
        .violation("the client could not connect in 60 s".into());
    None
}

fn name(file: u64) -> String {
    format!("f{file}")
}

impl Workload {
    fn trace(&self, line: String) {
        self.shared.borrow_mut().trace(line);
    }

    fn violation(&self, what: String) {
        self.shared.borrow_mut().violation(what);
    }

    async fn make_dirs(&mut self) -> bool {
        for d in 0..DIRS {
            let dname = format!("d{d}");
            let mut made = None;
            for _ in 0..10 {
                match self
                    .client
                    .mkdir(&self.creds, ROOT_INO, &dname, 0o755)
                    .await
                {
                    Ok(a) => made = Some(a.ino),
                    Err(Error::Exists) => {
                        made = self
                            .client
                            .lookup(&self.creds, ROOT_INO, &dname)
                            .await
                            .ok()
                            .map(|a| a.ino)
                    }
                    Err(e) => tracing::debug!("mkdir {dname}: {e}"),
                }
                if made.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            match made {
                Some(ino) => self.dirs.push(ino),
                None => {
                    self.violation(format!("could not make directory {dname}"));
                    return false;
                }
            }
        }
        true
    }

    /// One random operation.
    async fn step(&mut self, n: usize) {
        let path = (self.rng.below(DIRS), self.rng.below(FILES_PER_DIR));
        let roll = self.rng.below(100);
        let op = match (roll, self.model.get(&path).cloned()) {
            (0..=9, _) => {
                let pause = Duration::from_millis(self.rng.below(3_000));
                self.trace(format!("op {n}: pause {} ms", pause.as_millis()));
                tokio::time::sleep(pause).await;
                return;
            }
            (_, None) => "create",
            (_, Some(Entry::Unsure)) => "unlink",
            (10..=39, Some(Entry::Known(_))) => "overwrite",
            (40..=54, Some(Entry::Known(_))) => "rename",
            (55..=64, Some(Entry::Known(_))) => "unlink",
            (_, Some(Entry::Known(_))) => "read",
        };
        let to = (self.rng.below(DIRS), self.rng.below(FILES_PER_DIR));
        let outcome = tokio::time::timeout(OP_LIMIT, async {
            match op {
                "create" => self.create(path).await,
                "overwrite" => self.overwrite(path).await,
                "rename" => self.rename(path, to).await,
                "unlink" => self.unlink(path).await,
                _ => self.read(path).await,
            }
        })
        .await
        .unwrap_or_else(|_| Err(format!("no answer in {} s", OP_LIMIT.as_secs())));
        let (d, f) = path;
        self.tried += 1;
        match outcome {
            Ok(what) => {
                self.succeeded += 1;
                self.trace(format!("op {n}: {op} d{d}/f{f}: ok {what}"))
            }
            Err(e) => {
                self.trace(format!("op {n}: {op} d{d}/f{f}: failed: {e}"));
                if op != "read" {
                    self.model.insert(path, Entry::Unsure);
                    if op == "rename" {
                        self.model.insert(to, Entry::Unsure);
                    }
                }
            }
        }
    }

    async fn create(&mut self, path: (u64, u64)) -> Result<String, String> {
        let (d, f) = path;
        let len = self.rng.below(MAX_WRITE + 1) as usize;
        let data = self.rng.bytes(len);
        let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
        let opened = match self
            .client
            .create_file(
                &self.creds,
                self.dirs[d as usize],
                &name(f),
                0o644,
                flags,
                None,
            )
            .await
        {
            Ok(o) => o,
            Err(Error::Exists) => {
                self.violation(format!(
                    "create of d{d}/f{f}, which no acknowledged operation made, said EEXIST"
                ));
                return Err("EEXIST".into());
            }
            Err(e) => return Err(e.to_string()),
        };
        // From here the file exists whatever happens to its bytes.
        self.model.insert(path, Entry::Unsure);
        self.write_all(opened.fh, 0, &data).await?;
        self.model.insert(path, Entry::Known(data));
        Ok(format!("{len} bytes"))
    }

    /// Writes `data` at `offset` in random chunks, fsyncs, closes. Ok only if the fsync
    /// succeeded (a failed close after it loses nothing).
    async fn write_all(&mut self, fh: u64, offset: u64, data: &[u8]) -> Result<(), String> {
        let mut at = 0usize;
        let result = async {
            while at < data.len() {
                let chunk = (self.rng.between(1, MAX_CHUNK) as usize).min(data.len() - at);
                let piece = Bytes::copy_from_slice(&data[at..at + chunk]);
                let n = self
                    .client
                    .write_file(fh, offset + at as u64, piece)
                    .await
                    .map_err(|e| format!("write: {e}"))?;
                if n != chunk {
                    return Err(format!("short write {n} of {chunk}"));
                }
                at += chunk;
            }
            if self.rng.chance(FSYNC_DELAY_PERCENT) {
                let ms = self.rng.below(MAX_FSYNC_DELAY.as_millis() as u64 + 1);
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            self.client
                .fsync_file(fh)
                .await
                .map_err(|e| format!("fsync: {e}"))
        }
        .await;
        if let Err(e) = self.client.release_file(fh).await {
            self.trace(format!("close after the write: {e}"));
        }
        result
    }

    async fn lookup(&self, path: (u64, u64)) -> Result<Ino, Error> {
        let (d, f) = path;
        let a = self
            .client
            .lookup(&self.creds, self.dirs[d as usize], &name(f))
            .await?;
        Ok(a.ino)
    }

    async fn overwrite(&mut self, path: (u64, u64)) -> Result<String, String> {
        let Some(Entry::Known(mut data)) = self.model.get(&path).cloned() else {
            return Err("not known".into());
        };
        let ino = self.lookup(path).await.map_err(|e| e.to_string())?;
        let offset = self.rng.below(data.len() as u64 + (16 << 10) + 1);
        let len = self.rng.between(1, 100 << 10) as usize;
        let patch = self.rng.bytes(len);
        let opened = self
            .client
            .open_file(&self.creds, ino, libc::O_RDWR)
            .await
            .map_err(|e| format!("open: {e}"))?;
        self.model.insert(path, Entry::Unsure);
        self.write_all(opened.fh, offset, &patch).await?;
        let end = offset as usize + len;
        if data.len() < end {
            data.resize(end, 0);
        }
        data[offset as usize..end].copy_from_slice(&patch);
        self.model.insert(path, Entry::Known(data));
        Ok(format!("{len} bytes at {offset}"))
    }

    async fn rename(&mut self, from: (u64, u64), to: (u64, u64)) -> Result<String, String> {
        if from == to {
            return Ok("onto itself: skipped".into());
        }
        let (fd, ff) = from;
        let (td, tf) = to;
        self.client
            .rename(
                &self.creds,
                self.dirs[fd as usize],
                &name(ff),
                self.dirs[td as usize],
                &name(tf),
                0,
            )
            .await
            .map_err(|e| e.to_string())?;
        let moved = self.model.remove(&from).expect("renamed a modelled file");
        self.model.insert(to, moved);
        Ok(format!("to d{td}/f{tf}"))
    }

    async fn unlink(&mut self, path: (u64, u64)) -> Result<String, String> {
        let (d, f) = path;
        let known = matches!(self.model.get(&path), Some(Entry::Known(_)));
        match self
            .client
            .unlink(&self.creds, self.dirs[d as usize], &name(f))
            .await
        {
            Ok(()) => {
                self.model.remove(&path);
                Ok(String::new())
            }
            Err(Error::NotFound) if !known => {
                self.model.remove(&path);
                Ok("was not there".into())
            }
            Err(Error::NotFound) => {
                self.violation(format!(
                    "acknowledged file d{d}/f{f} is gone (unlink: ENOENT)"
                ));
                self.model.remove(&path);
                Err("ENOENT".into())
            }
            Err(e) => Err(e.to_string()),
        }
    }

    async fn read(&mut self, path: (u64, u64)) -> Result<String, String> {
        let Some(Entry::Known(want)) = self.model.get(&path).cloned() else {
            return Err("not known".into());
        };
        let got = self.read_bytes(path).await.map_err(|e| e.to_string())?;
        self.compare(path, &want, &got);
        Ok(format!("{} bytes", got.len()))
    }

    /// The whole file as a fresh open reads it.
    async fn read_bytes(&self, path: (u64, u64)) -> Result<Vec<u8>, Error> {
        let ino = self.lookup(path).await?;
        let opened = self
            .client
            .open_file(&self.creds, ino, libc::O_RDONLY)
            .await?;
        let mut out = Vec::new();
        let result = loop {
            match self
                .client
                .read_file(opened.fh, out.len() as u64, READ_CHUNK)
                .await
            {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => out.extend_from_slice(&b),
                Err(e) => break Err(e),
            }
        };
        let _ = self.client.release_file(opened.fh).await;
        result.map(|()| out)
    }

    fn compare(&self, path: (u64, u64), want: &[u8], got: &[u8]) {
        if want == got {
            return;
        }
        let (d, f) = path;
        let first = want
            .iter()
            .zip(got)
            .position(|(a, b)| a != b)
            .unwrap_or(want.len().min(got.len()));
        self.violation(format!(
            "d{d}/f{f} read back wrong: {} bytes, {} acknowledged, first difference at byte \
             {first}",
            got.len(),
            want.len()
        ));
    }

    /// Every directory lists exactly the names the model allows.
    async fn check_namespace(&self) {
        for d in 0..DIRS {
            let listed = match self
                .client
                .readdir_all(&self.creds, self.dirs[d as usize], false)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    self.violation(format!("listing d{d} after healing failed: {e}"));
                    continue;
                }
            };
            let names: Vec<String> = listed
                .iter()
                .map(|e| e.name.clone())
                .filter(|n| n != "." && n != "..")
                .collect();
            for f in 0..FILES_PER_DIR {
                let present = names.contains(&name(f));
                match self.model.get(&(d, f)) {
                    Some(Entry::Known(_)) if !present => {
                        self.violation(format!("acknowledged file d{d}/f{f} is missing"))
                    }
                    None if present => self.violation(format!(
                        "d{d}/f{f} exists, but no acknowledged operation left it there"
                    )),
                    _ => {}
                }
            }
            for n in &names {
                if !(0..FILES_PER_DIR).any(|f| name(f) == *n) {
                    self.violation(format!("d{d} holds {n:?}, which the workload never made"));
                }
            }
        }
    }

    /// Every known file reads back its acknowledged bytes (`when`: the stage of the checks,
    /// for the violations).
    async fn check_contents(&self, when: &str) {
        for (&path, entry) in &self.model {
            let Entry::Known(want) = entry else { continue };
            let mut last_err = None;
            for _ in 0..CHECK_TRIES {
                match self.read_bytes(path).await {
                    Ok(got) => {
                        self.compare(path, want, &got);
                        last_err = None;
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            if let Some(e) = last_err {
                let (d, f) = path;
                self.violation(format!("d{d}/f{f} cannot be read {when}: {e}"));
            }
        }
    }

    /// Once resync has run: no stale copy is left, and the copies of each stripe are the
    /// same bytes on disk.
    async fn check_copies(&self, cluster: &Cluster) {
        let deadline = tokio::time::Instant::now() + RESYNC_WAIT;
        for (&path, entry) in &self.model {
            if *entry == Entry::Unsure {
                continue;
            }
            let (d, f) = path;
            let layout = loop {
                let attr = match self.lookup(path).await {
                    Ok(ino) => self.client.getattr(&self.creds, ino).await,
                    Err(e) => Err(e),
                };
                match attr.map(|a| a.layout) {
                    Ok(Some(l)) if l.stale.is_empty() => break Some((l, path)),
                    Ok(Some(l)) if tokio::time::Instant::now() >= deadline => {
                        self.violation(format!(
                            "d{d}/f{f} still has stale copies {:?} {} s after healing",
                            l.stale,
                            (SETTLE + RESYNC_WAIT).as_secs()
                        ));
                        break None;
                    }
                    Ok(Some(_)) => tokio::time::sleep(Duration::from_secs(2)).await,
                    Ok(None) => break None,
                    Err(e) => {
                        self.violation(format!("d{d}/f{f}: no attributes after healing: {e}"));
                        break None;
                    }
                }
            };
            let Some((layout, _)) = layout else { continue };
            let Ok(ino) = self.lookup(path).await else {
                continue;
            };
            for stripe in 0..layout.stripe_count() {
                let copies: Vec<(u32, Vec<u8>)> = (0..layout.replicas)
                    .map(|r| {
                        let ost = layout.osts[layout.slot(stripe, r)];
                        (
                            ost,
                            object_bytes(&cluster.stores[ost as usize], ino, stripe),
                        )
                    })
                    .collect();
                if copies.iter().any(|(_, b)| *b != copies[0].1) {
                    let sizes: Vec<_> = copies.iter().map(|(o, b)| (*o, b.len())).collect();
                    self.violation(format!(
                        "d{d}/f{f}: the copies of stripe {stripe} differ on disk (OST, bytes): \
                         {sizes:?}, though none is stale"
                    ));
                }
            }
        }
    }
}

/// Whether `succeeded` of `tried` operations is at least [`MIN_SUCCEEDED_PERCENT`].
fn enough_succeeded(succeeded: usize, tried: usize) -> bool {
    succeeded * 100 >= tried * MIN_SUCCEEDED_PERCENT
}

/// The bytes of object `ino`.`stripe` as its OST's store holds them now (empty if it has
/// none).
fn object_bytes(store: &MemStore, ino: Ino, stripe: u32) -> Vec<u8> {
    let id = ObjectId { ino, stripe };
    let size = store.size(id).ok().flatten().unwrap_or(0);
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let read = match store.read(id, out.len() as u64, STORE_READ_CHUNK) {
            Ok(r) => r,
            Err(e) => panic!("reading {id:?} from a simulated store: {e}"),
        };
        match read.data {
            ReadData::Bytes(b) if !b.is_empty() => out.extend_from_slice(&b),
            _ => break,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_in_which_most_operations_failed_is_not_enough() {
        assert!(enough_succeeded(60, 60));
        assert!(enough_succeeded(30, 60));
        assert!(!enough_succeeded(29, 60));
        assert!(!enough_succeeded(0, 60));
    }
}
