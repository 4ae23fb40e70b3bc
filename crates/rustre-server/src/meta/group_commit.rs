//! Group commit: many tasks wait for durability, one [`Backend::sync`] serves them all.
//!
//! Transactions commit without fsync. A task that must acknowledge durable state calls
//! [`GroupCommit::wait`], which returns once a sync that *started after the call* has
//! completed; that sync covers every transaction committed before the call.
//!
//! Syncs are numbered 1, 2, … in the order they start, and run one at a time under an async
//! mutex, so they also complete in that order. A caller reads the number of syncs started so
//! far, `s`, and needs sync `s + 1` (the first one that can start after it) or a later one.
//! It queues on the mutex (tokio's mutex is FIFO and its queue holds only the callers
//! themselves, so nothing grows without bound); whoever gets the mutex either finds that a
//! sync numbered `>= s + 1` has completed meanwhile and returns its outcome, or starts the
//! next sync itself on a blocking thread. While one sync runs, all callers that arrive queue
//! up and are then served by a single following sync, so N concurrent callers cost about two
//! syncs, not N. No polling: waiting is the mutex's wake-up.
//!
//! The mutex guard moves into the blocking closure, so a caller whose future is dropped
//! mid-sync cannot let a second sync start concurrently. A panicking sync is reported as
//! [`KvError::Storage`] and the next caller simply runs a new sync.

use super::{Backend, KvError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::Mutex;

/// Outcome of the newest completed sync.
struct Completed {
    /// Number of the sync (0: none yet).
    number: u64,
    /// What it returned.
    result: Result<(), KvError>,
}

/// Shares [`Backend::sync`] calls among concurrent waiters.
pub(crate) struct GroupCommit {
    backend: Arc<dyn Backend>,
    /// Number of the newest sync started (syncs are numbered from 1).
    started: AtomicU64,
    /// Number of syncs completed, for tests and metrics.
    completed: Arc<AtomicU64>,
    /// Held for the whole duration of a sync; holds the newest completed sync's outcome.
    last: Arc<Mutex<Completed>>,
}

impl GroupCommit {
    /// A group committer syncing `backend`.
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Self {
        GroupCommit {
            backend,
            started: AtomicU64::new(0),
            completed: Arc::new(AtomicU64::new(0)),
            last: Arc::new(Mutex::new(Completed {
                number: 0,
                result: Ok(()),
            })),
        }
    }

    /// Waits until a sync that started after this call has completed, and returns its
    /// outcome: `Ok` means every transaction committed before the call is durable.
    pub(crate) async fn wait(&self) -> Result<(), KvError> {
        // SeqCst pairs with the fetch_add below: a sync numbered above `needed - 1` was
        // numbered, and therefore started, after this load.
        let needed = self.started.load(Ordering::SeqCst) + 1;
        let mut last = self.last.clone().lock_owned().await;
        if last.number >= needed {
            return last.result.clone();
        }
        let number = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        let backend = self.backend.clone();
        let completed = self.completed.clone();
        let run = move || {
            let result = catch_unwind(AssertUnwindSafe(|| backend.sync()))
                .unwrap_or_else(|_| Err(KvError::Storage("sync panicked".into())));
            last.number = number;
            last.result = result.clone();
            completed.fetch_add(1, Ordering::SeqCst);
            drop(last);
            result
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => match rt.spawn_blocking(run).await {
                Ok(result) => result,
                Err(e) => Err(KvError::Storage(format!("sync task failed: {e}"))),
            },
            // Not inside a tokio runtime: nowhere to offload to, so sync on this thread.
            Err(_) => run(),
        }
    }

    /// Number of syncs completed so far.
    #[cfg_attr(not(test), allow(dead_code))] // for tests (and metrics, once wired)
    pub(crate) fn syncs_done(&self) -> u64 {
        self.completed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::Transaction;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// A backend whose syncs take a while and whose first syncs can be made to fail or panic.
    #[derive(Default)]
    struct SlowSync {
        started: AtomicU64,
        finished: AtomicU64,
        running: AtomicBool,
        overlapped: AtomicBool,
        fail_first: u64,
        panic_first: u64,
    }

    impl Backend for SlowSync {
        fn run_once(&self, _: &mut dyn FnMut(&mut dyn Transaction) -> bool) -> Result<(), KvError> {
            Ok(())
        }

        fn sync(&self) -> Result<(), KvError> {
            if self.running.swap(true, Ordering::SeqCst) {
                self.overlapped.store(true, Ordering::SeqCst);
            }
            let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
            std::thread::sleep(Duration::from_millis(30));
            self.running.store(false, Ordering::SeqCst);
            self.finished.fetch_add(1, Ordering::SeqCst);
            if n <= self.panic_first {
                panic!("injected sync panic");
            }
            if n <= self.fail_first {
                return Err(KvError::Storage("injected sync failure".into()));
            }
            Ok(())
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// A caller arriving while a sync runs must wait for the next one, not the running one.
    #[test]
    fn waits_for_a_sync_started_after_the_call() {
        let backend = Arc::new(SlowSync::default());
        let group = Arc::new(GroupCommit::new(backend.clone()));
        runtime().block_on(async {
            let first = tokio::spawn({
                let group = group.clone();
                async move { group.wait().await }
            });
            while backend.started.load(Ordering::SeqCst) == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            group.wait().await.expect("second wait");
            assert_eq!(
                backend.finished.load(Ordering::SeqCst),
                2,
                "the second caller was served by the sync already running at its call"
            );
            first.await.expect("join").expect("first wait");
        });
        assert!(
            !backend.overlapped.load(Ordering::SeqCst),
            "syncs overlapped"
        );
    }

    #[test]
    fn concurrent_callers_share_syncs_one_at_a_time() {
        let backend = Arc::new(SlowSync::default());
        let group = Arc::new(GroupCommit::new(backend.clone()));
        runtime().block_on(async {
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..100 {
                let group = group.clone();
                tasks.spawn(async move { group.wait().await });
            }
            while let Some(r) = tasks.join_next().await {
                r.expect("join").expect("wait");
            }
        });
        let syncs = group.syncs_done();
        assert!((1..=3).contains(&syncs), "{syncs} syncs for 100 callers");
        assert!(
            !backend.overlapped.load(Ordering::SeqCst),
            "syncs overlapped"
        );
    }

    #[test]
    fn failures_and_panics_are_reported_then_recovered() {
        let backend = Arc::new(SlowSync {
            panic_first: 1,
            fail_first: 2,
            ..SlowSync::default()
        });
        let group = GroupCommit::new(backend.clone());
        runtime().block_on(async {
            assert!(matches!(group.wait().await, Err(KvError::Storage(_))));
            assert!(matches!(group.wait().await, Err(KvError::Storage(_))));
            group.wait().await.expect("third sync succeeds");
        });
        assert_eq!(group.syncs_done(), 3);
    }

    /// Outside a tokio runtime the sync runs on the caller's thread.
    #[test]
    fn works_without_a_runtime() {
        let group = GroupCommit::new(Arc::new(SlowSync::default()));
        block_on_current_thread(group.wait()).expect("wait");
        assert_eq!(group.syncs_done(), 1);
    }

    /// Polls a future to completion on this thread, without any runtime.
    fn block_on_current_thread<F: std::future::Future>(f: F) -> F::Output {
        use std::task::{Context, Poll, Wake, Waker};
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }
}
