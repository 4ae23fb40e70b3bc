//! Unit tests of find's tests: globs, sizes and days as GNU find reads them.

use super::*;
use rustre_proto::msg::{Layout, ROOT_INO};

#[test]
fn globs_match_as_fnmatch() {
    let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
    assert!(m("*.txt", "a.txt"));
    assert!(m("*.txt", ".txt"));
    assert!(!m("*.txt", "a.txt.bak"));
    assert!(m("a?c", "abc"));
    assert!(!m("a?c", "ac"));
    assert!(m("[a-c]x", "bx"));
    assert!(!m("[!a-c]x", "bx"));
    assert!(m("[^a-c]x", "dx"));
    assert!(m("[]]", "]"));
    assert!(m("\\*", "*"));
    assert!(!m("\\*", "a"));
    assert!(m("*a*b*", "xxaybzz"));
    assert!(!m("*a*b*", "xxbyazz"));
    assert!(m("[unclosed", "[unclosed"));
    assert!(m("*", ""));
    assert!(!m("?", ""));
}

#[test]
fn sizes_round_up_to_their_unit() {
    assert_eq!(parse_size("+10k").unwrap(), (Cmp::More(10), 1024));
    assert_eq!(parse_size("-1M").unwrap(), (Cmp::Less(1), 1 << 20));
    assert_eq!(parse_size("3").unwrap(), (Cmp::Exactly(3), 512));
    assert_eq!(parse_size("7c").unwrap(), (Cmp::Exactly(7), 1));
    assert!(parse_size("1X").is_err());
    assert!(parse_size("k").is_err());
    assert_eq!(parse_days("+2").unwrap(), Cmp::More(2));
    assert!(parse_days("2d").is_err());
    let kinds = parse_kinds("f,d").unwrap();
    assert_eq!(kinds, vec![FileKind::File, FileKind::Dir]);
    assert!(parse_kinds("x").is_err());
}

fn file(size: u64, mtime_sec: i64) -> Attr {
    Attr {
        ino: ROOT_INO + 1,
        kind: FileKind::File,
        perm: 0o644,
        nlink: 1,
        uid: 0,
        gid: 0,
        size,
        atime: Timestamp::default(),
        mtime: Timestamp {
            sec: mtime_sec,
            nsec: 0,
        },
        ctime: Timestamp::default(),
        rdev: 0,
        layout: Some(Layout::striped(1 << 20, vec![1, 2])),
        truncate_version: 0,
        acl: None,
        project: 0,
        inline: false,
    }
}

#[test]
fn filters_follow_gnu_find() {
    let now = Timestamp {
        sec: 10 * DAY_SECS,
        nsec: 0,
    };
    let a = file(1, now.sec - DAY_SECS - 10);
    let f = |filter: FindFilter, a: &Attr| filter.matches("x.dat", 1, a, now);
    // `-size -1M` matches only empty files (1 byte rounds up to 1 MiB).
    let small = FindFilter {
        size: Some(parse_size("-1M").unwrap()),
        ..Default::default()
    };
    assert!(!f(small.clone(), &a));
    assert!(f(small, &file(0, 0)));
    // 1.0001 days old is day 1: `-mtime 1` yes, `+1` and `-1` no.
    for (arg, want) in [("1", true), ("+1", false), ("-1", false), ("+0", true)] {
        let filter = FindFilter {
            mtime: Some(parse_days(arg).unwrap()),
            ..Default::default()
        };
        assert_eq!(f(filter, &a), want, "-mtime {arg}");
    }
    let layout = |stripes, ost| FindFilter {
        stripe_count: stripes,
        ost,
        ..Default::default()
    };
    assert!(f(layout(Some(2), Some(2)), &a));
    assert!(!f(layout(Some(1), None), &a));
    assert!(!f(layout(None, Some(3)), &a));
    let stale = FindFilter {
        stale: true,
        ..Default::default()
    };
    assert!(!f(stale.clone(), &a));
    let mut b = a.clone();
    b.layout.as_mut().unwrap().stale = vec![1];
    assert!(f(stale, &b));
    let named = FindFilter {
        name: Some("*.dat".into()),
        kinds: Some(vec![FileKind::Dir]),
        ..Default::default()
    };
    assert!(!f(named, &a), "a file is not -type d");
    assert_eq!(base_name("a/b/"), "b");
    assert_eq!(base_name("/"), "/");
    assert_eq!(base_name("c"), "c");
}
