//! The MDS's lock handlers: `SetLock` (holding a waiting request until its conflict goes
//! or `LOCK_WAIT_ROUND` passes), `GetLock` and `UnlockOwner`, and the wake-ups that
//! unlocks through this MDS send to the requests it holds.

use std::sync::Arc;

use rustre_proto::msg::mds::{LockAnswer, LockSpec, LockType, MdsResponse, LOCK_WAIT_ROUND};
use rustre_proto::msg::Ino;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{txn, RECHECK_MAX, RECHECK_MIN};
use crate::mds::dispatch::Call;
use crate::mds::error::MdsError;
use crate::mds::txn::Mutation;
use crate::mds::Mds;

/// Wake-up stripes: waiters on inode `ino` sleep on stripe `ino % WAKE_STRIPES`.
pub const WAKE_STRIPES: usize = 64;

/// The wake-ups of lock requests this MDS holds, by inode stripe.
pub struct Waits(Vec<Notify>);

impl Default for Waits {
    fn default() -> Self {
        Waits((0..WAKE_STRIPES).map(|_| Notify::new()).collect())
    }
}

impl Waits {
    fn stripe(&self, ino: Ino) -> &Notify {
        &self.0[(ino as usize) % WAKE_STRIPES]
    }

    /// Wakes every request waiting for a lock on `ino` (and on the inodes of its stripe,
    /// which just try again).
    pub fn wake(&self, ino: Ino) {
        self.stripe(ino).notify_waiters();
    }
}

/// A lock change: acknowledged once durable (a lock is never lost silently), never
/// recorded (setting or dropping a lock twice is setting or dropping it once).
const LOCK_CHANGE: Mutation = Mutation::ON_DISK;

type Answer = Result<MdsResponse, MdsError>;

impl Mds {
    pub(in crate::mds) async fn set_lock(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        spec: LockSpec,
        wait: bool,
    ) -> Answer {
        let deadline = Instant::now() + LOCK_WAIT_ROUND;
        let mut pause = RECHECK_MIN;
        loop {
            // Armed before the try, so an unlock between the try and the sleep still wakes.
            let woken = self.lock_waits.stripe(ino).notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let session = call.session;
            let out = self
                .txn(call.creds.clone(), vec![], LOCK_CHANGE, move |tx, _| {
                    txn::set(tx, session, ino, &spec, wait, rustre_proto::host::now_ms())
                })
                .await?;
            if out.released {
                self.lock_waits.wake(ino);
            }
            let now = Instant::now();
            match out.answer {
                LockAnswer::Conflict(_) if wait && now < deadline => {
                    let _ = tokio::time::timeout(pause.min(deadline - now), woken).await;
                    pause = (pause * 2).min(RECHECK_MAX);
                }
                answer => return Ok(MdsResponse::Lock(answer)),
            }
        }
    }

    pub(in crate::mds) async fn get_lock(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        spec: LockSpec,
    ) -> Answer {
        if spec.typ == LockType::Unlock {
            return Err(rustre_proto::Error::Invalid("F_GETLK of F_UNLCK".into()).into());
        }
        let session = call.session;
        let answer = self
            .txn(call.creds, vec![], Mutation::ReadOnly, move |tx, _| {
                txn::test(tx, session, ino, &spec)
            })
            .await?;
        Ok(MdsResponse::Lock(answer))
    }

    pub(in crate::mds) async fn unlock_owner(
        self: &Arc<Self>,
        call: Call,
        ino: Ino,
        owner: u64,
    ) -> Answer {
        let session = call.session;
        let released = self
            .txn(call.creds, vec![], LOCK_CHANGE, move |tx, _| {
                txn::unlock_owner(tx, session, ino, owner)
            })
            .await?;
        if released {
            self.lock_waits.wake(ino);
        }
        Ok(MdsResponse::Done)
    }
}
