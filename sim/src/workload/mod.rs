//! The simulated client: a random workload through the client library, a model of what the
//! cluster acknowledged, and the checks of the invariants.
//!
//! The model maps each path to [`Entry::Known`] bytes (the operations that made them were
//! all acknowledged: writes followed by a successful fsync) or [`Entry::Unsure`] (some
//! operation on it failed, or was under way when the client host crashed, so it may or may
//! not exist and its bytes are unknown). A path absent from the model must not exist.
//!
//! The client host may crash: its client (connections, caches, unsynced writes, session)
//! is gone, and the host starts again with a new client, whose session is a new one (the
//! old one's lapses at the MDS). The workload's [`State`] (the model, the random stream,
//! the next operation) lives outside the host and so survives; the operation under way
//! leaves its paths unsure.
//!
//! Violations: a read that returns bytes other than the acknowledged ones (during the faults
//! or after), an acknowledged file missing, a name present that no operation made, a
//! create of a name known absent refused as existing, and, after the faults are healed and
//! resync had time to run, a file that still has stale copies or copies of one stripe that
//! differ in their stores; then again (contents and copies) after a power cut of every OSS.
//! And a run in which fewer than [`MIN_SUCCEEDED_PERCENT`] of the operations succeeded
//! checked too little: that is a violation too.
//!
//! ## Layout
//! - `mod.rs`: the client host's software, the [`State`] that outlives it, one step.
//! - `ops`: the operations, each keeping the model.
//! - `checks`: the checks once the faults are healed.

mod checks;
mod ops;

use std::cell::{RefCell, RefMut};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use rustre_fuse::client::{Client, ClientConfig};
use rustre_proto::msg::{Creds, Ino, ROOT_INO};
use rustre_proto::Error;

use crate::cluster::{self, Cluster};
use crate::rng::Rng;
use crate::{Options, Phase, SharedRef};

/// Directories of the workload (under the root) and file names in each.
const DIRS: u64 = 3;
const FILES_PER_DIR: u64 = 5;
/// How long one workload operation may take before it counts as failed.
const OP_LIMIT: Duration = Duration::from_secs(150);
/// Quiet time after healing, before the checks (registrations, leases, resync), and after
/// the final power cut.
const SETTLE: Duration = Duration::from_secs(20);
/// Fewest operations (pauses aside) that must succeed, in percent of those tried: a run in
/// which (nearly) everything failed checked nothing. Under the normal faults nearly all
/// succeed (47 of 47 to 58 of 58 over seeds 1 to 60), under `--heavy` at least 50 of 56.
const MIN_SUCCEEDED_PERCENT: usize = 50;
/// Tries of the client's connection (1 s apart) before the run fails.
const CONNECT_TRIES: u32 = 60;

/// A path of the workload: directory and file number.
type Path = (u64, u64);

/// What the model knows of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Known(Vec<u8>),
    Unsure,
}

/// What the workload knows and where it is: outside the client host, so that it outlives
/// the host's crashes.
pub struct State {
    rng: Rng,
    /// Which overwrites rewrite their range once more, and with what: a stream of its own,
    /// so that the rest of the workload draws what it drew before rewrites existed.
    rewrites: Rng,
    /// The workload's directories, once made.
    dirs: Vec<Ino>,
    model: BTreeMap<Path, Entry>,
    /// The next operation's number.
    next_op: usize,
    /// The operation under way (number, name) and the paths it may change.
    under_way: Option<(usize, &'static str, Vec<Path>)>,
    /// Operations tried (pauses aside) and those that succeeded.
    tried: usize,
    succeeded: usize,
    /// Starts of the client host so far.
    starts: u64,
}

/// Shared handle of the workload's state.
pub type StateRef = Rc<RefCell<State>>;

impl State {
    /// The state of a workload that has not started, drawing from `seed`.
    pub fn new(seed: u64) -> StateRef {
        Rc::new(RefCell::new(State {
            rng: Rng::new(seed, 2),
            rewrites: Rng::new(seed, 4),
            dirs: Vec::new(),
            model: BTreeMap::new(),
            next_op: 0,
            under_way: None,
            tried: 0,
            succeeded: 0,
            starts: 0,
        }))
    }
}

/// One start of the client host: a client of its own, the shared state.
struct Workload {
    client: Arc<Client>,
    shared: SharedRef,
    state: StateRef,
    creds: Creds,
}

/// The client host's software, at its first start and after each crash: connect a new
/// client, take the workload up where it stands, then (once) heal and check. Tells the
/// driver when it is done.
pub async fn run(
    opts: Options,
    shared: SharedRef,
    cluster: Cluster,
    state: StateRef,
) -> turmoil::Result {
    resume(&opts, &shared, &cluster, state).await;
    shared.borrow_mut().done = true;
    Ok(())
}

async fn resume(opts: &Options, shared: &SharedRef, cluster: &Cluster, state: StateRef) {
    let start = {
        let mut st = state.borrow_mut();
        st.starts += 1;
        st.starts
    };
    if start > 1 {
        shared
            .borrow_mut()
            .trace(format!("client host started again (start {start})"));
        forget_interrupted(shared, &state);
    }
    let Some(client) = connect(cluster, shared, start).await else {
        return;
    };
    let w = Workload {
        client,
        shared: shared.clone(),
        state,
        creds: Creds::root(),
    };
    if !w.make_dirs().await {
        return;
    }
    loop {
        let n = {
            let mut st = w.st();
            if st.next_op >= opts.ops {
                break;
            }
            st.next_op += 1;
            st.next_op - 1
        };
        w.step(n).await;
    }
    w.shared.borrow_mut().phase = Phase::Check;
    let (succeeded, tried) = {
        let st = w.st();
        (st.succeeded, st.tried)
    };
    w.trace(format!(
        "workload done ({succeeded} of {tried} operations succeeded); faults healed"
    ));
    if !enough_succeeded(succeeded, tried) {
        w.violation(format!(
            "only {succeeded} of {tried} operations succeeded (at least \
             {MIN_SUCCEEDED_PERCENT} % must)"
        ));
    }
    tokio::time::sleep(SETTLE).await;
    w.check_namespace().await;
    w.check_contents("after healing").await;
    w.check_copies(cluster).await;
    // Every acknowledged byte must be durable, not only in the OSTs' memory.
    w.shared.borrow_mut().power_cut = true;
    tokio::time::sleep(SETTLE).await;
    w.check_contents("after the power cut").await;
    w.check_copies(cluster).await;
    let (known, unsure) = {
        let st = w.st();
        let unsure = st.model.values().filter(|e| **e == Entry::Unsure).count();
        (st.model.len() - unsure, unsure)
    };
    w.trace(format!("checks done: {known} known files, {unsure} unsure"));
}

/// After a crash of the client host: the operation it had under way may or may not have
/// happened, so its paths become unsure (and it counts as failed).
fn forget_interrupted(shared: &SharedRef, state: &StateRef) {
    let mut st = state.borrow_mut();
    let Some((n, op, paths)) = st.under_way.take() else {
        return;
    };
    st.tried += 1;
    for path in &paths {
        st.model.insert(*path, Entry::Unsure);
    }
    let (d, f) = paths.first().copied().unwrap_or_default();
    shared.borrow_mut().trace(format!(
        "op {n}: {op} d{d}/f{f}: interrupted by the crash of the client host"
    ));
}

/// A new client (named after the host's `start`).
async fn connect(cluster: &Cluster, shared: &SharedRef, start: u64) -> Option<Arc<Client>> {
    let cfg = ClientConfig {
        mgs_addr: format!("{}:{}", cluster::MGS, cluster::MGS_PORT),
        cluster: cluster::CLUSTER_NAME.into(),
        client_name: format!("sim-client-{start}"),
        key: cluster.key.clone(),
    };
    for _ in 0..CONNECT_TRIES {
        match Client::connect(&cfg).await {
            Ok(c) => return Some(c),
            Err(e) => tracing::debug!("client connect: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    shared
        .borrow_mut()
        .violation(format!("the client could not connect in {CONNECT_TRIES} s"));
    None
}

fn name(file: u64) -> String {
    format!("f{file}")
}

/// Whether `succeeded` of `tried` operations is at least [`MIN_SUCCEEDED_PERCENT`].
fn enough_succeeded(succeeded: usize, tried: usize) -> bool {
    succeeded * 100 >= tried * MIN_SUCCEEDED_PERCENT
}

impl Workload {
    /// The shared state, borrowed for one statement (never across an await).
    fn st(&self) -> RefMut<'_, State> {
        self.state.borrow_mut()
    }

    fn trace(&self, line: String) {
        self.shared.borrow_mut().trace(line);
    }

    fn violation(&self, what: String) {
        self.shared.borrow_mut().violation(what);
    }

    /// The directory inode of `path`.
    fn dir(&self, path: Path) -> Ino {
        self.st().dirs[path.0 as usize]
    }

    /// Makes the workload's directories (or finds them, made before a crash).
    async fn make_dirs(&self) -> bool {
        if self.st().dirs.len() == DIRS as usize {
            return true;
        }
        let mut dirs = Vec::new();
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
                Some(ino) => dirs.push(ino),
                None => {
                    self.violation(format!("could not make directory {dname}"));
                    return false;
                }
            }
        }
        self.st().dirs = dirs;
        true
    }

    /// One random operation.
    async fn step(&self, n: usize) {
        let (path, roll, entry) = {
            let mut st = self.st();
            let path = (st.rng.below(DIRS), st.rng.below(FILES_PER_DIR));
            let roll = st.rng.below(100);
            let entry = st.model.get(&path).cloned();
            (path, roll, entry)
        };
        let op = match (roll, entry) {
            (0..=9, _) => {
                let pause = Duration::from_millis(self.st().rng.below(3_000));
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
        let to = {
            let mut st = self.st();
            (st.rng.below(DIRS), st.rng.below(FILES_PER_DIR))
        };
        let changes = match op {
            "read" => vec![],
            "rename" => vec![path, to],
            _ => vec![path],
        };
        self.st().under_way = Some((n, op, changes.clone()));
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
        let mut st = self.st();
        st.under_way = None;
        st.tried += 1;
        match outcome {
            Ok(what) => {
                st.succeeded += 1;
                drop(st);
                self.trace(format!("op {n}: {op} d{d}/f{f}: ok {what}"))
            }
            Err(e) => {
                for p in changes {
                    st.model.insert(p, Entry::Unsure);
                }
                drop(st);
                self.trace(format!("op {n}: {op} d{d}/f{f}: failed: {e}"));
            }
        }
    }
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
