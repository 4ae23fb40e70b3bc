//! Unit tests of the mount module: the helper's arguments and options, refusals of bad
//! input with readable errors, and mountinfo lookups. Real mounts are tested end to end in
//! tests/mount.rs.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::options::mgs_address;
use super::syscall::{escape_mountinfo, mount_device};
use super::{MountArgs, MountOptions, MAX_CLIENT_THREADS};

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
        &["host:port", "/m"],
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

#[test]
fn option_values_are_parsed_or_refused_with_what_was_expected() {
    let mut o = MountOptions::default();
    o.apply("cache_size=4k,attr_timeout=0.25,entry_timeout=86400")
        .unwrap();
    assert_eq!(o.fuse.page_cache_bytes, 4096);
    assert_eq!(o.fuse.attr_ttl, Duration::from_millis(250));
    assert_eq!(o.fuse.entry_ttl, Duration::from_secs(86_400));
    o.apply("cache_size=3G").unwrap();
    assert_eq!(o.fuse.page_cache_bytes, 3 << 30);
    let max_threads = format!("threads={MAX_CLIENT_THREADS}");
    o.apply(&max_threads).unwrap();
    assert_eq!(o.threads, MAX_CLIENT_THREADS);
    for (bad, message) in [
        (
            "attr_timeout=-1",
            "attr_timeout=-1: expected seconds between 0 and 86400",
        ),
        (
            "entry_timeout=NaN",
            "entry_timeout=NaN: expected seconds between 0 and 86400",
        ),
        (
            "negative_timeout=86401",
            "negative_timeout=86401: expected seconds between 0 and 86400",
        ),
        (
            "cache_size=lots",
            "cache_size=lots: expected a byte count (suffixes K, M, G)",
        ),
        (
            // Overflows u64 once multiplied.
            "cache_size=17179869184G",
            "cache_size=17179869184G: expected a byte count (suffixes K, M, G)",
        ),
        (
            "cache_size=",
            "cache_size=: expected a byte count (suffixes K, M, G)",
        ),
        ("threads=65", "threads=65: expected 1 to 64"),
        ("cluster=", "unknown mount option \"cluster=\""),
        ("ro=1", "unknown mount option \"ro=1\""),
    ] {
        assert_eq!(
            MountOptions::default().apply(bad).unwrap_err(),
            message,
            "{bad}"
        );
    }
}

#[test]
fn mount_device_finds_the_root_mount_and_not_a_plain_directory() {
    let root = mount_device(Path::new("/")).expect("/ is in mountinfo");
    let (major, minor) = root.split_once(':').expect("major:minor");
    assert!(
        major.parse::<u32>().is_ok() && minor.parse::<u32>().is_ok(),
        "{root}"
    );
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("not-a-mount");
    std::fs::create_dir(&plain).unwrap();
    assert_eq!(mount_device(&plain), None);
}

#[test]
fn mountinfo_escapes_tab_and_newline() {
    assert_eq!(
        escape_mountinfo("tab\there\nnewline"),
        "tab\\011here\\012newline"
    );
}

#[test]
fn a_source_without_a_port_names_the_mgs_default_port() {
    assert_eq!(mgs_address("mgs1").unwrap(), "mgs1:9400");
    assert_eq!(mgs_address("10.0.0.1:9500").unwrap(), "10.0.0.1:9500");
    for bad in ["", ":9400", "mgs1:", "mgs1:port", "mgs 1", "h:99999"] {
        let err = mgs_address(bad).unwrap_err();
        assert!(err.contains("HOST[:PORT]"), "{bad:?}: {err}");
    }
}
