//! Data on the MDS (docs/data-on-mds.md): the bytes of a small file written once, kept in
//! the metadata store under `inline/{ino}` instead of the file's objects, so that writing
//! it costs one MDS call at its close and reading it one at its open.
//!
//! - **In**: only at the close of the session that made the file (`MdsOp::CloseInline`),
//!   when no other session holds it open, it has no written stripe, no truncate cut or
//!   migration is pending, and the bytes fit the MDS's limit ([`keep`]). The bytes, the
//!   size report and the attribute changes kept until close go in one transaction.
//! - **Read**: an open for reading only answers the bytes with the attributes; a reader
//!   asks again with `ReadInline` ([`read`]); a reader told the data is gone reads objects.
//! - **Cut**: a truncate shortens the kept bytes (past them, up to the size, the file
//!   reads as zeros); a truncate to 0 drops them, and the file is a plain one ([`cut`]).
//! - **Out**: before any open for writing (other than one truncating to 0) and on
//!   `MdsOp::Spill`, the MDS writes the bytes to the file's objects (every live copy,
//!   synced; a copy that fails is marked stale) and then, in one transaction, drops them
//!   and marks the stripes written ([`Mds::spill`]). An open for writing finding the
//!   file inline is refused in its transaction ([`MdsError::MustSpill`]) and tried again
//!   after the spill, so no writer ever writes the objects of a file whose bytes the
//!   store holds.
//! - **Gone**: removing the inode drops its bytes (`namespace`). A size report naming
//!   written stripes hands the file to its objects ([`objects_written`]).
//!
//! This module holds the rules, each a step of some transaction (of a close, an open, a
//! truncate, a size report); [`handlers`] the MDS operations built on them and the move.

#[cfg(test)]
mod tests;

mod handlers;

use bytes::Bytes;
use rustre_proto::msg::{Attr, FileKind, Ino, StripeSet};
use rustre_proto::Error;

use super::error::MdsError;
use super::store;
use super::truncate;
use crate::meta::Transaction;
use crate::schema;

/// How many times a spill starts over when the kept bytes changed while they were written
/// (a truncate in between) before the caller is told to try later.
pub const SPILL_ATTEMPTS: usize = 4;
/// What keeping a file's bytes adds to the store beyond them, about (for the reserve).
pub const INLINE_RECORD_OVERHEAD_BYTES: u64 = 256;
/// How long one write of a spill to one copy may take.
pub const SPILL_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// In `MdsOp::CloseInline`'s transaction: keeps `data` as the bytes of `ino`, a file of
/// `size` bytes at truncate version `truncate_version` that `session` holds open for
/// writing. False (nothing changed) when the file may not go inline: see the module docs
/// (the caller checked `data` against this MDS's limit).
pub fn keep(
    tx: &mut dyn Transaction,
    session: u64,
    ino: Ino,
    size: u64,
    truncate_version: u64,
    data: &[u8],
) -> Result<bool, Error> {
    if data.is_empty() || data.len() as u64 > size {
        return Ok(false);
    }
    let mut inode = store::inode(tx, ino)?;
    if inode.attr.kind != FileKind::File {
        return Err(Error::Invalid("data on the MDS for a non-file".into()));
    }
    let untouched = inode
        .attr
        .layout
        .as_ref()
        .is_some_and(|l| l.written.is_empty());
    if !untouched
        || truncate_version != inode.attr.truncate_version
        || session == 0
        || !only_opener(tx, ino, session)?
        || truncate::pending(tx, ino)?
        || tx.get(&schema::migrate(ino))?.is_some()
    {
        return Ok(false);
    }
    tx.set(&schema::inline(ino), data);
    if !inode.attr.inline {
        inode.attr.inline = true;
        store::put_inode(tx, &inode)?;
    }
    Ok(true)
}

/// True when `session` holds `ino` open for writing and no other session holds it open.
fn only_opener(tx: &mut dyn Transaction, ino: Ino, session: u64) -> Result<bool, Error> {
    if tx.get(&schema::write_open(ino, session))?.is_none() {
        return Ok(false);
    }
    let (s, e) = schema::open_range(ino);
    let ours = schema::open(ino, session);
    Ok(tx.range(&s, &e, 2)?.iter().all(|(k, _)| *k == ours))
}

/// The attributes of `ino` and, when its data is on the MDS, its bytes.
pub fn read(tx: &mut dyn Transaction, ino: Ino) -> Result<(Attr, Option<Bytes>), Error> {
    let inode = store::inode(tx, ino)?;
    let data = bytes_of(tx, &inode.attr)?;
    Ok((inode.attr, data))
}

/// The bytes of a file whose data is on the MDS (`None` for any other): an inode marked
/// inline without them reads as zeros (`rustre fsck` reports it).
pub fn bytes_of(tx: &mut dyn Transaction, attr: &Attr) -> Result<Option<Bytes>, Error> {
    if !attr.inline {
        return Ok(None);
    }
    Ok(Some(
        tx.get(&schema::inline(attr.ino))?
            .map(Bytes::from)
            .unwrap_or_default(),
    ))
}

/// A truncate of `attr`'s file to `size`: the kept bytes past it go; at 0 all of them,
/// and the file is no longer inline. Nothing for a file whose data is not on the MDS.
pub fn cut(tx: &mut dyn Transaction, attr: &mut Attr, size: u64) -> Result<(), Error> {
    if !attr.inline {
        return Ok(());
    }
    let key = schema::inline(attr.ino);
    if size == 0 {
        tx.clear(&key);
        attr.inline = false;
        return Ok(());
    }
    if let Some(bytes) = tx.get(&key)? {
        if bytes.len() as u64 > size {
            tx.set(&key, &bytes[..size as usize]);
        }
    }
    Ok(())
}

/// In a size report's transaction: a writer reports stripes it wrote of a file whose
/// bytes the store still holds. No open for writing lets that happen; a client whose
/// `CloseInline` committed but whose answer never came (it gave up after its retries)
/// writes its whole buffer, every byte of the file from offset 0, to the objects and
/// reports them. Its objects then hold the newest bytes: the kept ones go. True when
/// `attr` changed.
pub fn objects_written(
    tx: &mut dyn Transaction,
    attr: &mut Attr,
    written: &StripeSet,
) -> Result<bool, Error> {
    if !attr.inline || written.is_empty() {
        return Ok(false);
    }
    tracing::warn!(
        ino = attr.ino,
        "a writer reports objects of a file whose data is on the MDS: the objects take over"
    );
    tx.clear(&schema::inline(attr.ino));
    attr.inline = false;
    Ok(true)
}

/// In an open's transaction: an open of `ino` with `flags` that may write a file whose
/// data is on the MDS waits for the bytes to move to the objects ([`MdsError::MustSpill`]);
/// a truncate to 0 drops them instead (in the open, [`cut`]).
pub fn check_write_open(tx: &mut dyn Transaction, ino: Ino, flags: i32) -> Result<(), MdsError> {
    let writes = flags & libc::O_ACCMODE != libc::O_RDONLY;
    if !writes || flags & libc::O_TRUNC != 0 {
        return Ok(());
    }
    if store::inode(tx, ino)?.attr.inline {
        return Err(MdsError::MustSpill(ino));
    }
    Ok(())
}

/// Drops the kept bytes of `ino` once they are in its objects: only when they are still
/// `data` and the layout is still `version` (else the spill starts over: `false`). The
/// `failed` slots (copies that did not take them) are marked stale, and the stripes the
/// bytes reached written.
pub(super) fn spilled(
    tx: &mut dyn Transaction,
    ino: Ino,
    data: &[u8],
    version: u64,
    stripes: &StripeSet,
    failed: &[u32],
) -> Result<bool, Error> {
    let inode = store::inode(tx, ino)?;
    if !inode.attr.inline {
        return Ok(true);
    }
    let key = schema::inline(ino);
    let same_bytes = tx.get(&key)?.is_some_and(|b| b == data);
    let same_layout = inode.attr.layout.as_ref().map(|l| l.version) == Some(version);
    if !same_bytes || !same_layout {
        return Ok(false);
    }
    if !failed.is_empty() {
        super::replica::mark_stale(tx, ino, failed, version)?;
    }
    let mut inode = store::inode(tx, ino)?;
    if let Some(layout) = inode.attr.layout.as_mut() {
        layout.note_written(stripes);
    }
    inode.attr.inline = false;
    tx.clear(&key);
    store::put_inode(tx, &inode)?;
    Ok(true)
}
