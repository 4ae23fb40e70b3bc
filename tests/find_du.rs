//! `rustre find` and `rustre du` against GNU find and du on a mount of the same tree, with
//! real processes: a tree of a few thousand files of mixed sizes, kinds and depths (some
//! striped wider, some replicated, some old), and the same answers from both sides; and,
//! ignored (run by CI's long-run step), the same on a tree of 100,000 files.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use serde_json::Value;

/// Directories per level of the test tree, and its depth.
const FANOUT: usize = 4;
const DEPTH: usize = 3;
/// Regular files in each directory of the tree.
const FILES_PER_DIR: usize = 30;
/// Files in each of the tree's directories with a chosen layout.
const LAYOUT_FILES: usize = 12;
/// Days old the "old" files are made.
const OLD_DAYS: u64 = 10;

/// A size for file `i`: empty, a few bytes, a few KiB, tens of KiB, or about a MiB.
fn size_of(i: usize) -> usize {
    match i % 7 {
        0 => 0,
        1 => 1 + i % 500,
        2 => 4096,
        3 => 5000 + i,
        4 => 70_000 + 13 * i,
        5 => 1 << 20,
        _ => 300 + 3 * i,
    }
}

/// Writes `FILES_PER_DIR` files into `dir` (some old), a symlink, a fifo and a hard link.
fn fill(dir: &Path, seed: usize) -> usize {
    let mut n = 0;
    for i in 0..FILES_PER_DIR {
        let k = seed * FILES_PER_DIR + i;
        let ext = ["dat", "txt", "log"][i % 3];
        let p = dir.join(format!("f{i:02}.{ext}"));
        fs::write(&p, vec![(k % 251) as u8; size_of(k)]).unwrap();
        if k.is_multiple_of(5) {
            let old = SystemTime::now() - Duration::from_secs(OLD_DAYS * 86_400 + 3600);
            fs::File::options()
                .write(true)
                .open(&p)
                .unwrap()
                .set_modified(old)
                .unwrap();
        }
        n += 1;
    }
    std::os::unix::fs::symlink("f00.dat", dir.join("link")).unwrap();
    fs::hard_link(dir.join("f01.txt"), dir.join("hard")).unwrap();
    let fifo = std::ffi::CString::new(dir.join("pipe").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
    n + 3
}

/// Builds the tree under `root`: FANOUT^level directories down to DEPTH, each filled.
fn build_tree(root: &Path) -> usize {
    let mut entries = 0;
    let mut level = vec![root.to_path_buf()];
    let mut seed = 0;
    for _ in 0..DEPTH {
        let mut next = Vec::new();
        for d in &level {
            for j in 0..FANOUT {
                let sub = d.join(format!("d{j}"));
                fs::create_dir(&sub).unwrap();
                entries += 1 + fill(&sub, seed);
                seed += 1;
                next.push(sub);
            }
        }
        level = next;
    }
    entries
}

/// Lines of `out` as a sorted set (both sides list in their own order).
fn lines(out: &str) -> BTreeSet<String> {
    out.lines().map(str::to_string).collect()
}

/// Panics unless `gnu` and `rustre` hold the same lines, showing the first that differ.
fn assert_same(gnu: &BTreeSet<String>, rustre: &BTreeSet<String>, what: &str) {
    let only = |a: &BTreeSet<String>, b: &BTreeSet<String>| -> Vec<String> {
        a.difference(b).take(20).cloned().collect()
    };
    assert!(
        gnu == rustre,
        "{what}: GNU and rustre differ ({} and {} lines); first only in GNU: {:?}; first only in rustre: {:?}",
        gnu.len(),
        rustre.len(),
        only(gnu, rustre),
        only(rustre, gnu)
    );
}

/// GNU find in `mnt` and `rustre find` with the same arguments: the same paths.
fn same_find(mgs: &str, mnt: &Path, args: &[&str]) -> usize {
    let t = Instant::now();
    let gnu = sh(mnt, &format!("find {}", args.join(" ")));
    let gnu_took = t.elapsed();
    let mut ours = vec!["find"];
    ours.extend(args.iter().map(|a| a.trim_matches('\'')));
    let t = Instant::now();
    let rustre = cli_ok(mgs, &ours);
    let rustre_took = t.elapsed();
    let (g, r) = (lines(&gnu), lines(&rustre));
    eprintln!(
        "find {}: {} paths; GNU find {gnu_took:.2?}, rustre find {rustre_took:.2?}",
        args.join(" "),
        g.len()
    );
    assert_same(&g, &r, &format!("find {args:?}"));
    assert_eq!(rustre.lines().count(), r.len(), "a path printed twice");
    g.len()
}

/// GNU du in `mnt` and `rustre du` with the same arguments: the same lines.
fn same_du(mgs: &str, mnt: &Path, args: &[&str]) -> String {
    let t = Instant::now();
    let gnu = sh(mnt, &format!("du {}", args.join(" ")));
    let gnu_took = t.elapsed();
    let mut ours = vec!["du"];
    ours.extend(args);
    let t = Instant::now();
    let rustre = cli_ok(mgs, &ours);
    let rustre_took = t.elapsed();
    eprintln!(
        "du {}: {} lines; GNU du {gnu_took:.2?}, rustre du {rustre_took:.2?}",
        args.join(" "),
        rustre.lines().count()
    );
    assert_same(&lines(&gnu), &lines(&rustre), &format!("du {args:?}"));
    rustre
}

/// Times `f`, for the log.
fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let r = f();
    eprintln!("{what}: {:?}", t.elapsed());
    r
}

#[test]
fn find_and_du_agree_with_gnu_find_and_du_on_a_mount() {
    if let Some(why) = fuse_or_tools_unavailable(&["find", "du"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let mut c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    cli_ok(&m, &["mkdir", "-p", "/t/wide"]);
    cli_ok(&m, &["mkdir", "/t/rep"]);
    cli_ok(&m, &["setstripe", "/t/wide", "-c", "2", "-S", "64K"]);
    cli_ok(&m, &["setstripe", "/t/rep", "-c", "1", "-r", "2"]);
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&m, &mnt, "");
    let t = mnt.join("t");
    let entries = timed("building the tree", || build_tree(&t));
    for (i, sub) in ["wide", "rep"].iter().enumerate() {
        for j in 0..LAYOUT_FILES {
            fs::write(
                t.join(sub).join(format!("g{j}")),
                vec![7u8; 100_000 * (j % 3) + i],
            )
            .unwrap();
        }
    }
    assert!(entries > 2000, "{entries} entries");
    // A fresh mount: what the kernel sees comes from the MDS, as what rustre finds does.
    assert!(mount.unmount());
    let _mount = ForegroundMount::start(&m, &mnt, "");

    let all = same_find(&m, &mnt, &["t"]);
    assert!(all > entries, "{all} paths");
    for args in [
        &["t", "-name", "'*.dat'"][..],
        &["t/d1/", "-type", "d"],
        &["t", "-type", "l"],
        &["t", "-type", "p,l"],
        &["t", "-type", "f", "-size", "+10k"],
        &["t", "-size", "-1M", "-type", "f"],
        &["t", "-size", "8"],
        &["t", "-size", "4096c"],
        &["t", "-mtime", &format!("+{}", OLD_DAYS - 1)],
        &["t", "-mtime", "-1", "-name", "'f0[0-4]*'"],
        &["t", "-maxdepth", "2", "-type", "f"],
        &["t", "-mindepth", "3", "-maxdepth", "3", "-name", "'*.log'"],
        &["t/d0/f00.dat"],
    ] {
        let n = same_find(&m, &mnt, args);
        assert!(n > 0, "find {args:?} matched nothing: a weak test");
    }
    // -print0: the same paths, NUL-terminated.
    let zero = cli_ok(&m, &["find", "t/d0", "-print0"]);
    let gnu = sh(&mnt, "find t/d0 -print0");
    let split = |s: &str| s.split('\0').map(str::to_string).collect::<BTreeSet<_>>();
    assert_eq!(split(&zero), split(&gnu));
    assert!(zero.ends_with('\0') && !zero.contains('\n'));

    // rustre's own tests: layouts as getstripe reports them.
    let wide = lines(&sh(&mnt, "find t/wide -type f"));
    assert_eq!(
        lines(&cli_ok(&m, &["find", "t", "--stripe-count", "2"])),
        wide
    );
    let rep = lines(&sh(&mnt, "find t/rep -type f"));
    assert_eq!(
        lines(&cli_ok(&m, &["find", "t", "--replica-count", "2"])),
        rep
    );
    assert_eq!(rep.len(), LAYOUT_FILES);
    let on_ost0: BTreeSet<String> = wide
        .iter()
        .chain(rep.iter())
        .filter(|p| {
            let v: Value = serde_json::from_str(&cli_ok(&m, &["getstripe", p, "--json"])).unwrap();
            v["layout"]["copies_osts"].to_string().contains('0')
        })
        .cloned()
        .collect();
    let found: BTreeSet<String> = ["t/wide", "t/rep"]
        .iter()
        .flat_map(|d| lines(&cli_ok(&m, &["find", d, "--ost", "0"])))
        .collect();
    assert_eq!(found, on_ost0);
    assert!(cli_ok(&m, &["find", "t", "--stale"]).is_empty());

    // du: every directory, totals, sizes, human sizes, bytes.
    let listing = same_du(&m, &mnt, &["t"]);
    assert!(listing.lines().count() > FANOUT.pow(DEPTH as u32));
    let total = same_du(&m, &mnt, &["-s", "t"]);
    let kib: u64 = total.split('\t').next().unwrap().parse().unwrap();
    assert!(kib > 1000, "{total}");
    same_du(&m, &mnt, &["-s", "--apparent-size", "t"]);
    same_du(&m, &mnt, &["-b", "t/d1"]);
    same_du(&m, &mnt, &["-sh", "t"]);
    same_du(&m, &mnt, &["-h", "t/wide", "t/rep"]);
    same_du(&m, &mnt, &["-s", "t/d0/f05.log"]);

    // A stale copy: an OSS holding a copy of a replicated file dies, a write through the
    // mount marks that copy stale, and --stale finds that file only.
    let victim = "t/rep/g1";
    let v: Value = serde_json::from_str(&cli_ok(&m, &["getstripe", victim, "--json"])).unwrap();
    let ost = v["layout"]["copies_osts"][1][0].as_u64().unwrap() as usize;
    c.kill_oss(ost);
    fs::write(mnt.join(victim), vec![9u8; 5000]).unwrap();
    assert!(
        wait_until(Duration::from_secs(20), || {
            cli_ok(&m, &["find", "t", "--stale"]) == format!("{victim}\n")
        }),
        "{}",
        cli_ok(&m, &["find", "t", "--stale"])
    );

    // Errors: a missing start fails with find's message; the others keep going.
    let out = cli(&m, &["find", "t/nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
}

/// The 100,000-file tree: `BIG_WORKERS` threads, each making `BIG_DIRS` directories (under
/// `BIG_GROUPS` groups of its own) of `BIG_FILES` files. More threads than cores: each waits
/// on FUSE round trips (debug build on 2 cores: 16 threads 32 s, 8 threads 36 s).
const BIG_WORKERS: usize = 16;
const BIG_GROUPS: usize = 5;
const BIG_DIRS: usize = 25;
const BIG_FILES: usize = 250;
/// One file in `DATA_EVERY` is written (a few bytes to tens of KiB; the others are made
/// empty by mknod, one MDS create each), one in `OLD_EVERY` is made old.
const DATA_EVERY: usize = 40;
const OLD_EVERY: usize = 50;
/// Workers whose directory stripes new files over 2 OSTs.
const WIDE_WORKERS: [usize; 2] = [1, 5];

/// Makes the empty regular file `p` with mknod(2).
fn mknod_file(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), libc::S_IFREG | 0o644, 0) };
    assert_eq!(r, 0, "mknod {p:?}: {}", std::io::Error::last_os_error());
}

/// Sets `p`'s mtime (and atime) to `OLD_DAYS` days and an hour ago, by path.
fn make_old(p: &Path) {
    let old = SystemTime::now() - Duration::from_secs(OLD_DAYS * 86_400 + 3600);
    let secs = old
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t = libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    };
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path and two timespecs.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), [t, t].as_ptr(), 0) };
    assert_eq!(r, 0, "utimensat {p:?}: {}", std::io::Error::last_os_error());
}

/// Worker `w`'s share of the big tree under `root/w{w}` (which exists); returns its files.
fn fill_big(root: &Path, w: usize) -> usize {
    let mut n = 0;
    for d in 0..BIG_DIRS {
        let dir = root
            .join(format!("w{w}"))
            .join(format!("g{}", d % BIG_GROUPS))
            .join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for i in 0..BIG_FILES {
            let k = (w * BIG_DIRS + d) * BIG_FILES + i;
            let p = dir.join(format!("f{i:03}.{}", ["dat", "txt", "log"][k % 3]));
            if k.is_multiple_of(DATA_EVERY) {
                let len = [1 + k % 100, 4096, 3000 + k % 5000, 20_000 + k % 10_000][k / 40 % 4];
                fs::write(&p, vec![(k % 251) as u8; len]).unwrap();
            } else {
                mknod_file(&p);
            }
            if k.is_multiple_of(OLD_EVERY) {
                make_old(&p);
            }
            n += 1;
        }
    }
    n
}

#[test]
#[ignore = "100,000 files through a mount (~65 s in a debug build): scripts/test.sh runs it"]
fn find_and_du_agree_on_a_100k_file_tree() {
    if let Some(why) = fuse_or_tools_unavailable(&["find", "du"]) {
        eprintln!("skipped: {why}");
        return;
    }
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    for w in 0..BIG_WORKERS {
        cli_ok(&m, &["mkdir", "-p", &format!("/big/w{w}")]);
    }
    for w in WIDE_WORKERS {
        cli_ok(&m, &["setstripe", &format!("/big/w{w}"), "-c", "2"]);
    }
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&m, &mnt, "");
    let root = &mnt.join("big");
    let files: usize = timed("building the tree (parallel)", || {
        std::thread::scope(|s| {
            let workers: Vec<_> = (0..BIG_WORKERS)
                .map(|w| s.spawn(move || fill_big(root, w)))
                .collect();
            workers.into_iter().map(|h| h.join().unwrap()).sum()
        })
    });
    assert!(files >= 100_000, "{files} files");
    // Each comparison with a cold kernel cache on the GNU side gets a fresh mount.
    // (The old one is dropped first: its drop unmounts `mnt`.)
    let fresh = |mut old: ForegroundMount| {
        assert!(old.unmount());
        drop(old);
        ForegroundMount::start(&m, &mnt, "")
    };

    mount = fresh(mount);
    let all = same_find(&m, &mnt, &["big"]);
    let dirs = 1 + BIG_WORKERS * (1 + BIG_GROUPS + BIG_DIRS);
    assert_eq!(all, files + dirs);
    mount = fresh(mount);
    let total = same_du(&m, &mnt, &["-s", "big"]);
    let kib: u64 = total.split('\t').next().unwrap().parse().unwrap();
    assert!(kib > 10_000, "{total}");

    let with_data = same_find(&m, &mnt, &["big", "-type", "f", "-size", "+0"]);
    assert_eq!(with_data, files.div_ceil(DATA_EVERY));
    let txt = same_find(&m, &mnt, &["big", "-name", "'*.txt'"]);
    assert_eq!(txt, files / 3);
    let old = same_find(&m, &mnt, &["big", "-mtime", &format!("+{}", OLD_DAYS - 1)]);
    assert_eq!(old, files / OLD_EVERY);
    let bytes = same_du(&m, &mnt, &["-s", "--apparent-size", "-b", "big"]);
    let b: u64 = bytes.split('\t').next().unwrap().parse().unwrap();
    assert!(b > 10_000_000, "{bytes}");
    // Every directory's total (rustre du has no --max-depth: all of them, children first).
    let listing = same_du(&m, &mnt, &["big"]);
    assert_eq!(listing.lines().count(), dirs);

    // rustre's own test: the files of the striped directories, as GNU find lists them.
    let wide: Vec<String> = WIDE_WORKERS.iter().map(|w| format!("big/w{w}")).collect();
    let gnu = lines(&sh(&mnt, &format!("find {} -type f", wide.join(" "))));
    let ours = lines(&cli_ok(&m, &["find", "big", "--stripe-count", "2"]));
    assert_eq!(ours.len(), WIDE_WORKERS.len() * BIG_DIRS * BIG_FILES);
    assert_same(
        &gnu,
        &ours,
        "find --stripe-count 2 (GNU: the striped directories' files)",
    );
    drop(mount);
}
