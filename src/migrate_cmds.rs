//! `rustre migrate`: files (directories recursively) moved to a new layout online, with a
//! progress bar on a terminal and one line per file that could not be moved. The rules live
//! in the client library (`rustre_fuse::client::admin`, docs/migrate.md).

use rustre_fuse::client::admin::{MigrateTarget, TreeVisitor, Visit};
use rustre_proto::msg::{FileKind, Ino};
use rustre_proto::Error;

use crate::client_cmds::{connect, my_creds, Global};
use crate::progress::Phases;

/// `rustre migrate`'s options, as parsed by clap.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct MigrateArgs {
    /// Files or directories (every regular file under them), as paths from the cluster root.
    #[arg(required = true)]
    pub paths: Vec<String>,
    /// New number of stripes.
    #[arg(short = 'c', long)]
    pub stripe_count: Option<u32>,
    /// New bytes per stripe (suffixes K, M allowed).
    #[arg(short = 'S', long, value_parser = crate::parse_size)]
    pub stripe_size: Option<u32>,
    /// New copies of every stripe, each on its own OST (1..=8).
    #[arg(short = 'r', long)]
    pub replicas: Option<u32>,
    /// Copy 0's OSTs, one per stripe, comma-separated.
    #[arg(short = 'o', long = "ost", value_delimiter = ',')]
    pub osts: Option<Vec<u32>>,
}

/// The regular files a walk meets, with their paths.
#[derive(Default)]
struct Files {
    found: Vec<(String, Ino)>,
    unlisted: Vec<String>,
}

impl TreeVisitor for Files {
    fn visit(&mut self, v: &Visit<'_>) -> bool {
        if v.attr.kind == FileKind::File {
            self.found.push((v.path.to_string(), v.attr.ino));
        }
        true
    }

    fn error(&mut self, path: &str, e: &Error) {
        self.unlisted.push(format!("{path}: {e}"));
    }
}

/// `rustre migrate PATH... [-c N] [-S SIZE] [-r N] [--ost LIST]`: exits non-zero when a
/// file could not be moved (after trying every one).
pub(crate) async fn migrate(g: &Global, args: MigrateArgs) -> Result<(), String> {
    let target = MigrateTarget {
        stripe_size: args.stripe_size,
        stripe_count: args.stripe_count,
        replicas: args.replicas,
        osts: args.osts.clone(),
        slots: None,
    };
    if target == MigrateTarget::default() {
        return Err("give at least one of --stripe-count, --stripe-size, --replicas, --ost".into());
    }
    let c = connect(g).await?;
    let creds = my_creds();
    let mut files = Files::default();
    for p in &args.paths {
        c.walk_tree(&creds, p, &mut files)
            .await
            .map_err(|e| format!("{p}: {e}"))?;
    }
    let bar = Phases::new("migrate");
    let mut failed = files.unlisted.clone();
    let mut moved = 0usize;
    let work = async {
        for (path, ino) in &files.found {
            match c.migrate_file(*ino, &target, &bar).await {
                Ok(_) => moved += 1,
                Err(e) => failed.push(format!("{path}: {e}")),
            }
        }
    };
    let interrupted = tokio::select! {
        _ = work => false,
        _ = tokio::signal::ctrl_c() => true,
    };
    bar.finish();
    if interrupted {
        // The file in progress keeps its layout; a freeze lets its users go at once.
        c.abort_migrations().await;
        c.close().await.map_err(|e| e.to_string())?;
        return Err(format!(
            "interrupted after {moved} files moved; the file in progress keeps its layout"
        ));
    }
    c.close().await.map_err(|e| e.to_string())?;
    for line in &failed {
        println!("{line}");
    }
    println!("migrate: {moved} files moved, {} not", failed.len());
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} files or directories could not be moved",
            failed.len()
        ))
    }
}
