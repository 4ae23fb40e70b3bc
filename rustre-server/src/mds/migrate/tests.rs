//! Migration steps over an in-memory store: begin, freeze and commit of a restripe and of a
//! second copy; a layout change meanwhile gives the migration up (and lifts a freeze); what
//! a commit retires.

use rustre_proto::msg::migrate::{MigrateStep, MigrateTarget};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Layout, Timestamp, ROOT_INO};
use rustre_proto::Error;

use super::plan::Osts;
use super::*;
use crate::mds::namespace::{self, Ctx, NewInode};
use crate::meta::Kv;

const UP: &[u32] = &[0, 1, 2, 3];
const NOW: u64 = 1_000_000;

fn fresh() -> Kv {
    let kv = Kv::open_memory();
    crate::mds::bootstrap(&kv).unwrap();
    kv
}

fn file(kv: &Kv, name: &str, layout: Layout) -> Attr {
    let creds = Creds::root();
    kv.transact(|tx| {
        let ctx = Ctx {
            creds: &creds,
            now: Timestamp { sec: 1, nsec: 0 },
        };
        let new = NewInode {
            ino: 500 + name.len() as u64,
            kind: FileKind::File,
            perm: 0o644,
            umask: 0,
            rdev: 0,
            target: None,
            layout: Some(layout.clone()),
        };
        namespace::create_entry(tx, &ctx, ROOT_INO, name, new)
    })
    .unwrap()
}

fn begin_on(kv: &Kv, ino: Ino, target: &MigrateTarget) -> Result<MigratePlan, Error> {
    let osts = Osts {
        up: UP,
        roomy: UP,
        start: 0,
    };
    kv.transact(|tx| begin(tx, ino, target, &osts, NOW, 42))
}

fn step_on(kv: &Kv, ino: Ino, step: MigrateStep, now: u64) -> Result<Stepped, Error> {
    kv.transact(|tx| super::step(tx, ino, 42, step, now))
}

fn layout_of(kv: &Kv, ino: Ino) -> Layout {
    kv.transact(|tx| store::inode(tx, ino))
        .unwrap()
        .attr
        .layout
        .unwrap()
}

fn retired_of(kv: &Kv, ino: Ino) -> Retired {
    kv.transact(|tx| retired(tx, ino)).unwrap()
}

#[test]
fn restripe_freezes_ahead_then_commits_past_the_fence_and_retires_the_old_object() {
    let kv = fresh();
    let mut l = Layout::striped(1 << 20, vec![0]);
    l.version = 3;
    l.written.insert(0);
    let ino = file(&kv, "a", l).ino;
    let target = MigrateTarget {
        stripe_count: Some(4),
        ..Default::default()
    };
    let plan = begin_on(&kv, ino, &target).unwrap();
    assert_eq!(plan.fresh.len(), 4);
    assert!(matches!(begin_on(&kv, ino, &target), Err(Error::Busy)));
    let commit_early = step_on(&kv, ino, MigrateStep::Commit, NOW);
    assert!(
        matches!(commit_early, Err(Error::Invalid(_))),
        "{commit_early:?}"
    );
    match step_on(&kv, ino, MigrateStep::Freeze, NOW).unwrap() {
        Stepped::Fence(f) => {
            assert_eq!(f.version, 4, "the fence is one past the layout handed out");
            assert_eq!(f.osts, vec![0]);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        layout_of(&kv, ino).version,
        3,
        "clients still get the old layout"
    );
    let Stepped::Committed(attr) = step_on(&kv, ino, MigrateStep::Commit, NOW).unwrap() else {
        panic!("no commit");
    };
    let to = attr.layout.unwrap();
    assert_eq!(to.version, 5);
    assert_eq!(to.osts, plan.to.osts);
    assert_eq!(to.written.iter().count(), 4, "every fresh object exists");
    assert_eq!(retired_of(&kv, ino).objects, vec![(0, 0)]);
    assert!(kv.transact(|tx| record(tx, ino)).unwrap().is_none());
}

#[test]
fn a_second_copy_keeps_the_first_and_retires_nothing() {
    let kv = fresh();
    let ino = file(&kv, "bb", Layout::striped(1 << 20, vec![1])).ino;
    let target = MigrateTarget {
        replicas: Some(2),
        ..Default::default()
    };
    let plan = begin_on(&kv, ino, &target).unwrap();
    assert_eq!(plan.fresh, vec![1]);
    step_on(&kv, ino, MigrateStep::Freeze, NOW).unwrap();
    step_on(&kv, ino, MigrateStep::Commit, NOW).unwrap();
    let to = layout_of(&kv, ino);
    assert_eq!(to.osts[0], 1);
    assert_eq!(to.replicas, 2);
    assert!(retired_of(&kv, ino).objects.is_empty());
}

#[test]
fn a_layout_change_meanwhile_gives_up_and_lifts_the_fence() {
    let kv = fresh();
    let ino = file(&kv, "ccc", Layout::striped(1 << 20, vec![0])).ino;
    let target = MigrateTarget {
        osts: Some(vec![2]),
        ..Default::default()
    };
    begin_on(&kv, ino, &target).unwrap();
    step_on(&kv, ino, MigrateStep::Freeze, NOW).unwrap();
    // A copy marked stale meanwhile (any version bump).
    kv.transact(|tx| {
        let mut i = store::inode(tx, ino)?;
        i.attr.layout.as_mut().unwrap().version += 1;
        store::put_inode(tx, &i)
    })
    .unwrap();
    let r = step_on(&kv, ino, MigrateStep::Commit, NOW);
    assert!(matches!(r, Ok(Stepped::GaveUp)), "{r:?}");
    assert_eq!(
        layout_of(&kv, ino).osts,
        vec![0],
        "the file keeps its layout"
    );
    assert_eq!(
        retired_of(&kv, ino).objects,
        vec![(0, 2)],
        "the fresh object goes"
    );
    // The retired object is avoided by the next migration.
    let again = begin_on(
        &kv,
        ino,
        &MigrateTarget {
            replicas: Some(2),
            ..Default::default()
        },
    );
    assert_ne!(again.unwrap().to.osts[1], 2);
}

#[test]
fn an_expired_lease_is_given_up_by_the_next_begin_and_a_frozen_file_is_unfenced() {
    let kv = fresh();
    let ino = file(&kv, "dddd", Layout::striped(1 << 20, vec![0])).ino;
    let target = MigrateTarget {
        osts: Some(vec![3]),
        ..Default::default()
    };
    begin_on(&kv, ino, &target).unwrap();
    step_on(&kv, ino, MigrateStep::Freeze, NOW).unwrap();
    // Frozen: given up after the short lease, before waiting clients give up.
    let later = NOW + MIGRATE_FROZEN_LEASE_MS + 1;
    let osts = Osts {
        up: UP,
        roomy: UP,
        start: 0,
    };
    let elsewhere = MigrateTarget {
        osts: Some(vec![2]),
        ..Default::default()
    };
    kv.transact(|tx| begin(tx, ino, &elsewhere, &osts, later, 43))
        .unwrap();
    assert_eq!(
        layout_of(&kv, ino).version,
        1,
        "past the fence of version 0"
    );
    assert_eq!(retired_of(&kv, ino).objects, vec![(0, 3)]);
}
