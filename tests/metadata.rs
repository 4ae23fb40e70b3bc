//! Every metadata operation, with its error cases, through the client library against an
//! in-process cluster (real TCP on loopback; metadata in the embedded store on disk, or in
//! FoundationDB when `RUSTRE_FDB_CLUSTER_FILE` is set and the `fdb` feature is on).

mod common;

use std::time::Duration;

use common::meta_cluster::{
    connect, listed_names, root, start, start_with, until_trusted, user, wait_async,
};
use rustre_fuse::client::FEED_LEASE;
use rustre_proto::msg::mds::{
    SetAttr, TimeSet, RENAME_EXCHANGE, RENAME_NOREPLACE, XATTR_CREATE, XATTR_REPLACE,
};
use rustre_proto::msg::mgs::NodeState;
use rustre_proto::msg::{FileKind, LayoutSpec, Timestamp, ROOT_INO};
use rustre_proto::Error;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_lookup_and_their_errors() {
    let t = start(30_000).await;
    let c = &t.client;
    let d = c.mkdir(&root(), ROOT_INO, "d", 0o755).await.unwrap();
    assert_eq!(d.kind, FileKind::Dir);
    assert_eq!(d.nlink, 2);
    assert_eq!(c.getattr(&root(), ROOT_INO).await.unwrap().nlink, 3);
    assert_eq!(
        c.mkdir(&root(), ROOT_INO, "d", 0o755).await,
        Err(Error::Exists)
    );
    assert_eq!(c.lookup(&root(), ROOT_INO, "d").await.unwrap().ino, d.ino);
    assert_eq!(
        c.lookup(&root(), ROOT_INO, "missing").await,
        Err(Error::NotFound)
    );
    let long = "x".repeat(256);
    assert_eq!(
        c.mkdir(&root(), ROOT_INO, &long, 0o755).await,
        Err(Error::NameTooLong)
    );
    assert!(c
        .mkdir(&root(), ROOT_INO, &"y".repeat(255), 0o755)
        .await
        .is_ok());

    let f = c
        .create(&root(), d.ino, "f", 0o640, true, None)
        .await
        .unwrap();
    assert_eq!(f.kind, FileKind::File);
    assert_eq!(f.perm, 0o640);
    assert!(f.layout.is_some());
    assert_eq!(
        c.create(&root(), d.ino, "f", 0o640, true, None).await,
        Err(Error::Exists)
    );
    let again = c
        .create(&root(), d.ino, "f", 0o600, false, None)
        .await
        .unwrap();
    assert_eq!(again.ino, f.ino);
    assert_eq!(c.lookup(&root(), f.ino, "x").await, Err(Error::NotDir));
    assert_eq!(
        c.mkdir(&root(), f.ino, "x", 0o755).await,
        Err(Error::NotDir)
    );
    assert!(matches!(
        c.mkdir(&root(), d.ino, "a/b", 0o755).await,
        Err(Error::Invalid(_))
    ));

    // Many creates get distinct inode numbers.
    let mut inos = std::collections::HashSet::new();
    for i in 0..300 {
        let a = c
            .create(&root(), d.ino, &format!("n{i}"), 0o644, true, None)
            .await
            .unwrap();
        assert!(inos.insert(a.ino));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_files_symlinks_and_links() {
    let t = start(30_000).await;
    let c = &t.client;
    for (name, kind, rdev) in [
        ("fifo", FileKind::Fifo, 0),
        ("sock", FileKind::Socket, 0),
        ("chr", FileKind::CharDev, 0x0501),
        ("blk", FileKind::BlockDev, 0x0802),
    ] {
        let a = c
            .mknod(&root(), ROOT_INO, name, kind, 0o644, rdev)
            .await
            .unwrap();
        assert_eq!((a.kind, a.rdev), (kind, rdev));
        assert!(a.layout.is_none());
    }
    // mknod(S_IFREG), as `tar --xattrs` makes files: a regular file with a layout (the MDS
    // makes it as an exclusive create; the client took that answer for an error once).
    let f = c
        .mknod(&root(), ROOT_INO, "reg", FileKind::File, 0o600, 0)
        .await
        .unwrap();
    assert_eq!((f.kind, f.perm, f.size), (FileKind::File, 0o600, 0));
    assert!(f.layout.is_some());
    assert_eq!(c.lookup(&root(), ROOT_INO, "reg").await.unwrap().ino, f.ino);
    assert_eq!(
        c.mknod(&user(1000), ROOT_INO, "x", FileKind::CharDev, 0o644, 1)
            .await,
        Err(Error::NotPermitted)
    );
    let s = c
        .symlink(&root(), ROOT_INO, "ln", "some/where")
        .await
        .unwrap();
    assert_eq!(s.kind, FileKind::Symlink);
    assert_eq!(s.size, 10);
    assert_eq!(c.readlink(&root(), s.ino).await.unwrap(), "some/where");
    assert_eq!(
        c.symlink(&root(), ROOT_INO, "empty", "").await,
        Err(Error::NotFound)
    );
    c.symlink(&root(), ROOT_INO, "loop1", "loop2")
        .await
        .unwrap();
    c.symlink(&root(), ROOT_INO, "loop2", "loop1")
        .await
        .unwrap();
    assert_eq!(c.resolve(&root(), "/loop1/x", true).await, Err(Error::Loop));

    let f = c
        .create(&root(), ROOT_INO, "f", 0o644, true, None)
        .await
        .unwrap();
    let l = c.link(&root(), f.ino, ROOT_INO, "f2").await.unwrap();
    assert_eq!(l.nlink, 2);
    assert_eq!(
        c.link(&root(), f.ino, ROOT_INO, "f2").await,
        Err(Error::Exists)
    );
    let d = c.mkdir(&root(), ROOT_INO, "d", 0o755).await.unwrap();
    assert_eq!(
        c.link(&root(), d.ino, ROOT_INO, "d2").await,
        Err(Error::NotPermitted)
    );
    c.unlink(&root(), ROOT_INO, "f").await.unwrap();
    assert_eq!(c.getattr(&root(), f.ino).await.unwrap().nlink, 1);
    assert_eq!(c.unlink(&root(), ROOT_INO, "d").await, Err(Error::IsDir));
    assert_eq!(c.rmdir(&root(), ROOT_INO, "f2").await, Err(Error::NotDir));
    c.mkdir(&root(), d.ino, "sub", 0o755).await.unwrap();
    assert_eq!(c.rmdir(&root(), ROOT_INO, "d").await, Err(Error::NotEmpty));
    c.rmdir(&root(), d.ino, "sub").await.unwrap();
    c.rmdir(&root(), ROOT_INO, "d").await.unwrap();
    assert_eq!(c.getattr(&root(), d.ino).await, Err(Error::NotFound));
    assert_eq!(
        c.unlink(&root(), ROOT_INO, "gone").await,
        Err(Error::NotFound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_in_all_its_forms() {
    let t = start(30_000).await;
    let c = &t.client;
    let r = &root();
    let a = c.mkdir(r, ROOT_INO, "a", 0o755).await.unwrap();
    let b = c.mkdir(r, ROOT_INO, "b", 0o755).await.unwrap();
    let f = c.create(r, a.ino, "f", 0o644, true, None).await.unwrap();
    let g = c.create(r, a.ino, "g", 0o644, true, None).await.unwrap();

    c.rename(r, a.ino, "f", b.ino, "f", 0).await.unwrap();
    assert_eq!(c.lookup(r, b.ino, "f").await.unwrap().ino, f.ino);
    assert_eq!(c.lookup(r, a.ino, "f").await, Err(Error::NotFound));
    assert_eq!(
        c.rename(r, a.ino, "g", b.ino, "f", RENAME_NOREPLACE).await,
        Err(Error::Exists)
    );
    c.rename(r, a.ino, "g", b.ino, "f", RENAME_EXCHANGE)
        .await
        .unwrap();
    assert_eq!(c.lookup(r, b.ino, "f").await.unwrap().ino, g.ino);
    assert_eq!(c.lookup(r, a.ino, "g").await.unwrap().ino, f.ino);
    assert_eq!(
        c.rename(r, a.ino, "g", b.ino, "none", RENAME_EXCHANGE)
            .await,
        Err(Error::NotFound)
    );
    // Replace a file: the victim is gone.
    c.rename(r, a.ino, "g", b.ino, "f", 0).await.unwrap();
    assert_eq!(c.getattr(r, g.ino).await, Err(Error::NotFound));

    // Directories across parents keep link counts right.
    let sub = c.mkdir(r, a.ino, "sub", 0o755).await.unwrap();
    c.mkdir(r, sub.ino, "deeper", 0o755).await.unwrap();
    c.rename(r, a.ino, "sub", b.ino, "sub", 0).await.unwrap();
    assert_eq!(c.getattr(r, a.ino).await.unwrap().nlink, 2);
    assert_eq!(c.getattr(r, b.ino).await.unwrap().nlink, 3);
    assert_eq!(c.lookup(r, sub.ino, "..").await.unwrap().ino, b.ino);
    // A listing's ".." names the new parent; for a caller who may read the directory but
    // not search it, the directory itself ("..", cannot be looked up then).
    let dotdot = |listed: Vec<rustre_fuse::client::Listed>| {
        listed
            .iter()
            .find(|l| l.entry.name == "..")
            .unwrap()
            .entry
            .ino
    };
    let fh = c.open_dir(r, sub.ino).await.unwrap();
    assert_eq!(dotdot(c.read_dir(fh, 0).await.unwrap()), b.ino);
    c.release_dir(fh);
    let unsearchable = c.mkdir(r, sub.ino, "r_only", 0o744).await.unwrap();
    let user = user(1000);
    let fh = c.open_dir(&user, unsearchable.ino).await.unwrap();
    assert_eq!(dotdot(c.read_dir(fh, 0).await.unwrap()), unsearchable.ino);
    c.release_dir(fh);
    let fh = c.open_dir(&user, sub.ino).await.unwrap();
    let listed = c.read_dir(fh, 0).await.unwrap();
    assert_eq!(dotdot(listed.clone()), b.ino);
    assert!(listed.iter().any(|l| l.entry.name == "r_only"));
    c.release_dir(fh);
    c.rmdir(r, sub.ino, "r_only").await.unwrap();
    // Not into its own subtree.
    let deeper = c.lookup(r, sub.ino, "deeper").await.unwrap();
    assert!(matches!(
        c.rename(r, b.ino, "sub", deeper.ino, "x", 0).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(
        c.rename(r, b.ino, "sub", sub.ino, "x", 0).await,
        Err(Error::Invalid(_))
    ));
    // Replace an empty directory, not a full one; file/dir mismatches.
    c.mkdir(r, a.ino, "empty", 0o755).await.unwrap();
    c.rename(r, b.ino, "sub", a.ino, "empty", 0).await.unwrap();
    assert_eq!(c.lookup(r, a.ino, "empty").await.unwrap().ino, sub.ino);
    let full = c.mkdir(r, b.ino, "full", 0o755).await.unwrap();
    c.mkdir(r, full.ino, "x", 0o755).await.unwrap();
    c.mkdir(r, a.ino, "d2", 0o755).await.unwrap();
    assert_eq!(
        c.rename(r, a.ino, "d2", b.ino, "full", 0).await,
        Err(Error::NotEmpty)
    );
    assert_eq!(
        c.rename(r, b.ino, "f", b.ino, "full", 0).await,
        Err(Error::IsDir)
    );
    assert_eq!(
        c.rename(r, a.ino, "d2", b.ino, "f", 0).await,
        Err(Error::NotDir)
    );
    assert_eq!(
        c.rename(r, a.ino, "missing", b.ino, "y", 0).await,
        Err(Error::NotFound)
    );
    assert!(matches!(
        c.rename(r, a.ino, "d2", b.ino, "y", 3).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdir_cookies_survive_changes() {
    let t = start(30_000).await;
    let c = &t.client;
    let r = &root();
    let d = c.mkdir(r, ROOT_INO, "d", 0o755).await.unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("e{i:03}")).collect();
    for n in &names {
        c.create(r, d.ino, n, 0o644, true, None).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut round = 0;
    loop {
        let (page, eof) = c
            .readdir(r, d.ino, after.as_deref(), 10, round % 2 == 0)
            .await
            .unwrap();
        for e in &page {
            seen.push(e.name.clone());
            if round % 2 == 0 {
                assert_eq!(e.attr.as_ref().unwrap().ino, e.ino);
            }
        }
        after = page.last().map(|e| e.name.clone());
        // Change the directory between pages: remove an entry already listed and one not
        // yet listed, add one before the cookie.
        if round == 2 {
            c.unlink(r, d.ino, "e005").await.unwrap();
            c.unlink(r, d.ino, "e090").await.unwrap();
            c.create(r, d.ino, "a-new", 0o644, true, None)
                .await
                .unwrap();
        }
        round += 1;
        if eof {
            break;
        }
    }
    let mut expected: Vec<String> = names.iter().filter(|n| *n != "e090").cloned().collect();
    expected.sort();
    assert_eq!(
        seen, expected,
        "every entry that stayed is listed exactly once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setattr_permissions_and_times() {
    let t = start(30_000).await;
    let c = &t.client;
    let r = &root();
    let f = c.create(r, ROOT_INO, "f", 0o644, true, None).await.unwrap();
    let alice = user(1000);
    let set = |perm| SetAttr {
        perm: Some(perm),
        ..Default::default()
    };
    assert_eq!(
        c.setattr_file(&alice, f.ino, set(0o777), None).await,
        Err(Error::NotPermitted)
    );
    let chown = SetAttr {
        uid: Some(1000),
        gid: Some(1000),
        ..Default::default()
    };
    assert_eq!(
        c.setattr_file(&alice, f.ino, chown.clone(), None).await,
        Err(Error::NotPermitted)
    );
    let a = c.setattr_file(r, f.ino, chown, None).await.unwrap();
    assert_eq!((a.uid, a.gid), (1000, 1000));
    assert!(a.ctime >= f.ctime);
    let a = c
        .setattr_file(&alice, f.ino, set(0o4755), None)
        .await
        .unwrap();
    assert_eq!(a.perm, 0o4755);
    // Owner may give the file to a group she is in, never to another user.
    let give = SetAttr {
        uid: Some(1001),
        ..Default::default()
    };
    assert_eq!(
        c.setattr_file(&alice, f.ino, give, None).await,
        Err(Error::NotPermitted)
    );
    let mut alice_g = alice.clone();
    alice_g.groups = vec![50];
    let a = c
        .setattr_file(
            &alice_g,
            f.ino,
            SetAttr {
                gid: Some(50),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert_eq!(a.gid, 50);
    assert_eq!(a.perm & 0o4000, 0, "chown clears setuid");

    let t0 = Timestamp {
        sec: 1_000_000,
        nsec: 5,
    };
    let bob = user(2000);
    let times = SetAttr {
        atime: Some(TimeSet::At(t0)),
        mtime: Some(TimeSet::At(t0)),
        ..Default::default()
    };
    assert_eq!(
        c.setattr_file(&bob, f.ino, times.clone(), None).await,
        Err(Error::NotPermitted)
    );
    let a = c.setattr_file(&alice, f.ino, times, None).await.unwrap();
    assert_eq!((a.atime, a.mtime), (t0, t0));
    let now = SetAttr {
        mtime: Some(TimeSet::Now),
        ..Default::default()
    };
    assert_eq!(
        c.setattr_file(&bob, f.ino, now.clone(), None).await,
        Err(Error::Access)
    );
    assert!(
        c.setattr_file(&alice, f.ino, now, None)
            .await
            .unwrap()
            .mtime
            > t0
    );

    let trunc = SetAttr {
        size: Some(12345),
        ..Default::default()
    };
    assert_eq!(
        c.setattr_file(&bob, f.ino, trunc.clone(), None).await,
        Err(Error::Access)
    );
    let a = c.setattr_file(&alice, f.ino, trunc, None).await.unwrap();
    assert_eq!(a.size, 12345);
    let d = c.mkdir(r, ROOT_INO, "d", 0o755).await.unwrap();
    let trunc_dir = SetAttr {
        size: Some(0),
        ..Default::default()
    };
    assert_eq!(
        c.setattr_file(r, d.ino, trunc_dir, None).await,
        Err(Error::IsDir)
    );
    // Non-owners can't create in a 0755 directory owned by root.
    assert_eq!(c.mkdir(&bob, d.ino, "x", 0o755).await, Err(Error::Access));
    assert_eq!(c.access(&bob, d.ino, 2).await, Err(Error::Access));
    assert!(c.access(&bob, d.ino, 5).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xattrs_statfs_and_layouts() {
    let t = start(30_000).await;
    let c = &t.client;
    let r = &root();
    let f = c.create(r, ROOT_INO, "f", 0o644, true, None).await.unwrap();
    c.set_xattr(r, f.ino, "user.a", b"1", 0).await.unwrap();
    c.set_xattr(r, f.ino, "user.b", b"22", XATTR_CREATE)
        .await
        .unwrap();
    assert_eq!(
        c.set_xattr(r, f.ino, "user.b", b"x", XATTR_CREATE).await,
        Err(Error::Exists)
    );
    assert_eq!(
        c.set_xattr(r, f.ino, "user.c", b"x", XATTR_REPLACE).await,
        Err(Error::NoData)
    );
    c.set_xattr(r, f.ino, "user.b", b"333", XATTR_REPLACE)
        .await
        .unwrap();
    assert_eq!(c.get_xattr(r, f.ino, "user.b").await.unwrap(), b"333");
    assert_eq!(c.get_xattr(r, f.ino, "user.zz").await, Err(Error::NoData));
    assert_eq!(
        c.list_xattr(r, f.ino).await.unwrap(),
        vec!["user.a", "user.b"]
    );
    c.remove_xattr(r, f.ino, "user.a").await.unwrap();
    assert_eq!(c.remove_xattr(r, f.ino, "user.a").await, Err(Error::NoData));
    assert_eq!(c.list_xattr(r, f.ino).await.unwrap(), vec!["user.b"]);
    assert_eq!(
        c.set_xattr(&user(5), f.ino, "user.q", b"", 0).await,
        Err(Error::Access)
    );

    let s = c.statfs(r).await.unwrap();
    assert!(s.capacity.total_bytes > 0 && s.capacity.avail_bytes <= s.capacity.total_bytes);
    assert!(s.files >= 2);

    // Directory default layouts are inherited; explicit requests win; bad ones are refused.
    let d = c.mkdir(r, ROOT_INO, "wide", 0o755).await.unwrap();
    let spec = LayoutSpec {
        stripe_size: Some(65536),
        stripe_count: Some(u32::MAX),
        ..Default::default()
    };
    c.set_dir_layout(r, d.ino, Some(spec.clone()))
        .await
        .unwrap();
    assert_eq!(c.get_dir_layout(r, d.ino).await.unwrap(), Some(spec));
    let w = c.create(r, d.ino, "w", 0o644, true, None).await.unwrap();
    let l = w.layout.unwrap();
    assert_eq!((l.stripe_size, l.osts.len()), (65536, 2));
    let one = LayoutSpec {
        stripe_count: Some(1),
        ..Default::default()
    };
    let n = c
        .create(r, d.ino, "n", 0o644, true, Some(one))
        .await
        .unwrap();
    assert_eq!(n.layout.unwrap().osts.len(), 1);
    let bad = LayoutSpec {
        stripe_size: Some(1000),
        ..Default::default()
    };
    assert!(matches!(
        c.set_dir_layout(r, d.ino, Some(bad)).await,
        Err(Error::Invalid(_))
    ));
    let nosuch = LayoutSpec {
        osts: Some(vec![9]),
        ..Default::default()
    };
    assert!(matches!(
        c.create(r, d.ino, "x", 0o644, true, Some(nosuch)).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlinked_open_file_lives_until_last_close() {
    let t = start(30_000).await;
    let c = &t.client;
    let r = &root();
    let flags = libc::O_RDWR | libc::O_EXCL;
    let f = c
        .create_file(r, ROOT_INO, "f", 0o644, flags, None)
        .await
        .unwrap();
    let layout = f.attr.layout.clone().unwrap();
    let data = common::random_bytes(3 << 20, 3);
    assert_eq!(
        c.write_file(f.fh, 0, data.clone().into()).await.unwrap(),
        data.len()
    );
    c.fsync_file(f.fh).await.unwrap();
    c.unlink(r, ROOT_INO, "f").await.unwrap();
    assert_eq!(c.lookup(r, ROOT_INO, "f").await, Err(Error::NotFound));
    // Still there for the holder.
    let a = c.getattr(r, f.attr.ino).await.unwrap();
    assert_eq!((a.nlink, a.size), (0, data.len() as u64));
    let back = c.read_file(f.fh, 0, data.len()).await.unwrap();
    assert!(back[..] == data[..]);
    let ost_dir = t.dir.path().join(format!("ost{}/objects", layout.osts[0]));
    assert!(common::dir_bytes(&ost_dir) > 0);
    c.release_file(f.fh).await.unwrap();
    assert_eq!(c.getattr(r, f.attr.ino).await, Err(Error::NotFound));
    let gone = wait_async(Duration::from_secs(5), || common::dir_bytes(&ost_dir) == 0).await;
    assert!(gone, "objects of the destroyed file were not deleted");
}

/// Releases made at the same moment go to the MDS together (`client/releases.rs`): each
/// still returns only once its own release is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_releases_each_drop_their_open() {
    let t = start(30_000).await;
    let c = &t.client;
    let r = &root();
    let mut inos = Vec::new();
    let mut handles = Vec::new();
    for i in 0..40 {
        let name = format!("f{i}");
        let f = c
            .create_file(r, ROOT_INO, &name, 0o644, libc::O_RDWR | libc::O_EXCL, None)
            .await
            .unwrap();
        c.unlink(r, ROOT_INO, &name).await.unwrap();
        inos.push(f.attr.ino);
        handles.push(f.fh);
    }
    let mut releases = tokio::task::JoinSet::new();
    for fh in handles {
        let c = c.clone();
        releases.spawn(async move { c.release_file(fh).await });
    }
    while let Some(done) = releases.join_next().await {
        done.unwrap().unwrap();
    }
    for ino in inos {
        assert_eq!(c.getattr(r, ino).await, Err(Error::NotFound), "inode {ino}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_of_a_vanished_client_are_cleaned_after_its_lease() {
    let t = start(1_500).await;
    let r = &root();
    let gone_client = connect(&t.mgs).await;
    let opened = gone_client
        .create_file(r, ROOT_INO, "f", 0o644, libc::O_RDWR | libc::O_EXCL, None)
        .await
        .unwrap();
    gone_client
        .write_file(opened.fh, 0, vec![1u8; 4096].into())
        .await
        .unwrap();
    gone_client.fsync_file(opened.fh).await.unwrap();
    let f = opened.attr;
    let layout = f.layout.clone().unwrap();
    // The client vanishes without releasing (its renewal task stops with it).
    drop(gone_client);
    t.client.unlink(r, ROOT_INO, "f").await.unwrap();
    assert_eq!(t.client.getattr(r, f.ino).await.unwrap().nlink, 0);
    let ost_dir = t.dir.path().join(format!("ost{}/objects", layout.osts[0]));
    let cleaned = wait_async(Duration::from_secs(10), || common::dir_bytes(&ost_dir) == 0).await;
    assert!(cleaned, "orphan's objects survived the holder's lease");
    assert_eq!(t.client.getattr(r, f.ino).await, Err(Error::NotFound));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_mutation_returns_its_recorded_result() {
    use rustre_proto::frame::Service;
    use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse};
    use rustre_proto::rpc::client::Peer;
    let t = start(30_000).await;
    let peer = Peer::new(&t.mds, Service::Mds, "test", "raw", &common::test_key(), 1);
    let session = t.client.session();
    let call = |seq: u64, op: MdsOp| {
        let req = MdsRequest {
            creds: root(),
            session,
            seq,
            op,
        };
        let peer = &peer;
        async move {
            peer.call::<_, MdsResponse>(&req, bytes::Bytes::new())
                .await
                .map(|r| r.0)
        }
    };
    let mkdir = || MdsOp::Mkdir {
        parent: ROOT_INO,
        name: "once".into(),
        perm: 0o755,
        umask: 0,
        want_cap: false,
    };
    // Answered with the directory as the same transaction left it: its times are the
    // new directory's.
    let first = match call(1_000_001, mkdir()).await.unwrap() {
        MdsResponse::Created {
            attr,
            parent,
            new: true,
            capped: false,
        } if parent.ino == ROOT_INO && parent.mtime == attr.ctime => attr,
        r => panic!("{r:?}"),
    };
    // The same request again (a retry after a lost reply): the recorded answer, not EEXIST.
    match call(1_000_001, mkdir()).await.unwrap() {
        MdsResponse::Created { attr, .. } => assert_eq!(attr.ino, first.ino),
        r => panic!("{r:?}"),
    }
    // A new request for the same name really runs, and fails.
    assert!(matches!(call(1_000_002, mkdir()).await, Err(Error::Exists)));
    let unlink = || MdsOp::Rmdir {
        parent: ROOT_INO,
        name: "once".into(),
    };
    let removed = match call(1_000_003, unlink()).await.unwrap() {
        MdsResponse::NamesChanged(n) => n,
        r => panic!("{r:?}"),
    };
    assert_eq!(removed.source.ino, first.ino);
    // The repeat gets the recorded answer, not what the directory holds now.
    match call(1_000_003, unlink()).await.unwrap() {
        MdsResponse::NamesChanged(n) => assert_eq!(n, removed),
        r => panic!("{r:?}"),
    }
    assert!(matches!(
        call(1_000_004, unlink()).await,
        Err(Error::NotFound)
    ));
}

/// Polls `check` every 10 ms until it holds; panics after `limit`.
async fn holds_within<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not seen within {limit:?}");
}

/// The consistency rule of docs/metadata-cache.md: a client answers lookups and getattrs
/// from its cache, and a change another client makes through any MDS is seen within
/// `FEED_LEASE` (1 s) of being acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_name_follows_another_clients_changes() {
    use rustre_fuse::client::FEED_LEASE;
    let t = start_with(30_000, 2).await;
    let b = connect(&t.mgs).await;
    let a = &t.client;
    let map = a.cluster_map();
    let up = map.mds.iter().filter(|m| m.state == NodeState::Up).count();
    assert_eq!(up, 2, "two MDS in the map");
    let f = b
        .create(&root(), ROOT_INO, "f", 0o644, false, None)
        .await
        .unwrap();
    let _ = a.lookup(&root(), ROOT_INO, "missing").await;

    // Once both feeds have answered, a repeated lookup and getattr are answered locally.
    let mut answered_locally = false;
    for _ in 0..50 {
        a.lookup(&root(), ROOT_INO, "f").await.unwrap();
        let hits = a.meta_cache_hits();
        a.lookup(&root(), ROOT_INO, "f").await.unwrap();
        a.getattr(&root(), f.ino).await.unwrap();
        if a.meta_cache_hits() >= hits + 2 {
            answered_locally = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(answered_locally, "no lookup was answered from the cache");
    // A name found missing while the feeds vouch is answered missing again from the cache.
    // (The first lookup of "missing" above may have come before both feeds answered, when
    // nothing is kept; and on a loaded machine a feed may miss its lease now and then, so
    // the pair is tried again rather than timed.)
    let mut negative_cached = false;
    for _ in 0..50 {
        assert_eq!(
            a.lookup(&root(), ROOT_INO, "missing").await.err(),
            Some(Error::NotFound)
        );
        let hits = a.meta_cache_hits();
        assert_eq!(
            a.lookup(&root(), ROOT_INO, "missing").await.err(),
            Some(Error::NotFound)
        );
        if a.meta_cache_hits() == hits + 1 {
            negative_cached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        negative_cached,
        "negative entry never answered from the cache"
    );

    // Each change by client b (through whichever MDS it picks) reaches a within the lease.
    let limit = FEED_LEASE + Duration::from_millis(500);
    let set = SetAttr {
        perm: Some(0o600),
        ..SetAttr::default()
    };
    b.setattr_file(&root(), f.ino, set, None).await.unwrap();
    holds_within("chmod", limit, || async {
        a.lookup(&root(), ROOT_INO, "f")
            .await
            .is_ok_and(|x| x.perm == 0o600)
    })
    .await;
    b.rename(&root(), ROOT_INO, "f", ROOT_INO, "g", 0)
        .await
        .unwrap();
    holds_within("rename", limit, || async {
        a.lookup(&root(), ROOT_INO, "f").await.err() == Some(Error::NotFound)
            && a.lookup(&root(), ROOT_INO, "g").await.is_ok()
    })
    .await;
    b.create(&root(), ROOT_INO, "missing", 0o644, false, None)
        .await
        .unwrap();
    holds_within("create over a cached negative entry", limit, || async {
        a.lookup(&root(), ROOT_INO, "missing").await.is_ok()
    })
    .await;
    b.unlink(&root(), ROOT_INO, "g").await.unwrap();
    holds_within("unlink", limit, || async {
        a.lookup(&root(), ROOT_INO, "g").await.err() == Some(Error::NotFound)
            && a.getattr(&root(), f.ino).await.is_err()
    })
    .await;

    // A client's own change is seen by itself at once, never from a stale cache.
    a.lookup(&root(), ROOT_INO, "missing").await.unwrap();
    a.unlink(&root(), ROOT_INO, "missing").await.unwrap();
    assert_eq!(
        a.lookup(&root(), ROOT_INO, "missing").await.err(),
        Some(Error::NotFound)
    );
}

/// A create's answer carries its directory's new attributes (`MdsResponse::Created`): the
/// creating client's cache holds them, so the kernel's getattr of the directory after each
/// create (`default_permissions` rechecks it) needs no MDS call, and they are what the MDS
/// answers another client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_leaves_its_directory_s_attributes_in_the_cache() {
    let t = start(30_000).await;
    let c = &t.client;
    assert!(
        until_trusted(c).await,
        "the client's change feed never answered"
    );
    let d = c
        .mkdir(&root(), ROOT_INO, "created-in", 0o755)
        .await
        .unwrap();
    let f = c
        .create(&root(), d.ino, "f", 0o644, true, None)
        .await
        .unwrap();
    let other = connect(&t.mgs).await;
    let at_mds = other.getattr(&root(), d.ino).await.unwrap();
    assert_eq!(
        at_mds.mtime, f.ctime,
        "the create moved the directory's mtime"
    );
    let known = wait_async(Duration::from_secs(10), || {
        c.cached_getattr(d.ino).is_some_and(|a| a == at_mds)
    })
    .await;
    assert!(
        known,
        "the creating client's cache: {:?}, the MDS: {at_mds:?}",
        c.cached_getattr(d.ino)
    );
}

/// An unlink's answer carries its directory's new attributes (`MdsResponse::NamesChanged`):
/// the client's cache holds them, so the kernel's getattr of the directory before the next
/// unlink of an `rm -rf` needs no MDS call, and they are what the MDS answers another
/// client. The directory's access ACL (none) is answered from the cache too: the kernel
/// asks for it after that getattr when the caller does not own the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unlink_leaves_its_directory_s_attributes_in_the_cache() {
    const ACCESS_ACL: &str = "system.posix_acl_access";
    let t = start(30_000).await;
    let c = &t.client;
    assert!(
        until_trusted(c).await,
        "the client's change feed never answered"
    );
    let d = c
        .mkdir(&root(), ROOT_INO, "unlinked-in", 0o755)
        .await
        .unwrap();
    for name in ["f", "g"] {
        c.create(&root(), d.ino, name, 0o644, true, None)
            .await
            .unwrap();
    }
    let other = connect(&t.mgs).await;
    let before = other.getattr(&root(), d.ino).await.unwrap();
    c.unlink(&root(), d.ino, "f").await.unwrap();
    // The other client may answer from its cache until its feed reports the unlink (within
    // the feed's lease, docs/metadata-cache.md): look until it shows the change.
    let mut at_mds = other.getattr(&root(), d.ino).await.unwrap();
    for _ in 0..40 {
        if at_mds.mtime > before.mtime {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        at_mds = other.getattr(&root(), d.ino).await.unwrap();
    }
    assert!(
        at_mds.mtime > before.mtime,
        "the unlink moved the directory's mtime"
    );
    let known = wait_async(Duration::from_secs(10), || {
        c.cached_getattr(d.ino).is_some_and(|a| a == at_mds)
    })
    .await;
    assert!(
        known,
        "the unlinking client's cache: {:?}, the MDS: {at_mds:?}",
        c.cached_getattr(d.ino)
    );
    // "No such attribute", from the cache: its hits count it (an answer from the MDS,
    // while the cache is not trusted, does not; so try until one is).
    let mut from_cache = false;
    for _ in 0..100 {
        let hits = c.meta_cache_hits();
        let r = c.get_xattr(&root(), d.ino, ACCESS_ACL).await;
        assert_eq!(r, Err(Error::NoData));
        if c.meta_cache_hits() == hits + 1 {
            from_cache = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(from_cache, "the getxattr of the ACL always went to the MDS");
    // Another client sets an ACL: this client answers it (within the feed's lease).
    let mut acl = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 7u16, u32::MAX),
        (0x02, 5, 1000),
        (0x04, 5, u32::MAX),
        (0x10, 5, u32::MAX),
        (0x20, 5, u32::MAX),
    ] {
        acl.extend(tag.to_le_bytes());
        acl.extend(perm.to_le_bytes());
        acl.extend(id.to_le_bytes());
    }
    other
        .set_xattr(&root(), d.ino, ACCESS_ACL, &acl, 0)
        .await
        .unwrap();
    let mut seen = Err(Error::NoData);
    for _ in 0..100 {
        seen = c.get_xattr(&root(), d.ino, ACCESS_ACL).await;
        if seen.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, Ok(acl), "the other client's ACL");
    // An rmdir leaves its parent's attributes (one link fewer) in the cache the same way.
    c.unlink(&root(), d.ino, "g").await.unwrap();
    c.rmdir(&root(), ROOT_INO, "unlinked-in").await.unwrap();
    let root_at_mds = other.getattr(&root(), ROOT_INO).await.unwrap();
    let known = wait_async(Duration::from_secs(10), || {
        c.cached_getattr(ROOT_INO).is_some_and(|a| a == root_at_mds)
    })
    .await;
    assert!(
        known,
        "after the rmdir: {:?}, the MDS: {root_at_mds:?}",
        c.cached_getattr(ROOT_INO)
    );
}

/// GNU `rm -r` opens each directory twice in a row: the second open reuses the first one's
/// page (no MDS call), but never across a change of the directory, whoever made it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_opened_again_lists_what_it_holds_now() {
    let t = start(30_000).await;
    let c = &t.client;
    rustre_fuse::client::metrics::enable(&mut prometheus_client::registry::Registry::default());
    let reused = || {
        let m = rustre_fuse::client::metrics::get().unwrap();
        m.first_pages_reused.get()
    };
    let d = c.mkdir(&root(), ROOT_INO, "d", 0o755).await.unwrap();
    for n in ["a", "b"] {
        c.create(&root(), d.ino, n, 0o644, true, None)
            .await
            .unwrap();
    }
    assert!(until_trusted(c).await);
    // Quiet now: within a few rounds of two opens, one is answered from the first page.
    let before = reused();
    let mut rounds = 0;
    while reused() == before && rounds < 20 {
        assert_eq!(listed_names(c, &root(), d.ino).await, ["a", "b"]);
        assert_eq!(listed_names(c, &root(), d.ino).await, ["a", "b"]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        rounds += 1;
    }
    assert!(
        reused() > before,
        "no open reused its directory's first page"
    );

    // This client's own change: the very next open shows it.
    listed_names(c, &root(), d.ino).await;
    c.create(&root(), d.ino, "c", 0o644, true, None)
        .await
        .unwrap();
    assert_eq!(listed_names(c, &root(), d.ino).await, ["a", "b", "c"]);
    c.unlink(&root(), d.ino, "a").await.unwrap();
    assert_eq!(listed_names(c, &root(), d.ino).await, ["b", "c"]);

    // Another client's change: shown once this client's feed reported it (within the
    // cache's lease), however often the directory is opened meanwhile.
    let other = connect(&t.mgs).await;
    listed_names(c, &root(), d.ino).await;
    other
        .create(&root(), d.ino, "e", 0o644, true, None)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let mut listed = listed_names(c, &root(), d.ino).await;
    while listed != ["b", "c", "e"] && start.elapsed() < FEED_LEASE * 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        listed = listed_names(c, &root(), d.ino).await;
    }
    assert_eq!(
        listed,
        ["b", "c", "e"],
        "another client's create never showed"
    );
}
