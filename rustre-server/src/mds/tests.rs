//! MDS replication tests over a whole in-process cluster ([`crate::local`]) on loopback TCP:
//! replicated layouts, `MarkStale`, `MoveCopies`, `MarkLost` and the resync worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustre_proto::auth::ClusterKey;
use rustre_proto::checksum;
use rustre_proto::cluster::Cluster;
use rustre_proto::msg::mds::{MdsOp, MdsRequest, MdsResponse};
use rustre_proto::msg::mgs::{LayoutDefaults, NodeState};
use rustre_proto::msg::oss::{ObjectId, OssOp, OssRequest, OssResponse};
use rustre_proto::msg::{Attr, Creds, LayoutSpec, ROOT_INO};
use rustre_proto::rpc::client::Peer;
use rustre_proto::Error;
use tokio::sync::watch;

use crate::local::{self, LocalConfig};

const CLUSTER: &str = "replfs";

pub(super) struct TestCluster {
    pub(super) cluster: Arc<Cluster>,
    session: u64,
    seq: std::sync::atomic::AtomicU64,
    _stop: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

/// A call to `mds` by `creds` in `session`, recorded under `seq` (0: not recorded).
async fn call_with(
    mds: &Peer,
    creds: Creds,
    session: u64,
    seq: u64,
    op: MdsOp,
) -> Result<MdsResponse, Error> {
    let req = MdsRequest {
        creds,
        session,
        seq,
        op,
    };
    Ok(mds.call(&req, Bytes::new()).await?.0)
}

/// A call by root in `session` (a client other than the harness's), recorded under `seq`.
pub(super) async fn call_in(
    mds: &Peer,
    session: u64,
    seq: u64,
    op: MdsOp,
) -> Result<MdsResponse, Error> {
    call_with(mds, Creds::root(), session, seq, op).await
}

impl TestCluster {
    pub(super) async fn start(osts: u32) -> TestCluster {
        let dir = tempfile::tempdir().unwrap();
        let key = ClusterKey::generate().unwrap();
        let (stop, shutdown) = watch::channel(false);
        let cfg = LocalConfig {
            data_dir: dir.path().to_path_buf(),
            osts,
            mds: 1,
            store: None,
            mgs_listen: "127.0.0.1:0".parse().unwrap(),
            cluster: CLUSTER.into(),
            key: key.clone(),
            defaults: LayoutDefaults::default(),
            durable: false,
            session_lease_ms: 30_000,
            inline_max: crate::mds::DEFAULT_INLINE_MAX,
        };
        let lc = local::start(cfg, shutdown).await.unwrap();
        let cluster = Cluster::connect(&lc.mgs_addr.to_string(), CLUSTER, "test", &key)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let map = cluster.refresh().await.unwrap();
            let up = map.osts.iter().filter(|o| o.state == NodeState::Up).count();
            if up == osts as usize && map.mds_up().count() == 1 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cluster did not come up: {map:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut t = TestCluster {
            cluster,
            session: 0,
            seq: std::sync::atomic::AtomicU64::new(1),
            _stop: stop,
            _dir: dir,
        };
        match t
            .call_as(
                Creds::root(),
                0,
                MdsOp::OpenSession {
                    client: "test".into(),
                },
            )
            .await
            .unwrap()
        {
            MdsResponse::Session { id, .. } => t.session = id,
            other => panic!("{other:?}"),
        }
        t
    }

    pub(super) async fn call_as(
        &self,
        creds: Creds,
        seq: u64,
        op: MdsOp,
    ) -> Result<MdsResponse, Error> {
        call_with(&self.mds(), creds, self.session, seq, op).await
    }

    /// Its MDS.
    pub(super) fn mds(&self) -> Arc<Peer> {
        self.cluster.mds_peers()[0].clone()
    }

    pub(super) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) async fn call(&self, op: MdsOp) -> Result<MdsResponse, Error> {
        self.call_as(Creds::root(), self.next_seq(), op).await
    }

    pub(super) async fn attr(&self, op: MdsOp) -> Result<Attr, Error> {
        match self.call(op).await? {
            MdsResponse::Attr(a) | MdsResponse::Created { attr: a, .. } => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    pub(super) async fn create(
        &self,
        name: &str,
        stripes: u32,
        replicas: u32,
    ) -> Result<Attr, Error> {
        self.attr(MdsOp::Create {
            parent: ROOT_INO,
            name: name.into(),
            perm: 0o644,
            umask: 0,
            exclusive: true,
            open_flags: None,
            layout: Some(LayoutSpec {
                stripe_size: Some(64 << 10),
                stripe_count: Some(stripes),
                osts: None,
                replicas: Some(replicas),
            }),
        })
        .await
    }

    pub(super) async fn oss(&self, ost: u32, op: OssOp, payload: Bytes) -> (OssResponse, Bytes) {
        let req = OssRequest {
            epoch: self.cluster.map().epoch,
            ost,
            op,
        };
        self.cluster
            .oss(ost)
            .unwrap()
            .call(&req, payload)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn mark_stale_is_idempotent_and_keeps_a_live_copy() {
    let t = TestCluster::start(3).await;
    match t.create("too-many", 1, 4).await {
        Err(Error::Invalid(m)) => assert!(m.contains('4') && m.contains('3'), "{m}"),
        other => panic!("{other:?}"),
    }
    let a = t.create("f", 2, 2).await.unwrap();
    let ino = a.ino;
    let l = a.layout.clone().unwrap();
    assert_eq!((l.stripe_count(), l.replicas, l.osts.len()), (2, 2, 4));
    l.validate().unwrap();
    // Held open for writing: the resync worker leaves the file alone.
    let open = t
        .attr(MdsOp::Open {
            ino,
            flags: libc::O_WRONLY,
        })
        .await
        .unwrap();
    assert_eq!(open.layout.unwrap().version, 0, "no stale slot, no bump");

    let seq = t.next_seq();
    let op = MdsOp::MarkStale {
        ino,
        slots: vec![2],
        version: 0,
    };
    let first = match t.call_as(Creds::root(), seq, op.clone()).await.unwrap() {
        MdsResponse::Attr(a) => a,
        other => panic!("{other:?}"),
    };
    let fl = first.layout.clone().unwrap();
    assert_eq!((fl.stale.clone(), fl.version), (vec![2], 1));
    // A retry of the same call gets the recorded answer.
    match t.call_as(Creds::root(), seq, op.clone()).await.unwrap() {
        MdsResponse::Attr(a) => assert_eq!(a, first),
        other => panic!("{other:?}"),
    }
    // Marking it again (a new call) changes nothing.
    let again = t.attr(op).await.unwrap();
    assert_eq!(again.layout, first.layout);
    // Copy 0 of stripe 0 is its last live copy.
    match t
        .attr(MdsOp::MarkStale {
            ino,
            slots: vec![0],
            version: 1,
        })
        .await
    {
        Err(Error::Io(m)) => assert!(m.contains("stripe 0"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        t.attr(MdsOp::MarkStale {
            ino,
            slots: vec![4],
            version: 1
        })
        .await,
        Err(Error::Invalid(_))
    ));
    let now = t.attr(MdsOp::GetAttr { ino }).await.unwrap();
    assert_eq!(now.layout, first.layout, "refused calls change nothing");

    // Its last copy cannot move off OST osts[0] either.
    match t
        .attr(MdsOp::MoveCopies {
            ino,
            ost: l.osts[0],
        })
        .await
    {
        Err(Error::Invalid(m)) => {
            assert_eq!(m, format!("stripe 0 of inode {ino} has no other copy"))
        }
        other => panic!("{other:?}"),
    }

    // Once the writer is gone, the resync worker takes the file (stripe 0 has no object
    // anywhere, so the copy is a delete) and clears the mark.
    t.call(MdsOp::Release { inos: vec![ino] }).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = t.attr(MdsOp::GetAttr { ino }).await.unwrap();
        let l = a.layout.unwrap();
        if l.stale.is_empty() {
            assert_eq!(l.version, 2);
            break;
        }
        assert!(Instant::now() < deadline, "never resynced: {l:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn move_copies_moves_and_marks_stale() {
    let t = TestCluster::start(3).await;
    let a = t.create("g", 1, 2).await.unwrap();
    let ino = a.ino;
    let l = a.layout.unwrap();
    let (from, other) = (l.osts[0], l.osts[1]);
    // Not for ordinary users.
    let user = Creds {
        uid: 1000,
        gid: 1000,
        groups: vec![],
    };
    assert_eq!(
        t.call_as(user, t.next_seq(), MdsOp::MoveCopies { ino, ost: from })
            .await
            .err(),
        Some(Error::NotPermitted)
    );
    // Keep the resync worker off the file while looking at it.
    t.attr(MdsOp::Open {
        ino,
        flags: libc::O_RDWR,
    })
    .await
    .unwrap();
    let moved = t
        .attr(MdsOp::MoveCopies { ino, ost: from })
        .await
        .unwrap()
        .layout
        .unwrap();
    assert_eq!(moved.stale, vec![0]);
    assert_eq!(moved.version, 1);
    assert_eq!(moved.osts[1], other);
    assert!(moved.osts[0] != from && moved.osts[0] != other, "{moved:?}");
    moved.validate().unwrap();
    // Nothing on `from` any more: unchanged.
    let same = t.attr(MdsOp::MoveCopies { ino, ost: from }).await.unwrap();
    assert_eq!(same.layout.unwrap(), moved);
    // An unreplicated file cannot lose its only copy.
    let u = t.create("u", 1, 1).await.unwrap();
    let ost = u.layout.unwrap().osts[0];
    assert!(matches!(
        t.attr(MdsOp::MoveCopies { ino: u.ino, ost }).await,
        Err(Error::Invalid(_))
    ));
}

/// Creates `name` with its copies 0 on `osts` (one stripe each) and `replicas` copies, and
/// reports `size` bytes written.
async fn create_sized(
    t: &TestCluster,
    name: &str,
    osts: Vec<u32>,
    replicas: u32,
    size: u64,
) -> Attr {
    let a = t
        .attr(MdsOp::Create {
            parent: ROOT_INO,
            name: name.into(),
            perm: 0o644,
            umask: 0,
            exclusive: true,
            open_flags: None,
            layout: Some(LayoutSpec {
                stripe_size: Some(64 << 10),
                stripe_count: None,
                osts: Some(osts),
                replicas: Some(replicas),
            }),
        })
        .await
        .unwrap();
    t.attr(MdsOp::ReportSize {
        ino: a.ino,
        size,
        mtime: a.mtime,
        truncate_version: a.truncate_version,
        written: Default::default(),
        allocated: Vec::new(),
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn mark_lost_marks_every_copy_with_data_on_the_ost_and_resync_refills_what_it_can() {
    let t = TestCluster::start(3).await;
    let (x, y) = (0, 1);
    // One copy, its stripe 0 (holding the file's bytes) on X: lost.
    let one = create_sized(&t, "one", vec![x, y], 1, 1000).await;
    // One copy, only its stripe 1 on X, to which the size gives no byte: untouched.
    let hole = create_sized(&t, "hole", vec![y, x], 1, 1000).await;
    // Two copies, copy 0 on X: stale, refilled from copy 1.
    let two = create_sized(&t, "two", vec![x], 2, 5000).await;
    assert_eq!(two.layout.as_ref().unwrap().osts[0], x);

    let user = Creds {
        uid: 1000,
        gid: 1000,
        groups: vec![],
    };
    let op = MdsOp::MarkLost {
        ino: one.ino,
        ost: x,
    };
    assert_eq!(
        t.call_as(user, t.next_seq(), op.clone()).await.err(),
        Some(Error::NotPermitted)
    );
    let lost = t.attr(op.clone()).await.unwrap().layout.unwrap();
    assert_eq!((lost.stale.clone(), lost.version), (vec![0], 1));
    assert!(lost.is_lost(0) && !lost.is_lost(1));
    lost.validate().unwrap();
    // Again: nothing changes.
    assert_eq!(t.attr(op).await.unwrap().layout.unwrap(), lost);
    let untouched = t
        .attr(MdsOp::MarkLost {
            ino: hole.ino,
            ost: x,
        })
        .await
        .unwrap();
    assert_eq!(untouched.layout, hole.layout);
    let marked = t
        .attr(MdsOp::MarkLost {
            ino: two.ino,
            ost: x,
        })
        .await
        .unwrap()
        .layout
        .unwrap();
    assert_eq!((marked.stale.clone(), marked.version), (vec![0], 1));
    assert!(!marked.is_lost(0));

    // Resync refills the replicated copy (its source has no object: a delete), and leaves
    // the lost stripe alone: nothing can refill it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = t
            .attr(MdsOp::GetAttr { ino: two.ino })
            .await
            .unwrap()
            .layout
            .unwrap();
        if l.stale.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "never resynced: {l:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(super::resync::RESYNC_INTERVAL * 2).await;
    let still = t.attr(MdsOp::GetAttr { ino: one.ino }).await.unwrap();
    assert_eq!(still.layout.unwrap(), lost, "a lost stripe stays lost");
}

#[tokio::test]
async fn resync_copies_a_stale_copy_from_a_live_one() {
    let t = TestCluster::start(2).await;
    let a = t.create("r", 1, 2).await.unwrap();
    let ino = a.ino;
    let l = a.layout.unwrap();
    let (src, dst) = (l.osts[0], l.osts[1]);
    let object = ObjectId { ino, stripe: 0 };
    t.attr(MdsOp::Open {
        ino,
        flags: libc::O_WRONLY,
    })
    .await
    .unwrap();
    // 1.5 MiB and a bit: two chunks for the worker, the last block partial.
    let data: Vec<u8> = (0..(3u32 << 19) + 1000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (r, _) = t
        .oss(
            src,
            OssOp::Write {
                object,
                offset: 0,
                sync: true,
                crc: checksum::crc32c(&data),
                version: 0,
            },
            Bytes::from(data.clone()),
        )
        .await;
    assert!(matches!(r, OssResponse::Written { .. }), "{r:?}");
    // Old bytes on the copy that missed the write, longer than the data.
    let junk = vec![0xeeu8; 2 << 20];
    t.oss(
        dst,
        OssOp::Write {
            object,
            offset: 0,
            sync: true,
            crc: checksum::crc32c(&junk),
            version: 0,
        },
        Bytes::from(junk),
    )
    .await;
    let marked = t
        .attr(MdsOp::MarkStale {
            ino,
            slots: vec![1],
            version: 0,
        })
        .await
        .unwrap();
    assert_eq!(marked.layout.unwrap().version, 1);
    // While the writer holds it open the copy stays stale.
    tokio::time::sleep(super::resync::RESYNC_INTERVAL + Duration::from_millis(500)).await;
    let a = t.attr(MdsOp::GetAttr { ino }).await.unwrap();
    assert_eq!(a.layout.unwrap().stale, vec![1]);
    t.call(MdsOp::Release { inos: vec![ino] }).await.unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = t
            .attr(MdsOp::GetAttr { ino })
            .await
            .unwrap()
            .layout
            .unwrap();
        if l.stale.is_empty() {
            assert_eq!(l.version, 2);
            break;
        }
        assert!(Instant::now() < deadline, "never resynced: {l:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for ost in [src, dst] {
        match t.oss(ost, OssOp::Size { object }, Bytes::new()).await.0 {
            OssResponse::Size(s) => assert_eq!(s, Some(data.len() as u64), "OST {ost}"),
            other => panic!("{other:?}"),
        }
        let mut got = Vec::new();
        while got.len() < data.len() {
            let op = OssOp::Read {
                object,
                offset: got.len() as u64,
                len: 1 << 20,
                must_exist: false,
                consistent: false,
            };
            match t.oss(ost, op, Bytes::new()).await {
                (OssResponse::Data { crcs, .. }, payload) => {
                    assert_eq!(checksum::first_bad_block(&payload, &crcs), None);
                    assert!(!payload.is_empty());
                    got.extend_from_slice(&payload);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(got == data, "copy on OST {ost} differs");
    }
}

#[tokio::test]
async fn one_release_call_drops_an_open_of_each_inode_it_names() {
    use rustre_proto::msg::mds::RELEASE_MAX_INOS;
    let t = TestCluster::start(1).await;
    let mut inos = Vec::new();
    for name in ["a", "b", "c"] {
        let a = t
            .attr(MdsOp::Create {
                parent: ROOT_INO,
                name: name.into(),
                perm: 0o644,
                umask: 0,
                exclusive: true,
                open_flags: Some(libc::O_RDWR),
                layout: None,
            })
            .await
            .unwrap();
        inos.push(a.ino);
    }
    let (a, b, c) = (inos[0], inos[1], inos[2]);
    // "a" is open twice; all three lose their names and live on as open orphans.
    t.attr(MdsOp::Open {
        ino: a,
        flags: libc::O_RDONLY,
    })
    .await
    .unwrap();
    for name in ["a", "b", "c"] {
        t.call(MdsOp::Unlink {
            parent: ROOT_INO,
            name: name.into(),
        })
        .await
        .unwrap();
    }
    // More than the bound is refused whole.
    let too_many = MdsOp::Release {
        inos: vec![b; RELEASE_MAX_INOS + 1],
    };
    assert!(matches!(t.call(too_many).await, Err(Error::Invalid(_))));
    assert_eq!(t.attr(MdsOp::GetAttr { ino: b }).await.unwrap().nlink, 0);
    // One call: both opens of "a", the only open of "b"; "c" stays open.
    t.call(MdsOp::Release {
        inos: vec![a, b, a],
    })
    .await
    .unwrap();
    for gone in [a, b] {
        assert_eq!(
            t.attr(MdsOp::GetAttr { ino: gone }).await,
            Err(Error::NotFound)
        );
    }
    assert_eq!(t.attr(MdsOp::GetAttr { ino: c }).await.unwrap().nlink, 0);
}

/// A writer that dies between its parallel copy writes leaves copies that differ; when its
/// session ends with the file open for writing, every copy but the first is marked stale,
/// the live copy learns the new version (refusing the dead writer's older one), and resync
/// makes the copies equal.
#[tokio::test]
async fn a_writer_whose_session_ends_with_the_file_open_leaves_copies_equal() {
    let t = TestCluster::start(2).await;
    let a = t.create("w", 1, 2).await.unwrap();
    let ino = a.ino;
    let l = a.layout.unwrap();
    let object = ObjectId { ino, stripe: 0 };
    t.attr(MdsOp::Open {
        ino,
        flags: libc::O_WRONLY,
    })
    .await
    .unwrap();
    let write = |data: &'static [u8], version| OssOp::Write {
        object,
        offset: 0,
        sync: false,
        crc: checksum::crc32c(data),
        version,
    };
    // Both copies got "old"; only copy 0 got "new" before the writer died.
    for ost in [l.osts[0], l.osts[1]] {
        t.oss(ost, write(b"old", 0), Bytes::from_static(b"old"))
            .await;
    }
    t.oss(l.osts[0], write(b"new", 0), Bytes::from_static(b"new"))
        .await;
    t.call(MdsOp::CloseSession).await.unwrap();

    let marked = t
        .attr(MdsOp::GetAttr { ino })
        .await
        .unwrap()
        .layout
        .unwrap();
    assert!(
        marked.stale == vec![1] && marked.version == l.version + 1,
        "{marked:?}"
    );
    // The dead writer's layout version is refused by the live copy now.
    let req = OssRequest {
        epoch: t.cluster.map().epoch,
        ost: l.osts[0],
        op: write(b"zombie", 0),
    };
    let refused = t
        .cluster
        .oss(l.osts[0])
        .unwrap()
        .call::<_, OssResponse>(&req, Bytes::from_static(b"zombie"))
        .await;
    assert!(matches!(refused, Err(Error::Stale)), "{refused:?}");

    let deadline = Instant::now() + Duration::from_secs(10);
    while !t
        .attr(MdsOp::GetAttr { ino })
        .await
        .unwrap()
        .layout
        .unwrap()
        .stale
        .is_empty()
    {
        assert!(Instant::now() < deadline, "never resynced");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for ost in [l.osts[0], l.osts[1]] {
        let read = OssOp::Read {
            object,
            offset: 0,
            len: 4096,
            must_exist: false,
            consistent: false,
        };
        let (_, payload) = t.oss(ost, read, Bytes::new()).await;
        assert_eq!(&payload[..], b"new", "copy on OST {ost}");
    }
}

#[tokio::test]
async fn fsck_calls_are_for_root_only() {
    use rustre_proto::msg::fsck::{FixOutcome, FsckAnswer, FsckFix, FsckOp};
    let t = TestCluster::start(1).await;
    let a = t.create("f", 1, 1).await.unwrap();
    let user = Creds {
        uid: 1000,
        gid: 1000,
        groups: vec![],
    };
    let page = MdsOp::Fsck(FsckOp::Inodes {
        after: 0,
        limit: 10,
    });
    assert_eq!(
        t.call_as(user.clone(), 0, page.clone()).await.unwrap_err(),
        Error::NotPermitted
    );
    let fix = MdsOp::Fsck(FsckOp::Repair {
        fix: FsckFix::SetNlink {
            ino: a.ino,
            seen: a.nlink,
            ctime: a.ctime,
            nlink: 5,
        },
        apply: true,
    });
    let seq = t.next_seq();
    assert_eq!(
        t.call_as(user, seq, fix.clone()).await.unwrap_err(),
        Error::NotPermitted
    );
    match t.call_as(Creds::root(), 0, page).await.unwrap() {
        MdsResponse::Fsck(FsckAnswer::Inodes { inodes, done, .. }) => {
            assert!(done);
            assert_eq!(
                inodes.iter().map(|i| i.attr.ino).collect::<Vec<_>>(),
                vec![ROOT_INO, a.ino]
            );
        }
        other => panic!("{other:?}"),
    }
    // Root's repair applies once: a retry of the same request gets the recorded answer.
    let seq = t.next_seq();
    for _ in 0..2 {
        match t.call_as(Creds::root(), seq, fix.clone()).await.unwrap() {
            MdsResponse::Fsck(FsckAnswer::Repair(FixOutcome::Applies(_))) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(
        t.attr(MdsOp::GetAttr { ino: a.ino }).await.unwrap().nlink,
        5
    );
}

/// A copy resync cannot refill (its OST fails every write to it) is listed with its error
/// for `rustre status`, and leaves the list once it is refilled.
#[tokio::test]
async fn a_copy_resync_cannot_refill_is_listed_until_it_is() {
    let t = TestCluster::start(2).await;
    let a = t.create("s", 1, 2).await.unwrap();
    let ino = a.ino;
    let l = a.layout.unwrap();
    let object = ObjectId { ino, stripe: 0 };
    let data = b"resync me";
    t.oss(
        l.osts[0],
        OssOp::Write {
            object,
            offset: 0,
            sync: true,
            crc: checksum::crc32c(data),
            version: 0,
        },
        Bytes::from_static(data),
    )
    .await;
    // The target's object directory disappears: every write there fails.
    let dir = t
        ._dir
        .path()
        .join(format!("ost{}/objects/{:02x}", l.osts[1], ino % 256));
    std::fs::remove_dir_all(&dir).unwrap();
    t.attr(MdsOp::MarkStale {
        ino,
        slots: vec![1],
        version: 0,
    })
    .await
    .unwrap();
    let stuck = || async {
        match t.call(MdsOp::StuckCopies).await.unwrap() {
            MdsResponse::StuckCopies(list) => list,
            other => panic!("{other:?}"),
        }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    let listed = loop {
        let list = stuck().await;
        if !list.is_empty() {
            break list;
        }
        assert!(
            Instant::now() < deadline,
            "the failing copy was never listed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        (listed[0].ino, listed[0].slot, listed[0].ost),
        (ino, 1, l.osts[1])
    );
    assert!(listed[0].error.contains("objects/"), "{:?}", listed[0]);

    std::fs::create_dir(&dir).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stuck().await.is_empty() {
        assert!(
            Instant::now() < deadline,
            "never refilled: {:?}",
            stuck().await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let l = t
        .attr(MdsOp::GetAttr { ino })
        .await
        .unwrap()
        .layout
        .unwrap();
    assert!(l.stale.is_empty(), "{l:?}");
}
