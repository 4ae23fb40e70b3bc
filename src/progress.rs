//! Progress bars of the long commands (`put`, `get`, `fsck`, `scrub`, `evacuate`), with
//! rate and ETA, drawn by indicatif on standard error only when it is a terminal: with
//! output piped or redirected (scripts, tests, `--json`) nothing is drawn at all.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rustre_fuse::client::admin::Progress;

/// How often a bar is redrawn at most, per second.
const REFRESH_PER_SEC: u8 = 10;
/// How often a phase of unknown length ticks.
const SPINNER_TICK: Duration = Duration::from_millis(200);
/// A bar of bytes: done, total, rate, ETA.
const BYTES_TEMPLATE: &str = "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}";
/// Bytes of unknown total: done and rate.
const BYTES_SPINNER_TEMPLATE: &str = "{spinner} {msg} {bytes} {bytes_per_sec} ({elapsed})";
/// A bar of items.
const ITEMS_TEMPLATE: &str = "{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}";
/// A phase of unknown length.
const SPINNER_TEMPLATE: &str = "{spinner} {msg} {pos} ({elapsed})";

/// True when bars are drawn: standard error is a terminal.
fn on_terminal() -> bool {
    std::io::stderr().is_terminal()
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

/// A bar of `total` bytes labelled `what` (0: unknown, a counter); hidden unless standard
/// error is a terminal.
pub(crate) fn bytes(total: u64, what: &str) -> ProgressBar {
    if !on_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(
        Some(total),
        ProgressDrawTarget::stderr_with_hz(REFRESH_PER_SEC),
    );
    if total == 0 {
        // Not a regular file (a pipe): no total to measure against.
        pb.set_style(style(BYTES_SPINNER_TEMPLATE));
        pb.enable_steady_tick(SPINNER_TICK);
    } else {
        pb.set_style(style(BYTES_TEMPLATE));
    }
    pb.set_message(what.to_string());
    pb
}

/// A bar through the phases of an admin command (`rustre_fuse`'s [`Progress`]), prefixed
/// with the command's name; hidden unless standard error is a terminal.
#[derive(Debug)]
pub(crate) struct Phases {
    pb: ProgressBar,
    command: &'static str,
}

impl Phases {
    pub(crate) fn new(command: &'static str) -> Phases {
        let pb = if on_terminal() {
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(REFRESH_PER_SEC))
        } else {
            ProgressBar::hidden()
        };
        Phases { pb, command }
    }

    /// Removes the bar (before the command prints its results).
    pub(crate) fn finish(&self) {
        self.pb.finish_and_clear();
    }
}

impl Progress for Phases {
    fn phase(&self, what: &str, total: u64) {
        if self.pb.is_hidden() {
            return;
        }
        self.pb.reset();
        if total == 0 {
            self.pb.set_length(0);
            self.pb.set_style(style(SPINNER_TEMPLATE));
            self.pb.enable_steady_tick(SPINNER_TICK);
        } else {
            self.pb.disable_steady_tick();
            self.pb.set_length(total);
            self.pb.set_style(style(ITEMS_TEMPLATE));
        }
        self.pb.set_message(format!("{}: {what}", self.command));
    }

    fn advance(&self, n: u64) {
        self.pb.inc(n);
    }
}
