//! POSIX access ACLs as inode attributes carry them, and the POSIX.1e access check that the
//! MDS and the client's metadata cache both make with them ([`super::may_access`]).
//!
//! An inode keeps only what its mode cannot hold: the mode's owner bits are the ACL's
//! USER_OBJ entry, its other bits the OTHER entry and, when the ACL is extended, its group
//! bits the MASK entry (Linux's rule). So a chmod changes the ACL the way Linux's
//! `posix_acl_chmod` does with nothing else to update, and an ACL the mode can say alone
//! (no MASK) is kept as the mode only. The Linux xattr format and the default ACLs new
//! inodes inherit are the MDS's business (`rustre-server`'s `mds::acl`).

use serde::{Deserialize, Serialize};

use super::{Attr, Creds};

/// Most entries of one ACL, the four base entries (USER_OBJ, GROUP_OBJ, MASK, OTHER)
/// included; more is ENOSPC, as a file system that cannot fit the xattr says. Every
/// attribute answer carries the named entries, and a readdirplus page carries up to 4096
/// attributes in one bounded body, so the bound is kept small.
pub const ACL_MAX_ENTRIES: usize = 64;

/// Read, write and execute bits of an ACL entry (as a mode class's `rwx`).
pub const ACL_PERM_BITS: u32 = 0o7;

/// The xattr name of an inode's access ACL: ENODATA when its attributes carry none
/// (`Attr::acl`), which a client may answer from cached attributes.
pub const ACCESS_XATTR: &str = "system.posix_acl_access";
/// The xattr name of a directory's default ACL (not in the attributes: the MDS's record).
pub const DEFAULT_XATTR: &str = "system.posix_acl_default";

/// A named entry: a user or group id and what it may do (`rwx` bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    pub id: u32,
    pub perm: u32,
}

/// The part of an extended POSIX access ACL that the mode does not hold (see the module
/// comment): the inode's mode group bits are its MASK.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExtAcl {
    /// The owning group's entry (GROUP_OBJ).
    pub group_obj: u32,
    /// Named users (ACL_USER), by increasing uid, each uid once.
    pub users: Vec<AclEntry>,
    /// Named groups (ACL_GROUP), by increasing gid, each gid once.
    pub groups: Vec<AclEntry>,
}

impl ExtAcl {
    /// Entries of the whole ACL this stands for, base entries included.
    pub fn entry_count(&self) -> usize {
        4 + self.users.len() + self.groups.len()
    }

    /// POSIX.1e's check for a caller who is neither root nor the owner of `attr` (both are
    /// decided by the mode alone): a named user entry that matches decides, masked; else
    /// the group class (the owning group and named groups) if the caller is in any of it:
    /// allowed when one matching entry grants `want`, masked; else the OTHER entry.
    pub fn grants(&self, creds: &Creds, attr: &Attr, want: u32) -> bool {
        let mask = (attr.perm >> 3) & ACL_PERM_BITS;
        if let Some(e) = self.users.iter().find(|e| e.id == creds.uid) {
            return e.perm & mask & want == want;
        }
        let group_class = std::iter::once((attr.gid, self.group_obj))
            .chain(self.groups.iter().map(|e| (e.id, e.perm)));
        let mut member = false;
        for (gid, perm) in group_class {
            if creds.in_group(gid) {
                member = true;
                if perm & want == want {
                    return mask & want == want;
                }
            }
        }
        !member && attr.perm & ACL_PERM_BITS & want == want
    }
}

#[cfg(test)]
mod tests {
    use super::super::{may_access, FileKind, Timestamp};
    use super::*;

    fn attr(perm: u32, acl: Option<ExtAcl>) -> Attr {
        let acl = acl.map(Box::new);
        Attr {
            ino: 2,
            kind: FileKind::File,
            perm,
            nlink: 1,
            uid: 10,
            gid: 20,
            size: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            rdev: 0,
            layout: None,
            truncate_version: 0,
            acl,
            project: 0,
            inline: false,
        }
    }

    fn user(uid: u32, gid: u32, groups: &[u32]) -> Creds {
        Creds {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    fn e(id: u32, perm: u32) -> AclEntry {
        AclEntry { id, perm }
    }

    #[test]
    fn named_users_and_groups_are_masked() {
        // user::rw-, user:30:rw-, user:31:r--, group::r--, group:40:rwx, mask::rw-, other::---
        let acl = ExtAcl {
            group_obj: 4,
            users: vec![e(30, 6), e(31, 4)],
            groups: vec![e(40, 7)],
        };
        let a = attr(0o660, Some(acl));
        // The owner's bits are the mode's, whatever named entries say.
        assert!(may_access(&user(10, 40, &[]), &a, 6));
        assert!(!may_access(&user(10, 40, &[]), &a, 1));
        // Named users: their entry decides, even when a group would give more.
        assert!(may_access(&user(30, 1, &[]), &a, 6));
        assert!(!may_access(&user(31, 40, &[]), &a, 2));
        assert!(may_access(&user(31, 40, &[]), &a, 4));
        // The owning group's entry (r--), not the mode's group bits (the mask, rw-).
        assert!(may_access(&user(50, 20, &[]), &a, 4));
        assert!(!may_access(&user(50, 20, &[]), &a, 2));
        // A named group grants rwx, the mask takes x away.
        assert!(may_access(&user(50, 1, &[40]), &a, 6));
        assert!(!may_access(&user(50, 1, &[40]), &a, 1));
        // Others: nothing, and a group member never falls back to OTHER.
        assert!(!may_access(&user(50, 1, &[]), &a, 4));
        let open = attr(0o664, a.acl.as_deref().cloned());
        assert!(may_access(&user(50, 1, &[]), &open, 4));
        let mut none = open.acl.as_deref().cloned().unwrap();
        none.group_obj = 0;
        let denied = attr(0o664, Some(none));
        assert!(!may_access(&user(50, 20, &[]), &denied, 4));
    }

    #[test]
    fn any_matching_group_entry_may_grant() {
        // group::r--, group:40:-w-, mask::rw-: a member of both may read or write, not both.
        let acl = ExtAcl {
            group_obj: 4,
            users: vec![],
            groups: vec![e(40, 2)],
        };
        let a = attr(0o660, Some(acl));
        let c = user(50, 20, &[40]);
        assert!(may_access(&c, &a, 4));
        assert!(may_access(&c, &a, 2));
        assert!(!may_access(&c, &a, 6));
    }

    #[test]
    fn root_is_decided_by_the_mode() {
        let acl = ExtAcl {
            group_obj: 0,
            users: vec![e(0, 0)],
            groups: vec![],
        };
        // No execute bit anywhere: root may not execute; read and write it may.
        let a = attr(0o600, Some(acl.clone()));
        assert!(may_access(&Creds::root(), &a, 6));
        assert!(!may_access(&Creds::root(), &a, 1));
        assert!(may_access(&Creds::root(), &attr(0o610, Some(acl)), 1));
    }
}
