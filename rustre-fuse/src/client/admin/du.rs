//! `rustre du`'s sums over a [`tree`](super::tree) walk, as GNU du counts them: every entry
//! (directories included) adds its allocated bytes (`st_blocks` × 512, what a mount's stat
//! reports: [`Attr::blocks`]) or, with `apparent`, its size; an inode with several names
//! counts once. Each directory's sum covers everything beneath it.
//!
//! Differences from GNU du on a mount: a file with hard links in several directories counts
//! in the one the walk met first, which is not always the one du's depth-first walk meets
//! first (totals agree; the directories sharing it may not). Allocations are what writers
//! last reported to the MDS: data still in a client's write-back cache counts once written.

use std::collections::HashSet;

use rustre_proto::msg::{Attr, Creds, Ino, STAT_BLOCK_BYTES};
use rustre_proto::Error;

use super::tree::{TreeVisitor, Visit};
use crate::client::Client;

/// One directory's sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuDir {
    /// As the walk printed it (the start path joined with names).
    pub path: String,
    /// Bytes of this directory and everything beneath it.
    pub bytes: u64,
}

/// What [`Client::du`] found.
#[derive(Debug, Clone, Default)]
pub struct DuReport {
    /// Every directory, each after everything beneath it, siblings in name order (GNU du's
    /// order on a mount); the start path last. A start that is not a directory is the only
    /// entry.
    pub dirs: Vec<DuDir>,
    /// Directories that could not be listed, and why.
    pub errors: Vec<(String, Error)>,
}

impl DuReport {
    /// The start path's sum.
    pub fn total(&self) -> u64 {
        self.dirs.last().map_or(0, |d| d.bytes)
    }
}

/// A directory seen so far.
struct Node {
    path: String,
    parent: Option<usize>,
    bytes: u64,
}

struct DuVisitor {
    apparent: bool,
    nodes: Vec<Node>,
    /// Inodes with several names already counted.
    linked: HashSet<Ino>,
    errors: Vec<(String, Error)>,
}

impl DuVisitor {
    fn bytes(&self, a: &Attr) -> u64 {
        if self.apparent {
            a.size
        } else {
            a.blocks().saturating_mul(STAT_BLOCK_BYTES)
        }
    }
}

impl TreeVisitor for DuVisitor {
    fn visit(&mut self, v: &Visit<'_>) -> bool {
        let counted = v.attr.kind == rustre_proto::msg::FileKind::Dir
            || v.attr.nlink <= 1
            || self.linked.insert(v.attr.ino);
        let bytes = if counted { self.bytes(v.attr) } else { 0 };
        match (v.dir, v.parent) {
            (Some(_), _) => self.nodes.push(Node {
                path: v.path.to_string(),
                parent: v.parent,
                bytes,
            }),
            (None, Some(p)) => self.nodes[p].bytes += bytes,
            // A start that is not a directory.
            (None, None) => self.nodes.push(Node {
                path: v.path.to_string(),
                parent: None,
                bytes,
            }),
        }
        true
    }

    fn error(&mut self, path: &str, e: &Error) {
        self.errors.push((path.to_string(), e.clone()));
    }
}

impl Client {
    /// Sums what is under `start` (a path from the cluster root) as `creds` would see it.
    pub async fn du(&self, creds: &Creds, start: &str, apparent: bool) -> Result<DuReport, Error> {
        let mut v = DuVisitor {
            apparent,
            nodes: Vec::new(),
            linked: HashSet::new(),
            errors: Vec::new(),
        };
        self.walk_tree(creds, start, &mut v).await?;
        Ok(DuReport {
            dirs: post_order(v.nodes),
            errors: v.errors,
        })
    }
}

/// The directories' sums (a directory is numbered after its parent, so one backward pass
/// adds each into its parent), listed children first, siblings by name.
fn post_order(mut nodes: Vec<Node>) -> Vec<DuDir> {
    for i in (1..nodes.len()).rev() {
        if let Some(p) = nodes[i].parent {
            nodes[p].bytes += nodes[i].bytes;
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        if let Some(p) = n.parent {
            children[p].push(i);
        }
    }
    let name = |i: usize| {
        let path = nodes[i].path.as_str();
        path.rsplit('/').next().unwrap_or(path).as_bytes()
    };
    for c in children.iter_mut() {
        c.sort_by(|&a, &b| name(a).cmp(name(b)));
    }
    let mut out = Vec::with_capacity(nodes.len());
    if nodes.is_empty() {
        return out;
    }
    // Iterative post-order from the start (node 0): (node, next child to visit).
    let mut stack = vec![(0usize, 0usize)];
    while let Some(&mut (n, ref mut next)) = stack.last_mut() {
        if let Some(&c) = children[n].get(*next) {
            *next += 1;
            stack.push((c, 0));
        } else {
            stack.pop();
            out.push(DuDir {
                path: nodes[n].path.clone(),
                bytes: nodes[n].bytes,
            });
        }
    }
    out
}
