//! Names the kernel keeps longer than the mount's entry TTL, because the change feeds will
//! invalidate them, and the bookkeeping that makes that safe when a feed cannot.
//!
//! The kernel keeps a name it was answered (a lookup, found or missing; a mknod, mkdir,
//! symlink or link) for the entry TTL of the answer and asks again (FUSE `LOOKUP`, a round
//! trip through this process) once it lapsed: `rm` of a file looked up a second ago, or a
//! build's `stat` of every header, pays one for every name. While every MDS's feed is live,
//! another client's change of a name reaches this client's kernel as an invalidation of
//! that name within a watch round trip, whatever the TTL (docs/mount.md, "What other
//! clients see"): the TTL only bounds how long a name may stay stale when a feed is *not*
//! live, which is why the mount's TTL stays 1 s. So a name answered while the feeds are
//! live is given [`KEPT_ENTRY_TTL`] instead, and remembered here with the moment that TTL
//! lapses, until:
//!
//! - a feed lost changes (a gap, an MDS restart: [`Change::All`]), or a feed stops being
//!   live ([`FEEDS_CHECK`]): every name remembered is invalidated in the kernel (queued to
//!   its invalidation thread with the feed's own changes), so what no feed vouches for is
//!   kept no longer than before, about [`FEED_LEASE`](super::meta_cache::FEED_LEASE);
//! - this client unlinks or removes it (the kernel expires it itself);
//! - its TTL lapsed (forgotten when room is needed).
//!
//! A rename moves the kernel's entry, with its TTL, to the new name: that name is
//! remembered too, before the rename is sent (the old one stays remembered: a rename that
//! fails leaves the entry where it was). At most [`KEPT_NAMES_MAX`] names are remembered;
//! past that, answers carry the mount's TTL. A mount whose entry TTL is 0 keeps 0.
//! Attributes keep the mount's TTL: only names are kept longer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustre_proto::msg::mds::Change;
use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;

use super::{metrics, Client};

/// How long the kernel may keep a name answered while every feed is live.
pub const KEPT_ENTRY_TTL: Duration = Duration::from_secs(60);

/// Most names remembered as kept (about 100 bytes each).
pub(super) const KEPT_NAMES_MAX: usize = 1 << 18;

/// How often the client looks whether the feeds are still live, and when they are not,
/// has the kernel drop every name kept.
pub(super) const FEEDS_CHECK: Duration = Duration::from_millis(250);

/// The names the kernel may keep for [`KEPT_ENTRY_TTL`]: directory -> name -> when its
/// TTL lapses.
#[derive(Default)]
pub(super) struct KeptNames {
    by_dir: Mutex<Names>,
}

#[derive(Default)]
struct Names {
    dirs: HashMap<Ino, HashMap<String, Instant>>,
    count: usize,
    /// While full: no look for lapsed names before then (one walk of them all per
    /// [`FULL_RESCAN`], not one per answer).
    rescan_after: Option<Instant>,
}

/// How long a full set waits before it looks for lapsed names again.
const FULL_RESCAN: Duration = Duration::from_secs(1);

impl Names {
    /// Remembers `name` in `dir` until `until` (the later of that and what it had); false
    /// when no room is left, even after forgetting the names whose TTL lapsed.
    fn keep(&mut self, dir: Ino, name: &str, until: Instant, now: Instant) -> bool {
        if let Some(t) = self.dirs.get_mut(&dir).and_then(|d| d.get_mut(name)) {
            *t = (*t).max(until);
            return true;
        }
        if self.count >= KEPT_NAMES_MAX {
            if self.rescan_after.is_some_and(|t| now < t) {
                return false;
            }
            self.forget_lapsed(now);
            if self.count >= KEPT_NAMES_MAX {
                self.rescan_after = Some(now + FULL_RESCAN);
                return false;
            }
        }
        self.dirs
            .entry(dir)
            .or_default()
            .insert(name.to_owned(), until);
        self.count += 1;
        true
    }

    /// When the kernel's entry of `name` in `dir` may lapse, if it is kept and has not.
    fn kept_until(&self, dir: Ino, name: &str, now: Instant) -> Option<Instant> {
        let until = *self.dirs.get(&dir)?.get(name)?;
        (until > now).then_some(until)
    }

    fn forget(&mut self, dir: Ino, name: &str) {
        let Some(names) = self.dirs.get_mut(&dir) else {
            return;
        };
        if names.remove(name).is_some() {
            self.count -= 1;
        }
        if names.is_empty() {
            self.dirs.remove(&dir);
        }
    }

    /// A rename of `from` to `to` (and back, with `exchange`): each entry kept is kept
    /// under the name it moves to, with its TTL. Answers the names that found no room.
    fn moving(
        &mut self,
        from: (Ino, &str),
        to: (Ino, &str),
        exchange: bool,
        now: Instant,
    ) -> Vec<(Ino, String)> {
        let mut moves = vec![(from, to)];
        if exchange {
            moves.push((to, from));
        }
        let kept: Vec<_> = moves
            .into_iter()
            .filter_map(|(a, b)| Some((self.kept_until(a.0, a.1, now)?, b)))
            .collect();
        kept.into_iter()
            .filter(|&(until, (dir, name))| !self.keep(dir, name, until, now))
            .map(|(_, (dir, name))| (dir, name.to_string()))
            .collect()
    }

    fn forget_lapsed(&mut self, now: Instant) {
        self.dirs.retain(|_, names| {
            names.retain(|_, until| *until > now);
            !names.is_empty()
        });
        self.count = self.dirs.values().map(HashMap::len).sum();
    }

    /// Every name kept whose TTL has not lapsed, forgetting them all.
    fn take(&mut self, now: Instant) -> Vec<(Ino, String)> {
        self.count = 0;
        self.rescan_after = None;
        std::mem::take(&mut self.dirs)
            .into_iter()
            .flat_map(|(dir, names)| {
                names
                    .into_iter()
                    .filter(move |(_, until)| *until > now)
                    .map(move |(name, _)| (dir, name))
            })
            .collect()
    }
}

impl KeptNames {
    fn names(&self) -> std::sync::MutexGuard<'_, Names> {
        lock(&self.by_dir)
    }
}

/// The entry TTL of one answer: the mount's, or [`KEPT_ENTRY_TTL`] for a name kept.
#[derive(Debug, Clone, Copy)]
pub struct NameTtl(Option<Duration>);

impl NameTtl {
    /// The TTL to answer with, for a mount whose TTL for it is `mount_ttl` (0 stays 0).
    pub fn of(self, mount_ttl: Duration) -> Duration {
        match self.0 {
            Some(kept) if !mount_ttl.is_zero() => mount_ttl.max(kept),
            _ => mount_ttl,
        }
    }
}

impl Client {
    /// The entry TTL for an answer naming `name` in `parent`, given now: kept long (and
    /// remembered) while every feed is live, else the mount's.
    pub fn name_ttl(&self, parent: Ino, name: &str) -> NameTtl {
        if self.kernel_ttl(KEPT_ENTRY_TTL) < KEPT_ENTRY_TTL {
            return NameTtl(None);
        }
        let now = Instant::now();
        let kept = self
            .kept_names
            .names()
            .keep(parent, name, now + KEPT_ENTRY_TTL, now);
        NameTtl(kept.then_some(KEPT_ENTRY_TTL))
    }

    /// A rename of `parent/name` to `new_parent/new_name` (and back, with `exchange`)
    /// is about to be sent: the kernel will move each entry with its TTL, so a kept one is
    /// remembered under its new name too. (The kernel looks a rename's target up first
    /// whatever its TTL, `LOOKUP_RENAME_TARGET`, which remembers it already; this covers a
    /// lookup that found no room.) A kept entry with no room under its new name is
    /// invalidated there: the kernel's invalidation waits for the rename's directory
    /// locks, so it comes after the move.
    pub fn names_moving(
        &self,
        (parent, name): (Ino, &str),
        (new_parent, new_name): (Ino, &str),
        exchange: bool,
    ) {
        let unkept = self.kept_names.names().moving(
            (parent, name),
            (new_parent, new_name),
            exchange,
            Instant::now(),
        );
        self.drop_kernel_names(unkept);
    }

    /// `name` left `parent` through this mount (an unlink or rmdir the MDS did): the kernel
    /// expired its entry itself.
    pub fn name_gone(&self, parent: Ino, name: &str) {
        self.kept_names.names().forget(parent, name);
    }

    /// Every name kept is invalidated in the kernel: a feed stopped vouching for them.
    pub(super) fn drop_kept_names(&self) {
        let names = self.kept_names.names().take(Instant::now());
        self.drop_kernel_names(names);
    }

    fn drop_kernel_names(&self, names: Vec<(Ino, String)>) {
        if names.is_empty() {
            return;
        }
        tracing::debug!(names = names.len(), "the kernel drops names kept long");
        let changes = names
            .into_iter()
            .map(|(parent, name)| Change::Entry { parent, name })
            .collect();
        self.kernel.undo(changes);
    }

    /// A kernel `LOOKUP` reached this client (counted for the metrics).
    pub fn kernel_looked_up(&self) {
        if let Some(m) = metrics::get() {
            m.kernel_lookups.inc();
        }
    }
}

/// Starts looking, every [`FEEDS_CHECK`] for as long as `client` lives, whether the feeds
/// still vouch for the names kept; when they do not, the kernel drops them all.
pub(super) fn start(client: &Arc<Client>) {
    let weak = Arc::downgrade(client);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(FEEDS_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(c) = weak.upgrade() else { break };
            if !c.meta_cache.feeds_live() && c.kept_names.names().count > 0 {
                c.drop_kept_names();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_until_their_ttl_lapses_and_taken_all_at_once() {
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        let mut n = Names::default();
        assert!(n.keep(1, "a", later, now));
        assert!(n.keep(1, "b", now + Duration::from_secs(1), now));
        assert!(n.keep(2, "a", later, now));
        assert_eq!(n.kept_until(1, "a", now), Some(later));
        assert_eq!(n.kept_until(3, "a", now), None, "never answered");
        let after_b = now + Duration::from_secs(2);
        assert_eq!(n.kept_until(1, "b", after_b), None, "its TTL lapsed");
        n.forget(2, "a");
        assert_eq!(n.kept_until(2, "a", now), None, "unlinked here");
        assert_eq!(n.count, 2);
        let mut taken = n.take(after_b);
        taken.sort();
        assert_eq!(
            taken,
            vec![(1, "a".to_string())],
            "lapsed names need no invalidation"
        );
        assert_eq!(n.count, 0);
        assert_eq!(n.kept_until(1, "a", now), None, "taken names are forgotten");
    }

    #[test]
    fn a_rename_keeps_a_kept_entry_under_its_new_name() {
        let now = Instant::now();
        let until = now + Duration::from_secs(60);
        let mut n = Names::default();
        assert!(n.keep(1, "a", until, now));
        assert!(n.moving((1, "a"), (2, "b"), false, now).is_empty());
        assert_eq!(n.kept_until(2, "b", now), Some(until), "moved with its TTL");
        assert_eq!(
            n.kept_until(1, "a", now),
            Some(until),
            "a failed rename leaves it"
        );
        assert!(n.moving((3, "x"), (1, "y"), false, now).is_empty());
        assert_eq!(n.kept_until(1, "y", now), None, "nothing kept moved there");
        assert!(n.keep(4, "p", until + Duration::from_secs(1), now));
        assert!(n.moving((3, "x"), (4, "p"), true, now).is_empty());
        assert_eq!(
            n.kept_until(3, "x", now),
            Some(until + Duration::from_secs(1)),
            "exchanged"
        );
    }

    #[test]
    fn a_full_set_makes_room_from_lapsed_names_only() {
        let now = Instant::now();
        let mut n = Names::default();
        for i in 0..KEPT_NAMES_MAX {
            let until = now + Duration::from_secs(if i == 0 { 1 } else { 60 });
            assert!(n.keep(i as Ino, "f", until, now));
        }
        assert!(!n.keep(0, "g", now + Duration::from_secs(60), now), "full");
        assert!(
            n.keep(5, "f", now + Duration::from_secs(90), now),
            "already kept"
        );
        let soon = now + Duration::from_millis(500);
        assert!(
            !n.keep(1, "g", soon + Duration::from_secs(60), soon),
            "no second look within FULL_RESCAN"
        );
        let later = now + FULL_RESCAN + Duration::from_secs(1);
        assert!(
            n.keep(1, "g", later + Duration::from_secs(60), later),
            "one lapsed"
        );
        assert_eq!(n.count, KEPT_NAMES_MAX);
        assert!(
            !n.keep(2, "g", later + Duration::from_secs(60), later),
            "full again"
        );
        assert_eq!(
            n.moving((5, "f"), (9, "h"), false, later),
            vec![(9, "h".to_string())],
            "no room for the new name: the kernel must drop it"
        );
    }
}
