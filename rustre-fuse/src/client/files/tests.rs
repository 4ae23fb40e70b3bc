//! Tests of the open-file table and the per-inode size state.

use super::*;

#[test]
fn writes_stop_at_the_largest_size() {
    assert_eq!(writable_len(0, 10, 100), Ok(10));
    assert_eq!(writable_len(95, 10, 100), Ok(5), "cut short at the limit");
    assert_eq!(writable_len(100, 1, 100), Err(Error::TooBig));
    assert_eq!(writable_len(101, 1, 100), Err(Error::TooBig));
    assert_eq!(writable_len(100, 0, 100), Ok(0));
    assert_eq!(writable_len(101, 0, 100), Err(Error::TooBig));
    assert_eq!(writable_len(u64::MAX, 1, u64::MAX), Err(Error::TooBig));
}

fn file_attr(ino: Ino, size: u64, tv: u64) -> Attr {
    Attr {
        ino,
        kind: FileKind::File,
        perm: 0o6755,
        nlink: 1,
        uid: 1,
        gid: 1,
        size,
        atime: Timestamp::default(),
        mtime: Timestamp { sec: 10, nsec: 0 },
        ctime: Timestamp { sec: 10, nsec: 0 },
        rdev: 0,
        layout: None,
        truncate_version: tv,
        acl: None,
        project: 0,
        inline: false,
    }
}

#[test]
fn writes_merge_into_answers_until_a_truncate() {
    let files = Files::default();
    let a = file_attr(7, 100, 3);
    let (fh, keep) = files.register(&a, libc::O_RDWR, &Creds::root(), 1).unwrap();
    assert!(!keep, "first open never keeps cached pages");
    let writer = Creds {
        uid: 5,
        gid: 5,
        groups: vec![],
    };
    files.wrote(7, 4096, Timestamp { sec: 20, nsec: 0 }, &writer);
    let mut b = file_attr(7, 100, 3);
    files.merge(&mut b);
    assert_eq!(b.size, 4096);
    assert_eq!(b.mtime.sec, 20);
    assert_eq!(b.perm, 0o0755, "a non-root write clears setuid and setgid");

    // A truncate elsewhere voids what this client knew.
    let mut c = file_attr(7, 10, 4);
    files.merge(&mut c);
    assert_eq!(c.size, 10);
    assert!(files.pending_report(7).is_none());

    let (_, last) = files.unregister(fh).unwrap();
    assert!(last);
    assert!(files.forget_inode(7));
    let mut d = file_attr(7, 1, 4);
    files.merge(&mut d);
    assert_eq!(d.size, 1, "closed files are not merged");
}

#[test]
fn a_replicated_layout_older_than_the_ttl_is_checked_before_reading() {
    let files = Files::default();
    let mut a = file_attr(11, 0, 0);
    a.layout = Some(Layout {
        stripe_size: 4096,
        osts: vec![0, 1],
        replicas: 2,
        stale: vec![],
        version: 1,
        written: Default::default(),
        allocated: Vec::new(),
    });
    files
        .register(&a, libc::O_RDONLY, &Creds::root(), 1)
        .unwrap();
    files.set_layout_ttl(std::time::Duration::from_secs(3600));
    assert!(!files.layout_needs_check(11), "fresh from the MDS");
    files.set_layout_ttl(std::time::Duration::ZERO);
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(files.layout_needs_check(11), "older than the TTL");
    let mut answer = a.clone();
    files.merge(&mut answer);
    files.set_layout_ttl(std::time::Duration::from_secs(3600));
    assert!(
        !files.layout_needs_check(11),
        "an attribute answer renews it"
    );
    // Unreplicated files have no copy that could turn stale.
    let mut b = file_attr(12, 0, 0);
    b.layout = Some(Layout::striped(4096, vec![0]));
    files
        .register(&b, libc::O_RDONLY, &Creds::root(), 1)
        .unwrap();
    files.set_layout_ttl(std::time::Duration::ZERO);
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert!(!files.layout_needs_check(12));
}

#[test]
fn a_report_racing_a_write_leaves_the_state_dirty() {
    let files = Files::default();
    let a = file_attr(9, 0, 0);
    files
        .register(&a, libc::O_WRONLY, &Creds::root(), 1)
        .unwrap();
    files.wrote(9, 10, rustre_proto::host::now(), &Creds::root());
    let r = files.pending_report(9).unwrap();
    files.wrote(9, 20, rustre_proto::host::now(), &Creds::root());
    files.reported(9, &r, &file_attr(9, 10, 0));
    assert_eq!(files.pending_report(9).unwrap().size, 20);
}

/// Stripes written go with the next report and leave once it succeeded; a truncate
/// elsewhere voids them; written stripes the MDS answers (of the same layout version)
/// reach every later read.
#[test]
fn written_stripes_are_reported_once_and_learnt_from_answers() {
    let files = Files::default();
    let mut a = file_attr(9, 0, 0);
    a.layout = Some(Layout::striped(4096, vec![0, 1, 2]));
    let given = a.layout.clone().unwrap();
    files
        .register(&a, libc::O_WRONLY, &Creds::root(), 1)
        .unwrap();
    files.wrote_stripes(9, &[0, 2]);
    let r = files.pending_report(9).expect("stripes to report");
    assert_eq!(r.written.iter().collect::<Vec<_>>(), [0, 2]);
    files.wrote_stripes(9, &[1]);
    let mut answer = a.clone();
    answer.layout.as_mut().unwrap().written = r.written;
    files.reported(9, &r, &answer);
    files.merge(&mut answer);
    let left = files.pending_report(9).expect("stripe 1 came after");
    assert_eq!(left.written.iter().collect::<Vec<_>>(), [1]);
    let newest = files.newest_layout(9, &given);
    assert_eq!(newest.written.iter().collect::<Vec<_>>(), [0, 2]);
    files.merge(&mut file_attr(9, 0, 1));
    assert!(files.pending_report(9).is_none(), "voided by a truncate");
}

#[test]
fn unchanged_files_keep_their_cache() {
    let files = Files::default();
    let a = file_attr(3, 50, 0);
    let (fh, _) = files
        .register(&a, libc::O_RDONLY, &Creds::root(), 1)
        .unwrap();
    files.unregister(fh).unwrap();
    let (fh, keep) = files
        .register(&a, libc::O_RDONLY, &Creds::root(), 1)
        .unwrap();
    assert!(keep);
    files.unregister(fh).unwrap();
    let changed = file_attr(3, 51, 0);
    let (_, keep) = files
        .register(&changed, libc::O_RDONLY, &Creds::root(), 1)
        .unwrap();
    assert!(!keep);
}

/// FUSE sends RELEASE asynchronously: the next OPEN (and its writes) can come while the
/// release of the previous handle still awaits its reports. Its late "last close" must
/// leave the new handle's state alone.
#[test]
fn a_release_finishing_after_the_next_open_keeps_its_state() {
    let files = Files::default();
    let (fh1, _) = files
        .register(&file_attr(5, 0, 0), libc::O_WRONLY, &Creds::root(), 1)
        .unwrap();
    files.wrote(5, 3, rustre_proto::host::now(), &Creds::root());
    // The release of fh1 learns it is the last handle, then awaits the MDS...
    let (_, last) = files.unregister(fh1).unwrap();
    assert!(last);
    // ... while the file is opened again for appending and written.
    let (fh2, _) = files
        .register(
            &file_attr(5, 3, 0),
            libc::O_WRONLY | libc::O_APPEND,
            &Creds::root(),
            1,
        )
        .unwrap();
    files.wrote(5, 13, rustre_proto::host::now(), &Creds::root());
    // The release of fh1 finishes.
    assert!(!files.forget_inode(5), "a handle is open again");
    assert_eq!(files.size(5), 13);
    assert_eq!(files.pending_report(5).expect("still dirty").size, 13);
    let (_, last) = files.unregister(fh2).unwrap();
    assert!(last);
    assert!(files.forget_inode(5));
    assert_eq!(files.size(5), 0, "forgotten after the real last close");
}

/// A stale mark (a newer layout version) reaches every later read and write of the
/// inode, whatever older layout a handle or a write-back buffer still holds; an older
/// answer never undoes it.
#[test]
fn the_newest_layout_wins() {
    let files = Files::default();
    let v0 = Layout {
        stripe_size: 4096,
        osts: vec![0, 1],
        replicas: 2,
        stale: vec![],
        version: 4,
        written: Default::default(),
        allocated: Vec::new(),
    };
    let mut a = file_attr(11, 0, 0);
    a.layout = Some(v0.clone());
    let (fh, _) = files.register(&a, libc::O_RDWR, &Creds::root(), 1).unwrap();
    assert_eq!(files.newest_layout(11, &v0), v0);

    let v1 = Layout {
        stale: vec![1],
        version: 5,
        ..v0.clone()
    };
    let mut marked = file_attr(11, 0, 0);
    marked.layout = Some(v1.clone());
    files.merge(&mut marked);
    assert_eq!(files.newest_layout(11, &v0), v1);
    assert_eq!(files.layout(11), Some(v1.clone()));

    // An older answer (or a second open with an old attr) keeps the newer layout.
    let mut old = file_attr(11, 0, 0);
    old.layout = Some(v0.clone());
    files.merge(&mut old);
    files
        .register(&old, libc::O_RDONLY, &Creds::root(), 1)
        .unwrap();
    assert_eq!(files.newest_layout(11, &v0), v1);
    // A caller holding something newer than the state keeps its own.
    let v2 = Layout {
        stale: vec![],
        version: 6,
        ..v0.clone()
    };
    assert_eq!(files.newest_layout(11, &v2), v2);
    // Inodes not open here have no state: the caller's layout is used.
    assert_eq!(files.newest_layout(12, &v0), v0);
    files.unregister(fh).unwrap();
}

#[test]
fn an_expired_session_evicts_its_handles_until_a_new_open() {
    let files = Files::default();
    let a = file_attr(9, 0, 0);
    let (old, _) = files.register(&a, libc::O_RDWR, &Creds::root(), 1).unwrap();
    let (other, _) = files
        .register(&file_attr(10, 0, 0), libc::O_RDWR, &Creds::root(), 2)
        .unwrap();
    files.wrote(9, 4096, rustre_proto::host::now(), &Creds::root());
    assert_eq!(files.evict_session(1), vec![9]);
    assert!(matches!(files.handle(old), Err(Error::Io(_))));
    assert!(
        files.handle(other).is_ok(),
        "another session's handle stays"
    );
    assert!(files.is_evicted(9) && !files.is_evicted(10));
    assert!(
        files.pending_report(9).is_none(),
        "an evicted size is never reported"
    );
    assert!(files.evict_session(1).is_empty(), "evicted once");
    let (new, _) = files.register(&a, libc::O_RDWR, &Creds::root(), 2).unwrap();
    assert!(files.handle(new).is_ok() && !files.is_evicted(9));
    assert!(files.handle(old).is_err(), "the old handle stays evicted");
    let (gone, last) = files.unregister(old).unwrap();
    assert_eq!((gone.ino, last), (9, false));
}

#[test]
fn a_late_smaller_allocation_answer_does_not_undo_a_larger_one() {
    let files = Files::default();
    let a = file_attr(21, 0, 0);
    files.register(&a, libc::O_RDWR, &Creds::root(), 1).unwrap();
    files.wrote(21, 8192, a.mtime, &Creds::root());
    // Two writes to stripe 0 sent together: the second-written answers first (8 KiB held),
    // the first one's answer (4 KiB held then) arrives after it.
    files.note_allocated(21, 0, 8192);
    files.note_allocated(21, 0, 4096);
    let r = files.pending_report(21).expect("dirty");
    assert_eq!(r.allocated, vec![(0, 8192)]);
    // Reported; a late smaller answer is no news, a larger one is.
    files.reported(21, &r, &a);
    files.note_allocated(21, 0, 4096);
    assert!(files
        .pending_report(21)
        .is_none_or(|r| r.allocated.is_empty()));
    files.wrote(21, 12288, a.mtime, &Creds::root());
    files.note_allocated(21, 0, 12288);
    assert_eq!(
        files.pending_report(21).unwrap().allocated,
        vec![(0, 12288)]
    );
}

#[test]
fn roots_changes_are_kept_only_while_its_creates_come_back_owned_by_root() {
    let files = Files::default();
    let mut a = file_attr(11, 0, 0);
    a.uid = 0;
    a.perm = 0o600;
    let root = Creds::root();
    files.register(&a, libc::O_WRONLY, &root, 1).unwrap();
    let chmod = rustre_proto::msg::mds::SetAttr {
        perm: Some(0o644),
        ..Default::default()
    };
    let now = Timestamp { sec: 20, nsec: 0 };
    assert!(
        files.keep_setattr(11, &root, &a, &chmod, now).is_none(),
        "nothing known of squashing yet"
    );
    files.note_new_inode(&root, &a);
    let shown = files.keep_setattr(11, &root, &a, &chmod, now).unwrap();
    assert_eq!(shown.perm, 0o644);
    let mut merged = a.clone();
    files.merge(&mut merged);
    assert_eq!(merged.perm, 0o644, "answers show the kept mode");
    let mut squashed = a.clone();
    squashed.uid = 65534;
    files.note_new_inode(&root, &squashed);
    assert!(files.keep_setattr(11, &root, &a, &chmod, now).is_none());
    // A reader's handle alone keeps nothing.
    let r = file_attr(12, 0, 0);
    files.register(&r, libc::O_RDONLY, &root, 1).unwrap();
    files.note_new_inode(&root, &a);
    let user = Creds {
        uid: 1,
        gid: 1,
        groups: vec![1],
    };
    assert!(files.keep_setattr(12, &user, &r, &chmod, now).is_none());
}
