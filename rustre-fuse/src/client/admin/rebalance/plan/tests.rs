//! The planner's rules on made-up clusters.

use super::*;
use rustre_proto::msg::Layout;

const MIB: u64 = 1 << 20;

fn ost(index: u32, used: u64, total: u64) -> OstUsage {
    OstUsage { index, used, total }
}

/// `n` single-stripe files of `size` bytes spread round-robin over `osts`, and the OSTs'
/// usage (capacity `total`) they make, with `extra` OSTs of the same capacity left empty.
fn cluster(
    n: usize,
    size: u64,
    osts: u32,
    extra: u32,
    total: u64,
) -> (Vec<OstUsage>, Vec<FileSlots>) {
    let files: Vec<FileSlots> = (0..n)
        .map(|i| FileSlots {
            ino: 100 + i as u64,
            replicas: 1,
            slots: vec![i as u32 % osts],
            bytes: vec![size],
        })
        .collect();
    let usage = (0..osts + extra)
        .map(|o| {
            let used = files.iter().filter(|f| f.slots[0] == o).count() as u64 * size;
            ost(o, used, total)
        })
        .collect();
    (usage, files)
}

/// Applies a plan's moves to the usage, as the OSTs would see them.
fn apply(usage: &[OstUsage], plan: &Plan) -> Vec<OstUsage> {
    let mut u = usage.to_vec();
    for m in plan.files.iter().flat_map(|f| &f.moves) {
        u.iter_mut().find(|o| o.index == m.from).unwrap().used -= m.bytes;
        u.iter_mut().find(|o| o.index == m.to).unwrap().used += m.bytes;
    }
    u
}

#[test]
fn a_balanced_cluster_gets_no_moves() {
    let (usage, files) = cluster(40, 4 * MIB, 4, 0, 256 * MIB);
    let p = plan(&usage, &files, 0.10, 0.05);
    assert!(p.files.is_empty());
    assert_eq!(p.predicted, usage);
}

#[test]
fn two_empty_osts_fill_to_within_the_target_of_the_mean() {
    // Four OSTs at 60 %, two new ones empty: the mean is 40 %.
    let (usage, files) = cluster(152, 4 * MIB, 4, 2, 256 * MIB);
    assert!(spread(&usage) > 0.10);
    let p = plan(&usage, &files, 0.10, 0.05);
    assert!(!p.files.is_empty());
    let after = apply(&usage, &p);
    assert_eq!(
        after, p.predicted,
        "the plan accounts for every byte it moves"
    );
    assert!(
        spread(&after) <= 0.05,
        "spread {} after {after:?}",
        spread(&after)
    );
    let total = |u: &[OstUsage]| u.iter().map(|o| o.used).sum::<u64>();
    assert_eq!(total(&after), total(&usage));
    for f in &p.files {
        for m in &f.moves {
            assert!(
                m.from < 4 && m.to >= 4,
                "{m:?}: from an old OST to a new one only"
            );
        }
        assert_eq!(f.moves.len(), 1, "a single-stripe file moves once");
        assert_eq!(f.slots, vec![f.moves[0].to]);
    }
    // Moving less than needed twice over: about a third of the data.
    let moved: u64 = p.files.iter().map(FilePlan::bytes).sum();
    assert!(moved <= total(&usage) / 3 + 64 * MIB, "moved {moved}");
}

#[test]
fn within_the_trigger_nothing_moves_but_once_past_it_the_target_is_met() {
    let usage = vec![ost(0, 56, 100), ost(1, 44, 100)];
    let files: Vec<FileSlots> = (0..56)
        .map(|i| FileSlots {
            ino: i,
            replicas: 1,
            slots: vec![0],
            bytes: vec![1],
        })
        .collect();
    assert!(plan(&usage, &files, 0.10, 0.01).files.is_empty());
    let p = plan(&usage, &files, 0.05, 0.01);
    assert!(spread(&p.predicted) <= 0.01, "{:?}", p.predicted);
}

#[test]
fn two_copies_of_a_stripe_never_share_an_ost() {
    // Two copies of one stripe each, on OSTs 0 and 1; only OST 2 is empty.
    let files: Vec<FileSlots> = (0..30)
        .map(|i| FileSlots {
            ino: i,
            replicas: 2,
            slots: vec![0, 1],
            bytes: vec![4, 4],
        })
        .collect();
    let usage = vec![ost(0, 120, 200), ost(1, 120, 200), ost(2, 0, 200)];
    let p = plan(&usage, &files, 0.10, 0.05);
    assert!(!p.files.is_empty());
    for f in &p.files {
        assert_ne!(f.slots[0], f.slots[1], "{f:?}");
        assert_eq!(f.moves.len(), 1, "{f:?}");
    }
    assert!(spread(&p.predicted) <= 0.05, "{:?}", p.predicted);
}

#[test]
fn stripes_of_a_file_are_spread_over_the_new_osts() {
    // Files of two stripes on OSTs 0 and 1; OSTs 2 and 3 empty.
    let files: Vec<FileSlots> = (0..40)
        .map(|i| FileSlots {
            ino: i,
            replicas: 1,
            slots: vec![0, 1],
            bytes: vec![2, 2],
        })
        .collect();
    let usage = vec![
        ost(0, 80, 100),
        ost(1, 80, 100),
        ost(2, 0, 100),
        ost(3, 0, 100),
    ];
    let p = plan(&usage, &files, 0.10, 0.05);
    assert!(spread(&p.predicted) <= 0.05, "{:?}", p.predicted);
    for f in &p.files {
        assert_ne!(f.slots[0], f.slots[1], "both stripes on one OST: {f:?}");
    }
}

#[test]
fn down_or_unknown_osts_are_left_alone() {
    // OST 9 is not in the table (down): its objects stay, and nothing goes there.
    let files = vec![
        FileSlots {
            ino: 1,
            replicas: 1,
            slots: vec![9],
            bytes: vec![50],
        },
        FileSlots {
            ino: 2,
            replicas: 1,
            slots: vec![0],
            bytes: vec![25],
        },
        FileSlots {
            ino: 3,
            replicas: 1,
            slots: vec![0],
            bytes: vec![25],
        },
    ];
    let usage = vec![ost(0, 50, 100), ost(1, 0, 100)];
    let p = plan(&usage, &files, 0.10, 0.05);
    assert_eq!(p.files.len(), 1);
    assert!([2, 3].contains(&p.files[0].ino));
    assert_eq!(p.files[0].slots, vec![1]);
}

#[test]
fn a_file_too_big_to_help_is_not_moved() {
    // Moving the only object (60 of 100) would leave the pair as far apart as before.
    let files = vec![FileSlots {
        ino: 1,
        replicas: 1,
        slots: vec![0],
        bytes: vec![60],
    }];
    let usage = vec![ost(0, 60, 100), ost(1, 0, 100)];
    assert!(plan(&usage, &files, 0.10, 0.05).files.is_empty());
}

#[test]
fn stripe_bytes_follow_the_raid0_layout() {
    // 1 MiB units over 3 stripes, a file of 7.5 MiB: rows of 3 MiB, 2 full rows + 1.5 MiB.
    let size = 15 * MIB / 2;
    let b: Vec<u64> = (0..3)
        .map(|s| stripe_bytes(size, MIB as u32, 3, s))
        .collect();
    assert_eq!(b, vec![3 * MIB, 2 * MIB + MIB / 2, 2 * MIB]);
    assert_eq!(b.iter().sum::<u64>(), size);
    assert_eq!(stripe_bytes(10, MIB as u32, 1, 0), 10);
    assert_eq!(stripe_bytes(0, MIB as u32, 4, 2), 0);
}

#[test]
fn file_slots_use_the_reported_allocation_and_skip_stale_layouts() {
    let mut l = Layout::striped(MIB as u32, vec![3, 4]);
    l.allocated = vec![4096, UNKNOWN_ALLOCATION];
    let f = FileSlots::of(7, 3 * MIB, &l).unwrap();
    assert_eq!(f.slots, vec![3, 4]);
    assert_eq!(f.bytes, vec![4096, MIB]);
    l.stale = vec![1];
    assert_eq!(FileSlots::of(7, 3 * MIB, &l), None);
    assert_eq!(
        FileSlots::of(7, 0, &Layout::striped(MIB as u32, vec![1])),
        None
    );
}
