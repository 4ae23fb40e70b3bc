//! Group commit: many tasks wait for durability, one [`Backend::sync`] serves them all.
//!
//! Transactions commit without fsync. A task that must acknowledge durable state calls
//! [`GroupCommit::wait`], which returns once a sync that *started after the call* has
//! completed; that sync covers every transaction committed before the call.
//!
//! Syncs are numbered 1, 2, … and run one at a time, in a loop on a blocking thread that
//! exists only while there is demand (`rustre_proto::blocking::spawn_blocking_detached`). A caller, under a short std mutex, computes the sync it
//! needs (`started + 1`: the next one to start), raises `wanted` to it, and starts the loop if
//! none is running. The loop, after each sync, publishes `(number, result)` on a
//! `tokio::sync::watch` channel (one slot, so nothing queues up) and goes round again if some
//! caller wants a later sync, else stops. Callers sleep on the watch until the sync they need
//! has completed. So while one sync runs, every caller that arrives is served by the single
//! next sync, which starts the moment the running one ends: N concurrent callers cost about
//! two syncs, not N, and there is no polling.
//!
//! A caller whose future is dropped changes nothing: the loop still runs the sync it asked
//! for. A panicking sync is reported as [`KvError::Storage`]; if the runtime drops the sync
//! task before it runs, its waiters get [`KvError::Storage`] and the next caller starts over.

use super::{Backend, KvError};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::sync::watch;

/// Bookkeeping of which syncs have started and which are wanted.
struct State {
    /// Number of the newest sync started (0: none yet).
    started: u64,
    /// Highest sync number some caller waits for.
    wanted: u64,
    /// Whether the sync loop is running.
    running: bool,
    /// Callers the sync numbered `started` serves (for the batch-size metric).
    batch: u64,
    /// Callers waiting for the sync after it.
    waiting_next: u64,
}

/// What the newest completed sync published.
#[derive(Clone)]
struct Completed {
    /// Number of the newest completed sync (0: none yet).
    number: u64,
    /// Number of the newest sync that succeeded: everything committed before it started is
    /// durable.
    durable_through: u64,
    /// The newest sync's outcome.
    result: Result<(), KvError>,
}

/// State shared with the sync loop.
struct Shared {
    backend: Arc<dyn Backend>,
    state: Mutex<State>,
    completed: watch::Sender<Completed>,
    /// Number of syncs completed, for tests.
    syncs: AtomicU64,
    /// Callers served by those syncs (the batch sizes added up), for tests.
    served: AtomicU64,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // The critical sections only do arithmetic, so a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes the outcome of sync `number`.
    fn publish(&self, number: u64, result: Result<(), KvError>) {
        self.completed.send_modify(|c| {
            c.number = c.number.max(number);
            if result.is_ok() {
                c.durable_through = c.durable_through.max(number);
            }
            c.result = result;
        });
    }

    /// Runs syncs while callers want them. Blocking.
    fn sync_loop(&self) {
        loop {
            let (number, batch) = {
                let st = self.state();
                (st.started, st.batch)
            };
            let start = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| self.backend.sync()))
                .unwrap_or_else(|_| Err(KvError::Storage("sync panicked".into())));
            if let Some(m) = crate::metrics::get() {
                m.group_commit(batch, start.elapsed());
            }
            self.served.fetch_add(batch, Ordering::SeqCst);
            self.syncs.fetch_add(1, Ordering::SeqCst);
            self.publish(number, result);
            let mut st = self.state();
            if st.wanted > number {
                st.started += 1;
                st.batch = std::mem::take(&mut st.waiting_next);
            } else {
                st.running = false;
                return;
            }
        }
    }
}

/// The sync loop as a task. If the task is dropped without running to completion (the
/// runtime shut down before running it, or it unwound), its drop ends the bookkeeping and
/// fails every current waiter, so none is stranded.
struct SyncLoop {
    shared: Arc<Shared>,
    finished: bool,
}

impl SyncLoop {
    fn run(mut self) {
        self.shared.sync_loop();
        self.finished = true;
    }
}

impl Drop for SyncLoop {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let number = {
            let mut st = self.shared.state();
            st.running = false;
            // Consume the numbers of the syncs that will now never run, so a later caller
            // waits for a fresh sync instead of taking this failure as its own.
            st.started = st.started.max(st.wanted);
            st.waiting_next = 0;
            st.started
        };
        self.shared.publish(
            number,
            Err(KvError::Storage("sync task did not complete".into())),
        );
    }
}

/// Shares [`Backend::sync`] calls among concurrent waiters.
pub(crate) struct GroupCommit {
    shared: Arc<Shared>,
}

impl GroupCommit {
    /// A group committer syncing `backend`.
    pub(crate) fn new(backend: Arc<dyn Backend>) -> Self {
        let (completed, _) = watch::channel(Completed {
            number: 0,
            durable_through: 0,
            result: Ok(()),
        });
        GroupCommit {
            shared: Arc::new(Shared {
                backend,
                state: Mutex::new(State {
                    started: 0,
                    wanted: 0,
                    running: false,
                    batch: 0,
                    waiting_next: 0,
                }),
                completed,
                syncs: AtomicU64::new(0),
                served: AtomicU64::new(0),
            }),
        }
    }

    /// Waits until a sync that started after this call has completed, and returns its
    /// outcome: `Ok` means every transaction committed before the call is durable.
    pub(crate) async fn wait(&self) -> Result<(), KvError> {
        let shared = &self.shared;
        let mut rx = shared.completed.subscribe();
        let (needed, start_loop) = {
            let mut st = shared.state();
            let needed = st.started + 1;
            st.wanted = st.wanted.max(needed);
            let start_loop = !st.running;
            if start_loop {
                st.running = true;
                st.started = needed;
                st.batch = 1;
            } else {
                st.waiting_next += 1;
            }
            (needed, start_loop)
        };
        if start_loop {
            let task = SyncLoop {
                shared: shared.clone(),
                finished: false,
            };
            // Not awaited: the loop outlives this caller if it is cancelled. Outside a tokio
            // runtime there is nowhere to offload to, so it syncs on this thread.
            rustre_proto::blocking::spawn_blocking_detached(move || task.run());
        }
        let done = rx
            .wait_for(|c| c.number >= needed)
            .await
            .map_err(|_| KvError::Storage("group commit closed".into()))?
            .clone();
        if done.durable_through >= needed {
            Ok(())
        } else {
            done.result.and(Err(KvError::Storage(
                "a sync failed before this call's data was synced".into(),
            )))
        }
    }

    /// Number of syncs completed so far.
    #[cfg_attr(not(test), allow(dead_code))] // for tests
    pub(crate) fn syncs_done(&self) -> u64 {
        self.shared.syncs.load(Ordering::SeqCst)
    }

    /// Callers the completed syncs served, as the batch-size metric counts them.
    #[cfg_attr(not(test), allow(dead_code))] // for tests
    pub(crate) fn callers_served(&self) -> u64 {
        self.shared.served.load(Ordering::SeqCst)
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
            assert_eq!(group.callers_served(), 2, "two batches of one caller");
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
        // The batch sizes (rustre_mds_group_commit_batch_size) count every caller once.
        assert_eq!(group.callers_served(), 100);
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

    /// A sync task dropped before it ran (here: spawned on a runtime that has shut down)
    /// must fail its waiters and not leave the group thinking a sync is running.
    #[test]
    fn recovers_when_the_sync_task_is_dropped() {
        let group = GroupCommit::new(Arc::new(SlowSync::default()));
        let rt = runtime();
        let handle = rt.handle().clone();
        rt.shutdown_timeout(Duration::from_secs(1));
        {
            let _in_dead_runtime = handle.enter();
            let r = block_on_current_thread(group.wait());
            assert!(matches!(r, Err(KvError::Storage(_))), "{r:?}");
        }
        assert_eq!(group.syncs_done(), 0, "the dropped sync must not have run");
        block_on_current_thread(group.wait()).expect("fresh sync");
        assert_eq!(group.syncs_done(), 1);
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
