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

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::{FileKind, Timestamp};

    fn node(path: &str, parent: Option<usize>, bytes: u64) -> Node {
        Node {
            path: path.into(),
            parent,
            bytes,
        }
    }

    #[test]
    fn sums_go_up_and_children_come_first_by_name() {
        // Numbered in visit order: "b" was met before "a".
        let nodes = vec![
            node("t", None, 1),
            node("t/b", Some(0), 100),
            node("t/a", Some(0), 10),
            node("t/a/c", Some(2), 1000),
        ];
        let got: Vec<(String, u64)> = post_order(nodes)
            .into_iter()
            .map(|d| (d.path, d.bytes))
            .collect();
        let want = [("t/a/c", 1000), ("t/a", 1010), ("t/b", 100), ("t", 1111)];
        let want: Vec<(String, u64)> = want.iter().map(|(p, b)| (p.to_string(), *b)).collect();
        assert_eq!(got, want);
    }

    fn attr(ino: u64, kind: FileKind, nlink: u32, size: u64) -> Attr {
        Attr {
            ino,
            kind,
            perm: 0o644,
            nlink,
            uid: 0,
            gid: 0,
            size,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            rdev: 0,
            layout: None,
            truncate_version: 0,
            acl: None,
            project: 0,
            inline: false,
        }
    }

    #[test]
    fn an_inode_with_several_names_counts_once() {
        let mut v = DuVisitor {
            apparent: true,
            nodes: Vec::new(),
            linked: HashSet::new(),
            errors: Vec::new(),
        };
        let dir = attr(1, FileKind::Dir, 2, 4096);
        let linked = attr(5, FileKind::File, 2, 700);
        let single = attr(6, FileKind::File, 1, 30);
        let visit = |v: &mut DuVisitor, path: &str, a: &Attr, parent, dir| {
            v.visit(&Visit {
                path,
                attr: a,
                depth: 0,
                parent,
                dir,
            });
        };
        visit(&mut v, "t", &dir, None, Some(0));
        visit(&mut v, "t/x", &linked, Some(0), None);
        visit(&mut v, "t/y", &linked, Some(0), None);
        visit(&mut v, "t/z", &single, Some(0), None);
        assert_eq!(post_order(v.nodes)[0].bytes, 4096 + 700 + 30);
    }
}
