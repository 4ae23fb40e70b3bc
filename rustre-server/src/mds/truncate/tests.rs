//! Truncates at the MDS: the size bound (EFBIG, nothing changed), the cut done before the
//! answer, and an intent left behind carried out by the worker. Over a whole in-process
//! cluster ([`crate::mds::tests::TestCluster`]); the worker tests drive an [`Mds`] of their
//! own over a store in memory, so an intent can be left exactly as a crash would leave it.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustre_proto::auth::ClusterKey;
use rustre_proto::checksum;
use rustre_proto::msg::mds::{MdsOp, SetAttr};
use rustre_proto::msg::oss::{ObjectId, OssOp, OssResponse};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Layout, Timestamp, MAX_OBJECT_BYTES};
use rustre_proto::Error;

use super::*;
use crate::mds::config::DIR_LOCK_STRIPES;
use crate::mds::tests::TestCluster;
use crate::mds::{attr, feed, layout, store, MdsConfig};
use crate::meta::Kv;

/// Stripe size of the test files.
const STRIPE: u64 = 64 << 10;

/// `SetAttr` of the size alone.
fn set_size(ino: Ino, size: u64) -> MdsOp {
    MdsOp::SetAttr {
        ino,
        set: SetAttr {
            size: Some(size),
            ..SetAttr::default()
        },
    }
}

/// Writes `data` at `offset` of object `(ino, stripe)` on `ost`.
async fn put(t: &TestCluster, ost: u32, ino: Ino, stripe: u32, offset: u64, data: &[u8]) {
    let op = OssOp::Write {
        object: ObjectId { ino, stripe },
        offset,
        sync: false,
        crc: checksum::crc32c(data),
        version: 0,
    };
    let (r, _) = t.oss(ost, op, Bytes::copy_from_slice(data)).await;
    assert!(matches!(r, OssResponse::Written { .. }), "{r:?}");
}

/// Length of object `(ino, stripe)` on `ost` (`None`: absent).
async fn length(t: &TestCluster, ost: u32, ino: Ino, stripe: u32) -> Option<u64> {
    let object = ObjectId { ino, stripe };
    match t.oss(ost, OssOp::Size { object }, Bytes::new()).await.0 {
        OssResponse::Size(s) => s,
        other => panic!("{other:?}"),
    }
}

/// The first `len` bytes of object `(ino, stripe)` on `ost` (zeros past its end).
async fn head(t: &TestCluster, ost: u32, ino: Ino, stripe: u32, len: usize) -> Vec<u8> {
    let op = OssOp::Read {
        object: ObjectId { ino, stripe },
        offset: 0,
        len: STRIPE as u32,
        must_exist: false,
        consistent: false,
    };
    match t.oss(ost, op, Bytes::new()).await {
        (OssResponse::Data { .. }, payload) => {
            let mut out = payload.to_vec();
            out.resize(len.max(out.len()), 0);
            out.truncate(len);
            out
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_size_past_what_the_stripes_hold_is_efbig_and_changes_nothing() {
    let t = TestCluster::start(2).await;
    let one = t.create("one", 1, 1).await.unwrap();
    let ost = one.layout.as_ref().unwrap().osts[0];
    put(&t, ost, one.ino, 0, 0, b"kept").await;
    t.attr(MdsOp::ReportSize {
        ino: one.ino,
        size: 4,
        mtime: Timestamp::default(),
        truncate_version: 0,
        written: Default::default(),
        allocated: Vec::new(),
    })
    .await
    .unwrap();
    let before = t.attr(MdsOp::GetAttr { ino: one.ino }).await.unwrap();

    // One stripe holds one object: 16 TiB.
    let too_big = SetAttr {
        size: Some(MAX_OBJECT_BYTES + 1),
        perm: Some(0o600),
        ..SetAttr::default()
    };
    let r = t
        .attr(MdsOp::SetAttr {
            ino: one.ino,
            set: too_big,
        })
        .await;
    assert_eq!(r, Err(Error::TooBig));
    assert_eq!(Error::TooBig.errno(), libc::EFBIG);
    let after = t.attr(MdsOp::GetAttr { ino: one.ino }).await.unwrap();
    assert_eq!(
        after, before,
        "a refused truncate changes nothing, not even the mode"
    );
    assert_eq!(length(&t, ost, one.ino, 0).await, Some(4));
    assert_eq!(head(&t, ost, one.ino, 0, 4).await, b"kept");

    // A writer's size report past the bound is refused too.
    let r = t
        .attr(MdsOp::ReportSize {
            ino: one.ino,
            size: MAX_OBJECT_BYTES + 1,
            mtime: Timestamp::default(),
            truncate_version: before.truncate_version,
            written: Default::default(),
            allocated: Vec::new(),
        })
        .await;
    assert_eq!(r, Err(Error::TooBig));
    assert_eq!(
        t.attr(MdsOp::GetAttr { ino: one.ino }).await.unwrap().size,
        4
    );

    // Two stripes hold twice as much: 20 TiB fits (sparse objects of 10 TiB each).
    let two = t.create("two", 2, 1).await.unwrap();
    let l = two.layout.clone().unwrap();
    assert_eq!(l.max_file_size(), 2 * MAX_OBJECT_BYTES);
    let twenty_tib = 20 << 40;
    let a = t.attr(set_size(two.ino, twenty_tib)).await.unwrap();
    assert_eq!(a.size, twenty_tib);
    for stripe in 0..2 {
        let len = length(&t, l.osts[stripe as usize], two.ino, stripe).await;
        assert_eq!(len, Some(10 << 40), "stripe {stripe}");
    }
    let r = t.attr(set_size(two.ino, 2 * MAX_OBJECT_BYTES + 1)).await;
    assert_eq!(r, Err(Error::TooBig));
    assert_eq!(
        t.attr(MdsOp::GetAttr { ino: two.ino }).await.unwrap().size,
        twenty_tib
    );
    t.attr(set_size(two.ino, 0)).await.unwrap();
}

#[tokio::test]
async fn a_truncate_is_answered_once_every_copy_is_cut() {
    let t = TestCluster::start(3).await;
    let a = t.create("f", 2, 2).await.unwrap();
    let (ino, l) = (a.ino, a.layout.clone().unwrap());
    let old = vec![0xabu8; STRIPE as usize];
    for slot in 0..l.osts.len() {
        let stripe = l.stripe_of_slot(slot);
        put(&t, l.osts[slot], ino, stripe, 0, &old).await;
    }
    let report = |truncate_version| MdsOp::ReportSize {
        ino,
        size: 2 * STRIPE,
        mtime: Timestamp::default(),
        truncate_version,
        written: [0, 1, 7].into_iter().collect(),
        allocated: Vec::new(),
    };
    let reported = t.attr(report(0)).await.unwrap();
    let written = |a: &Attr| {
        a.layout
            .as_ref()
            .unwrap()
            .written
            .iter()
            .collect::<Vec<_>>()
    };
    assert_eq!(written(&reported), [0, 1], "stripes the layout has");

    // The cut leaves stripe 1 no byte: it is no longer written; a report from before the
    // truncate names it in vain.
    let cut = t.attr(set_size(ino, 10)).await.unwrap();
    assert_eq!((cut.size, cut.truncate_version), (10, 1));
    assert_eq!(written(&cut), [0]);
    assert_eq!(written(&t.attr(report(0)).await.unwrap()), [0]);
    for slot in 0..l.osts.len() {
        let stripe = l.stripe_of_slot(slot);
        let want = if stripe == 0 { 10 } else { 0 };
        assert_eq!(
            length(&t, l.osts[slot], ino, stripe).await,
            Some(want),
            "slot {slot}"
        );
    }
    // Extending shows zeros, not the old bytes: they are gone from every copy.
    let grown = t.attr(set_size(ino, STRIPE + 100)).await.unwrap();
    assert_eq!(grown.size, STRIPE + 100);
    for slot in 0..l.osts.len() {
        let stripe = l.stripe_of_slot(slot);
        let (ost, want) = (l.osts[slot], l.object_size(stripe, STRIPE + 100));
        assert_eq!(
            length(&t, ost, ino, stripe).await,
            Some(want),
            "slot {slot}"
        );
        let mut expect = vec![0u8; want as usize];
        if stripe == 0 {
            expect[..10].copy_from_slice(&old[..10]);
        }
        assert!(
            head(&t, ost, ino, stripe, want as usize).await == expect,
            "slot {slot}"
        );
    }
    // An O_TRUNC open cuts too, before it answers.
    let opened = t
        .attr(MdsOp::Open {
            ino,
            flags: libc::O_WRONLY | libc::O_TRUNC,
        })
        .await
        .unwrap();
    assert_eq!(opened.size, 0);
    for slot in 0..l.osts.len() {
        let stripe = l.stripe_of_slot(slot);
        assert_eq!(
            length(&t, l.osts[slot], ino, stripe).await,
            Some(0),
            "slot {slot}"
        );
    }
}

/// An MDS of its own over a store in memory, following `t`'s cluster (its OSTs), with no
/// server and no background work: the tests run its workers' passes themselves.
pub(in crate::mds) fn bare_mds(t: &TestCluster) -> Arc<Mds> {
    let kv = Kv::open_memory();
    super::super::bootstrap(&kv).unwrap();
    bare_mds_over(t, kv, "bare-mds")
}

/// As [`bare_mds`], over `kv` (shared with other bare MDS), advertising `addr`.
pub(in crate::mds) fn bare_mds_over(t: &TestCluster, kv: Kv, addr: &str) -> Arc<Mds> {
    Arc::new(Mds {
        cfg: MdsConfig {
            mgs_addr: String::new(),
            advertise_addr: addr.into(),
            cluster: "replfs".into(),
            key: ClusterKey::generate().unwrap(),
            durable: false,
            session_lease_ms: 30_000,
            inline_max: crate::mds::DEFAULT_INLINE_MAX,
            access: Default::default(),
            dir_caps: true,
        },
        kv,
        cluster: t.cluster.clone(),
        inos: Mutex::new((0, 0)),
        picker: layout::OstPicker::default(),
        dir_locks: (0..DIR_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        in_place_turn: Default::default(),
        resync_cursor: AtomicU64::new(0),
        destroy_cursor: AtomicU64::new(0),
        no_lease_ends_before: AtomicU64::new(0),
        feed: feed::Feed::new(),
        stuck: Default::default(),
        cut_locks: super::super::cut_locks(),
        lock_waits: Default::default(),
        space: crate::space::SpaceGuard::new(crate::space::MDS_RESERVE, "test"),
        dir_caps: crate::mds::dir_caps::DirCaps::new(true),
    })
}

/// A regular file `ino` of `size` bytes with layout `layout`, straight into `mds`'s store.
fn put_file(mds: &Mds, ino: Ino, size: u64, layout: Layout) {
    let now = rustre_proto::host::now();
    let inode = store::Inode {
        attr: Attr {
            ino,
            kind: FileKind::File,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            size,
            atime: now,
            mtime: now,
            ctime: now,
            rdev: 0,
            layout: Some(layout),
            truncate_version: 0,
            acl: None,
            project: 0,
            inline: false,
        },
        parent: 0,
        target: None,
        dir_layout: None,
        default_acl: None,
        reserved: 0,
    };
    mds.kv.transact(|tx| store::put_inode(tx, &inode)).unwrap();
}

/// The size change of `ino` to `size` as the `SetAttr` transaction makes it (intent
/// recorded), without the cut that follows it: what an MDS that died in between leaves.
async fn commit_only(mds: &Arc<Mds>, ino: Ino, size: u64) -> Attr {
    let set = SetAttr {
        size: Some(size),
        ..SetAttr::default()
    };
    let o = mds
        .txn(Creds::root(), vec![ino], Mutation::WRITE, move |tx, c| {
            attr::setattr(tx, c, ino, &set)
        })
        .await
        .unwrap();
    assert!(o.cut_pending);
    o.attr
}

fn intent_of(mds: &Mds, ino: Ino) -> Option<TruncateIntent> {
    mds.kv
        .transact(|tx| store::get::<TruncateIntent>(tx, &schema::truncate(ino)))
        .unwrap()
}

/// Inode numbers far above what the cluster's own MDS hands out, so the bare MDS's files
/// own their objects.
const BARE_INO: Ino = 1 << 40;

#[tokio::test]
async fn an_intent_left_behind_is_carried_out_by_the_worker() {
    let t = TestCluster::start(2).await;
    let mds = bare_mds(&t);
    let ino = BARE_INO;
    put_file(&mds, ino, STRIPE, Layout::striped(STRIPE as u32, vec![1]));
    let old = vec![0x5au8; STRIPE as usize];
    put(&t, 1, ino, 0, 0, &old).await;

    // The size change committed, the cut never made: the old bytes are still there.
    let a = commit_only(&mds, ino, 0).await;
    assert_eq!((a.size, a.truncate_version), (0, 1));
    let intent = intent_of(&mds, ino).unwrap();
    assert_eq!(
        (intent.size, intent.cut_to, intent.truncate_version),
        (0, 0, 1)
    );
    // An extend made meanwhile keeps the pending cut to 0.
    commit_only(&mds, ino, 1000).await;
    let merged = intent_of(&mds, ino).unwrap();
    assert_eq!(
        (merged.size, merged.cut_to, merged.truncate_version),
        (1000, 0, 2)
    );
    assert_eq!(length(&t, 1, ino, 0).await, Some(STRIPE));

    replay_pass(mds.clone()).await.unwrap();
    assert_eq!(intent_of(&mds, ino), None, "carried out and removed");
    assert_eq!(length(&t, 1, ino, 0).await, Some(1000));
    assert!(
        head(&t, 1, ino, 0, 1000).await == vec![0u8; 1000],
        "zeros past the cut, not the old bytes"
    );
    // Nothing left to do: a second pass changes nothing.
    put(&t, 1, ino, 0, 0, b"new").await;
    replay_pass(mds.clone()).await.unwrap();
    assert_eq!(&head(&t, 1, ino, 0, 3).await[..], b"new");
}

#[tokio::test]
async fn a_copy_that_cannot_be_cut_is_marked_stale_or_keeps_the_intent() {
    let t = TestCluster::start(2).await;
    let mds = bare_mds(&t);
    // OST 7 is not in the cluster: its copies cannot be reached.
    let unreachable = 7;
    let replicated = BARE_INO + 1;
    let mut l = Layout::striped(STRIPE as u32, vec![0, unreachable]);
    l.replicas = 2;
    put_file(&mds, replicated, STRIPE, l);
    put(&t, 0, replicated, 0, 0, &vec![1u8; STRIPE as usize]).await;
    commit_only(&mds, replicated, 5).await;
    let new_layout = mds.carry_out(replicated).await.unwrap().unwrap();
    assert_eq!((new_layout.stale.clone(), new_layout.version), (vec![1], 1));
    assert_eq!(intent_of(&mds, replicated), None);
    assert_eq!(length(&t, 0, replicated, 0).await, Some(5));

    // The only copy unreachable: nothing marked, the intent stays for the worker.
    let alone = BARE_INO + 2;
    put_file(
        &mds,
        alone,
        STRIPE,
        Layout::striped(STRIPE as u32, vec![unreachable]),
    );
    commit_only(&mds, alone, 0).await;
    let r = mds.carry_out(alone).await;
    assert!(
        matches!(r, Err(MdsError::Answer(Error::Unavailable(_)))),
        "{r:?}"
    );
    assert!(intent_of(&mds, alone).is_some());
    replay_pass(mds.clone()).await.unwrap();
    assert!(
        intent_of(&mds, alone).is_some(),
        "kept until the copy is cut"
    );
}

#[test]
fn settling_leaves_a_newer_intent_and_refuses_a_changed_layout_or_a_lost_claim() {
    let kv = Kv::open_memory();
    let ino = 9;
    let inode = |version| store::Inode {
        attr: Attr {
            ino,
            kind: FileKind::File,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            rdev: 0,
            layout: Some(Layout {
                version,
                ..Layout::striped(4096, vec![0])
            }),
            truncate_version: 1,
            acl: None,
            project: 0,
            inline: false,
        },
        parent: 0,
        target: None,
        dir_layout: None,
        default_acl: None,
        reserved: 0,
    };
    kv.transact(|tx| {
        store::put_inode(tx, &inode(3))?;
        record(tx, ino, 10, 1)
    })
    .unwrap();
    let claimed = |owner: &str, now: u64| {
        kv.transact(|tx| claim(tx, ino, owner, now, now + 100))
            .unwrap()
    };
    let Claim::Cut(first, _) = claimed("a", 1000) else {
        panic!("unclaimed intent not handed out")
    };
    assert_eq!(claimed("b", 1050), Claim::Busy("a".into()));
    // A newer truncate merged in keeps the claim; settling the first leaves it.
    kv.transact(|tx| record(tx, ino, 50, 2)).unwrap();
    assert_eq!(claimed("b", 1050), Claim::Busy("a".into()));
    let s = kv
        .transact(|tx| settle(tx, ino, &first, "a", 3, &[]))
        .unwrap();
    assert_eq!(s, Settled::Done(None));
    let Claim::Cut(newer, _) = claimed("a", 1060) else {
        panic!("the merged intent is gone")
    };
    assert_eq!(
        (newer.size, newer.cut_to, newer.truncate_version),
        (50, 10, 2)
    );
    // Cut under layout version 2, but the file is at 3 now: cut again.
    let s = kv
        .transact(|tx| settle(tx, ino, &newer, "a", 2, &[]))
        .unwrap();
    assert_eq!(s, Settled::Again);
    // "a" stalled past its claim: "b" takes the intent over, and "a" may not settle it.
    let Claim::Cut(taken, _) = claimed("b", 1200) else {
        panic!("a lapsed claim is not taken over")
    };
    let s = kv
        .transact(|tx| settle(tx, ino, &newer, "a", 3, &[]))
        .unwrap();
    assert_eq!(s, Settled::Again);
    assert!(kv.transact(|tx| pending(tx, ino)).unwrap());
    let s = kv
        .transact(|tx| settle(tx, ino, &taken, "b", 3, &[]))
        .unwrap();
    assert_eq!(s, Settled::Done(None));
    assert!(!kv.transact(|tx| pending(tx, ino)).unwrap());
    // The inode destroyed meanwhile: nothing to do.
    kv.transact(|tx| record(tx, 77, 0, 1)).unwrap();
    assert_eq!(
        kv.transact(|tx| claim(tx, 77, "a", 0, 100)).unwrap(),
        Claim::Nothing
    );
    assert!(!kv.transact(|tx| pending(tx, 77)).unwrap());
}

#[tokio::test]
async fn another_mds_leaves_a_claimed_intent_until_the_claim_lapses() {
    let t = TestCluster::start(1).await;
    let kv = Kv::open_memory();
    super::super::bootstrap(&kv).unwrap();
    let (a, b) = (
        bare_mds_over(&t, kv.clone(), "mds-a"),
        bare_mds_over(&t, kv, "mds-b"),
    );
    let ino = BARE_INO + 3;
    put_file(&a, ino, STRIPE, Layout::striped(STRIPE as u32, vec![0]));
    put(&t, 0, ino, 0, 0, &vec![7u8; STRIPE as usize]).await;
    commit_only(&a, ino, 0).await;
    // "mds-a" claimed it (and, say, is still cutting): "mds-b" keeps off.
    let now = rustre_proto::host::now_ms();
    let held =
        a.kv.transact(|tx| claim(tx, ino, "mds-a", now, now + CUT_CLAIM_MS))
            .unwrap();
    assert!(matches!(held, Claim::Cut(..)), "{held:?}");
    let r = b.carry_out(ino).await;
    assert!(
        matches!(r, Err(MdsError::Answer(Error::Unavailable(_)))),
        "{r:?}"
    );
    replay_pass(b.clone()).await.unwrap();
    assert_eq!(
        length(&t, 0, ino, 0).await,
        Some(STRIPE),
        "cut under a live claim"
    );
    // The claim lapsed (its MDS died): the other's worker cuts.
    a.kv.transact(|tx| {
        let key = schema::truncate(ino);
        let mut i: TruncateIntent = store::get(tx, &key)?.unwrap();
        i.until_ms = now - 1;
        store::put(tx, &key, &i)
    })
    .unwrap();
    replay_pass(b.clone()).await.unwrap();
    assert_eq!(length(&t, 0, ino, 0).await, Some(0));
    assert_eq!(intent_of(&b, ino), None);
}

#[test]
fn a_stripe_without_a_cut_copy_fails_the_cut_and_others_mark_stale() {
    let down = || Err(Error::Unavailable("down".into()));
    let stripes = vec![vec![(0, Ok(())), (2, down())], vec![(1, Ok(()))]];
    assert_eq!(failed_slots(&stripes), Ok(vec![2]));
    let stripes = vec![
        vec![(0, Ok(()))],
        vec![(1, down()), (3, Err(Error::TimedOut))],
    ];
    assert_eq!(
        failed_slots(&stripes),
        Err(Error::Unavailable("down".into()))
    );
    // An error about the request, not the copy, fails the cut whatever the other copies did.
    let stripes = vec![vec![(0, Ok(())), (2, Err(Error::TooBig))]];
    assert_eq!(failed_slots(&stripes), Err(Error::TooBig));
}
