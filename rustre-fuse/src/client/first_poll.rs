//! Work that runs on the calling thread until it first has to wait, and on the runtime
//! from there: no hop to a runtime worker before its call is on the wire.
//!
//! Spawning work on the runtime from a thread outside it (fuser's) costs a wake-up of a
//! worker thread (and, in tokio's scheduler, often of a second one looking for work)
//! before the work even starts. Instead [`run`] polls the future once, here: what completes
//! without waiting is done, and work that sends a call goes as far as writing it to the
//! socket (`rustre_proto::rpc::client`) before it waits for the answer. Its waker hands the
//! future to the runtime only when it is woken, so the rest (a FUSE request's reply to the
//! kernel) runs on the worker that read the answer. The FUSE adapter starts every request
//! this way; the write-back starts small sends this way ([`spawn`]), so a small
//! file's bytes leave at its close without a worker waking first.
//!
//! Nothing here blocks the calling thread any more than the work's own first steps do: a
//! future that would wait returns `Pending` and is parked. A panic in the first poll is
//! caught (as tokio catches one in a task): the future is dropped (a FUSE reply dropped
//! makes fuser answer EIO; a [`Started`] answers [`Lost`]).

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use rustre_proto::sync::lock;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Where a request's future is between its first poll and the runtime.
enum Slot {
    /// Being polled on fuser's thread; `woken` once its waker fired meanwhile.
    Polling { woken: bool },
    /// Waiting for its waker, which spawns it.
    Parked(Task),
    /// Done, or handed to the runtime: later wakes of this waker mean nothing.
    Gone,
}

/// The waker of a request's first poll: spawns the parked future when woken.
struct Handoff {
    rt: Handle,
    slot: Mutex<Slot>,
}

impl Wake for Handoff {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut slot = lock(&self.slot);
        match std::mem::replace(&mut *slot, Slot::Gone) {
            Slot::Polling { .. } => *slot = Slot::Polling { woken: true },
            Slot::Parked(task) => {
                drop(slot);
                drop(self.rt.spawn(task));
            }
            Slot::Gone => {}
        }
    }
}

/// Runs `fut` on this thread until it first waits, then on `rt` (see the module
/// documentation). The caller must be inside `rt`'s context (`Handle::enter`).
pub(crate) fn run<F: Future<Output = ()> + Send + 'static>(rt: &Handle, fut: F) {
    let handoff = Arc::new(Handoff {
        rt: rt.clone(),
        slot: Mutex::new(Slot::Polling { woken: false }),
    });
    let waker = Waker::from(handoff.clone());
    let mut task: Task = Box::pin(fut);
    let polled = catch_unwind(AssertUnwindSafe(|| {
        task.as_mut().poll(&mut Context::from_waker(&waker))
    }));
    let mut slot = lock(&handoff.slot);
    let woken = matches!(*slot, Slot::Polling { woken: true });
    match polled {
        Ok(Poll::Pending) if woken => {
            *slot = Slot::Gone;
            drop(slot);
            drop(rt.spawn(task));
        }
        Ok(Poll::Pending) => *slot = Slot::Parked(task),
        Ok(Poll::Ready(())) => *slot = Slot::Gone,
        Err(_) => {
            *slot = Slot::Gone;
            tracing::error!("a task panicked in its first steps; it is dropped");
        }
    }
}

/// Work started with [`spawn`]: waits for its output.
pub(crate) struct Started<T> {
    output: oneshot::Receiver<T>,
    finished: Arc<AtomicBool>,
}

/// The work of a [`Started`] ended without an output (it panicked, or the runtime shut
/// down).
#[derive(Debug)]
pub(crate) struct Lost;

impl<T> Started<T> {
    /// Whether the work has ended.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }
}

impl<T> Future for Started<T> {
    type Output = Result<T, Lost>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.output)
            .poll(cx)
            .map(|r| r.map_err(|_| Lost))
    }
}

/// Like `tokio::spawn`, but `fut` runs on this thread until it first waits ([`run`]) when
/// `here_first`, else on a worker from the start. Must be called inside a runtime's
/// context.
pub(crate) fn spawn<T, F>(fut: F, here_first: bool) -> Started<T>
where
    T: Send + 'static,
    F: Future<Output = T> + Send + 'static,
{
    let (tx, output) = oneshot::channel();
    let finished = Arc::new(AtomicBool::new(false));
    let done = Finished(finished.clone());
    let work = async move {
        let _done = done;
        let _ = tx.send(fut.await);
    };
    if here_first {
        run(&Handle::current(), work);
    } else {
        drop(tokio::spawn(work));
    }
    Started { output, finished }
}

/// Marks a [`Started`] finished when its work ends, however it ends.
struct Finished(Arc<AtomicBool>);

impl Drop for Finished {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime")
    }

    #[test]
    fn a_future_that_never_waits_completes_on_the_calling_thread() {
        let rt = runtime();
        let _in = rt.enter();
        let here = std::thread::current().id();
        let (tx, rx) = std::sync::mpsc::channel();
        run(rt.handle(), async move {
            tx.send(std::thread::current().id()).unwrap();
        });
        // Done before run returned: no worker involved.
        assert_eq!(rx.try_recv().unwrap(), here);
    }

    #[test]
    fn a_waiting_future_goes_on_on_the_runtime_once_woken() {
        let rt = runtime();
        let _in = rt.enter();
        let here = std::thread::current().id();
        let (wake_tx, wake_rx) = oneshot::channel::<u32>();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let steps = Arc::new(AtomicUsize::new(0));
        let s = steps.clone();
        run(rt.handle(), async move {
            s.fetch_add(1, Ordering::SeqCst);
            let v = wake_rx.await.unwrap();
            done_tx.send((v, std::thread::current().id())).unwrap();
        });
        // The first step ran here, then it waited.
        assert_eq!(steps.load(Ordering::SeqCst), 1);
        assert!(done_rx.try_recv().is_err());
        wake_tx.send(7).unwrap();
        let (v, on) = done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        assert_eq!(v, 7);
        assert_ne!(on, here, "the rest ran on a runtime worker");
    }

    #[test]
    fn a_wake_during_the_first_poll_is_not_lost() {
        let rt = runtime();
        let _in = rt.enter();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        run(rt.handle(), async move {
            // Wakes itself and waits once: the wake lands while the first poll runs.
            tokio::task::yield_now().await;
            done_tx.send(()).unwrap();
        });
        done_rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the future finished on the runtime");
    }

    #[test]
    fn started_work_answers_its_output_and_says_when_it_finished() {
        let rt = runtime();
        let _in = rt.enter();
        let (go, wait) = oneshot::channel::<u32>();
        let started = spawn(async move { wait.await.unwrap() * 2 }, true);
        assert!(!started.is_finished());
        go.send(21).unwrap();
        assert_eq!(rt.block_on(started).unwrap(), 42);

        let at_once = spawn(async { 5 }, true);
        assert!(at_once.is_finished(), "done in its first poll");
        assert_eq!(rt.block_on(at_once).unwrap(), 5);

        let panicked = spawn(
            async {
                if true {
                    panic!("lost");
                }
                0u32
            },
            true,
        );
        assert!(panicked.is_finished());
        assert!(rt.block_on(panicked).is_err());
    }

    #[test]
    fn a_panic_in_the_first_poll_drops_the_request() {
        struct Dropped(std::sync::mpsc::Sender<()>);
        impl Drop for Dropped {
            fn drop(&mut self) {
                let _ = self.0.send(());
            }
        }
        let rt = runtime();
        let _in = rt.enter();
        let (tx, rx) = std::sync::mpsc::channel();
        let reply = Dropped(tx);
        run(rt.handle(), async move {
            let _reply = reply;
            panic!("request failed");
        });
        assert!(
            rx.try_recv().is_ok(),
            "the reply was dropped (fuser answers EIO)"
        );
    }
}
