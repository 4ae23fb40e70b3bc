//! Releases of this client's opens, sent to the MDS together.
//!
//! Every close of a file is an MDS transaction that drops the open record (and destroys an
//! unlinked inode nobody holds open any more). In a storm of small files that is one MDS
//! call per file on top of the create. Here the releases that arrive while one call is on
//! the way wait for it and then go in one `Release` call of up to [`RELEASE_MAX_INOS`]
//! inodes, and each call first waits [`RELEASE_GATHER`] for more: a busy client sends one
//! call for many closes. Every caller still waits for the call that carried its release, so
//! a release is done when it returns, as before. Nobody waits for that but the client
//! itself: the kernel sends RELEASE without waiting for the answer, `close(2)` returns
//! after FLUSH.

use std::sync::Mutex;
use std::time::Duration;

use rustre_proto::msg::Ino;
use rustre_proto::sync::lock;
use rustre_proto::Error;
use tokio::sync::oneshot;

/// How long a `Release` call waits for more releases to carry. An unlinked file whose last
/// close this is lives this much longer.
pub(super) const RELEASE_GATHER: Duration = Duration::from_millis(2);

pub(super) type Waiter = oneshot::Sender<Result<(), Error>>;

/// The releases waiting for the next call, and whether a sender is running.
#[derive(Default)]
pub(super) struct ReleaseQueue {
    pub(super) inner: Mutex<Queue>,
}

#[derive(Default)]
pub(super) struct Queue {
    pub(super) waiting: Vec<(Ino, Waiter)>,
    pub(super) sending: bool,
}

/// Held by a running sender: should it end any other way than by finding the queue empty
/// (a panic, or its runtime shutting down), the releases waiting fail and the next one
/// starts a new sender, instead of all later ones waiting for a sender that is gone.
pub(super) struct SenderRunning<'a> {
    pub(super) queue: &'a ReleaseQueue,
    pub(super) ended_normally: bool,
}

impl Drop for SenderRunning<'_> {
    fn drop(&mut self) {
        if self.ended_normally {
            return;
        }
        let mut q = lock(&self.queue.inner);
        q.sending = false;
        for (_, waiter) in q.waiting.drain(..) {
            let _ = waiter.send(Err(Error::Io("release sender ended".into())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A queue with one release waiting and a sender marked running, after a sender ended
    /// (`normally`: having found the queue empty; this release came after and started the
    /// next one).
    fn after_a_sender_ended(
        normally: bool,
    ) -> (ReleaseQueue, oneshot::Receiver<Result<(), Error>>) {
        let queue = ReleaseQueue::default();
        let (tx, rx) = oneshot::channel();
        {
            let mut q = lock(&queue.inner);
            q.waiting.push((5, tx));
            q.sending = true;
        }
        drop(SenderRunning {
            queue: &queue,
            ended_normally: normally,
        });
        (queue, rx)
    }

    #[test]
    fn a_sender_gone_without_emptying_the_queue_fails_its_waiters_and_makes_way() {
        let (queue, mut rx) = after_a_sender_ended(false);
        let q = lock(&queue.inner);
        assert!(!q.sending, "the next release must start a sender");
        assert!(q.waiting.is_empty());
        assert!(matches!(rx.try_recv(), Ok(Err(Error::Io(_)))));
    }

    #[test]
    fn a_sender_that_emptied_the_queue_leaves_it_alone() {
        let (queue, mut rx) = after_a_sender_ended(true);
        let q = lock(&queue.inner);
        assert!(q.sending);
        assert_eq!(q.waiting.len(), 1);
        assert!(rx.try_recv().is_err(), "still waiting");
    }
}
