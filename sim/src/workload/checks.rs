//! The checks once the faults are healed: the namespace is what the model allows, every
//! known file reads back its acknowledged bytes, and, once resync has run, no copy of a
//! known file is stale and the copies of each stripe hold the same bytes in their stores
//! (where they pass their checksums).
//!
//! A file with a flipped bit may be lost to a second fault (the copy that kept the good bytes
//! went stale, so the only current copy has a bad block): for it, a read that keeps failing
//! and a copy that stays stale are tolerated (and traced). Wrong bytes never are.

use std::time::Duration;

use rustre_proto::msg::oss::ObjectId;
use rustre_proto::msg::Ino;
use rustre_server::oss::MemStore;

use super::{name, Entry, Path, Workload, DIRS, FILES_PER_DIR, SETTLE};
use crate::cluster::Cluster;
use crate::disk;

/// How long the checks wait for resync to leave no stale copy.
const RESYNC_WAIT: Duration = Duration::from_secs(120);
/// Tries of a check read that fails (not one that returns wrong bytes), and the pause
/// between them.
const CHECK_TRIES: u32 = 5;
const CHECK_PAUSE: Duration = Duration::from_secs(3);

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
                self.violation_unless_flipped(
                    path,
                    format!("d{d}/f{f} cannot be read {when}: {e}"),
                )
                .await;
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
                        let what = format!(
                            "d{d}/f{f} still has stale copies {:?} {} s after healing",
                            l.stale,
                            (SETTLE + RESYNC_WAIT).as_secs()
                        );
                        self.violation_unless_flipped(path, what).await;
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
                let osts: Vec<u32> = (0..layout.replicas)
                    .map(|r| layout.osts[layout.slot(stripe, r)])
                    .collect();
                let stores: Vec<&MemStore> = osts
                    .iter()
                    .map(|o| cluster.stores[*o as usize].as_ref())
                    .collect();
                let id = ObjectId { ino, stripe };
                if !disk::same_where_sound(&stores, id) {
                    let sizes: Vec<_> = osts
                        .iter()
                        .zip(&stores)
                        .map(|(o, s)| (*o, disk::object_bytes(s, id).len()))
                        .collect();
                    self.violation(format!(
                        "d{d}/f{f}: the copies of stripe {stripe} differ on disk (OST, bytes): \
                         {sizes:?}, though none is stale"
                    ));
                }
            }
        }
    }

    /// A violation, unless a bit flipped in the file at `path` (then a line in the trace).
    async fn violation_unless_flipped(&self, path: Path, what: String) {
        let flipped = match self.lookup(path).await {
            Ok(ino) => self.flipped(ino),
            Err(_) => false,
        };
        if flipped {
            self.trace(format!("tolerated (a bit flipped in it): {what}"));
        } else {
            self.violation(what);
        }
    }

    /// Whether a bit flipped in a copy of an object of `ino`.
    fn flipped(&self, ino: Ino) -> bool {
        self.shared.borrow().flipped.iter().any(|o| o.ino == ino)
    }
}
