//! The client's page cache: stripe-aligned pages of file data read ahead of sequential
//! readers, in an LRU with a hard byte cap.
//!
//! Only clean data lives here (dirty data waits in [`super::writeback`]). A reader that
//! continues where its last read ended is *sequential*: its reads are served in whole pages
//! (one page = one stripe unit, so one page is one object read), and the next pages are
//! fetched in the background, all in parallel across OSTs, with a window that doubles on
//! every sequential read up to [`READAHEAD_MAX_BYTES`] (like the kernel's). A random reader
//! does not pull whole stripes: its miss fetches the aligned block of
//! [`RANDOM_BLOCK_BYTES`] around its read (the whole page when pages are no larger), kept
//! beside the pages under a key of its own ([`random_unit`]), so the reads near it are hits;
//! a read that crosses blocks bypasses the cache and reads exactly what it asked for.
//!
//! Coherence: a write through this client drops the pages it touches and bumps the inode
//! twice: when the write reaches the client (it may wait in write-back), and again when its
//! bytes are on the OSTs. A fetch that raced either is not inserted: in between, a fetch
//! reads what the OSTs held before the write. Bumps are numbered across the cache: a fetch
//! takes the cache's [`PageCache::stamp`] when it starts and its page is kept only if its
//! inode was not bumped since. The last bump of at most [`BUMPS_MAX`] inodes is remembered;
//! past that they are forgotten together and count as bumped at the latest of them (a fetch
//! in flight then may be refused for nothing, never kept wrongly), so a mount that sees
//! millions of files does not remember each of them. Opening a file that changed
//! since this client last saw it drops all its pages (close-to-open). A page is cut at the end
//! of file it was read at: one too short for a read of a file that grew since is dropped and
//! the range read afresh, never padded with zeros.
//!
//! A read inside one page is handed out as a slice of it ([`from_pages`]); only a read over
//! several pages is copied into a buffer of its own.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use lru::LruCache;
use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;
use rustre_proto::Error;
use tokio::sync::OnceCell;

/// Page-cache bytes when the mount does not say (`cache_size=`).
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
/// The read-ahead window never grows past this many bytes.
pub(super) const READAHEAD_MAX_BYTES: u64 = 32 << 20;
/// Inodes whose access pattern is remembered.
pub(super) const TRACKED_STREAMS_MAX: usize = 4096;
/// Inodes whose last bump is remembered (see the module doc).
pub(super) const BUMPS_MAX: usize = 1 << 16;

/// What a random reader's miss fetches and caches when pages (stripes) are larger.
pub(super) const RANDOM_BLOCK_BYTES: u64 = 64 << 10;
/// Set in the index of a block's key: blocks and pages of one inode never share a key (no
/// page index reaches this bit: offsets stay below 2^63).
const BLOCK_KEY_BIT: u64 = 1 << 63;

/// The index of a file's bytes kept on the MDS, cached whole (`super::inline`): below
/// [`BLOCK_KEY_BIT`], and no page index reaches it (offsets stay below 2^63, pages are at
/// least 4 KiB).
pub(super) const INLINE_KEY: u64 = BLOCK_KEY_BIT - 1;

pub(super) type PageKey = (Ino, u64);

/// The cache unit a random read lives in: its key, its index among units of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unit {
    pub(super) key: PageKey,
    pub(super) idx: u64,
    pub(super) size: u64,
}

/// The unit holding all of a random read of `len` bytes at `offset` of `ino` (pages of
/// `page_size`): the page itself when pages are no larger than [`RANDOM_BLOCK_BYTES`], else
/// the aligned block. `None` when the read crosses units.
pub(super) fn random_unit(ino: Ino, page_size: u64, offset: u64, len: u64) -> Option<Unit> {
    let (size, bit) = if page_size <= RANDOM_BLOCK_BYTES {
        (page_size, 0)
    } else {
        (RANDOM_BLOCK_BYTES, BLOCK_KEY_BIT)
    };
    let idx = offset / size;
    (len > 0 && (offset + len - 1) / size == idx).then_some(Unit {
        key: (ino, bit | idx),
        idx,
        size,
    })
}

pub(super) type Fetch = Arc<OnceCell<Result<Bytes, Error>>>;

/// Where a reader of one inode is, and how far ahead to read for it.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Stream {
    /// Where the next read starts if the reader is sequential.
    pub(super) next: u64,
    /// Current read-ahead window in bytes (0 = not sequential yet).
    pub(super) window: u64,
}

pub(super) struct Inner {
    /// Changed only through [`Inner::put_page`], [`Inner::pop_page`] and
    /// [`Inner::pop_lru_page`], which keep `by_ino` and `bytes` with it.
    pages: LruCache<PageKey, Bytes>,
    /// The indices of each inode's cached pages: what [`PageCache::invalidate`] drops,
    /// found without a walk over every cached page (which made each invalidation cost the
    /// whole cache: a `tar x` into a mount whose cache held the pages of earlier,
    /// deleted trees ran 3x slower, half its CPU in that walk).
    by_ino: HashMap<Ino, BTreeSet<u64>>,
    pub(super) bytes: usize,
    /// Pages being fetched: readers of the same page wait on one fetch.
    pub(super) fetching: HashMap<PageKey, Fetch>,
    /// The stamp of each inode's last bump (a write or an invalidation); an inode not here
    /// was last bumped at `bump_floor` or before.
    bumped: HashMap<Ino, u64>,
    bump_floor: u64,
    /// The stamp of the latest bump of any inode.
    stamp: u64,
    pub(super) streams: LruCache<Ino, Stream>,
}

/// The page cache of one client.
pub(super) struct PageCache {
    pub(super) inner: Mutex<Inner>,
    pub(super) cap_bytes: Mutex<usize>,
}

impl Default for PageCache {
    fn default() -> Self {
        PageCache {
            inner: Mutex::new(Inner {
                pages: LruCache::unbounded(),
                by_ino: HashMap::new(),
                bytes: 0,
                fetching: HashMap::new(),
                bumped: HashMap::new(),
                bump_floor: 0,
                stamp: 0,
                streams: LruCache::new(TRACKED_STREAMS_MAX.try_into().expect("non-zero")),
            }),
            cap_bytes: Mutex::new(DEFAULT_CACHE_BYTES),
        }
    }
}

impl PageCache {
    /// Sets the byte cap (0 disables caching and read-ahead).
    pub(super) fn set_capacity(&self, bytes: usize) {
        *lock(&self.cap_bytes) = bytes;
        let mut inner = lock(&self.inner);
        Self::shrink(&mut inner, bytes);
    }

    pub(super) fn capacity(&self) -> usize {
        *lock(&self.cap_bytes)
    }

    pub(super) fn shrink(inner: &mut Inner, cap: usize) {
        while inner.bytes > cap && inner.pop_lru_page() {}
    }

    /// Forgets every page of `ino` and any fetch in flight for it.
    pub(super) fn invalidate(&self, ino: Ino) {
        let mut inner = lock(&self.inner);
        inner.bump(ino);
        for idx in inner.by_ino.remove(&ino).unwrap_or_default() {
            inner.pop_page((ino, idx));
        }
        inner.fetching.retain(|k, _| k.0 != ino);
        inner.streams.pop(&ino);
    }

    /// Forgets the pages of `ino` that overlap `[offset, offset + len)` (a local write).
    pub(super) fn invalidate_range(&self, ino: Ino, page_size: u64, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mut inner = lock(&self.inner);
        inner.bump(ino);
        let last = offset + len - 1;
        let pages = offset / page_size..=last / page_size;
        let blocks = (BLOCK_KEY_BIT | (offset / RANDOM_BLOCK_BYTES))
            ..=(BLOCK_KEY_BIT | (last / RANDOM_BLOCK_BYTES));
        let hit = |idx: &u64| pages.contains(idx) || blocks.contains(idx);
        // The inode's cached keys in the range, found in its index (a cut of a terabyte
        // must not walk every page it could have held).
        let cached: Vec<u64> = inner.by_ino.get(&ino).map_or_else(Vec::new, |set| {
            let pages = set.range(pages.clone());
            pages.chain(set.range(blocks.clone())).copied().collect()
        });
        for idx in cached {
            inner.pop_page((ino, idx));
        }
        inner.fetching.retain(|k, _| k.0 != ino || !hit(&k.1));
    }

    /// Records a read at `offset..offset+len` and returns the read-ahead window for it
    /// (0 = random access: bypass the cache).
    pub(super) fn note_read(&self, ino: Ino, offset: u64, len: u64, page_size: u64) -> u64 {
        if self.capacity() == 0 {
            return 0;
        }
        let mut inner = lock(&self.inner);
        let s = inner.streams.get_or_insert_mut(ino, Stream::default);
        let max = READAHEAD_MAX_BYTES
            .max(page_size)
            .min(self.capacity() as u64 / 4);
        s.window = if offset == s.next || (offset == 0 && s.window == 0) {
            (s.window * 2).clamp(page_size, max.max(page_size))
        } else {
            0
        };
        s.next = offset + len;
        s.window
    }

    /// Forgets where the last reader of `ino` was: a new open that reads from the start
    /// is sequential again, and its first read finds the pages cached.
    pub(super) fn restart_stream(&self, ino: Ino) {
        lock(&self.inner).streams.pop(&ino);
    }

    /// Whether page `idx` of `ino` is cached or being fetched.
    pub(super) fn has_page(&self, ino: Ino, idx: u64) -> bool {
        let inner = lock(&self.inner);
        inner.pages.contains(&(ino, idx)) || inner.fetching.contains_key(&(ino, idx))
    }

    /// The cache's stamp now: a fetch started now gives it to [`PageCache::insert`].
    pub(super) fn stamp(&self) -> u64 {
        lock(&self.inner).stamp
    }

    /// The cached page, or the (possibly shared) fetch to wait on for it.
    pub(super) fn lookup(&self, key: PageKey) -> Result<Bytes, Fetch> {
        let mut inner = lock(&self.inner);
        if let Some(p) = inner.pages.get(&key) {
            return Ok(p.clone());
        }
        Err(inner.fetching.entry(key).or_default().clone())
    }

    /// How many pages and blocks of `ino` are cached.
    pub(super) fn count(&self, ino: Ino) -> usize {
        lock(&self.inner)
            .by_ino
            .get(&ino)
            .map_or(0, |set| set.len())
    }

    /// Pages `first..=last` of `ino` if every one is cached now; registers no fetch.
    pub(super) fn cached(&self, ino: Ino, first: u64, last: u64) -> Option<Vec<Bytes>> {
        let mut inner = lock(&self.inner);
        (first..=last)
            .map(|idx| inner.pages.get(&(ino, idx)).cloned())
            .collect()
    }

    /// Caches `page`, fetched from a start at `stamp`, unless its inode was bumped since.
    pub(super) fn insert(&self, key: PageKey, page: &Bytes, stamp: u64) {
        let cap = self.capacity();
        let mut inner = lock(&self.inner);
        inner.fetching.remove(&key);
        let bumped = inner
            .bumped
            .get(&key.0)
            .copied()
            .unwrap_or(inner.bump_floor);
        if bumped > stamp || page.len() > cap {
            return;
        }
        inner.put_page(key, page.clone());
        Self::shrink(&mut inner, cap);
    }
}

impl Inner {
    /// Marks `ino` changed: fetches started before are not kept.
    fn bump(&mut self, ino: Ino) {
        if self.bumped.len() >= BUMPS_MAX && !self.bumped.contains_key(&ino) {
            // Every forgotten inode counts as bumped now.
            self.bump_floor = self.stamp;
            self.bumped.clear();
        }
        self.stamp += 1;
        self.bumped.insert(ino, self.stamp);
    }

    /// Caches `page` under `key` (replacing one there).
    fn put_page(&mut self, key: PageKey, page: Bytes) {
        self.bytes += page.len();
        if let Some(old) = self.pages.put(key, page) {
            self.bytes -= old.len();
        }
        self.by_ino.entry(key.0).or_default().insert(key.1);
    }

    /// Drops the page under `key`, if cached.
    fn pop_page(&mut self, key: PageKey) {
        if let Some(page) = self.pages.pop(&key) {
            self.bytes -= page.len();
            self.unindex(key);
        }
    }

    /// Drops the least recently used page; false when none is cached.
    fn pop_lru_page(&mut self) -> bool {
        let Some((key, page)) = self.pages.pop_lru() else {
            return false;
        };
        self.bytes -= page.len();
        self.unindex(key);
        true
    }

    fn unindex(&mut self, (ino, idx): PageKey) {
        if let Some(set) = self.by_ino.get_mut(&ino) {
            set.remove(&idx);
            if set.is_empty() {
                self.by_ino.remove(&ino);
            }
        }
    }

    /// Whether `by_ino` names exactly the cached pages and `bytes` counts them (for tests).
    #[cfg(test)]
    fn consistent(&self) -> bool {
        let indexed: usize = self.by_ino.values().map(BTreeSet::len).sum();
        indexed == self.pages.len()
            && self
                .pages
                .iter()
                .all(|(k, _)| self.by_ino[&k.0].contains(&k.1))
            && self.bytes == self.pages.iter().map(|(_, p)| p.len()).sum::<usize>()
    }
}

/// Whether any of `pages` (consecutive, the first with index `first`) holds fewer bytes than
/// a read of `len` bytes at `offset` needs from it: it was cut at an older end of file.
pub(super) fn cut_short(
    pages: &[Bytes],
    first: u64,
    page_size: u64,
    offset: u64,
    len: u64,
) -> bool {
    pages.iter().enumerate().any(|(i, page)| {
        let page_start = (first + i as u64) * page_size;
        let needed = (offset + len).min(page_start + page_size) - page_start;
        (page.len() as u64) < needed
    })
}

/// The `len` bytes at `offset` out of `pages` (consecutive, the first with index `first`,
/// none [`cut_short`] for this read). A range inside one page is a slice of that page, no
/// copy; only a range over several pages is put together in a new buffer.
pub(super) fn from_pages(
    pages: &[Bytes],
    first: u64,
    page_size: u64,
    offset: u64,
    len: usize,
) -> Bytes {
    let end = offset + len as u64;
    // Where the read starts in page `i` of `pages`, and where it stops in it.
    let bounds = |i: usize| {
        let page_start = (first + i as u64) * page_size;
        let from = offset.max(page_start) - page_start;
        let to = end.min(page_start + page_size) - page_start;
        (from as usize, to as usize)
    };
    if let [page] = pages {
        let (from, to) = bounds(0);
        return page.slice(from..to);
    }
    let mut out = BytesMut::with_capacity(len);
    for (i, page) in pages.iter().enumerate() {
        let (from, to) = bounds(i);
        out.extend_from_slice(&page[from..to]);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_reads_grow_the_window_random_reads_reset_it() {
        let c = PageCache::default();
        let p = 1 << 20;
        assert_eq!(c.note_read(7, 0, 4096, p), p);
        assert_eq!(c.note_read(7, 4096, 4096, p), 2 * p);
        assert_eq!(c.note_read(7, 8192, 4096, p), 4 * p);
        for _ in 0..10 {
            let s = lock(&c.inner).streams.peek(&7).copied().unwrap();
            c.note_read(7, s.next, 4096, p);
        }
        let s = lock(&c.inner).streams.peek(&7).copied().unwrap();
        assert_eq!(s.window, READAHEAD_MAX_BYTES);
        assert_eq!(c.note_read(7, 999_999_999, 4096, p), 0);
        c.set_capacity(0);
        assert_eq!(c.note_read(8, 0, 4096, p), 0);
    }

    #[test]
    fn a_random_read_lives_in_one_block_or_one_small_page() {
        let b = RANDOM_BLOCK_BYTES;
        let mib = 1 << 20;
        let u = random_unit(7, mib, 3 * b + 10, 4096).unwrap();
        assert_eq!((u.key, u.idx, u.size), ((7, BLOCK_KEY_BIT | 3), 3, b));
        assert_eq!(random_unit(7, mib, b - 1, 2), None, "over two blocks");
        assert_eq!(random_unit(7, mib, b, 0), None, "empty");
        // Pages no larger than a block are the unit themselves.
        let u = random_unit(7, 16384, 40_000, 100).unwrap();
        assert_eq!((u.key, u.idx, u.size), ((7, 2), 2, 16384));
    }

    #[test]
    fn a_write_drops_the_blocks_and_pages_it_touches_and_no_others() {
        let c = PageCache::default();
        let (mib, b) = (1u64 << 20, RANDOM_BLOCK_BYTES);
        let page = Bytes::from(vec![1u8; 16]);
        for key in [
            (1, 0),
            (1, 1),
            (1, BLOCK_KEY_BIT | 3),
            (1, BLOCK_KEY_BIT | 20),
            (2, 1),
        ] {
            c.insert(key, &page, 0);
        }
        // A write inside block 20 (page 1).
        c.invalidate_range(1, mib, 20 * b + 5, 10);
        assert!(c.lookup((1, BLOCK_KEY_BIT | 20)).is_err());
        assert!(c.lookup((1, 1)).is_err());
        for key in [(1, 0), (1, BLOCK_KEY_BIT | 3), (2, 1)] {
            assert!(c.lookup(key).is_ok(), "{key:?} dropped");
        }
        // A cut of a terabyte finds what is cached in the inode's index.
        c.invalidate_range(1, mib, 0, 1 << 40);
        assert!(c.cached(1, 0, 0).is_none());
        assert!(c.cached(1, BLOCK_KEY_BIT | 3, BLOCK_KEY_BIT | 3).is_none());
        assert!(c.cached(2, 1, 1).is_some());
    }

    #[test]
    fn byte_cap_and_invalidation() {
        let c = PageCache::default();
        c.set_capacity(10);
        c.insert((1, 0), &Bytes::from(vec![1u8; 6]), 0);
        c.insert((1, 1), &Bytes::from(vec![2u8; 6]), 0);
        assert!(lock(&c.inner).bytes <= 10);
        assert!(
            c.lookup((1, 0)).is_err(),
            "least recently used page evicted"
        );
        assert_eq!(c.lookup((1, 1)).unwrap()[0], 2);
        // A fetch that started before a write must not be inserted.
        let gen = c.stamp();
        c.invalidate_range(1, 6, 0, 1);
        c.insert((1, 0), &Bytes::from(vec![9u8; 6]), gen);
        assert!(c.lookup((1, 0)).is_err());
        c.invalidate(1);
        assert_eq!(lock(&c.inner).bytes, 0);
    }

    /// The bumps remembered stay bounded, and a fetch that started before a bump is refused
    /// whether or not its inode's bump is still remembered.
    #[test]
    fn forgotten_bumps_still_refuse_older_fetches() {
        let c = PageCache::default();
        c.set_capacity(1 << 20);
        let page = Bytes::from(vec![1u8; 8]);
        let before = c.stamp();
        c.invalidate(1);
        let after = c.stamp();
        // Enough other inodes bumped that inode 1's bump is forgotten.
        for ino in 100..100 + BUMPS_MAX as Ino {
            c.invalidate(ino);
        }
        assert!(lock(&c.inner).bumped.len() <= BUMPS_MAX);
        assert!(!lock(&c.inner).bumped.contains_key(&1), "forgotten");
        c.insert((1, 0), &page, before);
        assert!(
            c.lookup((1, 0)).is_err(),
            "a fetch from before the bump kept"
        );
        // A fetch from after every bump is kept.
        c.insert((1, 0), &page, c.stamp());
        assert!(c.lookup((1, 0)).is_ok());
        // One that started between inode 1's bump and the others' may be refused (it is
        // not told apart any more), never kept after a later bump of its own inode.
        c.invalidate(1);
        c.insert((1, 1), &page, after);
        assert!(c.lookup((1, 1)).is_err());
    }

    /// Invalidating one inode drops its pages only, through the per-inode index, which
    /// follows every insert, eviction and drop.
    #[test]
    fn invalidation_drops_one_inodes_pages_and_the_index_follows_evictions() {
        let c = PageCache::default();
        c.set_capacity(100 * 8);
        for ino in 1..=20u64 {
            for idx in 0..5 {
                c.insert((ino, idx), &Bytes::from(vec![ino as u8; 8]), 0);
            }
        }
        {
            let inner = lock(&c.inner);
            assert_eq!(inner.pages.len(), 100);
            assert!(inner.consistent());
        }
        // Past the cap: the least recently used pages (inode 1's) go, and their index.
        c.insert((21, 0), &Bytes::from(vec![21u8; 8]), 0);
        c.insert((21, 1), &Bytes::from(vec![21u8; 8]), 0);
        assert!(c.lookup((1, 0)).is_err() && c.lookup((1, 1)).is_err());
        assert!(lock(&c.inner).consistent());
        c.invalidate(7);
        for idx in 0..5 {
            assert!(c.lookup((7, idx)).is_err(), "inode 7's page {idx} dropped");
            assert_eq!(c.lookup((8, idx)).unwrap()[0], 8, "inode 8's pages stay");
        }
        c.invalidate_range(8, 8, 8, 8);
        assert!(c.lookup((8, 1)).is_err());
        assert_eq!(c.lookup((8, 2)).unwrap()[0], 8);
        let inner = lock(&c.inner);
        assert!(inner.consistent());
        assert!(!inner.by_ino.contains_key(&7));
        assert_eq!(inner.by_ino[&1], BTreeSet::from([2, 3, 4]), "two evicted");
    }

    #[test]
    fn a_page_cut_at_an_older_end_of_file_is_not_padded_with_zeros() {
        // Page 0 was read when the file held "one"; another client appended since.
        let cut = [Bytes::from_static(b"one")];
        assert!(
            !cut_short(&cut, 0, 1 << 20, 0, 3),
            "enough for the old size"
        );
        assert!(!cut_short(&cut, 0, 1 << 20, 1, 2));
        assert!(
            cut_short(&cut, 0, 1 << 20, 0, 13),
            "the grown file needs 13 bytes"
        );
        assert!(
            cut_short(&cut, 0, 1 << 20, 3, 10),
            "a follower reading on from 3"
        );
        // Whole pages and a last page as long as the read needs are fine.
        let p = 4;
        let pages = [Bytes::from_static(b"abcd"), Bytes::from_static(b"ef")];
        assert!(!cut_short(&pages, 2, p, 9, 5));
        assert!(cut_short(&pages, 2, p, 9, 6));
    }

    /// True when `part` lies inside the allocation `whole` is a view of (no copy was made).
    fn within(part: &Bytes, whole: &Bytes) -> bool {
        whole.as_ptr_range().contains(&part.as_ptr())
    }

    #[test]
    fn a_read_inside_one_page_is_a_slice_of_it() {
        let p = 4096u64;
        let page = Bytes::from((0..4096u32).map(|i| i as u8).collect::<Vec<u8>>());
        // Page 3 of a file: bytes 12288..16384.
        let out = from_pages(std::slice::from_ref(&page), 3, p, 12288 + 100, 1000);
        assert_eq!(&out[..], &page[100..1100]);
        assert_eq!(out.as_ptr(), page[100..].as_ptr(), "no copy");
        // The whole page, and a last page cut at the end of file.
        let out = from_pages(std::slice::from_ref(&page), 3, p, 12288, 4096);
        assert_eq!(out.as_ptr(), page.as_ptr());
        let cut = page.slice(..10);
        let out = from_pages(std::slice::from_ref(&cut), 0, p, 2, 8);
        assert_eq!((&out[..], out.as_ptr()), (&page[2..10], page[2..].as_ptr()));
    }

    #[test]
    fn a_read_over_several_pages_is_put_together() {
        let p = 4u64;
        let pages = [
            Bytes::from_static(b"abcd"),
            Bytes::from_static(b"efgh"),
            Bytes::from_static(b"ij"),
        ];
        let out = from_pages(&pages, 5, p, 21, 9);
        assert_eq!(&out[..], b"bcdefghij");
        assert!(pages.iter().all(|page| !within(&out, page)), "a new buffer");
        assert_eq!(&from_pages(&pages[..2], 5, p, 23, 2)[..], b"de");
    }
}
