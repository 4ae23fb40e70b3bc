//! `copy_file_range(2)` through a real mount, done inside the client (rustre-fuse
//! client/copy.rs): whole files, offsets, a source shorter than asked, two ranges of one
//! file, `cp`; the kernel's own refusals (overlapping ranges, an O_APPEND destination)
//! stay. A second mount reads what was copied. The client's metrics show the copy took no
//! FUSE write (the kernel's fallback writes at most 1 MiB at a time).

mod common;

use std::fs;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;

use common::*;

/// `copy_file_range` of `len` bytes from `src` at `off_in` to `dst` (created if missing) at
/// `off_out`: the bytes copied, or the errno.
fn copy(src: &Path, dst: &Path, off_in: i64, off_out: i64, len: usize) -> Result<usize, i32> {
    let i = fs::File::open(src).unwrap();
    let o = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dst)
        .unwrap();
    copy_fds(&i, &o, off_in, off_out, len)
}

fn copy_fds(
    i: &fs::File,
    o: &fs::File,
    mut off_in: i64,
    mut off_out: i64,
    len: usize,
) -> Result<usize, i32> {
    // SAFETY: both descriptors are open for the call; the offsets are plain integers.
    let n = unsafe {
        libc::copy_file_range(
            i.as_raw_fd(),
            &mut off_in,
            o.as_raw_fd(),
            &mut off_out,
            len,
            0,
        )
    };
    if n < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap())
    } else {
        Ok(n as usize)
    }
}

#[test]
fn copy_file_range_is_done_in_the_client() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let (a, b) = (c.path("a"), c.path("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    let metrics = free_addr();
    let ma = ForegroundMount::start(&c.mgs_addr, &a, &format!("metrics={metrics}"));
    let mb = ForegroundMount::start(&c.mgs_addr, &b, "");
    let src_bytes = random_bytes(9 << 20, 41);
    let (src, dst) = (ma.path.join("src"), ma.path.join("dst"));
    fs::write(&src, &src_bytes).unwrap();
    let writes_before = mount_counter(&metrics, "rustre_client_write_calls_total");

    // Whole file, in as many calls as it takes.
    let mut done = 0;
    while done < src_bytes.len() {
        let n = copy(&src, &dst, done as i64, done as i64, src_bytes.len() - done).unwrap();
        assert!(n > 0, "copy stopped at {done}");
        done += n;
    }
    assert!(fs::read(&dst).unwrap() == src_bytes, "whole copy differs");
    // The client counts its own writes: one per 4 MiB chunk of the copy. The kernel's
    // fallback would have sent at least one FUSE write per MiB (its largest write).
    let writes = mount_counter(&metrics, "rustre_client_write_calls_total") - writes_before;
    assert!(
        writes <= 3.0,
        "{writes} writes for a 9 MiB copy: it went through FUSE writes (the kernel's fallback)"
    );

    // Offsets: a hole before the copied range.
    let part = ma.path.join("part");
    assert_eq!(copy(&src, &part, 1000, 5000, 3 << 20), Ok(3 << 20));
    let got = fs::read(&part).unwrap();
    assert_eq!(got.len(), 5000 + (3 << 20));
    assert!(got[..5000].iter().all(|b| *b == 0));
    assert!(got[5000..] == src_bytes[1000..1000 + (3 << 20)]);

    // Past the source's end: only what is there.
    let tail = ma.path.join("tail");
    let from = src_bytes.len() as i64 - 100;
    assert_eq!(copy(&src, &tail, from, 0, 10 << 20), Ok(100));
    assert!(fs::read(&tail).unwrap() == src_bytes[src_bytes.len() - 100..]);

    // Two ranges of one file; overlapping ones are refused by the kernel.
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&src)
        .unwrap();
    assert_eq!(copy_fds(&f, &f, 0, 12 << 20, 1 << 20), Ok(1 << 20));
    assert_eq!(copy_fds(&f, &f, 0, 1000, 1 << 20), Err(libc::EINVAL));
    drop(f);
    let grown = fs::read(&src).unwrap();
    assert_eq!(grown.len(), 13 << 20);
    assert!(grown[12 << 20..] == src_bytes[..1 << 20]);
    assert!(grown[9 << 20..12 << 20].iter().all(|b| *b == 0));

    // An O_APPEND destination: EBADF, from the kernel.
    let i = fs::File::open(&dst).unwrap();
    let o = fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(ma.path.join("app"))
        .unwrap();
    assert_eq!(copy_fds(&i, &o, 0, 0, 100), Err(libc::EBADF));

    // cp copies with copy_file_range; the other mount reads every copy.
    let cp = Command::new("cp")
        .arg(&dst)
        .arg(ma.path.join("cp"))
        .status()
        .unwrap();
    assert!(cp.success());
    for (name, want) in [
        ("dst", &src_bytes[..]),
        ("cp", &src_bytes[..]),
        ("src", &grown[..]),
    ] {
        let seen = fs::read(mb.path.join(name)).unwrap();
        assert!(seen == want, "{name} as the other mount reads it differs");
    }
}
