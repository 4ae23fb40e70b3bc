//! Where the mount daemon's log lines go: standard error while it is in the foreground;
//! once in the background, the file of `-o log=PATH`, else syslog (journald reads
//! /dev/log), else — no /dev/log, as in a container without a syslog daemon —
//! [`FALLBACK_LOG_FILE`] (for a user who may not write it, `$TMPDIR/rustre-mount-UID.log`),
//! so no line is dropped silently. A file receives the lines by
//! becoming the process's standard error, so a panic's message lands there too.

use std::ffi::{CStr, CString};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::Level;
use tracing_subscriber::fmt::MakeWriter;

/// The socket syslog(3) writes to; journald listens there too.
pub(super) const SYSLOG_SOCKET: &str = "/dev/log";
/// Where a background mount without `log=` logs when there is no syslog socket.
pub const FALLBACK_LOG_FILE: &str = "/var/log/rustre-mount.log";
/// The name syslog shows for the daemon's lines.
const SYSLOG_IDENT: &CStr = c"mount.fuse.rustre";
/// Longest log line passed to syslog, in bytes (longer ones are cut).
const MAX_SYSLOG_LINE_BYTES: usize = 8192;

/// True once the lines go to syslog instead of standard error.
static TO_SYSLOG: AtomicBool = AtomicBool::new(false);

/// Where the background daemon's lines go, chosen before it detaches.
#[derive(Debug)]
pub(super) enum Target {
    /// This open file (`log=PATH` or the fallback) becomes standard error.
    File(std::fs::File, PathBuf),
    /// syslog(3), facility daemon.
    Syslog,
}

impl Target {
    /// The target for a background mount: `log` if given (opened now, so a bad path fails
    /// the mount), else syslog if its socket exists, else [`FALLBACK_LOG_FILE`].
    pub(super) fn choose(log: Option<&Path>) -> Result<Target, String> {
        let open = |p: &Path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map(|f| Target::File(f, p.to_path_buf()))
        };
        match log {
            Some(p) => open(p).map_err(|e| format!("log={}: {e}", p.display())),
            None if Path::new(SYSLOG_SOCKET).exists() => Ok(Target::Syslog),
            // A user who may not write /var/log (a mount through fusermount3): a file of
            // their own in the temporary directory.
            None => open(Path::new(FALLBACK_LOG_FILE))
                .or_else(|_| open(&user_fallback()))
                .map_err(|e| {
                    format!(
                        "no {SYSLOG_SOCKET}, and neither {FALLBACK_LOG_FILE} nor {} can be \
                         written ({e}): give -o log=PATH",
                        user_fallback().display()
                    )
                }),
        }
    }

    /// True for a fallback file chosen for want of syslog.
    pub(super) fn is_fallback(&self) -> bool {
        matches!(self, Target::File(_, p) if p == Path::new(FALLBACK_LOG_FILE) || *p == user_fallback())
    }

    /// Where the lines go, for the message printed before detaching.
    pub(super) fn describe(&self) -> String {
        match self {
            Target::File(_, p) => p.display().to_string(),
            Target::Syslog => format!("syslog ({SYSLOG_SOCKET})"),
        }
    }

    /// Sends the log lines there from now on. A file becomes standard error (`null`
    /// otherwise: the descriptors given up by the detaching daemon).
    pub(super) fn apply(&self, null: &std::fs::File) {
        match self {
            Target::File(f, _) => {
                // SAFETY: dup2 onto standard error of a descriptor we own.
                unsafe { libc::dup2(f.as_raw_fd(), 2) };
            }
            Target::Syslog => {
                // SAFETY: openlog keeps the pointer: SYSLOG_IDENT is 'static.
                unsafe {
                    libc::openlog(
                        SYSLOG_IDENT.as_ptr(),
                        libc::LOG_PID | libc::LOG_NDELAY,
                        libc::LOG_DAEMON,
                    )
                };
                TO_SYSLOG.store(true, Ordering::Release);
                // SAFETY: dup2 onto standard error of a descriptor we own.
                unsafe { libc::dup2(null.as_raw_fd(), 2) };
            }
        }
    }
}

/// The fallback of a user who may not write [`FALLBACK_LOG_FILE`]:
/// `$TMPDIR/rustre-mount-UID.log`.
fn user_fallback() -> PathBuf {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    std::env::temp_dir().join(format!("rustre-mount-{uid}.log"))
}

/// The subscriber's writer: standard error, or syslog once [`Target::Syslog`] applies.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sink;

/// One log line on its way: written to standard error at once, or gathered and handed to
/// syslog when dropped.
#[derive(Debug)]
pub(super) enum SinkWriter {
    Stderr,
    Syslog(libc::c_int, Vec<u8>),
}

impl<'a> MakeWriter<'a> for Sink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        self.make_for(Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> SinkWriter {
        self.make_for(*meta.level())
    }
}

impl Sink {
    fn make_for(&self, level: Level) -> SinkWriter {
        if !TO_SYSLOG.load(Ordering::Acquire) {
            return SinkWriter::Stderr;
        }
        let priority = match level {
            Level::ERROR => libc::LOG_ERR,
            Level::WARN => libc::LOG_WARNING,
            Level::INFO => libc::LOG_INFO,
            Level::DEBUG | Level::TRACE => libc::LOG_DEBUG,
        };
        SinkWriter::Syslog(priority, Vec::new())
    }
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            SinkWriter::Stderr => std::io::stderr().write(buf),
            SinkWriter::Syslog(_, line) => {
                line.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            SinkWriter::Stderr => std::io::stderr().flush(),
            SinkWriter::Syslog(..) => Ok(()),
        }
    }
}

impl Drop for SinkWriter {
    fn drop(&mut self) {
        if let SinkWriter::Syslog(priority, line) = self {
            if let Some(c) = syslog_line(line) {
                // SAFETY: a constant format and a valid C string.
                unsafe { libc::syslog(*priority, c"%s".as_ptr(), c.as_ptr()) };
            }
        }
    }
}

/// `line` as syslog takes it: no trailing newline, no NUL, at most
/// [`MAX_SYSLOG_LINE_BYTES`]; `None` when empty.
fn syslog_line(line: &[u8]) -> Option<CString> {
    let mut l: Vec<u8> = line
        .iter()
        .copied()
        .filter(|b| *b != 0)
        .take(MAX_SYSLOG_LINE_BYTES)
        .collect();
    while l.last() == Some(&b'\n') {
        l.pop();
    }
    (!l.is_empty()).then(|| CString::new(l).expect("NULs removed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_lines_lose_their_newline_and_nuls() {
        assert_eq!(syslog_line(b"a\0b\n").unwrap().as_bytes(), b"ab");
        assert!(syslog_line(b"\n").is_none());
        let long = vec![b'x'; MAX_SYSLOG_LINE_BYTES * 2];
        assert_eq!(
            syslog_line(&long).unwrap().as_bytes().len(),
            MAX_SYSLOG_LINE_BYTES
        );
    }

    #[test]
    fn a_given_log_file_is_opened_for_appending() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.log");
        std::fs::write(&p, "old\n").unwrap();
        let t = Target::choose(Some(&p)).unwrap();
        assert_eq!(t.describe(), p.display().to_string());
        let Target::File(mut f, _) = t else {
            panic!("a file target")
        };
        f.write_all(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\nnew\n");
        let bad = dir.path().join("no/such/dir/m.log");
        assert!(Target::choose(Some(&bad)).unwrap_err().starts_with("log="));
    }
}
