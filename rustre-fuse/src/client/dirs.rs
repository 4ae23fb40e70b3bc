//! Directory handles: listings that stay correct while the directory changes.
//!
//! The MDS pages a listing by name (its cookie is the last name returned), while callers
//! such as the kernel resume with an integer offset. Each open directory keeps the names it
//! handed out under the offsets it gave them, so a listing resumes after the right name even
//! when entries were added or removed in between, and `seekdir` to any offset handed out
//! earlier works. Offsets 1 and 2 are "." and ".."; entries get 3, 4, ... in the order they
//! are handed out.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lru::LruCache;

use super::meta_cache::Epoch;
use tokio::time::Instant;

use rustre_proto::msg::mds::DirEntry;
use rustre_proto::msg::{Attr, Creds, FileKind, Ino};
use rustre_proto::sync::lock;
use rustre_proto::Error;

/// Most directories one client holds open at once.
pub(super) const MAX_OPEN_DIRS: usize = 1 << 14;
/// Offsets remembered per open directory; the oldest are forgotten first (a `seekdir` to a
/// forgotten offset reads as the end of the directory).
pub(super) const DIR_OFFSETS_MAX: usize = 1 << 16;
/// Entries asked of the MDS per page.
pub(super) const DIR_PAGE_ENTRIES: u32 = 256;

/// Directories whose first page is kept for their next open.
pub(super) const FIRST_PAGES_KEPT: usize = 64;
/// How long a directory's first page may answer a later open of it (GNU `rm -r` and fts
/// open each directory twice in a row: the second open asks nothing of the MDS).
pub(super) const FIRST_PAGE_REUSE: Duration = Duration::from_secs(1);

/// Offset of ".".
pub(super) const DOT_OFFSET: u64 = 1;
/// Offset of ".."; the first real entry follows it.
pub(super) const DOTDOT_OFFSET: u64 = 2;

/// One entry of a listing with the offset that resumes after it.
#[derive(Debug, Clone)]
pub struct Listed {
    pub offset: u64,
    pub entry: DirEntry,
}

pub(super) struct DirState {
    /// Offset → the name handed out there.
    pub(super) names: BTreeMap<u64, String>,
    pub(super) next_offset: u64,
    /// Fetched entries not yet handed out past `base`, with their offsets.
    pub(super) buffer: VecDeque<Listed>,
    /// The offset the buffer's first entry follows.
    pub(super) base: u64,
    /// The buffer ends the directory.
    pub(super) eof: bool,
    /// Whether the listing from the start was served once (a rewind then reads afresh).
    pub(super) started: bool,
}

pub(super) struct OpenDir {
    pub(super) ino: Ino,
    /// The directory's attributes when it was opened: what fstat answers once it is
    /// removed (with no links), as for any open directory whose name went.
    pub(super) attr: Attr,
    pub(super) creds: Creds,
    /// "." and "..".
    pub(super) dot: DirEntry,
    pub(super) dotdot: DirEntry,
    pub(super) state: tokio::sync::Mutex<DirState>,
}

/// What an open of a directory learnt from the MDS: its attributes, the inode its `..`
/// names, and the first page of its listing.
pub(super) struct DirOpened {
    pub(super) attr: Attr,
    pub(super) parent: Ino,
    pub(super) page: Vec<DirEntry>,
    pub(super) eof: bool,
}

/// What a [`DirOpened`] said of the listing, kept for the next open of the directory by the
/// same caller: valid while the metadata cache holds the directory's attributes with the
/// same `stamp` (nothing changed the directory since, as far as this client knows) and for
/// [`FIRST_PAGE_REUSE`]. The entries' names only: a reuse takes every attribute from the
/// cache.
pub(super) struct FirstPage {
    pub(super) creds: Creds,
    pub(super) stamp: Epoch,
    pub(super) at: Instant,
    pub(super) parent: Ino,
    pub(super) names: Vec<DirEntry>,
    pub(super) eof: bool,
}

/// The open-directory table of one client.
pub(super) struct Dirs {
    pub(super) handles: Mutex<HashMap<u64, Arc<OpenDir>>>,
    pub(super) next_fh: AtomicU64,
    /// The first pages of the directories opened last, by directory.
    pub(super) first_pages: Mutex<LruCache<Ino, FirstPage>>,
}

impl Default for Dirs {
    fn default() -> Self {
        Dirs {
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            first_pages: Mutex::new(LruCache::new(
                NonZeroUsize::new(FIRST_PAGES_KEPT).expect("a positive constant"),
            )),
        }
    }
}

impl Dirs {
    pub(super) fn get(&self, fh: u64) -> Result<Arc<OpenDir>, Error> {
        lock(&self.handles)
            .get(&fh)
            .cloned()
            .ok_or_else(|| Error::Invalid(format!("unknown directory handle {fh}")))
    }

    /// The attributes of directory `ino`, removed while this client holds it open: those
    /// it had when opened, with no links.
    pub(super) fn removed(&self, ino: Ino) -> Option<Attr> {
        let handles = lock(&self.handles);
        let dir = handles.values().find(|d| d.ino == ino)?;
        Some(Attr {
            nlink: 0,
            ..dir.attr.clone()
        })
    }
}

impl Dirs {
    /// This client removed or replaced `name` in directory `parent`: open listings of it
    /// stop handing out the entry they fetched before. A listing may or may not show a
    /// name removed after `opendir` (POSIX leaves it open), but a `readdirplus` entry makes
    /// the kernel cache a dentry with the entry's attributes, and one for a name this client
    /// just removed would make the removed file look present until the entry timeout.
    pub(super) async fn drop_listed(&self, parent: Ino, name: &str) {
        let open: Vec<Arc<OpenDir>> = lock(&self.handles)
            .values()
            .filter(|d| d.ino == parent)
            .cloned()
            .collect();
        for dir in open {
            dir.state
                .lock()
                .await
                .buffer
                .retain(|l| l.entry.name != name);
        }
    }
}

/// "." or "..": no attributes (the kernel ignores them for these two names).
pub(super) fn dir_entry(name: &str, ino: Ino) -> DirEntry {
    DirEntry {
        name: name.to_string(),
        ino,
        kind: FileKind::Dir,
        attr: None,
    }
}

impl DirState {
    /// Assigns offsets to a fetched page and makes it the buffer following `base`.
    pub(super) fn fill(&mut self, base: u64, page: Vec<DirEntry>, eof: bool) {
        self.buffer.clear();
        self.base = base;
        self.eof = eof;
        for entry in page {
            let offset = self.next_offset;
            self.next_offset += 1;
            self.names.insert(offset, entry.name.clone());
            self.buffer.push_back(Listed { offset, entry });
        }
        while self.names.len() > DIR_OFFSETS_MAX {
            self.names.pop_first();
        }
    }

    /// What a read of the listing after `offset` hands out when this buffer holds all of it
    /// (or the directory's end): the same entries as `Client::read_dir`, with `dot` and
    /// `dotdot` first for a read from the start. `None`, with nothing changed, when a page
    /// would be fetched (a rewind, a seek elsewhere, the buffer used up before the end).
    pub(super) fn take_buffered(
        &mut self,
        offset: u64,
        dot: &DirEntry,
        dotdot: &DirEntry,
    ) -> Option<Vec<Listed>> {
        let at = offset.max(DOTDOT_OFFSET);
        let rewind = offset < DOT_OFFSET && self.started;
        let left = self.buffer.iter().any(|l| l.offset > at);
        if rewind || !self.continues(at) || !(left || self.eof) {
            return None;
        }
        let mut out = Vec::new();
        if offset < DOT_OFFSET {
            out.push(Listed {
                offset: DOT_OFFSET,
                entry: dot.clone(),
            });
            self.started = true;
        }
        if offset < DOTDOT_OFFSET {
            out.push(Listed {
                offset: DOTDOT_OFFSET,
                entry: dotdot.clone(),
            });
        }
        while self.buffer.front().is_some_and(|l| l.offset <= at) {
            self.buffer.pop_front();
        }
        self.base = at;
        out.extend(self.buffer.iter().cloned());
        Some(out)
    }

    /// Whether the buffer continues a listing that stopped at `offset`.
    /// (Buffered offsets are consecutive among themselves, but a page fetched after a seek
    /// does not follow its base numerically.)
    pub(super) fn continues(&self, offset: u64) -> bool {
        offset == self.base
            || matches!(
                (self.buffer.front(), self.buffer.back()),
                (Some(f), Some(b)) if f.offset <= offset && offset <= b.offset
            )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(names: &[&str]) -> Vec<DirEntry> {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| DirEntry {
                name: n.to_string(),
                ino: 100 + i as u64,
                kind: FileKind::File,
                attr: None,
            })
            .collect()
    }

    fn state() -> DirState {
        DirState {
            names: BTreeMap::new(),
            next_offset: DOTDOT_OFFSET + 1,
            buffer: VecDeque::new(),
            base: DOTDOT_OFFSET,
            eof: false,
            started: false,
        }
    }

    #[test]
    fn offsets_name_what_was_handed_out() {
        let mut st = state();
        st.fill(DOTDOT_OFFSET, page(&["a", "b", "c"]), false);
        assert_eq!(st.names.get(&3).map(String::as_str), Some("a"));
        assert_eq!(st.names.get(&5).map(String::as_str), Some("c"));
        // Resuming after any buffered entry continues the buffer.
        assert!(st.continues(2) && st.continues(4) && st.continues(5));
        assert!(!st.continues(6));
        // A page fetched after a seek back to "a" gets fresh offsets: resuming at an old
        // offset inside the old numeric range must not be taken for a continuation.
        st.fill(3, page(&["b2", "c"]), true);
        assert_eq!(st.buffer.front().unwrap().offset, 6);
        assert!(st.continues(3) && st.continues(6) && st.continues(7));
        assert!(
            !st.continues(4),
            "offset 4 named \"b\", which this buffer does not follow"
        );
        assert_eq!(st.names.get(&4).map(String::as_str), Some("b"));
    }

    #[test]
    fn a_buffered_listing_is_handed_out_without_a_fetch_and_nothing_else_is() {
        let offsets = |l: &[Listed]| l.iter().map(|l| l.offset).collect::<Vec<_>>();
        let (dot, dotdot) = (page(&["."]).remove(0), page(&[".."]).remove(0));
        // Nothing fetched yet: a read from the start fetches.
        let mut st = state();
        assert!(st.take_buffered(0, &dot, &dotdot).is_none());
        assert!(!st.started, "a refused read changed the state");
        st.fill(DOTDOT_OFFSET, page(&["a", "b", "c"]), false);
        let from_start = st.take_buffered(0, &dot, &dotdot).unwrap();
        assert_eq!(offsets(&from_start), [1, 2, 3, 4, 5]);
        assert_eq!(from_start[2].entry.name, "a");
        // Resuming after "a": the rest of the buffer.
        let rest = st.take_buffered(3, &dot, &dotdot).unwrap();
        assert_eq!(offsets(&rest), [4, 5]);
        // Used up before the end of the directory: the next page is fetched.
        assert!(st.take_buffered(5, &dot, &dotdot).is_none());
        assert_eq!(st.base, 3, "a refused read changed the state");
        // A rewind lists afresh; a seek to an offset never handed out fetches too.
        assert!(st.take_buffered(0, &dot, &dotdot).is_none());
        assert!(st.take_buffered(40, &dot, &dotdot).is_none());
        // The last page: past its end, the end of the directory (nothing).
        st.fill(5, page(&["d"]), true);
        assert_eq!(offsets(&st.take_buffered(5, &dot, &dotdot).unwrap()), [6]);
        assert!(st.take_buffered(6, &dot, &dotdot).unwrap().is_empty());
    }

    #[test]
    fn offsets_are_bounded() {
        let mut st = state();
        let names: Vec<String> = (0..DIR_OFFSETS_MAX + 10).map(|i| format!("n{i}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        st.fill(DOTDOT_OFFSET, page(&refs), true);
        assert_eq!(st.names.len(), DIR_OFFSETS_MAX);
        assert!(!st.names.contains_key(&3), "the oldest offsets go first");
    }
}
