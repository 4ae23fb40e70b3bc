//! The sending side of a client connection: a call writes its frame to the socket itself
//! when the socket takes it at once, and leaves what it does not take to a writer task.
//!
//! Handing every frame to a writer task costs each call a wake-up of the task (and, from a
//! thread outside the runtime, of a worker thread) before its request leaves. Here the
//! caller appends its frame to the queue and, unless the writer task is already draining
//! it, writes the queue with one non-blocking vectored write. Whatever the socket does not
//! take (a full send buffer: large payloads, a slow peer) stays queued, the writer task is
//! woken and writes it as the socket drains, and frames queued meanwhile go behind it. The
//! non-blocking write finishes or leaves a whole remainder queued, so a call dropped at
//! any point never leaves half a frame behind.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes};
use tokio::io::AsyncWrite;
use tokio::sync::Notify;

use crate::error::Error;
use crate::net::{self, WriteHalf};
use crate::sync::lock;

/// Most queued segments one write hands to the socket.
const MAX_SEGMENTS_PER_WRITE: usize = 64;

struct Queue {
    half: WriteHalf,
    /// Segments not yet written, in order; the first may be partly written already.
    segments: VecDeque<Bytes>,
    /// The writer task is draining the queue: callers only append.
    draining: bool,
    /// A write failed or the connection closed: nothing more is sent.
    failed: bool,
}

/// Frames on their way to one peer.
pub(super) struct Outbox {
    queue: Mutex<Queue>,
    writer_wanted: Notify,
    closed: Arc<AtomicBool>,
}

impl Outbox {
    /// An outbox writing to `half`; `closed` is set when a write fails. Start
    /// [`Outbox::writer`] on the runtime beside it.
    pub(super) fn new(half: WriteHalf, closed: Arc<AtomicBool>) -> Arc<Outbox> {
        Arc::new(Outbox {
            queue: Mutex::new(Queue {
                half,
                segments: VecDeque::new(),
                draining: false,
                failed: false,
            }),
            writer_wanted: Notify::new(),
            closed,
        })
    }

    /// Queues one frame (its segments in order) and writes what the socket takes now.
    pub(super) fn send(&self, frame: impl IntoIterator<Item = Bytes>) -> Result<(), Error> {
        let mut q = lock(&self.queue);
        if q.failed {
            return Err(Error::Unavailable("connection closed".into()));
        }
        q.segments
            .extend(frame.into_iter().filter(|b| !b.is_empty()));
        if q.draining {
            return Ok(());
        }
        let mut cx = Context::from_waker(Waker::noop());
        match write_queued(&mut q, &mut cx) {
            Poll::Ready(Ok(())) => Ok(()),
            Poll::Pending => {
                q.draining = true;
                self.writer_wanted.notify_one();
                Ok(())
            }
            Poll::Ready(Err(e)) => {
                q.failed = true;
                self.closed.store(true, Ordering::SeqCst);
                Err(net::transport(e))
            }
        }
    }

    /// Marks the outbox closed and ends its writer task.
    pub(super) fn close(&self) {
        lock(&self.queue).failed = true;
        self.writer_wanted.notify_one();
    }

    /// The writer task: drains the queue each time a caller left part of it, until the
    /// outbox closes or a write fails; then shuts the socket's sending side.
    pub(super) async fn writer(self: Arc<Self>) {
        loop {
            self.writer_wanted.notified().await;
            let drained = std::future::poll_fn(|cx| {
                let mut q = lock(&self.queue);
                if q.failed {
                    return Poll::Ready(false);
                }
                match write_queued(&mut q, cx) {
                    Poll::Ready(Ok(())) => {
                        q.draining = false;
                        Poll::Ready(true)
                    }
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Err(e)) => {
                        tracing::debug!("write failed: {e}");
                        q.failed = true;
                        Poll::Ready(false)
                    }
                }
            })
            .await;
            if !drained {
                break;
            }
        }
        self.closed.store(true, Ordering::SeqCst);
        let _ = std::future::poll_fn(|cx| {
            let mut q = lock(&self.queue);
            Pin::new(&mut q.half).poll_shutdown(cx)
        })
        .await;
    }
}

/// Writes queued segments until the queue is empty (`Ready(Ok)`), the socket takes no more
/// (`Pending`, `cx` woken when it may) or a write fails.
fn write_queued(q: &mut Queue, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
    while !q.segments.is_empty() {
        let slices: Vec<IoSlice<'_>> = q
            .segments
            .iter()
            .take(MAX_SEGMENTS_PER_WRITE)
            .map(|b| IoSlice::new(b))
            .collect();
        let n = match Pin::new(&mut q.half).poll_write_vectored(cx, &slices) {
            Poll::Ready(Ok(0)) => {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        advance(&mut q.segments, n);
    }
    // Nothing is buffered above the socket: no flush to wait for.
    Poll::Ready(Ok(()))
}

/// Drops the first `n` bytes of the queued segments.
fn advance(segments: &mut VecDeque<Bytes>, mut n: usize) {
    while n > 0 {
        let front = segments.front_mut().expect("wrote no more than was queued");
        if front.len() <= n {
            n -= front.len();
            segments.pop_front();
        } else {
            front.advance(n);
            n = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_drops_whole_and_partial_segments() {
        let mut q: VecDeque<Bytes> = ["abc", "de", "fgh"]
            .into_iter()
            .map(|s| Bytes::from_static(s.as_bytes()))
            .collect();
        advance(&mut q, 4);
        assert_eq!(
            q,
            vec![Bytes::from_static(b"e"), Bytes::from_static(b"fgh")]
        );
        advance(&mut q, 2);
        assert_eq!(q, vec![Bytes::from_static(b"gh")]);
        advance(&mut q, 2);
        assert!(q.is_empty());
    }
}
