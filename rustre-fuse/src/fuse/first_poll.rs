//! A request runs on fuser's thread until it first has to wait, and on the runtime from
//! there: no hop to a runtime worker before its call is on the wire.
//!
//! Spawning every request on the runtime costs each of them a wake-up of a worker thread
//! (and, in tokio's scheduler, often of a second one looking for work) before the request
//! is even encoded. Instead [`run`] polls the request's future once, here: what completes
//! without waiting is done, and a request that sends a call goes as far as writing it to
//! the socket ([`rustre_proto::rpc::client`]) before it waits for the answer. Its waker
//! hands the future to the runtime only when it is woken, so the rest of the request (the
//! reply to the kernel) runs on the worker that read the answer.
//!
//! Nothing here blocks fuser's thread any more than the request's own first steps do:
//! a future that would wait returns `Pending` and is parked. A panic in the first poll is
//! caught (as tokio catches one in a task): the request is dropped, and with it its reply,
//! which makes fuser answer EIO.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use rustre_proto::sync::lock;
use tokio::runtime::Handle;

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
pub(super) fn run<F: Future<Output = ()> + Send + 'static>(rt: &Handle, fut: F) {
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
            tracing::error!("a request panicked on fuser's thread; it is answered EIO");
        }
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
