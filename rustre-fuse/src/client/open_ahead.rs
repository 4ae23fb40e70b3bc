//! Opens for reading answered ahead of the MDS, of files this client vouches for.
//!
//! An open is an MDS round trip: the MDS checks the caller's permission and records the
//! open (a file unlinked while open stays until its last open goes). A small file this
//! client wrote or read and still caches is read without any other call, so for it the
//! open is the whole wait. A file this client made in a directory it holds the
//! capability of ([`super::dir_caps`], `DirCaps::vouched_dir`) cannot have been reached by
//! another client since: what the cache holds of it is what the MDS holds, and the open's
//! outcome is known. Such an open is answered at once, and its record goes to the MDS
//! behind it, as a change answered ahead ([`super::async_dirops`]).
//!
//! Only when everything the MDS would look at is here: an open for reading (no O_TRUNC,
//! O_DIRECT or exec), of a file with one link that no handle of this client holds and
//! with nothing kept or buffered for it, whose cached attributes let the caller read, whose
//! data is on the MDS and cached whole, as this client last saw it. Anything else opens
//! the usual way.
//!
//! Order: the record takes a place in flight, so every waited call of this client (the
//! release of this very open among them) and the return of a recalled capability come
//! after it, as after an unlink answered ahead; and no unlink or rename goes ahead while
//! an open's record is in flight (they wait their turn: one reaching the MDS first could
//! destroy the file the record is for). An unlink of the file by another thread of this
//! client racing the open can still reach the MDS first; the MDS then refuses the record.
//! A record the MDS refuses (that race, or a session evicted meanwhile), or whose answer
//! shows the file other than the cache did, fails the handle with EIO from then on, as a
//! handle of an evicted session does; it is logged and counted
//! (`rustre_client_dirops_ahead_failed`).

use std::sync::Arc;

use rustre_proto::msg::mds::{Change, MdsOp, MdsResponse};
use rustre_proto::msg::{may_access, Attr, Creds, FileKind, Ino};
use rustre_proto::Error;

use super::async_dirops::OpenInFlight;
use super::cache::INLINE_KEY;
use super::files::Opened;
use super::{first_poll, metrics, Client};

/// Read permission, what an open for reading asks of the file.
const READ: u32 = 4;

/// Linux's `__FMODE_EXEC`, in the flags of the kernel's open of a file it executes (the
/// MDS asks execute permission for it, not read).
const FMODE_EXEC: i32 = 0x20;

impl Client {
    /// Answers the open of `ino` with `flags` ahead of the MDS if this client vouches for
    /// the file (see the module documentation). `None`: the caller opens the usual way.
    pub(super) async fn try_open_ahead(
        self: &Arc<Self>,
        creds: &Creds,
        ino: Ino,
        flags: i32,
    ) -> Option<Result<Opened, Error>> {
        self.vouched_for_reading(creds, ino, flags)?;
        if !self.dirops_ahead.take().await {
            return None;
        }
        let place = OpenInFlight::count(self);
        // Asked again with the place taken: a recall that ends the capability after this
        // look waits for the place ([`Client::return_dir_caps`]).
        let attr = self.vouched_for_reading(creds, ino, flags)?;
        let opened = match self.register_open(creds, attr.clone(), flags, None) {
            Ok(o) => o,
            Err((_, e)) => return Some(Err(e)),
        };
        if let Some(m) = metrics::get() {
            m.opens_ahead.inc();
        }
        let record = record_open(place, creds.clone(), opened.fh, attr, flags);
        drop(first_poll::spawn(record, true));
        Some(Ok(opened))
    }

    /// The attributes of `ino` if an open of it with `flags` by `creds` may be answered
    /// ahead.
    fn vouched_for_reading(&self, creds: &Creds, ino: Ino, flags: i32) -> Option<Attr> {
        let plain_read = flags & libc::O_ACCMODE == libc::O_RDONLY
            && flags & (libc::O_TRUNC | libc::O_DIRECT | FMODE_EXEC) == 0;
        if !plain_read || self.dirops_ahead.caps.vouched_dir(ino).is_none() {
            return None;
        }
        if self.files.holds_open(ino) || self.files.has_pending(ino) || self.writeback.holds(ino) {
            return None;
        }
        let attr = self.cached_getattr(ino)?;
        let readable = attr.kind == FileKind::File
            && attr.nlink == 1
            && attr.inline
            && may_access(creds, &attr, READ)
            && self.files.pages_would_stand(&attr);
        let cached = self.cache.cached(ino, INLINE_KEY, INLINE_KEY)?;
        let whole = cached.first().is_some_and(|d| d.len() as u64 == attr.size);
        (readable && whole).then_some(attr)
    }
}

/// Sends the open record of handle `fh`, answered ahead with `attr`; fails the handle if
/// the MDS refuses it or answers another file than the one the cache showed.
async fn record_open(place: OpenInFlight, creds: Creds, fh: u64, attr: Attr, flags: i32) {
    let c = place.client().clone();
    let ino = attr.ino;
    let answer = c.mds_in_session(&creds, MdsOp::Open { ino, flags }).await;
    let seen = match answer {
        Ok(MdsResponse::Attr(a) | MdsResponse::InlineData { attr: a, .. }) => Ok(a),
        Ok(r) => Err(super::unexpected(r)),
        Err(e) => Err(e),
    };
    let failure = match seen {
        Ok(a) if a.size == attr.size && a.mtime == attr.mtime && a.inline => return,
        Ok(a) => format!(
            "the MDS holds size {} and mtime {:?}, the cache showed {} and {:?}",
            a.size, a.mtime, attr.size, attr.mtime
        ),
        Err(e) => e.to_string(),
    };
    tracing::warn!(
        ino,
        "an open answered ahead was refused; its handle fails: {failure}"
    );
    if let Some(m) = metrics::get() {
        m.dirops_ahead_failed.inc();
    }
    c.files.fail_handle(fh);
    c.cache.invalidate(ino);
    c.kernel.undo(vec![Change::Inode(ino)]);
    // The place goes last: a waited call after it finds the handle failed.
    drop(place);
}
