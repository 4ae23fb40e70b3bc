//! The fault plan: from the seed alone, when to crash which server, hold or cut which link,
//! and for how long.
//!
//! Every [`DECIDE_EVERY`] of simulated time, while the workload runs and fewer than
//! [`MAX_ACTIVE`] faults are active, a fault starts with probability [`START_PERCENT`]:
//!
//! - **crash** of a host (MGS, MDS, an OSS or the client; at most one OSS down at a time, so
//!   every stripe keeps a copy), restarted after 0.2–6 s; an OSS also loses power: its OST
//!   keeps only what it synced; the client host starts a new client, which carries on the
//!   workload;
//! - **hold** of a link between two hosts for 0.5–8 s: messages wait and arrive when it ends,
//!   as TCP rides out a partition (every pair of hosts that talk: client–MGS, client–MDS,
//!   client–OSS, MDS–MGS, MDS–OSS, OSS–MGS (fencing));
//! - **loss** on such a link for 50–400 ms: messages are dropped, so the streams crossing it
//!   lose bytes and must be detected and torn down;
//! - **full** OST of an OSS for 0.5–8 s: it has no block more than it holds (`NoSpace`).
//!
//! At every decision point too, with probability [`STALL_PERCENT`] (drawn from a stream of its
//! own), a **stall** of a client–OSS link starts, if fewer than the most faults are active,
//! none touches the client or that OSS and fewer than [`MAX_STALLS`] started before (each
//! holds the workload up to a minute): a hold of 20–45 s ([`STALL_MS`]), longer than
//! the client waits for a copy once another answered (`COPY_GRACE`, 15 s). A write held
//! there counts as failed, its copy is marked stale and resync refills it while the write
//! still waits on the link; it arrives late, under a layout version older than the copy's,
//! which the OST must refuse (a writer that wrote the range again meanwhile, see
//! `workload/ops.rs`, would otherwise find its newer bytes undone on that copy).
//!
//! And at every decision point, with probability [`FLIP_PERCENT`], a **bit flips** in one
//! copy of an object whose copies are the same, at most once per object: the other copy
//! holds the good bytes, which reads must serve (never the flipped ones).
//!
//! [`Severity::Heavy`] (by hand: `--heavy`, and `scripts/sim-night.sh`) starts faults with
//! probability [`START_PERCENT_HEAVY`], allows [`MAX_ACTIVE_HEAVY`] at once, two OSS down
//! together (so some stripes have no copy up: the client must wait it out) and crashes of
//! up to 20 s.
//!
//! When the workload ends ([`Phase::Check`]), every fault is healed at once.

use std::time::Duration;

use crate::cluster::{Cluster, CLIENT, MDS, MGS, OSS};
use crate::disk;
use crate::rng::Rng;
use crate::{Phase, SharedRef};

/// How often the plan considers starting a fault.
pub const DECIDE_EVERY: Duration = Duration::from_millis(500);
/// Chance (percent) that a fault starts at a decision point.
pub const START_PERCENT: u64 = 25;
/// The same under [`Severity::Heavy`].
pub const START_PERCENT_HEAVY: u64 = 40;
/// Chance (percent), at each decision point, that a bit flips in a stored object.
pub const FLIP_PERCENT: u64 = 4;
/// Most faults active at once.
pub const MAX_ACTIVE: usize = 2;
/// Most faults active at once under [`Severity::Heavy`].
pub const MAX_ACTIVE_HEAVY: usize = 3;
/// Chance (percent), at each decision point, that a stall of a client–OSS link starts, and
/// how long it lasts (milliseconds): longer than the client's `COPY_GRACE` (15 s) plus a
/// resync, shorter than a call's timeout (`RPC_TIMEOUT`, 60 s).
pub const STALL_PERCENT: u64 = 2;
pub const STALL_MS: (u64, u64) = (20_000, 45_000);
/// Most stalls in one run: enough for a run of the suite, few enough that a long run
/// (`scripts/sim-night.sh`, 200 operations under heavy faults) still ends in [`SIM_LIMIT`](crate::SIM_LIMIT).
pub const MAX_STALLS: usize = 2;

/// How hard the plan hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    None,
    Normal,
    Heavy,
}

/// One active fault and when it ends.
#[derive(Debug, Clone)]
enum Fault {
    Crash(&'static str),
    Hold(&'static str, &'static str),
    /// A long hold of a client–OSS link: the client's messages arrive after it gave up on
    /// them.
    Stall(&'static str, &'static str),
    Loss(&'static str, &'static str),
    /// The OST of an OSS host is full: no block more than it holds.
    Full(&'static str),
}

/// The plan of one run.
pub struct Plan {
    rng: Rng,
    /// When stalls start, where and for how long: a stream of its own, so that a decision
    /// without a stall moves no other draw.
    stalls: Rng,
    /// Stalls started so far.
    stalled: usize,
    severity: Severity,
    next_decision: Duration,
    active: Vec<(Fault, Duration)>,
    cluster: Cluster,
}

/// The links faults are put on: every pair of hosts that talk (OSS never call each other).
const LINKS: [(&str, &str); 12] = [
    (CLIENT, MGS),
    (CLIENT, MDS),
    (CLIENT, OSS[0]),
    (CLIENT, OSS[1]),
    (CLIENT, OSS[2]),
    (MDS, MGS),
    (MDS, OSS[0]),
    (MDS, OSS[1]),
    (MDS, OSS[2]),
    (OSS[0], MGS),
    (OSS[1], MGS),
    (OSS[2], MGS),
];

impl Plan {
    pub fn new(seed: u64, severity: Severity, cluster: Cluster) -> Plan {
        Plan {
            rng: Rng::new(seed, 1),
            stalls: Rng::new(seed, 3),
            stalled: 0,
            severity,
            next_decision: Duration::from_secs(2),
            active: Vec::new(),
            cluster,
        }
    }

    /// Called after every step of the simulation.
    pub fn tick(&mut self, sim: &mut turmoil::Sim<'_>, phase: Phase, shared: &SharedRef) {
        let now = sim.elapsed();
        if phase == Phase::Check {
            for (fault, _) in std::mem::take(&mut self.active) {
                self.heal(sim, &fault, shared);
            }
            return;
        }
        let (ended, still): (Vec<_>, Vec<_>) = std::mem::take(&mut self.active)
            .into_iter()
            .partition(|(_, end)| *end <= now);
        self.active = still;
        for (fault, _) in ended {
            self.heal(sim, &fault, shared);
        }
        if self.severity == Severity::None || now < self.next_decision {
            return;
        }
        self.next_decision = now + DECIDE_EVERY;
        if self.rng.chance(FLIP_PERCENT) {
            self.flip(shared);
        }
        let heavy = self.severity == Severity::Heavy;
        let most = if heavy { MAX_ACTIVE_HEAVY } else { MAX_ACTIVE };
        if self.stalls.chance(STALL_PERCENT) {
            let oss = OSS[self.stalls.below(OSS.len() as u64) as usize];
            let (lo, hi) = STALL_MS;
            let lasts = Duration::from_millis(self.stalls.between(lo, hi));
            let free = self.active.len() < most && !self.touches(CLIENT) && !self.touches(oss);
            if free && self.stalled < MAX_STALLS {
                self.stalled += 1;
                self.start(sim, Fault::Stall(CLIENT, oss), lasts, shared);
            }
        }
        let chance = if heavy {
            START_PERCENT_HEAVY
        } else {
            START_PERCENT
        };
        if self.active.len() >= most || !self.rng.chance(chance) {
            return;
        }
        let Some((fault, lasts)) = self.pick() else {
            return;
        };
        self.start(sim, fault, lasts, shared);
    }

    /// Starts `fault`, to be healed once it `lasts`.
    fn start(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        fault: Fault,
        lasts: Duration,
        shared: &SharedRef,
    ) {
        shared
            .borrow_mut()
            .trace(format!("fault: {fault:?} for {} ms", lasts.as_millis()));
        match &fault {
            Fault::Crash(h) => self.cluster.crash(sim, h),
            Fault::Hold(a, b) | Fault::Stall(a, b) => sim.hold(*a, *b),
            Fault::Loss(a, b) => sim.partition(*a, *b),
            Fault::Full(h) => self.cluster.fill(h),
        }
        self.active.push((fault, sim.elapsed() + lasts));
    }

    /// Flips a bit of one copy of an object whose copies are the same (see
    /// [`disk::pick_flip`]), at most once per object.
    fn flip(&mut self, shared: &SharedRef) {
        let mut sh = shared.borrow_mut();
        let Some((ost, id, at)) = disk::pick_flip(&self.cluster.stores, &mut self.rng, &sh.flipped)
        else {
            return;
        };
        self.cluster.stores[ost].corrupt(id, at);
        sh.flipped.insert(id);
        sh.trace(format!(
            "fault: a bit flips in byte {at} of object {:x}.{} on OST {ost}",
            id.ino, id.stripe
        ));
    }

    fn heal(&self, sim: &mut turmoil::Sim<'_>, fault: &Fault, shared: &SharedRef) {
        shared.borrow_mut().trace(format!("heal: {fault:?}"));
        match fault {
            Fault::Crash(h) => sim.bounce(*h),
            Fault::Hold(a, b) | Fault::Stall(a, b) => sim.release(*a, *b),
            Fault::Loss(a, b) => sim.repair(*a, *b),
            Fault::Full(h) => self.cluster.make_room(h),
        }
    }

    /// A new fault that does not overlap an active one, and how long it lasts.
    fn pick(&mut self) -> Option<(Fault, Duration)> {
        let ms = |r: &mut Rng, lo, hi| Duration::from_millis(r.between(lo, hi));
        let fault = match self.rng.below(4) {
            0 => {
                let hosts = [MGS, MDS, OSS[0], OSS[1], OSS[2], CLIENT];
                let h = hosts[self.rng.below(hosts.len() as u64) as usize];
                let oss_down = self
                    .active
                    .iter()
                    .any(|(f, _)| matches!(f, Fault::Crash(x) if OSS.contains(x)));
                let heavy = self.severity == Severity::Heavy;
                if self.touches(h) || (OSS.contains(&h) && oss_down && !heavy) {
                    return None;
                }
                let longest = if heavy { 20_000 } else { 6_000 };
                (Fault::Crash(h), ms(&mut self.rng, 200, longest))
            }
            3 => {
                let h = OSS[self.rng.below(OSS.len() as u64) as usize];
                if self.touches(h) {
                    return None;
                }
                (Fault::Full(h), ms(&mut self.rng, 500, 8_000))
            }
            kind => {
                let (a, b) = LINKS[self.rng.below(LINKS.len() as u64) as usize];
                if self.touches(a) || self.touches(b) {
                    return None;
                }
                if kind == 1 {
                    (Fault::Hold(a, b), ms(&mut self.rng, 500, 8_000))
                } else {
                    (Fault::Loss(a, b), ms(&mut self.rng, 50, 400))
                }
            }
        };
        Some(fault)
    }

    /// Whether an active fault involves `host`.
    fn touches(&self, host: &str) -> bool {
        self.active.iter().any(|(f, _)| match f {
            Fault::Crash(h) | Fault::Full(h) => *h == host,
            Fault::Hold(a, b) | Fault::Stall(a, b) | Fault::Loss(a, b) => *a == host || *b == host,
        })
    }
}
