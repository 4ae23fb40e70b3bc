//! Files of deleted objects, kept empty for new objects to take (`DIR/recycled/`).
//!
//! Allocating an inode costs a file system little until many were freed: ext4 without a
//! journal (the root file system of our machines) then checks each freed inode it meets for
//! a recent deletion, and a new file costs 40-70 us instead of 10 us for a minute after an
//! `rm -rf` of a few thousand files (measured here: 24,000 files made and removed, then
//! 8,000 made). Every file of a rustre cluster is an object file on an OST, so `tar x` after
//! `rm -rf` paid that on every file. A deleted object's file is instead emptied (its blocks
//! freed, its CRC attribute removed) and renamed into the pool, and a new object's file is
//! a pool file renamed into place: no inode is freed or allocated (8.9 us against 41 us in
//! the same test; an OSS write of a new 4 KiB object in a `tar x` right after an `rm -rf`,
//! 187-197 us before, 31-35 us with the pool).
//!
//! A pool file is taken only [`RECYCLE_QUARANTINE`] after it went in, so a read of the
//! deleted object still being sent from its descriptor never sends the bytes of the object
//! that took the file (a deleted object has no reader but a stale one, and the CRCs of its
//! read would not match anyway). The pool holds at most [`RECYCLE_MAX_FILES`] (empty files:
//! inodes only); beyond, deleted files are removed. Any error recycling or taking a file
//! falls back to removing or creating one. Pool files are not objects: nothing lists,
//! scrubs or syncs them, and one found non-empty at start is removed.

use std::collections::VecDeque;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustre_proto::sync::lock;

use super::crcs;

/// The pool's directory under an OST's root.
pub(super) const RECYCLED_DIR: &str = "recycled";
/// Most files the pool keeps (a soft cap: concurrent deletes may pass it by a few).
pub(super) const RECYCLE_MAX_FILES: usize = 65_536;
/// How long a file stays in the pool before a new object may take it.
pub(super) const RECYCLE_QUARANTINE: Duration = Duration::from_secs(1);

/// The pool of one OST.
pub(super) struct Recycled {
    dir: PathBuf,
    state: Mutex<PoolState>,
}

struct PoolState {
    /// Pool files by name, oldest first, with when each went in.
    ready: VecDeque<(u64, Instant)>,
    /// The last name handed out.
    last: u64,
}

impl Recycled {
    /// The pool under `root`, made if missing; what an earlier run left in it is ready at
    /// once (it was emptied before it went in; a file found otherwise is removed).
    pub(super) fn open(root: &Path) -> io::Result<Recycled> {
        let dir = root.join(RECYCLED_DIR);
        std::fs::create_dir_all(&dir)?;
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let name = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok());
            let empty_file = entry
                .metadata()
                .map(|m| m.is_file() && m.len() == 0)
                .unwrap_or(false);
            match name {
                Some(n) if empty_file && names.len() < RECYCLE_MAX_FILES => names.push(n),
                _ => remove_quietly(&entry.path()),
            }
        }
        names.sort_unstable();
        let last = names.last().copied().unwrap_or(0);
        let ready_at = Instant::now().checked_sub(RECYCLE_QUARANTINE);
        let ready_at = ready_at.unwrap_or_else(Instant::now);
        Ok(Recycled {
            dir,
            state: Mutex::new(PoolState {
                ready: names.into_iter().map(|n| (n, ready_at)).collect(),
                last,
            }),
        })
    }

    fn path(&self, name: u64) -> PathBuf {
        self.dir.join(name.to_string())
    }

    /// Files in the pool now.
    pub(super) fn len(&self) -> usize {
        lock(&self.state).ready.len()
    }

    /// Empties the deleted object's file at `path` (the caller holds the object's lock) and
    /// moves it into the pool, by path (three calls; an unlink is one, and this runs beside
    /// an `rm -rf`). False when the pool is full, there is no file, or it could not be
    /// recycled: the caller removes what is there.
    pub(super) fn put(&self, path: &Path) -> bool {
        let name = {
            let mut st = lock(&self.state);
            if st.ready.len() >= RECYCLE_MAX_FILES {
                return false;
            }
            st.last += 1;
            st.last
        };
        let to = self.path(name);
        let moved = c_path(path).and_then(|c| {
            // SAFETY: a NUL-terminated path, and for removexattr a NUL-terminated name.
            cvt(unsafe { libc::truncate(c.as_ptr(), 0) })?;
            match cvt(unsafe { libc::removexattr(c.as_ptr(), crcs::XATTR_NAME.as_ptr()) }) {
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EOPNOTSUPP)) => {}
                other => other?,
            }
            std::fs::rename(path, &to)
        });
        match moved {
            Ok(()) => {
                lock(&self.state).ready.push_back((name, Instant::now()));
                true
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::debug!(object = %path.display(), "object file not recycled: {e}");
                }
                false
            }
        }
    }

    /// Renames a pool file (empty, no attribute) to `path`, where no file may be: true when
    /// one was there to take and now is at `path`.
    pub(super) fn take_to(&self, path: &Path) -> bool {
        let name = {
            let mut st = lock(&self.state);
            match st.ready.front() {
                Some((name, at)) if at.elapsed() >= RECYCLE_QUARANTINE => {
                    let name = *name;
                    st.ready.pop_front();
                    name
                }
                _ => return false,
            }
        };
        let from = self.path(name);
        match rename_noreplace(&from, path) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(pool_file = %from.display(), "pool file not taken: {e}");
                remove_quietly(&from);
                false
            }
        }
    }
}

/// `path` for a system call.
fn c_path(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)
}

/// A system call's 0 or -1 (errno) as a result.
fn cvt(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// rename(2) that fails with EEXIST rather than replace a file at `to`.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (c_path(from)?, c_path(to)?);
    // SAFETY: two NUL-terminated paths, relative to no directory descriptor.
    cvt(unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
}

fn remove_quietly(path: &Path) {
    if let Err(e) = std::fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::debug!(file = %path.display(), "not removed: {e}");
        }
    }
}

impl super::FileStore {
    /// Moves the file at `path` of an object being deleted (the caller holds its lock)
    /// into the pool: false when there is no file there or it was not recycled.
    pub(super) fn recycle(&self, path: &Path) -> bool {
        self.pool.put(path)
    }

    /// Puts a pool file at `path` for a new object (the caller holds its lock): true when
    /// the pool had one ready.
    pub(super) fn take_recycled(&self, path: &Path) -> bool {
        self.pool.take_to(path)
    }

    /// Files in the pool now.
    pub fn recycled_files(&self) -> usize {
        self.pool.len()
    }
}
