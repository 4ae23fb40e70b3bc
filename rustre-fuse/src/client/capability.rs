//! The answer to the kernel's `security.capability` probe, kept per inode for a short time.
//!
//! Before every `write(2)` the kernel asks whether the file carries file capabilities
//! (`file_remove_privs`: a write must drop them). Local file systems answer once and mark
//! the inode `S_NOSEC`; FUSE clears `SB_NOSEC`, so on a FUSE mount every write costs a
//! GETXATTR — here a metadata round trip per 4 KiB write. The client keeps each answer
//! (the value, or "no such attribute") for the attribute TTL of the mount, the same
//! staleness the kernel already accepts for mode and owner, and drops it at once when this
//! client changes the inode's xattrs or attributes. A TTL of zero (the library's default)
//! keeps nothing.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use lru::LruCache;
use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;
use rustre_proto::Error;

/// The extended attribute the kernel probes before writes.
pub(super) const CAPABILITY_XATTR: &str = "security.capability";
/// Inodes whose answer is kept at once.
pub(super) const CAPABILITY_CACHE_ENTRIES: usize = 4096;

/// What the MDS said about one inode's `security.capability`, and when.
struct Answer {
    at: Instant,
    /// The value, or `None` for "no such attribute".
    value: Option<Vec<u8>>,
}

/// Recent answers, per inode.
pub(super) struct CapabilityCache {
    ttl: Mutex<Duration>,
    answers: Mutex<LruCache<Ino, Answer>>,
}

impl Default for CapabilityCache {
    fn default() -> Self {
        CapabilityCache {
            ttl: Mutex::new(Duration::ZERO),
            answers: Mutex::new(LruCache::new(
                NonZeroUsize::new(CAPABILITY_CACHE_ENTRIES).expect("non-zero"),
            )),
        }
    }
}

impl CapabilityCache {
    /// How long an answer stays usable (zero: not kept at all).
    pub(super) fn set_ttl(&self, ttl: Duration) {
        *lock(&self.ttl) = ttl;
        if ttl.is_zero() {
            lock(&self.answers).clear();
        }
    }

    /// The answer for `ino` if one younger than the TTL is kept: the value, or
    /// [`Error::NoData`].
    pub(super) fn get(&self, ino: Ino) -> Option<Result<Vec<u8>, Error>> {
        let ttl = *lock(&self.ttl);
        let mut answers = lock(&self.answers);
        let a = answers.get(&ino)?;
        if a.at.elapsed() >= ttl {
            answers.pop(&ino);
            return None;
        }
        Some(a.value.clone().ok_or(Error::NoData))
    }

    /// Keeps the MDS's answer `r` for `ino`, taken at `asked` (before the call was sent, so
    /// the answer never looks younger than it is). Other errors are not kept.
    pub(super) fn put(&self, ino: Ino, asked: Instant, r: &Result<Vec<u8>, Error>) {
        if lock(&self.ttl).is_zero() {
            return;
        }
        let value = match r {
            Ok(v) => Some(v.clone()),
            Err(Error::NoData) => None,
            Err(_) => return,
        };
        lock(&self.answers).put(ino, Answer { at: asked, value });
    }

    /// Drops what is kept for `ino` (this client changed it).
    pub(super) fn forget(&self, ino: Ino) {
        lock(&self.answers).pop(&ino);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_kept_for_the_ttl_only() {
        let c = CapabilityCache::default();
        let now = Instant::now();
        c.put(1, now, &Err(Error::NoData));
        assert!(c.get(1).is_none(), "a zero TTL keeps nothing");
        c.set_ttl(Duration::from_millis(200));
        c.put(1, Instant::now(), &Err(Error::NoData));
        c.put(2, Instant::now(), &Ok(vec![7]));
        c.put(3, Instant::now(), &Err(Error::Io("lost".into())));
        assert!(matches!(c.get(1), Some(Err(Error::NoData))));
        assert_eq!(c.get(2).unwrap().unwrap(), vec![7]);
        assert!(c.get(3).is_none(), "transient errors are not answers");
        c.forget(2);
        assert!(c.get(2).is_none());
        std::thread::sleep(Duration::from_millis(250));
        assert!(c.get(1).is_none(), "expired");
    }

    #[test]
    fn an_answer_is_as_old_as_its_question() {
        let c = CapabilityCache::default();
        c.set_ttl(Duration::from_millis(100));
        let asked = Instant::now() - Duration::from_millis(150);
        c.put(1, asked, &Err(Error::NoData));
        assert!(c.get(1).is_none());
    }
}
