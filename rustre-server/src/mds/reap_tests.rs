//! The session reaper: a look through the sessions says which ran out and when the
//! earliest running lease ends, and passes before then do not look again.

use std::time::Duration;

use rustre_proto::host::now_ms;

use super::open::{self, SessionScan};
use super::tests::TestCluster;
use super::truncate::tests::bare_mds;
use super::workers::reap_sessions;
use crate::meta::Kv;
use crate::schema;

/// Starts a session whose lease ran from `start_ms` for `lease_ms`.
fn session(kv: &Kv, start_ms: u64, lease_ms: u64) -> u64 {
    kv.transact(|tx| open::open_session(tx, "reap-test", start_ms, lease_ms))
        .unwrap()
}

fn exists(kv: &Kv, id: u64) -> bool {
    kv.transact(|tx| tx.get(&schema::session(id)))
        .unwrap()
        .is_some()
}

#[test]
fn a_look_through_the_sessions_finds_the_expired_and_the_next_lease_end() {
    let kv = Kv::open_memory();
    let now = 1_000_000;
    let gone = session(&kv, now - 500, 100);
    let _soon = session(&kv, now, 300);
    let _later = session(&kv, now, 900);
    let scan = kv
        .transact(|tx| open::expired_sessions(tx, now, 10))
        .unwrap();
    assert_eq!(
        scan,
        SessionScan {
            expired: vec![gone],
            whole: true,
            next_end_ms: Some(now + 300),
        }
    );
    // Stopped at its limit, it did not see every session.
    let _gone_too = session(&kv, now - 500, 100);
    let scan = kv
        .transact(|tx| open::expired_sessions(tx, now, 1))
        .unwrap();
    assert_eq!(scan.expired, vec![gone]);
    assert!(!scan.whole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_looks_again_only_once_the_earliest_lease_can_have_ended() {
    const LEASE_MS: u64 = 400;
    let t = TestCluster::start(1).await;
    let mds = bare_mds(&t);
    let now = now_ms();
    let running = session(&mds.kv, now, LEASE_MS);
    reap_sessions(mds.clone()).await.unwrap();
    assert!(exists(&mds.kv, running));
    // A session that ran out, written behind the reaper's back (no real session can end
    // before the earliest running lease): the next pass does not look, so it stays.
    let ran_out = session(&mds.kv, now - 10_000, 1);
    reap_sessions(mds.clone()).await.unwrap();
    assert!(
        exists(&mds.kv, ran_out),
        "the pass looked before the lease could end"
    );
    // Once the running lease can have ended, a pass looks and ends both.
    tokio::time::sleep(Duration::from_millis(LEASE_MS + 100)).await;
    reap_sessions(mds.clone()).await.unwrap();
    assert!(
        !exists(&mds.kv, ran_out),
        "the expired session was not ended"
    );
    assert!(
        !exists(&mds.kv, running),
        "the lease that ran out was not ended"
    );
}
