//! The namespace walk behind `rustre find` and `rustre du`: every entry under a path, with
//! its attributes and layout, read at the MDS without a mount.
//!
//! The MDS's `Readdir { plus: true }` answers up to [`WALK_PAGE_ENTRIES`] entries of one
//! directory *with* their attributes (layouts included) and a name cookie to resume after,
//! so the walk costs one round trip per page of entries, never one per file. Up to
//! [`WALK_PAGES_IN_FLIGHT`] pages (of different directories, or the next page of one) are
//! asked for at once.
//!
//! Order: a directory is always visited before its entries, but the entries of different
//! directories interleave (their pages arrive in any order), unlike GNU find's depth-first
//! order. A directory that vanishes while the walk runs is skipped silently; one the caller
//! may not list is reported to [`TreeVisitor::error`] and the walk goes on, as find and du do.

use futures::stream::{FuturesUnordered, StreamExt};
use rustre_proto::msg::mds::{DirEntry, MdsOp, MdsResponse, READDIR_MAX_ENTRIES};
use rustre_proto::msg::{Attr, Creds, FileKind, Ino};
use rustre_proto::Error;

use crate::client::Client;

/// Entries asked for per `Readdir` page (the MDS's own cap).
pub const WALK_PAGE_ENTRIES: u32 = READDIR_MAX_ENTRIES;
/// Most directory pages asked for at once.
pub const WALK_PAGES_IN_FLIGHT: usize = 8;
/// Most directories queued but not yet asked for (bounds the queue, not the depth).
pub(super) const WALK_DIRS_QUEUED_MAX: usize = 10_000_000;

/// One entry the walk met.
pub struct Visit<'a> {
    /// The start path as given, joined with the names down to this entry (as GNU find
    /// prints it).
    pub path: &'a str,
    /// The entry's attributes (with its layout, for regular files).
    pub attr: &'a Attr,
    /// 0 for the start path.
    pub depth: u32,
    /// The number of the directory holding the entry (`None` for the start path).
    pub parent: Option<usize>,
    /// Directories: the number this directory goes by in its entries' `parent`. Numbers
    /// count from 0 (the start path, when it is a directory) in the order directories are
    /// visited.
    pub dir: Option<usize>,
}

/// What the walk reports to.
pub trait TreeVisitor {
    /// An entry; return false to not descend into it (directories only).
    fn visit(&mut self, v: &Visit<'_>) -> bool;
    /// A directory (at `path`) that could not be listed.
    fn error(&mut self, path: &str, e: &Error);
}

/// A directory waiting for (more of) its listing.
struct Pending {
    ino: Ino,
    dir: usize,
    depth: u32,
    after: Option<String>,
}

/// `path` joined with `name`, as fts does: one slash between, none doubled after a
/// trailing one.
pub fn join_path(path: &str, name: &str) -> String {
    if path.ends_with('/') {
        format!("{path}{name}")
    } else {
        format!("{path}/{name}")
    }
}

impl Client {
    /// Walks everything under `start` (a path from the cluster root; the start itself
    /// first) as `creds`, calling `visitor` for each entry. Symlinks are not followed, not
    /// even the start (as `find -P` and `du` do).
    pub async fn walk_tree(
        &self,
        creds: &Creds,
        start: &str,
        visitor: &mut dyn TreeVisitor,
    ) -> Result<(), Error> {
        let root = self.resolve(creds, start, false).await?;
        let descend = visitor.visit(&Visit {
            path: start,
            attr: &root,
            depth: 0,
            parent: None,
            dir: (root.kind == FileKind::Dir).then_some(0),
        });
        if root.kind != FileKind::Dir || !descend {
            return Ok(());
        }
        // Paths of the directories by number (entries' paths are built from them).
        let mut paths: Vec<String> = vec![start.to_string()];
        let mut queue: Vec<Pending> = vec![Pending {
            ino: root.ino,
            dir: 0,
            depth: 0,
            after: None,
        }];
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < WALK_PAGES_IN_FLIGHT {
                let Some(p) = queue.pop() else { break };
                in_flight.push(async move {
                    let page = self.list_page(creds, p.ino, p.after.as_deref()).await;
                    (p, page)
                });
            }
            let Some((p, page)) = in_flight.next().await else {
                return Ok(());
            };
            let (entries, eof) = match page {
                Ok(x) => x,
                // Removed while we walked.
                Err(Error::NotFound) if p.after.is_none() => continue,
                Err(e) => {
                    visitor.error(&paths[p.dir], &e);
                    continue;
                }
            };
            if !eof {
                if let Some(last) = entries.last() {
                    queue.push(Pending {
                        after: Some(last.name.clone()),
                        ..p
                    });
                }
            }
            for e in entries {
                let Some(attr) = e.attr else { continue };
                let path = join_path(&paths[p.dir], &e.name);
                let is_dir = e.kind == FileKind::Dir;
                let number = paths.len();
                let descend = visitor.visit(&Visit {
                    path: &path,
                    attr: &attr,
                    depth: p.depth + 1,
                    parent: Some(p.dir),
                    dir: is_dir.then_some(number),
                });
                if is_dir {
                    paths.push(path);
                    if descend {
                        if queue.len() >= WALK_DIRS_QUEUED_MAX {
                            return Err(Error::Invalid("too many directories queued".into()));
                        }
                        queue.push(Pending {
                            ino: e.ino,
                            dir: number,
                            depth: p.depth + 1,
                            after: None,
                        });
                    }
                }
            }
        }
    }

    /// One page of `dir`'s entries after `after`, with attributes and layouts.
    async fn list_page(
        &self,
        creds: &Creds,
        dir: Ino,
        after: Option<&str>,
    ) -> Result<(Vec<DirEntry>, bool), Error> {
        let op = MdsOp::Readdir {
            ino: dir,
            after: after.map(str::to_string),
            limit: WALK_PAGE_ENTRIES,
            plus: true,
        };
        match self.mds(creds, op).await? {
            MdsResponse::Entries { entries, eof } => {
                for e in &entries {
                    if let Some(a) = &e.attr {
                        crate::client::meta_ops::check_layout(a)?;
                    }
                }
                Ok((entries, eof))
            }
            r => Err(crate::client::unexpected(r)),
        }
    }
}
