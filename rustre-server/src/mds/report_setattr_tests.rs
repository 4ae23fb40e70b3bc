//! `MdsOp::ReportAndSetAttr`, over an in-process cluster (the harness of `tests`): a size
//! report and the attribute changes a client kept until close, in one call, leave exactly
//! what a `ReportSize` and then a `SetAttr` leave; a change the rules refuse is answered
//! as the `SetAttr` would have been, with the report applied all the same.

use rustre_proto::msg::mds::{MdsOp, MdsResponse, SetAttr, TimeSet};
use rustre_proto::msg::{Attr, Creds, Timestamp};
use rustre_proto::Error;

use super::tests::TestCluster;

const USER: u32 = 1000;

fn user() -> Creds {
    Creds {
        uid: USER,
        gid: USER,
        groups: vec![],
    }
}

/// An explicit time well before any report's.
fn old_time() -> Timestamp {
    Timestamp {
        sec: 981_173_106,
        nsec: 0,
    }
}

/// File `name`, set up by root as `perm`, owned by `uid`:`uid`.
async fn file(t: &TestCluster, name: &str, perm: u32, uid: u32) -> Attr {
    let a = t.create(name, 1, 1).await.unwrap();
    let set = SetAttr {
        perm: Some(perm),
        uid: Some(uid),
        gid: Some(uid),
        ..SetAttr::default()
    };
    t.attr(MdsOp::SetAttr { ino: a.ino, set }).await.unwrap()
}

/// The report a writer makes of 10 bytes written now.
fn report(a: &Attr) -> (u64, Timestamp, u64) {
    (10, rustre_proto::host::now(), a.truncate_version)
}

/// `ReportSize` then `SetAttr`, as `creds`: the attributes after both, or the refusal.
async fn two_calls(t: &TestCluster, creds: Creds, a: &Attr, set: SetAttr) -> (Attr, Option<Error>) {
    let (size, mtime, truncate_version) = report(a);
    let op = MdsOp::ReportSize {
        ino: a.ino,
        size,
        mtime,
        truncate_version,
        written: Default::default(),
        allocated: Vec::new(),
    };
    let reported = match t.call_as(creds.clone(), t.next_seq(), op).await.unwrap() {
        MdsResponse::Attr(a) => a,
        r => panic!("{r:?}"),
    };
    let op = MdsOp::SetAttr { ino: a.ino, set };
    match t.call_as(creds, t.next_seq(), op).await {
        Ok(MdsResponse::Attr(a)) => (a, None),
        Err(e) => (reported, Some(e)),
        r => panic!("{r:?}"),
    }
}

fn one_call_op(a: &Attr, set: SetAttr) -> MdsOp {
    let (size, mtime, truncate_version) = report(a);
    MdsOp::ReportAndSetAttr {
        ino: a.ino,
        size,
        mtime,
        truncate_version,
        written: Default::default(),
        allocated: Vec::new(),
        set,
    }
}

/// `ReportAndSetAttr` as `creds` under request number `seq`.
async fn one_call(t: &TestCluster, creds: Creds, seq: u64, op: MdsOp) -> (Attr, Option<Error>) {
    match t.call_as(creds, seq, op).await.unwrap() {
        MdsResponse::ReportedSetAttr { attr, refused } => (attr, refused),
        r => panic!("{r:?}"),
    }
}

/// What the two ways must agree on (the ctimes are the MDS's clock at each call).
fn seen(a: &Attr) -> (u32, u32, u32, u64, Timestamp, Timestamp) {
    (a.perm, a.uid, a.gid, a.size, a.atime, a.mtime)
}

#[tokio::test]
async fn one_call_leaves_what_a_report_then_a_setattr_leave() {
    let t = TestCluster::start(1).await;
    // The owner writes a setuid file, then sets times and a setgid mode as tar would: the
    // write clears setuid, the explicit mtime wins over the report's.
    let set = SetAttr {
        perm: Some(0o2750),
        uid: Some(USER),
        gid: Some(USER),
        atime: Some(TimeSet::At(old_time())),
        mtime: Some(TimeSet::At(old_time())),
        ..SetAttr::default()
    };
    let a = file(&t, "two", 0o4755, USER).await;
    let (two, refused) = two_calls(&t, user(), &a, set.clone()).await;
    assert_eq!(refused, None);
    let b = file(&t, "one", 0o4755, USER).await;
    let (one, refused) = one_call(&t, user(), t.next_seq(), one_call_op(&b, set)).await;
    assert_eq!(refused, None);
    assert_eq!(seen(&one), seen(&two));
    assert_eq!(
        (one.perm, one.size, one.mtime),
        (0o2750, 10, old_time()),
        "setuid cleared by the write, the mode and times set after it"
    );
    let stored = t.attr(MdsOp::GetAttr { ino: b.ino }).await.unwrap();
    assert_eq!(seen(&stored), seen(&one));
}

#[tokio::test]
async fn a_refused_change_is_refused_and_the_report_lands() {
    let t = TestCluster::start(1).await;
    // Another client gave the file to root meanwhile: the writer's chmod is no longer its.
    let set = SetAttr {
        perm: Some(0o600),
        ..SetAttr::default()
    };
    let a = file(&t, "two", 0o666, 0).await;
    let (two, two_refused) = two_calls(&t, user(), &a, set.clone()).await;
    assert_eq!(two_refused, Some(Error::NotPermitted));
    let b = file(&t, "one", 0o666, 0).await;
    let seq = t.next_seq();
    let op = one_call_op(&b, set);
    let (one, refused) = one_call(&t, user(), seq, op.clone()).await;
    assert_eq!(refused, Some(Error::NotPermitted));
    // The times are each report's own (its writer's clock).
    let owner_mode_size = |a: &Attr| (a.perm, a.uid, a.gid, a.size);
    assert_eq!(owner_mode_size(&one), owner_mode_size(&two));
    assert_eq!((one.perm, one.size), (0o666, 10));
    let MdsOp::ReportAndSetAttr { mtime, .. } = &op else {
        unreachable!()
    };
    assert_eq!(one.mtime, *mtime, "the report's mtime");
    let stored = t.attr(MdsOp::GetAttr { ino: b.ino }).await.unwrap();
    assert_eq!(seen(&stored), seen(&one), "the report is stored");
    // A retry of the same request (a lost answer) gets the same answer.
    let (again, refused) = one_call(&t, user(), seq, op).await;
    assert_eq!(
        (seen(&again), refused),
        (seen(&one), Some(Error::NotPermitted))
    );
}

#[tokio::test]
async fn a_size_change_is_not_taken_with_a_report() {
    let t = TestCluster::start(1).await;
    let a = file(&t, "f", 0o644, 0).await;
    let set = SetAttr {
        size: Some(3),
        ..SetAttr::default()
    };
    let r = t.call(one_call_op(&a, set)).await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    let stored = t.attr(MdsOp::GetAttr { ino: a.ino }).await.unwrap();
    assert_eq!(stored.size, 0, "nothing applied, the report neither");
}
