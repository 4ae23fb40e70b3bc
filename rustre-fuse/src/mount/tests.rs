//! Unit tests of the mount module: the helper's arguments and options, refusals of bad
//! input, and mountinfo escaping. Real mounts are tested end to end in tests/mount.rs.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::syscall::escape_mountinfo;
use super::MountArgs;

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

#[test]
fn helper_arguments_as_mount_passes_them() {
    let a = MountArgs::from_helper_args(&os(&[
        "10.0.0.1:9400",
        "/mnt/r",
        "-o",
        "rw,_netdev,allow_other,attr_timeout=2.5,x-systemd.automount,cache_size=64M,threads=1,negative_timeout=0",
        "-n",
    ]))
    .unwrap();
    assert_eq!(a.options.threads, 1);
    assert_eq!(a.options.fuse.negative_ttl, Some(Duration::ZERO));
    assert_eq!(a.source, "10.0.0.1:9400");
    assert!(a.options.allow_other && !a.options.read_only && !a.options.foreground);
    assert_eq!(a.options.fuse.attr_ttl, Duration::from_millis(2500));
    assert_eq!(a.options.fuse.page_cache_bytes, 64 << 20);
    let b = MountArgs::from_helper_args(&os(&[
        "h:1",
        "/m",
        "-oro,cluster=c2,debug,secret_file=/k/s",
    ]))
    .unwrap();
    assert!(b.options.read_only && b.options.debug && b.options.foreground);
    assert_eq!(b.options.cluster, "c2");
    assert_eq!(b.options.secret_file, Path::new("/k/s"));
    // `rustre mount --secret-file F -o secret_file=G`: the option wins.
    let opts = ["secret_file=/g".to_string()];
    let c = MountArgs::new(
        "h:1",
        Path::new("/m"),
        &opts,
        false,
        None,
        Some(Path::new("/f")),
    );
    assert_eq!(c.unwrap().options.secret_file, Path::new("/g"));
    let d = MountArgs::new(
        "h:1",
        Path::new("/m"),
        &[],
        false,
        None,
        Some(Path::new("/f")),
    );
    assert_eq!(d.unwrap().options.secret_file, Path::new("/f"));
}

#[test]
fn bad_input_is_refused() {
    for bad in [
        &["h:1", "/m", "-o", "bogus"][..],
        &["h:1"],
        &[],
        &["h:1", "/m", "-o", "attr_timeout=-1"],
        &["h:1", "/m", "-o", "cache_size=lots"],
        &["h:1", "/m", "-o", "threads=0"],
        &["h:1", "/m", "-o", "threads=1000"],
        &["nohostport", "/m"],
        &["h:1", "/m", "extra"],
        &["h:1", "/m", "-x"],
        &["h:1", "/m", "-t", "nfs"],
    ] {
        assert!(MountArgs::from_helper_args(&os(bad)).is_err(), "{bad:?}");
    }
}

#[test]
fn mountinfo_escapes() {
    assert_eq!(escape_mountinfo("/a b\\c"), "/a\\040b\\134c");
}
