//! A bounded cache of open object files, least recently used out first.
//!
//! Entries are shared `Arc`s (in the OSS, of an object's file and its checksum sidecar): an
//! evicted handle stays open until the last read or write using it (and the `sendfile` of a
//! reply) drops it. The cache never opens or removes
//! files itself; `file_store` keeps it coherent with the directory (see its locking rule).
//!
//! Eviction drops the oldest eighth at once when full, so its O(n) scan is paid once every
//! n/8 insertions rather than on each one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rustre_proto::msg::oss::ObjectId;
use rustre_proto::sync::lock;

/// Fraction of the cache evicted when it is full (1/EVICT_DIVISOR of the entries).
const EVICT_DIVISOR: usize = 8;

struct Slot<T> {
    file: Arc<T>,
    last_used: u64,
}

struct Inner<T> {
    slots: HashMap<ObjectId, Slot<T>>,
    clock: u64,
}

/// Open object files, at most `max` of them.
pub(crate) struct HandleCache<T> {
    max: usize,
    inner: Mutex<Inner<T>>,
}

impl<T> HandleCache<T> {
    /// A cache of at most `max` (at least 1) open files.
    pub(crate) fn new(max: usize) -> HandleCache<T> {
        HandleCache {
            max: max.max(1),
            inner: Mutex::new(Inner {
                slots: HashMap::new(),
                clock: 0,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // The map stays consistent even if a holder panicked: every update is one call.
        lock(&self.inner)
    }

    /// The open file of `id`, if cached.
    pub(crate) fn get(&self, id: ObjectId) -> Option<Arc<T>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        inner.slots.get_mut(&id).map(|s| {
            s.last_used = now;
            s.file.clone()
        })
    }

    /// Caches `file` as the open file of `id`, evicting the least recently used when full.
    pub(crate) fn insert(&self, id: ObjectId, file: Arc<T>) {
        let evicted;
        {
            let mut inner = self.lock();
            evicted = if inner.slots.len() >= self.max && !inner.slots.contains_key(&id) {
                evict_oldest(&mut inner.slots, (self.max / EVICT_DIVISOR).max(1))
            } else {
                Vec::new()
            };
            inner.clock += 1;
            let last_used = inner.clock;
            inner.slots.insert(id, Slot { file, last_used });
        }
        // Closing files happens outside the lock.
        drop(evicted);
    }

    /// Forgets `id`, returning its file.
    pub(crate) fn remove(&self, id: ObjectId) -> Option<Arc<T>> {
        self.lock().slots.remove(&id).map(|s| s.file)
    }

    /// Number of cached files.
    pub(crate) fn len(&self) -> usize {
        self.lock().slots.len()
    }
}

fn evict_oldest<T>(slots: &mut HashMap<ObjectId, Slot<T>>, count: usize) -> Vec<Arc<T>> {
    let mut ages: Vec<(u64, ObjectId)> = slots.iter().map(|(k, s)| (s.last_used, *k)).collect();
    let count = count.min(ages.len());
    if count == 0 {
        return Vec::new();
    }
    ages.select_nth_unstable(count - 1);
    ages[..count]
        .iter()
        .filter_map(|(_, k)| slots.remove(k).map(|s| s.file))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use super::*;

    fn id(ino: u64) -> ObjectId {
        ObjectId { ino, stripe: 0 }
    }

    fn file() -> Arc<File> {
        Arc::new(tempfile::tempfile().unwrap())
    }

    #[test]
    fn bounded_and_least_recently_used_out_first() {
        let c = HandleCache::new(16);
        for i in 0..16 {
            c.insert(id(i), file());
        }
        assert_eq!(c.len(), 16);
        // Touch 0 and 1 so 2 and 3 are the oldest.
        assert!(c.get(id(0)).is_some());
        assert!(c.get(id(1)).is_some());
        c.insert(id(100), file());
        assert_eq!(c.len(), 16 - 16 / EVICT_DIVISOR + 1);
        assert!(c.get(id(0)).is_some() && c.get(id(1)).is_some());
        assert!(c.get(id(2)).is_none() && c.get(id(3)).is_none());
        assert!(c.get(id(100)).is_some());
        for i in 200..1000 {
            c.insert(id(i), file());
            assert!(c.len() <= 16);
        }
    }

    #[test]
    fn evicted_handles_stay_usable_by_holders() {
        let c = HandleCache::new(1);
        c.insert(id(1), file());
        let held = c.get(id(1)).unwrap();
        c.insert(id(2), file());
        assert!(c.get(id(1)).is_none());
        assert!(held.metadata().is_ok());
        assert!(c.remove(id(2)).is_some());
        assert!(c.remove(id(2)).is_none());
    }
}
