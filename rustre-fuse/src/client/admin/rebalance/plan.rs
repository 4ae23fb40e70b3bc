//! The rebalance planner: a pure function from the OSTs' usage and the files' layouts to the
//! objects to move (file, slot, from OST, to OST), fullest OST to emptiest, until every OST's
//! usage (a fraction of its capacity) is within a band around the mean. No I/O here: the
//! caller ([`super`]) reads the usage and the layouts, and carries the moves out.

use std::collections::{BTreeSet, HashMap};

use rustre_proto::msg::{Ino, Layout, UNKNOWN_ALLOCATION};

/// Most objects one plan moves (a plan of more is cut; the next round plans the rest).
pub(super) const PLAN_MOVES_MAX: usize = 100_000;
/// Candidates the planner looks at on one OST for one move before settling for an object
/// that shares an OST with another stripe of its file (or giving up on the pair).
const SCAN_MAX: usize = 256;

/// One OST's usage: bytes used of its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OstUsage {
    pub index: u32,
    pub used: u64,
    pub total: u64,
}

impl OstUsage {
    /// Used share of the capacity (0 for an OST of no capacity).
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.used as f64 / self.total as f64
        }
    }
}

/// The mean usage of `osts` weighted by capacity (all bytes used over all capacity): the
/// share every OST would have were the data spread perfectly.
pub fn mean_fraction(osts: &[OstUsage]) -> f64 {
    let used: u128 = osts.iter().map(|o| o.used as u128).sum();
    let total: u128 = osts.iter().map(|o| o.total as u128).sum();
    if total == 0 {
        0.0
    } else {
        used as f64 / total as f64
    }
}

/// The largest distance of an OST's usage from the mean, as a fraction of capacity.
pub fn spread(osts: &[OstUsage]) -> f64 {
    let mean = mean_fraction(osts);
    osts.iter()
        .map(|o| (o.fraction() - mean).abs())
        .fold(0.0, f64::max)
}

/// A file as the planner sees it: the OST of every slot (`Layout::osts` order) and the bytes
/// of the object in each slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileSlots {
    pub(super) ino: Ino,
    pub(super) replicas: u32,
    pub(super) slots: Vec<u32>,
    pub(super) bytes: Vec<u64>,
}

impl FileSlots {
    /// The file of `size` bytes with `layout`, or `None` when it has nothing to move or must
    /// not be moved now: a copy waiting for resync (or lost) is resync's business first.
    pub(super) fn of(ino: Ino, size: u64, layout: &Layout) -> Option<FileSlots> {
        let count = layout.stripe_count();
        if count == 0 || !layout.stale.is_empty() || size == 0 {
            return None;
        }
        let bytes = (0..layout.osts.len())
            .map(|slot| {
                let stripe = layout.stripe_of_slot(slot);
                match layout.allocated.get(stripe as usize) {
                    Some(&a) if a != UNKNOWN_ALLOCATION => a,
                    _ => stripe_bytes(size, layout.stripe_size, count, stripe),
                }
            })
            .collect();
        Some(FileSlots {
            ino,
            replicas: layout.replicas.max(1),
            slots: layout.osts.clone(),
            bytes,
        })
    }

    fn stripe_count(&self) -> usize {
        self.slots.len() / self.replicas as usize
    }

    /// True when OST `ost` holds a copy of the stripe of `slot` (in another slot).
    fn has_copy_on(&self, slot: usize, ost: u32) -> bool {
        let count = self.stripe_count();
        let stripe = slot % count;
        (0..self.replicas as usize).any(|r| self.slots[r * count + stripe] == ost)
    }
}

/// Bytes of stripe `stripe` of a file of `size` bytes (RAID-0 over `count` objects of
/// `stripe_size` units): its share of the file, holes counted as data.
pub(super) fn stripe_bytes(size: u64, stripe_size: u32, count: u32, stripe: u32) -> u64 {
    let (unit, count) = (u64::from(stripe_size.max(1)), u64::from(count.max(1)));
    let row = unit * count;
    let rest = size % row;
    (size / row) * unit + rest.saturating_sub(u64::from(stripe) * unit).min(unit)
}

/// One object to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Move {
    pub(super) slot: usize,
    pub(super) from: u32,
    pub(super) to: u32,
    pub(super) bytes: u64,
}

/// What to make of one file: its new slots (the old ones with the moved entries replaced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FilePlan {
    pub(super) ino: Ino,
    pub(super) slots: Vec<u32>,
    pub(super) moves: Vec<Move>,
}

impl FilePlan {
    /// Bytes the plan copies for this file.
    pub(super) fn bytes(&self) -> u64 {
        self.moves.iter().map(|m| m.bytes).sum()
    }
}

/// A plan: files in the order to move them (those of the fullest OSTs first), and the
/// usage of every OST once they are moved.
#[derive(Debug, Clone, Default)]
pub(super) struct Plan {
    pub(super) files: Vec<FilePlan>,
    pub(super) predicted: Vec<OstUsage>,
}

/// Plans moves among `osts` (the OSTs to balance: those up, with a capacity): nothing when
/// every OST's usage is within `trigger` (a fraction of capacity) of the mean; otherwise
/// moves, each from the fullest OST with a fitting object to the emptiest that may take it,
/// until every OST is within `target` of the mean or no move helps. Never two copies of one
/// stripe on one OST; an OST that already holds another stripe of the file is taken only
/// when no other object fits. Each object moves at most once per plan.
pub(super) fn plan(osts: &[OstUsage], files: &[FileSlots], trigger: f64, target: f64) -> Plan {
    let mut usage: Vec<OstUsage> = osts.iter().filter(|o| o.total > 0).copied().collect();
    let mean = mean_fraction(&usage);
    let mut out = Plan {
        files: Vec::new(),
        predicted: usage.clone(),
    };
    if spread(&usage) <= trigger {
        return out;
    }
    let pos: HashMap<u32, usize> = usage
        .iter()
        .enumerate()
        .map(|(i, o)| (o.index, i))
        .collect();
    // Per OST: its objects as (bytes, file, slot), smallest first.
    let mut objects: Vec<BTreeSet<(u64, usize, usize)>> = vec![BTreeSet::new(); usage.len()];
    for (f, file) in files.iter().enumerate() {
        for (slot, ost) in file.slots.iter().enumerate() {
            if let (Some(&i), b @ 1..) = (pos.get(ost), file.bytes[slot]) {
                objects[i].insert((b, f, slot));
            }
        }
    }
    let mut current: HashMap<usize, FileSlots> = HashMap::new();
    let mut order: Vec<usize> = Vec::new();
    let mut moves: HashMap<usize, Vec<Move>> = HashMap::new();
    let dev = |o: &OstUsage| o.fraction() - mean;
    for _ in 0..PLAN_MOVES_MAX {
        if spread(&usage) <= target {
            break;
        }
        let mut by_dev: Vec<usize> = (0..usage.len()).collect();
        by_dev.sort_by(|&a, &b| dev(&usage[b]).total_cmp(&dev(&usage[a])));
        let found = by_dev
            .iter()
            .filter(|&&s| dev(&usage[s]) > 0.0)
            .find_map(|&s| {
                by_dev
                    .iter()
                    .rev()
                    .filter(|&&d| d != s && dev(&usage[d]) < 0.0)
                    .find_map(|&d| {
                        let pick = pick(&objects[s], &usage, mean, s, d, |f, slot, soft| {
                            let file = current.get(&f).unwrap_or(&files[f]);
                            let to = usage[d].index;
                            !file.has_copy_on(slot, to) && (!soft || !file.slots.contains(&to))
                        });
                        pick.map(|o| (s, d, o))
                    })
            });
        let Some((s, d, (bytes, f, slot))) = found else {
            break;
        };
        objects[s].remove(&(bytes, f, slot));
        usage[s].used = usage[s].used.saturating_sub(bytes);
        usage[d].used += bytes;
        let (from, to) = (usage[s].index, usage[d].index);
        let file = current.entry(f).or_insert_with(|| {
            order.push(f);
            files[f].clone()
        });
        file.slots[slot] = to;
        let m = Move {
            slot,
            from,
            to,
            bytes,
        };
        moves.entry(f).or_default().push(m);
    }
    out.files = order
        .into_iter()
        .map(|f| FilePlan {
            ino: files[f].ino,
            slots: current[&f].slots.clone(),
            moves: moves.remove(&f).unwrap_or_default(),
        })
        .collect();
    out.predicted = usage;
    out
}

/// The object of OST `s` to move to OST `d`: the largest that brings neither past the mean,
/// else the smallest that still narrows the wider gap of the two; objects `ok(file, slot,
/// true)` first (file not on `d` at all), then those only `ok(file, slot, false)`.
fn pick(
    objects: &BTreeSet<(u64, usize, usize)>,
    usage: &[OstUsage],
    mean: f64,
    s: usize,
    d: usize,
    ok: impl Fn(usize, usize, bool) -> bool,
) -> Option<(u64, usize, usize)> {
    let (src, dst) = (usage[s], usage[d]);
    let excess = (src.fraction() - mean) * src.total as f64;
    let deficit = (mean - dst.fraction()) * dst.total as f64;
    let budget = excess.min(deficit).max(0.0) as u64;
    let gap = (src.fraction() - mean)
        .abs()
        .max((dst.fraction() - mean).abs());
    let narrows = |b: u64| {
        let after_src = (src.used.saturating_sub(b)) as f64 / src.total as f64 - mean;
        let after_dst = (dst.used + b) as f64 / dst.total as f64 - mean;
        after_src.abs().max(after_dst.abs()) < gap
    };
    let fitting = || objects.range(..=(budget, usize::MAX, usize::MAX)).rev();
    let larger = || objects.range((budget + 1, 0, 0)..);
    for soft in [true, false] {
        let hit = fitting()
            .take(SCAN_MAX)
            .chain(larger().take(SCAN_MAX).filter(|o| narrows(o.0)))
            .find(|&&(_, f, slot)| ok(f, slot, soft));
        if let Some(&o) = hit {
            return Some(o);
        }
    }
    None
}

#[cfg(test)]
mod tests;
