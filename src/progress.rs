//! Progress bars of the long commands (`put`, `get`, `fsck`, `scrub`, `evacuate`), with
//! rate and ETA, drawn by indicatif on standard error only when it is a terminal: with
//! output piped or redirected (scripts, tests, `--json`) nothing is drawn at all.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a bar is redrawn at most.
const REFRESH_PER_SEC: u8 = 10;
/// How often a spinner (no known total) ticks.
const SPINNER_TICK: Duration = Duration::from_millis(200);

/// A bar of `total` bytes (`bytes`) or items; hidden unless standard error is a terminal.
pub(crate) fn bar(total: u64, bytes: bool, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(
        Some(total),
        ProgressDrawTarget::stderr_with_hz(REFRESH_PER_SEC),
    );
    let template = if bytes {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"
    } else {
        "{msg} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}"
    };
    pb.set_style(
        ProgressStyle::with_template(template)
            .expect("a valid template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// A counter with no known total (a walk of the namespace): count and rate.
pub(crate) fn spinner(what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb =
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr_with_hz(REFRESH_PER_SEC));
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} {pos} {per_sec} ({elapsed})")
            .expect("a valid template"),
    );
    pb.set_message(what.to_string());
    pb.enable_steady_tick(SPINNER_TICK);
    pb
}
