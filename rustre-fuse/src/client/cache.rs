//! The client's page cache: stripe-aligned pages of file data read ahead of sequential
//! readers, in an LRU with a hard byte cap.
//!
//! Only clean data lives here (dirty data waits in [`super::writeback`]). A reader that
//! continues where its last read ended is *sequential*: its reads are served in whole pages
//! (one page = one stripe unit, so one page is one object read), and the next pages are
//! fetched in the background, all in parallel across OSTs, with a window that doubles on
//! every sequential read up to [`READAHEAD_MAX_BYTES`] (like the kernel's). A random reader
//! bypasses the cache and reads exactly what it asked for, so 4 KiB random reads never pull
//! whole stripes.
//!
//! Coherence: a write through this client drops the pages it touches and bumps the inode's
//! generation, so a fetch that raced the write is not inserted; opening a file that changed
//! since this client last saw it drops all its pages (close-to-open). A page is cut at the end
//! of file it was read at: one too short for a read of a file that grew since is dropped and
//! the range read afresh, never padded with zeros.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lru::LruCache;
use rustre_proto::msg::{Ino, Layout};
use rustre_proto::Error;
use tokio::sync::OnceCell;

use super::Client;

/// Page-cache bytes when the mount does not say (`cache_size=`).
pub const DEFAULT_CACHE_BYTES: usize = 256 << 20;
/// The read-ahead window never grows past this many bytes.
pub const READAHEAD_MAX_BYTES: u64 = 32 << 20;
/// Inodes whose access pattern is remembered.
pub const TRACKED_STREAMS_MAX: usize = 4096;

type PageKey = (Ino, u64);
type Fetch = Arc<OnceCell<Result<Bytes, Error>>>;

/// Where a reader of one inode is, and how far ahead to read for it.
#[derive(Debug, Clone, Copy, Default)]
struct Stream {
    /// Where the next read starts if the reader is sequential.
    next: u64,
    /// Current read-ahead window in bytes (0 = not sequential yet).
    window: u64,
}

struct Inner {
    pages: LruCache<PageKey, Bytes>,
    bytes: usize,
    /// Pages being fetched: readers of the same page wait on one fetch.
    fetching: HashMap<PageKey, Fetch>,
    /// Per-inode generation, bumped by every write or invalidation.
    generation: HashMap<Ino, u64>,
    streams: LruCache<Ino, Stream>,
}

/// The page cache of one client.
pub struct PageCache {
    inner: Mutex<Inner>,
    cap_bytes: Mutex<usize>,
}

impl Default for PageCache {
    fn default() -> Self {
        PageCache {
            inner: Mutex::new(Inner {
                pages: LruCache::unbounded(),
                bytes: 0,
                fetching: HashMap::new(),
                generation: HashMap::new(),
                streams: LruCache::new(TRACKED_STREAMS_MAX.try_into().expect("non-zero")),
            }),
            cap_bytes: Mutex::new(DEFAULT_CACHE_BYTES),
        }
    }
}

impl PageCache {
    /// Sets the byte cap (0 disables caching and read-ahead).
    pub fn set_capacity(&self, bytes: usize) {
        *self.cap_bytes.lock().unwrap() = bytes;
        let mut inner = self.inner.lock().unwrap();
        Self::shrink(&mut inner, bytes);
    }

    fn capacity(&self) -> usize {
        *self.cap_bytes.lock().unwrap()
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.inner.lock().unwrap().bytes
    }

    fn shrink(inner: &mut Inner, cap: usize) {
        while inner.bytes > cap {
            match inner.pages.pop_lru() {
                Some((_, page)) => inner.bytes -= page.len(),
                None => break,
            }
        }
    }

    /// Forgets every page of `ino` and any fetch in flight for it.
    pub fn invalidate(&self, ino: Ino) {
        let mut inner = self.inner.lock().unwrap();
        *inner.generation.entry(ino).or_default() += 1;
        let keys: Vec<PageKey> = inner
            .pages
            .iter()
            .filter(|(k, _)| k.0 == ino)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(p) = inner.pages.pop(&k) {
                inner.bytes -= p.len();
            }
        }
        inner.fetching.retain(|k, _| k.0 != ino);
        inner.streams.pop(&ino);
    }

    /// Forgets the pages of `ino` that overlap `[offset, offset + len)` (a local write).
    pub fn invalidate_range(&self, ino: Ino, page_size: u64, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        let mut inner = self.inner.lock().unwrap();
        *inner.generation.entry(ino).or_default() += 1;
        for idx in offset / page_size..=(offset + len - 1) / page_size {
            if let Some(p) = inner.pages.pop(&(ino, idx)) {
                inner.bytes -= p.len();
            }
            inner.fetching.remove(&(ino, idx));
        }
    }

    /// Records a read at `offset..offset+len` and returns the read-ahead window for it
    /// (0 = random access: bypass the cache).
    fn note_read(&self, ino: Ino, offset: u64, len: u64, page_size: u64) -> u64 {
        if self.capacity() == 0 {
            return 0;
        }
        let mut inner = self.inner.lock().unwrap();
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

    fn generation(&self, ino: Ino) -> u64 {
        *self
            .inner
            .lock()
            .unwrap()
            .generation
            .get(&ino)
            .unwrap_or(&0)
    }

    /// The cached page, or the (possibly shared) fetch to wait on for it.
    fn lookup(&self, key: PageKey) -> Result<Bytes, Fetch> {
        let mut inner = self.inner.lock().unwrap();
        if let Some(p) = inner.pages.get(&key) {
            return Ok(p.clone());
        }
        Err(inner.fetching.entry(key).or_default().clone())
    }

    fn insert(&self, key: PageKey, page: &Bytes, generation: u64) {
        let cap = self.capacity();
        let mut inner = self.inner.lock().unwrap();
        inner.fetching.remove(&key);
        let current = *inner.generation.get(&key.0).unwrap_or(&0);
        if current != generation || page.len() > cap {
            return;
        }
        if let Some(old) = inner.pages.put(key, page.clone()) {
            inner.bytes -= old.len();
        }
        inner.bytes += page.len();
        Self::shrink(&mut inner, cap);
    }
}

impl Client {
    /// The client's page cache.
    pub fn page_cache(&self) -> &PageCache {
        &self.cache
    }

    /// Reads `len` bytes at `offset` of a file `file_size` bytes long (the caller clipped
    /// the range to it), through the page cache and read-ahead for sequential readers.
    pub async fn cached_read(
        self: &Arc<Self>,
        ino: Ino,
        layout: &Layout,
        offset: u64,
        len: usize,
        file_size: u64,
    ) -> Result<Bytes, Error> {
        let page_size = layout.stripe_size as u64;
        let window = self.cache.note_read(ino, offset, len as u64, page_size);
        if window == 0 || len == 0 {
            return self.read_data(ino, layout, offset, len).await;
        }
        let first = offset / page_size;
        let last = (offset + len as u64 - 1) / page_size;
        let gen = self.cache.generation(ino);
        let pages = (first..=last).map(|idx| self.page(ino, layout, idx, file_size, gen));
        let pages = futures::future::try_join_all(pages).await?;
        // A page holds the file as it was when fetched, cut at the end of file then. If the
        // file grew since (written through another client; this client's own writes drop
        // the pages they touch), the page is too short for this read: its tail would read
        // as zeros where the file has data. Drop such pages and read the range afresh.
        if cut_short(&pages, first, page_size, offset, len as u64) {
            self.cache
                .invalidate_range(ino, page_size, offset, len as u64);
            return self.read_data(ino, layout, offset, len).await;
        }
        // Read ahead: the pages after this read, within the window, in the background.
        let ahead_end = ((offset + len as u64 + window).min(file_size)).div_ceil(page_size);
        for idx in last + 1..ahead_end {
            let (c, l) = (self.clone(), layout.clone());
            tokio::spawn(async move {
                let _ = c.page(ino, &l, idx, file_size, gen).await;
            });
        }
        let mut out = bytes::BytesMut::with_capacity(len);
        let mut pos = offset;
        for (i, page) in pages.iter().enumerate() {
            let page_start = (first + i as u64) * page_size;
            let from = (pos - page_start) as usize;
            let to = ((offset + len as u64).min(page_start + page_size) - page_start) as usize;
            // Every page holds at least `to` bytes (checked above).
            out.extend_from_slice(&page[from..to]);
            pos = page_start + to as u64;
        }
        Ok(out.freeze())
    }

    /// Page `idx` of `ino`: from the cache, from a fetch already in flight, or fetched now.
    async fn page(
        &self,
        ino: Ino,
        layout: &Layout,
        idx: u64,
        file_size: u64,
        gen: u64,
    ) -> Result<Bytes, Error> {
        let page_size = layout.stripe_size as u64;
        let fetch = match self.cache.lookup((ino, idx)) {
            Ok(page) => return Ok(page),
            Err(fetch) => fetch,
        };
        let start = idx * page_size;
        let len = page_size.min(file_size.saturating_sub(start)) as usize;
        let result = fetch
            .get_or_init(|| async {
                let r = self.read_data(ino, layout, start, len).await;
                if let Ok(page) = &r {
                    self.cache.insert((ino, idx), page, gen);
                } else {
                    self.cache
                        .inner
                        .lock()
                        .unwrap()
                        .fetching
                        .remove(&(ino, idx));
                }
                r
            })
            .await;
        result.clone()
    }
}

/// Whether any of `pages` (consecutive, the first with index `first`) holds fewer bytes than
/// a read of `len` bytes at `offset` needs from it: it was cut at an older end of file.
fn cut_short(pages: &[Bytes], first: u64, page_size: u64, offset: u64, len: u64) -> bool {
    pages.iter().enumerate().any(|(i, page)| {
        let page_start = (first + i as u64) * page_size;
        let needed = (offset + len).min(page_start + page_size) - page_start;
        (page.len() as u64) < needed
    })
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
            let s = c.inner.lock().unwrap().streams.peek(&7).copied().unwrap();
            c.note_read(7, s.next, 4096, p);
        }
        let s = c.inner.lock().unwrap().streams.peek(&7).copied().unwrap();
        assert_eq!(s.window, READAHEAD_MAX_BYTES);
        assert_eq!(c.note_read(7, 999_999_999, 4096, p), 0);
        c.set_capacity(0);
        assert_eq!(c.note_read(8, 0, 4096, p), 0);
    }

    #[test]
    fn byte_cap_and_invalidation() {
        let c = PageCache::default();
        c.set_capacity(10);
        c.insert((1, 0), &Bytes::from(vec![1u8; 6]), 0);
        c.insert((1, 1), &Bytes::from(vec![2u8; 6]), 0);
        assert!(c.bytes() <= 10);
        assert!(
            c.lookup((1, 0)).is_err(),
            "least recently used page evicted"
        );
        assert_eq!(c.lookup((1, 1)).unwrap()[0], 2);
        // A fetch that started before a write must not be inserted.
        let gen = c.generation(1);
        c.invalidate_range(1, 6, 0, 1);
        c.insert((1, 0), &Bytes::from(vec![9u8; 6]), gen);
        assert!(c.lookup((1, 0)).is_err());
        c.invalidate(1);
        assert_eq!(c.bytes(), 0);
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
}
