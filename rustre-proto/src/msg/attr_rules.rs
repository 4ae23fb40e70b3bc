//! The rules of a setattr's owner, mode and time changes, as Linux applies them: who may
//! make each change (EPERM/EACCES), and what a chown or a chmod does to the setid bits. The
//! MDS applies them to its store; a client applies the same rules to answer a change it
//! keeps until close (`rustre-fuse`'s `client::files::pending`), so both always agree.

use super::mds::{SetAttr, TimeSet};
use super::{may_access, Attr, Creds, FileKind, Timestamp};
use crate::Error;

/// Set-user-ID bit.
pub const S_ISUID: u32 = 0o4000;
/// Set-group-ID bit.
pub const S_ISGID: u32 = 0o2000;
/// Group-execute bit.
pub const S_IXGRP: u32 = 0o0010;
/// Sticky bit (of a directory: only owners may remove or rename its entries).
pub const S_ISVTX: u32 = 0o1000;
/// Write bit of an access mask.
const W: u32 = 2;

/// True for root and the file's owner.
pub fn is_owner(creds: &Creds, attr: &Attr) -> bool {
    creds.uid == 0 || creds.uid == attr.uid
}

/// The sticky-directory rule: whether `creds` may remove or rename `victim` out of `dir`
/// (root, the directory's owner and the victim's may, in a sticky directory; anyone with
/// write and search permission may elsewhere).
pub fn sticky_allows(creds: &Creds, dir: &Attr, victim: &Attr) -> bool {
    dir.perm & S_ISVTX == 0 || creds.uid == 0 || creds.uid == dir.uid || creds.uid == victim.uid
}

/// Applies the owner and mode changes of `set` to `a` (in that order, as Linux's
/// notify_change does): a chown by root, or by the owner to one of its groups, clears
/// setuid (and setgid with group-execute) on non-directories; a chmod by the owner (or
/// root) drops setgid when a non-root caller is not in the file's group. Returns whether
/// anything was set.
pub fn apply_owner_and_mode(creds: &Creds, a: &mut Attr, set: &SetAttr) -> Result<bool, Error> {
    let mut changed = false;
    if set.uid.is_some() || set.gid.is_some() {
        let new_uid = set.uid.unwrap_or(a.uid);
        let new_gid = set.gid.unwrap_or(a.gid);
        if creds.uid != 0 {
            if new_uid != a.uid || creds.uid != a.uid {
                return Err(Error::NotPermitted);
            }
            if new_gid != a.gid && !creds.in_group(new_gid) {
                return Err(Error::NotPermitted);
            }
        }
        if a.kind != FileKind::Dir {
            a.perm &= !S_ISUID;
            if a.perm & S_IXGRP != 0 {
                a.perm &= !S_ISGID;
            }
        }
        a.uid = new_uid;
        a.gid = new_gid;
        changed = true;
    }
    if let Some(p) = set.perm {
        if !is_owner(creds, a) {
            return Err(Error::NotPermitted);
        }
        let mut p = p & 0o7777;
        if creds.uid != 0 && a.kind != FileKind::Dir && !creds.in_group(a.gid) {
            p &= !S_ISGID;
        }
        a.perm = p;
        changed = true;
    }
    Ok(changed)
}

/// Applies the atime and mtime changes of `set` to `a`, `now` standing for UTIME_NOW: an
/// explicit time needs the owner (or root), "now" the owner or write permission. Returns
/// whether anything was set.
pub fn apply_times(
    creds: &Creds,
    a: &mut Attr,
    set: &SetAttr,
    now: Timestamp,
) -> Result<bool, Error> {
    let mut changed = false;
    for (is_atime, t) in [(true, set.atime), (false, set.mtime)] {
        let Some(t) = t else { continue };
        let value = match t {
            TimeSet::Now => {
                if !is_owner(creds, a) && !may_access(creds, a, W) {
                    return Err(Error::Access);
                }
                now
            }
            TimeSet::At(ts) => {
                if !is_owner(creds, a) {
                    return Err(Error::NotPermitted);
                }
                ts
            }
        };
        if is_atime {
            a.atime = value;
        } else {
            a.mtime = value;
        }
        changed = true;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(perm: u32, uid: u32, gid: u32) -> Attr {
        Attr {
            ino: 2,
            kind: FileKind::File,
            perm,
            nlink: 1,
            uid,
            gid,
            size: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            rdev: 0,
            layout: None,
            truncate_version: 0,
            acl: None,
            project: 0,
            inline: false,
        }
    }

    fn user(uid: u32, gid: u32) -> Creds {
        Creds {
            uid,
            gid,
            groups: vec![gid],
        }
    }

    #[test]
    fn chown_clears_setuid_and_a_later_chmod_sets_it_again() {
        let mut a = file(0o6755, 0, 0);
        let chown = SetAttr {
            uid: Some(1000),
            gid: Some(1000),
            ..SetAttr::default()
        };
        assert!(apply_owner_and_mode(&Creds::root(), &mut a, &chown).unwrap());
        assert_eq!((a.perm, a.uid, a.gid), (0o0755, 1000, 1000));
        let chmod = SetAttr {
            perm: Some(0o4755),
            ..SetAttr::default()
        };
        apply_owner_and_mode(&Creds::root(), &mut a, &chmod).unwrap();
        assert_eq!(a.perm, 0o4755);
    }

    #[test]
    fn only_the_owner_changes_mode_and_explicit_times() {
        let mut a = file(0o666, 1000, 1000);
        let other = user(2000, 2000);
        let chmod = SetAttr {
            perm: Some(0o600),
            ..SetAttr::default()
        };
        assert_eq!(
            apply_owner_and_mode(&other, &mut a, &chmod),
            Err(Error::NotPermitted)
        );
        let at = SetAttr {
            mtime: Some(TimeSet::At(Timestamp { sec: 5, nsec: 0 })),
            ..SetAttr::default()
        };
        assert_eq!(
            apply_times(&other, &mut a, &at, Timestamp::default()),
            Err(Error::NotPermitted)
        );
        // A writer may set "now".
        let now = SetAttr {
            mtime: Some(TimeSet::Now),
            ..SetAttr::default()
        };
        let t = Timestamp { sec: 9, nsec: 1 };
        assert!(apply_times(&other, &mut a, &now, t).unwrap());
        assert_eq!(a.mtime, t);
        // A non-member owner's chmod drops setgid.
        let owner = user(1000, 3000);
        let mut b = file(0o644, 1000, 1000);
        let sgid = SetAttr {
            perm: Some(0o2755),
            ..SetAttr::default()
        };
        apply_owner_and_mode(&owner, &mut b, &sgid).unwrap();
        assert_eq!(b.perm, 0o755);
    }

    #[test]
    fn a_user_may_only_chgrp_to_its_groups() {
        let mut a = file(0o644, 1000, 1000);
        let u = user(1000, 1000);
        let to_other = SetAttr {
            gid: Some(5),
            ..SetAttr::default()
        };
        assert_eq!(
            apply_owner_and_mode(&u, &mut a, &to_other),
            Err(Error::NotPermitted)
        );
        let give_away = SetAttr {
            uid: Some(0),
            ..SetAttr::default()
        };
        assert_eq!(
            apply_owner_and_mode(&u, &mut a, &give_away),
            Err(Error::NotPermitted)
        );
    }
}
