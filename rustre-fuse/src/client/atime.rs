//! Access times as Linux keeps them. The kernel leaves a FUSE file system's atime to the
//! file system, so the client moves it: the mount's rule ([`AtimeMode`], set by the mount
//! from its flags), the decision when a read or a listing through a handle moves its
//! inode's atime (at most once per open under relatime, by Linux's rule; at most once per
//! [`STRICTATIME_INTERVAL`] per open under strictatime), and the values sent to the MDS in
//! the background, which this client's attribute answers show until the MDS has them.
//! State only: the call itself is made by `handles`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rustre_proto::msg::mds::relatime_due;
use rustre_proto::msg::{Attr, Ino, Timestamp};
use rustre_proto::sync::lock;
use tokio::time::Instant;

/// Under strictatime, the shortest time between two atime updates through one open: the
/// atime's granularity for a file read continuously.
pub const STRICTATIME_INTERVAL: Duration = Duration::from_secs(1);
/// Most atime updates in flight; past it a read moves no atime (the next one will).
pub(super) const MAX_PENDING_ATIMES: usize = 1024;

/// When reads move atime (the mount's `noatime`, `relatime`, `strictatime`; a read-only
/// mount never does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtimeRule {
    Never,
    Relative,
    Strict,
}

/// The atime behaviour of a mount: the rule, and whether listings move directories'
/// atime (`nodiratime` turns that off).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AtimeMode {
    pub rule: AtimeRule,
    pub dirs: bool,
}

impl AtimeMode {
    /// A client that is not a mount (`rustre get`) moves no atime.
    pub const NEVER: AtimeMode = AtimeMode {
        rule: AtimeRule::Never,
        dirs: false,
    };
}

/// An open the atime rule follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Via {
    File(u64),
    Dir(u64),
}

/// What one open knows for the rule.
struct OpenAtime {
    /// The inode's attributes at open, when known.
    at_open: Option<Attr>,
    /// When a read through it last moved the atime.
    moved: Option<Instant>,
}

/// An atime update to send: the value, and whether the MDS decides (the client did not
/// know the inode's times).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Update {
    pub atime: Timestamp,
    pub relative: bool,
}

/// The atime state of one client.
pub(super) struct Atimes {
    mode: Mutex<AtimeMode>,
    opens: Mutex<HashMap<Via, OpenAtime>>,
    /// Values sent to the MDS and not answered yet, and whether answers show them.
    pending: Mutex<HashMap<Ino, (Timestamp, bool)>>,
}

impl Default for Atimes {
    fn default() -> Self {
        Atimes {
            mode: Mutex::new(AtimeMode::NEVER),
            opens: Mutex::default(),
            pending: Mutex::default(),
        }
    }
}

impl Atimes {
    pub(super) fn set_mode(&self, mode: AtimeMode) {
        *lock(&self.mode) = mode;
    }

    pub(super) fn mode(&self) -> AtimeMode {
        *lock(&self.mode)
    }

    /// Open `via` was made; `attr` is what the open answered (without its layout).
    pub(super) fn opened(&self, via: Via, attr: Option<&Attr>) {
        let at_open = attr.map(|a| Attr {
            layout: None,
            ..a.clone()
        });
        let o = OpenAtime {
            at_open,
            moved: None,
        };
        lock(&self.opens).insert(via, o);
    }

    pub(super) fn closed(&self, via: Via) {
        lock(&self.opens).remove(&via);
    }

    /// A read or listing through `via` at `now`: the update to send, if the mode says one is
    /// due. `known` gives the freshest attributes this client has of the inode (the open's
    /// answer with this client's writes merged in, if nothing fresher); a value to send is
    /// shown by [`Atimes::merge`] until [`Atimes::answered`].
    pub(super) fn on_access(
        &self,
        via: Via,
        ino: Ino,
        now: Timestamp,
        known: impl FnOnce(Option<Attr>) -> Option<Attr>,
    ) -> Option<Update> {
        let mode = self.mode();
        if mode.rule == AtimeRule::Never || (matches!(via, Via::Dir(_)) && !mode.dirs) {
            return None;
        }
        let at_open = {
            let mut opens = lock(&self.opens);
            let o = opens.get_mut(&via)?;
            let due = match (mode.rule, o.moved) {
                (AtimeRule::Strict, Some(t)) => t.elapsed() >= STRICTATIME_INTERVAL,
                (_, Some(_)) => false,
                _ => true,
            };
            if !due {
                return None;
            }
            o.moved = Some(Instant::now());
            o.at_open.clone()
        };
        let known = known(at_open);
        if mode.rule == AtimeRule::Relative && known.as_ref().is_some_and(|a| !relatime_due(a, now))
        {
            return None;
        }
        let mut pending = lock(&self.pending);
        if pending.len() >= MAX_PENDING_ATIMES {
            return None;
        }
        // Shown at once only when the client knew the times: otherwise the MDS decides.
        pending.insert(ino, (now, known.is_some()));
        Some(Update {
            atime: now,
            relative: known.is_none() && mode.rule == AtimeRule::Relative,
        })
    }

    /// Shows an atime sent and not answered yet in an attribute answer.
    pub(super) fn merge(&self, attr: &mut Attr) {
        if let Some((t, true)) = lock(&self.pending).get(&attr.ino) {
            attr.atime = attr.atime.max(*t);
        }
    }

    /// The MDS answered the update of `ino` to `atime` (or failed it).
    pub(super) fn answered(&self, ino: Ino, atime: Timestamp) {
        let mut pending = lock(&self.pending);
        if pending.get(&ino).is_some_and(|(t, _)| *t == atime) {
            pending.remove(&ino);
        }
    }
}

#[cfg(test)]
mod tests {
    use rustre_proto::msg::{Attr, FileKind, Timestamp};

    use super::*;

    fn ts(sec: i64) -> Timestamp {
        Timestamp { sec, nsec: 0 }
    }

    fn attr(atime: i64, mtime: i64) -> Attr {
        Attr {
            ino: 7,
            kind: FileKind::File,
            perm: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            size: 0,
            atime: ts(atime),
            mtime: ts(mtime),
            ctime: ts(mtime),
            rdev: 0,
            layout: None,
            truncate_version: 0,
            acl: None,
            project: 0,
            inline: false,
        }
    }

    fn mode(rule: AtimeRule, dirs: bool) -> AtimeMode {
        AtimeMode { rule, dirs }
    }

    #[tokio::test]
    async fn relatime_moves_once_per_open_and_shows_the_value_until_answered() {
        let a = Atimes::default();
        assert_eq!(a.mode(), AtimeMode::NEVER);
        a.set_mode(mode(AtimeRule::Relative, true));
        let f = Via::File(1);
        a.opened(f, Some(&attr(100, 200)));
        // atime before mtime: due, decided here, shown at once.
        let u = a.on_access(f, 7, ts(300), |k| k).unwrap();
        assert_eq!((u.atime, u.relative), (ts(300), false));
        let mut shown = attr(100, 200);
        a.merge(&mut shown);
        assert_eq!(shown.atime, ts(300));
        // Once per open.
        assert_eq!(a.on_access(f, 7, ts(301), |k| k), None);
        a.answered(7, ts(300));
        let mut after = attr(100, 200);
        a.merge(&mut after);
        assert_eq!(after.atime, ts(100));
        // A newer atime within a day: not due; unknown times: the MDS decides, nothing shown.
        a.opened(Via::File(2), Some(&attr(250, 200)));
        assert_eq!(a.on_access(Via::File(2), 7, ts(300), |k| k), None);
        a.opened(Via::Dir(3), None);
        let u = a.on_access(Via::Dir(3), 7, ts(300), |k| k).unwrap();
        assert!(u.relative);
        let mut unknown = attr(100, 200);
        a.merge(&mut unknown);
        assert_eq!(unknown.atime, ts(100));
        // A closed open moves nothing.
        a.closed(f);
        assert_eq!(a.on_access(f, 7, ts(400), |k| k), None);
    }

    #[tokio::test(start_paused = true)]
    async fn noatime_never_nodiratime_skips_dirs_strictatime_every_interval() {
        let a = Atimes::default();
        a.opened(Via::File(1), Some(&attr(100, 50)));
        a.opened(Via::Dir(2), Some(&attr(100, 200)));
        assert_eq!(a.on_access(Via::File(1), 7, ts(300), |k| k), None);
        a.set_mode(mode(AtimeRule::Relative, false));
        assert_eq!(a.on_access(Via::Dir(2), 7, ts(300), |k| k), None);
        a.set_mode(mode(AtimeRule::Strict, false));
        assert!(a.on_access(Via::File(1), 7, ts(300), |k| k).is_some());
        assert_eq!(a.on_access(Via::File(1), 7, ts(300), |k| k), None);
        tokio::time::advance(STRICTATIME_INTERVAL).await;
        let u = a.on_access(Via::File(1), 7, ts(301), |k| k).unwrap();
        assert_eq!((u.atime, u.relative), (ts(301), false));
    }
}
