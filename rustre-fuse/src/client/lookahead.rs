//! Small files read ahead of a reader that opens a directory's files in listing order.
//!
//! `tar c`, `cp -r`, `rsync` and `grep -r` list a directory and then open its files one
//! after another, in the order the listing gave them. Each cold small file then costs its
//! open (the MDS) and its read (an OST's disk) in sequence, one file at a time: the read
//! an open starts beside it ([`super::open_prefetch`]) only hides the MDS's part. So the
//! client remembers the order of the listings it fetched, and when two opens follow each
//! other in one listing (the entry after the one opened last, or the one after that), it
//! starts the reads of the next [`LOOKAHEAD_FILES`] small files of that listing in the
//! background, as the kernel reads ahead in a file: their disk reads overlap each other
//! and the reader's work.
//!
//! A reader that opens files by name, without listing (a script walking `f00000`,
//! `f00001`, ...), is followed by names instead: when two opens of one directory come in
//! name order (the names as looked up through this client), the entries after the second
//! are listed from the MDS in the background ([`Ahead::After`], one page of
//! [`LOOKAHEAD_FILES`] with attributes: the MDS lists a directory in name order) and
//! their small files read; the next page is listed when the reader is half way through.
//!
//! Close-to-open holds as it does for the kernel's cached pages: a page read ahead is read
//! after the listing's attributes were known, and it is kept at the file's open only if
//! the MDS answers that open with the size, mtime and layout the read followed
//! ([`Lookahead::take`]); a write another client closed after the read changed the mtime,
//! and the page is dropped and read again. Only files this client's metadata cache knows
//! (size, layout) and that the open-prefetch rules would read ([`super::open_prefetch`])
//! are read ahead; nothing is read ahead for a reader that jumps around.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use lru::LruCache;
use rustre_proto::msg::mds::DirEntry;
use rustre_proto::msg::{Attr, Ino, Layout, Timestamp};
use rustre_proto::sync::lock;

/// How many of the next files of a listing are read ahead of a reader in listing order.
pub(super) const LOOKAHEAD_FILES: usize = 8;
/// Directories whose listing order is remembered.
const LISTINGS_MAX: usize = 64;
/// Entries remembered of one listing (the rest are not read ahead).
const LISTING_ENTRIES_MAX: usize = 1 << 16;
/// Files whose listing, and whose read-ahead attributes, are remembered.
const FILES_MAX: usize = 1 << 16;
/// Files whose name (as last looked up) is remembered, and directories read by name.
const NAMED_MAX: usize = 4096;

/// What an open asks to be read ahead.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ahead {
    Nothing,
    /// These files, the next ones of a listing this client holds.
    Files(Vec<Ino>),
    /// The small files among the entries of `dir` after `after` (a reader opening by name
    /// in name order): list them, then read them ([`Lookahead::listed_after`]).
    After {
        dir: Ino,
        after: String,
    },
}

/// How far the files of one directory opened by name were read ahead.
#[derive(Default)]
struct ByName {
    /// Entries after a name are being listed.
    listing: bool,
    /// A listing was refused (a directory the reader may search but not list): no more.
    refused: bool,
    /// The last name read ahead.
    ahead_to: Option<String>,
    /// The name whose open lists the next ones.
    refill_at: Option<String>,
}

/// One directory's listing, in order.
#[derive(Default)]
struct Listing {
    order: Vec<Ino>,
    /// Entries before this one were read ahead (or passed).
    ahead_to: usize,
}

/// What a read ahead followed: the file's size, mtime and layout then.
type ReadWith = (u64, Timestamp, Layout);

struct Inner {
    listings: LruCache<Ino, Listing>,
    /// Where each listed file is: its directory and its place in the listing.
    place: LruCache<Ino, (Ino, usize)>,
    /// The last file opened, by its place.
    last_open: Option<(Ino, usize)>,
    /// Files read ahead and not opened since.
    read: LruCache<Ino, ReadWith>,
    /// The directory and name each file was last looked up by.
    named: LruCache<Ino, (Ino, String)>,
    /// The last file opened by a name.
    last_named: Option<(Ino, String)>,
    by_name: LruCache<Ino, ByName>,
}

/// The listings and read-aheads of one client.
pub(super) struct Lookahead {
    inner: Mutex<Inner>,
    started: AtomicU64,
    kept: AtomicU64,
}

impl Default for Lookahead {
    fn default() -> Self {
        let n = |v: usize| NonZeroUsize::new(v).expect("non-zero");
        Lookahead {
            inner: Mutex::new(Inner {
                listings: LruCache::new(n(LISTINGS_MAX)),
                place: LruCache::new(n(FILES_MAX)),
                last_open: None,
                read: LruCache::new(n(FILES_MAX)),
                named: LruCache::new(n(NAMED_MAX)),
                last_named: None,
                by_name: LruCache::new(n(LISTINGS_MAX)),
            }),
            started: AtomicU64::new(0),
            kept: AtomicU64::new(0),
        }
    }
}

impl Inner {
    /// An open of the entry at `at` of `dir`'s listing.
    fn in_listing(&mut self, dir: Ino, at: usize) -> Ahead {
        let previous = self.last_open.replace((dir, at));
        let in_order = previous.is_some_and(|(d, p)| d == dir && p < at && at - p <= 2);
        let Some(l) = self.listings.get_mut(&dir).filter(|_| in_order) else {
            return Ahead::Nothing;
        };
        let from = l.ahead_to.max(at + 1);
        let to = (at + 1 + LOOKAHEAD_FILES).min(l.order.len());
        if from >= to {
            return Ahead::Nothing;
        }
        l.ahead_to = to;
        Ahead::Files(l.order[from..to].to_vec())
    }

    /// An open of `name` in `dir` by a reader that did not list it.
    fn by_name(&mut self, dir: Ino, name: String) -> Ahead {
        let previous = self.last_named.replace((dir, name.clone()));
        if !previous.is_some_and(|(d, p)| d == dir && p < name) {
            return Ahead::Nothing;
        }
        let run = self.by_name.get_or_insert_mut(dir, ByName::default);
        if run.listing || run.refused {
            return Ahead::Nothing;
        }
        let after = match (&run.ahead_to, &run.refill_at) {
            (None, _) => name,
            // Past what was read ahead: start again from here.
            (Some(to), _) if name > *to => name,
            (Some(to), Some(at)) if name >= *at => to.clone(),
            _ => return Ahead::Nothing,
        };
        run.listing = true;
        Ahead::After { dir, after }
    }
}

impl Lookahead {
    /// A page of `dir`'s listing was fetched: the first (a listing from its start) or the
    /// one after the last.
    pub(super) fn listed(&self, dir: Ino, page: &[DirEntry], first: bool) {
        let mut inner = lock(&self.inner);
        if first {
            inner.listings.put(dir, Listing::default());
        }
        let start = match inner.listings.get(&dir) {
            Some(l) => l.order.len(),
            None => return,
        };
        let room = LISTING_ENTRIES_MAX.saturating_sub(start);
        let inos: Vec<Ino> = page.iter().take(room).map(|e| e.ino).collect();
        for (i, ino) in inos.iter().enumerate() {
            inner.place.put(*ino, (dir, start + i));
        }
        if let Some(l) = inner.listings.get_mut(&dir) {
            l.order.extend(inos);
        }
    }

    /// `ino`, a regular file, was looked up as `name` in `dir`.
    pub(super) fn looked_up(&self, ino: Ino, dir: Ino, name: &str) {
        let mut inner = lock(&self.inner);
        if inner
            .named
            .peek(&ino)
            .is_some_and(|(d, n)| *d == dir && n == name)
        {
            return;
        }
        inner.named.put(ino, (dir, name.to_string()));
    }

    /// `ino` is being opened: what to read ahead now, if this open follows the last one in
    /// its listing or, opened by name, in name order (each file is handed out once).
    pub(super) fn opened(&self, ino: Ino) -> Ahead {
        let mut inner = lock(&self.inner);
        if let Some((dir, at)) = inner.place.get(&ino).copied() {
            return inner.in_listing(dir, at);
        }
        let Some((dir, name)) = inner.named.get(&ino).cloned() else {
            return Ahead::Nothing;
        };
        inner.by_name(dir, name)
    }

    /// The entries of `dir` after `after` were listed for [`Ahead::After`] (`None`: the
    /// listing failed, and `dir` is not listed again): the files to read ahead among them
    /// are the caller's.
    pub(super) fn listed_after(&self, dir: Ino, after: &str, page: Option<&[DirEntry]>) {
        let mut inner = lock(&self.inner);
        let run = inner.by_name.get_or_insert_mut(dir, ByName::default);
        run.listing = false;
        let Some(page) = page else {
            run.refused = true;
            return;
        };
        let last = page.last().map_or(after, |e| e.name.as_str());
        run.ahead_to = Some(last.to_string());
        run.refill_at = page
            .get(page.len().saturating_sub(LOOKAHEAD_FILES / 2))
            .or(page.last())
            .map(|e| e.name.clone());
    }

    /// A read ahead of `attr`'s file starts, following these attributes.
    pub(super) fn reading(&self, attr: &Attr, layout: &Layout) {
        self.started.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner)
            .read
            .put(attr.ino, (attr.size, attr.mtime, layout.clone()));
    }

    /// At the open of a file, answered with `attr`: whether its page read ahead may stay
    /// (the file is as the read found it). The record goes either way.
    pub(super) fn take(&self, attr: &Attr) -> bool {
        let Some((size, mtime, layout)) = lock(&self.inner).read.pop(&attr.ino) else {
            return false;
        };
        let same =
            size == attr.size && mtime == attr.mtime && attr.layout.as_ref() == Some(&layout);
        if same {
            self.kept.fetch_add(1, Ordering::Relaxed);
        }
        same
    }

    /// Files read ahead, and how many of those reads their open kept.
    pub(super) fn counts(&self) -> (u64, u64) {
        (
            self.started.load(Ordering::Relaxed),
            self.kept.load(Ordering::Relaxed),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::FileKind;

    fn entries(inos: std::ops::Range<Ino>) -> Vec<DirEntry> {
        inos.map(|ino| DirEntry {
            name: format!("f{ino}"),
            ino,
            kind: FileKind::File,
            attr: None,
        })
        .collect()
    }

    #[test]
    fn opens_in_listing_order_read_the_next_files_once() {
        let la = Lookahead::default();
        la.listed(1, &entries(10..15), true);
        la.listed(1, &entries(15..40), false);
        assert_eq!(la.opened(10), Ahead::Nothing, "one open says nothing");
        let first = Ahead::Files((12..12 + LOOKAHEAD_FILES as Ino).collect());
        assert_eq!(la.opened(11), first);
        // The next opens hand out only what was not read ahead yet.
        assert_eq!(
            la.opened(12),
            Ahead::Files(vec![12 + LOOKAHEAD_FILES as Ino])
        );
        // Skipping one entry is still in order; jumping is not.
        assert!(matches!(la.opened(14), Ahead::Files(f) if f.len() == 2));
        assert_eq!(la.opened(30), Ahead::Nothing);
        assert_eq!(la.opened(10), Ahead::Nothing, "backwards");
        // A listing from the start again forgets what was handed out.
        la.listed(1, &entries(10..40), true);
        la.opened(10);
        assert_eq!(la.opened(11), first);
        // Files nobody listed or looked up are not read ahead.
        assert_eq!(la.opened(99), Ahead::Nothing);
    }

    #[test]
    fn opens_by_name_in_name_order_list_what_follows() {
        let la = Lookahead::default();
        for i in 0..40u64 {
            la.looked_up(100 + i, 1, &format!("f{i:02}"));
        }
        assert_eq!(la.opened(100), Ahead::Nothing, "one open says nothing");
        let after = |name: &str| Ahead::After {
            dir: 1,
            after: name.into(),
        };
        assert_eq!(la.opened(101), after("f01"));
        assert_eq!(la.opened(102), Ahead::Nothing, "one listing at a time");
        // The listing brought f02..f09: the next is asked for half way through them.
        let names: Vec<DirEntry> = (2..10u64)
            .map(|i| DirEntry {
                name: format!("f{i:02}"),
                ino: 100 + i,
                kind: FileKind::File,
                attr: None,
            })
            .collect();
        la.listed_after(1, "f01", Some(&names));
        assert_eq!(la.opened(103), Ahead::Nothing);
        assert_eq!(la.opened(106), after("f09"), "half way");
        la.listed_after(1, "f09", Some(&[]));
        // Out of name order, or another directory: nothing.
        assert_eq!(la.opened(104), Ahead::Nothing);
        la.looked_up(500, 2, "a");
        assert_eq!(la.opened(500), Ahead::Nothing);
        // Past what was read ahead: from there.
        la.opened(120);
        assert_eq!(la.opened(121), after("f21"));
        // A directory that refuses its listing is not asked again.
        la.listed_after(1, "f21", None);
        assert_eq!(la.opened(130), Ahead::Nothing);
        assert_eq!(la.opened(131), Ahead::Nothing);
    }

    #[test]
    fn a_read_ahead_stands_only_for_the_file_it_read() {
        let la = Lookahead::default();
        let t = |sec| Timestamp { sec, nsec: 0 };
        let attr = super::super::open_prefetch::tests::file(100, 1 << 20);
        let layout = attr.layout.clone().unwrap();
        la.reading(&attr, &layout);
        assert!(la.take(&attr));
        assert!(!la.take(&attr), "taken once");
        la.reading(&attr, &layout);
        let mut written = attr.clone();
        written.mtime = t(2);
        assert!(!la.take(&written), "written since the read");
        la.reading(&attr, &layout);
        let mut moved = attr.clone();
        moved.layout = Some(Layout::striped(1 << 20, vec![1]));
        assert!(!la.take(&moved), "moved to other objects");
        assert_eq!(la.counts(), (3, 1));
    }
}
