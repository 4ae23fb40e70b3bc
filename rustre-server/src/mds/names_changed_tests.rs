//! `MdsResponse::NamesChanged`, over an in-process cluster (the harness of `tests`): an
//! unlink, rmdir or rename answers its directories and the inodes it touched exactly as a
//! getattr finds them after it, so a client's cache may keep them (docs/metadata-cache.md).

use rustre_proto::msg::mds::{MdsOp, MdsResponse, NamesChanged, RENAME_EXCHANGE};
use rustre_proto::msg::{Attr, Ino, ROOT_INO};

use super::tests::TestCluster;

async fn getattr(t: &TestCluster, ino: Ino) -> Option<Attr> {
    t.attr(MdsOp::GetAttr { ino }).await.ok()
}

async fn names_changed(t: &TestCluster, op: MdsOp) -> NamesChanged {
    match t.call(op).await.unwrap() {
        MdsResponse::NamesChanged(n) => *n,
        r => panic!("{r:?}"),
    }
}

/// Makes directory `name` in `parent` (not capped).
pub(super) async fn mkdir(t: &TestCluster, parent: Ino, name: &str) -> Attr {
    let op = MdsOp::Mkdir {
        parent,
        name: name.into(),
        perm: 0o755,
        umask: 0,
        want_cap: false,
    };
    t.attr(op).await.unwrap()
}

/// Makes the empty file `name` in `parent`.
pub(super) async fn create(t: &TestCluster, parent: Ino, name: &str) -> Attr {
    let op = MdsOp::Create {
        parent,
        name: name.into(),
        perm: 0o644,
        umask: 0,
        exclusive: true,
        open_flags: None,
        layout: None,
    };
    t.attr(op).await.unwrap()
}

fn rename(parent: Ino, name: &str, new_parent: Ino, new_name: &str, flags: u32) -> MdsOp {
    MdsOp::Rename {
        parent,
        name: name.into(),
        new_parent,
        new_name: new_name.into(),
        flags,
    }
}

#[tokio::test]
async fn an_unlink_and_an_rmdir_answer_what_a_getattr_finds_after_them() {
    let t = TestCluster::start(1).await;
    let d = mkdir(&t, ROOT_INO, "d").await;
    let f = create(&t, d.ino, "f").await;
    let link = MdsOp::Link {
        ino: f.ino,
        new_parent: d.ino,
        new_name: "g".into(),
    };
    t.attr(link).await.unwrap();
    let before = getattr(&t, d.ino).await.unwrap();
    let unlink = |name: &str| MdsOp::Unlink {
        parent: d.ino,
        name: name.into(),
    };
    // One of two links: the inode stays, with one link and the unlink's ctime.
    let n = names_changed(&t, unlink("f")).await;
    let dir = getattr(&t, d.ino).await.unwrap();
    assert_eq!(n.dirs, vec![dir.clone()]);
    assert!(
        dir.mtime > before.mtime,
        "the unlink moved the directory's mtime"
    );
    assert_eq!(n.source.ino, f.ino);
    let left = getattr(&t, f.ino).await.unwrap();
    assert_eq!(n.source.attr.as_ref(), Some(&left));
    assert_eq!(left.nlink, 1);
    assert_eq!(left.ctime, dir.mtime, "the unlink's time");
    assert_eq!(n.target, None);
    // The last link: the inode is gone.
    let n = names_changed(&t, unlink("g")).await;
    assert_eq!(n.dirs, vec![getattr(&t, d.ino).await.unwrap()]);
    assert_eq!((n.source.ino, n.source.attr), (f.ino, None));
    assert_eq!(getattr(&t, f.ino).await, None);
    // An rmdir: the directory goes, its parent has a link fewer.
    let sub = mkdir(&t, d.ino, "sub").await;
    let with_sub = getattr(&t, d.ino).await.unwrap();
    let rmdir = MdsOp::Rmdir {
        parent: d.ino,
        name: "sub".into(),
    };
    let n = names_changed(&t, rmdir).await;
    let dir = getattr(&t, d.ino).await.unwrap();
    assert_eq!(n.dirs, vec![dir.clone()]);
    assert_eq!(dir.nlink, with_sub.nlink - 1);
    assert_eq!((n.source.ino, n.source.attr), (sub.ino, None));
}

#[tokio::test]
async fn a_rename_answers_both_directories_and_both_inodes() {
    let t = TestCluster::start(1).await;
    let d = mkdir(&t, ROOT_INO, "d").await;
    let a = create(&t, d.ino, "a").await;
    // Between two directories: both, the source's first.
    let n = names_changed(&t, rename(d.ino, "a", ROOT_INO, "x", 0)).await;
    let dirs = vec![
        getattr(&t, d.ino).await.unwrap(),
        getattr(&t, ROOT_INO).await.unwrap(),
    ];
    assert_eq!(n.dirs, dirs);
    assert_eq!(n.source.attr, getattr(&t, a.ino).await);
    assert_eq!(n.source.attr.as_ref().unwrap().ctime, dirs[0].mtime);
    assert_eq!(n.target, None);
    // Over another file: the replaced inode is gone.
    let y = create(&t, ROOT_INO, "y").await;
    let n = names_changed(&t, rename(ROOT_INO, "x", ROOT_INO, "y", 0)).await;
    assert_eq!(n.dirs, vec![getattr(&t, ROOT_INO).await.unwrap()]);
    assert_eq!(n.source.ino, a.ino);
    let target = n.target.unwrap();
    assert_eq!((target.ino, target.attr), (y.ino, None));
    // An exchange: both inodes stay, each with the exchange's ctime.
    let z = create(&t, d.ino, "z").await;
    let n = names_changed(&t, rename(ROOT_INO, "y", d.ino, "z", RENAME_EXCHANGE)).await;
    assert_eq!(n.source.attr, getattr(&t, a.ino).await);
    let target = n.target.unwrap();
    assert_eq!(target.ino, z.ino);
    assert_eq!(target.attr, getattr(&t, z.ino).await);
    assert_eq!(n.dirs[1], getattr(&t, d.ino).await.unwrap());
}
