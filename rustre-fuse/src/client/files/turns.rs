//! One size report of an inode at a time.
//!
//! A report carries the mtime this client's writes reached, and the MDS keeps the later of
//! a report's mtime and the one it has, so a report must never land after an explicit
//! mtime set since (`tar x`: write, close, then utimensat). Two reports of one inode could
//! be in flight at once: the periodic one (every 5 s) and a close's, which finds the state
//! still dirty while the first is unanswered. The close then returned when its own report
//! was answered, the caller's utimensat went out, and the MDS could commit the periodic
//! report after it (a conflict between the two reports retries one of them), leaving the
//! write's mtime on a file `tar` had dated (seen once in scripts/bench-io.sh's tree check).
//! So whatever sends reports or kept attribute changes of an inode takes its turn here
//! first, and a flush returns only once every report sent before it is answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;
use tokio::sync::OwnedMutexGuard;

/// The per-inode turns (an inode is here only while someone holds or waits for its turn).
#[derive(Default)]
pub(crate) struct ReportTurns {
    turns: Mutex<HashMap<Ino, Arc<tokio::sync::Mutex<()>>>>,
}

/// The turn of one inode, held until dropped.
pub(crate) struct Turn<'a> {
    turns: &'a ReportTurns,
    ino: Ino,
    guard: Option<OwnedMutexGuard<()>>,
}

impl ReportTurns {
    /// Waits for `ino`'s turn.
    pub(crate) async fn take(&self, ino: Ino) -> Turn<'_> {
        let m = lock(&self.turns).entry(ino).or_default().clone();
        let guard = m.lock_owned().await;
        Turn {
            turns: self,
            ino,
            guard: Some(guard),
        }
    }

    /// Number of inodes someone holds or waits for.
    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.turns).len()
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut turns = lock(&self.turns.turns);
        // Only the map holds it now: nobody waits.
        if turns
            .get(&self.ino)
            .is_some_and(|m| Arc::strong_count(m) == 1)
        {
            turns.remove(&self.ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn one_turn_per_inode_at_a_time_and_nothing_left_after() {
        let turns = Arc::new(ReportTurns::default());
        let first = turns.take(7).await;
        // Another inode is not held up.
        drop(turns.take(8).await);
        let (t, second_ran) = (turns.clone(), Arc::new(AtomicBool::new(false)));
        let ran = second_ran.clone();
        let second = tokio::spawn(async move {
            let _turn = t.take(7).await;
            ran.store(true, Ordering::SeqCst);
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!second_ran.load(Ordering::SeqCst), "waits for the first");
        assert_eq!(turns.len(), 1);
        drop(first);
        second.await.unwrap();
        assert!(second_ran.load(Ordering::SeqCst));
        assert_eq!(turns.len(), 0, "no entry outlives its turns");
    }
}
