//! Runs simulated seeds by hand and prints what they did:
//!
//!     cargo run --release -- --seed 7            # one seed: its trace, then its verdict
//!     cargo run --release -- --seeds 100 --from 1000
//!     cargo run --release -- --seed 7 --bug      # with the injected bug `mark-stale`
//!     cargo run --release -- --seed 7 --bug verifier  # with another (see `Bug::name`)
//!     cargo run --release -- --seed 1 --bug old-version
//!
//! Options: `--ops N` (operations per run), `--no-faults`, `--heavy` (harder faults, see
//! `faults::Severity`), `--quiet` (print only the failures and the summary). Exits 1 if any
//! seed failed, after listing the failed seeds with the command that replays each.
//! `RUST_LOG=rustre=debug` shows the servers' logs.

use rustre_sim::faults::Severity;
use rustre_sim::{run, Bug, Options};

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("off")),
        )
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| -> Option<u64> {
        let i = args.iter().position(|a| a == flag)?;
        match args.get(i + 1).and_then(|v| v.parse().ok()) {
            Some(v) => Some(v),
            None => {
                eprintln!("{flag} needs a number");
                std::process::exit(2);
            }
        }
    };
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if let Some(bad) = args.iter().find(|a| {
        a.starts_with("--")
            && ![
                "--seed",
                "--seeds",
                "--from",
                "--ops",
                "--bug",
                "--no-faults",
                "--heavy",
                "--quiet",
            ]
            .contains(&a.as_str())
    }) {
        eprintln!("unknown option {bad}; see the top of sim/src/main.rs");
        std::process::exit(2);
    }
    let (from, count, one) = match value("--seed") {
        Some(s) => (s, 1, true),
        None => (
            value("--from").unwrap_or(1),
            value("--seeds").unwrap_or(10),
            false,
        ),
    };
    let bug = match args.iter().position(|a| a == "--bug") {
        None => None,
        Some(i) => match args.get(i + 1).filter(|a| !a.starts_with("--")) {
            None => Some(Bug::SkipMarkStale),
            Some(name) => match Bug::named(name) {
                Some(b) => Some(b),
                None => {
                    let names: Vec<_> = Bug::ALL.iter().map(|b| b.name()).collect();
                    eprintln!("--bug {name}: no such bug (one of {names:?})");
                    std::process::exit(2);
                }
            },
        },
    };
    let mut failed = Vec::new();
    for seed in from..from + count {
        let mut opts = Options::seed(seed);
        opts.bug = bug;
        opts.faults = if has("--no-faults") {
            Severity::None
        } else if has("--heavy") {
            Severity::Heavy
        } else {
            Severity::Normal
        };
        if let Some(n) = value("--ops") {
            opts.ops = n as usize;
        }
        let out = run(&opts);
        if one {
            for line in &out.trace {
                println!("{line}");
            }
        }
        if out.violations.is_empty() {
            if !has("--quiet") {
                println!("seed {seed}: ok ({} trace lines)", out.trace.len());
            }
        } else {
            println!("{}", out.report());
            failed.push(out.args);
        }
    }
    if !failed.is_empty() {
        println!(
            "{} of {count} seeds failed; replay each with:",
            failed.len()
        );
        for args in &failed {
            println!("  cd sim && cargo run --release -- {args}");
        }
        std::process::exit(1);
    }
    if has("--quiet") {
        println!("{count} seeds passed");
    }
}
