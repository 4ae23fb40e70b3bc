//! Write-behind at a kept attribute change (rustre-fuse client/io.rs, `Client::write_behind`;
//! the FUSE adapter calls it when it keeps a setattr of a file open for writing, as `tar x`
//! and `cp -a` make once a file's bytes are written), through two clients of an in-process
//! cluster (real TCP on loopback): the buffered bytes leave for the OSTs at once rather than
//! at the close, the close still reports size and times together, and another client's
//! open after the close reads every byte. Data on the MDS is off here: a file whose close
//! may carry its bytes to the MDS keeps them for the close instead (docs/data-on-mds.md).

mod common;

use common::meta_cluster::{connect, learn, root, start_objects_only};
use rustre_proto::msg::mds::{SetAttr, TimeSet};
use rustre_proto::msg::{LayoutSpec, Timestamp, ROOT_INO};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_time_change_sends_the_buffered_bytes_before_the_close() {
    let t = start_objects_only(30_000).await;
    let a = &t.client;
    let spec = LayoutSpec {
        osts: Some(vec![0]),
        ..Default::default()
    };
    let flags = libc::O_WRONLY | libc::O_EXCL;
    let f = a
        .create_file(&root(), ROOT_INO, "f", 0o644, flags, Some(spec))
        .await
        .unwrap();
    let ino = f.attr.ino;
    // The client's cache vouches for the file once the change feed is live (a setattr of
    // a file it does not know is not kept).
    assert!(
        learn(a, "f", ino).await,
        "the client's cache never learned the file"
    );

    // (The write-back's timer sends a buffer after a second: what follows takes
    // milliseconds.)
    let data = common::random_bytes(10_240, 7);
    a.write_file(f.fh, 0, data.clone().into()).await.unwrap();
    assert_eq!(a.buffered_bytes(ino), 10_240, "the write was not buffered");
    // An inode with nothing buffered: nothing to do.
    a.write_behind(ino + 1000);

    let mtime = Timestamp {
        sec: 1_000_000,
        nsec: 5,
    };
    let set = SetAttr {
        mtime: Some(TimeSet::At(mtime)),
        ..Default::default()
    };
    let kept = a
        .kept_setattr(root, ino, &set)
        .expect("the time change was not kept");
    assert_eq!(kept.mtime, mtime);
    a.write_behind(ino);
    assert_eq!(
        a.buffered_bytes(ino),
        0,
        "the buffered bytes did not leave at the kept change"
    );
    a.release_file(f.fh).await.unwrap();

    let b = &connect(&t.mgs).await;
    let g = b.open_file(&root(), ino, libc::O_RDONLY).await.unwrap();
    assert_eq!(g.attr.size, 10_240);
    assert_eq!(g.attr.mtime, mtime, "the kept time was lost");
    let got = b.read_file(g.fh, 0, 20_000).await.unwrap();
    assert_eq!(&got[..], &data[..]);
    b.release_file(g.fh).await.unwrap();
}
