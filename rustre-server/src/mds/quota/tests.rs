//! Project accounting over an in-memory store: creates and removals, sizes from setattr,
//! size reports and reservations, the limits (hard, soft with grace), EXDEV for moves
//! between trees, and nested projects.

use rustre_proto::msg::mds::SetAttr;
use rustre_proto::msg::quota::{QuotaInfo, QuotaLimits, QuotaUsage};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, StripeSet, Timestamp, ROOT_INO};
use rustre_proto::Error;

use super::*;
use crate::mds::attr::{self, SizeReport};
use crate::mds::namespace::{self, Ctx, NewInode};
use crate::meta::Kv;

const NOW: Timestamp = Timestamp { sec: 7, nsec: 0 };

fn run<T>(kv: &Kv, f: impl Fn(&mut dyn Transaction, &Ctx) -> Result<T, Error>) -> Result<T, Error> {
    let creds = Creds::root();
    kv.transact(|tx| {
        f(
            tx,
            &Ctx {
                creds: &creds,
                now: NOW,
            },
        )
    })
}

fn make(kv: &Kv, parent: Ino, name: &str, kind: FileKind) -> Result<Attr, Error> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);
    let ino = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    run(kv, |tx, c| {
        let new = NewInode {
            ino,
            kind,
            perm: 0o644,
            umask: 0,
            rdev: 0,
            target: (kind == FileKind::Symlink).then(|| "t".to_string()),
            layout: None,
        };
        namespace::create_entry(tx, c, parent, name, new)
    })
}

fn resize(kv: &Kv, ino: Ino, size: u64) -> Result<(), Error> {
    let set = SetAttr {
        size: Some(size),
        ..SetAttr::default()
    };
    run(kv, |tx, c| attr::setattr(tx, c, ino, &set)).map(|_| ())
}

fn report(kv: &Kv, ino: Ino, size: u64) {
    let r = SizeReport {
        size,
        mtime: NOW,
        truncate_version: run(kv, |tx, _| store::inode(tx, ino))
            .unwrap()
            .attr
            .truncate_version,
        written: StripeSet::default(),
        allocated: vec![],
    };
    run(kv, |tx, c| attr::report_size(tx, c, ino, &r)).unwrap();
}

/// `quota set` as the MDS runs it: a first transaction, the walk's steps, a last one;
/// `between` runs after every step (what other clients do meanwhile).
fn set_quota_with(
    kv: &Kv,
    dir: Ino,
    limits: QuotaLimits,
    mut between: impl FnMut(usize),
) -> Result<QuotaInfo, Error> {
    if run(kv, |tx, c| begin_set(tx, c.now, dir, limits))? {
        let mut pending = vec![(dir, None)];
        let mut steps = 0;
        while !pending.is_empty() {
            pending = run(kv, |tx, _| walk_step(tx, dir, pending.clone()))?;
            steps += 1;
            between(steps);
        }
    }
    run(kv, |tx, c| finish_set(tx, c.now, dir))
}

fn set_quota(kv: &Kv, dir: Ino, limits: QuotaLimits) -> Result<QuotaInfo, Error> {
    set_quota_with(kv, dir, limits, |_| {})
}

fn usage(kv: &Kv, ino: Ino) -> QuotaUsage {
    run(kv, |tx, _| of_inode(tx, ino)).unwrap().unwrap().usage
}

fn used(bytes: u64, inodes: u64) -> QuotaUsage {
    QuotaUsage { bytes, inodes }
}

fn fresh() -> Kv {
    let kv = Kv::open_memory();
    crate::mds::bootstrap(&kv).unwrap();
    kv
}

#[test]
fn existing_contents_are_counted_at_set_and_creates_and_unlinks_move_usage() {
    let kv = fresh();
    let d = make(&kv, ROOT_INO, "d", FileKind::Dir).unwrap().ino;
    let sub = make(&kv, d, "sub", FileKind::Dir).unwrap().ino;
    let f = make(&kv, sub, "f", FileKind::File).unwrap().ino;
    resize(&kv, f, 5000).unwrap();
    make(&kv, ROOT_INO, "outside", FileKind::File).unwrap();

    let q = set_quota(&kv, d, QuotaLimits::default()).unwrap();
    assert_eq!(q.project, d);
    assert_eq!(q.usage, used(5000, 3), "d, sub and f");
    let g = make(&kv, sub, "g", FileKind::File).unwrap();
    assert_eq!(g.project, d, "a new inode inherits the project");
    make(&kv, d, "l", FileKind::Symlink).unwrap();
    assert_eq!(usage(&kv, d), used(5000, 5));
    report(&kv, g.ino, 300);
    assert_eq!(usage(&kv, d), used(5300, 5), "a size report counts");

    run(&kv, |tx, c| namespace::unlink(tx, c, sub, "f")).unwrap();
    assert_eq!(usage(&kv, d), used(300, 4));
    run(&kv, |tx, c| namespace::unlink(tx, c, sub, "g")).unwrap();
    run(&kv, |tx, c| namespace::unlink(tx, c, d, "l")).unwrap();
    run(&kv, |tx, c| namespace::rmdir(tx, c, d, "sub")).unwrap();
    assert_eq!(usage(&kv, d), used(0, 1), "the directory itself");
    // Removing the project's directory removes its quota.
    run(&kv, |tx, c| namespace::rmdir(tx, c, ROOT_INO, "d")).unwrap();
    assert!(run(&kv, |tx, _| list(tx, 0, 10)).unwrap().is_empty());
}

#[test]
fn the_inode_hard_limit_refuses_every_kind_of_create_until_something_goes() {
    let kv = fresh();
    let d = make(&kv, ROOT_INO, "d", FileKind::Dir).unwrap().ino;
    let limits = QuotaLimits {
        hard_inodes: 3,
        ..QuotaLimits::default()
    };
    set_quota(&kv, d, limits).unwrap();
    make(&kv, d, "a", FileKind::File).unwrap();
    make(&kv, d, "b", FileKind::Dir).unwrap();
    for kind in [
        FileKind::File,
        FileKind::Dir,
        FileKind::Symlink,
        FileKind::Fifo,
    ] {
        assert_eq!(
            make(&kv, d, "c", kind),
            Err(Error::QuotaExceeded),
            "{kind:?}"
        );
    }
    assert_eq!(usage(&kv, d), used(0, 3));
    // Outside the tree, nothing is limited.
    make(&kv, ROOT_INO, "free", FileKind::File).unwrap();
    run(&kv, |tx, c| namespace::unlink(tx, c, d, "a")).unwrap();
    make(&kv, d, "c", FileKind::File).unwrap();
}

#[test]
fn truncates_are_limited_when_they_grow_and_count_when_they_shrink() {
    let kv = fresh();
    let d = make(&kv, ROOT_INO, "d", FileKind::Dir).unwrap().ino;
    let f = make(&kv, d, "f", FileKind::File).unwrap().ino;
    let limits = QuotaLimits {
        hard_bytes: 1000,
        ..QuotaLimits::default()
    };
    set_quota(&kv, d, limits).unwrap();
    resize(&kv, f, 1000).unwrap();
    assert_eq!(resize(&kv, f, 1001), Err(Error::QuotaExceeded));
    assert_eq!(usage(&kv, d).bytes, 1000);
    resize(&kv, f, 10).unwrap();
    assert_eq!(usage(&kv, d).bytes, 10);
    // A size report is never refused (the bytes are on the OSTs): it is counted.
    report(&kv, f, 1500);
    assert_eq!(usage(&kv, d).bytes, 1500);
    assert_eq!(resize(&kv, f, 1600), Err(Error::QuotaExceeded));
}

#[test]
fn reservations_grant_what_fits_count_until_the_last_writer_closes() {
    let kv = fresh();
    let d = make(&kv, ROOT_INO, "d", FileKind::Dir).unwrap().ino;
    let f = make(&kv, d, "f", FileKind::File).unwrap().ino;
    let out = make(&kv, ROOT_INO, "out", FileKind::File).unwrap().ino;
    assert_eq!(
        run(&kv, |tx, c| reserve(tx, c.now, 0, out, 10, 20)),
        Ok(u64::MAX)
    );
    let limits = QuotaLimits {
        hard_bytes: 1000,
        ..QuotaLimits::default()
    };
    set_quota(&kv, d, limits).unwrap();
    assert_eq!(
        run(&kv, |tx, c| reserve(tx, c.now, 0, f, 100, 400)),
        Ok(400)
    );
    assert_eq!(usage(&kv, d).bytes, 400);
    assert_eq!(
        run(&kv, |tx, c| reserve(tx, c.now, 0, f, 300, 900)),
        Ok(400)
    );
    // `want` does not fit, `end` does.
    assert_eq!(
        run(&kv, |tx, c| reserve(tx, c.now, 0, f, 1000, 1400)),
        Ok(1000)
    );
    assert_eq!(
        run(&kv, |tx, c| reserve(tx, c.now, 0, f, 1001, 1001)),
        Err(Error::QuotaExceeded)
    );
    // The reserved room counts for creates' neighbours too: a grow elsewhere is refused.
    let g = make(&kv, d, "g", FileKind::File).unwrap().ino;
    assert_eq!(resize(&kv, g, 1), Err(Error::QuotaExceeded));
    report(&kv, f, 600);
    assert_eq!(
        usage(&kv, d).bytes,
        1000,
        "the size is inside the reservation"
    );
    run(&kv, |tx, _| end_reservation(tx, f)).unwrap();
    assert_eq!(
        usage(&kv, d).bytes,
        600,
        "only the size counts once writers closed"
    );
    resize(&kv, g, 400).unwrap();
}

#[test]
fn moves_between_trees_are_exdev_and_a_projects_directory_moves_freely() {
    let kv = fresh();
    let d = make(&kv, ROOT_INO, "d", FileKind::Dir).unwrap().ino;
    let inner = make(&kv, d, "inner", FileKind::Dir).unwrap().ino;
    make(&kv, d, "f", FileKind::File).unwrap();
    make(&kv, ROOT_INO, "o", FileKind::File).unwrap();
    let odir = make(&kv, ROOT_INO, "odir", FileKind::Dir).unwrap().ino;
    set_quota(&kv, d, QuotaLimits::default()).unwrap();
    let mv = |from: Ino, name: &str, to: Ino, new: &str| {
        run(&kv, |tx, c| {
            namespace::rename(tx, c, from, name, to, new, 0, None)
        })
    };
    assert_eq!(mv(d, "f", ROOT_INO, "f"), Err(Error::CrossDevice));
    assert_eq!(mv(ROOT_INO, "o", d, "o"), Err(Error::CrossDevice));
    assert_eq!(mv(ROOT_INO, "odir", inner, "odir"), Err(Error::CrossDevice));
    assert_eq!(
        mv(d, "inner", ROOT_INO, "inner"),
        Err(Error::CrossDevice),
        "a plain directory of the tree"
    );
    let exchange = run(&kv, |tx, c| {
        namespace::rename(
            tx,
            c,
            d,
            "f",
            ROOT_INO,
            "o",
            rustre_proto::msg::mds::RENAME_EXCHANGE,
            None,
        )
    });
    assert_eq!(exchange, Err(Error::CrossDevice));
    let f = run(&kv, |tx, c| namespace::lookup(tx, c, d, "f"))
        .unwrap()
        .ino;
    let link = run(&kv, |tx, c| namespace::link(tx, c, f, ROOT_INO, "f2"));
    assert_eq!(link, Err(Error::CrossDevice));
    // Inside the tree: fine, and nothing changes in the usage.
    let before = usage(&kv, d);
    mv(d, "f", inner, "f").unwrap();
    assert_eq!(usage(&kv, d), before);
    // The project's directory takes its tree along.
    mv(ROOT_INO, "d", odir, "d").unwrap();
    assert_eq!(usage(&kv, d), before);
}

#[test]
fn a_quota_set_inside_another_takes_its_subtree_out_and_keeps_it() {
    let kv = fresh();
    let outer = make(&kv, ROOT_INO, "outer", FileKind::Dir).unwrap().ino;
    let inner = make(&kv, outer, "inner", FileKind::Dir).unwrap().ino;
    let f = make(&kv, inner, "f", FileKind::File).unwrap().ino;
    resize(&kv, f, 70).unwrap();
    set_quota(&kv, outer, QuotaLimits::default()).unwrap();
    assert_eq!(usage(&kv, outer), used(70, 3));
    let q = set_quota(&kv, inner, QuotaLimits::default()).unwrap();
    assert_eq!(q.usage, used(70, 2));
    assert_eq!(usage(&kv, outer), used(0, 1));
    // Setting limits again keeps the usage; the outer one's walk leaves `inner` alone.
    let limits = QuotaLimits {
        hard_inodes: 10,
        ..QuotaLimits::default()
    };
    assert_eq!(set_quota(&kv, inner, limits).unwrap().usage, used(70, 2));
    assert_eq!(run(&kv, |tx, _| list(tx, 0, 10)).unwrap().len(), 2);
}

#[test]
fn a_soft_limit_is_allowed_through_its_grace_period_then_refused() {
    let limits = QuotaLimits {
        soft_inodes: 2,
        hard_inodes: 5,
        grace_secs: 10,
        ..QuotaLimits::default()
    };
    let mut q = Quota {
        limits,
        usage: used(0, 2),
        ..Quota::default()
    };
    let one = used(0, 1);
    assert_eq!(q.admits(one, 1_000), Ok(()), "going over starts the clock");
    q.usage.inodes = 3;
    q.note_soft(1_000);
    assert_eq!(q.inodes_over_since_ms, 1_000);
    assert_eq!(q.admits(one, 10_999), Ok(()));
    assert_eq!(q.admits(one, 11_000), Err(Error::QuotaExceeded));
    assert_eq!(q.admits(used(5, 0), 11_000), Ok(()), "bytes have no limit");
    q.usage.inodes = 2;
    q.note_soft(12_000);
    assert_eq!(q.inodes_over_since_ms, 0, "back under: the clock stops");
    assert_eq!(q.admits(one, 12_000), Ok(()));
    q.usage.inodes = 5;
    assert_eq!(q.admits(one, 12_000), Err(Error::QuotaExceeded), "hard");
}

#[test]
fn bad_limits_are_refused() {
    let kv = fresh();
    let d = make(&kv, ROOT_INO, "d", FileKind::Dir).unwrap().ino;
    let f = make(&kv, d, "f", FileKind::File).unwrap().ino;
    let soft_above = QuotaLimits {
        soft_bytes: 10,
        hard_bytes: 5,
        ..QuotaLimits::default()
    };
    assert!(matches!(
        set_quota(&kv, d, soft_above),
        Err(Error::Invalid(_))
    ));
    assert_eq!(
        set_quota(&kv, f, QuotaLimits::default()).map(|_| ()),
        Err(Error::NotDir)
    );
}

#[test]
fn appends_placed_by_the_mds_are_counted_refused_past_the_limit_and_never_leased() {
    use crate::mds::append::{self, AppendRequest};
    const SESSION: u64 = 5;
    let kv = fresh();
    let d = make(&kv, ROOT_INO, "d", FileKind::Dir).unwrap().ino;
    let f = make(&kv, d, "f", FileKind::File).unwrap().ino;
    let out = make(&kv, ROOT_INO, "out", FileKind::File).unwrap().ino;
    let limits = QuotaLimits {
        hard_bytes: 1000,
        ..QuotaLimits::default()
    };
    set_quota(&kv, d, limits).unwrap();
    let append = |ino: Ino, len| {
        let req = AppendRequest {
            len,
            known_size: 0,
            truncate_version: 0,
            want_lease: true,
        };
        run(&kv, |tx, c| {
            // The session has the file open for writing, as an appender's has.
            tx.set(&schema::write_open(ino, SESSION), &[]);
            append::reserve(tx, c.now, SESSION, ino, req)
        })
    };
    assert!(append(out, 10).unwrap().lease_ms > 0, "outside: leased");
    let first = append(f, 600).unwrap();
    assert_eq!((first.offset, first.len), (0, 600));
    assert_eq!(
        first.lease_ms, 0,
        "in a project: every append is counted first"
    );
    assert_eq!(usage(&kv, d).bytes, 600);
    assert_eq!(append(f, 600).map(|_| ()), Err(Error::QuotaExceeded));
    assert_eq!(append(f, 400).unwrap().offset, 600);
    assert_eq!(usage(&kv, d).bytes, 1000);
}

#[test]
fn the_walk_of_a_tree_larger_than_a_batch_counts_what_is_created_and_moved_meanwhile() {
    let kv = fresh();
    let d = make(&kv, ROOT_INO, "d", FileKind::Dir).unwrap().ino;
    let sub = make(&kv, d, "sub", FileKind::Dir).unwrap().ino;
    let files = QUOTA_SET_BATCH as u64 * 2 + 10;
    for i in 0..files {
        make(&kv, sub, &format!("f{i:04}"), FileKind::File).unwrap();
    }
    let outside = make(&kv, ROOT_INO, "outside", FileKind::Dir).unwrap().ino;
    make(&kv, outside, "o", FileKind::File).unwrap();
    let mut renamed = None;
    let q = set_quota_with(&kv, d, QuotaLimits::default(), |step| {
        if step == 1 {
            // Mid-walk: a create in a directory the walk found is counted by the create;
            // an entry not labelled yet cannot move (behind the walk's cursor, or out).
            make(&kv, sub, "new", FileKind::File).unwrap();
            renamed = Some(run(&kv, |tx, c| {
                namespace::rename(tx, c, sub, "f1000", sub, "a-first", 0, None)
            }));
        }
    })
    .unwrap();
    assert_eq!(renamed, Some(Err(Error::CrossDevice)));
    assert_eq!(q.usage.inodes, 2 + files + 1, "d, sub, the files and `new`");
    assert!(!q.counting);
    // Every inode of the tree is labelled; outside, none.
    let f = run(&kv, |tx, c| namespace::lookup(tx, c, sub, "f1019")).unwrap();
    assert_eq!(f.project, d);
    let o = run(&kv, |tx, c| namespace::lookup(tx, c, outside, "o")).unwrap();
    assert_eq!(o.project, NO_PROJECT);
    // Once counted, renames inside the tree are free again.
    run(&kv, |tx, c| {
        namespace::rename(tx, c, sub, "f1000", sub, "a-first", 0, None)
    })
    .unwrap();
    // A walk run again (a retried call) counts nothing twice.
    let limits = QuotaLimits {
        hard_inodes: 5000,
        ..QuotaLimits::default()
    };
    run(&kv, |tx, _| {
        let mut q = get(tx, d)?.unwrap();
        q.counting = true;
        put(tx, d, &q)
    })
    .unwrap();
    assert_eq!(set_quota(&kv, d, limits).unwrap().usage, q.usage);
}
