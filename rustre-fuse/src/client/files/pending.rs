//! Attribute changes kept until close: a chmod, chown or utimes of a file this client has
//! open for writing is answered here and sent to the MDS with the close-time size report
//! (docs/metadata-cache.md, "Attribute changes of files being written").
//!
//! `tar x` and `cp -a` write a file, then set its times, owner and mode while it is still
//! open: three MDS round trips, each waiting for a durable commit, where the data those
//! attributes describe is not even durable before an fsync. Under close-to-open
//! consistency no other client is owed them before the close, so the client keeps them
//! and sends one setattr with the final values when the file's size is reported: on
//! close, fsync, a write or truncate after them, an xattr change, or the periodic report.
//!
//! The answer the caller gets is computed with the MDS's own rules
//! ([`rustre_proto::msg::attr_rules`]), so it is what the MDS will store; a change those
//! rules refuse is not kept but sent, and fails there as it always did. Every attribute
//! answer this client gives about the inode shows the kept values.

use rustre_proto::msg::attr_rules::{apply_owner_and_mode, apply_times};
use rustre_proto::msg::mds::SetAttr;
use rustre_proto::msg::{Attr, Creds, Timestamp};

/// Changes kept for one inode, and what they made of its attributes.
#[derive(Debug, Clone)]
pub(crate) struct PendingAttrs {
    /// Who made them: the setattr is sent with these credentials.
    pub(crate) creds: Creds,
    /// What to send: the final owner, mode and times of the changes kept.
    pub(crate) set: SetAttr,
    /// The attributes as the kept changes left them (their ctime is the last change's).
    shown: Attr,
}

impl PendingAttrs {
    /// True when `other` holds the same changes (nothing was kept since it was taken).
    pub(crate) fn same_as(&self, other: &PendingAttrs) -> bool {
        self.creds == other.creds && self.set == other.set && self.shown == other.shown
    }

    /// Shows the kept changes in `attr`, an answer about the same inode.
    pub(crate) fn overlay(&self, attr: &mut Attr) {
        if self.set.perm.is_some() || self.set.uid.is_some() || self.set.gid.is_some() {
            attr.perm = self.shown.perm;
        }
        if self.set.uid.is_some() || self.set.gid.is_some() {
            attr.uid = self.shown.uid;
            attr.gid = self.shown.gid;
        }
        if self.set.atime.is_some() {
            attr.atime = self.shown.atime;
        }
        if self.set.mtime.is_some() {
            attr.mtime = self.shown.mtime;
        }
        attr.ctime = attr.ctime.max(self.shown.ctime);
    }
}

/// Whether `set` is a change that may be kept: owner, mode or times only (a size change
/// goes to the MDS, which cuts the objects before it answers).
pub(crate) fn keepable(set: &SetAttr) -> bool {
    set.size.is_none()
        && (set.perm.is_some()
            || set.uid.is_some()
            || set.gid.is_some()
            || set.atime.is_some()
            || set.mtime.is_some())
}

/// Applies `set` by `creds` at `now` to `current` (the attributes as this client shows
/// them, kept changes included) and adds it to `pending`. `None`, with nothing kept, when
/// the rules refuse the change (the MDS is then asked, and refuses it the same way) or
/// when other credentials made the changes already kept (those are sent first).
pub(crate) fn fold(
    pending: Option<&PendingAttrs>,
    creds: &Creds,
    current: &Attr,
    set: &SetAttr,
    now: Timestamp,
) -> Option<PendingAttrs> {
    if !keepable(set) || pending.is_some_and(|p| p.creds != *creds) {
        return None;
    }
    let mut shown = current.clone();
    apply_owner_and_mode(creds, &mut shown, set).ok()?;
    apply_times(creds, &mut shown, set, now).ok()?;
    shown.ctime = now.max(current.ctime);
    let mut kept = pending.map_or_else(SetAttr::default, |p| p.set.clone());
    if set.uid.is_some() || set.gid.is_some() {
        kept.uid = Some(shown.uid);
        kept.gid = Some(shown.gid);
    }
    // The mode sent is the final one: a chown after a chmod cleared setid bits of the mode
    // the chmod set, and the MDS applies the owner before the mode.
    if set.perm.is_some() || kept.perm.is_some() {
        kept.perm = Some(shown.perm);
    }
    if set.atime.is_some() {
        kept.atime = set.atime;
    }
    if set.mtime.is_some() {
        kept.mtime = set.mtime;
    }
    Some(PendingAttrs {
        creds: creds.clone(),
        set: kept,
        shown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::mds::TimeSet;
    use rustre_proto::msg::FileKind;

    fn attr() -> Attr {
        Attr {
            ino: 9,
            kind: FileKind::File,
            perm: 0o600,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 12,
            atime: Timestamp::default(),
            mtime: Timestamp { sec: 50, nsec: 0 },
            ctime: Timestamp { sec: 50, nsec: 0 },
            rdev: 0,
            layout: None,
            truncate_version: 0,
            acl: None,
            project: 0,
            inline: false,
        }
    }

    fn at(sec: i64) -> Timestamp {
        Timestamp { sec, nsec: 0 }
    }

    /// What tar does after writing a file as root: times, owner, mode.
    #[test]
    fn tar_s_three_changes_become_one_with_the_final_values() {
        let root = Creds::root();
        let a = attr();
        let times = SetAttr {
            atime: Some(TimeSet::At(at(7))),
            mtime: Some(TimeSet::At(at(8))),
            ..SetAttr::default()
        };
        let p = fold(None, &root, &a, &times, at(100)).unwrap();
        let mut shown = a.clone();
        p.overlay(&mut shown);
        assert_eq!(
            (shown.atime, shown.mtime, shown.ctime),
            (at(7), at(8), at(100))
        );
        let chown = SetAttr {
            uid: Some(1000),
            gid: Some(1000),
            ..SetAttr::default()
        };
        let p = fold(Some(&p), &root, &shown, &chown, at(101)).unwrap();
        p.overlay(&mut shown);
        let chmod = SetAttr {
            perm: Some(0o4755),
            ..SetAttr::default()
        };
        let p = fold(Some(&p), &root, &shown, &chmod, at(102)).unwrap();
        let mut fresh = a.clone();
        p.overlay(&mut fresh);
        assert_eq!(
            (fresh.perm, fresh.uid, fresh.gid, fresh.mtime, fresh.ctime),
            (0o4755, 1000, 1000, at(8), at(102))
        );
        assert_eq!(
            p.set,
            SetAttr {
                perm: Some(0o4755),
                uid: Some(1000),
                gid: Some(1000),
                atime: Some(TimeSet::At(at(7))),
                mtime: Some(TimeSet::At(at(8))),
                ..SetAttr::default()
            }
        );
    }

    #[test]
    fn a_chown_after_a_chmod_sends_the_mode_it_cleared() {
        let root = Creds::root();
        let a = attr();
        let chmod = SetAttr {
            perm: Some(0o6755),
            ..SetAttr::default()
        };
        let p = fold(None, &root, &a, &chmod, at(60)).unwrap();
        let mut shown = a.clone();
        p.overlay(&mut shown);
        let chown = SetAttr {
            uid: Some(5),
            ..SetAttr::default()
        };
        let p = fold(Some(&p), &root, &shown, &chown, at(61)).unwrap();
        assert_eq!(
            p.set.perm,
            Some(0o0755),
            "chown clears setuid and setgid (g+x)"
        );
        assert_eq!((p.set.uid, p.set.gid), (Some(5), Some(0)));
    }

    #[test]
    fn refused_changes_size_changes_and_other_callers_are_not_kept() {
        let a = attr();
        let user = Creds {
            uid: 1000,
            gid: 1000,
            groups: vec![1000],
        };
        let chmod = SetAttr {
            perm: Some(0o644),
            ..SetAttr::default()
        };
        assert!(
            fold(None, &user, &a, &chmod, at(1)).is_none(),
            "not the owner"
        );
        let truncate = SetAttr {
            size: Some(0),
            ..SetAttr::default()
        };
        assert!(fold(None, &Creds::root(), &a, &truncate, at(1)).is_none());
        let p = fold(None, &Creds::root(), &a, &chmod, at(1)).unwrap();
        let mut owned = a.clone();
        owned.uid = 1000;
        assert!(
            fold(Some(&p), &user, &owned, &chmod, at(2)).is_none(),
            "other creds"
        );
    }
}
