//! The quota operations through the MDS's dispatch (an in-process cluster): who may set a
//! quota, a set that walks, get, list, and reservations only for writers.

use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::quota::{QuotaInfo, QuotaLimits};
use rustre_proto::msg::{Creds, FileKind, ROOT_INO};
use rustre_proto::Error;

use crate::mds::tests::TestCluster;

fn limits() -> QuotaLimits {
    QuotaLimits {
        hard_bytes: 1 << 20,
        hard_inodes: 10,
        ..QuotaLimits::default()
    }
}

fn quota(r: Result<MdsResponse, Error>) -> Option<QuotaInfo> {
    match r {
        Ok(MdsResponse::Quota(q)) => q,
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn only_root_sets_a_quota_and_every_caller_reads_it() {
    let t = TestCluster::start(1).await;
    let dir = t
        .attr(MdsOp::Mkdir {
            parent: ROOT_INO,
            name: "d".into(),
            perm: 0o777,
            umask: 0,
            want_cap: false,
        })
        .await
        .unwrap();
    assert_eq!(dir.kind, FileKind::Dir);
    let f = t
        .attr(MdsOp::Create {
            parent: dir.ino,
            name: "f".into(),
            perm: 0o666,
            umask: 0,
            exclusive: true,
            open_flags: None,
            layout: None,
        })
        .await
        .unwrap();
    let user = Creds {
        uid: 1000,
        gid: 1000,
        groups: vec![],
    };
    let set = MdsOp::QuotaSet {
        ino: dir.ino,
        limits: limits(),
    };
    let refused = t.call_as(user.clone(), t.next_seq(), set.clone()).await;
    assert!(matches!(refused, Err(Error::NotPermitted)), "{refused:?}");
    let seq = t.next_seq();
    let q = quota(t.call_as(Creds::root(), seq, set.clone()).await).unwrap();
    assert_eq!((q.project, q.usage.inodes, q.counting), (dir.ino, 2, false));
    // A retry of the same request gets the same answer.
    assert_eq!(quota(t.call_as(Creds::root(), seq, set).await), Some(q));

    let got = quota(
        t.call_as(user.clone(), 0, MdsOp::QuotaGet { ino: f.ino })
            .await,
    );
    assert_eq!(got.map(|q| q.limits), Some(limits()));
    assert_eq!(quota(t.call(MdsOp::QuotaGet { ino: ROOT_INO }).await), None);
    match t.call_as(user, 0, MdsOp::QuotaList { after: 0 }).await {
        Ok(MdsResponse::Quotas(all)) => assert_eq!(all.len(), 1),
        other => panic!("{other:?}"),
    }
    // Only a writer reserves room: this session has not opened the file.
    let reserve = MdsOp::QuotaReserve {
        ino: f.ino,
        end: 10,
        want: 20,
    };
    assert!(matches!(t.call(reserve).await, Err(Error::Access)));
}
