//! One frame of `rustre top`: a table of nodes (operations, errors and bytes per second)
//! and a table of OSTs (read and write operations and bytes per second, and the totals so
//! far), from two scrapes of every node taken `secs` apart. Every line fits
//! [`super::WIDTH`] columns.

use std::fmt::Write;

use super::parse::{OstTotals, Totals};
use super::{Scrape, WIDTH};

/// Widest node name shown; longer ones are cut from the left (the port stays).
const NODE_COLUMN: usize = 22;

/// Bytes in human units: `0 B`, `12.0 KiB`, `3.4 MiB` ...
pub(crate) fn human(bytes: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes.max(0.0);
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

/// A per-second rate of a counter that went from `a` to `b` (a restart reads as 0).
fn rate(a: f64, b: f64, secs: f64) -> f64 {
    if b >= a && secs > 0.0 {
        (b - a) / secs
    } else {
        0.0
    }
}

/// The node's name cut to the column.
fn node_name(endpoint: &str) -> String {
    let e = endpoint.strip_prefix("http://").unwrap_or(endpoint);
    let e = e.strip_suffix("/metrics").unwrap_or(e);
    let n = e.chars().count();
    if n <= NODE_COLUMN {
        e.to_string()
    } else {
        let tail: String = e.chars().skip(n - (NODE_COLUMN - 1)).collect();
        format!("…{tail}")
    }
}

fn role(t: &Totals) -> String {
    let mut parts = t.services.clone();
    if t.client {
        parts.push("client".into());
    }
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

/// The frame for `endpoints`, scraped `before` and `now`, `secs` apart.
pub(crate) fn frame(endpoints: &[String], before: &[Scrape], now: &[Scrape], secs: f64) -> String {
    let mut out = String::new();
    let up = now.iter().filter(|s| s.is_ok()).count();
    let _ = writeln!(
        out,
        "rustre top: {up} of {} nodes answering, rates over {secs:.1} s",
        endpoints.len()
    );
    let _ = writeln!(
        out,
        "{:<22} {:<18} {:>8} {:>6} {:>10} {:>10}",
        "NODE", "ROLE", "OPS/s", "ERR/s", "READ/s", "WRITE/s"
    );
    let mut osts: Vec<(u32, String, OstTotals, OstTotals)> = Vec::new();
    for (i, endpoint) in endpoints.iter().enumerate() {
        let name = node_name(endpoint);
        let t = match &now[i] {
            Ok(t) => t,
            Err(e) => {
                let line = format!("{name:<22} down: {e}");
                let _ = writeln!(out, "{}", line.chars().take(WIDTH).collect::<String>());
                continue;
            }
        };
        let empty = Totals::default();
        let b = before[i].as_ref().unwrap_or(&empty);
        let (mut read, mut written) = (0.0, 0.0);
        for (index, o) in &t.osts {
            let p = b.osts.get(index).copied().unwrap_or_default();
            read += rate(p.read_bytes, o.read_bytes, secs);
            written += rate(p.write_bytes, o.write_bytes, secs);
            osts.push((*index, name.clone(), p, *o));
        }
        // A node serving OSTs shows their bytes; a mount alone, what applications moved.
        if t.osts.is_empty() {
            read = rate(b.client_read, t.client_read, secs);
            written = rate(b.client_written, t.client_written, secs);
        }
        // Requests answered; a mount alone, the calls its client made.
        let ops = if t.services.is_empty() {
            rate(b.client_calls, t.client_calls, secs)
        } else {
            rate(b.server_ops, t.server_ops, secs)
        };
        let mut r = role(t);
        r.truncate(18);
        let _ = writeln!(
            out,
            "{name:<22} {r:<18} {ops:>8.1} {:>6.1} {:>10} {:>10}",
            rate(b.server_errors, t.server_errors, secs),
            human(read),
            human(written)
        );
    }
    if !osts.is_empty() {
        osts.sort_by_key(|o| o.0);
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:>4} {:<22} {:>7} {:>7} {:>10} {:>10} {:>11}",
            "OST", "NODE", "RD/s", "WR/s", "READ/s", "WRITE/s", "WRITTEN"
        );
        for (index, name, p, o) in osts {
            let _ = writeln!(
                out,
                "{index:>4} {name:<22} {:>7.1} {:>7.1} {:>10} {:>10} {:>11}",
                rate(p.reads, o.reads, secs),
                rate(p.writes, o.writes, secs),
                human(rate(p.read_bytes, o.read_bytes, secs)),
                human(rate(p.write_bytes, o.write_bytes, secs)),
                human(o.write_bytes)
            );
        }
    }
    out
}
