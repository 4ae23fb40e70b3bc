//! Unit tests of the mount module: the helper's arguments and options, refusals of bad
//! input with readable errors, and mountinfo lookups. Real mounts are tested end to end in
//! tests/mount.rs.

use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use super::mountinfo::{escape_mountinfo, mount_device, MountEntry};
use super::options::mgs_address;
use super::{MountArgs, MountOptions, MAX_CLIENT_THREADS};
use crate::client::{AsyncDirops, AtimeMode, AtimeRule};

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
        "-oro,cluster=c2,debug,secret_file=/k/s,admin_secret_file=/k/a",
    ]))
    .unwrap();
    assert_eq!(a.options.admin_secret_file, None);
    assert_eq!(
        b.options.admin_secret_file.as_deref(),
        Some(Path::new("/k/a"))
    );
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
    assert!(
        !o.fuse.writeback_cache,
        "the kernel's write-back cache is opt-in"
    );
    o.apply("writeback_cache").unwrap();
    assert!(o.fuse.writeback_cache);
    o.apply("nowriteback_cache").unwrap();
    assert!(!o.fuse.writeback_cache);
    assert_eq!(
        o.fuse.async_dirops,
        AsyncDirops::Capped,
        "unlinks and renames go ahead only in capped directories unless asked"
    );
    o.apply("async_dirops").unwrap();
    assert_eq!(o.fuse.async_dirops, AsyncDirops::Everywhere);
    o.apply("noasync_dirops").unwrap();
    assert_eq!(o.fuse.async_dirops, AsyncDirops::Off);
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
        (
            "writeback_cache=1",
            "unknown mount option \"writeback_cache=1\"",
        ),
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

#[test]
fn linux_flag_options_set_the_ms_bits_and_the_atime_mode() {
    let mut o = MountOptions::default();
    let f = o.exec_suid_dev_atime;
    assert_eq!(
        f.ms_bits(false),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_RELATIME
    );
    o.apply("suid,dev,noexec,strictatime,nodiratime,sync,ro")
        .unwrap();
    let f = o.exec_suid_dev_atime;
    assert_eq!(
        f.ms_bits(o.read_only),
        libc::MS_RDONLY
            | libc::MS_NOEXEC
            | libc::MS_STRICTATIME
            | libc::MS_NODIRATIME
            | libc::MS_SYNCHRONOUS
    );
    assert_eq!(f.atime_mode(true).rule, AtimeRule::Never, "read-only");
    assert_eq!(
        f.atime_mode(false),
        AtimeMode {
            rule: AtimeRule::Strict,
            dirs: false
        }
    );
    // The last word wins; `atime` only undoes `noatime`.
    o.apply("nosuid,nodev,exec,diratime,async,rw,atime")
        .unwrap();
    assert_eq!(o.exec_suid_dev_atime.atime, AtimeRule::Strict);
    o.apply("noatime").unwrap();
    let bits = o.exec_suid_dev_atime.ms_bits(o.read_only);
    assert_eq!(bits, libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOATIME);
    o.apply("atime").unwrap();
    assert_eq!(o.exec_suid_dev_atime.atime, AtimeRule::Relative);
}

#[test]
fn remount_takes_back_what_mount8_passes_and_fuse_ids_only_with_it() {
    // What mount(8) passes for `mount -o remount,ro MNT` (util-linux 2.38).
    let a = MountArgs::from_helper_args(&os(&[
        "h:1",
        "/m",
        "-o",
        "ro,nosuid,nodev,relatime,remount,user_id=0,group_id=0",
    ]))
    .unwrap();
    assert!(a.options.remount && a.options.read_only);
    let err = MountArgs::from_helper_args(&os(&["h:1", "/m", "-o", "rw,user_id=0"]));
    assert!(err.unwrap_err().contains("user_id=0"), "only with remount");
    for bad in ["remount,bogus", "user_id=x,remount", "nodiratime=1"] {
        let r = MountArgs::from_helper_args(&os(&["h:1", "/m", "-o", bad]));
        assert!(r.is_err(), "{bad}");
    }
}

#[test]
fn mountinfo_lines_give_the_flags_in_force() {
    let e = MountEntry::parse(
        "70 48 0:41 / /mnt/a\\040b ro,nosuid,nodev,noatime,nodiratime shared:5 - fuse.rustre \
         127.0.0.1:9400 rw,user_id=0,group_id=0",
    )
    .unwrap();
    assert_eq!(
        (e.id, e.device.as_str(), e.mountpoint.as_str()),
        (70, "0:41", "/mnt/a\\040b")
    );
    assert_eq!(e.fs_type, "fuse.rustre");
    assert!(e.read_only());
    let f = e.flags();
    assert!(f.nosuid && f.nodev && !f.noexec && f.nodiratime && !f.sync);
    assert_eq!(f.atime, AtimeRule::Never);
    let strict = MountEntry::parse("1 0 0:1 / / rw - ext4 /dev/x ro,sync").unwrap();
    assert!(strict.read_only(), "a read-only superblock");
    assert_eq!(strict.flags().atime, AtimeRule::Strict);
    assert!(strict.flags().sync);
    assert_eq!(MountEntry::parse("garbage"), None);
}

#[test]
fn log_names_the_daemons_log_file_and_config_defaults_come_first() {
    let a = MountArgs::from_helper_args(&os(&["h:1", "/m", "-o", "log=/var/log/r.log"])).unwrap();
    assert_eq!(
        a.options.log_file.as_deref(),
        Some(Path::new("/var/log/r.log"))
    );
    assert!(MountArgs::from_helper_args(&os(&["h:1", "/m", "-o", "log="])).is_err());
    // Defaults (a configuration file's) go first, as `-o` strings: the line's own win.
    let a = MountArgs::from_helper_args(&os(&[
        "-o",
        "cluster=fromfile,noatime",
        "h:1",
        "/m",
        "-o",
        "cluster=fromline",
    ]))
    .unwrap();
    assert_eq!(a.options.cluster, "fromline");
    assert_eq!(a.options.exec_suid_dev_atime.atime, AtimeRule::Never);
}

#[test]
fn metrics_takes_a_host_and_port() {
    let mut o = MountOptions::default();
    assert_eq!(o.metrics, None, "metrics are off unless asked for");
    o.apply("metrics=127.0.0.1:9500").unwrap();
    assert_eq!(o.metrics.as_deref(), Some("127.0.0.1:9500"));
    o.apply("metrics=[::1]:0").unwrap();
    assert_eq!(o.metrics.as_deref(), Some("[::1]:0"));
    for bad in ["metrics", "metrics=", "metrics=host", "metrics=host:port"] {
        let e = MountOptions::default().apply(bad).unwrap_err();
        assert!(e.contains("expected metrics=HOST:PORT"), "{bad}: {e}");
    }
}
