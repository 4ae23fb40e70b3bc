//! The change feed: what this MDS committed, numbered, for clients' metadata caches.
//!
//! Every transaction that writes goes through a [`Recorder`], which notes the inodes and
//! directory entries whose keys it sets or clears; once the transaction is over (before
//! the caller is answered) they are [`Feed::publish`]ed. Clients ask with
//! `MdsOp::Watch { instance, after }` and get what came after (a long poll: held up to
//! `WATCH_WAIT` when nothing did). The feed lives in memory only: a restarted MDS starts a
//! new instance, and watchers of the old one learn that they lost changes. Several MDS over
//! one store each publish their own changes; a client watches them all
//! (docs/metadata-cache.md).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use rustre_proto::msg::mds::{Change, ChangeBatch, FeedChange, WATCH_MAX_CHANGES, WATCH_WAIT};
use tokio::sync::Notify;

use crate::meta::{KeyValue, KvError, PrefixSet, Transaction};
use crate::schema::{self, KeyOf};
use rustre_proto::sync::lock;

/// Changes kept for watchers that fall behind; one further behind has lost some.
pub const FEED_CAPACITY: usize = 65_536;

/// One MDS's numbered changes.
pub struct Feed {
    instance: u64,
    ring: Mutex<Ring>,
    published: Notify,
}

struct Ring {
    /// Number of the newest change (0: none yet).
    last: u64,
    /// `(number, change)`, oldest first, at most [`FEED_CAPACITY`].
    held: VecDeque<(u64, FeedChange)>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed::new()
    }
}

impl Feed {
    /// An empty feed with an instance number no earlier feed of this process or (by the
    /// clock) of an earlier process had.
    pub fn new() -> Feed {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let clock = rustre_proto::host::since_epoch().as_nanos() as u64;
        let nth = STARTED.fetch_add(1, Ordering::Relaxed);
        Feed {
            // Never 0, which a watcher sends before it knows any instance.
            instance: (clock ^ nth.rotate_right(16)) | 1,
            ring: Mutex::new(Ring {
                last: 0,
                held: VecDeque::new(),
            }),
            published: Notify::new(),
        }
    }

    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// Numbers and keeps `changes`, made by `request` (`(session, seq)`, or `(0, 0)`), and
    /// wakes the watchers.
    pub fn publish(&self, request: (u64, u64), changes: Vec<Change>) {
        if changes.is_empty() {
            return;
        }
        {
            let mut ring = lock(&self.ring);
            for change in changes {
                ring.last += 1;
                let n = ring.last;
                ring.held.push_back((n, FeedChange { change, request }));
            }
            let excess = ring.held.len().saturating_sub(FEED_CAPACITY);
            ring.held.drain(..excess);
        }
        self.published.notify_waiters();
    }

    /// What a watcher that saw up to `after` of `instance` gets now, or `None` if there is
    /// nothing new.
    fn read(&self, instance: u64, after: u64) -> Option<ChangeBatch> {
        let ring = lock(&self.ring);
        let oldest = ring.held.front().map_or(ring.last + 1, |(n, _)| *n);
        if instance != self.instance || after > ring.last || after + 1 < oldest {
            return Some(ChangeBatch {
                instance: self.instance,
                last: ring.last,
                lost: true,
                changes: Vec::new(),
            });
        }
        if after == ring.last {
            return None;
        }
        let skip = (after + 1 - oldest) as usize;
        let changes: Vec<FeedChange> = ring
            .held
            .iter()
            .skip(skip)
            .take(WATCH_MAX_CHANGES)
            .map(|(_, c)| c.clone())
            .collect();
        Some(ChangeBatch {
            instance: self.instance,
            last: after + changes.len() as u64,
            lost: false,
            changes,
        })
    }

    /// The changes after `after` of `instance`; waits up to `WATCH_WAIT` for some.
    pub async fn watch(&self, instance: u64, after: u64) -> ChangeBatch {
        let published = self.published.notified();
        tokio::pin!(published);
        // Registered before looking, so a publish between the look and the wait wakes it.
        published.as_mut().enable();
        if let Some(b) = self.read(instance, after) {
            return b;
        }
        let _ = tokio::time::timeout(WATCH_WAIT, published).await;
        self.read(instance, after).unwrap_or(ChangeBatch {
            instance: self.instance,
            last: after,
            lost: false,
            changes: Vec::new(),
        })
    }
}

/// A transaction that notes which inodes and entries it writes, and under which key
/// prefixes it sets keys (for the background workers' queues, `Kv::take_written`).
pub struct Recorder<'a, T: Transaction + ?Sized> {
    pub tx: &'a mut T,
    pub changes: &'a mut Vec<Change>,
    pub written: &'a mut PrefixSet,
}

impl<T: Transaction + ?Sized> Recorder<'_, T> {
    fn note_set(&mut self, key: &[u8]) {
        self.written.add_key(key);
        self.note(key);
    }

    fn note(&mut self, key: &[u8]) {
        if let Some(c) = change_of(key) {
            if self.changes.last() != Some(&c) {
                self.changes.push(c);
            }
        }
    }
}

/// The change a write of `key` makes visible to clients, if any.
fn change_of(key: &[u8]) -> Option<Change> {
    match schema::parse_key(key)? {
        KeyOf::Inode(ino) | KeyOf::Xattr { ino, .. } => Some(Change::Inode(ino)),
        KeyOf::Dentry { parent, name } => match std::str::from_utf8(name) {
            Ok(name) => Some(Change::Entry {
                parent,
                name: name.to_string(),
            }),
            Err(_) => Some(Change::All),
        },
        KeyOf::Truncated(_) => Some(Change::All),
        KeyOf::Other(_) => None,
    }
}

/// The change clearing `start..end` makes: nothing when the range lies under one prefix
/// clients never see, the inode when it lies within one inode's xattrs, else everything.
fn change_of_range(start: &[u8], end: &[u8]) -> Option<Change> {
    let first = *start.first()?;
    let one_prefix = end.first() == Some(&first) || end == [first.wrapping_add(1)];
    if !one_prefix {
        return Some(Change::All);
    }
    match (schema::parse_key(start)?, schema::parse_key(end)) {
        (KeyOf::Other(_), _) => None,
        (KeyOf::Xattr { ino: a, .. }, Some(KeyOf::Xattr { ino: b, name })) => {
            // Within one inode's xattrs, or exactly up to the next inode's first one.
            (b == a || (name.is_empty() && a.checked_add(1) == Some(b)))
                .then_some(Change::Inode(a))
                .or(Some(Change::All))
        }
        _ => Some(Change::All),
    }
}

impl<T: Transaction + ?Sized> Transaction for Recorder<'_, T> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.tx.get(key)
    }

    fn range(&mut self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<KeyValue>, KvError> {
        self.tx.range(start, end, limit)
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        self.note_set(key);
        self.tx.set(key, value);
    }

    fn clear(&mut self, key: &[u8]) {
        self.note(key);
        self.tx.clear(key);
    }

    fn clear_if_set(&mut self, key: &[u8]) -> Result<(), KvError> {
        self.note(key);
        self.tx.clear_if_set(key)
    }

    fn clear_range(&mut self, start: &[u8], end: &[u8]) -> Result<(), KvError> {
        if let Some(c) = change_of_range(start, end) {
            self.changes.push(c);
        }
        self.tx.clear_range(start, end)
    }

    fn atomic_add(&mut self, key: &[u8], delta: i64) -> Result<(), KvError> {
        self.note_set(key);
        self.tx.atomic_add(key, delta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(parent: u64, name: &str) -> Change {
        Change::Entry {
            parent,
            name: name.into(),
        }
    }

    #[test]
    fn keys_map_to_the_changes_clients_see() {
        assert_eq!(change_of(&schema::inode(42)), Some(Change::Inode(42)));
        assert_eq!(change_of(&schema::dentry(7, "a b")), Some(entry(7, "a b")));
        assert_eq!(
            change_of(&schema::xattr(9, "user.x")),
            Some(Change::Inode(9))
        );
        assert_eq!(change_of(&schema::orphan(9)), None);
        assert_eq!(change_of(&schema::session(3)), None);
        let (s, e) = schema::xattr_range(9);
        assert_eq!(change_of_range(&s, &e), Some(Change::Inode(9)));
        let (s, e) = schema::request_range(3);
        assert_eq!(change_of_range(&s, &e), None);
        let (s, e) = schema::dentry_range(3);
        assert_eq!(change_of_range(&s, &e), Some(Change::All));
        let (s, e) = schema::prefix_range(schema::INODE);
        assert_eq!(change_of_range(&s, &e), Some(Change::All));
    }

    #[tokio::test]
    async fn watchers_get_changes_in_order_and_learn_of_losses() {
        let feed = Feed::new();
        // A new watcher learns the instance (and that it knew nothing).
        let first = feed.watch(0, 0).await;
        assert!(first.lost);
        assert_eq!((first.instance, first.last), (feed.instance(), 0));
        feed.publish((4, 9), vec![Change::Inode(1), entry(1, "a")]);
        feed.publish((0, 0), vec![Change::Inode(2)]);
        let b = feed.watch(feed.instance(), 0).await;
        assert!(!b.lost);
        assert_eq!(b.last, 3);
        let by = |c: &FeedChange| (c.change.clone(), c.request);
        assert_eq!(
            b.changes.iter().map(by).collect::<Vec<_>>(),
            vec![
                (Change::Inode(1), (4, 9)),
                (entry(1, "a"), (4, 9)),
                (Change::Inode(2), (0, 0))
            ]
        );
        let b = feed.watch(feed.instance(), 2).await;
        assert_eq!(b.last, 3);
        assert_eq!(
            b.changes.iter().map(by).collect::<Vec<_>>(),
            vec![(Change::Inode(2), (0, 0))]
        );
        // Another instance, or a number past the end: lost.
        assert!(feed.watch(feed.instance() ^ 2, 3).await.lost);
        assert!(feed.watch(feed.instance(), 9).await.lost);
        // More than one answer holds: the rest come next.
        feed.publish(
            (0, 0),
            (0..WATCH_MAX_CHANGES as u64 + 5)
                .map(Change::Inode)
                .collect(),
        );
        let b = feed.watch(feed.instance(), 3).await;
        assert_eq!(b.changes.len(), WATCH_MAX_CHANGES);
        let b = feed.watch(feed.instance(), b.last).await;
        assert_eq!(b.changes.len(), 5);
        // Pushed out of the ring: lost.
        feed.publish(
            (0, 0),
            (0..FEED_CAPACITY as u64).map(Change::Inode).collect(),
        );
        let b = feed.watch(feed.instance(), 3).await;
        assert!(b.lost);
        assert_eq!(
            b.last,
            3 + WATCH_MAX_CHANGES as u64 + 5 + FEED_CAPACITY as u64
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_watch_waits_for_the_next_change_and_no_longer_than_the_wait() {
        let feed = std::sync::Arc::new(Feed::new());
        let started = tokio::time::Instant::now();
        let b = feed.watch(feed.instance(), 0).await;
        assert!(!b.lost && b.changes.is_empty() && b.last == 0);
        assert_eq!(started.elapsed(), WATCH_WAIT);

        let f = feed.clone();
        let waiter = tokio::spawn(async move { f.watch(f.instance(), 0).await });
        tokio::time::sleep(WATCH_WAIT / 5).await;
        feed.publish((0, 0), vec![Change::Inode(5)]);
        let b = waiter.await.unwrap();
        assert_eq!(b.changes.len(), 1);
        assert_eq!(b.changes[0].change, Change::Inode(5));
        assert!(started.elapsed() < WATCH_WAIT * 2);
    }
}
