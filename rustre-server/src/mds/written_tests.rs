//! Written stripes and resync, over a whole in-process cluster (the harness of `tests`): a
//! stale copy of a stripe the layout records as written is never refilled from a live copy
//! that lost its object, nor deleted because of it (docs/replication.md, "Which objects
//! exist").

use std::time::{Duration, Instant};

use bytes::Bytes;
use rustre_proto::checksum;
use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse};

use super::tests::TestCluster;

/// Longest wait for the resync worker to try (and fail) the copy.
const RESYNC_TRY_WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_live_copy_missing_a_written_object_is_no_source_for_resync() {
    let t = TestCluster::start(2).await;
    let a = t.create("w", 1, 2).await.unwrap();
    let (ino, l) = (a.ino, a.layout.unwrap());
    let object = ObjectId { ino, stripe: 0 };
    let data = b"written on both copies";
    for ost in [l.osts[0], l.osts[1]] {
        let write = OssOp::Write {
            object,
            offset: 0,
            sync: true,
            crc: checksum::crc32c(data),
            version: 0,
        };
        t.oss(ost, write, Bytes::from_static(data)).await;
    }
    let reported = t
        .attr(MdsOp::ReportSize {
            ino,
            size: data.len() as u64,
            mtime: a.mtime,
            truncate_version: a.truncate_version,
            written: [0].into_iter().collect(),
            allocated: Vec::new(),
        })
        .await
        .unwrap();
    assert!(reported.layout.unwrap().written.contains(0));
    // The live copy loses its object; the other copy is marked stale.
    t.oss(l.osts[0], OssOp::Delete { object }, Bytes::new())
        .await;
    t.attr(MdsOp::MarkStale {
        ino,
        slots: vec![1],
        version: 0,
    })
    .await
    .unwrap();

    let deadline = Instant::now() + RESYNC_TRY_WAIT;
    let stuck = loop {
        match t.call(MdsOp::StuckCopies).await.unwrap() {
            MdsResponse::StuckCopies(list) if !list.is_empty() => break list,
            MdsResponse::StuckCopies(_) => {}
            other => panic!("{other:?}"),
        }
        assert!(Instant::now() < deadline, "resync never tried the copy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!((stuck[0].ino, stuck[0].slot), (ino, 1));
    assert!(stuck[0].error.contains("no object"), "{:?}", stuck[0]);
    let size = t.oss(l.osts[1], OssOp::Size { object }, Bytes::new()).await;
    assert!(
        matches!(size.0, OssResponse::Size(Some(n)) if n == data.len() as u64),
        "the stale copy was deleted or cut: {size:?}"
    );
    let l = t
        .attr(MdsOp::GetAttr { ino })
        .await
        .unwrap()
        .layout
        .unwrap();
    assert_eq!(l.stale, vec![1], "still stale");
}
