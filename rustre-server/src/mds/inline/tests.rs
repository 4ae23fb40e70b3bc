//! Data on the MDS (`super`), over an in-process cluster (the harness of `tests`):
//! a close keeps the bytes only for the file's only opener, an open for reading brings
//! them (as the store holds them, also for a retried open), a truncate cuts them, and an
//! open for writing finds them moved to every copy of the objects (across stripes) before
//! it is answered.

use bytes::Bytes;
use rustre_proto::msg::mds::{MdsOp, MdsResponse, SetAttr, INLINE_MAX_BYTES};
use rustre_proto::msg::oss::{ObjectId, OssOp};
use rustre_proto::msg::{Attr, LayoutSpec, ROOT_INO};

use crate::mds::tests::{call_in, TestCluster};

/// A second client's session.
async fn other_session(t: &TestCluster) -> u64 {
    let op = MdsOp::OpenSession {
        client: "other".into(),
    };
    match call_in(&t.mds(), 0, 0, op).await.unwrap() {
        MdsResponse::Session { id, inline_max, .. } => {
            assert_eq!(inline_max as usize, INLINE_MAX_BYTES);
            id
        }
        r => panic!("{r:?}"),
    }
}

/// File `name` made and opened for writing by the harness's session, in stripes of
/// `stripe_size` bytes over `stripes` OSTs, `replicas` copies each.
async fn made(t: &TestCluster, name: &str, stripe_size: u32, stripes: u32, replicas: u32) -> Attr {
    let op = MdsOp::Create {
        parent: ROOT_INO,
        name: name.into(),
        perm: 0o644,
        umask: 0,
        exclusive: true,
        open_flags: Some(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL),
        layout: Some(LayoutSpec {
            stripe_size: Some(stripe_size),
            stripe_count: Some(stripes),
            osts: None,
            replicas: Some(replicas),
        }),
    };
    t.attr(op).await.unwrap()
}

fn close_op(a: &Attr, data: &[u8]) -> MdsOp {
    MdsOp::CloseInline {
        ino: a.ino,
        size: data.len() as u64,
        mtime: rustre_proto::host::now(),
        truncate_version: a.truncate_version,
        data: Bytes::copy_from_slice(data),
        set: SetAttr::default(),
    }
}

/// The bytes `ReadInline` answers (`None`: not on the MDS).
async fn inline_bytes(t: &TestCluster, ino: u64) -> (Attr, Option<Bytes>) {
    match t.call(MdsOp::ReadInline { ino }).await.unwrap() {
        MdsResponse::InlineData { attr, data } => (attr, data),
        r => panic!("{r:?}"),
    }
}

/// What copy `replica` of `stripe` of `a` holds from offset 0 (up to 64 KiB).
async fn object_bytes(t: &TestCluster, a: &Attr, stripe: u32, replica: u32) -> Bytes {
    let layout = a.layout.as_ref().unwrap();
    let ost = layout.osts[layout.slot(stripe, replica)];
    let read = OssOp::Read {
        object: ObjectId { ino: a.ino, stripe },
        offset: 0,
        len: 64 << 10,
        must_exist: true,
        consistent: false,
    };
    t.oss(ost, read, Bytes::new()).await.1
}

#[tokio::test]
async fn a_close_keeps_the_bytes_and_an_open_for_reading_brings_them() {
    let t = TestCluster::start(2).await;
    let a = made(&t, "small", 64 << 10, 1, 1).await;
    let data = b"bytes kept on the MDS";
    let attr = match t.call(close_op(&a, data)).await.unwrap() {
        MdsResponse::ReportedSetAttr { attr, refused } => {
            assert_eq!(refused, None);
            attr
        }
        r => panic!("{r:?}"),
    };
    assert!(attr.inline);
    assert_eq!(attr.size, data.len() as u64);
    assert_eq!(attr.blocks(), 1, "st_blocks counts the kept bytes");
    assert!(attr.layout.as_ref().unwrap().written.is_empty());

    let reader = other_session(&t).await;
    let op = MdsOp::Open {
        ino: a.ino,
        flags: libc::O_RDONLY,
    };
    match call_in(&t.mds(), reader, 1, op).await.unwrap() {
        MdsResponse::InlineData {
            attr,
            data: Some(d),
        } => {
            assert!(attr.inline);
            assert_eq!(&d[..], data);
        }
        r => panic!("{r:?}"),
    }
    let (_, got) = inline_bytes(&t, a.ino).await;
    assert_eq!(got.as_deref(), Some(&data[..]));
}

/// The bytes an open for reading answered (panics on any other answer).
fn opened_bytes(r: MdsResponse) -> Bytes {
    match r {
        MdsResponse::InlineData {
            data: Some(d),
            attr,
        } => {
            assert_eq!(attr.size, d.len() as u64);
            d
        }
        r => panic!("{r:?}"),
    }
}

#[tokio::test]
async fn a_retried_open_brings_the_bytes_as_they_are_not_as_recorded() {
    let t = TestCluster::start(2).await;
    let a = made(&t, "again", 64 << 10, 1, 1).await;
    t.call(close_op(&a, b"first bytes")).await.unwrap();
    let reader = other_session(&t).await;
    let open = || MdsOp::Open {
        ino: a.ino,
        flags: libc::O_RDONLY,
    };
    let got = opened_bytes(call_in(&t.mds(), reader, 1, open()).await.unwrap());
    assert_eq!(&got[..], b"first bytes");
    // The reader lets go, the writer keeps new bytes, and the first open is tried again
    // (as after a lost reply): its recorded answer holds the attributes only, and the
    // bytes come as the store holds them now.
    call_in(&t.mds(), reader, 2, MdsOp::Release { inos: vec![a.ino] })
        .await
        .unwrap();
    t.call(close_op(&a, b"second, longer bytes")).await.unwrap();
    let got = opened_bytes(call_in(&t.mds(), reader, 1, open()).await.unwrap());
    assert_eq!(&got[..], b"second, longer bytes");
}

#[tokio::test]
async fn a_close_is_refused_while_another_session_holds_the_file_or_past_the_limit() {
    let t = TestCluster::start(2).await;
    let a = made(&t, "shared", 64 << 10, 1, 1).await;
    let reader = other_session(&t).await;
    let op = MdsOp::Open {
        ino: a.ino,
        flags: libc::O_RDONLY,
    };
    assert!(matches!(
        call_in(&t.mds(), reader, 1, op).await.unwrap(),
        MdsResponse::Attr(_)
    ));
    let refused = t.call(close_op(&a, b"abc")).await.unwrap();
    assert!(matches!(refused, MdsResponse::InlineRefused), "{refused:?}");
    let (attr, got) = inline_bytes(&t, a.ino).await;
    assert!(!attr.inline && got.is_none());
    assert_eq!(attr.size, 0, "a refused close changes nothing");

    let b = made(&t, "big", 1 << 20, 1, 1).await;
    let big = vec![7u8; INLINE_MAX_BYTES + 1];
    let refused = t.call(close_op(&b, &big)).await.unwrap();
    assert!(matches!(refused, MdsResponse::InlineRefused), "{refused:?}");
}

#[tokio::test]
async fn a_truncate_cuts_the_kept_bytes_and_an_o_trunc_drops_them() {
    let t = TestCluster::start(2).await;
    let a = made(&t, "cut", 64 << 10, 1, 1).await;
    t.call(close_op(&a, b"0123456789")).await.unwrap();
    let shrink = SetAttr {
        size: Some(4),
        ..SetAttr::default()
    };
    t.attr(MdsOp::SetAttr {
        ino: a.ino,
        set: shrink,
    })
    .await
    .unwrap();
    let grow = SetAttr {
        size: Some(8),
        ..SetAttr::default()
    };
    let attr = t
        .attr(MdsOp::SetAttr {
            ino: a.ino,
            set: grow,
        })
        .await
        .unwrap();
    assert!(attr.inline);
    assert_eq!(attr.size, 8);
    let (_, got) = inline_bytes(&t, a.ino).await;
    assert_eq!(got.as_deref(), Some(&b"0123"[..]), "past 4 bytes: zeros");

    let op = MdsOp::Open {
        ino: a.ino,
        flags: libc::O_WRONLY | libc::O_TRUNC,
    };
    let attr = t.attr(op).await.unwrap();
    assert!(!attr.inline);
    assert_eq!(attr.size, 0);
    assert!(attr.layout.as_ref().unwrap().written.is_empty());
    assert_eq!(inline_bytes(&t, a.ino).await.1, None);
}

#[tokio::test]
async fn an_open_for_writing_finds_the_bytes_in_every_copy_of_every_stripe() {
    let t = TestCluster::start(3).await;
    // 4 KiB stripes over 2 OSTs, 2 copies each: 10 KiB land in stripes 0, 1, 0.
    let a = made(&t, "spilled", 4096, 2, 2).await;
    let data: Vec<u8> = (0..10 * 1024).map(|i| (i % 251) as u8).collect();
    t.call(close_op(&a, &data)).await.unwrap();

    let writer = other_session(&t).await;
    let op = MdsOp::Open {
        ino: a.ino,
        flags: libc::O_WRONLY,
    };
    let attr = match call_in(&t.mds(), writer, 1, op).await.unwrap() {
        MdsResponse::Attr(a) => a,
        r => panic!("{r:?}"),
    };
    assert!(!attr.inline, "answered once the bytes moved");
    assert_eq!(attr.size, data.len() as u64);
    let written = &attr.layout.as_ref().unwrap().written;
    assert!(written.contains(0) && written.contains(1));
    assert_eq!(inline_bytes(&t, a.ino).await.1, None);

    let stripe0: Vec<u8> = [&data[..4096], &data[8192..]].concat();
    let stripe1 = &data[4096..8192];
    for replica in 0..2 {
        assert_eq!(&object_bytes(&t, &attr, 0, replica).await[..], &stripe0[..]);
        assert_eq!(&object_bytes(&t, &attr, 1, replica).await[..], stripe1);
    }
    // A second move finds nothing to do.
    let again = t.attr(MdsOp::Spill { ino: a.ino }).await.unwrap();
    assert_eq!(again.layout, attr.layout);
}

#[tokio::test]
async fn a_report_of_written_stripes_hands_the_file_to_its_objects() {
    let t = TestCluster::start(2).await;
    let a = made(&t, "lost_answer", 64 << 10, 1, 1).await;
    t.call(close_op(&a, b"kept")).await.unwrap();
    // What a writer that never saw the answer of its close does: its bytes to the
    // objects, then a report naming the stripe.
    let op = MdsOp::ReportSize {
        ino: a.ino,
        size: 4,
        mtime: rustre_proto::host::now(),
        truncate_version: a.truncate_version,
        written: [0].into_iter().collect(),
        allocated: Vec::new(),
    };
    let attr = t.attr(op).await.unwrap();
    assert!(!attr.inline);
    assert!(attr.layout.as_ref().unwrap().written.contains(0));
    assert_eq!(inline_bytes(&t, a.ino).await.1, None);
}
