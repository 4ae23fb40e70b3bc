//! Unlinks and renames answered ahead of the MDS (`MetaCache::unlink_ahead`,
//! `MetaCache::rename_ahead`): only when the cache
//! knows everything the MDS checks, shown at once, and forgotten when the MDS refuses.

use super::*;

/// A trusted cache holding directory 1 (`perm`, owned by `dir_uid`) with `f` naming
/// inode 5 (owned by `file_uid`) and `d` naming directory 6.
fn holding(perm: u32, dir_uid: u32, file_uid: u32) -> MetaCache {
    let cache = trusted_cache();
    let e = cache.epoch();
    cache.keep_attr(e, &attr(1, FileKind::Dir, perm, dir_uid));
    cache.keep_entry(e, 1, "f", Some(&attr(5, FileKind::File, 0o644, file_uid)));
    cache.keep_entry(e, 1, "d", Some(&dir_at(6, 1, 2)));
    cache
}

fn user(uid: u32) -> Creds {
    Creds {
        uid,
        gid: uid,
        groups: Vec::new(),
    }
}

fn found(cache: &MetaCache, name: &str) -> bool {
    matches!(cache.lookup(root, 0, 1, name), Some(Known::Found(_)))
}

#[test]
fn an_unlink_the_cache_settles_is_shown_before_the_mds_answers() {
    let cache = holding(0o755, 0, 0);
    let before = cache.getattr(1).unwrap();
    let planned = cache.unlink_ahead(&root(), 1, "f", || 70);
    assert_eq!(planned, Some(Ahead { seq: 70, source: 5 }));
    assert_eq!(cache.lookup(root, 0, 1, "f"), Some(Known::Absent));
    assert_eq!(
        cache.getattr(5),
        None,
        "the victim's attributes are asked for again"
    );
    let dir = cache.getattr(1).unwrap();
    assert!(
        dir.mtime > before.mtime && dir.ctime > before.ctime,
        "{dir:?}"
    );
    assert!(found(&cache, "d"), "the other names stay");
    // The MDS's answer replaces what was shown with what it committed.
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 9, 3)],
        source: Touched { ino: 5, attr: None },
        target: None,
    };
    let resp = MdsResponse::NamesChanged(Box::new(answer));
    cache.own_answered(70, Some(own_results(&unlink(1, "f"), &resp)));
    assert_eq!(cache.lookup(root, 0, 1, "f"), Some(Known::Absent));
    assert_eq!(cache.getattr(1), Some(dir_at(1, 9, 3)));
}

#[test]
fn an_unlink_is_waited_for_unless_the_cache_knows_every_check_of_the_mds() {
    let refused = |cache: &MetaCache, creds: Creds, name: &str, why: &str| {
        let mut asked = false;
        let planned = cache.unlink_ahead(&creds, 1, name, || {
            asked = true;
            80
        });
        assert_eq!(planned, None, "{why}");
        assert!(!asked, "{why}: not numbered");
    };
    let cache = holding(0o755, 0, 0);
    refused(&cache, root(), "d", "a directory's name (EISDIR)");
    refused(&cache, root(), "gone", "a name the cache does not know");
    refused(&cache, root(), "a/b", "an invalid name");
    refused(
        &cache,
        user(1000),
        "f",
        "no write permission on the directory (EACCES)",
    );
    let sticky = holding(0o1777, 0, 2000);
    refused(
        &sticky,
        user(1000),
        "f",
        "someone else's file in a sticky directory (EPERM)",
    );
    assert!(
        sticky.unlink_ahead(&user(2000), 1, "f", || 81).is_some(),
        "its owner may"
    );
    let cache = holding(0o755, 0, 0);
    cache.forget_attr(5);
    refused(&cache, root(), "f", "the victim's attributes unknown");
    let cache = holding(0o755, 0, 0);
    let linked = Attr {
        nlink: 2,
        ..attr(5, FileKind::File, 0o644, 0)
    };
    cache.keep_attr(cache.epoch(), &linked);
    refused(
        &cache,
        root(),
        "f",
        "an inode with another link (seen through it without looking here)",
    );
    let cache = holding(0o755, 0, 0);
    cache.own_change(vec![(1, "f".into())], || 82);
    refused(&cache, root(), "f", "another change of the name in flight");
    let cache = trusted_cache();
    let e = cache.epoch();
    cache.keep_entry(e, 1, "f", Some(&file(5)));
    refused(&cache, root(), "f", "the directory's attributes unknown");
    let cache = MetaCache::default();
    cache.keep_attr(cache.epoch(), &dir_at(1, 1, 2));
    cache.keep_entry(cache.epoch(), 1, "f", Some(&file(5)));
    refused(&cache, root(), "f", "an untrusted cache");
}

#[test]
fn an_unlink_ahead_the_mds_refused_is_forgotten() {
    let cache = holding(0o755, 0, 0);
    assert!(cache.unlink_ahead(&root(), 1, "f", || 90).is_some());
    assert_eq!(cache.lookup(root, 0, 1, "f"), Some(Known::Absent));
    // Refused (or lost): the name is not answered absent any more; the MDS is asked.
    cache.own_answered(90, None);
    assert_eq!(cache.lookup(root, 0, 1, "f"), None);
}

#[test]
fn a_rename_within_a_directory_the_cache_settles_is_shown_before_the_mds_answers() {
    let cache = holding(0o755, 0, 0);
    let e = cache.epoch();
    cache.keep_entry(e, 1, "old", Some(&file(7)));
    let moved_before = cache.getattr(5).unwrap();
    // Over an existing file: it is replaced, and its attributes are asked for again.
    let planned = cache.rename_ahead(&root(), 1, "f", "old", || 71);
    assert_eq!(planned, Some(Ahead { seq: 71, source: 5 }));
    assert_eq!(cache.lookup(root, 0, 1, "f"), Some(Known::Absent));
    match cache.lookup(root, 0, 1, "old") {
        Some(Known::Found(a)) => {
            assert_eq!(a.ino, 5);
            assert!(a.ctime > moved_before.ctime, "the moved inode's ctime");
        }
        other => panic!("the new name: {other:?}"),
    }
    assert_eq!(cache.getattr(7), None, "the replaced inode");
    assert!(cache.getattr(1).unwrap().mtime > Timestamp { sec: 1, nsec: 0 });
    cache.keep_entry(cache.epoch(), 1, "new", None);
    assert_eq!(
        cache.rename_ahead(&root(), 1, "old", "new", || 72),
        None,
        "not while the change of that name is in flight"
    );
    let answer = NamesChanged {
        dirs: vec![dir_at(1, 9, 2)],
        source: Touched {
            ino: 5,
            attr: Some(file(5)),
        },
        target: Some(Touched { ino: 7, attr: None }),
    };
    let op = MdsOp::Rename {
        parent: 1,
        name: "f".into(),
        new_parent: 1,
        new_name: "old".into(),
        flags: 0,
    };
    let resp = MdsResponse::NamesChanged(Box::new(answer));
    cache.own_answered(71, Some(own_results(&op, &resp)));
    assert_eq!(cache.getattr(1), Some(dir_at(1, 9, 2)), "the MDS's answer");
    // Then to a name known to be free.
    assert!(cache
        .rename_ahead(&root(), 1, "old", "new", || 73)
        .is_some());
    assert!(matches!(cache.lookup(root, 0, 1, "new"), Some(Known::Found(a)) if a.ino == 5));
    assert_eq!(cache.lookup(root, 0, 1, "old"), Some(Known::Absent));
}

#[test]
fn a_rename_is_waited_for_unless_the_cache_knows_every_check_of_the_mds() {
    let refused = |cache: &MetaCache, creds: Creds, from: &str, to: &str, why: &str| {
        assert_eq!(
            cache.rename_ahead(&creds, 1, from, to, || 85),
            None,
            "{why}"
        );
    };
    let cache = holding(0o755, 0, 0);
    let e = cache.epoch();
    cache.keep_entry(e, 1, "link", Some(&file(5)));
    cache.keep_entry(e, 1, "other", Some(&file(8)));
    cache.keep_attr(
        e,
        &Attr {
            project: 3,
            ..file(9)
        },
    );
    cache.keep_entry(
        e,
        1,
        "labelled",
        Some(&Attr {
            project: 3,
            ..file(9)
        }),
    );
    refused(&cache, root(), "f", "f", "to itself");
    refused(&cache, root(), "d", "x", "a directory (a loop check, `..`)");
    refused(&cache, root(), "f", "d", "over a directory (EISDIR)");
    refused(
        &cache,
        root(),
        "f",
        "link",
        "over another name of the same inode (nothing)",
    );
    refused(
        &cache,
        root(),
        "gone",
        "x",
        "a name the cache does not know",
    );
    refused(
        &cache,
        root(),
        "f",
        "unknown",
        "over a name the cache does not know",
    );
    refused(
        &cache,
        root(),
        "labelled",
        "x",
        "another project's inode (EXDEV)",
    );
    refused(&cache, root(), "f", "a/b", "an invalid name");
    refused(&cache, user(1000), "f", "x", "no write permission (EACCES)");
    let sticky = holding(0o1777, 0, 2000);
    let e = sticky.epoch();
    sticky.keep_entry(e, 1, "root's", Some(&file(8)));
    sticky.keep_entry(e, 1, "x", None);
    refused(
        &sticky,
        user(2000),
        "f",
        "root's",
        "over someone else's file, sticky (EPERM)",
    );
    assert!(sticky
        .rename_ahead(&user(2000), 1, "f", "x", || 86)
        .is_some());
    let cache = holding(0o755, 0, 0);
    cache.keep_entry(cache.epoch(), 1, "x", None);
    cache.own_change(vec![(1, "x".into())], || 87);
    refused(
        &cache,
        root(),
        "f",
        "x",
        "a change of the new name in flight",
    );
    assert!(found(&cache, "f"), "refusals leave the cache as it was");
}
