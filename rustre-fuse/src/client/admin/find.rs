//! `rustre find`'s tests on an entry, with GNU find's meanings: `-name` (an fnmatch glob on
//! the last component), `-type`, `-size [+-]N[cwbkMG]` (the size rounded *up* to units, so
//! `-size -1M` matches empty files only, as in GNU find), `-mtime [+-]N` (whole days, the
//! fraction dropped), and rustre's own: stripe count, replica count, an OST holding a copy,
//! a stale copy. Every test given must match (an implicit `-a`).

use rustre_proto::msg::{Attr, FileKind, Timestamp};

/// Seconds in find's day.
const DAY_SECS: i64 = 24 * 60 * 60;

/// How a number compares, as find's `+N`, `-N` and `N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    More(u64),
    Less(u64),
    Exactly(u64),
}

impl Cmp {
    fn holds(self, v: u64) -> bool {
        match self {
            Cmp::More(n) => v > n,
            Cmp::Less(n) => v < n,
            Cmp::Exactly(n) => v == n,
        }
    }

    /// `+N`, `-N` or `N`, and what follows the digits.
    fn parse(s: &str) -> Result<(Cmp, &str), String> {
        let (make, rest): (fn(u64) -> Cmp, &str) = match s.as_bytes().first() {
            Some(b'+') => (Cmp::More, &s[1..]),
            Some(b'-') => (Cmp::Less, &s[1..]),
            _ => (Cmp::Exactly, s),
        };
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(format!("{s:?} is not a number"));
        }
        let n = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?} is too large"))?;
        Ok((make(n), &rest[digits..]))
    }
}

/// The tests of one `rustre find`.
#[derive(Debug, Clone, Default)]
pub struct FindFilter {
    /// `-name`: a glob on the last path component.
    pub name: Option<String>,
    /// `-type`: any of these kinds.
    pub kinds: Option<Vec<FileKind>>,
    /// `-size`: the comparison, and the unit in bytes.
    pub size: Option<(Cmp, u64)>,
    /// `-mtime`: days since the last modification.
    pub mtime: Option<Cmp>,
    /// Regular files with this many stripes.
    pub stripe_count: Option<u32>,
    /// Regular files with this many copies of each stripe.
    pub replica_count: Option<u32>,
    /// Regular files with a copy on this OST.
    pub ost: Option<u32>,
    /// Regular files with a stale copy (waiting for resync, or lost).
    pub stale: bool,
    /// `-maxdepth`.
    pub max_depth: Option<u32>,
    /// `-mindepth`.
    pub min_depth: Option<u32>,
}

/// `-type`'s letters, comma-separated as GNU find allows (`f,d`).
pub fn parse_kinds(s: &str) -> Result<Vec<FileKind>, String> {
    s.split(',')
        .map(|t| match t {
            "f" => Ok(FileKind::File),
            "d" => Ok(FileKind::Dir),
            "l" => Ok(FileKind::Symlink),
            "p" => Ok(FileKind::Fifo),
            "s" => Ok(FileKind::Socket),
            "c" => Ok(FileKind::CharDev),
            "b" => Ok(FileKind::BlockDev),
            _ => Err(format!("unknown -type {t:?} (one of f d l p s c b)")),
        })
        .collect()
}

/// `-size`'s argument: `[+-]N` then a unit (`c` bytes, `w` 2 bytes, `b` or none 512-byte
/// blocks, `k` KiB, `M` MiB, `G` GiB).
pub fn parse_size(s: &str) -> Result<(Cmp, u64), String> {
    let (cmp, unit) = Cmp::parse(s)?;
    let bytes = match unit {
        "c" => 1,
        "w" => 2,
        "" | "b" => 512,
        "k" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("unknown -size unit {unit:?} (one of c w b k M G)")),
    };
    Ok((cmp, bytes))
}

/// `-mtime`'s argument: `[+-]N` days.
pub fn parse_days(s: &str) -> Result<Cmp, String> {
    match Cmp::parse(s)? {
        (c, "") => Ok(c),
        (_, rest) => Err(format!("{s:?}: unexpected {rest:?} after the days")),
    }
}

impl FindFilter {
    /// True when the entry `name` at `depth` with attributes `a` passes every test, at
    /// time `now`.
    pub fn matches(&self, name: &str, depth: u32, a: &Attr, now: Timestamp) -> bool {
        if self.min_depth.is_some_and(|d| depth < d) {
            return false;
        }
        if let Some(g) = &self.name {
            if !glob_match(g.as_bytes(), name.as_bytes()) {
                return false;
            }
        }
        if let Some(kinds) = &self.kinds {
            if !kinds.contains(&a.kind) {
                return false;
            }
        }
        if let Some((cmp, unit)) = self.size {
            if !cmp.holds(a.size.div_ceil(unit)) {
                return false;
            }
        }
        if let Some(cmp) = self.mtime {
            // Whole days, the fraction dropped (a future mtime is day 0).
            let days = (now.sec - a.mtime.sec).max(0) / DAY_SECS;
            if !cmp.holds(days as u64) {
                return false;
            }
        }
        self.layout_matches(a)
    }

    /// The layout tests (files without a layout fail any of them).
    fn layout_matches(&self, a: &Attr) -> bool {
        let wants_layout = self.stripe_count.is_some()
            || self.replica_count.is_some()
            || self.ost.is_some()
            || self.stale;
        if !wants_layout {
            return true;
        }
        let Some(l) = &a.layout else { return false };
        self.stripe_count.is_none_or(|n| l.stripe_count() == n)
            && self.replica_count.is_none_or(|n| l.replicas == n)
            && self.ost.is_none_or(|o| l.osts.contains(&o))
            && (!self.stale || !l.stale.is_empty())
    }

    /// True when the walk should list a directory at `depth`.
    pub fn descends(&self, depth: u32) -> bool {
        self.max_depth.is_none_or(|d| depth < d)
    }

    /// True when an entry at `depth` may be printed at all (`-maxdepth`).
    pub fn within_depth(&self, depth: u32) -> bool {
        self.max_depth.is_none_or(|d| depth <= d)
    }
}

/// The last component of a path as find's `-name` sees it (`/` stays `/`; trailing
/// slashes are ignored).
pub fn base_name(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return if path.is_empty() { "" } else { "/" };
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed)
}

/// fnmatch(3) without flags: `*`, `?`, bracket expressions (`[a-z]`, `[!x]`, `[^x]`) and
/// backslash escapes; a leading dot needs no special match (as find's `-name`).
pub fn glob_match(pat: &[u8], s: &[u8]) -> bool {
    // Iterative with one backtrack point for the last `*`: linear in practice.
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, next)) = bracket(pat, p, s[i]) {
                        if ok {
                            p = next;
                            i += 1;
                            continue;
                        }
                    } else if s[i] == b'[' {
                        // An unclosed bracket is a literal `[`.
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() && pat[p + 1] == s[i] => {
                    p += 2;
                    i += 1;
                    continue;
                }
                // An escaped character that differs: no match here.
                b'\\' if p + 1 < pat.len() => {}
                c if c == s[i] => {
                    p += 1;
                    i += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// The bracket expression starting at `pat[open]` against `c`: whether it matches, and
/// where the pattern goes on; `None` when it is not closed.
fn bracket(pat: &[u8], open: usize, c: u8) -> Option<(bool, usize)> {
    let mut j = open + 1;
    let negate = matches!(pat.get(j), Some(b'!' | b'^'));
    if negate {
        j += 1;
    }
    let mut matched = false;
    let mut first = true;
    while j < pat.len() {
        let mut lo = pat[j];
        if lo == b']' && !first {
            return Some((matched != negate, j + 1));
        }
        first = false;
        if lo == b'\\' && j + 1 < pat.len() {
            j += 1;
            lo = pat[j];
        }
        if pat.get(j + 1) == Some(&b'-') && pat.get(j + 2).is_some_and(|&h| h != b']') {
            let hi = pat[j + 2];
            matched |= lo <= c && c <= hi;
            j += 3;
        } else {
            matched |= lo == c;
            j += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests;
