//! `rebalance`: moves objects from the fullest OSTs to the emptiest (after OSTs were added)
//! until every OST's usage is within a threshold of the mean, online, file by file through
//! [`Client::migrate_file`], throttled to a byte rate.
//!
//! Resumable by being stateless: every round plans afresh from the cluster map's capacities
//! (what the OSSes' heartbeats report) and the layouts the MDS holds, so a rebalance killed
//! at any point is finished by running it again. An administrator's act: it refuses to start
//! on a connection that did not prove the admin credential.

mod plan;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use rustre_proto::msg::mgs::{ClusterMap, NodeState, HEARTBEAT_INTERVAL_MS};
use rustre_proto::msg::{Ino, ROOT_INO};
use rustre_proto::Error;
use tokio::time::Instant;

pub use plan::{mean_fraction, spread, OstUsage};
use plan::{plan, FilePlan, FileSlots};

use super::MigrateTarget;
use super::{NoProgress, Progress};
use crate::client::Client;

/// Default threshold: every OST within 10 percentage points of the mean usage.
pub const REBALANCE_THRESHOLD_DEFAULT: f64 = 0.10;
/// Once a rebalance starts, it aims at this share of the threshold, so that the OSTs end
/// well inside it (estimates of object sizes and other writers move usage a little).
const TARGET_SHARE_OF_THRESHOLD: f64 = 0.5;
/// Files moved between two plans: each round re-reads the capacities and re-plans.
const REPLAN_EVERY_FILES: usize = 64;
/// Most rounds of one run (a safety net against plans that never settle).
const ROUNDS_MAX: usize = 10_000;
/// Wait before re-reading the capacities after moves: the old objects of a migrated file
/// are deleted by the MDS's worker some seconds after the commit (its `RETIRE_GRACE_MS`, 5 s,
/// and a sweep a second), then two heartbeats bring every OST's usage. Planning from
/// usage that still counts them would move too much onto the emptiest OSTs.
const CAPACITY_SETTLE: Duration = Duration::from_millis(6_000 + 2 * HEARTBEAT_INTERVAL_MS);

/// What a rebalance should do.
#[derive(Debug, Clone, Copy)]
pub struct RebalanceOptions {
    /// Largest distance of an OST's usage from the mean left alone (a fraction of
    /// capacity: 0.10 is 10 percentage points).
    pub threshold: f64,
    /// Most bytes copied per second (`None`: as fast as the migration goes).
    pub max_rate: Option<u64>,
}

impl Default for RebalanceOptions {
    fn default() -> Self {
        RebalanceOptions {
            threshold: REBALANCE_THRESHOLD_DEFAULT,
            max_rate: None,
        }
    }
}

/// What a rebalance did.
#[derive(Debug, Default)]
pub struct RebalanceReport {
    /// Every OST's usage before and after (those up with a known capacity).
    pub before: Vec<OstUsage>,
    pub after: Vec<OstUsage>,
    /// Files moved, and the bytes their moved objects held (as planned).
    pub moved_files: usize,
    pub moved_bytes: u64,
    /// Files that could not be moved, and why (the rest went on).
    pub failed: Vec<(Ino, Error)>,
    /// Files left alone because a copy waits for resync.
    pub skipped: usize,
    /// Files left alone because another migration of them was in progress (a killed
    /// rebalance's, until its lease runs out).
    pub busy: usize,
    /// Plans made.
    pub rounds: usize,
}

impl RebalanceReport {
    /// True when every OST ended within `threshold` of the mean.
    pub fn balanced(&self, threshold: f64) -> bool {
        spread(&self.after) <= threshold
    }
}

/// The usage of every OST of `map` that is up and reports a capacity.
pub fn ost_usage(map: &ClusterMap) -> Vec<OstUsage> {
    map.osts
        .iter()
        .filter(|o| o.state == NodeState::Up && o.capacity.total_bytes > 0)
        .map(|o| OstUsage {
            index: o.index,
            used: o.capacity.total_bytes.saturating_sub(o.capacity.free_bytes),
            total: o.capacity.total_bytes,
        })
        .collect()
}

impl Client {
    /// Moves objects until every OST is within `opts.threshold` of the mean usage (nothing
    /// when it already is), telling `progress` of each file moved.
    pub async fn rebalance(
        &self,
        opts: &RebalanceOptions,
        progress: &dyn Progress,
    ) -> Result<RebalanceReport, Error> {
        self.require_admin_for("rustre rebalance").await?;
        let mut report = RebalanceReport {
            before: ost_usage(&*self.refresh_map().await?),
            ..RebalanceReport::default()
        };
        progress.phase("namespace walk", 0);
        let mut files: HashMap<Ino, FileSlots> = HashMap::new();
        for a in self.walk_files().await?.into_values() {
            let Some(l) = &a.layout else { continue };
            match FileSlots::of(a.ino, a.size, l) {
                Some(f) => drop(files.insert(a.ino, f)),
                None if !l.stale.is_empty() => report.skipped += 1,
                None => {}
            }
        }
        let (mut trigger, target) = (opts.threshold, opts.threshold * TARGET_SHARE_OF_THRESHOLD);
        let mut usage = report.before.clone();
        let mut done: HashSet<Ino> = HashSet::new();
        let start = Instant::now();
        while report.rounds < ROUNDS_MAX {
            let candidates: Vec<FileSlots> = files
                .values()
                .filter(|f| !done.contains(&f.ino))
                .cloned()
                .collect();
            let p = plan(&usage, &candidates, trigger, target);
            if p.files.is_empty() {
                break;
            }
            report.rounds += 1;
            trigger = target;
            let round: Vec<&FilePlan> = p.files.iter().take(REPLAN_EVERY_FILES).collect();
            progress.phase(
                &format!("moving files (round {})", report.rounds),
                round.len() as u64,
            );
            let mut moved_now = 0;
            for fp in round {
                done.insert(fp.ino);
                let to = MigrateTarget {
                    slots: Some(fp.slots.clone()),
                    ..MigrateTarget::default()
                };
                match self.migrate_file(fp.ino, &to, &NoProgress).await {
                    Ok(_) => {
                        moved_now += 1;
                        report.moved_files += 1;
                        report.moved_bytes += fp.bytes();
                    }
                    // Not the administrator after all: every file would be refused alike.
                    Err(e @ (Error::Denied(_) | Error::NotPermitted)) => return Err(e),
                    // Removed meanwhile: nothing to move.
                    Err(Error::NotFound) => {}
                    // Another migration holds it (or one whose migrator died, until its
                    // lease runs out): the next rounds plan around it.
                    Err(Error::Busy) => report.busy += 1,
                    Err(e) => report.failed.push((fp.ino, e)),
                }
                progress.advance(1);
                if let Some(rate) = opts.max_rate.filter(|r| *r > 0) {
                    let due = Duration::from_secs_f64(report.moved_bytes as f64 / rate as f64);
                    tokio::time::sleep_until(start + due).await;
                }
            }
            if moved_now == 0 {
                break;
            }
            usage = self.settled_usage().await?;
        }
        report.after = if report.rounds == 0 {
            usage
        } else {
            self.settled_usage().await?
        };
        Ok(report)
    }

    /// The OSTs' usage once the moves so far show in their heartbeats.
    async fn settled_usage(&self) -> Result<Vec<OstUsage>, Error> {
        tokio::time::sleep(CAPACITY_SETTLE).await;
        Ok(ost_usage(&*self.refresh_map().await?))
    }

    /// Refuses early, before any walk or plan, a connection the MDS does not take for the
    /// administrator's (a read of one inode past its permissions is an admin's only).
    async fn require_admin_for(&self, what: &str) -> Result<(), Error> {
        match self.inspect(ROOT_INO).await {
            Ok(_) => Ok(()),
            Err(Error::Denied(_) | Error::NotPermitted) => Err(Error::Denied(format!(
                "{what} needs the cluster's admin credential, and this connection did not \
                 prove it (run it with --admin-secret-file, or RUSTRE_ADMIN_SECRET_FILE, \
                 naming the admin secret the MDS holds)"
            ))),
            Err(e) => Err(e),
        }
    }
}
