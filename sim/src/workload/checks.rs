//! The checks once the faults are healed: the namespace is what the model allows, every
//! known file reads back its acknowledged bytes, and, once resync has run, no copy of a
//! known file is stale and the copies of each stripe hold the same bytes in their stores.

use std::time::Duration;

use rustre_proto::msg::oss::ObjectId;
use rustre_proto::msg::Ino;
use rustre_server::oss::{MemStore, ObjectStore, ReadData};

use super::{name, Entry, Workload, DIRS, FILES_PER_DIR, SETTLE};
use crate::cluster::Cluster;

/// How long the checks wait for resync to leave no stale copy.
const RESYNC_WAIT: Duration = Duration::from_secs(120);
/// Tries of a check read that fails (not one that returns wrong bytes), and the pause
/// between them.
const CHECK_TRIES: u32 = 5;
const CHECK_PAUSE: Duration = Duration::from_secs(3);
/// Bytes per read when the checks read an object straight from its store (a multiple of
/// the checksum block).
const STORE_READ_CHUNK: u32 = 1 << 20;

impl Workload {
    /// Every directory lists exactly the names the model allows.
    pub(super) async fn check_namespace(&self) {
        for d in 0..DIRS {
            let listed = match self
                .client
                .readdir_all(&self.creds, self.dir((d, 0)), false)
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
                let entry = self.st().model.get(&(d, f)).cloned();
                match entry {
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
    pub(super) async fn check_contents(&self, when: &str) {
        let model = self.st().model.clone();
        for (path, entry) in model {
            let Entry::Known(want) = entry else { continue };
            let mut last_err = None;
            for _ in 0..CHECK_TRIES {
                match self.read_bytes(path).await {
                    Ok(got) => {
                        self.compare(path, &want, &got);
                        last_err = None;
                        break;
                    }
                    Err(e) => last_err = Some(e),
                }
                tokio::time::sleep(CHECK_PAUSE).await;
            }
            if let Some(e) = last_err {
                let (d, f) = path;
                self.violation(format!("d{d}/f{f} cannot be read {when}: {e}"));
            }
        }
    }

    /// Once resync has run: no stale copy is left, and the copies of each stripe are the
    /// same bytes in their stores.
    pub(super) async fn check_copies(&self, cluster: &Cluster) {
        let deadline = tokio::time::Instant::now() + RESYNC_WAIT;
        let model = self.st().model.clone();
        for (path, entry) in model {
            if entry == Entry::Unsure {
                continue;
            }
            let (d, f) = path;
            let layout = loop {
                let attr = match self.lookup(path).await {
                    Ok(ino) => self.client.getattr(&self.creds, ino).await,
                    Err(e) => Err(e),
                };
                match attr.map(|a| a.layout) {
                    Ok(Some(l)) if l.stale.is_empty() => break Some(l),
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
            let Some(layout) = layout else { continue };
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
