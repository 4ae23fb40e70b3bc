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
//!
//! The files this client made in a capped directory ([`DirCaps::made_file`]) are vouched
//! for while it holds that directory: no other client can reach them (a lookup or listing
//! of the directory recalls it first; a file with one link has no other way in), so what
//! this client knows of them is what the MDS holds, and an open for reading goes ahead of
//! the MDS ([`super::open_ahead`]). A file stops being vouched for when this client links
//! it elsewhere or moves any file out of its directory (a move out is not tracked file by
//! file: every file made in that directory before it stops).

use std::collections::{HashMap, HashSet};
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

/// Most files remembered as made in a capped directory; past it the files of directories
/// no longer held are forgotten, and if that is not enough new files are not vouched for.
const MADE_FILES_MAX: usize = 1 << 18;

/// The files made in capped directories.
#[derive(Default)]
struct MadeFiles {
    /// File -> (its directory, that directory's move-out count when it was made).
    files: HashMap<Ino, (Ino, u64)>,
    /// Directory -> how many times a file was moved out of it (absent: never).
    moves_out: HashMap<Ino, u64>,
}

/// The capabilities held, and those recalled.
#[derive(Default)]
pub(super) struct DirCaps {
    held: Mutex<HashSet<Ino>>,
    /// Directories recalled: a recall can overtake the `Mkdir` answer that granted it
    /// (the MDS grants before it commits), and that answer must not hold it then. Bounded
    /// by [`RECALLED_KEPT_MAX`].
    recalled: Mutex<HashSet<Ino>>,
    made: Mutex<MadeFiles>,
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

    /// File `ino` was just made by this client in `dir`: vouched for while `dir` is held.
    pub(super) fn made_file(&self, dir: Ino, ino: Ino) {
        if !self.holds(dir) {
            return;
        }
        let mut m = lock(&self.made);
        if m.files.len() >= MADE_FILES_MAX {
            let held = lock(&self.held);
            m.files.retain(|_, (d, _)| held.contains(d));
            m.moves_out.retain(|d, _| held.contains(d));
        }
        if m.files.len() < MADE_FILES_MAX {
            let moved = m.moves_out.get(&dir).copied().unwrap_or(0);
            m.files.insert(ino, (dir, moved));
        }
    }

    /// The directory of `ino` if this client made it there, holds that directory and has
    /// moved nothing out of it since: no other client can have reached the file.
    pub(super) fn vouched_dir(&self, ino: Ino) -> Option<Ino> {
        let m = lock(&self.made);
        let &(dir, moved) = m.files.get(&ino)?;
        let unmoved = m.moves_out.get(&dir).copied().unwrap_or(0) == moved;
        (unmoved && self.holds(dir)).then_some(dir)
    }

    /// A rename from `parent` to `new_parent`: if they differ, a file may leave either for
    /// the other (an exchange moves both ways), where another client may reach it.
    pub(super) fn moving_between(&self, parent: Ino, new_parent: Ino) {
        if parent != new_parent {
            self.moving_out_of(parent);
            self.moving_out_of(new_parent);
        }
    }

    /// Some file may leave `dir` for another directory: none of the files made in it
    /// before is vouched for any more.
    fn moving_out_of(&self, dir: Ino) {
        // Files of a directory not held are not vouched for anyway.
        if !self.holds(dir) {
            return;
        }
        let mut m = lock(&self.made);
        if m.moves_out.len() >= MADE_FILES_MAX {
            let held = lock(&self.held);
            m.moves_out.retain(|d, _| held.contains(d));
        }
        *m.moves_out.entry(dir).or_insert(0) += 1;
    }

    /// File `ino` gets another name (a hard link): another client may reach it there.
    pub(super) fn linking(&self, ino: Ino) {
        lock(&self.made).files.remove(&ino);
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
        for &dir in &dirs {
            self.meta_cache.shared_from_now(dir);
        }
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

    #[test]
    fn a_file_is_vouched_for_while_made_in_a_held_directory_and_never_moved_out() {
        let caps = DirCaps::default();
        caps.hold(5);
        caps.hold(7);
        caps.made_file(5, 50);
        caps.made_file(5, 51);
        caps.made_file(7, 70);
        caps.made_file(9, 90);
        assert_eq!(caps.vouched_dir(50), Some(5));
        assert_eq!(caps.vouched_dir(90), None, "made in a directory not held");
        caps.moving_between(5, 5);
        assert_eq!(
            caps.vouched_dir(50),
            Some(5),
            "renamed within its directory"
        );
        caps.linking(51);
        assert_eq!(caps.vouched_dir(51), None, "linked elsewhere");
        caps.moving_between(8, 5);
        assert_eq!(caps.vouched_dir(50), None, "a file may have left 5");
        caps.made_file(5, 52);
        assert_eq!(caps.vouched_dir(52), Some(5), "made after the move");
        assert_eq!(caps.vouched_dir(70), Some(7));
        caps.recall(&[7]);
        assert_eq!(caps.vouched_dir(70), None, "its directory recalled");
        caps.forget(None);
        assert_eq!(
            caps.vouched_dir(52),
            None,
            "the session's capabilities ended"
        );
    }
}
