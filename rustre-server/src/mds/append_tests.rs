//! `ReserveAppend` over an in-process cluster (the harness of `tests`): concurrent
//! reservations never overlap and leave no gap, a retried request gets its recorded range,
//! the caller's unreported size counts only in the current truncate version, and only a
//! writer may reserve; an append lease is taken back when another session appends, or
//! expires, and the other's range never overlaps what the holder may have written.

use std::sync::Arc;

use bytes::Bytes;
use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse, SetAttr};
use rustre_proto::msg::{Attr, Creds};
use rustre_proto::Error;

use super::append::{APPEND_LEASE_BYTES, APPEND_LEASE_MS};
use super::tests::TestCluster;

/// Reservations sent at once by the concurrency test.
const CONCURRENT_RESERVATIONS: u64 = 64;

fn reserve(a: &Attr, len: u64, known_size: u64) -> MdsOp {
    MdsOp::ReserveAppend {
        ino: a.ino,
        len,
        known_size,
        truncate_version: a.truncate_version,
        want_lease: false,
    }
}

/// `(offset, len, size after)` of a `Reserved` answer.
fn reserved(r: Result<MdsResponse, Error>) -> Result<(u64, u64, u64), Error> {
    match r? {
        MdsResponse::Reserved {
            offset,
            len,
            attr,
            retry: false,
            ..
        } => Ok((offset, len, attr.size)),
        other => panic!("{other:?}"),
    }
}

/// A new file `name`, opened for writing in the test's session.
async fn writable(t: &TestCluster, name: &str) -> Attr {
    let a = t.create(name, 1, 1).await.unwrap();
    t.attr(MdsOp::Open {
        ino: a.ino,
        flags: libc::O_WRONLY | libc::O_APPEND,
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn concurrent_reservations_tile_the_file_and_a_retry_gets_the_same_range() {
    let t = Arc::new(TestCluster::start(1).await);
    let a = writable(&t, "log").await;

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..CONCURRENT_RESERVATIONS {
        let (t, op) = (t.clone(), reserve(&a, 10 + i, 0));
        tasks.spawn(async move { (i, reserved(t.call(op).await).unwrap()) });
    }
    let mut ranges = Vec::new();
    while let Some(r) = tasks.join_next().await {
        let (i, (offset, len, size)) = r.unwrap();
        assert_eq!(len, 10 + i, "nothing near the size limit: all granted");
        assert!(size >= offset + len);
        ranges.push((offset, len));
    }
    ranges.sort_unstable();
    let mut end = 0;
    for (offset, len) in &ranges {
        assert_eq!(*offset, end, "overlap or gap in {ranges:?}");
        end += len;
    }
    let total: u64 = (0..CONCURRENT_RESERVATIONS).map(|i| 10 + i).sum();
    assert_eq!(end, total);
    assert_eq!(
        t.attr(MdsOp::GetAttr { ino: a.ino }).await.unwrap().size,
        total
    );

    // A retry (same request id) answers the recorded range and moves nothing.
    let seq = t.next_seq();
    let op = reserve(&a, 7, 0);
    let first = reserved(t.call_as(Creds::root(), seq, op.clone()).await).unwrap();
    assert_eq!(first, (total, 7, total + 7));
    let again = reserved(t.call_as(Creds::root(), seq, op.clone()).await).unwrap();
    assert_eq!(again, first);
    // A new request gets the next range.
    assert_eq!(
        reserved(t.call(op).await).unwrap(),
        (total + 7, 7, total + 14)
    );
}

#[tokio::test]
async fn the_callers_unreported_size_counts_only_in_the_current_truncate_version() {
    let t = TestCluster::start(1).await;
    let a = writable(&t, "log").await;
    // The caller wrote up to 100 and has not reported it: the append goes after.
    assert_eq!(
        reserved(t.call(reserve(&a, 5, 100)).await).unwrap(),
        (100, 5, 105)
    );
    // A smaller known size does not move the end back.
    assert_eq!(
        reserved(t.call(reserve(&a, 5, 50)).await).unwrap(),
        (105, 5, 110)
    );
    // After a truncate, a size known from before it is void.
    let set = SetAttr {
        size: Some(3),
        ..SetAttr::default()
    };
    let cut = t.attr(MdsOp::SetAttr { ino: a.ino, set }).await.unwrap();
    assert_eq!(cut.truncate_version, a.truncate_version + 1);
    assert_eq!(
        reserved(t.call(reserve(&a, 5, 110)).await).unwrap(),
        (3, 5, 8)
    );
    assert_eq!(
        reserved(t.call(reserve(&cut, 5, 20)).await).unwrap(),
        (20, 5, 25)
    );
}

#[tokio::test]
async fn only_a_writer_reserves_and_never_past_what_the_stripes_hold() {
    let t = TestCluster::start(1).await;
    let a = t.create("not-open", 1, 1).await.unwrap();
    assert!(matches!(
        reserved(t.call(reserve(&a, 5, 0)).await),
        Err(Error::Access)
    ));
    assert_eq!(t.attr(MdsOp::GetAttr { ino: a.ino }).await.unwrap().size, 0);
    let a = writable(&t, "big").await;
    let max = a.layout.as_ref().unwrap().max_file_size();
    // Cut short at the limit, then EFBIG.
    assert_eq!(
        reserved(t.call(reserve(&a, 10, max - 4)).await).unwrap(),
        (max - 4, 4, max)
    );
    assert!(matches!(
        reserved(t.call(reserve(&a, 10, 0)).await),
        Err(Error::TooBig)
    ));
    assert!(matches!(
        reserved(t.call(reserve(&a, 0, 0)).await),
        Err(Error::Invalid(_))
    ));
}

/// A call in session `session` (the harness's calls are all in its own session).
async fn call_in(t: &TestCluster, session: u64, op: MdsOp) -> Result<MdsResponse, Error> {
    let req = MdsRequest {
        creds: Creds::root(),
        session,
        seq: t.next_seq(),
        op,
    };
    let peer = t.cluster.mds_peers()[0].clone();
    Ok(peer.call(&req, Bytes::new()).await?.0)
}

/// A second session, holding `a` open for appending.
async fn other_writer(t: &TestCluster, a: &Attr) -> u64 {
    let open = MdsOp::OpenSession {
        client: "other".into(),
    };
    let id = match call_in(t, 0, open).await.unwrap() {
        MdsResponse::Session { id, .. } => id,
        other => panic!("{other:?}"),
    };
    let flags = libc::O_WRONLY | libc::O_APPEND;
    call_in(t, id, MdsOp::Open { ino: a.ino, flags })
        .await
        .unwrap();
    id
}

fn leased(a: &Attr, len: u64, known_size: u64) -> MdsOp {
    MdsOp::ReserveAppend {
        ino: a.ino,
        len,
        known_size,
        truncate_version: a.truncate_version,
        want_lease: true,
    }
}

#[tokio::test]
async fn a_lease_is_taken_back_when_another_session_appends() {
    let t = TestCluster::start(1).await;
    let a = writable(&t, "log").await;
    // The harness's session takes the end.
    match t.call(leased(&a, 10, 0)).await.unwrap() {
        MdsResponse::Reserved {
            offset: 0,
            len: 10,
            lease_ms,
            lease_limit,
            retry: false,
            ..
        } => {
            assert_eq!(
                (lease_ms, lease_limit),
                (APPEND_LEASE_MS, 10 + APPEND_LEASE_BYTES)
            );
        }
        other => panic!("{other:?}"),
    }
    // Another session must wait: nothing reserved, the size unmoved.
    let b = other_writer(&t, &a).await;
    for _ in 0..2 {
        match call_in(&t, b, leased(&a, 5, 0)).await.unwrap() {
            MdsResponse::Reserved {
                retry: true,
                len: 0,
                ..
            } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        t.attr(MdsOp::GetAttr { ino: a.ino }).await.unwrap().size,
        10
    );
    // The holder appended 30 more bytes under the lease and gives it back.
    let give = MdsOp::ReturnAppendLease {
        ino: a.ino,
        end: 40,
        truncate_version: a.truncate_version,
    };
    assert!(matches!(t.call(give).await.unwrap(), MdsResponse::Done));
    // The other lands after the holder's appends; the file is contended now: no lease.
    match call_in(&t, b, leased(&a, 5, 0)).await.unwrap() {
        MdsResponse::Reserved {
            offset: 40,
            len: 5,
            lease_ms: 0,
            retry: false,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(
        reserved(t.call(leased(&a, 1, 0)).await).unwrap(),
        (45, 1, 46),
        "no lease for the first holder either"
    );
}

#[tokio::test]
async fn an_expired_lease_puts_the_next_range_past_its_limit() {
    let t = TestCluster::start(1).await;
    let a = writable(&t, "log").await;
    let limit = match t.call(leased(&a, 10, 0)).await.unwrap() {
        MdsResponse::Reserved { lease_limit, .. } => lease_limit,
        other => panic!("{other:?}"),
    };
    assert!(limit > 10);
    tokio::time::sleep(std::time::Duration::from_millis(APPEND_LEASE_MS + 200)).await;
    // The holder never answered: the other session's bytes go where the holder could not
    // have written.
    let b = other_writer(&t, &a).await;
    match call_in(&t, b, leased(&a, 5, 0)).await.unwrap() {
        MdsResponse::Reserved {
            offset,
            len: 5,
            retry: false,
            ..
        } => assert_eq!(offset, limit),
        other => panic!("{other:?}"),
    }
    // A give-back of the lost lease changes nothing.
    let give = MdsOp::ReturnAppendLease {
        ino: a.ino,
        end: 20,
        truncate_version: a.truncate_version,
    };
    t.call(give).await.unwrap();
    assert_eq!(
        t.attr(MdsOp::GetAttr { ino: a.ino }).await.unwrap().size,
        limit + 5
    );
}
