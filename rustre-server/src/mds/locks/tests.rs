//! Unit tests of the lock rules (conflicts, split and merge on unlock, read against write,
//! flock against fcntl) and of the transaction bodies on an in-memory store.

use rustre_proto::msg::mds::{LockAnswer, LockKind, LockSpec, LockType};
use rustre_proto::Error;

use super::txn;
use super::*;
use crate::mds::open;
use crate::meta::Kv;

fn spec(owner: u64, typ: LockType, start: u64, end: u64) -> LockSpec {
    LockSpec {
        kind: LockKind::Posix,
        typ,
        start,
        end,
        owner,
        pid: 100 + owner as u32,
    }
}

fn ranges(locks: &[Held]) -> Vec<(u64, u64, u64, bool)> {
    locks
        .iter()
        .map(|h| (h.owner, h.start, h.end, h.write))
        .collect()
}

#[test]
fn disjoint_ranges_do_not_conflict_overlapping_do() {
    let mut l = Vec::new();
    assert!(apply(&mut l, 1, &spec(1, LockType::Write, 0, 9)));
    assert!(first_conflict(&l, 2, &spec(2, LockType::Write, 10, 19)).is_none());
    assert!(first_conflict(&l, 2, &spec(2, LockType::Write, 9, 19)).is_some());
    assert!(first_conflict(&l, 2, &spec(2, LockType::Read, 5, 5)).is_some());
    // The same owner never conflicts with itself; the same owner id of another session does.
    assert!(first_conflict(&l, 1, &spec(1, LockType::Write, 0, 9)).is_none());
    assert!(first_conflict(&l, 2, &spec(1, LockType::Write, 0, 9)).is_some());
}

#[test]
fn readers_share_a_writer_excludes() {
    let mut l = Vec::new();
    apply(&mut l, 1, &spec(1, LockType::Read, 0, 99));
    assert!(first_conflict(&l, 1, &spec(2, LockType::Read, 50, 150)).is_none());
    apply(&mut l, 1, &spec(2, LockType::Read, 50, 150));
    let c = first_conflict(&l, 1, &spec(3, LockType::Write, 120, 130)).unwrap();
    assert_eq!((c.owner, c.start, c.end, c.write), (2, 50, 150, false));
    // Unlocking never conflicts.
    assert!(first_conflict(&l, 1, &spec(3, LockType::Unlock, 0, u64::MAX)).is_none());
}

#[test]
fn unlock_in_the_middle_splits_and_relock_merges() {
    let mut l = Vec::new();
    apply(&mut l, 1, &spec(1, LockType::Write, 0, 99));
    assert!(apply(&mut l, 1, &spec(1, LockType::Unlock, 40, 59)));
    assert_eq!(ranges(&l), vec![(1, 0, 39, true), (1, 60, 99, true)]);
    assert!(first_conflict(&l, 1, &spec(2, LockType::Write, 40, 59)).is_none());
    // Locking the hole again merges the three into one.
    apply(&mut l, 1, &spec(1, LockType::Write, 40, 59));
    assert_eq!(ranges(&l), vec![(1, 0, 99, true)]);
    // Adjacent locks of the same type merge; of another type they stay apart.
    apply(&mut l, 1, &spec(1, LockType::Write, 100, 109));
    apply(&mut l, 1, &spec(1, LockType::Read, 110, 119));
    assert_eq!(ranges(&l), vec![(1, 0, 109, true), (1, 110, 119, false)]);
    // Unlocking what is not locked changes nothing.
    assert!(!apply(&mut l, 1, &spec(1, LockType::Unlock, 500, 600)));
}

#[test]
fn a_new_type_replaces_the_owners_old_one_on_its_range() {
    let mut l = Vec::new();
    apply(&mut l, 1, &spec(1, LockType::Write, 0, 99));
    apply(&mut l, 1, &spec(1, LockType::Read, 10, 19));
    assert_eq!(
        ranges(&l),
        vec![(1, 0, 9, true), (1, 10, 19, false), (1, 20, 99, true)]
    );
    assert!(first_conflict(&l, 1, &spec(2, LockType::Read, 10, 19)).is_none());
    assert!(first_conflict(&l, 1, &spec(2, LockType::Read, 9, 19)).is_some());
    // To the end of the file, and unlocking all of it.
    apply(&mut l, 1, &spec(1, LockType::Write, 50, u64::MAX));
    apply(&mut l, 1, &spec(1, LockType::Unlock, 0, u64::MAX));
    assert!(l.is_empty());
}

#[test]
fn flock_and_fcntl_locks_are_independent() {
    let mut l = Vec::new();
    let flock = LockSpec {
        kind: LockKind::Flock,
        ..spec(1, LockType::Write, 0, u64::MAX)
    };
    apply(&mut l, 1, &flock);
    assert!(first_conflict(&l, 2, &spec(2, LockType::Write, 0, 10)).is_none());
    assert!(first_conflict(&l, 2, &LockSpec { owner: 2, ..flock }).is_some());
    // An fcntl unlock of the same owner leaves its flock alone.
    assert!(!apply(&mut l, 1, &spec(1, LockType::Unlock, 0, u64::MAX)));
    assert_eq!(l.len(), 1);
    assert!(drop_owner(&mut l, 1, 1));
    assert!(l.is_empty());
}

fn session(kv: &Kv) -> u64 {
    kv.transact(|tx| open::open_session(tx, "t", 0, u64::MAX / 2))
        .unwrap()
}

#[test]
fn the_store_keeps_locks_and_a_session_end_drops_them() {
    let kv = Kv::open_memory();
    let (a, b) = (session(&kv), session(&kv));
    let set = |s: u64, sp: LockSpec, wait: bool| {
        kv.transact(|tx| txn::set(tx, s, 9, &sp, wait, 1_000))
            .unwrap()
            .answer
    };
    assert_eq!(
        set(a, spec(1, LockType::Write, 0, 9), false),
        LockAnswer::Granted
    );
    match set(b, spec(1, LockType::Write, 5, 5), false) {
        LockAnswer::Conflict(c) => assert_eq!((c.start, c.end, c.pid), (0, 9, 101)),
        other => panic!("{other:?}"),
    }
    let got = kv
        .transact(|tx| txn::test(tx, b, 9, &spec(1, LockType::Read, 0, 0)))
        .unwrap();
    assert!(matches!(got, LockAnswer::Conflict(_)));
    // A session that is gone cannot take locks.
    assert!(matches!(
        kv.transact(|tx| txn::set(tx, 77, 9, &spec(1, LockType::Read, 50, 60), false, 0)),
        Err(Error::Stale)
    ));
    let ended = kv.transact(|tx| open::end_session(tx, a)).unwrap();
    assert!(ended.done);
    assert_eq!(ended.unlocked, vec![9]);
    assert_eq!(
        set(b, spec(1, LockType::Write, 5, 5), false),
        LockAnswer::Granted
    );
    // Closing drops the owner's locks.
    assert!(kv.transact(|tx| txn::unlock_owner(tx, b, 9, 1)).unwrap());
    assert!(kv.transact(|tx| txn::held(tx, 9)).unwrap().is_empty());
}

#[test]
fn waiting_in_a_cycle_is_a_deadlock() {
    let kv = Kv::open_memory();
    let (a, b) = (session(&kv), session(&kv));
    let set = |s: u64, ino: u64, sp: LockSpec, wait: bool| {
        kv.transact(|tx| txn::set(tx, s, ino, &sp, wait, 10_000))
            .unwrap()
            .answer
    };
    assert_eq!(
        set(a, 1, spec(1, LockType::Write, 0, 0), false),
        LockAnswer::Granted
    );
    assert_eq!(
        set(b, 2, spec(2, LockType::Write, 0, 0), false),
        LockAnswer::Granted
    );
    // A waits for B's lock: an ordinary conflict.
    assert!(matches!(
        set(a, 2, spec(1, LockType::Write, 0, 0), true),
        LockAnswer::Conflict(_)
    ));
    // B asking for A's lock would wait for a waiter of its own: EDEADLK.
    assert_eq!(
        set(b, 1, spec(2, LockType::Write, 0, 0), true),
        LockAnswer::Deadlock
    );
    // Without waiting it is just a conflict.
    assert!(matches!(
        set(b, 1, spec(2, LockType::Write, 0, 0), false),
        LockAnswer::Conflict(_)
    ));
    // A stale waiter record (its owner gave up long ago) closes no cycle.
    let late = kv
        .transact(|tx| {
            txn::set(
                tx,
                b,
                1,
                &spec(2, LockType::Write, 0, 0),
                true,
                10_000 + WAITER_STALE_MS + 1,
            )
        })
        .unwrap()
        .answer;
    assert!(matches!(late, LockAnswer::Conflict(_)));
}

/// Two MDS over one store (as `rustre local --mds 2` runs them): a lock taken through one
/// is enforced through the other, and a request waiting on the second is granted soon
/// after an unlock through the first (by its back-off: no wake-up crosses MDS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_one_for_every_mds_and_an_unlock_through_one_ends_a_wait_on_another() {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use bytes::Bytes;
    use rustre_proto::auth::ClusterKey;
    use rustre_proto::cluster::Cluster;
    use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse};
    use rustre_proto::msg::mgs::LayoutDefaults;
    use rustre_proto::msg::Creds;
    use rustre_proto::rpc::client::Peer;

    use crate::local::{self, LocalConfig};

    let dir = tempfile::tempdir().unwrap();
    let key = ClusterKey::generate().unwrap();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let cfg = LocalConfig {
        data_dir: dir.path().to_path_buf(),
        osts: 1,
        mds: 2,
        store: None,
        mgs_listen: "127.0.0.1:0".parse().unwrap(),
        cluster: "lockfs".into(),
        key: key.clone(),
        defaults: LayoutDefaults::default(),
        durable: false,
        session_lease_ms: 30_000,
        inline_max: crate::mds::DEFAULT_INLINE_MAX,
    };
    let lc = local::start(cfg, shutdown).await.unwrap();
    let cluster = Cluster::connect(&lc.mgs_addr.to_string(), "lockfs", "test", &key)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let peer = |i: usize| -> Option<Arc<Peer>> {
        let want = lc.mds_addrs[i].to_string();
        cluster.mds_peers().into_iter().find(|p| p.addr() == want)
    };
    while peer(0).is_none() || peer(1).is_none() {
        assert!(Instant::now() < deadline, "both MDS never came up");
        cluster.refresh().await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (m0, m1) = (peer(0).unwrap(), peer(1).unwrap());
    async fn call(p: &Peer, session: u64, op: MdsOp) -> MdsResponse {
        let req = MdsRequest {
            creds: Creds::root(),
            session,
            seq: 0,
            op,
        };
        p.call(&req, Bytes::new()).await.unwrap().0
    }
    let open = MdsOp::OpenSession { client: "t".into() };
    let MdsResponse::Session { id: a, .. } = call(&m0, 0, open.clone()).await else {
        panic!("no session")
    };
    let MdsResponse::Session { id: b, .. } = call(&m1, 0, open).await else {
        panic!("no session")
    };
    let set = |typ, wait| MdsOp::SetLock {
        ino: 4242,
        lock: spec(1, typ, 0, 9),
        wait,
    };
    assert!(matches!(
        call(&m0, a, set(LockType::Write, false)).await,
        MdsResponse::Lock(LockAnswer::Granted)
    ));
    assert!(matches!(
        call(&m1, b, set(LockType::Read, false)).await,
        MdsResponse::Lock(LockAnswer::Conflict(_))
    ));
    let waiter = {
        let m1 = m1.clone();
        tokio::spawn(async move {
            // Asked again after each wait round, as a client does.
            loop {
                match call(&m1, b, set(LockType::Read, true)).await {
                    MdsResponse::Lock(LockAnswer::Conflict(_)) => continue,
                    r => return (r, Instant::now()),
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "granted while the write lock was held"
    );
    let unlocked = Instant::now();
    assert!(matches!(
        call(&m0, a, set(LockType::Unlock, false)).await,
        MdsResponse::Lock(LockAnswer::Granted)
    ));
    let (r, at) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the waiter was never granted")
        .unwrap();
    assert!(matches!(r, MdsResponse::Lock(LockAnswer::Granted)), "{r:?}");
    let late = at.duration_since(unlocked);
    assert!(
        late < Duration::from_secs(1),
        "granted {late:?} after the unlock"
    );
}
