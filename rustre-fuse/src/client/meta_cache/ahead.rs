//! Namespace changes this client answers before the MDS does (`client/async_dirops.rs`):
//! the cache decides whether what it knows settles an unlink's or a rename's outcome, and
//! shows the change at once.

use std::sync::atomic::Ordering;

use rustre_proto::msg::attr_rules::sticky_allows;
use rustre_proto::msg::{may_access, validate_name, Attr, Creds, FileKind, Ino};
use rustre_proto::sync::lock;
use tokio::time::Instant;

use super::{Inner, MetaCache, Stamped};

/// Write and search permission: what the MDS asks of the directory of an unlink or rename.
const WRITE_SEARCH: u32 = 2 | 1;

/// A change answered ahead of the MDS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::client) struct Ahead {
    /// Its request number (an own change in flight until [`MetaCache::own_answered`]).
    pub seq: u64,
    /// The inode the (first) name led to: the one unlinked, or the one renamed.
    pub source: Ino,
}

impl Inner {
    /// The attributes of directory `dir` if the cache holds them and the MDS would let
    /// `creds` add and remove names in it (`namespace::writable_dir_inode`).
    fn writable_dir(&mut self, creds: &Creds, dir: Ino) -> Option<Attr> {
        let a = self.attr(dir)?;
        (a.kind == FileKind::Dir && a.nlink > 0 && may_access(creds, &a, WRITE_SEARCH)).then_some(a)
    }

    /// The attributes of the non-directory `name` in `dir` names, if the cache knows them
    /// and the sticky rule lets `creds` take the name away (`None` also for a directory, an
    /// orphan, an inode with other links, which another client may reach through them
    /// without looking into `dir`, and an unknown name or inode).
    fn removable(&mut self, creds: &Creds, dir: &Attr, name: &str) -> Option<Attr> {
        let ino = self.entry(&(dir.ino, name.to_string()))??;
        if self.orphans.contains(&ino) {
            return None;
        }
        let a = self.attr(ino)?;
        (a.kind != FileKind::Dir && a.nlink == 1 && sticky_allows(creds, dir, &a)).then_some(a)
    }

    /// Whether an own change naming one of `keys` is in flight (its outcome comes first).
    fn names_in_flight(&self, keys: &[(Ino, String)]) -> bool {
        self.own_in_flight
            .values()
            .any(|f| f.request_entries.iter().any(|k| keys.contains(k)))
    }

    /// Numbers a change of the names `names` holds with `next_seq` as an own change in
    /// flight and shows what it does: `dir`'s mtime and ctime, and `moved`'s ctime, are
    /// now (never earlier than they were; the MDS's answer replaces them with its own), the
    /// inode `forgotten` is asked for again (a link fewer, or gone), and each name names
    /// what `names` says.
    fn show(
        &mut self,
        next_seq: impl FnOnce() -> u64,
        mut dir: Attr,
        moved: Option<Attr>,
        forgotten: Option<Ino>,
        names: Vec<((Ino, String), Option<Ino>)>,
    ) -> u64 {
        let seq = next_seq();
        let keys = names.iter().map(|(k, _)| k.clone()).collect();
        let settled_below = self.begin_own(seq, keys);
        self.epoch += 1;
        let epoch = self.epoch;
        let now = rustre_proto::host::now().max(dir.mtime).max(dir.ctime);
        dir.mtime = now;
        dir.ctime = now;
        self.attrs
            .put(dir.ino, Stamped::own(dir, epoch, seq, settled_below));
        if let Some(mut a) = moved {
            a.ctime = a.ctime.max(now);
            self.attrs
                .put(a.ino, Stamped::own(a, epoch, seq, settled_below));
        }
        if let Some(ino) = forgotten {
            self.attrs.pop(&ino);
        }
        for (key, ino) in names {
            self.put_entry(key, Stamped::own(ino, epoch, seq, settled_below));
        }
        seq
    }
}

impl MetaCache {
    /// Whether `creds` unlinking `name` from `parent` can be answered now, as the MDS would
    /// answer it: only while the cache is trusted and knows the directory's attributes,
    /// the name, and the attributes of the inode it names, and every check the MDS makes
    /// (`namespace::unlink`: the name is valid, the directory still exists and the caller
    /// may write and search it, the name is not a directory's, the sticky rule) passes on
    /// them, and no other change of this client naming the same entry is in flight.
    ///
    /// Then the unlink is numbered with `next_seq` as an own change in flight and shown at
    /// once: the name is absent, the directory's mtime and ctime are now (until the MDS's
    /// answer replaces them with its own), and the inode's attributes are forgotten (it
    /// has one link fewer, or is gone: whoever asks, asks the MDS). `None`: the unlink is
    /// sent and waited for, as any change.
    pub(in crate::client) fn unlink_ahead(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        next_seq: impl FnOnce() -> u64,
    ) -> Option<Ahead> {
        if validate_name(name).is_err() || !self.enabled.load(Ordering::Relaxed) {
            return None;
        }
        let mut inner = lock(&self.inner);
        if !inner.trusted(Instant::now()) {
            return None;
        }
        let dir = inner.writable_dir(creds, parent)?;
        let victim = inner.removable(creds, &dir, name)?;
        let key = (parent, name.to_string());
        if inner.names_in_flight(std::slice::from_ref(&key)) {
            return None;
        }
        let seq = inner.show(next_seq, dir, None, Some(victim.ino), vec![(key, None)]);
        Some(Ahead {
            seq,
            source: victim.ino,
        })
    }

    /// As [`MetaCache::unlink_ahead`], for `creds` renaming `name` to `new_name` in the same
    /// directory `parent` (flags none): the MDS's checks (`namespace::rename`) on what the
    /// cache knows are that both names are valid and differ, the caller may write and
    /// search the directory, `name` names a non-directory the sticky rule lets it move and
    /// whose project is the directory's (`quota::check_move`), and `new_name` names
    /// nothing, or a non-directory other than it that the sticky rule lets it replace.
    /// Shown: `name` is absent, `new_name` names the moved inode, whose ctime is now, and
    /// the replaced inode's attributes are forgotten (a link fewer, or gone).
    pub(in crate::client) fn rename_ahead(
        &self,
        creds: &Creds,
        parent: Ino,
        name: &str,
        new_name: &str,
        next_seq: impl FnOnce() -> u64,
    ) -> Option<Ahead> {
        if name == new_name
            || validate_name(name).is_err()
            || validate_name(new_name).is_err()
            || !self.enabled.load(Ordering::Relaxed)
        {
            return None;
        }
        let mut inner = lock(&self.inner);
        if !inner.trusted(Instant::now()) {
            return None;
        }
        let dir = inner.writable_dir(creds, parent)?;
        let moved = inner.removable(creds, &dir, name)?;
        if moved.project != dir.project {
            return None;
        }
        let target_key = (parent, new_name.to_string());
        let replaced = match inner.entry(&target_key)? {
            None => None,
            Some(_) => {
                let r = inner.removable(creds, &dir, new_name)?;
                if r.ino == moved.ino {
                    return None;
                }
                Some(r.ino)
            }
        };
        let key = (parent, name.to_string());
        if inner.names_in_flight(&[key.clone(), target_key.clone()]) {
            return None;
        }
        let source = moved.ino;
        let names = vec![(key, None), (target_key, Some(source))];
        let seq = inner.show(next_seq, dir, Some(moved), replaced, names);
        Some(Ahead { seq, source })
    }
}
