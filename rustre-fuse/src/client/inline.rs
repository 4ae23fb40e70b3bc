//! Data on the MDS, the client's side (docs/data-on-mds.md; the MDS's: `mds::inline`).
//!
//! - **Close**: a file this client made through its only handle, whose bytes all wait in
//!   write-back (one buffer from offset 0, nothing sent to an OST) and fit the MDS's limit
//!   (its session's answer), is closed with one call that carries them
//!   (`MdsOp::CloseInline`, with the size report and the attribute changes kept until
//!   close): no OST write, one round trip. The MDS may refuse (another session opened the
//!   file meanwhile, its store's disk is full): the close then goes the usual way. One try
//!   per file.
//! - **Read**: a file whose attributes say its data is on the MDS is read from the bytes
//!   its open brought (or a `ReadInline`), kept whole in the page cache under
//!   [`INLINE_KEY`]; past them up to the size it reads as zeros. Told the data moved to the
//!   objects (another client wrote the file), the reader reads the objects.
//! - **Write**: before a write through a handle of a file whose data is on the MDS (a
//!   handle opened before its close, a descriptor kept after a close through another), the
//!   MDS moves the bytes to the objects (`MdsOp::Spill`). Opens for writing need nothing
//!   here: the MDS moves the bytes before it answers them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rustre_proto::msg::mds::{MdsOp, MdsResponse};
use rustre_proto::msg::{Attr, Creds, Ino};
use rustre_proto::sync::lock;
use rustre_proto::Error;

use super::cache::INLINE_KEY;
use super::files::{learn_layout, Files};
use super::meta_ops::check_layout;
use super::writeback::InodeWrites;
use super::{unexpected, Client};

impl Files {
    /// `ino` was made by this client through the handle just registered: if it is the
    /// only one, its close may carry its bytes to the MDS.
    pub(super) fn made_here(&self, ino: Ino) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino) {
            st.may_inline = st.opens == 1 && !st.inline;
        }
    }

    /// Whether the close of `ino` may carry its bytes to the MDS.
    pub(super) fn may_inline(&self, ino: Ino) -> bool {
        lock(&self.inodes).get(&ino).is_some_and(|st| st.may_inline)
    }

    /// The close of `ino` will not carry its bytes (some went to the OSTs, or it tried).
    pub(super) fn no_inline(&self, ino: Ino) {
        if let Some(st) = lock(&self.inodes).get_mut(&ino) {
            st.may_inline = false;
        }
    }

    /// Whether the MDS last said the data of `ino` is on the MDS.
    pub(super) fn is_inline(&self, ino: Ino) -> bool {
        lock(&self.inodes).get(&ino).is_some_and(|st| st.inline)
    }

    /// Learns from an MDS answer where the data of `attr.ino` is, and its layout.
    pub(super) fn learn_inline(&self, attr: &Attr) {
        if let Some(st) = lock(&self.inodes).get_mut(&attr.ino) {
            st.inline = attr.inline;
            if let Some(l) = &attr.layout {
                learn_layout(&mut st.layout, l);
            }
        }
    }
}

/// The whole file's bytes when write-back holds them as one buffer from offset 0 of at
/// most `max` bytes, with nothing in flight and no error kept.
fn whole_file(w: &InodeWrites, max: usize) -> Option<Bytes> {
    let p = w.pending.as_ref()?;
    let fits = p.offset == 0 && p.data.len() <= max;
    (fits && w.inflight.is_empty() && w.error.is_none()).then(|| p.data.to_bytes())
}

/// `len` bytes at `offset` of a file whose first bytes are `data` and the rest zeros.
fn zero_padded(data: &Bytes, offset: u64, len: usize) -> Bytes {
    let start = (offset as usize).min(data.len());
    let end = (offset as usize).saturating_add(len).min(data.len());
    if end - start == len {
        return data.slice(start..end);
    }
    let mut out = BytesMut::zeroed(len);
    out[..end - start].copy_from_slice(&data[start..end]);
    out.freeze()
}

impl Client {
    /// The close of `ino` (a flush or the last release) with its bytes, when it may (see
    /// the module docs). True when the MDS kept them: nothing is left to report. False:
    /// the caller reports as usual (the bytes still wait in write-back).
    pub(super) async fn close_inline(self: &Arc<Self>, ino: Ino) -> Result<bool, Error> {
        let max = self.inline_max.load(Ordering::Relaxed) as usize;
        if max == 0 || !self.files.may_inline(ino) {
            return Ok(false);
        }
        let _turn = self.files.report_turns.take(ino).await;
        let Some(state) = self.writeback.existing(ino) else {
            return Ok(false);
        };
        // Held until the answer: a write coming in meanwhile waits, and is not dropped
        // with the buffer the MDS took.
        let mut w = state.lock().await;
        let Some(data) = whole_file(&w, max) else {
            return Ok(false);
        };
        let Some(r) = self
            .files
            .pending_report(ino)
            .filter(|r| r.written.is_empty())
        else {
            return Ok(false);
        };
        let kept = self.files.pending(ino);
        if kept.as_ref().is_some_and(|k| k.creds != r.writer) {
            return Ok(false);
        }
        self.files.no_inline(ino);
        let op = MdsOp::CloseInline {
            ino,
            size: r.size,
            mtime: r.mtime,
            truncate_version: r.truncate_version,
            data: data.clone(),
            set: kept.as_ref().map(|k| k.set.clone()).unwrap_or_default(),
        };
        let (mut attr, refused) = match self.mds(&r.writer, op).await? {
            MdsResponse::InlineRefused => return Ok(false),
            MdsResponse::ReportedSetAttr { attr, refused } => (attr, refused),
            other => return Err(unexpected(other)),
        };
        check_layout(&attr)?;
        // The MDS has the bytes: the buffer (and its share of the budget) goes.
        w.pending = None;
        drop(w);
        self.merge_local(&mut attr);
        self.files.reported(ino, &r, &attr);
        self.files.learn_inline(&attr);
        self.capability.forget(ino);
        if let Some(k) = &kept {
            self.files.sent_pending(ino, k);
        }
        self.cache
            .insert((ino, INLINE_KEY), &data, self.cache.stamp());
        match refused {
            None => Ok(true),
            Some(e) => {
                tracing::warn!(ino, "attribute changes kept until close were refused: {e}");
                Err(e)
            }
        }
    }

    /// Bytes an open brought with the attributes of a file whose data is on the MDS: kept
    /// for the reads through it (after the open settled the inode's pages).
    pub(super) fn opened_inline(&self, ino: Ino, data: &Bytes) {
        self.cache
            .insert((ino, INLINE_KEY), data, self.cache.stamp());
    }

    /// [`Client::read_inline`] without waiting: `None` when `ino`'s data is not on the
    /// MDS (read the objects), `Some(None)` when the bytes are not all cached here (the
    /// caller reads the way that waits), else the bytes.
    pub(super) fn read_inline_now(
        &self,
        ino: Ino,
        offset: u64,
        len: usize,
    ) -> Option<Option<Bytes>> {
        if !self.files.is_inline(ino) {
            return None;
        }
        let cached = self
            .cache
            .cached(ino, INLINE_KEY, INLINE_KEY)
            .and_then(|mut pages| pages.pop());
        Some(
            cached
                .filter(|d| offset + len as u64 <= d.len() as u64)
                .map(|d| zero_padded(&d, offset, len)),
        )
    }

    /// `len` bytes at `offset` of `ino` if its data is on the MDS (`None`: read the
    /// objects). The caller clipped the range to the file's size.
    pub(super) async fn read_inline(
        &self,
        ino: Ino,
        offset: u64,
        len: usize,
    ) -> Result<Option<Bytes>, Error> {
        if !self.files.is_inline(ino) {
            return Ok(None);
        }
        // A read past the bytes kept here asks again: the file may have moved to its
        // objects and grown since (another client's append), where zeros would be wrong.
        if let Some(Some(data)) = self.read_inline_now(ino, offset, len) {
            return Ok(Some(data));
        }
        let stamp = self.cache.stamp();
        let (attr, data) = match self.mds(&Creds::root(), MdsOp::ReadInline { ino }).await? {
            MdsResponse::InlineData { attr, data } => (attr, data),
            other => return Err(unexpected(other)),
        };
        check_layout(&attr)?;
        self.files.learn_inline(&attr);
        let Some(data) = data else {
            return Ok(None);
        };
        self.cache.insert((ino, INLINE_KEY), &data, stamp);
        Ok(Some(zero_padded(&data, offset, len)))
    }

    /// Before bytes of `ino` go to its objects: if its data is on the MDS, the MDS moves
    /// it there first.
    pub(super) async fn spill_if_inline(&self, ino: Ino) -> Result<(), Error> {
        if !self.files.is_inline(ino) {
            return Ok(());
        }
        let attr = match self.mds(&Creds::root(), MdsOp::Spill { ino }).await? {
            MdsResponse::Attr(a) => a,
            other => return Err(unexpected(other)),
        };
        check_layout(&attr)?;
        self.files.learn_inline(&attr);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_past_the_kept_bytes_are_zeros() {
        let data = Bytes::from_static(b"hello");
        assert_eq!(&zero_padded(&data, 0, 5)[..], b"hello");
        assert_eq!(&zero_padded(&data, 1, 3)[..], b"ell");
        assert_eq!(&zero_padded(&data, 3, 4)[..], b"lo\0\0");
        assert_eq!(&zero_padded(&data, 9, 2)[..], b"\0\0");
        assert!(zero_padded(&data, 2, 0).is_empty());
    }
}
