//! O_APPEND through two real mounts of one cluster (docs/mount.md, "Appends"): the MDS
//! hands out where each append lands, so records appended at once by processes on both
//! mounts all land whole, each once, none over another; and a mount whose kernel did not
//! see the other's appends still reads back what it appended where it landed.
//!
//! Needs root, /dev/fuse and python3 (scripts/install-deps.sh); under `CI=true` a missing
//! one is a failure.

mod common;

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Processes appending through each mount.
const WRITERS_PER_MOUNT: usize = 2;
/// Records each writer appends.
const RECORDS_PER_WRITER: usize = 400;
/// Bytes of one record, written by one write(2).
const RECORD_BYTES: usize = 64;
/// Longest the writers may take together.
const WRITERS_WAIT: Duration = Duration::from_secs(180);

/// python3 appending `sys.argv[3]` records to `sys.argv[1]` as writer `sys.argv[2]`: each
/// record is `W<writer> <seq>` padded with dots to 63 bytes and a newline, written by one
/// os.write on a descriptor opened O_WRONLY|O_APPEND.
const APPENDER: &str = r#"
import os, sys
path, writer, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
for seq in range(n):
    head = ("W%s %06d " % (writer, seq)).encode()
    rec = head + b"." * (63 - len(head)) + b"\n"
    assert os.write(fd, rec) == 64, "short write"
os.close(fd)
"#;

/// Why this test cannot run here, if it cannot; under `CI=true`, a panic.
fn unavailable() -> Option<String> {
    fuse_or_tools_unavailable(&["python3"])
}

/// Two mounts of one new cluster (the cluster first: it outlives them).
fn two_mounts() -> (ProcCluster, ForegroundMount, ForegroundMount) {
    let c = ProcCluster::start();
    let (pa, pb) = (c.path("a"), c.path("b"));
    fs::create_dir(&pa).unwrap();
    fs::create_dir(&pb).unwrap();
    let a = ForegroundMount::start(&c.mgs_addr, &pa, "");
    let b = ForegroundMount::start(&c.mgs_addr, &pb, "");
    (c, a, b)
}

fn spawn_appender(file: &Path, writer: usize) -> Child {
    Command::new("python3")
        .args(["-c", APPENDER])
        .arg(file)
        .arg(writer.to_string())
        .arg(RECORDS_PER_WRITER.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3")
}

/// `(writer, seq)` of one whole record of [`APPENDER`]'s, or `None`.
fn parse_record(text: &str) -> Option<(usize, usize)> {
    let body = text.strip_suffix('\n')?;
    let mut parts = body.splitn(3, ' ');
    let writer: usize = parts.next()?.strip_prefix('W')?.parse().ok()?;
    let seq_text = parts.next()?;
    let seq: usize = seq_text.parse().ok()?;
    let pad = parts.next()?;
    let whole = text.len() == RECORD_BYTES
        && seq_text.len() == 6
        && !pad.is_empty()
        && pad.bytes().all(|b| b == b'.');
    whole.then_some((writer, seq))
}

/// Checks that `data` is whole records only, each writer's `0..RECORDS_PER_WRITER` once and
/// in order.
fn check_records(data: &[u8], writers: usize) {
    assert_eq!(
        data.len(),
        writers * RECORDS_PER_WRITER * RECORD_BYTES,
        "records lost or doubled"
    );
    let mut next: HashMap<usize, usize> = HashMap::new();
    for (i, rec) in data.chunks(RECORD_BYTES).enumerate() {
        let text = std::str::from_utf8(rec)
            .unwrap_or_else(|_| panic!("record {i} is not text (torn?): {rec:?}"));
        let (writer, seq) = parse_record(text)
            .unwrap_or_else(|| panic!("record {i} torn or overwritten: {text:?}"));
        let want = next.entry(writer).or_insert(0);
        assert_eq!(seq, *want, "writer {writer}: record {i} out of order");
        *want += 1;
    }
    assert_eq!(next.len(), writers, "a writer's records are missing");
    assert!(next.values().all(|n| *n == RECORDS_PER_WRITER));
}

#[test]
fn appends_from_processes_on_two_mounts_land_whole_and_once() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    let (_c, a, b) = two_mounts();
    fs::write(a.path.join("log"), b"").unwrap();
    let mut writers = Vec::new();
    for (m, mount) in [&a, &b].into_iter().enumerate() {
        for w in 0..WRITERS_PER_MOUNT {
            let id = m * WRITERS_PER_MOUNT + w;
            writers.push((id, spawn_appender(&mount.path.join("log"), id)));
        }
    }
    let start = Instant::now();
    for (id, child) in &mut writers {
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > WRITERS_WAIT {
                let _ = child.kill();
                panic!("writer {id} did not finish within {WRITERS_WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(status.success(), "writer {id}: {status}: {err}");
    }
    eprintln!(
        "{} appends of {RECORD_BYTES} bytes in {:?}",
        writers.len() * RECORDS_PER_WRITER,
        start.elapsed()
    );
    let total = writers.len();
    // Closed everywhere: both mounts read the same whole file (close-to-open).
    check_records(&fs::read(a.path.join("log")).unwrap(), total);
    check_records(&fs::read(b.path.join("log")).unwrap(), total);
}

/// python3 doing `sys.argv[2]` on `sys.argv[1]`: `hold` opens it O_WRONLY|O_APPEND, appends
/// "A1", then for each line on stdin appends the line's text and prints the whole file
/// read through a new descriptor (one line, repr'd); `setfl` opens it O_WRONLY, turns on
/// O_APPEND with fcntl and appends "F".
const HOLDER: &str = r#"
import fcntl, os, sys
path, what = sys.argv[1], sys.argv[2]
if what == "setfl":
    fd = os.open(path, os.O_WRONLY)
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) | os.O_APPEND)
    os.write(fd, b"F")
    os.close(fd)
    sys.exit(0)
fd = os.open(path, os.O_WRONLY | os.O_APPEND)
os.write(fd, b"A1")
print("ready", flush=True)
for line in sys.stdin:
    os.write(fd, line.strip().encode())
    with open(path, "rb") as f:
        print(repr(f.read()), flush=True)
"#;

#[test]
fn a_mount_reads_back_its_append_after_the_other_mount_appended() {
    if let Some(why) = unavailable() {
        eprintln!("skipped: {why}");
        return;
    }
    use std::io::{BufRead, BufReader, Write};
    let (_c, a, b) = two_mounts();
    fs::write(a.path.join("f"), b"").unwrap();
    // A process on a keeps an append descriptor open: a's kernel knows the size it wrote.
    let mut holder = Command::new("python3")
        .args(["-c", HOLDER])
        .arg(a.path.join("f"))
        .arg("hold")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut to = holder.stdin.take().unwrap();
    let mut from = BufReader::new(holder.stdout.take().unwrap());
    let mut line = String::new();
    from.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    // b appends behind a's back.
    let mut w = fs::OpenOptions::new()
        .append(true)
        .open(b.path.join("f"))
        .unwrap();
    w.write_all(b"B1").unwrap();
    drop(w);
    // a appends again through the descriptor it kept, and reads the file through a new one.
    writeln!(to, "A2").unwrap();
    line.clear();
    from.read_line(&mut line).unwrap();
    assert_eq!(line, "b'A1B1A2'\n", "a's append landed at the end b made");
    drop(to);
    assert!(holder.wait().unwrap().success());
    assert_eq!(fs::read(b.path.join("f")).unwrap(), b"A1B1A2");

    // O_APPEND turned on by fcntl after the open counts from the next write on.
    let out = Command::new("python3")
        .args(["-c", HOLDER])
        .arg(a.path.join("f"))
        .arg("setfl")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(fs::read(b.path.join("f")).unwrap(), b"A1B1A2F");
}

/// Appends each client sends in [`two_clients_append_through_the_library_without_overlap`].
const LIBRARY_APPENDS: usize = 150;

/// The same through the client library, two clients of an in-process cluster (no FUSE, so
/// this runs everywhere): concurrent appends tile the file; a client's own unreported
/// non-append write counts in where its next append goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_append_through_the_library_without_overlap() {
    use common::meta_cluster::{connect, root, start};
    use rustre_proto::msg::ROOT_INO;
    let t = start(30_000).await;
    let (c1, c2) = (t.client.clone(), connect(&t.mgs).await);
    let r = root();
    let created = c1
        .create_file(&r, ROOT_INO, "log", 0o644, libc::O_WRONLY, None)
        .await
        .unwrap();
    let ino = created.attr.ino;
    // Client 1 writes 8 bytes without O_APPEND and reports nothing: its append goes after.
    assert_eq!(
        c1.write_file(created.fh, 0, b"<header>"[..].into())
            .await
            .unwrap(),
        8
    );
    let flags = libc::O_WRONLY | libc::O_APPEND;
    let rec = |id: usize, seq: usize| format!("c{id}-{seq:06}\n").into_bytes();
    // Client 1's first append, alone: after its header.
    let h1 = c1.open_file(&r, ino, flags).await.unwrap();
    c1.write_file(h1.fh, 0, rec(1, 0).into()).await.unwrap();
    let f = c1.open_file(&r, ino, libc::O_RDONLY).await.unwrap();
    let back = c1.read_file(f.fh, 0, 64).await.unwrap();
    assert_eq!(&back[..], b"<header>c1-000000\n");
    c1.release_file(f.fh).await.unwrap();
    let mut tasks = Vec::new();
    for (id, c, first) in [(1, c1.clone(), 1), (2, c2.clone(), 0)] {
        let r = r.clone();
        let fh = if id == 1 { Some(h1.fh) } else { None };
        tasks.push(tokio::spawn(async move {
            let fh = match fh {
                Some(fh) => fh,
                None => c.open_file(&r, ino, flags).await.unwrap().fh,
            };
            for seq in first..LIBRARY_APPENDS {
                let n = c.write_file(fh, 0, rec(id, seq).into()).await.unwrap();
                assert_eq!(n, 10);
            }
            c.release_file(fh).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    c1.release_file(created.fh).await.unwrap();
    let f = c2.open_file(&r, ino, libc::O_RDONLY).await.unwrap();
    let size = (8 + 2 * LIBRARY_APPENDS * 10) as u64;
    assert_eq!(f.attr.size, size);
    let data = c2.read_file(f.fh, 0, size as usize).await.unwrap();
    assert_eq!(&data[..8], b"<header>");
    let text = std::str::from_utf8(&data[8..]).unwrap();
    let mut next = [0usize; 2];
    for line in text.lines() {
        let (id, seq) = line.split_once('-').unwrap_or_else(|| panic!("{line:?}"));
        let i = match id {
            "c1" => 0,
            "c2" => 1,
            _ => panic!("torn record {line:?}"),
        };
        assert_eq!(seq.parse::<usize>().unwrap(), next[i], "{line:?}");
        next[i] += 1;
    }
    assert_eq!(next, [LIBRARY_APPENDS; 2]);
    c2.release_file(f.fh).await.unwrap();
}
