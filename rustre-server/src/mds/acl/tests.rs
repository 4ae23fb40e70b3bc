//! The ACL xattr codec, the mode kept in step with the access ACL, inheritance, and the
//! checks made with ACLs and for exec, over an in-memory store.

use rustre_proto::msg::acl::{AclEntry, ACL_MAX_ENTRIES};
use rustre_proto::msg::mds::SetAttr;
use rustre_proto::msg::{Attr, Creds, FileKind, Ino, Timestamp, ROOT_INO};
use rustre_proto::Error;

use super::posix::*;
use super::*;
use crate::mds::namespace::{self, Ctx, NewInode};
use crate::mds::open::{self, FMODE_EXEC};
use crate::mds::{attr, store};
use crate::meta::{Kv, Transaction};

const NOBODY: u32 = 65534;
/// The owner of the files of the exec test, and a user no ACL names.
const OWNER: u32 = 1000;

/// Linux's xattr form of `spec`: entries `TAG:ID:PERM` (`u`, `g`, `m`, `o`; `u` and `g`
/// with an id are named entries, any other tag is unknown to Linux), perm in octal.
fn acl(spec: &str) -> Vec<u8> {
    let mut v = XATTR_VERSION.to_le_bytes().to_vec();
    for e in spec.split_whitespace() {
        let f: Vec<&str> = e.split(':').collect();
        let tag = match (f[0], f[1].is_empty()) {
            ("u", true) => TAG_USER_OBJ,
            ("u", false) => TAG_USER,
            ("g", true) => TAG_GROUP_OBJ,
            ("g", false) => TAG_GROUP,
            ("m", _) => TAG_MASK,
            ("o", _) => TAG_OTHER,
            _ => 0x40,
        };
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&u16::from_str_radix(f[2], 8).unwrap().to_le_bytes());
        v.extend_from_slice(&f[1].parse().unwrap_or(UNDEFINED_ID).to_le_bytes());
    }
    v
}

/// `user::rw-, user:NOBODY:rw-, group::r--, mask::rw-, other::---`, as setfacl sends it.
const NOBODY_RW: &str = "u::6 u:65534:6 g::4 m::6 o::0";

fn user(uid: u32, gid: u32) -> Creds {
    Creds {
        uid,
        gid,
        groups: vec![],
    }
}

/// Runs `f` as `creds` in one transaction of `kv`.
fn run<T>(
    kv: &Kv,
    creds: &Creds,
    f: impl Fn(&mut dyn Transaction, &Ctx) -> Result<T, Error>,
) -> Result<T, Error> {
    let now = Timestamp { sec: 7, nsec: 0 };
    kv.transact(|tx| f(tx, &Ctx { creds, now }))
}

fn node(ino: Ino, kind: FileKind, perm: u32) -> NewInode {
    NewInode {
        ino,
        kind,
        perm,
        umask: 0o022,
        rdev: 0,
        target: None,
        layout: None,
    }
}

/// Creates `name` in `parent` as `creds`, asked with `perm` and umask 022.
fn make(kv: &Kv, creds: &Creds, parent: Ino, name: &str, kind: FileKind, perm: u32) -> Attr {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(100);
    let ino = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    run(kv, creds, |tx, c| {
        namespace::create_entry(tx, c, parent, name, node(ino, kind, perm))
    })
    .unwrap()
}

/// A fresh store whose root anyone may create in.
fn store_with_root() -> Kv {
    let kv = Kv::open_memory();
    crate::mds::bootstrap(&kv).unwrap();
    let set = SetAttr {
        perm: Some(0o777),
        ..SetAttr::default()
    };
    run(&kv, &Creds::root(), |tx, c| {
        attr::setattr(tx, c, ROOT_INO, &set)
    })
    .unwrap();
    kv
}

fn access(kv: &Kv, c: &Creds, ino: Ino, mask: u32) -> Result<(), Error> {
    run(kv, c, |tx, ctx| attr::access(tx, ctx, ino, mask))
}

fn set(kv: &Kv, c: &Creds, ino: Ino, name: &str, value: &[u8]) -> Result<(), Error> {
    run(kv, c, |tx, ctx| {
        attr::set_xattr(tx, ctx, ino, name, value, 0)
    })
}

fn get(kv: &Kv, ino: Ino, name: &str) -> Result<Vec<u8>, Error> {
    let anyone = user(OWNER + 1, OWNER + 1);
    run(kv, &anyone, |tx, ctx| attr::get_xattr(tx, ctx, ino, name))
}

#[test]
fn the_codec_round_trips_and_sorts_named_entries() {
    let a = PosixAcl::decode(&acl("u::7 u:9:4 u:3:6 g::5 g:8:1 m::7 o::0"))
        .unwrap()
        .unwrap();
    let (e3, e9) = (AclEntry { id: 3, perm: 6 }, AclEntry { id: 9, perm: 4 });
    assert_eq!(a.users, vec![e3, e9]);
    assert_eq!(
        (a.user_obj, a.group_obj, a.mask, a.other),
        (7, 5, Some(7), 0)
    );
    let sorted = acl("u::7 u:3:6 u:9:4 g::5 g:8:1 m::7 o::0");
    assert_eq!(a.encode(), sorted);
    assert_eq!(PosixAcl::decode(&sorted).unwrap(), Some(a));
    // A minimal ACL has no mask; no entries at all is a removal.
    let minimal = acl("u::6 g::4 o::4");
    let m = PosixAcl::decode(&minimal).unwrap().unwrap();
    assert_eq!((m.mask, m.encode()), (None, minimal));
    assert_eq!(PosixAcl::decode(&acl("")).unwrap(), None);
}

#[test]
fn the_codec_refuses_what_linux_refuses() {
    let mut partial = acl(NOBODY_RW);
    partial.pop();
    for (what, bytes) in [
        ("short header", vec![2, 0]),
        ("partial entry", partial),
        ("no GROUP_OBJ", acl("u::6 o::0")),
        ("named without mask", acl("u::6 u:5:6 g::4 o::0")),
        ("out of order", acl("u::6 g::4 u:5:6 m::6 o::0")),
        ("two masks", acl("u::6 g::4 m::6 m::6 o::0")),
        ("two others", acl("u::6 g::4 o::0 o::0")),
        ("a uid twice", acl("u::6 u:5:6 u:5:4 g::4 m::6 o::0")),
        ("perm beyond rwx", acl("u::6 g::10 o::0")),
        ("unknown tag", acl("u::6 g::4 x::4 o::0")),
    ] {
        let r = PosixAcl::decode(&bytes);
        assert!(matches!(r, Err(Error::Invalid(_))), "{what}: {r:?}");
    }
    let mut v1 = acl(NOBODY_RW);
    v1[0] = 1;
    assert_eq!(PosixAcl::decode(&v1), Err(Error::NotSupported));
    let named: String = (0..ACL_MAX_ENTRIES).map(|i| format!("u:{i}:4 ")).collect();
    let too_many = acl(&format!("u::6 {named} g::4 m::4 o::0"));
    assert_eq!(PosixAcl::decode(&too_many), Err(Error::NoSpace));
}

#[test]
fn the_mode_and_the_access_acl_stay_in_step() {
    let a = PosixAcl::decode(&acl(NOBODY_RW)).unwrap().unwrap();
    let (perm, ext) = a.clone().into_access(0o4777);
    assert_eq!(perm, 0o4660, "owner, mask and other bits; setuid kept");
    let ext = ext.unwrap();
    assert_eq!(ext.group_obj, 4);
    assert_eq!(PosixAcl::of_access(perm, &ext), a);
    // A chmod is a new mask: the ACL read back shows it.
    assert_eq!(PosixAcl::of_access(0o640, &ext).mask, Some(4));
    // Without a mask, the ACL is the mode.
    let m = PosixAcl::decode(&acl("u::7 g::5 o::1")).unwrap().unwrap();
    assert_eq!(m.into_access(0o1000), (0o1751, None));
}

#[test]
fn new_inodes_inherit_the_default_acl_masked_by_their_mode() {
    let d = PosixAcl::decode(&acl("u::7 u:65534:7 g::5 m::7 o::5"))
        .unwrap()
        .unwrap();
    let (perm, ext, def) = for_new_inode(Some(&d), FileKind::File, 0o666, 0o077);
    assert_eq!((perm, def), (0o664, None), "the umask plays no part");
    assert_eq!(ext.map(|e| e.users), Some(d.users.clone()));
    let (perm, ext, def) = for_new_inode(Some(&d), FileKind::Dir, 0o750, 0);
    assert_eq!((perm, ext.is_some()), (0o750, true));
    assert_eq!(def, Some(d.clone()), "a directory inherits the default ACL");
    // A default ACL the mode says alone gives no access ACL.
    let plain = PosixAcl::decode(&acl("u::7 g::5 o::5")).unwrap().unwrap();
    let new = for_new_inode(Some(&plain), FileKind::File, 0o644, 0o077);
    assert_eq!(new, (0o644, None, None));
    // No default ACL: the umask applies; symlinks take nothing.
    let new = for_new_inode(None, FileKind::File, 0o666, 0o027);
    assert_eq!(new, (0o640, None, None));
    let new = for_new_inode(Some(&d), FileKind::Symlink, 0o777, 0o022);
    assert_eq!(new, (0o777, None, None));
}

#[test]
fn an_access_acl_decides_for_named_users_through_every_check() {
    let kv = store_with_root();
    let (root, nobody, other) = (Creds::root(), user(NOBODY, NOBODY), user(OWNER, OWNER));
    let f = make(&kv, &root, ROOT_INO, "f", FileKind::File, 0o640).ino;
    assert_eq!(access(&kv, &nobody, f, 4), Err(Error::Access));
    // Only the owner (or root) sets an ACL.
    let rw = acl(NOBODY_RW);
    assert_eq!(
        set(&kv, &other, f, ACCESS_XATTR, &rw),
        Err(Error::NotPermitted)
    );
    set(&kv, &root, f, ACCESS_XATTR, &rw).unwrap();
    let a = run(&kv, &root, |tx, _| Ok(store::inode(tx, f)?.attr)).unwrap();
    assert_eq!(a.perm, 0o660, "the mask became the group bits");
    assert!(access(&kv, &nobody, f, 6).is_ok());
    assert_eq!(access(&kv, &other, f, 4), Err(Error::Access));
    let opened = run(&kv, &nobody, |tx, c| {
        open::open(tx, c, 0, f, libc::O_RDWR, false)
    });
    assert!(opened.is_ok(), "{opened:?}");

    // Read back as set, listed, and changed by a chmod.
    assert_eq!(get(&kv, f, ACCESS_XATTR).unwrap(), rw);
    let names = run(&kv, &root, |tx, ctx| attr::list_xattr(tx, ctx, f)).unwrap();
    assert_eq!(names, vec![ACCESS_XATTR.to_string()]);
    let chmod = SetAttr {
        perm: Some(0o600),
        ..SetAttr::default()
    };
    run(&kv, &root, |tx, c| attr::setattr(tx, c, f, &chmod)).unwrap();
    let after = get(&kv, f, ACCESS_XATTR).unwrap();
    assert_eq!(after, acl("u::6 u:65534:6 g::4 m::0 o::0"));
    assert_eq!(access(&kv, &nobody, f, 4), Err(Error::Access), "masked out");

    // Removed: the mode alone decides again; a default ACL is for directories only.
    run(&kv, &root, |tx, ctx| {
        attr::remove_xattr(tx, ctx, f, ACCESS_XATTR)
    })
    .unwrap();
    assert_eq!(get(&kv, f, ACCESS_XATTR), Err(Error::NoData));
    assert_eq!(set(&kv, &root, f, DEFAULT_XATTR, &rw), Err(Error::Access));
}

#[test]
fn a_directory_default_acl_reaches_new_entries_and_their_checks() {
    let kv = store_with_root();
    let (root, nobody, other) = (Creds::root(), user(NOBODY, NOBODY), user(OWNER, OWNER));
    let d = make(&kv, &root, ROOT_INO, "d", FileKind::Dir, 0o755).ino;
    let rwx = acl("u::7 u:65534:7 g::5 m::7 o::5");
    set(&kv, &root, d, DEFAULT_XATTR, &rwx).unwrap();
    // The directory's own access is unchanged: nobody may not create in it.
    let denied = run(&kv, &nobody, |tx, c| {
        namespace::create_entry(tx, c, d, "x", node(900, FileKind::File, 0o644))
    });
    assert_eq!(denied, Err(Error::Access));

    let f = make(&kv, &root, d, "f", FileKind::File, 0o666);
    assert_eq!(f.perm, 0o664, "masked by the create mode, no umask");
    assert_eq!(f.acl.as_ref().unwrap().users[0].id, NOBODY);
    assert!(access(&kv, &nobody, f.ino, 2).is_ok());
    assert_eq!(access(&kv, &other, f.ino, 2), Err(Error::Access));
    let sub = make(&kv, &root, d, "sub", FileKind::Dir, 0o777).ino;
    assert_eq!(get(&kv, sub, DEFAULT_XATTR).unwrap(), rwx);
    // nobody may create in the subdirectory, through its inherited access ACL.
    let made = run(&kv, &nobody, |tx, c| {
        namespace::create_entry(tx, c, sub, "x", node(901, FileKind::File, 0o644))
    });
    assert!(made.is_ok(), "{made:?}");
    let plain = make(&kv, &root, ROOT_INO, "plain", FileKind::File, 0o666);
    assert_eq!(
        (plain.perm, plain.acl),
        (0o644, None),
        "elsewhere, the umask"
    );
}

#[test]
fn an_open_to_execute_needs_execute_permission_only() {
    let kv = store_with_root();
    let (root, owner, nobody) = (Creds::root(), user(OWNER, OWNER), user(NOBODY, NOBODY));
    let member = user(5, OWNER);
    let exec = libc::O_RDONLY | FMODE_EXEC;
    for (perm, runs_it, not) in [
        (0o001, &nobody, &owner),
        (0o010, &member, &nobody),
        (0o100, &owner, &member),
    ] {
        let f = make(
            &kv,
            &owner,
            ROOT_INO,
            &format!("x{perm:o}"),
            FileKind::File,
            perm,
        )
        .ino;
        let open_as =
            |c: &Creds, flags| run(&kv, c, |tx, ctx| open::open(tx, ctx, 0, f, flags, false));
        assert!(open_as(runs_it, exec).is_ok(), "{perm:o}");
        assert_eq!(open_as(not, exec), Err(Error::Access), "{perm:o}");
        let read = open_as(runs_it, libc::O_RDONLY);
        assert_eq!(read, Err(Error::Access), "{perm:o}: read");
        assert!(open_as(&root, exec).is_ok(), "root: some x bit is set");
    }
    let f = make(&kv, &owner, ROOT_INO, "plain", FileKind::File, 0o644).ino;
    let by_root = run(&kv, &root, |tx, ctx| open::open(tx, ctx, 0, f, exec, false));
    assert_eq!(by_root, Err(Error::Access), "root: no x bit");
    assert_eq!(access(&kv, &root, f, 1), Err(Error::Access), "access(X_OK)");
}
