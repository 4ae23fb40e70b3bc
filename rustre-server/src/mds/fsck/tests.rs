//! fsck's pages and repairs over an in-memory store, with the inconsistencies written
//! straight into it.

use rustre_proto::msg::fsck::{FixOutcome, FsckFix, LOST_FOUND};
use rustre_proto::msg::{Creds, FileKind, Ino, Layout, Timestamp, ROOT_INO};
use rustre_proto::Error;

use super::*;
use crate::mds::namespace::{Ctx, NewInode};
use crate::mds::{open, store};
use crate::meta::Kv;

/// A store with the root, `/d` (a directory) and `/d/f` (a file); answers their numbers.
fn store_with_tree() -> (Kv, Ino, Ino) {
    let kv = Kv::open_memory();
    crate::mds::bootstrap(&kv).unwrap();
    let (d, f) = (10, 11);
    run(&kv, |tx, c| {
        namespace::create_entry(tx, c, ROOT_INO, "d", node(d, FileKind::Dir))?;
        namespace::create_entry(tx, c, d, "f", node(f, FileKind::File)).map(|_| ())
    });
    (kv, d, f)
}

fn node(ino: Ino, kind: FileKind) -> NewInode {
    NewInode {
        ino,
        kind,
        perm: 0o755,
        umask: 0,
        rdev: 0,
        target: None,
        layout: (kind == FileKind::File).then(|| Layout::striped(1 << 20, vec![0])),
    }
}

/// Runs `f` as root in one transaction, a second after the last one.
fn run<T>(kv: &Kv, f: impl Fn(&mut dyn Transaction, &Ctx) -> Result<T, Error>) -> T {
    static CLOCK: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(1_000);
    let now = Timestamp {
        sec: CLOCK.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        nsec: 0,
    };
    let creds = Creds::root();
    kv.transact(|tx| f(tx, &Ctx { creds: &creds, now }))
        .unwrap()
}

fn get(kv: &Kv, ino: Ino) -> Option<Inode> {
    run(kv, |tx, _| store::get_inode(tx, ino))
}

fn fix(kv: &Kv, f: &FsckFix, apply: bool) -> FixOutcome {
    run(kv, |tx, c| repair(tx, c, f, apply, 500))
}

fn set_nlink_of(inode: &Inode, nlink: u32) -> FsckFix {
    FsckFix::SetNlink {
        ino: inode.attr.ino,
        seen: inode.attr.nlink,
        ctime: inode.attr.ctime,
        nlink,
    }
}

#[test]
fn pages_cover_every_inode_entry_and_index_entry_once_with_their_marks() {
    let (kv, d, f) = store_with_tree();
    run(&kv, |tx, c| {
        let session = open::open_session(tx, "t", 0, 60_000)?;
        open::open(tx, c, session, f, libc::O_WRONLY, false)?;
        tx.set(&schema::stale(f), &[]);
        tx.set(&schema::stale(77), &[]);
        for i in 0..5 {
            namespace::create_entry(tx, c, d, &format!("x{i}"), node(20 + i, FileKind::Fifo))?;
        }
        Ok(())
    });
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let (page, done) = run(&kv, |tx, _| inodes(tx, after, 3));
        assert!(page.len() <= 3);
        after = page.last().map_or(after, |i| i.attr.ino);
        all.extend(page);
        if done {
            break;
        }
    }
    let inos: Vec<Ino> = all.iter().map(|i| i.attr.ino).collect();
    assert_eq!(inos, vec![ROOT_INO, d, f, 20, 21, 22, 23, 24]);
    let file = &all[2];
    assert!(file.open && file.write_open && file.stale_indexed && !file.orphan);
    assert_eq!(all[1].parent, ROOT_INO);
    assert!(!all[1].open && !all[1].stale_indexed);

    let mut names = Vec::new();
    let mut after: Option<(Ino, String)> = None;
    loop {
        let (page, done) = run(&kv, |tx, _| {
            entries(tx, after.as_ref().map(|(p, n)| (*p, n.as_str())), 2)
        });
        after = page.last().map(|e| (e.parent, e.name.clone())).or(after);
        names.extend(page.into_iter().map(|e| (e.parent, e.name, e.ino)));
        if done {
            break;
        }
    }
    assert_eq!(names[0], (ROOT_INO, "d".to_string(), d));
    assert_eq!(names[1], (d, "f".to_string(), f));
    assert_eq!(names.len(), 7);
    assert_eq!(run(&kv, |tx, _| stale_index(tx, 0, 1)), (vec![f], false));
    assert_eq!(run(&kv, |tx, _| stale_index(tx, f, 5)), (vec![77], true));
    assert_eq!(run(&kv, |tx, _| inodes(tx, u64::MAX, 5)), (vec![], true));
}

#[test]
fn a_page_of_wide_layouts_stays_within_its_byte_bound() {
    use rustre_proto::msg::fsck::FSCK_PAGE_BYTES;
    let kv = Kv::open_memory();
    crate::mds::bootstrap(&kv).unwrap();
    // The widest layouts the protocol allows: 2048 slots each.
    let wide = Layout {
        stripe_size: 1 << 20,
        osts: (0..2048).map(|i| 1_000_000 + i).collect(),
        replicas: 8,
        stale: Vec::new(),
        version: 0,
        written: Default::default(),
        allocated: Vec::new(),
    };
    let files = 400;
    run(&kv, |tx, c| {
        for i in 0..files {
            let mut new = node(100 + i, FileKind::File);
            new.layout = Some(wide.clone());
            namespace::create_entry(tx, c, ROOT_INO, &format!("w{i}"), new)?;
        }
        Ok(())
    });
    let (mut after, mut seen, mut pages) = (0, 0, 0);
    loop {
        let (page, done) = run(&kv, |tx, _| inodes(tx, after, 1024));
        let bytes = rustre_proto::codec::encode(&page).unwrap().len();
        assert!(bytes <= FSCK_PAGE_BYTES + (64 << 10), "{bytes} bytes");
        seen += page.len();
        pages += 1;
        after = page.last().unwrap().attr.ino;
        if done {
            break;
        }
    }
    assert_eq!(seen, files as usize + 1);
    assert!(pages > 1, "one page of {seen} wide inodes");
}

#[test]
fn a_link_count_is_set_only_while_the_inode_is_as_fsck_saw_it() {
    let (kv, _, f) = store_with_tree();
    let seen = get(&kv, f).unwrap();
    let fix_it = set_nlink_of(&seen, 3);
    // A dry run changes nothing.
    assert!(matches!(fix(&kv, &fix_it, false), FixOutcome::Applies(_)));
    assert_eq!(get(&kv, f).unwrap().attr.nlink, 1);
    // The inode changed meanwhile (a chmod sets its ctime): refused.
    run(&kv, |tx, c| {
        let mut i = store::inode(tx, f)?;
        i.attr.ctime = c.now;
        store::put_inode(tx, &i)
    });
    assert!(matches!(fix(&kv, &fix_it, true), FixOutcome::Changed(_)));
    assert_eq!(get(&kv, f).unwrap().attr.nlink, 1);
    let fresh = set_nlink_of(&get(&kv, f).unwrap(), 3);
    assert!(matches!(fix(&kv, &fresh, true), FixOutcome::Applies(_)));
    assert_eq!(get(&kv, f).unwrap().attr.nlink, 3);
    // Never zero: that would destroy the file at its next unlink.
    let zero = set_nlink_of(&get(&kv, f).unwrap(), 0);
    let creds = Creds::root();
    let err = kv.transact(|tx| {
        let c = Ctx {
            creds: &creds,
            now: Timestamp::default(),
        };
        repair(tx, &c, &zero, true, 0)
    });
    assert!(matches!(err, Err(Error::Invalid(_))), "{err:?}");
}

#[test]
fn only_an_entry_naming_a_missing_inode_or_in_a_missing_directory_is_removed() {
    let (kv, d, f) = store_with_tree();
    let dentry = |ino| Dentry {
        ino,
        kind: if ino == 99 {
            FileKind::Dir
        } else {
            FileKind::File
        },
    };
    run(&kv, |tx, _| {
        store::put_dentry(tx, d, "ghost", dentry(99))?;
        store::put_dentry(tx, 4242, "in-nowhere", dentry(f))
    });
    let live = FsckFix::RemoveEntry {
        parent: d,
        name: "f".into(),
        ino: f,
    };
    assert!(matches!(fix(&kv, &live, true), FixOutcome::Changed(_)));
    let wrong_ino = FsckFix::RemoveEntry {
        parent: d,
        name: "ghost".into(),
        ino: 98,
    };
    assert!(matches!(fix(&kv, &wrong_ino, true), FixOutcome::Changed(_)));
    for (parent, name, ino) in [(d, "ghost", 99), (4242, "in-nowhere", f)] {
        let fx = FsckFix::RemoveEntry {
            parent,
            name: name.into(),
            ino,
        };
        assert!(matches!(fix(&kv, &fx, true), FixOutcome::Applies(_)));
        assert_eq!(run(&kv, |tx, _| store::dentry(tx, parent, name)), None);
        assert!(matches!(fix(&kv, &fx, true), FixOutcome::Changed(_)));
    }
    assert!(run(&kv, |tx, _| store::dentry(tx, d, "f")).is_some());
}

#[test]
fn unreachable_inodes_go_to_lost_found_unless_open() {
    let (kv, d, f) = store_with_tree();
    // Both lose their entries behind the MDS's back; a third is an open orphan.
    run(&kv, |tx, c| {
        tx.clear(&schema::dentry(d, "f"));
        tx.clear(&schema::dentry(ROOT_INO, "d"));
        let session = open::open_session(tx, "t", 0, 60_000)?;
        namespace::create_entry(tx, c, ROOT_INO, "o", node(30, FileKind::File))?;
        open::open(tx, c, session, 30, libc::O_RDONLY, false)?;
        namespace::unlink(tx, c, ROOT_INO, "o")
    });
    let orphan = get(&kv, 30).unwrap();
    let held = FsckFix::Reattach {
        ino: 30,
        ctime: orphan.attr.ctime,
    };
    assert!(matches!(fix(&kv, &held, true), FixOutcome::Changed(_)));

    let root_links = get(&kv, ROOT_INO).unwrap().attr.nlink;
    let file = get(&kv, f).unwrap();
    let stale = FsckFix::Reattach {
        ino: f,
        ctime: Timestamp::default(),
    };
    assert!(matches!(fix(&kv, &stale, true), FixOutcome::Changed(_)));
    let back = FsckFix::Reattach {
        ino: f,
        ctime: file.attr.ctime,
    };
    assert!(matches!(fix(&kv, &back, false), FixOutcome::Applies(_)));
    assert_eq!(
        run(&kv, |tx, _| store::dentry(tx, ROOT_INO, LOST_FOUND)),
        None
    );
    assert!(matches!(fix(&kv, &back, true), FixOutcome::Applies(_)));
    let lf = run(&kv, |tx, _| store::dentry(tx, ROOT_INO, LOST_FOUND)).unwrap();
    assert_eq!((lf.ino, lf.kind), (500, FileKind::Dir));
    let entry = run(&kv, |tx, _| store::dentry(tx, 500, &format!("#{f}"))).unwrap();
    assert_eq!(entry.ino, f);
    assert_eq!(get(&kv, f).unwrap().attr.nlink, 1);
    assert_eq!(get(&kv, ROOT_INO).unwrap().attr.nlink, root_links + 1);
    assert_eq!(get(&kv, 500).unwrap().attr.perm & 0o7777, LOST_FOUND_PERM);

    // A directory: lost+found (made once) becomes its parent and counts its "..".
    let dir = get(&kv, d).unwrap();
    let fx = FsckFix::Reattach {
        ino: d,
        ctime: dir.attr.ctime,
    };
    assert!(matches!(fix(&kv, &fx, true), FixOutcome::Applies(_)));
    assert_eq!(get(&kv, d).unwrap().parent, 500);
    assert_eq!(get(&kv, 500).unwrap().attr.nlink, 3);
    assert_eq!(get(&kv, d).unwrap().attr.nlink, 2);
}

#[test]
fn the_stale_index_is_fixed_only_where_it_disagrees_with_the_layout() {
    let (kv, _, f) = store_with_tree();
    let add = FsckFix::IndexStale { ino: f };
    let drop = FsckFix::UnindexStale { ino: f };
    // No stale copy, not indexed: nothing to do either way.
    assert!(matches!(fix(&kv, &add, true), FixOutcome::Changed(_)));
    assert!(matches!(fix(&kv, &drop, true), FixOutcome::Changed(_)));
    // Stale slots but no index entry (written behind the MDS's back).
    run(&kv, |tx, _| {
        let mut i = store::inode(tx, f)?;
        let l = i.attr.layout.as_mut().unwrap();
        l.stale = vec![0];
        store::put_inode(tx, &i)
    });
    assert!(matches!(fix(&kv, &drop, true), FixOutcome::Changed(_)));
    assert!(matches!(fix(&kv, &add, true), FixOutcome::Applies(_)));
    assert_eq!(run(&kv, |tx, _| stale_index(tx, 0, 10)).0, vec![f]);
    // An index entry for an inode that does not exist.
    run(&kv, |tx, _| {
        tx.set(&schema::stale(4040), &[]);
        Ok(())
    });
    let gone = FsckFix::UnindexStale { ino: 4040 };
    assert!(matches!(fix(&kv, &gone, false), FixOutcome::Applies(_)));
    assert!(matches!(fix(&kv, &gone, true), FixOutcome::Applies(_)));
    assert_eq!(run(&kv, |tx, _| stale_index(tx, 0, 10)).0, vec![f]);
}

#[test]
fn kept_bytes_and_the_inline_mark_are_made_to_agree() {
    let (kv, _, f) = store_with_tree();
    let mend = FsckFix::MendKeptBytes { ino: f };
    let kept = |kv: &Kv| run(kv, |tx, _| kept_bytes(tx, 0, 10)).0;
    let marked = |kv: &Kv| get(kv, f).unwrap().attr.inline;
    // A plain file without kept bytes: nothing to do.
    assert!(matches!(fix(&kv, &mend, true), FixOutcome::Changed(_)));
    // Marked, with its bytes: they agree.
    run(&kv, |tx, _| {
        let mut i = store::inode(tx, f)?;
        i.attr.inline = true;
        tx.set(&schema::inline(f), b"hello");
        store::put_inode(tx, &i)
    });
    assert!(matches!(fix(&kv, &mend, true), FixOutcome::Changed(_)));
    assert_eq!(kept(&kv), vec![f]);
    // Marked, its bytes lost: a dry run changes nothing, the repair unmarks it.
    run(&kv, |tx, _| {
        tx.clear(&schema::inline(f));
        Ok(())
    });
    assert!(matches!(fix(&kv, &mend, false), FixOutcome::Applies(_)));
    assert!(marked(&kv));
    assert!(matches!(fix(&kv, &mend, true), FixOutcome::Applies(_)));
    assert!(!marked(&kv));
    // Bytes kept for an unmarked file and for an inode that does not exist: dropped.
    run(&kv, |tx, _| {
        tx.set(&schema::inline(f), b"stray");
        tx.set(&schema::inline(4040), b"gone");
        Ok(())
    });
    assert_eq!(kept(&kv), vec![f, 4040]);
    assert!(matches!(fix(&kv, &mend, true), FixOutcome::Applies(_)));
    let gone = FsckFix::MendKeptBytes { ino: 4040 };
    assert!(matches!(fix(&kv, &gone, true), FixOutcome::Applies(_)));
    assert!(kept(&kv).is_empty());
    assert!(!marked(&kv));
    assert!(matches!(fix(&kv, &gone, true), FixOutcome::Changed(_)));
}
