//! Reads the client's page cache holds, answered at once (rustre-fuse client/io.rs,
//! `Client::read_now`; the FUSE adapter calls it on fuser's thread, without a hop to the
//! runtime), through two clients of an in-process cluster (real TCP on loopback): the
//! bytes are the file's, over one page or several and at the end of file; a range not
//! cached, or an inode with writes buffered, goes the long way; and an open that finds the
//! file changed by another client leaves nothing of the old bytes to answer from. A random
//! reader's miss caches the 64 KiB block around it, and the reads near it are hits. The
//! pages of a file this client unlinked for good go at once.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::meta_cluster::{connect, new_file_on_ost0, root, start};
use rustre_fuse::Client;
use rustre_proto::msg::{Ino, ROOT_INO};

/// The page cache's pages are stripes: small ones, so a file spans several.
const STRIPE: u32 = 64 * 1024;
/// Three stripes and a bit.
const SIZE: usize = 3 * STRIPE as usize + 5000;

/// A new file `name` in the root on OST 0, in stripes of `stripe` bytes, holding `data`.
async fn new_file(c: &Arc<Client>, name: &str, stripe: u32, data: &[u8]) -> Ino {
    new_file_on_ost0(c, name, Some(stripe), data).await
}

/// Reads the whole of open file `fh` front to back the long way, 128 KiB at a time.
async fn read_through(c: &Arc<Client>, fh: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = c.read_file(fh, out.len() as u64, 128 * 1024).await.unwrap();
        if chunk.is_empty() {
            return out;
        }
        out.extend_from_slice(&chunk);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_cached_pages_are_answered_at_once_with_the_bytes_the_file_holds() {
    let t = start(30_000).await;
    let a = &t.client;
    let v1 = common::random_bytes(SIZE, 1);
    let ino = new_file(a, "f", STRIPE, &v1).await;
    let b = &connect(&t.mgs).await;

    let f = b.open_file(&root(), ino, libc::O_RDONLY).await.unwrap();
    assert_eq!(b.read_now(f.fh, 0, 4096), None, "nothing is cached yet");
    assert_eq!(
        b.read_now(f.fh, SIZE as u64, 4096),
        Some(Bytes::new()),
        "a read past the end of file is answered at once, empty"
    );
    assert_eq!(read_through(b, f.fh).await, v1);
    // Inside one page, over a page boundary, over three pages, the tail, one byte.
    let stripe = STRIPE as usize;
    for (off, len) in [
        (0, 4096),
        (stripe - 100, 300),
        (1000, 2 * stripe + 10),
        (SIZE - 10, 4096),
        (stripe + 7, 1),
    ] {
        let got = b
            .read_now(f.fh, off as u64, len)
            .unwrap_or_else(|| panic!("cached range {off}+{len} not answered at once"));
        assert_eq!(&got[..], &v1[off..(off + len).min(SIZE)], "{off}+{len}");
    }
    b.release_file(f.fh).await.unwrap();

    // Writes buffered for the inode: every read goes the long way, which sends them first.
    let f = b.open_file(&root(), ino, libc::O_RDWR).await.unwrap();
    assert!(b.read_now(f.fh, 0, 4096).is_some(), "the pages stayed");
    b.write_file(f.fh, 100_000, Bytes::from_static(b"0123456789"))
        .await
        .unwrap();
    assert_eq!(
        b.read_now(f.fh, 0, 4096),
        None,
        "answered over a buffered write"
    );
    let got = b.read_file(f.fh, 99_995, 20).await.unwrap();
    assert_eq!(&got[..5], &v1[99_995..100_000]);
    assert_eq!(&got[5..15], b"0123456789");
    assert_eq!(&got[15..], &v1[100_010..100_015]);
    b.release_file(f.fh).await.unwrap();

    // Another client rewrites the file, same size: B's next open finds it changed, and
    // nothing of the old bytes is answered from the cache.
    let v2 = common::random_bytes(SIZE, 2);
    let w = a.open_file(&root(), ino, libc::O_WRONLY).await.unwrap();
    a.write_file(w.fh, 0, v2.clone().into()).await.unwrap();
    a.release_file(w.fh).await.unwrap();
    let f = b.open_file(&root(), ino, libc::O_RDONLY).await.unwrap();
    for off in [0, stripe, SIZE - 100] {
        assert_eq!(
            b.read_now(f.fh, off as u64, 100),
            None,
            "old bytes at {off} answered after an open that saw the file changed"
        );
    }
    assert_eq!(read_through(b, f.fh).await, v2);
    assert_eq!(
        b.read_now(f.fh, 5, 10).as_deref(),
        Some(&v2[5..15]),
        "the new pages are answered at once"
    );
    b.release_file(f.fh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_random_readers_miss_caches_the_block_around_it_and_not_more() {
    const MIB: usize = 1 << 20;
    const BLOCK: usize = 64 * 1024;
    let t = start(30_000).await;
    let a = &t.client;
    let size = 3 * MIB + 1000;
    let v1 = common::random_bytes(size, 3);
    let ino = new_file(a, "r", MIB as u32, &v1).await;
    let b = &connect(&t.mgs).await;
    let f = b.open_file(&root(), ino, libc::O_RDONLY).await.unwrap();
    // Random 4 KiB reads, far apart (none continues the one before it).
    let offsets = [
        2 * MIB + 8192,
        40_960,
        MIB + 5 * BLOCK + 4096,
        3 * MIB - 4096,
    ];
    for off in offsets {
        let got = b.read_file(f.fh, off as u64, 4096).await.unwrap();
        assert_eq!(&got[..], &v1[off..off + 4096], "random read at {off}");
    }
    // The rest of each block read is cached; the next block, and the stripe around, are not.
    // Each block is probed from its second byte: a read at offset 0 counts as a sequential
    // reader's first (as the kernel counts it) and would start read-ahead of the pages
    // after it, which the next probes would then find cached.
    for off in offsets {
        let block = off / BLOCK * BLOCK;
        let got = b
            .read_now(f.fh, (block + 1) as u64, BLOCK - 1)
            .unwrap_or_else(|| {
                panic!("the block at {block} of a random read at {off} was not cached")
            });
        assert_eq!(&got[..], &v1[block + 1..block + BLOCK]);
        assert_eq!(b.read_now(f.fh, (block + BLOCK) as u64, 4096), None);
        assert_eq!(b.read_now(f.fh, (block + 1) as u64, BLOCK), None);
    }
    // The block of the file's tail is cut at its end.
    let got = b.read_file(f.fh, (size - 500) as u64, 4096).await.unwrap();
    assert_eq!(&got[..], &v1[size - 500..]);
    let tail = (size - 1) / BLOCK * BLOCK;
    assert_eq!(
        b.read_now(f.fh, tail as u64, BLOCK).as_deref(),
        Some(&v1[tail..])
    );
    // A random read over two blocks is read as asked, and right.
    let off = 7 * BLOCK - 100;
    let got = b.read_file(f.fh, off as u64, 4096).await.unwrap();
    assert_eq!(&got[..], &v1[off..off + 4096]);
    b.release_file(f.fh).await.unwrap();

    // This client's own write drops the block it lands in; the read after sees the write.
    let f = b.open_file(&root(), ino, libc::O_RDWR).await.unwrap();
    let at = offsets[1] + 100;
    assert!(
        b.read_now(f.fh, at as u64, 10).is_some(),
        "the block stayed"
    );
    b.write_file(f.fh, at as u64, Bytes::from_static(b"abcdefghij"))
        .await
        .unwrap();
    let got = b.read_file(f.fh, at as u64, 10).await.unwrap();
    assert_eq!(&got[..], b"abcdefghij");
    b.release_file(f.fh).await.unwrap();

    // Another client rewrites the file: B's next open answers nothing from the old blocks.
    let v2 = common::random_bytes(size, 4);
    let w = a.open_file(&root(), ino, libc::O_WRONLY).await.unwrap();
    a.write_file(w.fh, 0, v2.clone().into()).await.unwrap();
    a.release_file(w.fh).await.unwrap();
    let f = b.open_file(&root(), ino, libc::O_RDONLY).await.unwrap();
    for off in offsets {
        assert_eq!(
            b.read_now(f.fh, off as u64, 4096),
            None,
            "old block at {off}"
        );
        let got = b.read_file(f.fh, off as u64, 4096).await.unwrap();
        assert_eq!(
            &got[..],
            &v2[off..off + 4096],
            "random read at {off} after the rewrite"
        );
    }
    b.release_file(f.fh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_of_a_file_unlinked_for_good_go_at_once() {
    let t = start(30_000).await;
    let a = &t.client;
    let v = common::random_bytes(SIZE, 5);
    let (kept, gone) = (
        new_file(a, "kept", STRIPE, &v).await,
        new_file(a, "gone", STRIPE, &v).await,
    );
    for ino in [kept, gone] {
        let f = a.open_file(&root(), ino, libc::O_RDONLY).await.unwrap();
        assert_eq!(read_through(a, f.fh).await, v);
        a.release_file(f.fh).await.unwrap();
        assert!(a.cached_pages(ino) > 0, "nothing of {ino} cached");
    }
    // Unlinked while open: an orphan, still read through its handle from the cache.
    let f = a.open_file(&root(), gone, libc::O_RDONLY).await.unwrap();
    a.unlink(&root(), ROOT_INO, "gone").await.unwrap();
    assert_eq!(a.read_now(f.fh, 0, 100).as_deref(), Some(&v[..100]));
    a.release_file(f.fh).await.unwrap();
    // A second name, unlinked with no open left: the inode is destroyed.
    let f = a.open_file(&root(), kept, libc::O_RDONLY).await.unwrap();
    a.release_file(f.fh).await.unwrap();
    a.link(&root(), kept, ROOT_INO, "kept2").await.unwrap();
    a.unlink(&root(), ROOT_INO, "kept").await.unwrap();
    assert!(
        a.cached_pages(kept) > 0,
        "a file with a name left lost its pages"
    );
    a.unlink(&root(), ROOT_INO, "kept2").await.unwrap();
    assert_eq!(
        a.cached_pages(kept),
        0,
        "the pages of a destroyed file stayed"
    );
}
