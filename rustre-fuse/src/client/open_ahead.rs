//! Opens for reading answered without the MDS, of files this client vouches for.
//!
//! An open is an MDS round trip: the MDS checks the caller's permission and records the
//! open, so that a file unlinked while open stays until its last open goes. A small file
//! this client wrote or read and still caches is read without any other call, so for it
//! the open and its release are the only calls. A file this client made in a directory it
//! holds the capability of ([`super::dir_caps`], `DirCaps::vouched_dir`) cannot have been
//! reached by another client since: what the cache holds of it is what the MDS holds, and
//! the open's outcome is known. Such an open is answered at once, and its record is kept
//! here instead of sent ([`OpenRecords`]): only this client could unlink the file while
//! the directory is held, so the MDS needs the record only before this client's next
//! call, or before it gives the directory back. An open closed before either costs no
//! call at all (its release drops the kept record instead of sending one).
//!
//! Only when everything the MDS would look at is here: an open for reading (no O_TRUNC,
//! O_DIRECT or exec), of a file with one link that no handle of this client holds and with
//! nothing kept or buffered for it, whose cached attributes let the caller read, whose data
//! is on the MDS and cached whole, as this client last saw it. Anything else opens the
//! usual way.
//!
//! Order: every MDS call of this client sends the kept records first
//! ([`Client::send_open_records`], at the top of `Client::mds`), so its unlinks, renames,
//! chmods, releases, the give-back of a recalled capability and the close of its session
//! all reach the MDS after the opens answered before them, as if each open had waited; no
//! unlink or rename is answered ahead while a record is kept or on its way (they take the
//! waited path). A record the MDS refuses (only if this client's session was evicted
//! meanwhile, or the vouching was wrong) fails that file's handles with EIO from then on,
//! as a handle of an evicted session does; it is logged and counted
//! (`rustre_client_dirops_ahead_failed`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustre_proto::msg::mds::{MdsOp, MdsResponse, FMODE_EXEC};
use rustre_proto::msg::{may_access, Attr, Creds, FileKind, Ino};
use rustre_proto::sync::lock;
use rustre_proto::Error;

use super::cache::INLINE_KEY;
use super::files::Opened;
use super::{metrics, Client};

/// Read permission, what an open for reading asks of the file.
const READ: u32 = 4;

/// The records of opens answered ahead that the MDS has not heard of.
#[derive(Default)]
pub(super) struct OpenRecords {
    /// Inode -> the credentials and flags of each open of it kept here.
    kept: Mutex<HashMap<Ino, Vec<(Creds, i32)>>>,
    /// Records kept or being sent (0: nothing to wait for).
    unsent: AtomicUsize,
    /// Held while records are sent: a call that must come after them waits for it.
    sending: tokio::sync::Mutex<()>,
}

impl OpenRecords {
    /// Whether no record is kept or on its way.
    pub(super) fn none_unsent(&self) -> bool {
        self.unsent.load(Ordering::Acquire) == 0
    }

    /// Drops a kept record of `ino` (its open ended, or never began); false if none is
    /// kept (sent already, or never kept).
    pub(super) fn drop_kept(&self, ino: Ino) -> bool {
        let mut kept = lock(&self.kept);
        let Some(records) = kept.get_mut(&ino) else {
            return false;
        };
        records.pop();
        if records.is_empty() {
            kept.remove(&ino);
        }
        drop(kept);
        self.unsent.fetch_sub(1, Ordering::AcqRel);
        true
    }

    /// Forgets every kept record: the session they belong to ended (its handles are
    /// evicted).
    pub(super) fn forget(&self) {
        let n: usize = lock(&self.kept).drain().map(|(_, v)| v.len()).sum();
        self.unsent.fetch_sub(n, Ordering::AcqRel);
    }
}

impl Client {
    /// Answers the open of `ino` with `flags` without the MDS if this client vouches for
    /// the file (see the module documentation). `None`: the caller opens the usual way.
    pub(super) fn try_open_ahead(
        self: &Arc<Self>,
        creds: &Creds,
        ino: Ino,
        flags: i32,
    ) -> Option<Result<Opened, Error>> {
        let attr = self.vouched_for_reading(creds, ino, flags)?;
        let records = &self.dirops_ahead.records;
        {
            // Looked at and kept under the lock a give-back's sending takes after it ends
            // the capability: the record is either seen not vouched for, or sent first.
            let mut kept = lock(&records.kept);
            self.dirops_ahead.caps.vouched_dir(ino)?;
            records.unsent.fetch_add(1, Ordering::AcqRel);
            kept.entry(ino).or_default().push((creds.clone(), flags));
        }
        let opened = match self.register_open(creds, attr, flags, None) {
            Ok(o) => o,
            Err((_, e)) => {
                if !records.drop_kept(ino) {
                    // Sent meanwhile: undone the usual way.
                    let (this, creds) = (self.clone(), creds.clone());
                    tokio::spawn(async move { this.release(&creds, ino).await });
                }
                return Some(Err(e));
            }
        };
        if let Some(m) = metrics::get() {
            m.opens_ahead.inc();
        }
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

    /// Sends the records of opens answered ahead that the MDS has not heard of, and waits
    /// for those on their way: every MDS call of this client comes after them.
    pub(super) async fn send_open_records(&self) {
        let records = &self.dirops_ahead.records;
        if records.none_unsent() {
            return;
        }
        let _sending = records.sending.lock().await;
        let kept: Vec<(Ino, Vec<(Creds, i32)>)> = lock(&records.kept).drain().collect();
        for (ino, opens) in kept {
            let n = opens.len();
            let mut refused = None;
            for (creds, flags) in opens {
                let answer = self
                    .mds_in_session(&creds, MdsOp::Open { ino, flags })
                    .await;
                refused = match answer {
                    Ok(MdsResponse::Attr(_) | MdsResponse::InlineData { .. }) => refused,
                    Ok(r) => Some(super::unexpected(r)),
                    Err(e) => Some(e),
                };
            }
            records.unsent.fetch_sub(n, Ordering::AcqRel);
            if let Some(e) = refused {
                tracing::warn!(
                    ino,
                    "an open answered ahead was refused; its handles fail: {e}"
                );
                if let Some(m) = metrics::get() {
                    m.dirops_ahead_failed.inc();
                }
                self.files.fail_handles_of(ino);
                self.cache.invalidate(ino);
            }
        }
    }
}
