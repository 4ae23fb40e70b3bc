//! Directory handle operations: what the FUSE adapter calls to open a directory (one MDS
//! call: its attributes, its `..` and the first page of its listing), list it and close it.
//! The state a handle keeps, and how listings resume, live in [`super::dirs`].
//!
//! An open's answer is kept for the next open of the same directory by the same caller
//! ([`FirstPage`]): GNU `rm -r` and fts open every directory twice in a row, once to see
//! whether it is empty and once to list it. The kept answer serves only while the metadata
//! cache is trusted and holds the directory's attributes as they came with it (no change to
//! the directory reached this client since: the cache's rule, docs/metadata-cache.md), for
//! at most [`FIRST_PAGE_REUSE`], and with every entry's attributes cached (they are handed
//! out from the cache, not from the kept page). A tree walker also finds pages kept by
//! opens started ahead of it ([`super::dirs_ahead`]).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rustre_proto::msg::mds::{DirEntry, MdsOp, MdsResponse, READDIR_MAX_ENTRIES};
use rustre_proto::msg::{Creds, Ino};
use rustre_proto::sync::lock;
use rustre_proto::Error;
use tokio::time::Instant;

use super::atime::Via;
use super::dirs::{
    dir_entry, DirOpened, DirState, FirstPage, Listed, OpenDir, DIR_PAGE_ENTRIES, DOTDOT_OFFSET,
    DOT_OFFSET, FIRST_PAGE_REUSE, MAX_OPEN_DIRS,
};
use super::{unexpected, Client};

impl Client {
    /// Opens directory `ino` for listing (needs read permission) and returns a handle.
    pub async fn open_dir(self: &Arc<Self>, creds: &Creds, ino: Ino) -> Result<u64, Error> {
        let DirOpened {
            attr,
            parent,
            page,
            eof,
        } = match self.kept_first_page(creds, ino) {
            Some(opened) => opened,
            None => match self.opened_ahead(creds, ino).await {
                Some(opened) => opened,
                None => {
                    if self.may_open_dirs_ahead() {
                        self.open_dirs_ahead(creds, self.dirs_ahead.next_siblings(ino));
                    }
                    self.open_dir_call(creds, ino).await?
                }
            },
        };
        self.lookahead.listed(ino, &page, true);
        self.dirs_ahead.listed(ino, &page, true);
        // Answered from a page opened ahead: a walker at work, which goes down into this
        // directory's subdirectories next and then on to the next of its siblings.
        if self.dirs_ahead.was_handed_out(ino) && self.may_open_dirs_ahead() {
            let mut next = self.dirs_ahead.first_subdirs(ino);
            next.extend(self.dirs_ahead.next_siblings(ino));
            self.open_dirs_ahead(creds, next);
        }
        let mut state = DirState {
            names: BTreeMap::new(),
            next_offset: DOTDOT_OFFSET + 1,
            buffer: VecDeque::new(),
            base: DOTDOT_OFFSET,
            eof,
            started: false,
        };
        state.fill(DOTDOT_OFFSET, page, eof);
        let dir = OpenDir {
            ino,
            attr,
            creds: creds.clone(),
            dot: dir_entry(".", ino),
            dotdot: dir_entry("..", parent),
            state: tokio::sync::Mutex::new(state),
        };
        let mut handles = lock(&self.dirs.handles);
        if handles.len() >= MAX_OPEN_DIRS {
            return Err(Error::Busy);
        }
        let fh = self.dirs.next_fh.fetch_add(1, Ordering::Relaxed);
        handles.insert(fh, Arc::new(dir));
        self.atimes.opened(Via::Dir(fh), None);
        Ok(fh)
    }

    /// [`Client::read_dir`] done at once when the handle's buffer holds what it hands out
    /// (the FUSE adapter calls it on fuser's thread, inside the runtime's context). `None`:
    /// `read_dir` does it.
    pub fn read_dir_now(self: &Arc<Self>, fh: u64, offset: u64) -> Option<Vec<Listed>> {
        let dir = self.dirs.get(fh).ok()?;
        let out = dir
            .state
            .try_lock()
            .ok()?
            .take_buffered(offset, &dir.dot, &dir.dotdot)?;
        self.accessed(Via::Dir(fh), dir.ino, &dir.creds);
        Some(out)
    }

    /// The entries of open directory `fh` after `offset` (0 = from the start), each with
    /// the offset that resumes after it. An empty answer is the end of the directory.
    pub async fn read_dir(self: &Arc<Self>, fh: u64, offset: u64) -> Result<Vec<Listed>, Error> {
        let dir = self.dirs.get(fh)?;
        self.accessed(Via::Dir(fh), dir.ino, &dir.creds);
        let mut st = dir.state.lock().await;
        if offset < DOT_OFFSET && st.started {
            // A rewind: the listing must show the directory as it is now.
            st.buffer.clear();
            st.base = u64::MAX;
            st.started = false;
        }
        let at = offset.max(DOTDOT_OFFSET);
        loop {
            if let Some(out) = st.take_buffered(offset, &dir.dot, &dir.dotdot) {
                return Ok(out);
            }
            if !self.fetch_after(&dir, &mut st, at).await? {
                return Ok(Vec::new());
            }
            // Nothing after `at`: that is the end, whatever the page said.
            if st.buffer.is_empty() {
                st.eof = true;
            }
        }
    }

    /// Fetches into `st` the page of `dir` that follows offset `at`. False when `at` is an
    /// offset this handle never handed out (or long forgot): the listing ends there.
    async fn fetch_after(&self, dir: &OpenDir, st: &mut DirState, at: u64) -> Result<bool, Error> {
        let after = if at == DOTDOT_OFFSET {
            None
        } else {
            match st.names.get(&at) {
                Some(name) => Some(name.clone()),
                None => return Ok(false),
            }
        };
        let listed = self
            .readdir(
                &dir.creds,
                dir.ino,
                after.as_deref(),
                DIR_PAGE_ENTRIES,
                true,
            )
            .await;
        let (page, eof) = match listed {
            // Removed while open: a removed directory lists nothing.
            Err(Error::NotFound) => (Vec::new(), true),
            r => r?,
        };
        self.lookahead.listed(dir.ino, &page, at == DOTDOT_OFFSET);
        self.dirs_ahead.listed(dir.ino, &page, at == DOTDOT_OFFSET);
        st.fill(at, page, eof);
        Ok(true)
    }

    /// Closes directory handle `fh`.
    pub fn release_dir(&self, fh: u64) {
        lock(&self.dirs.handles).remove(&fh);
        self.atimes.closed(Via::Dir(fh));
    }
}

impl Client {
    /// `MdsOp::OpenDir`: the directory's attributes, its `..` and its first page, whose
    /// attributes prime the metadata cache as a lookup of each name would.
    async fn open_dir_call(&self, creds: &Creds, ino: Ino) -> Result<DirOpened, Error> {
        let op = MdsOp::OpenDir {
            ino,
            limit: DIR_PAGE_ENTRIES.min(READDIR_MAX_ENTRIES),
        };
        let asked = self.meta_cache.epoch();
        let (mut attr, parent, mut page, eof) = match self.mds(creds, op).await? {
            MdsResponse::DirOpened {
                attr,
                parent,
                entries,
                eof,
            } => (attr, parent, entries, eof),
            r => return Err(unexpected(r)),
        };
        self.meta_cache.keep_attr(asked, &attr);
        self.prime_listed(asked, ino, &mut page)?;
        // Kept only when the directory's attributes went into the cache with this answer;
        // the names alone (a reuse hands out the attributes cached then).
        if self.meta_cache.attr_stamp(ino) == Some(asked) {
            let names = page.iter().map(|e| DirEntry {
                name: e.name.clone(),
                ino: e.ino,
                kind: e.kind,
                attr: None,
            });
            let kept = FirstPage {
                creds: creds.clone(),
                stamp: asked,
                at: Instant::now(),
                parent,
                names: names.collect(),
                eof,
            };
            lock(&self.dirs.first_pages).put(ino, kept);
        }
        self.merge_local(&mut attr);
        Ok(DirOpened {
            attr,
            parent,
            page,
            eof,
        })
    }

    /// Whether directories may be opened ahead now: not while this client answers changes
    /// ahead (an `rm -r`), each of which moves the metadata cache on before such an answer
    /// is back, so that it could not be kept (the MDS would do the work for nothing).
    fn may_open_dirs_ahead(&self) -> bool {
        !self.dirops_ahead.answered_within(FIRST_PAGE_REUSE)
    }

    /// Starts the opens of `dirs`, the subdirectories a tree walker opens next
    /// ([`super::dirs_ahead`]); their answers are kept as first pages for its opens.
    fn open_dirs_ahead(self: &Arc<Self>, creds: &Creds, dirs: Vec<Ino>) {
        for next in dirs {
            let (c, creds) = (self.clone(), creds.clone());
            // Pending from now: the walker may reach it before the task runs.
            let pending = self.dirs_ahead.started(next);
            tokio::spawn(async move {
                let _pending = pending;
                match c.open_dir_call(&creds, next).await {
                    Ok(_) => {
                        if let Some(m) = super::metrics::get() {
                            m.dirs_opened_ahead.inc();
                        }
                    }
                    // The walker's own open meets the same refusal, and reports it.
                    Err(e) => tracing::debug!(dir = next, "directory opened ahead: {e}"),
                }
            });
        }
    }

    /// The first page of `ino` opened ahead, once that open in flight is answered (`None`:
    /// none was in flight, or its answer could not be kept).
    async fn opened_ahead(&self, creds: &Creds, ino: Ino) -> Option<DirOpened> {
        if !self.dirs_ahead.wait_pending(ino).await {
            return None;
        }
        self.kept_first_page(creds, ino)
    }

    /// The answer kept from the last open of `ino` by `creds`, if it still holds (see the
    /// module docs), with every entry's attributes and the directory's as cached now.
    fn kept_first_page(&self, creds: &Creds, ino: Ino) -> Option<DirOpened> {
        let (parent, mut page, eof) = {
            let mut kept = lock(&self.dirs.first_pages);
            let k = kept.get(&ino)?;
            let fresh = k.at.elapsed() < FIRST_PAGE_REUSE
                && self.meta_cache.attr_stamp(ino) == Some(k.stamp);
            if !fresh || k.creds != *creds {
                kept.pop(&ino);
                return None;
            }
            (k.parent, k.names.clone(), k.eof)
        };
        for e in page.iter_mut() {
            e.attr = Some(self.cached_getattr(e.ino)?);
        }
        let attr = self.cached_getattr(ino)?;
        if let Some(m) = super::metrics::get() {
            m.first_pages_reused.inc();
        }
        Some(DirOpened {
            attr,
            parent,
            page,
            eof,
        })
    }
}
