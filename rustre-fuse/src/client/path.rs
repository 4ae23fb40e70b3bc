//! Resolving slash-separated paths (for the CLI, which has no kernel to walk paths for it).

use rustre_proto::msg::{Attr, Creds, FileKind, Ino, ROOT_INO};
use rustre_proto::Error;

use super::Client;

/// Most symlinks followed while resolving one path (as Linux's MAXSYMLINKS).
pub const MAX_SYMLINK_FOLLOWS: usize = 40;

/// Splits an absolute or relative (to the root) path into its components.
pub fn components(path: &str) -> Vec<&str> {
    path.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect()
}

/// Splits a path into its parent's path and its last component.
pub fn split_last(path: &str) -> Result<(String, String), Error> {
    let comps = components(path);
    let (last, parent) = comps
        .split_last()
        .ok_or_else(|| Error::Invalid(format!("{path:?} names the root, not an entry")))?;
    Ok((parent.join("/"), last.to_string()))
}

impl Client {
    /// The inode a path names, following symlinks in every component but (unless `follow`)
    /// the last.
    pub async fn resolve(&self, creds: &Creds, path: &str, follow: bool) -> Result<Attr, Error> {
        let mut pending: Vec<String> = components(path)
            .into_iter()
            .rev()
            .map(String::from)
            .collect();
        let mut stack: Vec<Attr> = vec![self.getattr(creds, ROOT_INO).await?];
        let mut follows = 0;
        while let Some(comp) = pending.pop() {
            let cur = stack.last().expect("root stays");
            if cur.kind != FileKind::Dir {
                return Err(Error::NotDir);
            }
            if comp == ".." {
                if stack.len() > 1 {
                    stack.pop();
                }
                continue;
            }
            let parent: Ino = cur.ino;
            let attr = self.lookup(creds, parent, &comp).await?;
            if attr.kind == FileKind::Symlink && (follow || !pending.is_empty()) {
                follows += 1;
                if follows > MAX_SYMLINK_FOLLOWS {
                    return Err(Error::Loop);
                }
                let target = self.readlink(creds, attr.ino).await?;
                if target.starts_with('/') {
                    stack.truncate(1);
                }
                pending.extend(components(&target).into_iter().rev().map(String::from));
                continue;
            }
            stack.push(attr);
        }
        Ok(stack.pop().expect("non-empty"))
    }

    /// The parent directory's inode and the last component of `path`.
    pub async fn resolve_parent(&self, creds: &Creds, path: &str) -> Result<(Ino, String), Error> {
        let (parent, name) = split_last(path)?;
        let p = self.resolve(creds, &parent, true).await?;
        if p.kind != FileKind::Dir {
            return Err(Error::NotDir);
        }
        Ok((p.ino, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitting() {
        assert_eq!(components("/a//b/./c/"), vec!["a", "b", "c"]);
        assert_eq!(
            split_last("/a/b").unwrap(),
            ("a".to_string(), "b".to_string())
        );
        assert_eq!(split_last("x").unwrap(), (String::new(), "x".to_string()));
        assert!(split_last("/").is_err());
    }
}
