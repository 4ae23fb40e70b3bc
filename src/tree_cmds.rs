//! `rustre find` and `rustre du`: the namespace walked at the MDS (no mount), printed as
//! GNU find and du print a mount of the same tree.

use std::io::Write;

use rustre_fuse::client::admin::{
    base_name, parse_days, parse_kinds, parse_size, FindFilter, TreeVisitor, Visit,
};
use rustre_proto::msg::Timestamp;
use rustre_proto::Error;

use crate::client_cmds::{connect, my_creds, Global};

/// `rustre find`'s options, as parsed by clap.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct FindArgs {
    /// Where to start: a path from the cluster root (printed as given, as find does).
    #[arg(default_value = "/")]
    pub path: String,
    /// Entries whose last component matches this glob (`*`, `?`, `[...]`).
    #[arg(long = "name", value_name = "GLOB")]
    pub name: Option<String>,
    /// Entries of these kinds: f d l p s c b, comma-separated.
    #[arg(long = "type", value_name = "KINDS")]
    pub kinds: Option<String>,
    /// Size, rounded up to the unit, more (+N), less (-N) or exactly N units; units c
    /// (bytes), w (2 bytes), b (512 bytes, the default), k, M, G (as GNU find).
    #[arg(long, allow_hyphen_values = true, value_name = "[+-]N[cwbkMG]")]
    pub size: Option<String>,
    /// Modified more (+N), less (-N) or exactly N whole days ago.
    #[arg(long, allow_hyphen_values = true, value_name = "[+-]N")]
    pub mtime: Option<String>,
    /// Descend at most N levels below the start (0: the start only).
    #[arg(long, value_name = "N")]
    pub maxdepth: Option<u32>,
    /// Print nothing above N levels below the start.
    #[arg(long, value_name = "N")]
    pub mindepth: Option<u32>,
    /// Regular files striped over N OSTs.
    #[arg(long, value_name = "N")]
    pub stripe_count: Option<u32>,
    /// Regular files with N copies of each stripe.
    #[arg(long, value_name = "N")]
    pub replica_count: Option<u32>,
    /// Regular files with a copy on OST IDX.
    #[arg(long, value_name = "IDX")]
    pub ost: Option<u32>,
    /// Regular files with a stale copy (waiting for resync, or lost with its disk).
    #[arg(long)]
    pub stale: bool,
    /// End each path with a NUL instead of a newline.
    #[arg(long)]
    pub print0: bool,
}

/// GNU find's single-dash spellings `rustre find` also takes (rewritten to `--` before
/// parsing).
const FIND_GNU_OPTIONS: &[&str] = &[
    "-name",
    "-type",
    "-size",
    "-mtime",
    "-maxdepth",
    "-mindepth",
    "-print0",
    "-print",
];

/// The command line with GNU find's `-name`-style options after `find` spelled `--name`
/// (a bare `-print`, find's default action, is dropped).
pub(crate) fn gnu_find_args(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(at) = args.iter().position(|a| a == "find") else {
        return args;
    };
    let mut out = Vec::with_capacity(args.len());
    let mut value_next = false;
    for (i, a) in args.into_iter().enumerate() {
        let gnu = i > at && !value_next && FIND_GNU_OPTIONS.iter().any(|o| a == *o);
        value_next = gnu && a != "-print0" && a != "-print";
        match a.to_str() {
            Some("-print") if gnu => {}
            Some(o) if gnu => out.push(format!("-{o}").into()),
            _ => out.push(a),
        }
    }
    out
}

impl FindArgs {
    fn filter(&self) -> Result<FindFilter, String> {
        Ok(FindFilter {
            name: self.name.clone(),
            kinds: self.kinds.as_deref().map(parse_kinds).transpose()?,
            size: self.size.as_deref().map(parse_size).transpose()?,
            mtime: self.mtime.as_deref().map(parse_days).transpose()?,
            stripe_count: self.stripe_count,
            replica_count: self.replica_count,
            ost: self.ost,
            stale: self.stale,
            max_depth: self.maxdepth,
            min_depth: self.mindepth,
        })
    }
}

struct Printer<W: Write> {
    filter: FindFilter,
    now: Timestamp,
    out: W,
    end: u8,
    failed: Option<std::io::Error>,
    unlisted: usize,
}

impl<W: Write> TreeVisitor for Printer<W> {
    fn visit(&mut self, v: &Visit<'_>) -> bool {
        if self.failed.is_some() {
            return false;
        }
        if self.filter.within_depth(v.depth)
            && self
                .filter
                .matches(base_name(v.path), v.depth, v.attr, self.now)
        {
            let written = self
                .out
                .write_all(&rustre_proto::raw_names::decode(v.path))
                .and_then(|()| self.out.write_all(&[self.end]));
            if let Err(e) = written {
                self.failed = Some(e);
                return false;
            }
        }
        self.filter.descends(v.depth)
    }

    fn error(&mut self, path: &str, e: &Error) {
        self.unlisted += 1;
        eprintln!("rustre find: '{path}': {e}");
    }
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        sec: d.as_secs() as i64,
        nsec: d.subsec_nanos(),
    }
}

pub(crate) async fn find(g: &Global, args: FindArgs) -> Result<(), String> {
    let filter = args.filter()?;
    let c = connect(g).await?;
    let stdout = std::io::stdout();
    let mut p = Printer {
        filter,
        now: now(),
        out: std::io::BufWriter::new(stdout.lock()),
        end: if args.print0 { 0 } else { b'\n' },
        failed: None,
        unlisted: 0,
    };
    let walked = c.walk_tree(&my_creds(), &args.path, &mut p).await;
    let flushed = p.out.flush();
    let _ = c.close().await;
    walked.map_err(|e| format!("find: '{}': {e}", args.path))?;
    if let Some(e) = p.failed.or(flushed.err()) {
        return Err(format!("find: writing the output: {e}"));
    }
    match p.unlisted {
        0 => Ok(()),
        n => Err(format!("find: {n} directories could not be listed")),
    }
}

/// `rustre du`'s options (`-h` is human-readable, as in du: help is `--help` only).
#[derive(clap::Args, Debug, Clone, Default)]
#[command(disable_help_flag = true)]
pub(crate) struct DuArgs {
    /// Print help.
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Where to start: paths from the cluster root.
    #[arg(default_value = "/")]
    pub paths: Vec<String>,
    /// Print only each start path's total.
    #[arg(short = 's', long)]
    pub summarize: bool,
    /// Sizes as 4.0K, 12M ... (powers of 1024, rounded up, as GNU du -h).
    #[arg(short = 'h', long = "human-readable")]
    pub human: bool,
    /// Sum sizes instead of allocated blocks.
    #[arg(long)]
    pub apparent_size: bool,
    /// Sum sizes and print bytes (--apparent-size in units of 1 byte).
    #[arg(short = 'b', long)]
    pub bytes: bool,
}

/// Bytes as GNU du -h prints them: below 1024 as is; else in K, M, G... with one decimal
/// below 10, rounded up.
pub(crate) fn gnu_human(bytes: u64) -> String {
    if bytes < 1024 {
        return bytes.to_string();
    }
    let b = bytes as u128;
    let mut div: u128 = 1024;
    for unit in ['K', 'M', 'G', 'T', 'P', 'E'] {
        let tenths = (b * 10).div_ceil(div);
        if tenths < 100 {
            return format!("{}.{}{unit}", tenths / 10, tenths % 10);
        }
        let whole = b.div_ceil(div);
        if whole < 1024 || unit == 'E' {
            return format!("{whole}{unit}");
        }
        div *= 1024;
    }
    unreachable!("the loop returns at E")
}

pub(crate) async fn du(g: &Global, args: DuArgs) -> Result<(), String> {
    let c = connect(g).await?;
    let apparent = args.apparent_size || args.bytes;
    let show = |bytes: u64| {
        if args.bytes {
            bytes.to_string()
        } else if args.human {
            gnu_human(bytes)
        } else {
            bytes.div_ceil(1024).to_string()
        }
    };
    let mut unlisted = 0;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for path in &args.paths {
        let report = match c.du(&my_creds(), path, apparent).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("rustre du: cannot access '{path}': {e}");
                unlisted += 1;
                continue;
            }
        };
        for (p, e) in &report.errors {
            eprintln!("rustre du: cannot read directory '{p}': {e}");
        }
        unlisted += report.errors.len();
        let lines = if args.summarize {
            &report.dirs[report.dirs.len().saturating_sub(1)..]
        } else {
            &report.dirs[..]
        };
        for d in lines {
            let path = rustre_proto::raw_names::decode(&d.path);
            write!(out, "{}\t", show(d.bytes))
                .and_then(|()| out.write_all(&path))
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| e.to_string())?;
        }
    }
    out.flush().map_err(|e| e.to_string())?;
    let _ = c.close().await;
    match unlisted {
        0 => Ok(()),
        n => Err(format!("du: {n} paths or directories could not be read")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_match_gnu_du() {
        assert_eq!(gnu_human(0), "0");
        assert_eq!(gnu_human(1023), "1023");
        assert_eq!(gnu_human(4096), "4.0K");
        assert_eq!(gnu_human(4097), "4.1K");
        assert_eq!(gnu_human(10 * 1024), "10K");
        assert_eq!(gnu_human(10 * 1024 - 1), "10K");
        assert_eq!(gnu_human(1024 * 1024 - 1), "1.0M");
        assert_eq!(gnu_human(1536 * 1024), "1.5M");
        assert_eq!(gnu_human(100 << 20), "100M");
    }

    #[test]
    fn gnu_spellings_are_rewritten_after_find_only() {
        let args = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        let got = gnu_find_args(args(&[
            "rustre", "--mgs", "x", "find", "/d", "-name", "-type", "-size", "-1M", "-print0",
            "-print",
        ]));
        assert_eq!(
            got,
            args(&[
                "rustre", "--mgs", "x", "find", "/d", "--name", "-type", "--size", "-1M",
                "--print0"
            ])
        );
        assert_eq!(
            gnu_find_args(args(&["rustre", "-name"])),
            args(&["rustre", "-name"])
        );
    }
}
