//! `rustre top`: a live view of operations and bytes per second per node and per OST, read
//! by scraping the metrics endpoints of the nodes (`--metrics-listen`, `-o metrics=`) once a
//! second. Plain text that fits [`WIDTH`] columns, redrawn in place on a terminal.
//!
//! - `mod.rs`: the command: scraping, the loop, the redraw.
//! - `parse.rs`: Prometheus text samples into the totals one node shows ([`parse::Totals`]).
//! - `render.rs`: two scrapes of every node into one frame of text.

mod parse;
mod render;
#[cfg(test)]
mod tests;

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use rustre_proto::metrics::http::scrape;

use parse::Totals;

/// Columns a frame fits in.
pub(crate) const WIDTH: usize = 80;
/// Most endpoints one `rustre top` watches.
pub(crate) const MAX_ENDPOINTS: usize = 256;
/// Shortest refresh interval accepted, in seconds.
const MIN_INTERVAL_SECS: f64 = 0.1;
/// ANSI: cursor home and clear screen.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// What `rustre top` was asked for.
pub(crate) struct TopArgs {
    pub endpoints: Vec<String>,
    pub interval: f64,
    /// Frames to print before exiting (`None`: until interrupted).
    pub iterations: Option<u64>,
}

/// One scrape of one node: its totals, or why there are none.
pub(crate) type Scrape = Result<Totals, String>;

/// Scrapes every endpoint at once; one answer per endpoint, in order.
async fn scrape_all(endpoints: &[String]) -> Vec<Scrape> {
    let tasks: Vec<_> = endpoints
        .iter()
        .map(|e| {
            let e = e.clone();
            tokio::spawn(async move {
                scrape(&e)
                    .await
                    .map(|text| parse::totals(&text))
                    .map_err(|e| e.to_string())
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await.unwrap_or_else(|e| Err(format!("scrape task: {e}"))));
    }
    out
}

/// `rustre top`: prints a frame every `interval` seconds (the first after one interval, as
/// rates need two scrapes).
pub(crate) async fn top(args: TopArgs) -> Result<(), String> {
    if args.endpoints.is_empty() {
        return Err(
            "give the metrics endpoints to watch: rustre top http://HOST:PORT ... (servers' \
             --metrics-listen, mounts' -o metrics=)"
                .into(),
        );
    }
    if args.endpoints.len() > MAX_ENDPOINTS {
        return Err(format!("at most {MAX_ENDPOINTS} endpoints"));
    }
    if !args.interval.is_finite() || args.interval < MIN_INTERVAL_SECS {
        return Err(format!("--interval must be at least {MIN_INTERVAL_SECS} s"));
    }
    for e in &args.endpoints {
        rustre_proto::metrics::http::parse_endpoint(e).map_err(|e| e.to_string())?;
    }
    let interval = Duration::from_secs_f64(args.interval);
    let redraw = std::io::stdout().is_terminal() && args.iterations != Some(1);
    let mut before = scrape_all(&args.endpoints).await;
    let mut taken = Instant::now();
    let mut shown = 0u64;
    while args.iterations.is_none_or(|n| shown < n) {
        tokio::time::sleep(interval.saturating_sub(taken.elapsed())).await;
        let now = scrape_all(&args.endpoints).await;
        let secs = taken.elapsed().as_secs_f64();
        taken = Instant::now();
        let frame = render::frame(&args.endpoints, &before, &now, secs);
        let mut out = std::io::stdout().lock();
        let written = if redraw {
            write!(out, "{CLEAR}{frame}")
        } else {
            writeln!(out, "{frame}")
        };
        written
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
        before = now;
        shown += 1;
    }
    Ok(())
}
