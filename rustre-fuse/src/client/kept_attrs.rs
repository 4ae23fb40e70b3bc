//! Owner, mode and time changes of a file this client holds open for writing, kept until
//! its close (the state and its rules: [`super::files::pending`]): keeping one, and sending
//! what is kept, alone or before an open the MDS must check against it.

use rustre_proto::msg::mds::SetAttr;
use rustre_proto::msg::{Attr, Creds, Ino};
use rustre_proto::Error;

use super::Client;

impl Client {
    /// Sends the owner, mode and time changes kept for `ino` ([`super::files::pending`]) as one
    /// setattr. They stay shown until the MDS answered, and are dropped then unless more
    /// were kept meanwhile (those are sent by the next report, with the earlier ones).
    pub(crate) async fn send_kept_attrs(&self, ino: Ino) -> Result<(), Error> {
        let _turn = self.files.report_turns.take(ino).await;
        self.send_kept_attrs_in_turn(ino).await
    }

    /// [`Client::send_kept_attrs`] by a caller holding `ino`'s report turn.
    pub(super) async fn send_kept_attrs_in_turn(&self, ino: Ino) -> Result<(), Error> {
        let Some(kept) = self.files.pending(ino) else {
            return Ok(());
        };
        let r = self.setattr(&kept.creds, ino, kept.set.clone()).await;
        self.files.sent_pending(ino, &kept);
        if let Err(e) = &r {
            tracing::warn!(ino, "attribute changes kept until close were refused: {e}");
        }
        r.map(|_| ())
    }

    /// An owner, mode or time change of a file this client has open for writing, kept
    /// until the close when [`super::files::pending`] may: the answer is
    /// the attributes it leaves. Not kept: a chown of a file that may carry a capability
    /// (the MDS drops it), a chmod of a file with an ACL (whose mask is its group bits), a
    /// file whose attributes this client does not know from its cache.
    pub(super) fn keep_setattr(&self, creds: &Creds, ino: Ino, set: &SetAttr) -> Option<Attr> {
        self.kept_setattr(|| creds.clone(), ino, set)
    }

    /// [`Client::setattr_file`] when the change is kept until close: the attributes it
    /// leaves, at once, without a wait or an MDS call (the FUSE adapter answers it on
    /// fuser's thread: `tar x` sets times, owner and mode on every file it holds open).
    /// `None`: not kept, the caller makes the call. `creds` is asked for only when the
    /// change may be kept.
    pub fn kept_setattr(
        &self,
        creds: impl FnOnce() -> Creds,
        ino: Ino,
        set: &SetAttr,
    ) -> Option<Attr> {
        if !super::files::pending::keepable(set) {
            return None;
        }
        let chown = set.uid.is_some() || set.gid.is_some();
        if chown && !matches!(self.capability.get(ino), Some(Err(Error::NoData))) {
            return None;
        }
        let current = self.cached_getattr(ino)?;
        if set.perm.is_some() && current.acl.is_some() {
            return None;
        }
        self.files
            .keep_setattr(ino, &creds(), &current, set, rustre_proto::host::now())
    }

    /// Sends what is kept for `ino` before an open of it: the MDS checks the open against
    /// the mode and owner it holds, and the kernel already checked it against the kept ones
    /// (a file made readable or executable while its writer held it open: pjdfstest
    /// open::etxtbsy execs a copy of `sleep` it just chmodded, and the kernel's release of
    /// the writing handle, which would send the chmod, may come after the exec's open). A
    /// refusal is logged; the writer's close no longer reports it.
    pub(super) async fn send_kept_attrs_before_open(&self, ino: Ino) {
        if self.files.has_pending(ino) {
            let _ = self.send_kept_attrs(ino).await;
        }
    }
}
