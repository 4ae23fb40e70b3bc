//! The target layout of a migration: what the administrator asked for, with every copy the
//! file has now kept where the new layout can keep it, and new copies placed on OSTs that
//! are up, not full when possible, and spread.
//!
//! An object is named by its file and stripe index only (`ObjectId`), so a new copy of stripe
//! `i` must not land on an OST that holds an object of stripe `i` already: under the old
//! layout (any copy, stale ones included), or left by an earlier migration and not yet
//! deleted (`avoid`). When the geometry (stripe size and count) stays, such a copy is the
//! old one, kept as it is if it is up to date; when the geometry changes, nothing is kept
//! and every copy is new, placed away from the old ones.

use rustre_proto::msg::migrate::MigrateTarget;
use rustre_proto::msg::{Layout, StripeSet, MAX_REPLICAS, MAX_STRIPE_COUNT};
use rustre_proto::Error;

/// A target layout and which of its slots need data copied in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub to: Layout,
    /// Slots of `to` whose copies are new (the others are old copies kept).
    pub fresh: Vec<u32>,
}

/// The OSTs a placement may use.
pub struct Osts<'a> {
    /// Up, sorted.
    pub up: &'a [u32],
    /// Up and not full, sorted.
    pub roomy: &'a [u32],
    /// Where rotation starts (spreads the copies of successive files).
    pub start: usize,
}

/// The target of migrating a file with layout `from` as `target` asks, given the OSTs and
/// `(stripe, OST)` pairs that hold objects of the file left by an earlier migration.
pub fn place(
    from: &Layout,
    target: &MigrateTarget,
    osts: &Osts,
    avoid: &[(u32, u32)],
) -> Result<Placement, Error> {
    let stripe_size = target.stripe_size.unwrap_or(from.stripe_size);
    let count = match (&target.slots, &target.osts, target.stripe_count) {
        (_, Some(list), _) => list.len() as u32,
        (_, _, Some(n)) => n,
        _ => from.stripe_count(),
    };
    let replicas = target.replicas.unwrap_or(from.replicas);
    if count == 0 || count > MAX_STRIPE_COUNT {
        return Err(Error::Invalid(format!(
            "stripe count {count}: it must be between 1 and {MAX_STRIPE_COUNT}"
        )));
    }
    if replicas == 0 || replicas > MAX_REPLICAS {
        return Err(Error::Invalid(format!(
            "{replicas} copies: between 1 and {MAX_REPLICAS} are allowed"
        )));
    }
    let same_geometry = stripe_size == from.stripe_size && count == from.stripe_count();
    // An object of stripe `i` on `ost` exists (or may) apart from what the target keeps.
    let occupied = |i: u32, ost: u32| {
        avoid.contains(&(i, ost))
            || (i < from.stripe_count() && from.copies(i).iter().any(|c| c.1 == ost))
    };
    let keepable = |i: u32, ost: u32| {
        same_geometry
            && from.live_copies(i).iter().any(|c| c.1 == ost)
            && !avoid.contains(&(i, ost))
    };
    let total = (count * replicas) as usize;
    let mut slots: Vec<Option<u32>> = vec![None; total];
    let slot = |r: u32, i: u32| (r * count + i) as usize;
    if let Some(given) = &target.slots {
        if given.len() != total {
            return Err(Error::Invalid(format!(
                "{} slots given; {count} stripes of {replicas} copies need {total}",
                given.len()
            )));
        }
        for (n, ost) in given.iter().enumerate() {
            if !osts.up.contains(ost) {
                return Err(Error::Invalid(format!("OST {ost} is not up")));
            }
            slots[n] = Some(*ost);
        }
    } else {
        if let Some(list) = &target.osts {
            for (i, ost) in list.iter().enumerate() {
                if !osts.up.contains(ost) {
                    return Err(Error::Invalid(format!("OST {ost} is not up")));
                }
                slots[slot(0, i as u32)] = Some(*ost);
            }
        }
        // Old up-to-date copies stay where they are, copy number for copy number, as far
        // as the target has room for them.
        if same_geometry {
            for i in 0..count {
                let mut kept: Vec<u32> = from
                    .live_copies(i)
                    .into_iter()
                    .map(|c| c.1)
                    .filter(|o| osts.up.contains(o) && keepable(i, *o))
                    .collect();
                for r in 0..replicas {
                    if let Some(ost) = slots[slot(r, i)] {
                        kept.retain(|o| *o != ost);
                        continue;
                    }
                    if !kept.is_empty() {
                        let ost = kept.remove(0);
                        let taken = (0..replicas).any(|q| slots[slot(q, i)] == Some(ost));
                        if !taken {
                            slots[slot(r, i)] = Some(ost);
                        }
                    }
                }
            }
        }
        // The rest: new copies, spread over OSTs with room, each on an OST holding nothing
        // of its stripe.
        let mut used: Vec<u32> = slots.iter().flatten().copied().collect();
        for r in 0..replicas {
            for i in 0..count {
                if slots[slot(r, i)].is_some() {
                    continue;
                }
                let holders: Vec<u32> = (0..replicas).filter_map(|q| slots[slot(q, i)]).collect();
                let free = |o: &u32| !holders.contains(o) && !occupied(i, *o);
                let pick = |pool: &[u32], spread: bool| {
                    (0..pool.len())
                        .map(|k| pool[(osts.start + slot(r, i) + k) % pool.len()])
                        .find(|o| free(o) && (!spread || !used.contains(o)))
                };
                let chosen = pick(osts.roomy, true)
                    .or_else(|| pick(osts.roomy, false))
                    .or_else(|| pick(osts.up, false))
                    .ok_or_else(|| {
                        Error::Invalid(format!(
                            "no OST that is up can take copy {r} of stripe {i}: each holds a \
                             copy of it, or an object of it from the old layout (a new \
                             stripe size or count needs an OST per stripe that holds nothing \
                             of that stripe now)"
                        ))
                    })?;
                slots[slot(r, i)] = Some(chosen);
                used.push(chosen);
            }
        }
    }
    let osts_of: Vec<u32> = slots
        .into_iter()
        .map(|o| o.expect("every slot placed"))
        .collect();
    let mut fresh = Vec::new();
    for (n, ost) in osts_of.iter().enumerate() {
        let i = (n as u32) % count;
        if keepable(i, *ost) {
            continue;
        }
        if occupied(i, *ost) {
            return Err(Error::Invalid(format!(
                "OST {ost} holds an object of stripe {i} already (a stale copy, or one of the \
                 old stripe size or count): choose another OST for it"
            )));
        }
        fresh.push(n as u32);
    }
    let to = Layout {
        stripe_size,
        osts: osts_of,
        replicas,
        stale: Vec::new(),
        version: from.version,
        written: StripeSet::default(),
        allocated: Vec::new(),
    };
    to.validate()?;
    Ok(Placement { to, fresh })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn osts(up: &[u32]) -> Osts<'_> {
        Osts {
            up,
            roomy: up,
            start: 0,
        }
    }

    #[test]
    fn one_stripe_to_four_avoids_the_old_objects_stripe() {
        let from = Layout::striped(1 << 20, vec![0]);
        let target = MigrateTarget {
            stripe_count: Some(4),
            ..Default::default()
        };
        let p = place(&from, &target, &osts(&[0, 1, 2, 3]), &[]).unwrap();
        assert_eq!(p.to.stripe_count(), 4);
        assert_ne!(p.to.osts[0], 0, "stripe 0's object is on OST 0 already");
        let mut sorted = p.to.osts.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2, 3], "spread over every OST");
        assert_eq!(p.fresh, vec![0, 1, 2, 3]);
    }

    #[test]
    fn a_second_copy_keeps_the_first() {
        let from = Layout::striped(1 << 20, vec![2]);
        let target = MigrateTarget {
            replicas: Some(2),
            ..Default::default()
        };
        let p = place(&from, &target, &osts(&[0, 1, 2]), &[]).unwrap();
        assert_eq!(p.to.osts[0], 2);
        assert_ne!(p.to.osts[1], 2);
        assert_eq!(p.fresh, vec![1]);
    }

    #[test]
    fn explicit_slots_move_one_copy_and_keep_the_rest() {
        let from = Layout::striped(1 << 20, vec![0, 1]);
        let target = MigrateTarget {
            slots: Some(vec![4, 1]),
            ..Default::default()
        };
        let p = place(&from, &target, &osts(&[0, 1, 2, 3, 4]), &[]).unwrap();
        assert_eq!(p.to.osts, vec![4, 1]);
        assert_eq!(p.fresh, vec![0]);
    }

    #[test]
    fn a_new_geometry_on_one_ost_is_refused_with_a_reason() {
        let from = Layout::striped(1 << 20, vec![0]);
        let target = MigrateTarget {
            stripe_size: Some(4 << 20),
            ..Default::default()
        };
        let err = place(&from, &target, &osts(&[0]), &[]).unwrap_err();
        assert!(
            matches!(err, Error::Invalid(ref m) if m.contains("stripe 0")),
            "{err:?}"
        );
    }

    #[test]
    fn objects_left_by_an_earlier_migration_are_avoided() {
        let from = Layout::striped(1 << 20, vec![0]);
        let target = MigrateTarget {
            replicas: Some(2),
            ..Default::default()
        };
        let p = place(&from, &target, &osts(&[0, 1, 2]), &[(0, 1)]).unwrap();
        assert_eq!(p.to.osts, vec![0, 2]);
    }

    #[test]
    fn stale_copies_are_not_kept() {
        let mut from = Layout::striped(1 << 20, vec![0, 1]);
        from.replicas = 2;
        from.stale = vec![1];
        let target = MigrateTarget::default();
        let p = place(&from, &target, &osts(&[0, 1, 2]), &[]).unwrap();
        assert_eq!(p.to.osts[0], 0);
        assert_eq!(
            p.to.osts[1], 2,
            "the stale copy's OST holds an object of stripe 0"
        );
        assert_eq!(p.fresh, vec![1]);
    }
}
