//! Which objects must exist, with real processes (docs/replication.md, "Which objects
//! exist"): MGS, MDS and three OSS as separate `rustre` processes, files written and read
//! through the client library. An object file removed from an OST directory while its OSS
//! runs reads EIO when it was the only copy, never zeros; with another copy the read is
//! byte-exact, the copy is marked stale and resync refills it; a sparse file's stripes that
//! were never written (no object) still read as zeros.

mod common;

use std::fs;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use rustre_fuse::client::ClientConfig;
use rustre_fuse::Client;
use rustre_proto::msg::mds::SetAttr;
use rustre_proto::msg::{Creds, Ino, LayoutSpec, ROOT_INO};
use rustre_proto::Error;

/// Stripe size of the sparse file: small, so a few KiB span every stripe.
const SPARSE_STRIPE: u32 = 64 << 10;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

async fn connect(mgs: &str, name: &str) -> Arc<Client> {
    let cfg = ClientConfig {
        mgs_addr: mgs.to_string(),
        cluster: rustre_proto::DEFAULT_CLUSTER_NAME.into(),
        key: test_key(),
        client_name: name.into(),
    };
    Client::connect(&cfg).await.unwrap()
}

/// Creates `/name` with `layout`, makes each write, fsyncs and closes it; its inode.
async fn write_new(
    c: &Arc<Client>,
    name: &str,
    layout: LayoutSpec,
    writes: &[(u64, &[u8])],
) -> Ino {
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
    let root = Creds::root();
    let f = c
        .create_file(&root, ROOT_INO, name, 0o644, flags, Some(layout))
        .await
        .unwrap();
    for (offset, data) in writes {
        let n = c
            .write_file(f.fh, *offset, Bytes::copy_from_slice(data))
            .await
            .unwrap();
        assert_eq!(n, data.len());
    }
    c.fsync_file(f.fh).await.unwrap();
    c.release_file(f.fh).await.unwrap();
    f.attr.ino
}

/// The whole of file `ino` read by a client that never saw it (no cached pages).
fn read_fresh(rt: &tokio::runtime::Runtime, mgs: &str, ino: Ino) -> Result<Vec<u8>, Error> {
    rt.block_on(async {
        let c = connect(mgs, "object-exists-reader").await;
        let f = c.open_file(&Creds::root(), ino, libc::O_RDONLY).await?;
        let len = f.attr.size as usize;
        let got = c.read_file(f.fh, 0, len.max(1)).await;
        c.release_file(f.fh).await.unwrap();
        c.close().await.unwrap();
        got.map(|b| b.to_vec())
    })
}

fn layout_version(stat: &str) -> u64 {
    field(stat, "layout_version").parse().unwrap()
}

fn spec(stripe_count: u32, replicas: u32, stripe_size: Option<u32>) -> LayoutSpec {
    LayoutSpec {
        stripe_size,
        stripe_count: Some(stripe_count),
        osts: None,
        replicas: Some(replicas),
    }
}

#[test]
fn a_written_object_that_vanished_reads_eio_or_from_another_copy_and_holes_stay_zeros() {
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    let rt = runtime();
    let writer = rt.block_on(connect(&m, "object-exists-writer"));

    // (a) One copy: the object removed by hand reads EIO, never zeros.
    let one = random_bytes(300_000, 81);
    let one_ino = rt.block_on(write_new(
        &writer,
        "one.bin",
        spec(1, 1, None),
        &[(0, &one)],
    ));
    let stat = cli_ok(&m, &["stat", "/one.bin"]);
    assert_eq!(field(&stat, "written stripes"), "0", "{stat}");
    let (_, osts, _) = placement(&m, "/one.bin");
    fs::remove_file(c.object_file(osts[0], one_ino, 0)).unwrap();
    let e = match read_fresh(&rt, &m, one_ino) {
        Ok(b) => panic!("a lost object was read as {} bytes", b.len()),
        Err(e) => e,
    };
    assert!(matches!(e, Error::Missing(_)), "{e:?}");
    assert_eq!(e.errno(), libc::EIO);
    let out = c.path("one.out");
    let get = cli(&m, &["get", "/one.bin", out.to_str().unwrap()]);
    assert!(
        !get.status.success(),
        "`rustre get` of a lost object succeeded"
    );

    // (b) Two copies: copy 0's object removed; the read comes byte-exact from copy 1, copy 0
    // is marked stale (a new layout version) and resync refills it.
    let two = random_bytes(500_000, 82);
    let two_ino = rt.block_on(write_new(
        &writer,
        "two.bin",
        spec(1, 2, None),
        &[(0, &two)],
    ));
    let (_, copy0, copy1) = placement(&m, "/two.bin");
    let version = layout_version(&cli_ok(&m, &["stat", "/two.bin"]));
    let lost = c.object_file(copy0[0], two_ino, 0);
    fs::remove_file(&lost).unwrap();
    assert!(
        read_fresh(&rt, &m, two_ino).unwrap() == two,
        "2-copy file differs"
    );
    let stat = cli_ok(&m, &["stat", "/two.bin"]);
    assert!(
        layout_version(&stat) > version,
        "the copy missing its object was not marked stale:\n{stat}"
    );
    assert!(
        wait_until(RESYNC_WAIT, || in_sync(&m, "/two.bin")
            && fs::read(&lost).is_ok_and(|b| b == two)),
        "the copy missing its object was not refilled: {}",
        cli_ok(&m, &["stat", "/two.bin"])
    );
    assert!(fs::read(c.object_file(copy1[0], two_ino, 0)).unwrap() == two);
    assert!(read_fresh(&rt, &m, two_ino).unwrap() == two);

    // (c) Sparse: stripe 1 of three is never written (no object), and reads as zeros, as do
    // the hole in stripe 0 and what a truncate adds past the end.
    let (a, b) = (random_bytes(1000, 83), random_bytes(1000, 84));
    let far = 2 * u64::from(SPARSE_STRIPE) + 500;
    let layout = spec(3, 1, Some(SPARSE_STRIPE));
    let ino = rt.block_on(write_new(
        &writer,
        "sparse.bin",
        layout,
        &[(0, &a), (far, &b)],
    ));
    let stat = cli_ok(&m, &["stat", "/sparse.bin"]);
    assert_eq!(field(&stat, "written stripes"), "0,2", "{stat}");
    let (_, osts, _) = placement(&m, "/sparse.bin");
    assert!(
        !c.object_file(osts[1], ino, 1).exists(),
        "stripe 1 has an object"
    );
    let mut want = vec![0u8; far as usize + b.len()];
    want[..a.len()].copy_from_slice(&a);
    want[far as usize..].copy_from_slice(&b);
    assert!(
        read_fresh(&rt, &m, ino).unwrap() == want,
        "sparse file differs"
    );
    let grown = 5 * u64::from(SPARSE_STRIPE);
    let set = SetAttr {
        size: Some(grown),
        ..SetAttr::default()
    };
    rt.block_on(writer.setattr_file(&Creds::root(), ino, set, None))
        .unwrap();
    want.resize(grown as usize, 0);
    assert!(
        read_fresh(&rt, &m, ino).unwrap() == want,
        "extended file differs"
    );
    // A file only ever truncated has no written stripe and reads as zeros.
    let empty = rt.block_on(write_new(&writer, "sized.bin", spec(2, 2, None), &[]));
    let set = SetAttr {
        size: Some(3 << 20),
        ..SetAttr::default()
    };
    rt.block_on(writer.setattr_file(&Creds::root(), empty, set, None))
        .unwrap();
    assert!(!cli_ok(&m, &["stat", "/sized.bin"]).contains("written stripes"));
    assert!(read_fresh(&rt, &m, empty).unwrap() == vec![0u8; 3 << 20]);
    rt.block_on(writer.close()).unwrap();
}
