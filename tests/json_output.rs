//! `--json` on the commands an operator scripts against (`status`, `df`, `stat`,
//! `getstripe`, `fsck`, `scrub`), with real processes: every output parses, and says what
//! the cluster holds.

mod common;

use std::fs;

use common::*;
use serde_json::Value;

/// Runs `rustre ARGS --json` against `mgs` and parses what it printed.
fn json(mgs: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = cli_ok(mgs, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}):\n{out}"))
}

#[test]
fn every_command_with_json_prints_json_that_says_what_is_there() {
    let c = ProcCluster::start();
    let m = c.mgs_addr.clone();

    let status = json(&m, &["status"]);
    assert_eq!(status["mds"].as_array().unwrap().len(), 1, "{status}");
    let osts = status["osts"].as_array().unwrap();
    assert_eq!(osts.len(), OSS_COUNT, "{status}");
    assert!(osts.iter().all(|o| o["state"] == "up"), "{status}");
    assert!(osts.iter().all(|o| o["size_bytes"].as_u64() > Some(0)));
    assert_eq!(status["resync_stuck"].as_array().unwrap().len(), 0);

    // The file system's row is the sum of the OSTs' (each OST's capacity reaches the map
    // with its heartbeats, so a cluster just up may need a moment).
    let df_adds_up = |df: &Value| {
        let targets = df["targets"].as_array().unwrap();
        let sum: u64 = targets[..OSS_COUNT]
            .iter()
            .map(|t| t["size_bytes"].as_u64().unwrap())
            .sum();
        let fs_row = targets.last().unwrap();
        targets.len() == OSS_COUNT + 1
            && fs_row["target"] == "filesystem"
            && fs_row["size_bytes"].as_u64() == Some(sum)
    };
    assert!(
        wait_until(std::time::Duration::from_secs(10), || df_adds_up(&json(
            &m,
            &["df"]
        ))),
        "{}",
        json(&m, &["df"])
    );

    // A file of 3 MiB in 2 stripes, and a directory with a default layout.
    let local = c.path("local-file");
    fs::write(&local, random_bytes(3 << 20, 7)).unwrap();
    cli_ok(&m, &["mkdir", "/d"]);
    cli_ok(&m, &["setstripe", "/d", "-c", "2", "-S", "1M"]);
    cli_ok(&m, &["put", local.to_str().unwrap(), "/d/f"]);

    let stat = json(&m, &["stat", "/d/f"]);
    assert_eq!(stat["size"].as_u64(), Some(3 << 20), "{stat}");
    assert_eq!(stat["type"], "File");
    assert_eq!(stat["layout"]["stripe_count"].as_u64(), Some(2), "{stat}");
    assert!(stat["mtime"]["sec"].as_i64() > Some(0));
    let file_stripe = json(&m, &["getstripe", "/d/f"]);
    let copies = file_stripe["layout"]["copies_osts"].as_array().unwrap();
    assert_eq!(copies[0].as_array().unwrap().len(), 2, "{file_stripe}");
    let written = file_stripe["layout"]["written_stripes"].as_array().unwrap();
    assert_eq!(written.len(), 2, "{file_stripe}");
    let dir_stripe = json(&m, &["getstripe", "/d"]);
    assert_eq!(
        dir_stripe["default_layout"]["stripe_count"].as_i64(),
        Some(2),
        "{dir_stripe}"
    );

    let fsck = json(&m, &["fsck"]);
    assert_eq!(fsck["clean"], true, "{fsck}");
    assert_eq!(fsck["files"].as_u64(), Some(1), "{fsck}");
    assert_eq!(fsck["osts_up"].as_array().unwrap().len(), OSS_COUNT);

    let ost = copies[0][0].as_u64().unwrap().to_string();
    let scrub = json(&m, &["scrub", &ost]);
    assert!(scrub["objects"].as_u64() >= Some(1), "{scrub}");
    assert_eq!(scrub["bad_objects"].as_array().unwrap().len(), 0, "{scrub}");
}
