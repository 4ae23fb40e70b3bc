//! Privileges a change of data costs a file, over an in-process cluster (the harness of
//! `tests`): a size report, a truncate or an O_TRUNC open clears setuid (and setgid with
//! group-execute) for a non-root writer and removes `security.capability` for anyone;
//! whoever may write the file may remove its capability, as the kernel does before a write.

use rustre_proto::msg::mds::{MdsOp, MdsResponse, SetAttr};
use rustre_proto::msg::{Attr, Creds};
use rustre_proto::Error;

use super::attr::CAPABILITY_XATTR;
use super::tests::TestCluster;

fn user(uid: u32) -> Creds {
    Creds {
        uid,
        gid: uid,
        groups: vec![],
    }
}

/// A file `name` of mode 06777 carrying a capability, set up by root.
async fn setid_file(t: &TestCluster, name: &str) -> Attr {
    let a = t.create(name, 1, 1).await.unwrap();
    let set = SetAttr {
        perm: Some(0o6777),
        uid: None,
        gid: None,
        size: None,
        atime: None,
        mtime: None,
        via_write_handle: false,
    };
    t.attr(MdsOp::SetAttr { ino: a.ino, set }).await.unwrap();
    let op = MdsOp::SetXattr {
        ino: a.ino,
        name: CAPABILITY_XATTR.into(),
        value: vec![1, 2, 3],
        flags: 0,
    };
    t.call(op).await.unwrap();
    a
}

/// The capability of `ino`, if it has one (asked as root).
async fn capability(t: &TestCluster, ino: u64) -> Option<Vec<u8>> {
    let op = MdsOp::GetXattr {
        ino,
        name: CAPABILITY_XATTR.into(),
    };
    match t.call(op).await {
        Ok(MdsResponse::Xattr(v)) => Some(v),
        Err(Error::NoData) => None,
        r => panic!("{r:?}"),
    }
}

async fn report_as(t: &TestCluster, creds: Creds, a: &Attr) -> Attr {
    let op = MdsOp::ReportSize {
        ino: a.ino,
        size: 10,
        mtime: a.mtime,
        truncate_version: a.truncate_version,
        written: Default::default(),
        allocated: Vec::new(),
    };
    match t.call_as(creds, t.next_seq(), op).await.unwrap() {
        MdsResponse::Attr(a) => a,
        r => panic!("{r:?}"),
    }
}

#[tokio::test]
async fn a_size_report_clears_setid_for_users_and_the_capability_for_all() {
    let t = TestCluster::start(1).await;
    let a = setid_file(&t, "user").await;
    assert!(capability(&t, a.ino).await.is_some());
    let b = report_as(&t, user(1000), &a).await;
    assert_eq!(b.perm, 0o777);
    assert_eq!(capability(&t, a.ino).await, None);

    let a = setid_file(&t, "root").await;
    let b = report_as(&t, Creds::root(), &a).await;
    assert_eq!(b.perm, 0o6777, "root keeps the setid bits");
    assert_eq!(capability(&t, a.ino).await, None, "but not the capability");
}

#[tokio::test]
async fn a_truncate_by_root_removes_the_capability() {
    let t = TestCluster::start(1).await;
    let a = setid_file(&t, "f").await;
    let set = SetAttr {
        perm: None,
        uid: None,
        gid: None,
        size: Some(0),
        atime: None,
        mtime: None,
        via_write_handle: false,
    };
    let b = t.attr(MdsOp::SetAttr { ino: a.ino, set }).await.unwrap();
    assert_eq!(b.perm, 0o6777);
    assert_eq!(capability(&t, a.ino).await, None);
}

#[tokio::test]
async fn a_writer_may_remove_the_capability_and_nothing_else() {
    let t = TestCluster::start(1).await;
    let a = setid_file(&t, "f").await;
    let remove = |name: &str| MdsOp::RemoveXattr {
        ino: a.ino,
        name: name.into(),
    };
    // Another security.* name stays root's.
    let op = MdsOp::SetXattr {
        ino: a.ino,
        name: "security.other".into(),
        value: vec![1],
        flags: 0,
    };
    t.call(op).await.unwrap();
    let r = t
        .call_as(user(7), t.next_seq(), remove("security.other"))
        .await;
    assert_eq!(r.err(), Some(Error::NotPermitted));
    // Mode 0644 for the next: user 7 may not write, so may not remove the capability.
    let b = t.create("ro", 1, 1).await.unwrap();
    let op = MdsOp::SetXattr {
        ino: b.ino,
        name: CAPABILITY_XATTR.into(),
        value: vec![1],
        flags: 0,
    };
    t.call(op).await.unwrap();
    let op = MdsOp::RemoveXattr {
        ino: b.ino,
        name: CAPABILITY_XATTR.into(),
    };
    let r = t.call_as(user(7), t.next_seq(), op).await;
    assert_eq!(r.err(), Some(Error::NotPermitted));
    assert!(capability(&t, b.ino).await.is_some());
    // Mode 06777: user 7 may write, so may remove it.
    t.call_as(user(7), t.next_seq(), remove(CAPABILITY_XATTR))
        .await
        .unwrap();
    assert_eq!(capability(&t, a.ino).await, None);
}

#[tokio::test]
async fn an_o_trunc_open_removes_the_capability() {
    let t = TestCluster::start(1).await;
    let a = t.create("f", 1, 1).await.unwrap();
    let a = report_as(&t, Creds::root(), &a).await;
    assert_eq!(a.size, 10);
    let op = MdsOp::SetXattr {
        ino: a.ino,
        name: CAPABILITY_XATTR.into(),
        value: vec![1],
        flags: 0,
    };
    t.call(op).await.unwrap();
    let op = MdsOp::Open {
        ino: a.ino,
        flags: libc::O_WRONLY | libc::O_TRUNC,
    };
    assert_eq!(t.attr(op).await.unwrap().size, 0);
    assert_eq!(capability(&t, a.ino).await, None);
}
