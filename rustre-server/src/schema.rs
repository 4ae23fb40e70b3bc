//! The schema of the shared metadata store: every key the MDS and the MGS write, built and
//! parsed here and nowhere else (the change feed tells keys apart with [`parse_key`]).
//!
//! Keys start with a one-byte prefix; integers are big-endian so range scans come out in
//! numeric order. Keys name inodes, never paths, so renaming a directory touches one dentry.
//! A retired prefix is never reused.
//!
//! | prefix | key                               | value                                |
//! |--------|-----------------------------------|--------------------------------------|
//! | 0x01   | inode/{ino}                       | [`crate::mds::store::Inode`]              |
//! | 0x02   | dentry/{parent ino}/{name}        | [`crate::mds::store::Dentry`]             |
//! | 0x03   | xattr/{ino}/{name}                | raw value                            |
//! | 0x04   | orphan/{ino}                      | empty: unlinked while open           |
//! | 0x05   | open/{ino}/{session}              | open count (u32, postcard)           |
//! | 0x06   | session/{session}                 | [`crate::mds::store::Session`]            |
//! | 0x07   | session_open/{session}/{ino}      | empty: index of a session's opens    |
//! | 0x08   | destroy/{ino}                     | layout whose objects must be deleted |
//! | 0x09   | counter/{name}                    | u64 (postcard)                       |
//! | 0x0a   | request/{session}/{seq}           | recorded result of a mutating call   |
//! | 0x0b   | stale/{ino}                       | file with stale copies: empty, or    |
//! |        |                                   | [`crate::mds::store::ResyncClaim`]        |
//! | 0x0c   | write_open/{ino}/{session}        | empty: the session opened the file   |
//! |        |                                   | for writing (until its last open of  |
//! |        |                                   | the file goes)                       |
//! | 0x0d   | truncate/{ino}                    | [`crate::mds::store::TruncateIntent`]     |
//! |        |                                   | : a size change whose objects are    |
//! |        |                                   | not cut yet (`crate::mds::truncate`) |
//! | 0x14   | lock/{ino}                        | the file's locks: a list of          |
//! |        |                                   | [`crate::mds::locks::Held`]          |
//! | 0x15   | session_lock/{session}/{ino}      | empty: the session holds locks on    |
//! |        |                                   | the file (what its expiry clears)    |
//! | 0x16   | lock_wait/{session}/{owner}       | [`crate::mds::locks::Waiter`]: what  |
//! |        |                                   | a blocked owner waits for (EDEADLK)  |
//! | 0x1b   | migrate/{ino}                     | `crate::mds::migrate::Migration`: a  |
//! |        |                                   | migration in progress (its target    |
//! |        |                                   | layout, token, lease, freeze)        |
//! | 0x1c   | retired/{ino}                     | `crate::mds::migrate::Retired`: old  |
//! |        |                                   | objects of a migrated file, deleted  |
//! |        |                                   | once no writer holds it open         |
//! | 0x1d   | inline/{ino}                      | raw bytes: a file's data kept on the |
//! |        |                                   | MDS (`crate::mds::inline`)           |
//! | 0x30   | quota/{project}                   | `crate::mds::quota::Quota`: limits   |
//! |        |                                   | and usage of a project (the inode    |
//! |        |                                   | number of its directory)             |
//! | 0x40   | mgs/registry/{chunk}              | MGS only: the registry record, see   |
//! |        |                                   | `crate::mgs::persist`; never MDS.    |
//! |        |                                   | `{chunk}` is a big-endian u32 after  |
//! |        |                                   | the name `registry/`                 |

use rustre_proto::msg::Ino;

pub const INODE: u8 = 0x01;
pub const DENTRY: u8 = 0x02;
pub const XATTR: u8 = 0x03;
pub const ORPHAN: u8 = 0x04;
pub const OPEN: u8 = 0x05;
pub const SESSION: u8 = 0x06;
pub const SESSION_OPEN: u8 = 0x07;
pub const DESTROY: u8 = 0x08;
pub const COUNTER: u8 = 0x09;
pub const REQUEST: u8 = 0x0a;
pub const STALE: u8 = 0x0b;
pub const WRITE_OPEN: u8 = 0x0c;
pub const TRUNCATE: u8 = 0x0d;
pub const LOCK: u8 = 0x14;
pub const SESSION_LOCK: u8 = 0x15;
pub const LOCK_WAIT: u8 = 0x16;
/// The append lease of a file (`mds::append`).
pub const APPEND_LEASE: u8 = 0x1a;
/// A file's migration in progress (`mds::migrate`).
pub const MIGRATE: u8 = 0x1b;
/// Objects a migration left behind, to delete (`mds::migrate`).
pub const RETIRED: u8 = 0x1c;
/// A file's bytes kept in the store (`mds::inline`).
pub const INLINE: u8 = 0x1d;
/// A project's quota and usage (`mds::quota`).
pub const QUOTA: u8 = 0x30;
/// Belongs to the MGS (`crate::mgs::persist`), which shares the store with the MDS when both
/// run over FoundationDB; the MDS never reads or writes under it.
pub const MGS: u8 = 0x40;

/// The MGS registry's keys after the [`MGS`] byte: `registry/{chunk}`.
const MGS_REGISTRY_NAME: &[u8] = b"registry/";

/// Counter: the next inode number not yet handed out in a batch.
pub const COUNTER_NEXT_INO: &[u8] = b"next_ino";
/// Counter: the next session id.
pub const COUNTER_NEXT_SESSION: &[u8] = b"next_session";

fn with_u64(prefix: u8, n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(prefix);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn with_u64_u64(prefix: u8, a: u64, b: u64) -> Vec<u8> {
    let mut k = with_u64(prefix, a);
    k.extend_from_slice(&b.to_be_bytes());
    k
}

fn with_u64_name(prefix: u8, n: u64, name: &str) -> Vec<u8> {
    let mut k = with_u64(prefix, n);
    k.extend_from_slice(name.as_bytes());
    k
}

/// The half-open key range of everything under `prefix` + `n`.
fn range_u64(prefix: u8, n: u64) -> (Vec<u8>, Vec<u8>) {
    let start = with_u64(prefix, n);
    let end = match n.checked_add(1) {
        Some(m) => with_u64(prefix, m),
        None => vec![prefix + 1],
    };
    (start, end)
}

/// The half-open range of one whole prefix.
pub fn prefix_range(prefix: u8) -> (Vec<u8>, Vec<u8>) {
    (vec![prefix], vec![prefix + 1])
}

/// The quota record of project `project`.
pub fn quota(project: Ino) -> Vec<u8> {
    with_u64(QUOTA, project)
}

/// Quota records of projects numbered from `from` on.
pub fn quotas_from(from: Ino) -> (Vec<u8>, Vec<u8>) {
    (with_u64(QUOTA, from), vec![QUOTA + 1])
}

/// The project of a quota key.
pub fn parse_quota(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, QUOTA, 1)
}

pub fn inode(ino: Ino) -> Vec<u8> {
    with_u64(INODE, ino)
}

/// Inodes from number `from` on (what fsck pages through).
pub fn inodes_from(from: Ino) -> (Vec<u8>, Vec<u8>) {
    (with_u64(INODE, from), vec![INODE + 1])
}

pub fn dentry(parent: Ino, name: &str) -> Vec<u8> {
    with_u64_name(DENTRY, parent, name)
}

/// All dentries of a directory.
pub fn dentry_range(parent: Ino) -> (Vec<u8>, Vec<u8>) {
    range_u64(DENTRY, parent)
}

/// Dentries of `parent` strictly after `name`.
pub fn dentry_after(parent: Ino, name: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = dentry(parent, name);
    start.push(0);
    (start, range_u64(DENTRY, parent).1)
}

/// Every dentry of every directory strictly after `parent`'s entry `name` (what fsck
/// pages through).
pub fn dentries_after(parent: Ino, name: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = dentry(parent, name);
    start.push(0);
    (start, vec![DENTRY + 1])
}

/// The name part of a dentry key.
pub fn parse_dentry_name(key: &[u8]) -> Option<&str> {
    if key.len() < 9 || key[0] != DENTRY {
        return None;
    }
    std::str::from_utf8(&key[9..]).ok()
}

pub fn xattr(ino: Ino, name: &str) -> Vec<u8> {
    with_u64_name(XATTR, ino, name)
}

pub fn xattr_range(ino: Ino) -> (Vec<u8>, Vec<u8>) {
    range_u64(XATTR, ino)
}

/// The name part of an xattr key.
pub fn parse_xattr_name(key: &[u8]) -> Option<&str> {
    if key.len() < 9 || key[0] != XATTR {
        return None;
    }
    std::str::from_utf8(&key[9..]).ok()
}

pub fn orphan(ino: Ino) -> Vec<u8> {
    with_u64(ORPHAN, ino)
}

pub fn open(ino: Ino, session: u64) -> Vec<u8> {
    with_u64_u64(OPEN, ino, session)
}

/// All open records of an inode.
pub fn open_range(ino: Ino) -> (Vec<u8>, Vec<u8>) {
    range_u64(OPEN, ino)
}

pub fn session(id: u64) -> Vec<u8> {
    with_u64(SESSION, id)
}

/// The session id of a session key.
pub fn parse_session(key: &[u8]) -> Option<u64> {
    parse_u64_at(key, SESSION, 1)
}

pub fn session_open(session: u64, ino: Ino) -> Vec<u8> {
    with_u64_u64(SESSION_OPEN, session, ino)
}

/// Every open index entry of a session.
pub fn session_open_range(session: u64) -> (Vec<u8>, Vec<u8>) {
    range_u64(SESSION_OPEN, session)
}

/// The inode of a session_open key.
pub fn parse_session_open_ino(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, SESSION_OPEN, 9)
}

pub fn destroy(ino: Ino) -> Vec<u8> {
    with_u64(DESTROY, ino)
}

/// The inode of a destroy key.
pub fn parse_destroy(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, DESTROY, 1)
}

pub fn counter(name: &[u8]) -> Vec<u8> {
    let mut k = vec![COUNTER];
    k.extend_from_slice(name);
    k
}

pub fn request(session: u64, seq: u64) -> Vec<u8> {
    with_u64_u64(REQUEST, session, seq)
}

/// Every recorded request of a session.
pub fn request_range(session: u64) -> (Vec<u8>, Vec<u8>) {
    range_u64(REQUEST, session)
}

/// Index entry of a file whose layout has stale slots (what the resync worker scans).
pub fn stale(ino: Ino) -> Vec<u8> {
    with_u64(STALE, ino)
}

/// Stale-index entries from inode `from` on.
pub fn stale_from(from: Ino) -> (Vec<u8>, Vec<u8>) {
    (with_u64(STALE, from), vec![STALE + 1])
}

/// The inode of a stale-index key.
pub fn parse_stale(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, STALE, 1)
}

/// Marks that `session` holds `ino` open for writing.
pub fn write_open(ino: Ino, session: u64) -> Vec<u8> {
    with_u64_u64(WRITE_OPEN, ino, session)
}

/// Every write-open mark of an inode.
pub fn write_open_range(ino: Ino) -> (Vec<u8>, Vec<u8>) {
    range_u64(WRITE_OPEN, ino)
}

/// Who may append to `ino` without asking, up to where (`mds::append`).
pub fn append_lease(ino: Ino) -> Vec<u8> {
    with_u64(APPEND_LEASE, ino)
}

/// A size change of `ino` whose objects the MDS has not finished cutting.
pub fn truncate(ino: Ino) -> Vec<u8> {
    with_u64(TRUNCATE, ino)
}

/// The inode of a truncate-intent key.
pub fn parse_truncate(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, TRUNCATE, 1)
}

/// The migration in progress of `ino` (`crate::mds::migrate`).
pub fn migrate(ino: Ino) -> Vec<u8> {
    with_u64(MIGRATE, ino)
}

/// The inode of a migrate key.
pub fn parse_migrate(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, MIGRATE, 1)
}

/// The objects a migration of `ino` left to delete (`crate::mds::migrate`).
pub fn retired(ino: Ino) -> Vec<u8> {
    with_u64(RETIRED, ino)
}

/// The inode of a retired key.
pub fn parse_retired(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, RETIRED, 1)
}

/// The bytes of `ino` kept in the store (`crate::mds::inline`).
pub fn inline(ino: Ino) -> Vec<u8> {
    with_u64(INLINE, ino)
}

/// Every `inline/{ino}` key from `from` on.
pub fn inlines_from(from: Ino) -> (Vec<u8>, Vec<u8>) {
    (with_u64(INLINE, from), vec![INLINE + 1])
}

/// The inode of an inline key.
pub fn parse_inline(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, INLINE, 1)
}

/// The locks held on `ino` (`crate::mds::locks`).
pub fn lock(ino: Ino) -> Vec<u8> {
    with_u64(LOCK, ino)
}

/// Index entry: `session` holds locks on `ino`.
pub fn session_lock(session: u64, ino: Ino) -> Vec<u8> {
    with_u64_u64(SESSION_LOCK, session, ino)
}

/// Every lock index entry of a session.
pub fn session_lock_range(session: u64) -> (Vec<u8>, Vec<u8>) {
    range_u64(SESSION_LOCK, session)
}

/// The inode of a session_lock key.
pub fn parse_session_lock_ino(key: &[u8]) -> Option<Ino> {
    parse_u64_at(key, SESSION_LOCK, 9)
}

/// What lock owner `(session, owner)` waits for.
pub fn lock_wait(session: u64, owner: u64) -> Vec<u8> {
    with_u64_u64(LOCK_WAIT, session, owner)
}

/// Every waiter record of a session.
pub fn lock_wait_range(session: u64) -> (Vec<u8>, Vec<u8>) {
    range_u64(LOCK_WAIT, session)
}

/// The key of chunk `n` of the MGS registry record.
pub fn mgs_registry_chunk(n: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + MGS_REGISTRY_NAME.len() + 4);
    k.push(MGS);
    k.extend_from_slice(MGS_REGISTRY_NAME);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The half-open key range holding every chunk of the MGS registry record.
pub fn mgs_registry_range() -> (Vec<u8>, Vec<u8>) {
    let mut start = vec![MGS];
    start.extend_from_slice(MGS_REGISTRY_NAME);
    let mut end = start.clone();
    // "registry/" -> "registry0": '/' + 1 == '0'.
    *end.last_mut().expect("not empty") += 1;
    (start, end)
}

/// What a key names, as far as a reader that must tell keys apart needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOf<'a> {
    /// An inode's attributes.
    Inode(Ino),
    /// A directory entry (`name` as stored, not necessarily UTF-8 if damaged).
    Dentry { parent: Ino, name: &'a [u8] },
    /// An extended attribute of `ino`.
    Xattr { ino: Ino, name: &'a [u8] },
    /// A key of another prefix (bookkeeping, the MGS's).
    Other(u8),
    /// An inode, dentry or xattr prefix too short to hold its inode number.
    Truncated(u8),
}

/// What `key` names; `None` for the empty key.
pub fn parse_key(key: &[u8]) -> Option<KeyOf<'_>> {
    let (&prefix, rest) = key.split_first()?;
    if !matches!(prefix, INODE | DENTRY | XATTR) {
        return Some(KeyOf::Other(prefix));
    }
    let Some(ino) = parse_u64_at(key, prefix, 1) else {
        return Some(KeyOf::Truncated(prefix));
    };
    let name = &rest[8..];
    Some(match prefix {
        INODE => KeyOf::Inode(ino),
        DENTRY => KeyOf::Dentry { parent: ino, name },
        _ => KeyOf::Xattr { ino, name },
    })
}

fn parse_u64_at(key: &[u8], prefix: u8, at: usize) -> Option<u64> {
    if key.first() != Some(&prefix) || key.len() < at + 8 {
        return None;
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&key[at..at + 8]);
    Some(u64::from_be_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dentry_keys_sort_by_parent_then_name() {
        let mut keys = vec![
            dentry(256, "a"),
            dentry(2, "zz"),
            dentry(2, "b"),
            dentry(3, ""),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                dentry(2, "b"),
                dentry(2, "zz"),
                dentry(3, ""),
                dentry(256, "a")
            ]
        );
        assert_eq!(parse_dentry_name(&dentry(7, "héllo")), Some("héllo"));
    }

    #[test]
    fn ranges_cover_exactly_their_parent() {
        let (s, e) = dentry_range(5);
        assert!(dentry(5, "x").as_slice() >= s.as_slice() && dentry(5, "x") < e);
        assert!(dentry(6, "").as_slice() >= e.as_slice());
        assert!(dentry(4, "zzzz") < s);
        let (s, _) = dentry_after(5, "b");
        assert!(dentry(5, "b") < s && dentry(5, "b\u{1}") >= s && dentry(5, "ba") >= s);
        let (_, e) = range_u64(DENTRY, u64::MAX);
        assert!(dentry(u64::MAX, "zzz") < e);
    }

    #[test]
    fn parse_round_trips() {
        assert_eq!(parse_session(&session(99)), Some(99));
        assert_eq!(parse_session_open_ino(&session_open(4, 77)), Some(77));
        assert_eq!(parse_destroy(&destroy(12)), Some(12));
        assert_eq!(parse_xattr_name(&xattr(3, "user.a")), Some("user.a"));
        assert_eq!(parse_destroy(&session(12)), None);
        assert_eq!(parse_stale(&stale(42)), Some(42));
        assert_eq!(parse_truncate(&truncate(43)), Some(43));
        assert_eq!(parse_truncate(&stale(43)), None);
        let (s, e) = prefix_range(TRUNCATE);
        assert!(truncate(0) >= s && truncate(u64::MAX) < e && write_open(u64::MAX, 9) < s);
        let (s, e) = stale_from(7);
        assert!(stale(6) < s && stale(7) >= s && stale(u64::MAX) < e);
        let (s, e) = inodes_from(7);
        assert!(inode(6) < s && inode(7) >= s && inode(u64::MAX) < e && dentry(0, "") >= e);
        let (s, e) = dentries_after(5, "b");
        assert!(dentry(5, "b") < s && dentry(5, "ba") >= s && dentry(9, "") >= s);
        assert!(dentry(u64::MAX, "z") < e && stale(0) >= e);
        let (s, e) = write_open_range(3);
        assert!(write_open(3, 0) >= s && write_open(3, u64::MAX) < e && write_open(4, 0) >= e);
    }

    #[test]
    fn parse_key_tells_the_keys_clients_see_apart() {
        assert_eq!(parse_key(&inode(7)), Some(KeyOf::Inode(7)));
        assert_eq!(
            parse_key(&dentry(2, "a")),
            Some(KeyOf::Dentry {
                parent: 2,
                name: b"a"
            })
        );
        assert_eq!(
            parse_key(&xattr(3, "user.x")),
            Some(KeyOf::Xattr {
                ino: 3,
                name: b"user.x"
            })
        );
        assert_eq!(parse_key(&session(1)), Some(KeyOf::Other(SESSION)));
        assert_eq!(parse_key(&mgs_registry_chunk(0)), Some(KeyOf::Other(MGS)));
        assert_eq!(parse_key(&[DENTRY, 0, 1]), Some(KeyOf::Truncated(DENTRY)));
        assert_eq!(parse_key(&[]), None);
    }

    #[test]
    fn registry_keys_stay_under_the_mgs_prefix() {
        let (start, end) = mgs_registry_range();
        assert_eq!((start[0], end[0]), (MGS, MGS));
        for n in [0, 1, u32::MAX] {
            let k = mgs_registry_chunk(n);
            assert!(k >= start && k < end, "{k:?}");
        }
        assert!(mgs_registry_chunk(1) < mgs_registry_chunk(2));
        assert!(mgs_registry_chunk(255) < mgs_registry_chunk(256));
    }
}
