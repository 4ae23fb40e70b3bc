//! Small files read while their open is at the MDS.
//!
//! A cold read of a small file used to be two round trips in sequence: the kernel's OPEN
//! (the MDS checks permission and records the open) and then its READ (an OSS). When this
//! client already knows the file's size and layout from its metadata cache, the open
//! starts the read of the whole file (page 0 of the page cache, [`super::cache`]) before it
//! asks the MDS, so the two overlap; the kernel's READ then finds the page there or joins
//! the fetch in flight.
//!
//! Why the page is right for the open (close-to-open): the fetch starts after the open
//! began, so it sees every write another client closed before it. The open first drops
//! the inode's pages and bumps it ([`super::cache::PageCache::invalidate`]),
//! so no page fetched before the open began can be inserted afterwards; an open that finds
//! the file changed keeps what was fetched since. The read follows the layout the cache
//! knew: if the MDS answers the open with any other layout (a copy turned stale, an object
//! moved), the page is dropped and the READ fetches anew. A file with buffered writes on
//! this client, an open for writing only, with O_TRUNC or O_DIRECT, a file bigger than
//! [`OPEN_PREFETCH_MAX_BYTES`] or than one page, or a page already cached: no prefetch.

use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Layout};
use rustre_proto::Error;

use super::lookahead::{Ahead, LOOKAHEAD_FILES};
use super::{metrics, Client};

/// Files of at most this many bytes are read while their open is at the MDS.
pub(super) const OPEN_PREFETCH_MAX_BYTES: u64 = 64 << 10;

/// How many opens started a read, and how many of those reads their open kept.
#[derive(Debug, Default)]
pub(super) struct PrefetchCounts {
    started: AtomicU64,
    kept: AtomicU64,
}

/// What an open's prefetch read with: the layout its open must confirm.
#[derive(Debug)]
pub(super) struct Prefetch {
    layout: Layout,
}

impl Client {
    /// Starts reading `ino` for an open with `flags` if the cache knows enough and the file
    /// is small (see the module doc). The fetch runs in the background.
    pub(super) fn prefetch_on_open(self: &Arc<Self>, ino: Ino, flags: i32) -> Option<Prefetch> {
        let attr = self.cached_getattr(ino)?;
        let layout = prefetchable(&attr, flags)?.clone();
        if self.cache.capacity() == 0 || self.writeback.holds(ino) || self.cache.has_page(ino, 0) {
            return None;
        }
        // Nothing fetched before this open may land in the cache from here on.
        self.cache.invalidate(ino);
        let gen = self.cache.stamp();
        self.prefetches.started.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = metrics::get() {
            m.open_prefetches.inc();
        }
        let (c, l, size) = (self.clone(), layout.clone(), attr.size);
        tokio::spawn(async move {
            let _ = c.page(ino, &l, 0, size, gen).await;
        });
        Some(Prefetch { layout })
    }

    /// After the MDS answered an open: whether the pages of `attr.ino` may stay, given the
    /// open's prefetch and whether the file is as this client last saw it (`unchanged`).
    /// Drops them if not. Either way the open's reads start a new stream: a read from the
    /// start of the file is sequential and served from the cache, not taken for a random
    /// read because an earlier open read that file to its end.
    pub(super) fn settle_open_pages(
        &self,
        attr: &Attr,
        prefetch: Option<Prefetch>,
        unchanged: bool,
    ) {
        let read_ahead_with = prefetch.as_ref().map(|p| &p.layout);
        // A page read ahead of a reader in listing order stands if the file is as it read it.
        let looked_ahead = self.lookahead.take(attr);
        let keep = pages_stand(
            read_ahead_with,
            attr.layout.as_ref(),
            unchanged || looked_ahead,
        );
        if keep && prefetch.is_some() {
            self.prefetches.kept.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = metrics::get() {
                m.open_prefetches_kept.inc();
            }
        }
        if keep {
            self.cache.restart_stream(attr.ino);
        } else {
            self.cache.invalidate(attr.ino);
        }
    }

    /// The MDS's open of `ino` ([`Client::open`]), with the read of a small file started
    /// before it when [`Client::prefetch_on_open`] may; a failed open drops that read.
    pub(super) async fn open_reading_ahead(
        self: &Arc<Self>,
        creds: &Creds,
        ino: Ino,
        flags: i32,
    ) -> (Result<(Attr, Option<Bytes>), Error>, Option<Prefetch>) {
        self.read_ahead_listing(creds, ino);
        let prefetch = self.prefetch_on_open(ino, flags);
        let answer = self.open(creds, ino, flags).await;
        // A read of the objects is no good for a file whose data is on the MDS.
        let useless = answer.as_ref().map_or(true, |(a, _)| a.inline);
        if useless && prefetch.is_some() {
            self.cache.invalidate(ino);
            return (answer, None);
        }
        (answer, prefetch)
    }

    /// Starts the reads of the small files that follow `ino` in its listing, or after its
    /// name, when this open follows the last one in order ([`super::lookahead`]).
    fn read_ahead_listing(self: &Arc<Self>, creds: &Creds, ino: Ino) {
        match self.lookahead.opened(ino) {
            Ahead::Nothing => {}
            Ahead::Files(inos) => {
                for next in inos {
                    if let Some(attr) = self.cached_getattr(next) {
                        self.read_ahead(&attr);
                    }
                }
            }
            Ahead::After { dir, after } => {
                let (c, creds) = (self.clone(), creds.clone());
                tokio::spawn(async move {
                    let listed = c
                        .readdir(&creds, dir, Some(&after), LOOKAHEAD_FILES as u32, true)
                        .await
                        .map(|(page, _)| page)
                        .ok();
                    c.lookahead.listed_after(dir, &after, listed.as_deref());
                    for attr in listed.iter().flatten().filter_map(|e| e.attr.as_ref()) {
                        c.read_ahead(attr);
                    }
                });
            }
        }
    }

    /// Reads `attr`'s file into the page cache in the background, as an open would read it
    /// ahead ([`prefetchable`]), unless it has a page there or writes waiting.
    fn read_ahead(self: &Arc<Self>, attr: &Attr) {
        let Some(layout) = prefetchable(attr, libc::O_RDONLY).cloned() else {
            return;
        };
        let ino = attr.ino;
        if self.cache.capacity() == 0 || self.writeback.holds(ino) || self.cache.has_page(ino, 0) {
            return;
        }
        self.lookahead.reading(attr, &layout);
        let (c, stamp, size) = (self.clone(), self.cache.stamp(), attr.size);
        tokio::spawn(async move {
            let _ = c.page(ino, &layout, 0, size, stamp).await;
        });
    }

    /// Small files read ahead of a reader in listing order, and how many of those reads
    /// their open kept (the rest were dropped: the file changed since).
    pub fn lookaheads(&self) -> (u64, u64) {
        self.lookahead.counts()
    }

    /// Opens that read their small file while asking the MDS, and how many of those reads
    /// were kept (the rest were dropped: the MDS answered with another layout).
    pub fn open_prefetches(&self) -> (u64, u64) {
        let p = &self.prefetches;
        (
            p.started.load(Ordering::Relaxed),
            p.kept.load(Ordering::Relaxed),
        )
    }
}

/// Whether the cached pages of a file may stay after its open: with a read ahead started
/// with layout `read_ahead_with`, if the open confirmed that layout (every page cached now
/// was fetched after the open began, from the objects the open names), whatever the file's
/// attributes say; without, if the file is `unchanged` since this client last saw it.
fn pages_stand(read_ahead_with: Option<&Layout>, opened: Option<&Layout>, unchanged: bool) -> bool {
    match read_ahead_with {
        Some(l) => opened == Some(l),
        None => unchanged,
    }
}

/// The layout to read `attr`'s file with for an open with `flags`, if the open may read it
/// ahead: a regular file of 1 to [`OPEN_PREFETCH_MAX_BYTES`] bytes, inside its first page,
/// opened for reading without O_TRUNC or O_DIRECT.
fn prefetchable(attr: &Attr, flags: i32) -> Option<&Layout> {
    let reads = flags & libc::O_ACCMODE != libc::O_WRONLY;
    let plain = flags & (libc::O_TRUNC | libc::O_DIRECT) == 0;
    let layout = attr.layout.as_ref()?;
    let small = attr.size > 0
        && attr.size <= OPEN_PREFETCH_MAX_BYTES
        && attr.size <= u64::from(layout.stripe_size);
    let in_objects = !attr.inline;
    (attr.kind == FileKind::File && reads && plain && small && in_objects).then_some(layout)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use rustre_proto::msg::Timestamp;

    /// Regular file 7 of `size` bytes, on OST 0 in stripes of `stripe_size`, all its
    /// times 1 s (also for [`super::super::lookahead`]'s tests).
    pub(in crate::client) fn file(size: u64, stripe_size: u32) -> Attr {
        let t = Timestamp { sec: 1, nsec: 0 };
        Attr {
            ino: 7,
            kind: FileKind::File,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            size,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
            layout: Some(Layout::striped(stripe_size, vec![0])),
            truncate_version: 0,
            acl: None,
            project: 0,
            inline: false,
        }
    }

    #[test]
    fn a_read_ahead_stands_only_on_the_layout_the_open_answered() {
        let l0 = Layout::striped(1 << 20, vec![0]);
        let l1 = Layout::striped(1 << 20, vec![1]);
        // Read ahead: the open's layout decides, not whether the file changed.
        assert!(pages_stand(Some(&l0), Some(&l0), false));
        assert!(pages_stand(Some(&l0), Some(&l0), true));
        assert!(!pages_stand(Some(&l0), Some(&l1), true));
        assert!(!pages_stand(Some(&l0), None, true));
        let mut stale = l0.clone();
        stale.version += 1;
        assert!(!pages_stand(Some(&l0), Some(&stale), true));
        // No read ahead: the pages of an unchanged file stay.
        assert!(pages_stand(None, Some(&l0), true));
        assert!(!pages_stand(None, Some(&l0), false));
    }

    #[test]
    fn only_small_files_opened_for_reading_are_read_ahead() {
        assert!(prefetchable(&file(4096, 1 << 20), libc::O_RDONLY).is_some());
        assert!(prefetchable(&file(4096, 1 << 20), libc::O_RDWR).is_some());
        assert!(prefetchable(&file(OPEN_PREFETCH_MAX_BYTES, 1 << 20), 0).is_some());
        // Too big, empty, or over more than one page.
        assert!(prefetchable(&file(OPEN_PREFETCH_MAX_BYTES + 1, 1 << 20), 0).is_none());
        assert!(prefetchable(&file(0, 1 << 20), 0).is_none());
        assert!(prefetchable(&file(8192, 4096), 0).is_none());
        // Opens that will not read, or not through the page cache.
        assert!(prefetchable(&file(4096, 1 << 20), libc::O_WRONLY).is_none());
        assert!(prefetchable(&file(4096, 1 << 20), libc::O_RDWR | libc::O_TRUNC).is_none());
        assert!(prefetchable(&file(4096, 1 << 20), libc::O_DIRECT).is_none());
        let mut dir = file(4096, 1 << 20);
        dir.kind = FileKind::Dir;
        assert!(prefetchable(&dir, 0).is_none());
        let mut no_layout = file(4096, 1 << 20);
        no_layout.layout = None;
        assert!(prefetchable(&no_layout, 0).is_none());
    }
}
