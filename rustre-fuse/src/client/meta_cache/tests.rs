//! Unit tests of the metadata cache.

use super::*;
use crate::client::meta_ops::{own_results, request_entries};
use rustre_proto::msg::mds::{MdsOp, MdsResponse, NamesChanged, Touched, RENAME_EXCHANGE};
use rustre_proto::msg::Timestamp;
use rustre_proto::sync::lock;

mod ahead;
mod created;

const MDS: &str = "127.0.0.1:9500";
/// This client's session in the tests.
const ME: u64 = 7;

fn attr(ino: Ino, kind: FileKind, perm: u32, uid: u32) -> Attr {
    let t = Timestamp { sec: 1, nsec: 0 };
    Attr {
        ino,
        kind,
        perm,
        nlink: 1,
        uid,
        gid: uid,
        size: 0,
        rdev: 0,
        atime: t,
        mtime: t,
        ctime: t,
        layout: None,
        truncate_version: 0,
        acl: None,
        project: 0,
        inline: false,
    }
}

fn file(ino: Ino) -> Attr {
    attr(ino, FileKind::File, 0o644, 0)
}

fn by(request: (u64, u64), changes: Vec<Change>) -> Vec<FeedChange> {
    changes
        .into_iter()
        .map(|change| FeedChange { change, request })
        .collect()
}

fn batch(instance: u64, last: u64, changes: Vec<FeedChange>) -> ChangeBatch {
    ChangeBatch {
        instance,
        last,
        lost: false,
        changes,
    }
}

fn entry(parent: Ino, name: &str) -> Change {
    Change::Entry {
        parent,
        name: name.into(),
    }
}

fn root() -> Creds {
    Creds::root()
}

/// Feeds `changes` (made by `request`) to the cache as the next answer of the feed.
fn report(cache: &MetaCache, request: (u64, u64), changes: Vec<Change>) {
    let last = cache.feed_position(MDS).unwrap().1 + changes.len() as u64;
    cache.apply(
        MDS,
        Instant::now(),
        ME,
        &batch(9, last, by(request, changes)),
    );
}

/// A cache watching one MDS, trusted from now on.
fn trusted_cache() -> MetaCache {
    let cache = MetaCache::default();
    cache.watch_only(&[MDS.to_string()]);
    let first = ChangeBatch {
        lost: true,
        ..batch(9, 0, vec![])
    };
    cache.apply(MDS, Instant::now(), ME, &first);
    cache
}

#[tokio::test(start_paused = true)]
async fn answers_only_while_every_feed_is_fresh() {
    let cache = MetaCache::default();
    let e = cache.epoch();
    cache.keep_attr(e, &file(5));
    // No feed watched: not trusted.
    assert_eq!(cache.getattr(5), None);
    cache.watch_only(&[MDS.to_string()]);
    assert_eq!(cache.getattr(5), None, "no answer from the feed yet");

    assert!(!cache.feeds_live());

    let cache = trusted_cache();
    let e = cache.epoch();
    cache.keep_attr(e, &file(5));
    assert_eq!(cache.getattr(5).map(|a| a.ino), Some(5));
    assert!(cache.feeds_live());
    tokio::time::advance(FEED_LEASE).await;
    assert_eq!(cache.getattr(5), None, "the feed's answer is too old");
    assert!(
        !cache.feeds_live(),
        "nor does it vouch for the kernel's caches"
    );
    report(&cache, (0, 0), vec![]);
    assert_eq!(cache.getattr(5).map(|a| a.ino), Some(5));
    assert!(cache.feeds_live());
    // A second MDS joins the map: not trusted until its feed answers.
    cache.watch_only(&[MDS.to_string(), "127.0.0.2:9500".into()]);
    assert_eq!(cache.getattr(5), None);
    assert!(!cache.feeds_live());
}

#[test]
fn feed_changes_evict_what_they_name() {
    let cache = trusted_cache();
    let e = cache.epoch();
    cache.keep_entry(e, 1, "a", Some(&file(5)));
    cache.keep_entry(e, 1, "b", Some(&file(6)));
    cache.keep_entry(e, 1, "gone", None);
    assert!(matches!(cache.lookup(root, 0, 1, "a"), Some(Known::Found(a)) if a.ino == 5));
    assert_eq!(cache.lookup(root, 0, 1, "gone"), Some(Known::Absent));
    report(&cache, (3, 1), vec![Change::Inode(5), entry(1, "gone")]);
    assert_eq!(cache.lookup(root, 0, 1, "a"), None, "attributes evicted");
    assert_eq!(cache.lookup(root, 0, 1, "gone"), None, "entry evicted");
    assert!(cache.lookup(root, 0, 1, "b").is_some());
    report(&cache, (0, 0), vec![Change::All]);
    assert_eq!(cache.lookup(root, 0, 1, "b"), None);
}

#[test]
fn a_lock_grant_forgets_the_attributes_and_voids_answers_in_flight() {
    let cache = trusted_cache();
    let mut old = file(5);
    old.size = 2;
    cache.keep_attr(cache.epoch(), &old);
    let before = cache.epoch();
    cache.forget_attr(5);
    assert_eq!(
        cache.getattr(5),
        None,
        "the size from before the grant stayed"
    );
    cache.keep_attr(before, &old);
    assert_eq!(
        cache.getattr(5),
        None,
        "an answer asked before the grant was kept"
    );
    let mut fresh = file(5);
    fresh.size = 3;
    cache.keep_attr(cache.epoch(), &fresh);
    assert_eq!(cache.getattr(5).map(|a| a.size), Some(3));
}

#[test]
fn an_answer_in_flight_across_a_change_is_not_kept() {
    let cache = trusted_cache();
    let asked = cache.epoch();
    report(&cache, (3, 1), vec![Change::Inode(77)]);
    cache.keep_attr(asked, &file(5));
    assert_eq!(cache.getattr(5), None);
    // The same for the answer to an own change that raced another client's change of
    // the same name; what the other change did not name is kept.
    cache.own_change(Vec::new(), || 40);
    report(&cache, (3, 2), vec![entry(1, "x")]);
    let made = OwnResult::Entry {
        parent: 1,
        name: "x".into(),
        attr: Some(file(8)),
    };
    cache.own_answered(40, Some(vec![made]));
    report(&cache, (0, 0), vec![]);
    assert_eq!(cache.lookup(root, 0, 1, "x"), None);
    assert_eq!(cache.getattr(8).map(|a| a.ino), Some(8));
}

/// A directory's attributes as a change at time `sec` left them.
fn dir_at(ino: Ino, sec: i64, nlink: u32) -> Attr {
    let t = Timestamp { sec, nsec: 0 };
    Attr {
        nlink,
        mtime: t,
        ctime: t,
        ..attr(ino, FileKind::Dir, 0o755, 0)
    }
}

/// Sends `op` as own change `seq` and answers it with `answer`, as the client does.
fn own(cache: &MetaCache, seq: u64, op: MdsOp, answer: NamesChanged) {
    cache.own_change(request_entries(&op), || seq);
    let resp = MdsResponse::NamesChanged(Box::new(answer));
    cache.own_answered(seq, Some(own_results(&op, &resp)));
}

fn unlink(parent: Ino, name: &str) -> MdsOp {
    MdsOp::Unlink {
        parent,
        name: name.into(),
    }
}

#[test]
fn an_unlink_answers_its_directory_and_victim_without_a_feed_report() {
    let cache = trusted_cache();
    let e = cache.epoch();
    let linked_twice = Attr {
        nlink: 2,
        ..file(5)
    };
    cache.keep_attr(e, &dir_at(1, 1, 3));
    cache.keep_entry(e, 1, "a", Some(&linked_twice));
    cache.keep_entry(e, 1, "b", Some(&linked_twice));
    cache.keep_attr(e, &file(6));
    let once = Attr {
        nlink: 1,
        ctime: Timestamp { sec: 2, nsec: 0 },
        ..file(5)
    };
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 2, 3)],
        source: Touched {
            ino: 5,
            attr: Some(once.clone()),
        },
        target: None,
    };
    own(&cache, 60, unlink(1, "a"), answer);
    // Answered at once: the name is gone, the other name stays, and the inode's and the
    // directory's attributes are the answer's (the kernel's getattr of the directory
    // after an unlink needs no MDS call).
    assert_eq!(cache.lookup(root, 0, 1, "a"), Some(Known::Absent));
    assert_eq!(
        cache.lookup(root, 0, 1, "b"),
        Some(Known::Found(once.clone()))
    );
    assert_eq!(cache.getattr(5), Some(once));
    assert_eq!(cache.getattr(1), Some(dir_at(1, 2, 3)));
    // A name the cache did not know: the answer says which inode it named (gone now),
    // so the rest is still answered.
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 3, 3)],
        source: Touched { ino: 9, attr: None },
        target: None,
    };
    own(&cache, 61, unlink(1, "unknown"), answer);
    assert_eq!(cache.getattr(6).map(|a| a.ino), Some(6));
    assert_eq!(cache.getattr(9), None);
    assert_eq!(cache.lookup(root, 0, 1, "unknown"), Some(Known::Absent));
    assert_eq!(cache.getattr(1), Some(dir_at(1, 3, 3)));
    // An rmdir: the directory goes (and with it its completeness), its parent has one
    // link fewer.
    cache.own_change(Vec::new(), || 62);
    cache.own_answered(62, Some(vec![OwnResult::NewDir(8)]));
    let op = MdsOp::Rmdir {
        parent: 1,
        name: "d".into(),
    };
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 4, 2)],
        source: Touched { ino: 8, attr: None },
        target: None,
    };
    own(&cache, 63, op, answer);
    assert_eq!(
        cache.lookup(root, 0, 8, "x"),
        None,
        "8 is no longer complete"
    );
    assert_eq!(cache.getattr(1), Some(dir_at(1, 4, 2)));
    // An answer that does not fit its request (another directory) is not believed:
    // nothing is answered until the feed reported the change.
    let answer = NamesChanged {
        dirs: vec![dir_at(2, 5, 2)],
        source: Touched { ino: 6, attr: None },
        target: None,
    };
    own(&cache, 64, unlink(1, "b"), answer);
    assert_eq!(cache.getattr(6), None, "paused");
    report(&cache, (0, 0), vec![]);
    assert_eq!(cache.getattr(6).map(|a| a.ino), Some(6));
}

#[test]
fn a_last_release_drops_an_unlinked_inode_at_once() {
    let cache = trusted_cache();
    let e = cache.epoch();
    cache.keep_attr(e, &file(5));
    cache.keep_attr(
        e,
        &Attr {
            nlink: 0,
            ..file(6)
        },
    );
    for (seq, ino) in [(50, 5), (51, 6)] {
        cache.own_change(Vec::new(), || seq);
        cache.own_answered(seq, Some(vec![OwnResult::Released(ino)]));
    }
    // No pause, no feed report needed: the linked inode is still answered, the
    // unlinked one (maybe destroyed) is not.
    assert_eq!(cache.getattr(5).map(|a| a.ino), Some(5));
    assert_eq!(cache.getattr(6), None);
}

#[test]
fn own_changes_are_read_back_and_their_reports_evict_the_rest() {
    let cache = trusted_cache();
    let e = cache.epoch();
    // Directory 1 lists "old" (inode 5, two links); this client unlinks it and
    // creates "new".
    cache.keep_attr(e, &attr(1, FileKind::Dir, 0o755, 0));
    cache.keep_entry(
        e,
        1,
        "old",
        Some(&Attr {
            nlink: 2,
            ..file(5)
        }),
    );
    cache.own_change(Vec::new(), || 10);
    // The feed's report may come before the answer...
    report(
        &cache,
        (ME, 10),
        vec![entry(1, "old"), Change::Inode(5), Change::Inode(1)],
    );
    let gone = OwnResult::Entry {
        parent: 1,
        name: "old".into(),
        attr: None,
    };
    // An answer that does not name every inode its change touched: the cache waits for
    // the feed.
    let unlink = vec![gone, OwnResult::Changed(1), OwnResult::Unknown];
    cache.own_answered(10, Some(unlink));
    // ... and until a watch sent after the answer is answered, nothing is answered.
    assert_eq!(cache.lookup(root, 0, 1, "old"), None);
    report(&cache, (0, 0), vec![]);
    assert_eq!(cache.lookup(root, 0, 1, "old"), Some(Known::Absent));
    assert_eq!(
        cache.getattr(5),
        None,
        "the unlinked inode's link count changed"
    );
    assert_eq!(cache.getattr(1), None, "the directory's times changed");

    // ... or after it: what the answer put here stays, the rest goes. A create names
    // everything it touched, so its answer is read back at once, without waiting.
    let e = cache.epoch();
    cache.keep_attr(e, &attr(1, FileKind::Dir, 0o755, 0));
    cache.own_change(Vec::new(), || 11);
    let made = OwnResult::Entry {
        parent: 1,
        name: "new".into(),
        attr: Some(file(6)),
    };
    cache.own_answered(11, Some(vec![made, OwnResult::Changed(1)]));
    assert!(matches!(cache.lookup(root, 0, 1, "new"), Some(Known::Found(a)) if a.ino == 6));
    assert_eq!(cache.getattr(1), None, "the directory's times changed");
    let e = cache.epoch();
    cache.keep_attr(e, &attr(1, FileKind::Dir, 0o755, 0));
    report(
        &cache,
        (ME, 11),
        vec![entry(1, "new"), Change::Inode(6), Change::Inode(1)],
    );
    assert!(matches!(cache.lookup(root, 0, 1, "new"), Some(Known::Found(a)) if a.ino == 6));
    assert_eq!(cache.getattr(1), None);
    // Another client's later change to the same inode is not mistaken for ours.
    report(&cache, (3, 11), vec![Change::Inode(6)]);
    assert_eq!(cache.lookup(root, 0, 1, "new"), None);
}

#[test]
fn a_later_own_answer_survives_the_reports_of_the_changes_answered_before_it_was_sent() {
    let cache = trusted_cache();
    let sized = |size| Attr { size, ..file(6) };
    // A create (20), answered; then a size report (21), sent after that answer.
    cache.own_change(Vec::new(), || 20);
    let made = OwnResult::Entry {
        parent: 1,
        name: "f".into(),
        attr: Some(file(6)),
    };
    cache.own_answered(20, Some(vec![made]));
    cache.own_change(Vec::new(), || 21);
    cache.own_answered(21, Some(vec![OwnResult::Attr(sized(4096))]));
    // The feed reports both afterwards: the report's answer already shows the create.
    report(&cache, (ME, 20), vec![entry(1, "f"), Change::Inode(6)]);
    report(&cache, (ME, 21), vec![Change::Inode(6)]);
    assert!(
        matches!(cache.lookup(root, 0, 1, "f"), Some(Known::Found(a)) if a.size == 4096),
        "kept"
    );

    // Two own changes in flight at once: the one answered first may have committed before
    // the other, so the other's report evicts its answer.
    cache.own_change(Vec::new(), || 30);
    cache.own_change(Vec::new(), || 31);
    cache.own_answered(31, Some(vec![OwnResult::Attr(sized(8192))]));
    cache.own_answered(30, Some(vec![OwnResult::Changed(1)]));
    report(&cache, (ME, 31), vec![Change::Inode(6)]);
    assert_eq!(cache.getattr(6).map(|a| a.size), Some(8192));
    report(&cache, (ME, 30), vec![Change::Inode(6)]);
    assert_eq!(
        cache.getattr(6),
        None,
        "30 may have landed after 31's answer"
    );
}

#[test]
fn an_atime_answer_arriving_late_brings_back_no_older_times() {
    let cache = trusted_cache();
    let at = |sec| Timestamp { sec, nsec: 0 };
    // An atime update (40) and a symlink in the directory (41) in flight together; the
    // MDS ran 40 first, and 41's answer (the directory's new ctime) arrives first.
    cache.own_change(Vec::new(), || 40);
    cache.own_change(Vec::new(), || 41);
    let after_symlink = Attr {
        ctime: at(5),
        mtime: at(5),
        ..dir_at(3, 1, 2)
    };
    cache.own_answered(41, Some(vec![OwnResult::Attr(after_symlink)]));
    let updates = vec![rustre_proto::msg::mds::AtimeUpdate {
        ino: 3,
        atime: at(9),
        relative: true,
    }];
    let before_symlink = Attr {
        atime: at(9),
        ..dir_at(3, 1, 2)
    };
    let op = MdsOp::AccessedMany { updates };
    let answer = MdsResponse::Attrs(vec![Some(before_symlink)]);
    cache.own_answered(40, Some(own_results(&op, &answer)));
    let a = cache.getattr(3).expect("cached");
    assert_eq!((a.ctime, a.mtime, a.atime), (at(5), at(5), at(9)));
}

#[test]
fn a_directory_this_client_made_answers_missing_names() {
    let cache = MetaCache::with_capacity(16, 4);
    cache.watch_only(&[MDS.to_string()]);
    let first = ChangeBatch {
        lost: true,
        ..batch(9, 0, vec![])
    };
    cache.apply(MDS, Instant::now(), ME, &first);
    let mkdir = |seq: u64, dir: Ino| {
        cache.own_change(Vec::new(), || seq);
        let made = OwnResult::Entry {
            parent: 1,
            name: format!("d{dir}"),
            attr: Some(attr(dir, FileKind::Dir, 0o755, 0)),
        };
        cache.own_answered(seq, Some(vec![made, OwnResult::NewDir(dir)]));
    };
    mkdir(20, 2);
    assert_eq!(cache.lookup(root, 0, 2, "x"), Some(Known::Absent));
    // A name the MDS would refuse is left to the MDS (ENAMETOOLONG, not ENOENT).
    let long = "x".repeat(rustre_proto::msg::NAME_MAX_BYTES + 1);
    assert_eq!(cache.lookup(root, 0, 2, &long), None);
    // Its own files are known; the report of its own create keeps it complete.
    cache.own_change(Vec::new(), || 21);
    let made = OwnResult::Entry {
        parent: 2,
        name: "x".into(),
        attr: Some(file(7)),
    };
    cache.own_answered(21, Some(vec![made, OwnResult::Changed(2)]));
    report(
        &cache,
        (ME, 21),
        vec![entry(2, "x"), Change::Inode(7), Change::Inode(2)],
    );
    assert!(matches!(cache.lookup(root, 0, 2, "x"), Some(Known::Found(a)) if a.ino == 7));
    assert_eq!(cache.lookup(root, 0, 2, "y"), Some(Known::Absent));
    // ... and so does its report arriving before the answer.
    cache.own_change(vec![(2, "w".into())], || 25);
    report(&cache, (ME, 25), vec![entry(2, "w"), Change::Inode(2)]);
    let made = OwnResult::Entry {
        parent: 2,
        name: "w".into(),
        attr: Some(file(9)),
    };
    cache.own_answered(25, Some(vec![made, OwnResult::Changed(2)]));
    assert!(matches!(cache.lookup(root, 0, 2, "w"), Some(Known::Found(a)) if a.ino == 9));
    assert_eq!(cache.lookup(root, 0, 2, "y"), Some(Known::Absent));
    // Another client's change of any name in it: no longer complete.
    report(&cache, (3, 1), vec![entry(2, "z")]);
    assert_eq!(cache.lookup(root, 0, 2, "y"), None);

    // A name of a complete directory pushed out of the LRU must not read as missing.
    mkdir(22, 3);
    cache.own_change(Vec::new(), || 24);
    let made = OwnResult::Entry {
        parent: 3,
        name: "kept".into(),
        attr: Some(file(8)),
    };
    cache.own_answered(24, Some(vec![made, OwnResult::Changed(3)]));
    assert!(cache.lookup(root, 0, 3, "kept").is_some());
    let e = cache.epoch();
    for n in 0..4 {
        cache.keep_entry(e, 9, &format!("n{n}"), None);
    }
    assert_eq!(cache.lookup(root, 0, 3, "kept"), None);
    // ... but the directory stays complete: a name it never had is still known absent.
    assert_eq!(cache.lookup(root, 0, 3, "y"), Some(Known::Absent));

    // A report naming the directory while the mkdir was in flight: not complete.
    cache.own_change(Vec::new(), || 23);
    report(&cache, (3, 2), vec![entry(4, "early")]);
    let made = OwnResult::Entry {
        parent: 1,
        name: "d4".into(),
        attr: Some(attr(4, FileKind::Dir, 0o755, 0)),
    };
    cache.own_answered(23, Some(vec![made, OwnResult::NewDir(4)]));
    assert_eq!(cache.lookup(root, 0, 4, "y"), None);
}

#[test]
fn a_complete_directory_outgrows_the_entry_lru_but_not_its_name_limit() {
    let cache = MetaCache::with_capacity(16, 4);
    lock(&cache.inner).complete_names_max = 100;
    cache.watch_only(&[MDS.to_string()]);
    let first = ChangeBatch {
        lost: true,
        ..batch(9, 0, vec![])
    };
    cache.apply(MDS, Instant::now(), ME, &first);
    cache.own_change(Vec::new(), || 1);
    let made = OwnResult::Entry {
        parent: 1,
        name: "big".into(),
        attr: Some(attr(2, FileKind::Dir, 0o755, 0)),
    };
    cache.own_answered(1, Some(vec![made, OwnResult::NewDir(2)]));
    let create = |seq: u64, name: String| {
        cache.own_change(Vec::new(), || seq);
        let made = OwnResult::Entry {
            parent: 2,
            name,
            attr: Some(file(1000 + seq)),
        };
        cache.own_answered(seq, Some(vec![made, OwnResult::Changed(2)]));
    };
    // 25 times more names than the LRU holds: every name not made is still known absent,
    // every name made is asked for (its entry went) or found, never called absent.
    for n in 0..100 {
        create(10 + n, format!("f{n}"));
    }
    for n in 0..100 {
        let known = cache.lookup(root, 0, 2, &format!("f{n}"));
        assert!(!matches!(known, Some(Known::Absent)), "f{n}: {known:?}");
    }
    let absent = (0..1000)
        .filter(|n| cache.lookup(root, 0, 2, &format!("g{n}")) == Some(Known::Absent))
        .count();
    // A 32-bit hash of 100 names shadows another name about once in 40 million.
    assert_eq!(absent, 1000);
    // The 101st name passes the limit: the directory is no longer complete.
    create(110, "f100".into());
    assert_eq!(cache.lookup(root, 0, 2, "g0"), None);
    assert_eq!(lock(&cache.inner).complete_names, 0);
}

fn rename(from: &str, to: &str, flags: u32) -> MdsOp {
    MdsOp::Rename {
        parent: 1,
        name: from.into(),
        new_parent: 1,
        new_name: to.into(),
        flags,
    }
}

fn moved(ino: Ino, sec: i64) -> Touched {
    let attr = Attr {
        ctime: Timestamp { sec, nsec: 0 },
        ..file(ino)
    };
    Touched {
        ino,
        attr: Some(attr),
    }
}

#[test]
fn a_rename_is_read_back_at_once_whatever_names_the_cache_knew() {
    let cache = trusted_cache();
    let e = cache.epoch();
    cache.keep_entry(e, 1, "a", Some(&file(5)));
    cache.keep_entry(e, 1, "b", None);
    let op = rename("a", "b", 0);
    cache.own_change(request_entries(&op), || 30);
    // The feed's report of the rename comes before its answer: it leaves the names the
    // request named alone, for the answer to set.
    report(
        &cache,
        (ME, 30),
        vec![entry(1, "a"), entry(1, "b"), Change::Inode(5)],
    );
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 2, 2)],
        source: moved(5, 2),
        target: None,
    };
    let resp = MdsResponse::NamesChanged(Box::new(answer));
    cache.own_answered(30, Some(own_results(&op, &resp)));
    assert_eq!(cache.lookup(root, 0, 1, "a"), Some(Known::Absent));
    assert_eq!(
        cache.lookup(root, 0, 1, "b"),
        Some(Known::Found(moved(5, 2).attr.unwrap())),
        "the moved inode with its new ctime"
    );
    assert_eq!(cache.getattr(1), Some(dir_at(1, 2, 2)));
    // The target "c" was not known: the answer says it held inode 9, which went.
    cache.keep_attr(cache.epoch(), &file(9));
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 3, 2)],
        source: moved(5, 3),
        target: Some(Touched { ino: 9, attr: None }),
    };
    own(&cache, 31, rename("b", "c", 0), answer);
    assert_eq!(cache.lookup(root, 0, 1, "b"), Some(Known::Absent));
    assert!(matches!(cache.lookup(root, 0, 1, "c"), Some(Known::Found(a)) if a.ino == 5));
    assert_eq!(cache.getattr(9), None, "replaced, gone");
    // An exchange swaps the names.
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 4, 2)],
        source: moved(5, 4),
        target: Some(moved(7, 4)),
    };
    own(&cache, 32, rename("c", "e", RENAME_EXCHANGE), answer);
    assert!(matches!(cache.lookup(root, 0, 1, "c"), Some(Known::Found(a)) if a.ino == 7));
    assert!(matches!(cache.lookup(root, 0, 1, "e"), Some(Known::Found(a)) if a.ino == 5));
    // Two links of one inode: nothing changes, both names stay.
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 4, 2)],
        source: moved(5, 4),
        target: Some(moved(5, 4)),
    };
    own(&cache, 33, rename("e", "f", 0), answer);
    assert!(matches!(cache.lookup(root, 0, 1, "e"), Some(Known::Found(a)) if a.ino == 5));
    assert!(matches!(cache.lookup(root, 0, 1, "f"), Some(Known::Found(a)) if a.ino == 5));
    // A refused change whose report came early: the names it named are evicted, as
    // the report may be of a commit after all.
    cache.keep_entry(cache.epoch(), 1, "d", Some(&file(7)));
    cache.own_change(vec![(1, "d".into())], || 34);
    report(&cache, (ME, 34), vec![entry(1, "d")]);
    assert!(
        cache.lookup(root, 0, 1, "d").is_some(),
        "left for the answer"
    );
    cache.own_answered(34, Some(vec![OwnResult::Unknown]));
    report(&cache, (0, 0), vec![]);
    assert_eq!(cache.lookup(root, 0, 1, "d"), None);
}

#[test]
fn unknown_outcomes_and_lost_feeds_void_everything() {
    let cache = trusted_cache();
    let e = cache.epoch();
    cache.keep_attr(e, &file(5));
    cache.own_change(Vec::new(), || 12);
    cache.own_answered(12, None);
    report(&cache, (0, 0), vec![]);
    assert_eq!(cache.getattr(5), None);

    let e = cache.epoch();
    cache.keep_attr(e, &file(5));
    // A new instance (the MDS restarted): changes may be lost.
    cache.apply(MDS, Instant::now(), ME, &batch(10, 0, vec![]));
    assert_eq!(cache.getattr(5), None);

    let e = cache.epoch();
    cache.keep_attr(e, &file(5));
    let lost = ChangeBatch {
        lost: true,
        ..batch(10, 70_000, vec![])
    };
    cache.apply(MDS, Instant::now(), ME, &lost);
    assert_eq!(cache.getattr(5), None);

    let e = cache.epoch();
    cache.keep_attr(e, &file(5));
    // An MDS leaves the map: what its feed had not delivered is unknown.
    cache.watch_only(&[]);
    cache.watch_only(&[MDS.to_string()]);
    cache.apply(MDS, Instant::now(), ME, &lost);
    assert_eq!(cache.getattr(5), None);
}

#[test]
fn lookups_check_search_permission_on_the_cached_directory() {
    let cache = trusted_cache();
    let e = cache.epoch();
    // Directory 2 owned by uid 1000, searchable by its owner only.
    cache.keep_attr(e, &attr(2, FileKind::Dir, 0o700, 1000));
    cache.keep_entry(e, 2, "f", Some(&attr(9, FileKind::File, 0o644, 1000)));
    let other = || Creds {
        uid: 2000,
        gid: 2000,
        groups: vec![],
    };
    assert!(cache.lookup(other, 1000, 2, "f").is_some(), "owner");
    assert_eq!(
        cache.lookup(other, 2000, 2, "f"),
        None,
        "others ask the MDS"
    );
    assert!(
        cache.lookup(root, 0, 2, "f").is_some(),
        "root searches anything"
    );
    // Without the directory's attributes only root is answered.
    let e = cache.epoch();
    cache.keep_entry(e, 3, "g", None);
    assert_eq!(cache.lookup(other, 2000, 3, "g"), None);
    assert_eq!(cache.lookup(root, 0, 3, "g"), Some(Known::Absent));
    // Group-searchable only: membership decides, so the groups are read.
    let e = cache.epoch();
    cache.keep_attr(
        e,
        &Attr {
            gid: 50,
            ..attr(4, FileKind::Dir, 0o710, 1000)
        },
    );
    cache.keep_entry(e, 4, "h", None);
    let member = || Creds {
        uid: 2000,
        gid: 2000,
        groups: vec![50],
    };
    assert_eq!(cache.lookup(member, 2000, 4, "h"), Some(Known::Absent));
    assert_eq!(cache.lookup(other, 2000, 4, "h"), None);
}

#[test]
fn lookups_follow_the_cached_directorys_acl() {
    use rustre_proto::msg::acl::{AclEntry, ExtAcl};
    let cache = trusted_cache();
    let e = cache.epoch();
    // rwxr-xr-x for the mode, but user:2000:--- in its ACL (mask r-x).
    let acl = ExtAcl {
        group_obj: 5,
        users: vec![AclEntry { id: 2000, perm: 0 }],
        groups: vec![],
    };
    cache.keep_attr(
        e,
        &Attr {
            acl: Some(Box::new(acl)),
            ..attr(2, FileKind::Dir, 0o755, 1000)
        },
    );
    cache.keep_entry(e, 2, "f", None);
    let named = || Creds {
        uid: 2000,
        gid: 2000,
        groups: vec![],
    };
    let other = || Creds {
        uid: 3000,
        gid: 3000,
        groups: vec![],
    };
    assert_eq!(
        cache.lookup(named, 2000, 2, "f"),
        None,
        "denied: the MDS answers"
    );
    assert_eq!(cache.lookup(other, 3000, 2, "f"), Some(Known::Absent));
}
