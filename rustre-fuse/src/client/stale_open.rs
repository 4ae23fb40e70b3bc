//! An open that reaches, through a name another client removed or replaced, the file that
//! name used to lead to.
//!
//! The kernel keeps a name's inode for `entry_timeout`, and until the change feed's notice
//! of the change arrives, so an open of a name another client has just renamed a new file
//! over (the usual way to replace a file whole) may reach the old inode. While any open
//! holds that inode, on any client, it lives on as an orphan (no name leads to it, `nlink`
//! 0), the MDS opens it, and the opener would read the old file where Linux, and NFS's
//! close-to-open, give the new one. So an open that finds a regular file without links,
//! while no handle of this client holds it, is undone and answered ESTALE, and the metadata cache stops
//! answering the names that lead to that inode: the kernel then looks the name up again
//! (with `LOOKUP_REVAL`), which this client now asks the MDS, and opens what the name leads
//! to (or answers ENOENT if nothing does). A process that holds an unlinked file open may still
//! open it again (`/proc/PID/fd/N`): a handle of this client holds it.

use std::sync::Arc;

use rustre_proto::msg::{Attr, Creds, FileKind};
use rustre_proto::Error;

use super::Client;

impl Client {
    /// ESTALE (the open undone) when the MDS's answer `attr` to an open shows an orphan
    /// this client holds no handle on; see the module doc.
    pub(super) async fn refuse_orphan(
        self: &Arc<Self>,
        creds: &Creds,
        attr: &Attr,
    ) -> Result<(), Error> {
        if attr.kind != FileKind::File || attr.nlink > 0 || self.files.holds_open(attr.ino) {
            return Ok(());
        }
        // Undo the open record the MDS just made.
        let _ = self.release(creds, attr.ino).await;
        self.meta_cache.orphaned(attr.ino);
        self.cache.invalidate(attr.ino);
        Err(Error::Stale)
    }
}
