//! `rustre rebalance [--threshold PCT] [--max-rate MB/s]`: moves objects from the fullest
//! OSTs to the emptiest until every OST is within the threshold of the mean usage, and
//! prints what moved and every OST's usage before and after. The rules live in the client
//! library (`rustre_fuse::client::admin`, `Client::rebalance`; docs/operations.md,
//! "Rebalance").

use rustre_fuse::client::admin::{mean_fraction, spread, OstUsage, RebalanceOptions};

use crate::client_cmds::{connect, human, Global};
use crate::progress::Phases;

/// Bytes of the `MB` of `--max-rate MB/s`.
const MB: f64 = 1e6;

/// `rustre rebalance`: `threshold_pct` percentage points around the mean usage, at most
/// `max_rate_mb` MB/s copied (`None`: unthrottled). Exits non-zero when a file could not be
/// moved or an OST is still outside the threshold.
pub(crate) async fn rebalance(
    g: &Global,
    threshold_pct: f64,
    max_rate_mb: Option<f64>,
) -> Result<(), String> {
    if !(threshold_pct > 0.0 && threshold_pct < 100.0) {
        return Err(format!(
            "--threshold {threshold_pct}: a percentage between 0 and 100"
        ));
    }
    if max_rate_mb.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--max-rate: a positive number of MB/s".into());
    }
    let opts = RebalanceOptions {
        threshold: threshold_pct / 100.0,
        max_rate: max_rate_mb.map(|r| (r * MB) as u64),
    };
    let c = connect(g).await?;
    let bar = Phases::new("rebalance");
    let report = tokio::select! {
        r = c.rebalance(&opts, &bar) => Some(r),
        _ = tokio::signal::ctrl_c() => None,
    };
    bar.finish();
    let Some(report) = report else {
        // The file in progress keeps its layout; a freeze lets its users go at once.
        c.abort_migrations().await;
        c.close().await.map_err(|e| e.to_string())?;
        return Err("interrupted; run it again to go on".into());
    };
    let report = report.map_err(|e| format!("rebalance: {e}"))?;
    for (ino, e) in &report.failed {
        println!("inode {ino}: not moved: {e}");
    }
    println!(
        "rebalance: mean usage {:.1}% before, {:.1}% after; largest distance from it {:.1} \
         -> {:.1} points (threshold {threshold_pct})",
        100.0 * mean_fraction(&report.before),
        100.0 * mean_fraction(&report.after),
        100.0 * spread(&report.before),
        100.0 * spread(&report.after),
    );
    for b in &report.before {
        let a = report.after.iter().find(|a| a.index == b.index);
        println!("{}", ost_line(b, a));
    }
    for a in report
        .after
        .iter()
        .filter(|a| !report.before.iter().any(|b| b.index == a.index))
    {
        println!("OST{:04}  (came up meanwhile) -> {}", a.index, usage(a));
    }
    println!(
        "rebalance: {} files moved ({}) in {} rounds, {} failed; left alone: {} with a copy \
         waiting for resync, {} being migrated already",
        report.moved_files,
        human(report.moved_bytes),
        report.rounds,
        report.failed.len(),
        report.skipped,
        report.busy
    );
    c.close().await.map_err(|e| e.to_string())?;
    if !report.failed.is_empty() {
        return Err(format!(
            "{} files could not be moved (run rebalance again to retry)",
            report.failed.len()
        ));
    }
    if !report.balanced(opts.threshold) {
        return Err(format!(
            "an OST is still {:.1} points from the mean (threshold {threshold_pct}): no \
             further move narrows it (files too large, or too few OSTs up)",
            100.0 * spread(&report.after)
        ));
    }
    println!("rebalance: every OST within {threshold_pct} points of the mean");
    Ok(())
}

/// `OST0003  61.2% (156.7M of 256.0M) -> 40.3% (...)`.
fn ost_line(before: &OstUsage, after: Option<&OstUsage>) -> String {
    let after = after.map_or_else(|| "down now".to_string(), usage);
    format!("OST{:04}  {} -> {after}", before.index, usage(before))
}

fn usage(o: &OstUsage) -> String {
    format!(
        "{:5.1}% ({} of {})",
        100.0 * o.fraction(),
        human(o.used),
        human(o.total)
    )
}
