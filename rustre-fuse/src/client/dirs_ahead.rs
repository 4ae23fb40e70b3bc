//! Directories opened ahead of a tree walker: the first page of the next subdirectories of
//! a listing, fetched in the background while the walker is busy in the one it opened.
//!
//! `rm -r`, `tar c`, `find`, `du` and `cp -r` list a directory and then open its
//! subdirectories one after another, in the order the listing gave them. Each open of a
//! directory this client has not opened lately is an MDS call the walker waits for (its
//! attributes, `..` and the first page of its listing: [`super::dir_handles`]): 870 of
//! them in an `rm -rf` of `/usr/include`, a median of about 110 us each on the 2-vCPU VM
//! (docs/benchmarks.md). So when an open of a directory has to ask the MDS, and that
//! directory is a subdirectory of a listing this client fetched, the opens of the next
//! [`DIRS_AHEAD`] subdirectories of that listing are started beside it; an open answered
//! from a page opened ahead moves that window on by one, and starts the opens of the first
//! subdirectories of its own listing (the walker goes down into them next). Their answers are
//! kept as first pages ([`super::dirs::FirstPage`]), under the rules every kept page
//! follows: only for the same caller, only while the metadata cache holds the directory's
//! attributes as they came with the answer (no change to it reached this client since),
//! and for at most `FIRST_PAGE_REUSE`; otherwise the walker's open asks the MDS as before.
//! A walker that reaches a directory whose open ahead is still in flight waits for that
//! answer instead of asking the MDS a second time.
//!
//! Each subdirectory of a listing is opened ahead at most once, and none within
//! `FIRST_PAGE_REUSE` of a change this client answered ahead (`super::async_dirops`), as
//! in an `rm -r`: each such change moves the metadata cache on
//! before an answer asked earlier is back, so that answer could not be kept (in an
//! `rm -rf` of `/usr/include`, 570 directories opened ahead gave 290 reuses).

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};

use lru::LruCache;
use rustre_proto::msg::mds::DirEntry;
use rustre_proto::msg::{FileKind, Ino};
use rustre_proto::sync::lock;
use tokio::sync::watch;

/// How many of the next subdirectories of a listing are opened ahead of a walker.
pub(super) const DIRS_AHEAD: usize = 8;
/// Directories whose subdirectories (in listing order) are remembered.
const LISTINGS_MAX: usize = 256;
/// Subdirectories remembered of one listing (the rest are not opened ahead).
const SUBDIRS_MAX: usize = 1 << 14;
/// Subdirectories whose place in a listing is remembered.
const PLACES_MAX: usize = 1 << 16;

/// The subdirectories of one listing, in order.
#[derive(Default)]
struct Subdirs {
    order: Vec<Ino>,
    /// Subdirectories before this one were opened ahead (or passed).
    ahead_to: usize,
}

struct Inner {
    listings: LruCache<Ino, Subdirs>,
    /// Where each listed subdirectory is: its parent and its place among the subdirectories.
    place: LruCache<Ino, (Ino, usize)>,
    /// The subdirectories handed out to be opened ahead and not opened since.
    handed: LruCache<Ino, ()>,
}

impl Inner {
    /// The subdirectories of `dir`'s listing from place `at` to [`DIRS_AHEAD`] past it,
    /// less those handed out before.
    fn hand_out(&mut self, dir: Ino, at: usize) -> Vec<Ino> {
        let Some(l) = self.listings.get_mut(&dir) else {
            return Vec::new();
        };
        let from = l.ahead_to.max(at);
        let to = (at + DIRS_AHEAD).min(l.order.len());
        if from >= to {
            return Vec::new();
        }
        l.ahead_to = to;
        let out = l.order[from..to].to_vec();
        for ino in &out {
            self.handed.put(*ino, ());
        }
        out
    }
}

/// The listings' subdirectories of one client, and how far each was opened ahead.
pub(super) struct DirsAhead {
    inner: Mutex<Inner>,
    /// The opens ahead whose answer has not come back, each with what says it came: the
    /// walker's open of such a directory waits for it rather than asking twice.
    pending: Arc<Mutex<Pending>>,
}

type Pending = HashMap<Ino, watch::Receiver<bool>>;

/// An open ahead of one directory in flight: when dropped (answered, or not), it is no
/// longer pending and the opens waiting for it go on.
pub(super) struct Opening {
    pending: Arc<Mutex<Pending>>,
    ino: Ino,
    done: watch::Sender<bool>,
}

impl Drop for Opening {
    fn drop(&mut self) {
        lock(&self.pending).remove(&self.ino);
        let _ = self.done.send(true);
    }
}

impl Default for DirsAhead {
    fn default() -> Self {
        let n = |v: usize| NonZeroUsize::new(v).expect("non-zero");
        DirsAhead {
            inner: Mutex::new(Inner {
                listings: LruCache::new(n(LISTINGS_MAX)),
                place: LruCache::new(n(PLACES_MAX)),
                handed: LruCache::new(n(PLACES_MAX)),
            }),
            pending: Default::default(),
        }
    }
}

impl DirsAhead {
    /// A page of `dir`'s listing was fetched: the first (a listing from its start) or the
    /// one after the last.
    pub(super) fn listed(&self, dir: Ino, page: &[DirEntry], first: bool) {
        let mut inner = lock(&self.inner);
        if first {
            inner.listings.put(dir, Subdirs::default());
        }
        let start = match inner.listings.get(&dir) {
            Some(l) => l.order.len(),
            None => return,
        };
        let subdirs: Vec<Ino> = page
            .iter()
            .filter(|e| e.kind == FileKind::Dir)
            .take(SUBDIRS_MAX.saturating_sub(start))
            .map(|e| e.ino)
            .collect();
        for (i, ino) in subdirs.iter().enumerate() {
            inner.place.put(*ino, (dir, start + i));
        }
        if let Some(l) = inner.listings.get_mut(&dir) {
            l.order.extend(subdirs);
        }
    }

    /// Directory `ino` is being opened: the next subdirectories after it in its parent's
    /// listing, up to [`DIRS_AHEAD`] past it, not handed out yet.
    pub(super) fn next_siblings(&self, ino: Ino) -> Vec<Ino> {
        let mut inner = lock(&self.inner);
        let Some((parent, at)) = inner.place.get(&ino).copied() else {
            return Vec::new();
        };
        inner.hand_out(parent, at + 1)
    }

    /// The first [`DIRS_AHEAD`] subdirectories of `dir`'s listing not handed out yet.
    pub(super) fn first_subdirs(&self, dir: Ino) -> Vec<Ino> {
        lock(&self.inner).hand_out(dir, 0)
    }

    /// Whether `ino` was handed out to be opened ahead (asked once: the walker's open).
    pub(super) fn was_handed_out(&self, ino: Ino) -> bool {
        lock(&self.inner).handed.pop(&ino).is_some()
    }

    /// An open ahead of `ino` starts; pending until the returned guard is dropped.
    pub(super) fn started(&self, ino: Ino) -> Opening {
        let (done, waiting) = watch::channel(false);
        lock(&self.pending).insert(ino, waiting);
        Opening {
            pending: self.pending.clone(),
            ino,
            done,
        }
    }

    /// Waits for the open ahead of `ino` in flight, if there is one; true if there was.
    pub(super) async fn wait_pending(&self, ino: Ino) -> bool {
        let waiting = lock(&self.pending).get(&ino).cloned();
        match waiting {
            Some(mut w) => {
                // An error: the guard is gone, so the open is over too.
                let _ = w.wait_for(|done| *done).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, ino: Ino, kind: FileKind) -> DirEntry {
        DirEntry {
            name: name.into(),
            ino,
            kind,
            attr: None,
        }
    }

    fn listing(n: u64) -> Vec<DirEntry> {
        listing_at(100, n)
    }

    /// Directories `base`.., each followed by a file.
    fn listing_at(base: u64, n: u64) -> Vec<DirEntry> {
        (0..n)
            .flat_map(|i| {
                [
                    entry(&format!("d{i}"), base + i, FileKind::Dir),
                    entry(&format!("f{i}"), base + 1000 + i, FileKind::File),
                ]
            })
            .collect()
    }

    #[test]
    fn the_next_subdirectories_are_handed_out_once() {
        let a = DirsAhead::default();
        a.listed(1, &listing(20), true);
        // The first open: the next DIRS_AHEAD subdirectories, files skipped.
        assert_eq!(a.next_siblings(100), (101..=108).collect::<Vec<_>>());
        // An open of one handed out asks for nothing new until past the window.
        assert_eq!(a.next_siblings(101), vec![109]);
        assert_eq!(a.next_siblings(101), Vec::<Ino>::new());
        // A jump ahead hands out from after it, and the end of the listing bounds it.
        assert_eq!(a.next_siblings(115), (116..=119).collect::<Vec<_>>());
        assert!(a.next_siblings(119).is_empty());
        // Not a listed subdirectory: nothing.
        assert!(a.next_siblings(1000).is_empty());
        assert!(a.next_siblings(7).is_empty());
    }

    #[test]
    fn a_directory_opened_from_a_page_opened_ahead_hands_out_its_first_subdirectories() {
        let a = DirsAhead::default();
        a.listed(1, &listing(3), true);
        assert_eq!(a.next_siblings(100), vec![101, 102]);
        assert!(a.was_handed_out(101));
        assert!(!a.was_handed_out(101), "asked once");
        assert!(!a.was_handed_out(100), "opened by the walker, not ahead");
        // 101's own listing: its first subdirectories, once.
        a.listed(101, &listing_at(300, 3), true);
        assert_eq!(a.first_subdirs(101), vec![300, 301, 302]);
        assert!(a.first_subdirs(101).is_empty());
    }

    #[tokio::test]
    async fn an_open_waits_for_the_open_ahead_of_its_directory_in_flight() {
        let a = Arc::new(DirsAhead::default());
        assert!(!a.wait_pending(5).await);
        let guard = a.started(5);
        let waiter = {
            let a = a.clone();
            tokio::spawn(async move { a.wait_pending(5).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(guard);
        assert!(waiter.await.unwrap());
        assert!(!a.wait_pending(5).await);
    }

    #[test]
    fn pages_after_the_first_extend_the_listing_and_a_new_listing_starts_over() {
        let a = DirsAhead::default();
        let all = listing(6);
        a.listed(1, &all[..4], true);
        a.listed(1, &all[4..], false);
        assert_eq!(a.next_siblings(100), (101..=105).collect::<Vec<_>>());
        // Listed again from its start: handed out again.
        a.listed(1, &all, true);
        assert_eq!(a.next_siblings(100), (101..=105).collect::<Vec<_>>());
        // A later page of a listing not remembered is ignored.
        a.listed(2, &all, false);
        a.listed(2, &[entry("x", 200, FileKind::Dir)], false);
        assert!(a.next_siblings(200).is_empty());
    }
}
