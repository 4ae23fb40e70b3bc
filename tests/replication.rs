//! Losing nothing, with real processes: MGS, MDS and three OSS as separate `rustre`
//! processes on loopback, a real FUSE mount, SIGKILLs, and bytes flipped in object files on
//! disk. The rules under test are in docs/replication.md.

mod common;

use std::fs;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

#[test]
fn sigkill_of_an_oss_under_a_replicated_write_stream_loses_nothing() {
    if skip_without_fuse() {
        return;
    }
    let mut c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/rep", "2");
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut mount = ForegroundMount::start(&m, &mnt, "");

    let chunk = 1 << 20;
    let chunks = 48;
    let data = random_bytes(chunk * chunks, 11);
    let file = mnt.join("rep/stream.bin");
    let mut f = fs::File::create(&file).unwrap();
    let (ino, copy0, copy1) = placement(&m, "/rep/stream.bin");
    assert_ne!(copy0, copy1, "copies on distinct OSTs");
    // Kill the OSS holding copy 0: writes must go on to copy 1 and reads be served there.
    let victim = copy0[0] as usize;
    let mut synced = 0;
    for i in 0..chunks {
        f.write_all(&data[i * chunk..(i + 1) * chunk])
            .unwrap_or_else(|e| panic!("write of chunk {i} failed: {e}"));
        if i % 8 == 7 {
            f.sync_all()
                .unwrap_or_else(|e| panic!("fsync after chunk {i} failed: {e}"));
            synced = (i + 1) * chunk;
        }
        if i == 20 {
            c.kill_oss(victim);
        }
    }
    f.sync_all().expect("final fsync");
    drop(f);
    assert_eq!(synced, data.len());
    let stat = cli_ok(&m, &["stat", "/rep/stream.bin"]);
    assert!(stat.contains("stale slots"), "copy 0 marked stale:\n{stat}");

    // Every fsync'd byte reads back, through the mount with cold caches, with one OSS dead.
    drop_caches();
    assert!(
        fs::read(&file).unwrap() == data,
        "data differs with an OSS down"
    );

    // The OSS returns; resync brings copy 0 up to date and both copies match on disk.
    c.start_oss(victim);
    assert!(
        wait_until(RESYNC_WAIT, || in_sync(&m, "/rep/stream.bin")),
        "copy 0 was not resynced: {}",
        cli_ok(&m, &["stat", "/rep/stream.bin"])
    );
    let a = fs::read(c.object_file(copy0[0], ino, 0)).unwrap();
    let b = fs::read(c.object_file(copy1[0], ino, 0)).unwrap();
    assert_eq!(a.len(), data.len());
    assert!(a == b, "the two copies differ after resync");
    assert!(a == data, "resynced copy differs from what was written");
    assert!(mount.unmount());
    let fsck = cli_ok(&m, &["fsck"]);
    assert!(fsck.contains("fsck: clean"), "{fsck}");
}

/// Flips one byte of `path` at `offset` on disk.
fn flip_byte(path: &Path, offset: u64) {
    let f = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x5a;
    f.write_all_at(&b, offset).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn flipped_bytes_are_served_from_the_other_copy_and_repaired_or_fail_with_eio() {
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/rep", "2");
    let data = random_bytes(3 << 20, 21);
    let src = c.path("src.bin");
    fs::write(&src, &data).unwrap();
    cli_ok(&m, &["put", src.to_str().unwrap(), "/rep/f.bin"]);
    cli_ok(
        &m,
        &[
            "put",
            src.to_str().unwrap(),
            "/single.bin",
            "--stripe-count",
            "1",
        ],
    );
    let (ino, copy0, copy1) = placement(&m, "/rep/f.bin");
    let bad = c.object_file(copy0[0], ino, 0);
    let good = c.object_file(copy1[0], ino, 0);
    flip_byte(&bad, 1_000_000);
    assert!(fs::read(&bad).unwrap() != data);

    // Scrub finds it (and exits non-zero while it is there).
    let scrub = cli(&m, &["scrub", &copy0[0].to_string()]);
    let scrub_out = String::from_utf8_lossy(&scrub.stdout);
    assert!(!scrub.status.success(), "{scrub_out}");
    assert!(
        scrub_out.contains(&format!("object {ino}.0")),
        "{scrub_out}"
    );

    // A read gets the right bytes from the other copy and rewrites the bad block.
    let out = c.path("out.bin");
    cli_ok(&m, &["get", "/rep/f.bin", out.to_str().unwrap()]);
    assert!(fs::read(&out).unwrap() == data, "wrong bytes served");
    assert!(
        wait_until(Duration::from_secs(10), || fs::read(&bad).unwrap() == data),
        "the bad copy was not repaired"
    );
    assert!(fs::read(&good).unwrap() == data);
    cli_ok(&m, &["scrub", &copy0[0].to_string()]);

    // Without another copy the read fails (EIO) rather than return wrong bytes.
    let (single, only, _) = {
        let out = cli_ok(&m, &["stat", "/single.bin"]);
        let ino: u64 = field(&out, "inode").parse().unwrap();
        (ino, numbers(field(&out, "osts")), ())
    };
    flip_byte(&c.object_file(only[0], single, 0), 5);
    let got = cli(&m, &["get", "/single.bin", out.to_str().unwrap()]);
    assert!(
        !got.status.success(),
        "a corrupt unreplicated file was read"
    );
    let err = String::from_utf8_lossy(&got.stderr);
    assert!(err.contains("corrupt"), "{err}");
    if !skip_without_fuse() {
        let mnt = c.path("mnt");
        fs::create_dir(&mnt).unwrap();
        let _mount = ForegroundMount::start(&m, &mnt, "");
        let mut f = fs::File::open(mnt.join("single.bin")).unwrap();
        let mut buf = vec![0u8; 8192];
        let e = f.read(&mut buf).expect_err("read of a corrupt block");
        assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
        // Blocks that are sound still read.
        f.seek(SeekFrom::Start(1 << 20)).unwrap();
        f.read_exact(&mut buf).unwrap();
        assert!(buf[..] == data[1 << 20..(1 << 20) + 8192]);
    }
}

/// Deterministic pseudo-random numbers for the kill schedule (the seed is printed).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn sigkill_of_each_role_at_random_points_keeps_everything_fsynced() {
    if skip_without_fuse() {
        return;
    }
    let seed = std::env::var("RUSTRE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64 | 1);
    eprintln!("kill schedule seed {seed} (replay with RUSTRE_KILL_SEED={seed})");
    let mut rng = Rng(seed);
    let mut c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/w", "2");
    // Round 3 writes files with one copy: a dead OSS is then waited for, not skipped.
    replicated_dir(&m, "/w1", "1");
    let mnt = c.path("mnt");
    fs::create_dir(&mnt).unwrap();
    // Files whose data and name were fsync'd, with their contents.
    let mut fsynced: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    let roles = ["oss", "mds", "mgs", "oss"];
    for round in 0..roles.len() as u64 {
        let mut mount = ForegroundMount::start(&m, &mnt, "");
        let top = if round == 3 { "w1" } else { "w" };
        let dir = mnt.join(format!("{top}/r{round}"));
        fs::create_dir(&dir).unwrap();
        // The workload runs in its own process (a shell loop of `cp` and `sync FILE DIR`),
        // never in a thread of this one: servers are spawned from this process, and a child
        // inherits its open files until exec; closing an inherited file of the mount at exec
        // is a FUSE flush, which would wait for the very MDS being restarted.
        let src = c.path(&format!("src{round}"));
        fs::create_dir(&src).unwrap();
        let bodies: Vec<Vec<u8>> = (0..40u64)
            .map(|i| random_bytes(1 + rng.below(300_000) as usize, seed ^ (round * 100 + i)))
            .collect();
        for (i, body) in bodies.iter().enumerate() {
            fs::write(src.join(format!("f{i}")), body).unwrap();
        }
        let script = format!(
            "for i in $(seq 0 {}); do \
               if cp {src}/f$i {dir}/f$i && sync {dir}/f$i {dir}; then echo ok $i; \
               else echo failed $i >&2; fi; done",
            bodies.len() - 1,
            src = src.display(),
            dir = dir.display(),
        );
        let worker = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(50 + rng.below(700)));
        match roles[round as usize % roles.len()] {
            "oss" => {
                let victim = rng.below(OSS_COUNT as u64) as usize;
                eprintln!("round {round}: SIGKILL OSS {victim}");
                c.kill_oss(victim);
                // One copy only (round 3): down for longer than the MGS's down threshold.
                let down_ms = if round == 3 { 3000 } else { 300 };
                std::thread::sleep(Duration::from_millis(down_ms));
                c.start_oss(victim);
            }
            "mds" => {
                eprintln!("round {round}: SIGKILL MDS");
                c.mds = None;
                c.start_mds();
            }
            _ => {
                eprintln!("round {round}: SIGKILL MGS");
                c.mgs = None;
                c.start_mgs();
            }
        }
        let out = worker.wait_with_output().unwrap();
        let done: Vec<usize> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("ok ")?.parse().ok())
            .collect();
        eprintln!("round {round}: {} files fsync'd", done.len());
        for i in done {
            let rel = dir.join(format!("f{i}"));
            let rel = rel.strip_prefix(&mnt).unwrap().to_path_buf();
            fsynced.push((rel, bodies[i].clone()));
        }
        assert!(mount.unmount(), "unmount after round {round}");
        c.wait_all_up();
    }
    // Every role comes back (an OSS holding the only copy after 3 s), and clients ride
    // through a restart (MDS and data calls retry for 30 s while no server can answer, a dead
    // copy is marked stale): the application saw no error at all.
    assert_eq!(fsynced.len(), 160, "some create/write/fsync failed");
    // Everything fsync'd is there, on a fresh mount with cold caches.
    let mut mount = ForegroundMount::start(&m, &mnt, "");
    drop_caches();
    for (rel, body) in &fsynced {
        let got = fs::read(mnt.join(rel)).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        assert!(got == *body, "{} differs", rel.display());
    }
    assert!(mount.unmount());
    // Resync of whatever went stale, then fsck finds nothing wrong.
    assert!(
        wait_until(RESYNC_WAIT, || {
            fsynced
                .iter()
                .all(|(rel, _)| in_sync(&m, &format!("/{}", rel.display())))
        }),
        "copies were not resynced"
    );
    let fsck = cli(&m, &["fsck"]);
    let out = String::from_utf8_lossy(&fsck.stdout);
    assert!(
        fsck.status.success() && out.contains("fsck: clean"),
        "{out}"
    );
}

#[test]
fn fsck_finds_orphans_overlong_objects_and_differing_copies_and_repairs_them() {
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/rep", "2");
    let data = random_bytes(300_000, 41);
    let src = c.path("src.bin");
    fs::write(&src, &data).unwrap();
    cli_ok(&m, &["put", src.to_str().unwrap(), "/one.bin"]);
    cli_ok(&m, &["put", src.to_str().unwrap(), "/rep/two.bin"]);
    let other = c.path("other.bin");
    fs::write(&other, random_bytes(data.len(), 42)).unwrap();
    cli_ok(&m, &["put", src.to_str().unwrap(), "/rep/three.bin"]);
    cli_ok(&m, &["put", other.to_str().unwrap(), "/rep/four.bin"]);
    let fsck = cli_ok(&m, &["fsck"]);
    assert!(fsck.contains("fsck: clean"), "{fsck}");

    // An object no inode owns, an object longer than its file, a copy cut short.
    let orphan = c.object_file(0, 0xf_ffff, 0);
    fs::write(&orphan, b"nobody's").unwrap();
    let one = cli_ok(&m, &["stat", "/one.bin"]);
    let one_obj = c.object_file(
        numbers(field(&one, "osts"))[0],
        field(&one, "inode").parse().unwrap(),
        0,
    );
    fs::OpenOptions::new()
        .write(true)
        .open(&one_obj)
        .unwrap()
        .set_len(data.len() as u64 + 8192)
        .unwrap();
    let (ino, _, copy1) = placement(&m, "/rep/two.bin");
    let short = c.object_file(copy1[0], ino, 0);
    fs::OpenOptions::new()
        .write(true)
        .open(&short)
        .unwrap()
        .set_len(100_000)
        .unwrap();

    // A copy of equal length holding other (checksum-valid) bytes: four's copy over three's.
    let (ino3, _, three1) = placement(&m, "/rep/three.bin");
    let (ino4, four0, _) = placement(&m, "/rep/four.bin");
    let swapped = c.object_file(three1[0], ino3, 0);
    let from = c.object_file(four0[0], ino4, 0);
    let sum = |p: &Path| PathBuf::from(format!("{}.sum", p.display()));
    fs::write(&swapped, fs::read(&from).unwrap()).unwrap();
    fs::write(sum(&swapped), fs::read(sum(&from)).unwrap()).unwrap();

    let found = cli(&m, &["fsck"]);
    let out = String::from_utf8_lossy(&found.stdout).to_string();
    assert!(!found.status.success(), "{out}");
    assert!(
        out.contains(&format!("orphan object {}.0", 0xf_ffff)),
        "{out}"
    );
    assert!(out.contains("its file says 300000"), "{out}");
    assert!(
        out.contains(&format!("inode {ino}: up-to-date copies differ")),
        "{out}"
    );
    let differs = format!("inode {ino3}: stripe 0: copies in slots [1] differ");
    assert!(out.contains(&differs), "{out}");

    let repaired = cli(&m, &["fsck", "--repair", "--grace", "0"]);
    let out = String::from_utf8_lossy(&repaired.stdout).to_string();
    assert_eq!(out.matches("repaired:").count(), 4, "{out}");
    assert!(!orphan.exists(), "the orphan was not deleted");
    assert_eq!(fs::metadata(&one_obj).unwrap().len(), data.len() as u64);
    assert!(
        wait_until(RESYNC_WAIT, || in_sync(&m, "/rep/two.bin")),
        "the short copy was not resynced"
    );
    assert!(fs::read(&short).unwrap() == data);
    assert!(
        wait_until(RESYNC_WAIT, || in_sync(&m, "/rep/three.bin")),
        "the differing copy was not resynced"
    );
    assert!(fs::read(&swapped).unwrap() == data);
    let fsck = cli_ok(&m, &["fsck"]);
    assert!(fsck.contains("fsck: clean"), "{fsck}");
}

#[test]
fn evacuating_a_dead_ost_restores_every_copy_elsewhere() {
    let mut c = ProcCluster::start();
    let m = c.mgs_addr.clone();
    replicated_dir(&m, "/rep", "2");
    let data = random_bytes(2 << 20, 51);
    let src = c.path("src.bin");
    fs::write(&src, &data).unwrap();
    cli_ok(&m, &["put", src.to_str().unwrap(), "/rep/f.bin"]);
    cli_ok(
        &m,
        &[
            "put",
            src.to_str().unwrap(),
            "/lonely.bin",
            "--stripe-count",
            "1",
        ],
    );
    let (ino, copy0, copy1) = placement(&m, "/rep/f.bin");
    let gone = copy0[0];
    c.kill_oss(gone as usize);
    assert!(
        wait_until(Duration::from_secs(20), || {
            cli_ok(&m, &["status"])
                .lines()
                .any(|l| l.starts_with(&format!("OST{gone:04}")) && l.contains(" down"))
        }),
        "OST {gone} not marked down"
    );
    let lonely_on_gone = {
        let out = cli_ok(&m, &["stat", "/lonely.bin"]);
        numbers(field(&out, "osts"))[0] == gone
    };
    let out = cli(&m, &["evacuate", &gone.to_string()]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("1 files moved"), "{text}");
    // An unreplicated file there cannot be saved, and the command says so.
    assert_eq!(out.status.success(), !lonely_on_gone, "{text}");
    let (_, new0, new1) = placement(&m, "/rep/f.bin");
    assert!(
        !new0.contains(&gone) && !new1.contains(&gone),
        "still on OST {gone}"
    );
    assert_eq!(new1, copy1, "the surviving copy stays where it was");
    assert!(
        wait_until(RESYNC_WAIT, || in_sync(&m, "/rep/f.bin")),
        "the moved copy was not filled"
    );
    assert!(fs::read(c.object_file(new0[0], ino, 0)).unwrap() == data);
    let out_file = c.path("out.bin");
    cli_ok(&m, &["get", "/rep/f.bin", out_file.to_str().unwrap()]);
    assert!(fs::read(&out_file).unwrap() == data);
}
