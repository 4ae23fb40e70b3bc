//! The destroy queue over a whole in-process cluster (the harness of `tests`): the objects of
//! a backlog of unlinked files are deleted within a few scan intervals (several batches per
//! scan), not at one small batch per interval; entries that keep failing at the head of the
//! queue do not hold back those behind them; a queue found empty is not scanned again until
//! a transaction writes to it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use rustre_proto::checksum;
use rustre_proto::msg::mds::MdsOp;
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse, LIST_MAX_OBJECTS};
use rustre_proto::msg::{Ino, Layout, ROOT_INO};

use super::store::Doomed;
use super::tests::TestCluster;
use super::truncate::tests::bare_mds;
use super::workers::{destroy_objects, DESTROY_BATCH, DESTROY_INTERVAL, DESTROY_SCAN_MAX_BATCHES};
use crate::schema;

/// Files unlinked at once: several batches, fewer than one scan takes.
const FILES: usize = 785;
/// How long after the last unlink their objects may take to go: a scan interval to wait
/// for, another for slack, and a second for the deletes. Before, the queue drained 64
/// inodes a scan: these files took 6 s.
const DRAINED_WITHIN: Duration = Duration::from_secs(2);

/// Objects on OST `ost` now.
async fn objects_on(t: &TestCluster, ost: u32) -> usize {
    let list = OssOp::List {
        after: None,
        limit: LIST_MAX_OBJECTS,
    };
    match t.oss(ost, list, Bytes::new()).await.0 {
        OssResponse::Objects { objects, done } => {
            assert!(done, "more objects than one page");
            objects.len()
        }
        other => panic!("list answered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_of_destroyed_files_drains_within_a_few_scan_intervals() {
    const { assert!(FILES < DESTROY_BATCH * DESTROY_SCAN_MAX_BATCHES) };
    let t = TestCluster::start(2).await;
    let data = b"one small file";
    let mut osts = Vec::new();
    for i in 0..FILES {
        let a = t.create(&format!("f{i}"), 1, 1).await.unwrap();
        let ost = a.layout.unwrap().osts[0];
        let write = OssOp::Write {
            object: ObjectId {
                ino: a.ino,
                stripe: 0,
            },
            offset: 0,
            sync: false,
            crc: checksum::crc32c(data),
            version: 0,
        };
        t.oss(ost, write, Bytes::from_static(data)).await;
        osts.push(ost);
    }
    osts.sort_unstable();
    osts.dedup();
    let mut before = 0;
    for ost in &osts {
        before += objects_on(&t, *ost).await;
    }
    assert_eq!(before, FILES);
    for i in 0..FILES {
        t.call(MdsOp::Unlink {
            parent: ROOT_INO,
            name: format!("f{i}"),
        })
        .await
        .unwrap();
    }
    assert!(DRAINED_WITHIN >= 2 * DESTROY_INTERVAL + Duration::from_secs(1));
    let deadline = Instant::now() + DRAINED_WITHIN;
    loop {
        let mut left = 0;
        for ost in &osts {
            left += objects_on(&t, *ost).await;
        }
        if left == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{left} of {FILES} objects left {DRAINED_WITHIN:?} after the last unlink"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes `data` as stripe 0 of `ino`'s object on OST 0.
async fn write_object(t: &TestCluster, ino: Ino, data: &'static [u8]) {
    let write = OssOp::Write {
        object: ObjectId { ino, stripe: 0 },
        offset: 0,
        sync: false,
        crc: checksum::crc32c(data),
        version: 0,
    };
    t.oss(0, write, Bytes::from_static(data)).await;
}

/// The queue entry of an inode with its one object on `ost`.
fn doomed_on(ost: u32) -> Doomed {
    Doomed {
        layout: Layout::striped(4096, vec![ost]),
    }
}

/// Queues `ino` for destruction with its one object on `ost`, straight into the store.
fn queue_destroy(mds: &super::Mds, ino: Ino, ost: u32) {
    let doomed = doomed_on(ost);
    mds.kv
        .transact(|tx| super::store::put(tx, &schema::destroy(ino), &doomed))
        .unwrap();
}

/// Entries still in `mds`'s destroy queue.
fn queued(mds: &super::Mds) -> usize {
    let (s, e) = schema::prefix_range(schema::DESTROY);
    mds.kv
        .transact(|tx| tx.range(&s, &e, usize::MAX))
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_that_keep_failing_do_not_hold_back_the_rest_of_the_queue() {
    // More entries than one scan takes, all naming an OST the cluster does not have, ahead
    // of a few whose objects can go.
    const STUCK: u64 = (DESTROY_BATCH * DESTROY_SCAN_MAX_BATCHES) as u64 + 100;
    const GOOD: u64 = 20;
    const MISSING_OST: u32 = 99;
    let t = TestCluster::start(1).await;
    let mds = bare_mds(&t);
    // Inode numbers from FIRST on: below them, room for an entry at the head.
    const FIRST: Ino = 10;
    for ino in FIRST..FIRST + STUCK {
        queue_destroy(&mds, ino, MISSING_OST);
    }
    let data = b"bytes to reclaim";
    for ino in FIRST + STUCK..FIRST + STUCK + GOOD {
        write_object(&t, ino, data).await;
        queue_destroy(&mds, ino, 0);
    }
    assert_eq!(objects_on(&t, 0).await, GOOD as usize);
    // The second scan goes on where the first stopped, past the stuck entries.
    destroy_objects(mds.clone()).await.unwrap();
    destroy_objects(mds.clone()).await.unwrap();
    assert_eq!(
        objects_on(&t, 0).await,
        0,
        "objects behind the stuck entries left"
    );
    assert_eq!(
        queued(&mds),
        STUCK as usize,
        "the stuck entries stay queued"
    );
    // And a later scan comes round to the head again: an entry queued there is reached.
    write_object(&t, FIRST - 1, data).await;
    queue_destroy(&mds, FIRST - 1, 0);
    for _ in 0..3 {
        destroy_objects(mds.clone()).await.unwrap();
    }
    assert_eq!(
        objects_on(&t, 0).await,
        0,
        "the entry at the head was never reached"
    );
}

/// An object of `ino` on OST 0, and its entry queued through the MDS's transactions (which
/// note what they write) or, with `behind_the_mds`, straight into the store (which does not).
async fn doomed_object(
    t: &TestCluster,
    mds: &std::sync::Arc<super::Mds>,
    ino: Ino,
    behind_the_mds: bool,
) {
    write_object(t, ino, b"doomed").await;
    if behind_the_mds {
        queue_destroy(mds, ino, 0);
        return;
    }
    let doomed = doomed_on(0);
    mds.txn(
        rustre_proto::msg::Creds::root(),
        vec![],
        super::txn::Mutation::WRITE,
        move |tx, _| super::store::put(tx, &schema::destroy(ino), &doomed),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destroy_queue_found_empty_is_scanned_again_once_a_transaction_writes_to_it() {
    let t = TestCluster::start(1).await;
    let mds = bare_mds(&t);
    // The first scan finds the queue empty.
    destroy_objects(mds.clone()).await.unwrap();
    // An entry no MDS transaction wrote is not looked for: the scan is skipped.
    doomed_object(&t, &mds, 100, true).await;
    destroy_objects(mds.clone()).await.unwrap();
    assert_eq!(queued(&mds), 1);
    assert_eq!(objects_on(&t, 0).await, 1, "the scan ran");
    // One the MDS queues makes the next scan run, which takes both.
    doomed_object(&t, &mds, 101, false).await;
    destroy_objects(mds.clone()).await.unwrap();
    assert_eq!(queued(&mds), 0, "the entries stayed queued");
    assert_eq!(objects_on(&t, 0).await, 0);
    // That scan found entries, so the next one runs too (some might have failed) and finds
    // the queue empty; the one after is skipped again.
    destroy_objects(mds.clone()).await.unwrap();
    doomed_object(&t, &mds, 102, true).await;
    destroy_objects(mds.clone()).await.unwrap();
    assert_eq!(queued(&mds), 1);
}
