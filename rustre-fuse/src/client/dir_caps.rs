//! The directory capabilities this client's session holds (rustre-server
//! `mds/dir_caps.rs`): a directory this client made, which no other client can look into
//! until the MDS recalls it from this one. In them unlinks and renames go ahead of the MDS
//! by default ([`super::async_dirops`], `AsyncDirops::Capped`).
//!
//! A `Mkdir` asks for one when the mount goes ahead only in capped directories
//! (`DiropsAhead::asks_dir_caps`); the MDS
//! grants it before it commits the directory. A recall comes on the MDS's feed (a
//! `Change::Recall` naming this session), which the feed watcher hands here: the directory
//! stops going ahead at once, and once every change answered ahead is answered
//! (`Client::dirops_settled`) the MDS hears `ReturnDirCaps` and lets the waiting request
//! of the other client go on. A feed that lost changes may have lost a recall: every
//! capability goes back then. A session replaced after an eviction holds none (the MDS
//! dropped them with it), and a directory removed takes its capability with it.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use rustre_proto::msg::mds::{Change, ChangeBatch, MdsOp, MdsResponse, RETURN_DIR_CAPS_MAX};
use rustre_proto::msg::{Attr, Creds, Ino};
use rustre_proto::sync::lock;
use rustre_proto::Error;

use super::meta_ops::check_layout;
use super::{unexpected, Client};

/// Most recalled directories remembered; past it the set starts again (a recall that
/// overtakes its grant's answer by that many others is not expected).
const RECALLED_KEPT_MAX: usize = 1 << 16;

/// The capabilities held, and those recalled.
#[derive(Default)]
pub(super) struct DirCaps {
    held: Mutex<HashSet<Ino>>,
    /// Directories recalled: a recall can overtake the `Mkdir` answer that granted it
    /// (the MDS grants before it commits), and that answer must not hold it then. Bounded
    /// by [`RECALLED_KEPT_MAX`].
    recalled: Mutex<HashSet<Ino>>,
}

impl DirCaps {
    /// Whether this session holds the capability on `dir`.
    pub(super) fn holds(&self, dir: Ino) -> bool {
        lock(&self.held).contains(&dir)
    }

    /// Every directory held.
    fn held(&self) -> Vec<Ino> {
        lock(&self.held).iter().copied().collect()
    }

    /// Granted by a `Mkdir` answer, unless recalled already.
    fn hold(&self, dir: Ino) {
        let recalled = lock(&self.recalled);
        if !recalled.contains(&dir) {
            lock(&self.held).insert(dir);
        }
    }

    /// Gone with its directory, or with the session (`None`: all).
    fn forget(&self, dir: Option<Ino>) {
        let mut held = lock(&self.held);
        match dir {
            Some(d) => {
                held.remove(&d);
            }
            None => held.clear(),
        }
    }

    /// Recalled (or given back unasked): not held from now on.
    fn recall(&self, dirs: &[Ino]) {
        let mut recalled = lock(&self.recalled);
        if recalled.len() + dirs.len() > RECALLED_KEPT_MAX {
            recalled.clear();
        }
        recalled.extend(dirs.iter().copied());
        let mut held = lock(&self.held);
        for dir in dirs {
            held.remove(dir);
        }
    }
}

impl Client {
    /// Makes directory `name` in `parent` (`MdsOp::Mkdir`), asking for its capability when
    /// this client goes ahead only in capped directories.
    pub(super) async fn mkdir_call(
        &self,
        creds: &Creds,
        parent: Ino,
        name: String,
        (perm, umask): (u32, u32),
    ) -> Result<Attr, Error> {
        let want_cap = self.dirops_ahead.asks_dir_caps();
        let op = MdsOp::Mkdir {
            parent,
            name,
            perm,
            umask,
            want_cap,
        };
        match self.mds(creds, op).await? {
            MdsResponse::Created {
                mut attr, capped, ..
            } => {
                check_layout(&attr)?;
                if capped && want_cap {
                    self.dirops_ahead.caps.hold(attr.ino);
                }
                self.merge_local(&mut attr);
                Ok(attr)
            }
            r => Err(unexpected(r)),
        }
    }

    /// `dir` is gone (this client removed it): its capability went with it at the MDS.
    pub(super) fn drop_dir_cap(&self, dir: Ino) {
        self.dirops_ahead.caps.forget(Some(dir));
    }

    /// Every capability of the session ended (evicted, or a new session): none is held.
    pub(super) fn drop_dir_caps(&self) {
        self.dirops_ahead.caps.forget(None);
    }

    /// A feed answer of `session`'s MDS: gives back the directories it recalls from this
    /// session (every held one when the feed lost changes: a recall may be among them),
    /// and leaves the batch without the recalls, which are not changes.
    pub(super) fn take_recalls(self: &Arc<Self>, session: u64, batch: &mut ChangeBatch) {
        let mut recalled: Vec<Ino> = Vec::new();
        batch.changes.retain(|c| match c.change {
            Change::Recall(dir) => {
                if c.request.0 == session {
                    recalled.push(dir);
                }
                false
            }
            _ => true,
        });
        if batch.lost {
            recalled.extend(self.dirops_ahead.caps.held());
        }
        if recalled.is_empty() {
            return;
        }
        let c = self.clone();
        tokio::spawn(async move { c.return_dir_caps(session, recalled).await });
    }

    /// Gives the capabilities on `dirs` back: no change goes ahead in them from now on,
    /// and once every change in flight is answered the MDS hears it (even of a directory
    /// this client does not know it holds: the MDS may think so, after a feed loss).
    async fn return_dir_caps(&self, session: u64, mut dirs: Vec<Ino>) {
        dirs.sort_unstable();
        dirs.dedup();
        self.dirops_ahead.caps.recall(&dirs);
        // A change that took its place in flight before the recall is answered first
        // (`Client::mds` waits for that too; said here for the reader).
        self.dirops_settled().await;
        if self.session() != session {
            return;
        }
        for chunk in dirs.chunks(RETURN_DIR_CAPS_MAX) {
            let op = MdsOp::ReturnDirCaps {
                dirs: chunk.to_vec(),
            };
            if let Err(e) = self.mds(&Creds::root(), op).await {
                // The MDS takes them back once the recall has waited long enough.
                tracing::warn!("directory capabilities not given back: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recall_ends_a_capability_even_one_whose_grant_is_answered_after_it() {
        let caps = DirCaps::default();
        caps.hold(5);
        caps.hold(7);
        assert!(caps.holds(5) && caps.holds(7));
        caps.recall(&[5, 6]);
        assert!(!caps.holds(5), "recalled");
        assert!(caps.holds(7), "not recalled");
        caps.hold(6);
        assert!(!caps.holds(6), "recalled before its mkdir's answer came");
    }
}
