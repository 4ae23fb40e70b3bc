//! Choosing a new file's layout: the caller's request, else the directory's default, else
//! the cluster's; OSTs picked round-robin among those that are up.
//!
//! Space: OSTs that are full ([`is_full`]: less than `100 - OST_FULL_PERCENT` % of their
//! capacity available, by their last heartbeat, or capacity unknown) get no new stripes
//! while the OSTs up and not full are enough for the stripe count (and the copies); only
//! when they are not does placement fall back to every OST up, full ones included (a write
//! there then fails with ENOSPC, as on a full local disk; the create itself succeeds). A
//! stripe count of "all OSTs" means all that are not full, when any are. An explicit OST
//! list is taken as given, full or not; its further copies avoid full OSTs the same way.
//!
//! With `replicas > 1` every stripe gets that many copies on distinct OSTs
//! (docs/replication.md). Placement, for `count` stripes over the sorted list of OSTs that
//! are up, starting at a rotating offset `start`:
//! - copy 0 of stripe `i` is on `up[(start + i) % up.len()]` (as without replication);
//! - copy `r` of stripe `i` starts at `up[(start + i + r * count) % up.len()]`, which is a
//!   fresh OST for each copy when `count * replicas <= up.len()`; otherwise, the next OST in
//!   the rotation that holds no copy of that stripe yet. Different stripes may share an OST,
//!   never two copies of one stripe.
//!
//! An explicit OST list (`setstripe --ost`) is copy 0; the other copies are placed the same
//! way over the OSTs that are up and not in the list (or, when those are fewer than
//! `replicas - 1`, over every OST that is up), and the request is refused when some stripe
//! cannot get distinct OSTs.

use std::sync::atomic::{AtomicUsize, Ordering};

use rustre_proto::msg::mgs::{ClusterMap, NodeState};
use rustre_proto::msg::{Capacity, Layout, LayoutSpec, StripeSet, MAX_REPLICAS};
use rustre_proto::Error;

use super::error::PlacementShortfall;

/// How full an OST may be, in percent of its capacity in use (not available), before new
/// stripes avoid it.
pub const OST_FULL_PERCENT: u64 = 95;

/// True when new stripes should avoid an OST with capacity `c`: less than
/// `100 - OST_FULL_PERCENT` % of it is available, or it is unknown (all zeros: the OSS could
/// not read it).
pub fn is_full(c: &Capacity) -> bool {
    c.total_bytes == 0
        || u128::from(c.avail_bytes) * 100
            < u128::from(c.total_bytes) * u128::from(100 - OST_FULL_PERCENT)
}

/// The OSTs of `up` that are not full in `map`, in the same order.
fn roomy(map: &ClusterMap, up: &[u32]) -> Vec<u32> {
    up.iter()
        .copied()
        .filter(|i| map.ost(*i).is_some_and(|o| !is_full(&o.capacity)))
        .collect()
}

/// Hands out OSTs round-robin so files spread evenly.
#[derive(Default)]
pub struct OstPicker {
    next: AtomicUsize,
}

/// Why a new file's copies cannot be placed on the OSTs up in `map` right now (fewer up
/// than the copies asked, or none), as `choose` would refuse it; `None` when they can.
pub fn shortfall(
    request: Option<&LayoutSpec>,
    dir_default: Option<&LayoutSpec>,
    map: &ClusterMap,
) -> Option<PlacementShortfall> {
    let replicas = request
        .and_then(|s| s.replicas.filter(|r| *r != 0))
        .or_else(|| dir_default.and_then(|s| s.replicas.filter(|r| *r != 0)))
        .unwrap_or(map.defaults.replicas)
        .max(1) as usize;
    let up = up_osts(map).len();
    (up == 0 || replicas > up).then_some(PlacementShortfall { replicas, up })
}

/// The OSTs of `map` that are up, sorted by index.
pub fn up_osts(map: &ClusterMap) -> Vec<u32> {
    let mut up: Vec<u32> = map
        .osts
        .iter()
        .filter(|o| o.state == NodeState::Up)
        .map(|o| o.index)
        .collect();
    up.sort_unstable();
    up
}

impl OstPicker {
    /// The layout for a new file given the request, the directory default and the map,
    /// starting at the next turn of the rotation (the tests' shorthand; a create takes its
    /// turn outside its transaction and calls [`choose_at`]).
    #[cfg(test)]
    pub fn choose(
        &self,
        request: Option<&LayoutSpec>,
        dir_default: Option<&LayoutSpec>,
        map: &ClusterMap,
    ) -> Result<Layout, Error> {
        choose_at(self.turn(), request, dir_default, map)
    }

    /// The next turn of the rotation (where a placement starts).
    pub fn turn(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed)
    }

    /// An OST of `up` that is not in `taken`, taking turns so that moved copies spread.
    pub fn replacement(&self, up: &[u32], taken: &[u32]) -> Option<u32> {
        let free: Vec<u32> = up.iter().copied().filter(|o| !taken.contains(o)).collect();
        if free.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        Some(free[start % free.len()])
    }
}

/// The layout for a new file given the request, the directory default and the map, the
/// rotation starting at `start` ([`OstPicker::turn`]). Pure: a transaction body that runs
/// again after a conflict places the file where the first try did.
pub fn choose_at(
    start: usize,
    request: Option<&LayoutSpec>,
    dir_default: Option<&LayoutSpec>,
    map: &ClusterMap,
) -> Result<Layout, Error> {
    let pick =
        |f: fn(&LayoutSpec) -> Option<u32>| request.and_then(f).or_else(|| dir_default.and_then(f));
    let stripe_size = pick(|s| s.stripe_size).unwrap_or(map.defaults.stripe_size);
    // 0 means "the default", as for the stripe count.
    let replicas = pick(|s| s.replicas.filter(|r| *r != 0))
        .unwrap_or(map.defaults.replicas)
        .max(1);
    if replicas > MAX_REPLICAS {
        return Err(Error::Invalid(format!(
            "{replicas} replicas asked; at most {MAX_REPLICAS} are allowed"
        )));
    }
    let up = up_osts(map);
    if up.is_empty() {
        return Err(Error::NoSpace);
    }
    if replicas as usize > up.len() {
        return Err(Error::Invalid(format!(
            "{replicas} replicas asked but only {} OSTs are up (copies of a stripe need \
             distinct OSTs)",
            up.len()
        )));
    }
    let explicit = request
        .and_then(|s| s.osts.clone())
        .or_else(|| dir_default.and_then(|s| s.osts.clone()));
    let roomy = roomy(map, &up);
    let (first, pool) = match explicit {
        Some(list) => {
            for i in &list {
                if map.ost(*i).is_none() {
                    return Err(Error::Invalid(format!("OST {i} does not exist")));
                }
            }
            let mut seen = list.clone();
            seen.sort_unstable();
            seen.dedup();
            if seen.len() != list.len() {
                return Err(Error::Invalid("an OST is listed twice".into()));
            }
            // Further copies go to OSTs outside the list, not full ones first; only when
            // there are too few of those may a stripe's copy go to an OST listed for
            // another stripe.
            let (listed, others): (Vec<u32>, Vec<u32>) = up.iter().partition(|o| list.contains(o));
            let roomy_others: Vec<u32> = others
                .iter()
                .copied()
                .filter(|o| roomy.contains(o))
                .collect();
            let pool = if roomy_others.len() + 1 >= replicas as usize {
                roomy_others
            } else if others.len() + 1 >= replicas as usize {
                others
            } else {
                others.into_iter().chain(listed).collect()
            };
            (list, pool)
        }
        None => {
            let want = match pick(|s| s.stripe_count).unwrap_or(map.defaults.stripe_count) {
                0 => map.defaults.stripe_count.max(1),
                n => n,
            } as usize;
            // "All OSTs" asks for as many as can take data.
            let all = want == u32::MAX as usize && roomy.len() >= replicas as usize;
            let count = if all { roomy.len() } else { want.min(up.len()) };
            let candidates = if roomy.len() >= count.max(replicas as usize) {
                roomy
            } else {
                tracing::debug!(
                    count,
                    replicas,
                    not_full = roomy.len(),
                    "too few OSTs with room: placing on full ones too"
                );
                up
            };
            let first = (0..count)
                .map(|i| candidates[(start + i) % candidates.len()])
                .collect();
            (first, candidates)
        }
    };
    let osts = place_copies(&first, &pool, replicas, start)?;
    let layout = Layout {
        stripe_size,
        osts,
        replicas,
        stale: Vec::new(),
        version: 0,
        written: StripeSet::default(),
        allocated: Vec::new(),
    };
    layout.validate()?;
    Ok(layout)
}

/// Every slot of a layout, replica-major, given copy 0 of each stripe (`first`): copy `r`
/// of stripe `i` is the first OST of `pool` from position `start + i + r * count` on that
/// holds no copy of stripe `i` yet.
fn place_copies(
    first: &[u32],
    pool: &[u32],
    replicas: u32,
    start: usize,
) -> Result<Vec<u32>, Error> {
    let count = first.len();
    let mut osts = first.to_vec();
    for r in 1..replicas as usize {
        for i in 0..count {
            let holders: Vec<u32> = (0..r).map(|c| osts[c * count + i]).collect();
            let from = start + i + r * count;
            let chosen = (0..pool.len())
                .map(|k| pool[(from + k) % pool.len()])
                .find(|o| !holders.contains(o))
                .ok_or_else(|| {
                    Error::Invalid(format!(
                        "cannot place copy {r} of stripe {i}: the {} OSTs that are up all hold \
                         a copy of it already",
                        pool.len()
                    ))
                })?;
            osts.push(chosen);
        }
    }
    Ok(osts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::mgs::{LayoutDefaults, OstInfo};
    use rustre_proto::msg::Capacity;

    fn map(up: u32, down: &[u32]) -> ClusterMap {
        ClusterMap {
            epoch: 1,
            cluster_name: "t".into(),
            osts: (0..up + down.len() as u32)
                .map(|index| OstInfo {
                    index,
                    addr: String::new(),
                    state: if down.contains(&index) {
                        NodeState::Down
                    } else {
                        NodeState::Up
                    },
                    capacity: Capacity::default(),
                })
                .collect(),
            mds: vec![],
            defaults: LayoutDefaults::default(),
        }
    }

    fn spec(count: u32, replicas: u32) -> LayoutSpec {
        LayoutSpec {
            stripe_count: Some(count),
            replicas: Some(replicas),
            ..LayoutSpec::default()
        }
    }

    #[test]
    fn copies_of_a_stripe_are_on_distinct_osts() {
        let p = OstPicker::default();
        for osts in 1..=6u32 {
            let m = map(osts, &[]);
            for count in 1..=osts + 1 {
                for replicas in 1..=osts {
                    for _ in 0..osts {
                        let l = p.choose(Some(&spec(count, replicas)), None, &m).unwrap();
                        assert!(l.validate().is_ok(), "{l:?}");
                        assert_eq!(l.replicas, replicas);
                        assert_eq!(l.stripe_count(), count.min(osts));
                        assert_eq!(l.osts.len() as u32, count.min(osts) * replicas);
                    }
                }
            }
        }
    }

    #[test]
    fn spreads_copies_over_fresh_osts_when_there_are_enough() {
        let p = OstPicker::default();
        let l = p.choose(Some(&spec(2, 3)), None, &map(6, &[])).unwrap();
        let mut all = l.osts.clone();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 6, "{l:?}");
    }

    #[test]
    fn refuses_more_replicas_than_osts_up() {
        let p = OstPicker::default();
        let m = map(2, &[2]);
        match p.choose(Some(&spec(1, 3)), None, &m) {
            Err(Error::Invalid(msg)) => {
                assert!(msg.contains('3') && msg.contains('2'), "{msg}")
            }
            other => panic!("{other:?}"),
        }
        // Down OSTs never hold copies.
        let l = p.choose(Some(&spec(4, 2)), None, &m).unwrap();
        assert!(!l.osts.contains(&2));
        assert!(p.choose(Some(&spec(1, 9)), None, &map(10, &[])).is_err());
    }

    #[test]
    fn replicas_come_from_dir_default_then_cluster() {
        let p = OstPicker::default();
        let mut m = map(4, &[]);
        let l = p.choose(None, Some(&spec(1, 2)), &m).unwrap();
        assert_eq!(l.replicas, 2);
        let l = p.choose(Some(&spec(1, 3)), Some(&spec(1, 2)), &m).unwrap();
        assert_eq!(l.replicas, 3);
        m.defaults.replicas = 2;
        let l = p.choose(None, None, &m).unwrap();
        assert_eq!((l.replicas, l.osts.len()), (2, 2));
        let l = p.choose(Some(&spec(1, 0)), None, &m).unwrap();
        assert_eq!(l.replicas, 2, "0 means the default");
    }

    #[test]
    fn explicit_osts_are_copy_zero() {
        let p = OstPicker::default();
        let m = map(4, &[]);
        let s = LayoutSpec {
            osts: Some(vec![2, 0]),
            replicas: Some(2),
            ..LayoutSpec::default()
        };
        let l = p.choose(Some(&s), None, &m).unwrap();
        assert_eq!(&l.osts[..2], &[2, 0]);
        // The other copies go to the OSTs outside the list.
        let mut rest = l.osts[2..].to_vec();
        rest.sort_unstable();
        assert_eq!(rest, vec![1, 3]);
        // Two OSTs, both listed: each stripe's second copy is the other one.
        let m2 = map(2, &[]);
        let s = LayoutSpec {
            osts: Some(vec![0, 1]),
            replicas: Some(2),
            ..LayoutSpec::default()
        };
        let l = p.choose(Some(&s), None, &m2).unwrap();
        assert_eq!(l.osts, vec![0, 1, 1, 0]);
        // One OST up (the other is down): no room for the second copy.
        let m3 = map(1, &[1]);
        let s = LayoutSpec {
            osts: Some(vec![0]),
            replicas: Some(2),
            ..LayoutSpec::default()
        };
        assert!(matches!(
            p.choose(Some(&s), None, &m3),
            Err(Error::Invalid(_))
        ));
    }

    /// `map(n, &[])` with OST capacities: `full` OSTs have 1 % available, the others half.
    fn map_with_full(n: u32, full: &[u32]) -> ClusterMap {
        let mut m = map(n, &[]);
        for o in &mut m.osts {
            let avail = if full.contains(&o.index) {
                1 << 20
            } else {
                50 << 20
            };
            o.capacity = Capacity {
                total_bytes: 100 << 20,
                free_bytes: avail,
                avail_bytes: avail,
            };
        }
        m
    }

    #[test]
    fn an_ost_is_full_past_the_threshold_or_when_its_capacity_is_unknown() {
        let cap = |total, avail| Capacity {
            total_bytes: total,
            free_bytes: avail,
            avail_bytes: avail,
        };
        let room = 100 - OST_FULL_PERCENT;
        assert!(!is_full(&cap(100, room)));
        assert!(is_full(&cap(100, room - 1)));
        assert!(is_full(&cap(0, 0)), "unknown capacity takes no new stripes");
        assert!(!is_full(&cap(u64::MAX, u64::MAX)), "no overflow");
    }

    #[test]
    fn new_stripes_avoid_full_osts_while_the_others_suffice() {
        let p = OstPicker::default();
        let m = map_with_full(3, &[1]);
        for _ in 0..12 {
            for count in 1..=2 {
                let l = p.choose(Some(&spec(count, 1)), None, &m).unwrap();
                assert!(!l.osts.contains(&1), "{l:?}");
                assert_eq!(l.stripe_count(), count);
            }
            // Two copies fit on the two OSTs with room.
            let l = p.choose(Some(&spec(1, 2)), None, &m).unwrap();
            assert!(!l.osts.contains(&1), "{l:?}");
        }
        // Three stripes (or copies) need the full OST too: placement falls back to it.
        let l = p.choose(Some(&spec(3, 1)), None, &m).unwrap();
        assert_eq!(l.stripe_count(), 3);
        assert!(l.osts.contains(&1), "{l:?}");
        let l = p.choose(Some(&spec(1, 3)), None, &m).unwrap();
        assert!(l.osts.contains(&1), "{l:?}");
        // Every OST full: files are still placed (writes get ENOSPC, not creates).
        let all_full = map_with_full(2, &[0, 1]);
        assert_eq!(
            p.choose(Some(&spec(2, 1)), None, &all_full)
                .unwrap()
                .stripe_count(),
            2
        );
        // "All OSTs" means all with room.
        let l = p.choose(Some(&spec(u32::MAX, 1)), None, &m).unwrap();
        let mut osts = l.osts.clone();
        osts.sort_unstable();
        assert_eq!(osts, vec![0, 2]);
        // An explicit list is kept, full OST or not; its second copy avoids the full one.
        let s = LayoutSpec {
            osts: Some(vec![1]),
            replicas: Some(2),
            ..LayoutSpec::default()
        };
        let l = p
            .choose(Some(&s), None, &map_with_full(3, &[1, 2]))
            .unwrap();
        assert_eq!(l.osts, vec![1, 0]);
    }

    #[test]
    fn replacement_avoids_holders() {
        let p = OstPicker::default();
        for _ in 0..5 {
            let o = p.replacement(&[0, 1, 2, 3], &[1, 3]).unwrap();
            assert!(o == 0 || o == 2);
        }
        assert_eq!(p.replacement(&[0, 1], &[0, 1]), None);
    }
}
