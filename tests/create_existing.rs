//! A create that opens an existing file this client holds open for writing
//! (rustre-fuse client/handles.rs, `before_opening_existing`), through an in-process cluster
//! (real TCP on loopback): as an open does, it sends first what the client kept for the
//! file, so the MDS checks the open against the mode the writer set; and with O_TRUNC it
//! sends the writer's buffered bytes first, so the truncate cuts them instead of their
//! landing after it.

mod common;

use bytes::Bytes;
use common::meta_cluster::{learn, root, start, user};
use rustre_proto::msg::mds::SetAttr;
use rustre_proto::msg::ROOT_INO;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_of_an_existing_name_sees_what_its_writer_kept_and_buffered() {
    let t = start(30_000).await;
    let a = &t.client;
    let flags = libc::O_RDWR | libc::O_EXCL;
    let f = a
        .create_file(&root(), ROOT_INO, "f", 0o600, flags, None)
        .await
        .unwrap();
    let ino = f.attr.ino;
    // The cache must know the name (a create of a name it does not know goes as it is) and
    // vouch for the file (a setattr of a file it does not know is not kept).
    assert!(
        learn(a, "f", ino).await,
        "the client's cache never learned the file"
    );

    // The writer makes the file writable by everyone; the change is kept until its close.
    let set = SetAttr {
        perm: Some(0o666),
        ..Default::default()
    };
    let kept = a
        .kept_setattr(root, ino, &set)
        .expect("the chmod was not kept");
    assert_eq!(kept.perm, 0o666);
    // Another user's create of the same name opens the file: allowed by the mode set.
    let g = a
        .create_file(&user(1000), ROOT_INO, "f", 0o644, libc::O_WRONLY, None)
        .await
        .expect("the create was checked against the mode from before the writer's chmod");
    assert_eq!(g.attr.ino, ino);
    a.release_file(g.fh).await.unwrap();

    // Bytes buffered by the writer, then a create with O_TRUNC: the file is cut to nothing
    // and stays so (the bytes were written before the truncate).
    a.write_file(f.fh, 0, Bytes::from_static(b"written before the truncate"))
        .await
        .unwrap();
    let trunc = libc::O_WRONLY | libc::O_TRUNC;
    let g = a
        .create_file(&root(), ROOT_INO, "f", 0o644, trunc, None)
        .await
        .unwrap();
    a.release_file(g.fh).await.unwrap();
    a.release_file(f.fh).await.unwrap();
    let attr = a.getattr(&root(), ino).await.unwrap();
    assert_eq!(
        attr.size, 0,
        "bytes written before the truncate outlived it"
    );
    let r = a.open_file(&root(), ino, libc::O_RDONLY).await.unwrap();
    assert!(a.read_file(r.fh, 0, 100).await.unwrap().is_empty());
    a.release_file(r.fh).await.unwrap();
}
