//! Permission checks as Linux makes them: owner/group/other bits, root bypass, sticky
//! directories. Every function returns EACCES or EPERM exactly where Linux would.

use rustre_proto::msg::{Attr, Creds, FileKind};
use rustre_proto::Error;

pub const R: u32 = 4;
pub const W: u32 = 2;
pub const X: u32 = 1;

pub use rustre_proto::msg::attr_rules::{S_ISGID, S_ISUID, S_ISVTX, S_IXGRP};

/// True when `creds` may access `attr` with `mask` (R|W|X bits).
pub fn allowed(creds: &Creds, attr: &Attr, mask: u32) -> bool {
    rustre_proto::msg::may_access(creds, attr, mask)
}

/// EACCES unless `creds` may access `attr` with `mask`.
pub fn check(creds: &Creds, attr: &Attr, mask: u32) -> Result<(), Error> {
    if allowed(creds, attr, mask) {
        Ok(())
    } else {
        Err(Error::Access)
    }
}

/// True for root and the file's owner.
pub fn is_owner(creds: &Creds, attr: &Attr) -> bool {
    rustre_proto::msg::attr_rules::is_owner(creds, attr)
}

/// EPERM unless root or the owner.
pub fn check_owner(creds: &Creds, attr: &Attr) -> Result<(), Error> {
    if is_owner(creds, attr) {
        Ok(())
    } else {
        Err(Error::NotPermitted)
    }
}

/// The sticky-directory rule for removing or renaming `victim` out of `dir`.
pub fn check_sticky(creds: &Creds, dir: &Attr, victim: &Attr) -> Result<(), Error> {
    if rustre_proto::msg::attr_rules::sticky_allows(creds, dir, victim) {
        Ok(())
    } else {
        Err(Error::NotPermitted)
    }
}

/// Permission bits after a write or truncate by `creds`: non-root writers clear setuid, and
/// setgid when group-execute is set (Linux's should_remove_suid).
pub fn perm_after_write(creds: &Creds, attr: &Attr) -> u32 {
    if creds.uid == 0 || attr.kind != FileKind::File {
        return attr.perm;
    }
    let mut p = attr.perm & !S_ISUID;
    if p & S_IXGRP != 0 {
        p &= !S_ISGID;
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::Timestamp;

    fn attr(perm: u32, uid: u32, gid: u32, kind: FileKind) -> Attr {
        Attr {
            ino: 2,
            kind,
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
            groups: vec![],
        }
    }

    #[test]
    fn owner_group_other_bits() {
        let a = attr(0o640, 10, 20, FileKind::File);
        assert!(allowed(&user(10, 1), &a, R | W));
        assert!(!allowed(&user(10, 1), &a, X));
        assert!(allowed(&user(11, 20), &a, R));
        assert!(!allowed(&user(11, 20), &a, W));
        assert!(!allowed(&user(11, 21), &a, R));
        // The owner class applies even when the other classes would allow more.
        let b = attr(0o077, 10, 20, FileKind::File);
        assert!(!allowed(&user(10, 20), &b, R));
    }

    #[test]
    fn root_needs_some_execute_bit_on_files() {
        assert!(!allowed(
            &Creds::root(),
            &attr(0o600, 1, 1, FileKind::File),
            X
        ));
        assert!(allowed(
            &Creds::root(),
            &attr(0o610, 1, 1, FileKind::File),
            X
        ));
        assert!(allowed(
            &Creds::root(),
            &attr(0o000, 1, 1, FileKind::Dir),
            X | W
        ));
    }

    #[test]
    fn sticky_and_suid() {
        let dir = attr(0o1777, 0, 0, FileKind::Dir);
        let f = attr(0o644, 10, 10, FileKind::File);
        assert!(check_sticky(&user(11, 11), &dir, &f).is_err());
        assert!(check_sticky(&user(10, 11), &dir, &f).is_ok());
        let s = attr(0o6755, 10, 10, FileKind::File);
        assert_eq!(perm_after_write(&user(10, 10), &s), 0o0755);
        let s = attr(0o6745, 10, 10, FileKind::File);
        assert_eq!(perm_after_write(&user(10, 10), &s), 0o2745);
        assert_eq!(perm_after_write(&Creds::root(), &s), 0o6745);
    }
}
