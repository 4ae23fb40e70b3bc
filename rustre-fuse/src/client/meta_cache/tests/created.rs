//! The answers of changes that make a name (mkdir, symlink): the new inode and its
//! directory's attributes, taken by the cache.

use super::*;

#[test]
fn a_mkdir_or_symlink_answers_its_directory_without_asking() {
    let cache = trusted_cache();
    let made = |seq: u64, op: MdsOp, attr: Attr, parent: Attr| {
        cache.own_change(request_entries(&op), || seq);
        let resp = MdsResponse::Created {
            attr,
            parent: Box::new(parent),
            new: true,
            capped: false,
        };
        cache.own_answered(seq, Some(own_results(&op, &resp)));
    };
    let mkdir = |name: &str| MdsOp::Mkdir {
        parent: 1,
        name: name.into(),
        perm: 0o755,
        umask: 0,
        want_cap: false,
    };
    made(40, mkdir("d"), dir_at(6, 5, 2), dir_at(1, 5, 3));
    assert_eq!(
        cache.getattr(1),
        Some(dir_at(1, 5, 3)),
        "the directory's nlink and times"
    );
    assert!(matches!(cache.lookup(root, 0, 1, "d"), Some(Known::Found(a)) if a.ino == 6));
    assert_eq!(
        cache.lookup(root, 0, 6, "x"),
        Some(Known::Absent),
        "a new directory is complete"
    );
    let (name, target) = ("l".into(), "d".into());
    let symlink = MdsOp::Symlink {
        parent: 1,
        name,
        target,
    };
    made(
        41,
        symlink,
        attr(7, FileKind::Symlink, 0o777, 0),
        dir_at(1, 6, 3),
    );
    assert_eq!(cache.getattr(1), Some(dir_at(1, 6, 3)));
    assert!(matches!(cache.lookup(root, 0, 1, "l"), Some(Known::Found(a)) if a.ino == 7));
    // An answer with another directory than the request's: that directory is not taken,
    // and the request's is asked for again.
    made(42, mkdir("e"), dir_at(8, 7, 2), dir_at(2, 7, 3));
    assert_eq!(cache.getattr(1), None);
    assert_eq!(cache.getattr(2), None);
}
