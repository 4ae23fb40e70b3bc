//! # rustre-sim — deterministic simulation of a whole rustre cluster
//!
//! One seed fixes one run: the MGS, the MDS and three OSS (each its own simulated host; every
//! OST an in-memory store, and the metadata store in memory too, all outside the hosts, so
//! they outlive them as disks and FoundationDB would), and a client host running the client
//! library (no FUSE) through a random workload, while a fault plan crashes and restarts the
//! hosts (an OSS loses power: its OST keeps only what it synced; the client host starts a
//! new client), holds links (a partition that TCP rides out: messages wait, then arrive;
//! between the client and an OSS sometimes past the client's patience, so its writes arrive
//! late), drops messages on links (a lossy partition: streams lose bytes and must be torn
//! down), fills OSTs and flips bits in them. Everything runs on one thread under turmoil's
//! simulated clock and network, with seeded runtimes; blocking work runs in place.
//!
//! After the workload the faults are healed and the checker asserts the invariants:
//! every acknowledged (fsync'd) write reads back byte for byte, the namespace is exactly
//! what the acknowledged operations made it, and, once resync has run, every copy of every
//! file is up to date and holds the file's bytes; then again after a power cut of every
//! OSS. Reads during the faults must return the acknowledged bytes or an error, never other
//! bytes. A run in which most operations failed, or a task panicked, fails too.
//!
//! A run returns its trace (every operation, outcome and fault with its simulated time) and
//! its violations. The same seed gives the same trace: `cargo run --release -- --seed N`
//! replays a failure. See docs/simulation.md.
//!
//! ## Layout
//! - [`simnet`]: rustre's transport, clock and disk-space seams over turmoil.
//!   (`.cargo/config.toml` sets `tokio_unstable`, so turmoil seeds every host's runtime.)
//! - [`rng`]: the seeded random streams.
//! - [`cluster`]: the hosts and their software.
//! - [`disk`]: the OSTs' stores seen behind the OSS's back (bit flips, copy comparison).
//! - [`faults`]: the fault plan.
//! - [`workload`]: the client's operations, the model of what was acknowledged, the checks.

pub mod cluster;
pub mod disk;
pub mod faults;
pub mod rng;
pub mod simnet;
pub mod workload;

pub use rustre_proto::injected_bug::{self, Bug};
use rustre_proto::msg::oss::ObjectId;

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Once;
use std::time::Duration;

/// Longest simulated time of one run; a run still going then has hung (a violation).
pub const SIM_LIMIT: Duration = Duration::from_secs(1200);
/// Operations of the workload in a default run.
pub const DEFAULT_OPS: usize = 60;
/// Simulated time per step of the simulation.
pub const TICK: Duration = Duration::from_millis(1);

/// What one run does.
#[derive(Debug, Clone)]
pub struct Options {
    pub seed: u64,
    /// Operations of the workload.
    pub ops: usize,
    /// The injected bug switched on, if any (feature `sim-bug` of rustre-fuse and rustre-server).
    pub bug: Option<Bug>,
    /// How hard the fault plan hits.
    pub faults: faults::Severity,
}

impl Options {
    /// The default run of `seed`.
    pub fn seed(seed: u64) -> Options {
        Options {
            seed,
            ops: DEFAULT_OPS,
            bug: None,
            faults: faults::Severity::Normal,
        }
    }

    /// The command-line options of `main.rs` that make this run again.
    pub fn args(&self) -> String {
        let mut args = format!("--seed {}", self.seed);
        if self.ops != DEFAULT_OPS {
            args += &format!(" --ops {}", self.ops);
        }
        match self.faults {
            faults::Severity::None => args += " --no-faults",
            faults::Severity::Normal => {}
            faults::Severity::Heavy => args += " --heavy",
        }
        if let Some(bug) = self.bug {
            args += &format!(" --bug {}", bug.name());
        }
        args
    }
}

/// What a run saw.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub seed: u64,
    /// The options that replay the run (see [`Options::args`]).
    pub args: String,
    /// Every operation, outcome and fault, with its simulated time, in order.
    pub trace: Vec<String>,
    /// Broken invariants (empty: the run passed).
    pub violations: Vec<String>,
}

impl Outcome {
    /// The failure report: the seed, how to replay it, and the violations.
    pub fn report(&self) -> String {
        format!(
            "seed {} failed ({} violations; replay with `cd sim && cargo run --release -- \
             {}`):\n  {}",
            self.seed,
            self.violations.len(),
            self.args,
            self.violations.join("\n  ")
        )
    }
}

/// Where the workload is, as the fault plan needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Faults are injected.
    Workload,
    /// Faults are healed and no new ones come; the checker runs.
    Check,
}

/// State the driver and the simulated client share (all on one thread).
#[derive(Debug)]
pub struct Shared {
    pub phase: Phase,
    pub outcome: Outcome,
    /// The simulated time of the driver's last step (for trace lines written outside a
    /// host).
    pub now: Duration,
    /// Set by the checker: cut the power of every OSS (they start again at once).
    pub power_cut: bool,
    /// Set by the client host when the workload and its checks are over: the run ends.
    pub done: bool,
    /// Objects a bit flipped in (on one of their copies).
    pub flipped: BTreeSet<ObjectId>,
}

impl Shared {
    /// Appends a trace line stamped with the simulated time.
    pub fn trace(&mut self, line: String) {
        let t = turmoil::sim_elapsed().unwrap_or(self.now);
        self.outcome
            .trace
            .push(format!("{:>9.3}s {line}", t.as_secs_f64()));
    }

    /// Records a violation (also in the trace).
    pub fn violation(&mut self, what: String) {
        self.trace(format!("VIOLATION {what}"));
        self.outcome.violations.push(what);
    }
}

/// Shared state handle.
pub type SharedRef = Rc<RefCell<Shared>>;

thread_local! {
    /// The first panic of this thread's run: its place and message.
    static FIRST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Keeps the first panic of each run (a task's panic reaches the driver only as "a spawned
/// task panicked"), then reports it as before.
fn keep_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let at = info.location().map(|l| l.to_string()).unwrap_or_default();
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            let _ = FIRST_PANIC.try_with(|p| {
                if let Ok(mut p) = p.try_borrow_mut() {
                    p.get_or_insert_with(|| format!("{msg} (at {at})"));
                }
            });
            report(info);
        }));
    });
}

/// Runs one seed and returns what it saw.
pub fn run(opts: &Options) -> Outcome {
    keep_panics();
    FIRST_PANIC.with(|p| p.take());
    simnet::install();
    simnet::start_run();
    injected_bug::set(opts.bug);
    let shared: SharedRef = Rc::new(RefCell::new(Shared {
        phase: Phase::Workload,
        now: Duration::ZERO,
        power_cut: false,
        done: false,
        flipped: BTreeSet::new(),
        outcome: Outcome {
            seed: opts.seed,
            args: opts.args(),
            ..Outcome::default()
        },
    }));
    let mut sim = turmoil::Builder::new()
        // Turmoil enforces this only on its clients; the loop below stops at SIM_LIMIT.
        .simulation_duration(SIM_LIMIT)
        .tick_duration(TICK)
        .min_message_latency(Duration::from_micros(50))
        .max_message_latency(Duration::from_millis(2))
        .tcp_capacity(4096)
        .rng_seed(opts.seed)
        .build();
    let cluster = cluster::Cluster::start(&mut sim);
    // A host rather than a turmoil client, so that the fault plan can crash it; the
    // workload's state outlives it.
    let state = workload::State::new(opts.seed);
    let (o, sh, c) = (opts.clone(), shared.clone(), cluster.clone());
    sim.host(cluster::CLIENT, move || {
        workload::run(o.clone(), sh.clone(), c.clone(), state.clone())
    });
    let mut plan = faults::Plan::new(opts.seed, opts.faults, cluster.clone());
    loop {
        // A panicking task shuts its host's runtime down, and the step panics (turmoil with
        // `tokio_unstable`): a violation of this seed, not the end of the process.
        match std::panic::catch_unwind(AssertUnwindSafe(|| sim.step())) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                shared
                    .borrow_mut()
                    .violation(format!("the simulation stopped: {e}"));
                break;
            }
            Err(_) => {
                let what = FIRST_PANIC.with(|p| p.take()).unwrap_or_default();
                shared
                    .borrow_mut()
                    .violation(format!("a task panicked: {what}"));
                break;
            }
        }
        let (phase, done) = {
            let mut sh = shared.borrow_mut();
            sh.now = sim.elapsed();
            (sh.phase, sh.done)
        };
        if done {
            break;
        }
        if sim.elapsed() > SIM_LIMIT {
            shared.borrow_mut().violation(format!(
                "the run has hung: still going after {} s",
                SIM_LIMIT.as_secs()
            ));
            break;
        }
        plan.tick(&mut sim, phase, &shared);
        if std::mem::take(&mut shared.borrow_mut().power_cut) {
            shared
                .borrow_mut()
                .trace("power cut of every OSS; they start again".into());
            for host in cluster::OSS {
                cluster.crash(&mut sim, host);
                sim.bounce(host);
            }
        }
    }
    injected_bug::set(None);
    drop(sim);
    let out = shared.borrow().outcome.clone();
    out
}
