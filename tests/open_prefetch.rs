//! Small files read while their open is at the MDS (rustre-fuse client/open_prefetch.rs),
//! through two clients of an in-process cluster (real TCP on loopback): the read an open
//! starts is used by the reads after it, and what they return is what close-to-open
//! promises: every write another client closed before the open, also when the file moved
//! to other objects meanwhile (the read that followed the old layout is dropped). Data on
//! the MDS is off here: small files are read from their objects (docs/data-on-mds.md).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::meta_cluster::{connect, learn, new_file_on_ost0, root, start_objects_only};
use rustre_fuse::client::admin::{MigrateTarget, NoProgress};
use rustre_fuse::Client;
use rustre_proto::msg::{Ino, ROOT_INO};

const SMALL: usize = 4096;

/// Writes `data` over file `ino` from offset 0 through an open of its own, closed after.
async fn write_whole(c: &Arc<Client>, ino: Ino, data: &[u8]) {
    let f = c.open_file(&root(), ino, libc::O_WRONLY).await.unwrap();
    c.write_file(f.fh, 0, data.to_vec().into()).await.unwrap();
    c.release_file(f.fh).await.unwrap();
}

/// The whole of file `ino` (at most `max` bytes) through an open of its own.
async fn read_whole(c: &Arc<Client>, ino: Ino, max: usize) -> Vec<u8> {
    let f = c.open_file(&root(), ino, libc::O_RDONLY).await.unwrap();
    let data = c.read_file(f.fh, 0, max).await.unwrap().to_vec();
    c.release_file(f.fh).await.unwrap();
    data
}

/// A new file `name` in the root on OST 0 holding `data`; its inode.
async fn new_file(c: &Arc<Client>, name: &str, data: &[u8]) -> Ino {
    new_file_on_ost0(c, name, None, data).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_reads_a_small_file_it_knows_and_sees_what_was_closed_before_it() {
    let t = start_objects_only(30_000).await;
    let a = &t.client;
    let v1 = common::random_bytes(SMALL, 1);
    let ino = new_file(a, "f", &v1).await;
    let b = &connect(&t.mgs).await;
    // B knows the file's size and layout from its lookup (once its feed vouches for its
    // cache): its open reads the file.
    assert!(learn(b, "f", ino).await, "B's cache never learned the file");
    assert_eq!(b.open_prefetches(), (0, 0));
    assert_eq!(read_whole(b, ino, 2 * SMALL).await, v1);
    assert_eq!(
        b.open_prefetches(),
        (1, 1),
        "the open did not read the file ahead"
    );
    // The page is in B's cache now: the next open has nothing to read ahead.
    assert_eq!(read_whole(b, ino, 2 * SMALL).await, v1);
    assert_eq!(b.open_prefetches(), (1, 1));

    // A rewrites the file and closes it: B's next open sees the new bytes, whether it reads
    // them ahead (its cache may still hold the old attributes) or after the open.
    for round in 2..6u64 {
        let v = common::random_bytes(SMALL, round);
        write_whole(a, ino, &v).await;
        assert_eq!(read_whole(b, ino, 2 * SMALL).await, v, "round {round}");
    }

    // Not read ahead: a file over the limit, and an open for writing only.
    let (started, _) = b.open_prefetches();
    let big = common::random_bytes(200 << 10, 9);
    let big_ino = new_file(a, "big", &big).await;
    b.lookup(&root(), ROOT_INO, "big").await.unwrap();
    assert_eq!(read_whole(b, big_ino, big.len()).await, big);
    let g = common::random_bytes(SMALL, 10);
    let g_ino = new_file(a, "g", &g).await;
    b.lookup(&root(), ROOT_INO, "g").await.unwrap();
    let f = b.open_file(&root(), g_ino, libc::O_WRONLY).await.unwrap();
    b.release_file(f.fh).await.unwrap();
    assert_eq!(
        b.open_prefetches().0,
        started,
        "read ahead: {:?}",
        b.open_prefetches()
    );
    assert_eq!(read_whole(b, g_ino, 2 * SMALL).await, g);
}

/// B looks a file up (its cache learns the layout on OST 0), then A moves the file to OST 1
/// and writes new bytes to it there, while B's change feed is held back (as when it is
/// slow): B's cache still has the old layout at B's open, and the read ahead follows it.
/// B reads the new bytes all the same: that read is dropped when the MDS answers the open
/// with the new layout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_ahead_with_a_layout_the_open_does_not_confirm_is_dropped() {
    let t = start_objects_only(30_000).await;
    let a = &t.client;
    let b = &connect(&t.mgs).await;
    let to_ost1 = MigrateTarget {
        osts: Some(vec![1]),
        ..Default::default()
    };
    const ROUNDS: u64 = 20;
    for round in 0..ROUNDS {
        let name = format!("f{round}");
        let old = common::random_bytes(SMALL, 100 + round);
        let ino = new_file(a, &name, &old).await;
        assert!(
            learn(b, &name, ino).await,
            "round {round}: B's cache never learned the file"
        );
        b.hold_feed(true);
        let moved = a.migrate_file(ino, &to_ost1, &NoProgress).await.unwrap();
        assert_eq!(moved.osts, vec![1]);
        let new = common::random_bytes(SMALL, 200 + round);
        write_whole(a, ino, &new).await;
        assert_eq!(read_whole(b, ino, 2 * SMALL).await, new, "round {round}");
        b.hold_feed(false);
    }
    let (started, kept) = b.open_prefetches();
    eprintln!("{ROUNDS} opens: {started} read ahead, {kept} of those kept");
    // Reads ahead happen only while the held cache still vouches (its lease): most rounds.
    assert!(started > 0, "no open read ahead: the test tested nothing");
    assert!(kept < started, "no read ahead was dropped");
}

/// A reader that opens a directory's small files one after another in listing order (as
/// `tar c` does) gets the next ones read ahead (rustre-fuse client/lookahead.rs), and what
/// it reads is what close-to-open promises: a file another client rewrote after its read
/// ahead, at the same size, is read anew at its open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_opened_in_listing_order_are_read_ahead_and_stay_fresh() {
    const FILES: u64 = 12;
    let t = start_objects_only(30_000).await;
    let a = &t.client;
    let mut want = std::collections::HashMap::new();
    for i in 0..FILES {
        let v = common::random_bytes(SMALL, 100 + i);
        let ino = new_file(a, &format!("f{i:02}"), &v).await;
        want.insert(ino, v);
    }
    let b = &connect(&t.mgs).await;
    // B lists the directory until its cache holds the files' attributes (a listing answered
    // while the change feed does not vouch for the cache is not kept).
    let mut order = Vec::new();
    for _ in 0..100 {
        let fh = b.open_dir(&root(), ROOT_INO).await.unwrap();
        order = b
            .read_dir(fh, 0)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.entry.ino)
            .filter(|ino| want.contains_key(ino))
            .collect();
        b.release_dir(fh);
        if order.iter().all(|ino| b.cached_getattr(*ino).is_some()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(order.len() as u64, FILES, "B did not list every file");
    // Two opens in listing order: the next files are read ahead.
    for ino in &order[..2] {
        assert_eq!(&read_whole(b, *ino, 2 * SMALL).await, &want[ino]);
    }
    let (started, _) = b.lookaheads();
    assert_eq!(started, 8, "read ahead after two opens in order");
    // Let the reads land, then A rewrites the fifth file (same size) and closes it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rewritten = order[4];
    let v = common::random_bytes(SMALL, 999);
    write_whole(a, rewritten, &v).await;
    want.insert(rewritten, v);
    for ino in &order[2..] {
        assert_eq!(
            &read_whole(b, *ino, 2 * SMALL).await,
            &want[ino],
            "inode {ino}"
        );
    }
    let (started, kept) = b.lookaheads();
    assert_eq!(
        started,
        FILES - 2,
        "every file after the first two read ahead"
    );
    assert_eq!(kept, started - 1, "the rewritten file's read was kept");
}

/// A reader that opens files by name in name order without listing their directory (a
/// script walking `f00`, `f01`, ...) gets the entries after each listed from the MDS and
/// read ahead (rustre-fuse client/lookahead.rs), and a file another client rewrote after
/// its read ahead, at the same size, is read anew at its open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_opened_by_name_in_name_order_are_read_ahead_and_stay_fresh() {
    const FILES: u64 = 24;
    let t = start_objects_only(30_000).await;
    let a = &t.client;
    let mut files = Vec::new();
    for i in 0..FILES {
        let name = format!("f{i:02}");
        let v = common::random_bytes(SMALL, 200 + i);
        let ino = new_file(a, &name, &v).await;
        files.push((name, ino, v));
    }
    let b = &connect(&t.mgs).await;
    let read_by_name = |name: String| async move {
        let ino = b.lookup(&root(), ROOT_INO, &name).await.unwrap().ino;
        read_whole(b, ino, 2 * SMALL).await
    };
    for (name, _, v) in &files[..2] {
        assert_eq!(&read_by_name(name.clone()).await, v, "{name}");
    }
    // The entries after f01 are listed and read in the background.
    let mut waited = 0;
    while b.lookaheads().0 < 8 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        waited += 1;
    }
    assert_eq!(
        b.lookaheads().0,
        8,
        "read ahead after two opens in name order"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let v = common::random_bytes(SMALL, 999);
    write_whole(a, files[4].1, &v).await;
    files[4].2 = v;
    for (name, _, v) in &files[2..] {
        assert_eq!(&read_by_name(name.clone()).await, v, "{name}");
    }
    let (started, kept) = b.lookaheads();
    assert!((8..=FILES - 2).contains(&started), "{started} read ahead");
    assert!(
        kept >= 7 && kept < started,
        "{kept} of {started} reads kept (all but the rewritten file's, at least of the first 8)"
    );
}
