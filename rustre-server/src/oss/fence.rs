//! Fencing state of one OST (docs/replication.md, "Fencing"), shared by the MGS link, which
//! updates it, and the service, which checks every request against it.
//!
//! - Epoch: the cluster-map epoch the MGS answered the OST's latest registration with. A
//!   request carrying an older epoch is refused with [`Error::OldEpoch`], whatever it asks:
//!   the caller's map predates this OST's (re)joining.
//! - Lease: the OST may change data (write, truncate, delete) only while it is registered and
//!   the MGS answered a registration or heartbeat of it that was *sent* less than the lease
//!   ago (counting from the send makes the lease end no later than the MGS could see it).
//!   Otherwise those requests get [`Error::Fenced`]; everything else is still served.
//!   [`OSS_LEASE`] is longer than the MGS's down threshold, as the contract says, so an OSS
//!   the MGS still counts as up is never fenced by a late beat; once the MGS marked it down
//!   (its epoch moves on), the OSS stops changing data within
//!   `OSS_LEASE - NODE_DOWN_AFTER_MS`, and registers again (a new epoch) before it does.
//! - Held: an OST whose disk the MGS has not accepted (a new disk not registered yet, or one
//!   the MGS refused as not the disk bound to the index, `super::identity`) serves nothing,
//!   not even reads: every request is refused with [`Error::Unavailable`], as if the OSS were
//!   down, until a registration is accepted. Its empty objects would otherwise read as holes
//!   where the lost disk held data.
//! - While a registration is in flight, a change that would be fenced waits for it (at most
//!   [`REGISTRATION_WAIT`]): a client that saw the registration in the map can reach the OSS
//!   before the MGS's answer does. The wait is short because the MGS answers as soon as the
//!   registration is committed, which is before any client can see it; a longer one would
//!   only slow down the failover of clients while the MGS is unreachable.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

use rustre_proto::msg::mgs::{HEARTBEAT_INTERVAL_MS, NODE_DOWN_AFTER_MS};
use rustre_proto::Error;
use tokio::sync::Notify;

/// How long an OST keeps changing data after the send of the last registration or
/// heartbeat the MGS answered: the MGS's down threshold plus half a beat (3 s).
pub const OSS_LEASE: Duration =
    Duration::from_millis(NODE_DOWN_AFTER_MS + HEARTBEAT_INTERVAL_MS / 2);

/// Longest a change waits for a registration in flight before it is refused as fenced.
pub const REGISTRATION_WAIT: Duration = Duration::from_millis(500);

/// Registration and lease of one OST.
pub(crate) struct OstLease {
    lease: Duration,
    /// Origin of the millisecond clock below.
    base: Instant,
    /// Epoch of the latest successful registration; 0 before the first.
    epoch: AtomicU64,
    /// Registered and not since told by the MGS to register again.
    registered: AtomicBool,
    /// Milliseconds since `base`, plus one, at which the latest answered call was sent; 0
    /// when none was.
    renewed: AtomicU64,
    /// A registration call is in flight.
    registering: AtomicBool,
    /// Signalled when a registration call ends.
    registration_done: Notify,
    /// Serving nothing until a registration is accepted (see the module doc, "Held").
    held: AtomicBool,
}

impl OstLease {
    /// An OST not registered yet (serving reads, unless [`Self::hold`] is called), whose
    /// lease lasts `lease`.
    pub(crate) fn new(lease: Duration) -> OstLease {
        OstLease {
            lease,
            base: Instant::now(),
            epoch: AtomicU64::new(0),
            registered: AtomicBool::new(false),
            renewed: AtomicU64::new(0),
            registering: AtomicBool::new(false),
            registration_done: Notify::new(),
            held: AtomicBool::new(false),
        }
    }

    /// Serves nothing until the next accepted registration: the MGS has not accepted this
    /// OST's disk (yet). Also takes the registration away, like [`Self::lost`].
    pub(crate) fn hold(&self) {
        self.held.store(true, Ordering::Release);
        self.lost();
    }

    fn millis(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_millis()).unwrap_or(u64::MAX - 1)
            + 1
    }

    /// Epoch of the latest registration (0 before the first).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A registration call starts (`true`) or ends (`false`).
    pub(crate) fn set_registering(&self, on: bool) {
        self.registering.store(on, Ordering::Release);
        if !on {
            self.registration_done.notify_waiters();
        }
    }

    /// The MGS answered a registration sent at `sent` with `epoch` (the latest registration
    /// counts, even with a lower epoch: an MGS that lost its registry starts over).
    pub(crate) fn registered(&self, epoch: u64, sent: Instant) {
        self.epoch.store(epoch, Ordering::Release);
        self.renewed(sent);
        self.registered.store(true, Ordering::Release);
        self.held.store(false, Ordering::Release);
    }

    /// The MGS answered a heartbeat sent at `sent`.
    pub(crate) fn renewed(&self, sent: Instant) {
        self.renewed.fetch_max(self.millis(sent), Ordering::AcqRel);
    }

    /// The MGS no longer counts the OST as up: no changes until it registers again.
    pub(crate) fn lost(&self) {
        self.registered.store(false, Ordering::Release);
    }

    /// Refuses a caller whose map is older than the OST's registration, and every caller
    /// while the OST is held (its disk not accepted by the MGS): the check every request
    /// passes first.
    pub(crate) fn check_epoch(&self, caller: u64) -> Result<(), Error> {
        if self.held.load(Ordering::Acquire) {
            return Err(Error::Unavailable(
                "this OST serves nothing: the MGS has not accepted its disk (a new disk not \
                 registered yet, or one refused as not the disk bound to the OST; see the \
                 OSS's log)"
                    .into(),
            ));
        }
        let server = self.epoch();
        if caller < server {
            return Err(Error::OldEpoch { caller, server });
        }
        Ok(())
    }

    /// Whether the OST may change data now.
    pub(crate) fn check_writable(&self) -> Result<(), Error> {
        if !self.registered.load(Ordering::Acquire) {
            return Err(Error::Fenced(
                "the OST is not registered with the MGS".into(),
            ));
        }
        let renewed = self.renewed.load(Ordering::Acquire);
        let now = self.millis(Instant::now());
        let age = Duration::from_millis(now.saturating_sub(renewed));
        if renewed == 0 || age > self.lease {
            return Err(Error::Fenced(format!(
                "no heartbeat answered by the MGS for {} ms (lease {} ms)",
                age.as_millis(),
                self.lease.as_millis()
            )));
        }
        Ok(())
    }

    /// [`Self::check_writable`], waiting up to `wait` for a registration in flight.
    pub(crate) async fn writable(&self, wait: Duration) -> Result<(), Error> {
        if self.check_writable().is_ok() {
            return Ok(());
        }
        // Listen before looking again, so the end of a registration cannot slip between.
        let done = self.registration_done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        match self.check_writable() {
            Ok(()) => return Ok(()),
            Err(e) if !self.registering.load(Ordering::Acquire) => return Err(e),
            Err(_) => {}
        }
        let _ = tokio::time::timeout(wait, done).await;
        self.check_writable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_and_epoch() {
        let l = OstLease::new(Duration::from_millis(200));
        assert!(matches!(l.check_writable(), Err(Error::Fenced(_))));
        assert!(l.check_epoch(0).is_ok());
        l.registered(7, Instant::now());
        assert!(l.check_writable().is_ok());
        assert_eq!(
            l.check_epoch(6),
            Err(Error::OldEpoch {
                caller: 6,
                server: 7
            })
        );
        assert!(l.check_epoch(7).is_ok() && l.check_epoch(8).is_ok());
        // An old send time does not move the lease back.
        l.renewed(Instant::now() - Duration::from_secs(10));
        assert!(l.check_writable().is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(matches!(l.check_writable(), Err(Error::Fenced(_))));
        l.renewed(Instant::now());
        assert!(l.check_writable().is_ok());
        l.lost();
        assert!(matches!(l.check_writable(), Err(Error::Fenced(_))));
        assert!(OSS_LEASE > Duration::from_millis(NODE_DOWN_AFTER_MS));
    }

    #[test]
    fn a_held_ost_serves_nothing_until_registered() {
        let l = OstLease::new(Duration::from_secs(5));
        assert!(
            l.check_epoch(0).is_ok(),
            "reads are served before registering"
        );
        l.registered(4, Instant::now());
        l.hold();
        assert!(matches!(l.check_epoch(9), Err(Error::Unavailable(_))));
        assert!(matches!(l.check_writable(), Err(Error::Fenced(_))));
        l.registered(5, Instant::now());
        assert!(l.check_epoch(5).is_ok() && l.check_writable().is_ok());
    }

    #[tokio::test]
    async fn a_change_waits_for_a_registration_in_flight() {
        let l = std::sync::Arc::new(OstLease::new(Duration::from_secs(5)));
        // Nothing in flight: refused at once.
        let t0 = Instant::now();
        assert!(l.writable(Duration::from_secs(5)).await.is_err());
        assert!(t0.elapsed() < Duration::from_secs(1));
        l.set_registering(true);
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.writable(Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        l.registered(3, Instant::now());
        l.set_registering(false);
        assert!(waiter.await.unwrap().is_ok());
    }
}
