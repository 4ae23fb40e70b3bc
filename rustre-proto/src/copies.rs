//! One call to every copy of a stripe at once, as the write rule and the MDS's truncate cut
//! make them (docs/replication.md): the answers of every copy, by slot, with a grace
//! period after the first success so that one copy on a vanished host does not hold the
//! others' result for a whole call timeout.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Error;

/// The answer of each copy, by layout slot, in slot order.
pub type SlotResults<T> = Vec<(usize, Result<T, Error>)>;

/// Runs `call(slot, ost)` for every `(slot, ost)` of `copies` at once. With `grace`, the
/// copies still running that long after the first success count as [`Error::TimedOut`]
/// (their calls are dropped); without, every call is awaited. A call that panicked counts
/// as `TimedOut` too.
pub async fn call_copies<T, F, Fut>(
    copies: &[(usize, u32)],
    grace: Option<Duration>,
    mut call: F,
) -> SlotResults<T>
where
    T: Send + 'static,
    F: FnMut(usize, u32) -> Fut,
    Fut: Future<Output = Result<T, Error>> + Send + 'static,
{
    if let [(slot, ost)] = *copies {
        // One copy: its call runs in this task, with no spawn (a spawn from a thread
        // outside the runtime, fuser's, would wake a worker before the call leaves).
        return vec![(slot, caught(call(slot, ost)).await)];
    }
    let mut calls = JoinSet::new();
    for &(slot, ost) in copies {
        let answer = call(slot, ost);
        calls.spawn(async move { (slot, answer.await) });
    }
    let mut out: SlotResults<T> = Vec::with_capacity(copies.len());
    let mut deadline: Option<Instant> = None;
    loop {
        let next = match deadline {
            None => calls.join_next().await,
            Some(d) => match tokio::time::timeout_at(d, calls.join_next()).await {
                Ok(next) => next,
                Err(_) => break,
            },
        };
        let Some(joined) = next else { break };
        match joined {
            Ok((slot, r)) => {
                if r.is_ok() && deadline.is_none() {
                    deadline = grace.map(|g| Instant::now() + g);
                }
                out.push((slot, r));
            }
            Err(e) => tracing::error!("a call to a copy failed: {e}"),
        }
    }
    drop(calls);
    for &(slot, ost) in copies {
        if !out.iter().any(|(s, _)| *s == slot) {
            tracing::warn!(ost, slot, "copy did not answer in time after another did");
            out.push((slot, Err(Error::TimedOut)));
        }
    }
    out.sort_by_key(|(slot, _)| *slot);
    out
}

/// `fut`'s answer, or [`Error::TimedOut`] if it panicked (as a spawned copy's call that
/// panicked counts).
async fn caught<T>(fut: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(p) => p,
            Err(_) => {
                tracing::error!("a call to a copy panicked");
                std::task::Poll::Ready(Err(Error::TimedOut))
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_copy_times_out_after_the_grace_once_another_answered() {
        let copies = [(0, 7), (1, 8), (2, 9)];
        let out = call_copies(
            &copies,
            Some(Duration::from_millis(100)),
            |slot, ost| async move {
                match slot {
                    0 => Ok(ost),
                    1 => Err(Error::Unavailable("down".into())),
                    _ => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        Ok(ost)
                    }
                }
            },
        )
        .await;
        assert_eq!(out.len(), 3);
        assert_eq!(out[0], (0, Ok(7)));
        assert!(matches!(out[1], (1, Err(Error::Unavailable(_)))));
        assert_eq!(out[2], (2, Err(Error::TimedOut)));
    }

    #[tokio::test]
    async fn without_grace_every_copy_is_awaited() {
        let copies = [(3, 1), (4, 2)];
        let out = call_copies(&copies, None, |slot, _| async move {
            tokio::time::sleep(Duration::from_millis(slot as u64 * 10)).await;
            Ok(slot)
        })
        .await;
        assert_eq!(out, vec![(3, Ok(3)), (4, Ok(4))]);
    }

    #[tokio::test]
    async fn one_copy_runs_in_the_callers_task_and_a_panic_counts_as_timed_out() {
        // The test body is no task (`block_on`); a spawned call would run in one.
        let out = call_copies(&[(2, 5)], None, |slot, ost| async move {
            Ok((slot, ost, tokio::task::try_id()))
        })
        .await;
        assert_eq!(out, vec![(2, Ok((2, 5, None)))]);
        let two = call_copies(&[(0, 1), (1, 2)], None, |_, _| async move {
            Ok(tokio::task::try_id())
        })
        .await;
        assert!(two.iter().all(|(_, r)| matches!(r, Ok(Some(_)))));
        let panicked = call_copies(&[(0, 1)], Some(Duration::from_millis(10)), |_, _| async {
            if true {
                panic!("copy call failed");
            }
            Ok(0u32)
        })
        .await;
        assert_eq!(panicked, vec![(0, Err(Error::TimedOut))]);
    }
}
