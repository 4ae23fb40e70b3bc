//! `rustre quota set|get|list`: project quotas on directory trees (docs/quotas.md), through
//! the client library, without a mount.

use clap::{Args, Subcommand};
use rustre_proto::msg::quota::{QuotaInfo, QuotaLimits, DEFAULT_GRACE_SECS};

use crate::client_cmds::{connect, my_creds, print_json, Global};

/// `rustre quota ...`.
#[derive(Subcommand, Debug)]
pub(crate) enum QuotaCmd {
    /// Set the quota of a directory: it and everything under it count in it from now on
    /// (what is there already is counted now). A limit of 0 is no limit.
    Set {
        path: String,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show the quota a path counts in (its project's limits and usage).
    Get {
        path: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Show every quota.
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// The limits `quota set` takes.
#[derive(Args, Debug, Clone)]
pub(crate) struct LimitArgs {
    /// Hard limit on bytes (the files' sizes; suffixes K, M, G, T).
    #[arg(long, value_parser = parse_bytes, default_value = "0")]
    bytes: u64,
    /// Hard limit on inodes (files, directories, symlinks, devices).
    #[arg(long, default_value_t = 0)]
    inodes: u64,
    /// Soft limit on bytes: exceeded for at most the grace period.
    #[arg(long, value_parser = parse_bytes, default_value = "0")]
    soft_bytes: u64,
    /// Soft limit on inodes.
    #[arg(long, default_value_t = 0)]
    soft_inodes: u64,
    /// Grace period of the soft limits, in seconds.
    #[arg(long, default_value_t = DEFAULT_GRACE_SECS)]
    grace: u64,
}

/// A byte count with an optional binary suffix (K, M, G, T).
fn parse_bytes(s: &str) -> Result<u64, String> {
    let shift = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => 10,
        Some('M') => 20,
        Some('G') => 30,
        Some('T') => 40,
        _ => 0,
    };
    let num = if shift == 0 { s } else { &s[..s.len() - 1] };
    let n: u64 = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

pub(crate) async fn run(g: &Global, cmd: QuotaCmd) -> Result<(), String> {
    let c = connect(g).await?;
    let creds = my_creds();
    let at = |p: &str| {
        let p = p.to_string();
        move |e: rustre_proto::Error| format!("{p}: {e}")
    };
    let (shown, json, path) = match cmd {
        QuotaCmd::Set { path, limits, json } => {
            let limits = QuotaLimits {
                hard_bytes: limits.bytes,
                soft_bytes: limits.soft_bytes,
                hard_inodes: limits.inodes,
                soft_inodes: limits.soft_inodes,
                grace_secs: limits.grace,
            };
            let dir = c.resolve(&creds, &path, true).await.map_err(at(&path))?;
            let q = c
                .quota_set(&creds, dir.ino, limits)
                .await
                .map_err(at(&path))?;
            (vec![q], json, Some(path))
        }
        QuotaCmd::Get { path, json } => {
            let a = c.resolve(&creds, &path, false).await.map_err(at(&path))?;
            let q = c.quota_get(&creds, a.ino).await.map_err(at(&path))?;
            let Some(q) = q else {
                c.close().await.map_err(|e| e.to_string())?;
                if json {
                    return print_json(&serde_json::json!({"path": path, "quota": null}));
                }
                println!("{path}: no quota");
                return Ok(());
            };
            (vec![q], json, Some(path))
        }
        QuotaCmd::List { json } => {
            let all = c.quota_list(&creds).await.map_err(|e| e.to_string())?;
            (all, json, None)
        }
    };
    c.close().await.map_err(|e| e.to_string())?;
    if json {
        let list: Vec<_> = shown.iter().map(to_json).collect();
        return print_json(&match path {
            Some(p) => serde_json::json!({"path": p, "quota": list[0]}),
            None => serde_json::json!({ "quotas": list }),
        });
    }
    println!(
        "{:>12} {:>14} {:>14} {:>14} {:>10} {:>10} {:>10}  grace",
        "project", "bytes", "soft", "hard", "inodes", "soft", "hard"
    );
    for q in &shown {
        let l = &q.limits;
        println!(
            "{:>12} {:>14} {:>14} {:>14} {:>10} {:>10} {:>10}  {}",
            q.project,
            q.usage.bytes,
            l.soft_bytes,
            l.hard_bytes,
            q.usage.inodes,
            l.soft_inodes,
            l.hard_inodes,
            grace_left(q)
        );
        if q.counting {
            println!(
                "{:>12} still counting (run `quota set` again if no set is running)",
                ""
            );
        }
    }
    Ok(())
}

/// When a soft limit is exceeded: the grace left, or "expired"; "-" otherwise.
fn grace_left(q: &QuotaInfo) -> String {
    let since = match (q.bytes_over_since_ms, q.inodes_over_since_ms) {
        (0, 0) => return "-".into(),
        (0, i) => i,
        (b, 0) => b,
        (b, i) => b.min(i),
    };
    let end = since.saturating_add(q.limits.grace_secs.saturating_mul(1000));
    let now = rustre_proto::host::now_ms();
    if now >= end {
        "expired".into()
    } else {
        format!("{}s", (end - now) / 1000)
    }
}

fn to_json(q: &QuotaInfo) -> serde_json::Value {
    let l = &q.limits;
    serde_json::json!({
        "project": q.project,
        "used_bytes": q.usage.bytes,
        "used_inodes": q.usage.inodes,
        "hard_bytes": l.hard_bytes,
        "soft_bytes": l.soft_bytes,
        "hard_inodes": l.hard_inodes,
        "soft_inodes": l.soft_inodes,
        "grace_secs": l.grace_secs,
        "bytes_over_since_ms": q.bytes_over_since_ms,
        "inodes_over_since_ms": q.inodes_over_since_ms,
        "counting": q.counting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_garbage_and_overflow() {
        assert_eq!(parse_bytes("100M"), Ok(100 << 20));
        assert_eq!(parse_bytes("7"), Ok(7));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert!(parse_bytes("x").is_err());
        assert!(parse_bytes("99999999999T").is_err());
    }
}
