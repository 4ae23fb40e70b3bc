//! A program running from the mount is "text busy" as on any Linux file system: every open
//! that would write or truncate it fails with ETXTBSY and changes nothing, so the program
//! keeps running (pjdfstest `open::etxtbsy`; before the fix, `open(O_RDONLY|O_TRUNC)` emptied
//! the file in the OPEN the kernel sent before its own check, and the program crashed).

mod common;

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// Times the program is started and its file opened with O_RDONLY|O_TRUNC at once.
const RACE_ROUNDS: usize = 20;

/// open(2) of `path` with `flags`: the descriptor (closed again) or the errno.
fn open_errno(path: &Path, flags: libc::c_int) -> Result<(), i32> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path; the descriptor is closed at once.
    let fd = unsafe { libc::open(c.as_ptr(), flags) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap());
    }
    // SAFETY: `fd` was just opened by this function.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Copies `sleep` to `path` and makes it executable; returns the original's bytes.
fn install_sleep(path: &Path) -> Vec<u8> {
    let want = fs::read("/usr/bin/sleep").unwrap();
    fs::copy("/usr/bin/sleep", path).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    want
}

#[test]
fn a_running_program_refuses_writes_and_truncation_and_keeps_running() {
    if skip_without_fuse() {
        return;
    }
    let c = ProcCluster::start();
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mount = ForegroundMount::start(&c.mgs_addr, &mnt, "");
    let prog = mount.path.join("prog");
    let want = install_sleep(&prog);

    let mut child = Command::new(&prog).arg("30").spawn().unwrap();
    for flags in [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_RDONLY | libc::O_TRUNC,
        libc::O_WRONLY | libc::O_TRUNC,
    ] {
        assert_eq!(
            open_errno(&prog, flags),
            Err(libc::ETXTBSY),
            "flags {flags:#x}"
        );
    }
    let err = fs::OpenOptions::new().write(true).open(&prog).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ETXTBSY));
    // Nothing was cut, and the program still runs.
    let after = fs::read(&prog).unwrap();
    assert!(
        after == want,
        "the program's bytes after the refusals: {} bytes, {} expected",
        after.len(),
        want.len()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the program died");
    child.kill().unwrap();
    child.wait().unwrap();

    // The race pjdfstest runs into: the check at once, while the loader still reads pages.
    for round in 0..RACE_ROUNDS {
        let p = mount.path.join(format!("race-{round}"));
        install_sleep(&p);
        let mut child = Command::new(&p).arg("30").spawn().unwrap();
        let got = open_errno(&p, libc::O_RDONLY | libc::O_TRUNC);
        let len = fs::metadata(&p).unwrap().len();
        let alive = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(got, Err(libc::ETXTBSY), "round {round}");
        assert_eq!(
            len,
            want.len() as u64,
            "round {round}: size after the refused open"
        );
        assert!(alive, "round {round}: the program ended ({status:?})");
    }

    // Once the program has ended, the same opens write and truncate.
    let deadline = Instant::now() + Duration::from_secs(10);
    while open_errno(&prog, libc::O_RDONLY | libc::O_TRUNC) == Err(libc::ETXTBSY) {
        assert!(
            Instant::now() < deadline,
            "still busy after the program ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        fs::metadata(&prog).unwrap().len(),
        0,
        "O_TRUNC of an idle file"
    );
    fs::write(&prog, b"#!/bin/sh\necho hi\n").unwrap();
    let out = Command::new(&prog).output().unwrap();
    assert_eq!(out.stdout, b"hi\n");
}
