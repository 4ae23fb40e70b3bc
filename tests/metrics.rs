//! Prometheus metrics and `rustre top` with real processes and a real mount: every role
//! (`--metrics-listen`) and a mount (`-o metrics=`) serve text `promtool check metrics`
//! accepts; after 64 MiB written to a 2-stripe file through the mount, the OSTs' write-byte
//! counters add up to it and the mount's counters moved by as much; `rustre top --once`
//! shows a row per OST. Needs root, /dev/fuse and promtool (Debian's `prometheus`,
//! scripts/install-deps.sh); under `CI=true` their absence fails the tests.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Bytes the workload writes.
const WORKLOAD_BYTES: u64 = 64 << 20;
/// How far a byte counter may be from what the workload implies (1%).
const TOLERANCE: f64 = 0.01;
/// Longest wait for a node to come up or a counter to settle.
const WAIT: Duration = Duration::from_secs(30);
/// OSS processes (one OST each) of the cluster.
const OSTS: usize = 2;

/// `GET http://addr/metrics`: the body, or why not.
fn scrape(addr: &str) -> Result<String, String> {
    let mut s = TcpStream::connect(addr).map_err(|e| format!("{addr}: {e}"))?;
    s.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).map_err(|e| e.to_string())?;
    let (head, body) = raw.split_once("\r\n\r\n").ok_or("not HTTP")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.to_string());
    }
    assert!(
        head.contains("text/plain; version=0.0.4"),
        "not the Prometheus text format: {head}"
    );
    Ok(body.to_string())
}

/// [`scrape`] that must succeed (retried while the endpoint comes up).
fn scrape_ok(addr: &str) -> String {
    let mut last = String::new();
    let ok = wait_until(WAIT, || match scrape(addr) {
        Ok(b) => {
            last = b;
            true
        }
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(ok, "no metrics at {addr}: {last}");
    last
}

/// Sum of the samples of `name` whose labels include every one of `labels`.
fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (n, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            (n == name && wanted).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// `promtool check metrics` on `text`, which must pass.
fn promtool_accepts(what: &str, text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused the metrics of {what}:\n{}{}\n--- metrics:\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Within [`TOLERANCE`] of `want`.
fn near(got: f64, want: f64) -> bool {
    (got - want).abs() <= want * TOLERANCE
}

/// A mount point unmounted (lazily) when dropped, so a failing test leaves nothing mounted.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

/// MGS, MDS and [`OSTS`] OSS processes, each serving metrics; and their metrics addresses.
struct MetricsCluster {
    dir: tempfile::TempDir,
    mgs: String,
    /// Metrics address of each node by name (`mgs`, `mds`, `oss0`, ...).
    metrics: Vec<(String, String)>,
    _procs: Vec<Proc>,
}

impl MetricsCluster {
    fn start() -> MetricsCluster {
        let dir = tempfile::tempdir().unwrap();
        let d = |sub: &str| dir.path().join(sub).to_str().unwrap().to_string();
        let mgs = free_addr();
        let mut metrics = Vec::new();
        let mut procs = Vec::new();
        let mut node = |name: &str, args: Vec<String>| {
            let m = free_addr();
            let mut all = args;
            all.extend(["--metrics-listen".to_string(), m.clone()]);
            let all: Vec<&str> = all.iter().map(String::as_str).collect();
            procs.push(Proc::start(name, &all));
            metrics.push((name.to_string(), m));
        };
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        node("mgs", s(&["mgs", "--listen", &mgs, "--data", &d("mgs")]));
        let mds = free_addr();
        node(
            "mds",
            s(&["--mgs", &mgs, "mds", "--listen", &mds, "--data", &d("mds")]),
        );
        for i in 0..OSTS {
            let (addr, data) = (free_addr(), d(&format!("ost{i}")));
            let index = i.to_string();
            let args = [
                "--mgs", &mgs, "oss", "--listen", &addr, "--index", &index, "--data", &data,
            ];
            node(&format!("oss{i}"), s(&args));
        }
        let up = wait_until(WAIT, || {
            let s = cli(&mgs, &["status"]);
            let out = String::from_utf8_lossy(&s.stdout).to_string();
            s.status.success() && out.matches(" up").count() > OSTS
        });
        assert!(up, "cluster did not come up");
        MetricsCluster {
            dir,
            mgs,
            metrics,
            _procs: procs,
        }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    /// The scraped text of every node, by name.
    fn scrape_all(&self) -> HashMap<String, String> {
        self.metrics
            .iter()
            .map(|(n, a)| (n.clone(), scrape_ok(a)))
            .collect()
    }

    /// Sum of `name` over every OSS.
    fn oss_sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.metrics
            .iter()
            .filter(|(n, _)| n.starts_with("oss"))
            .map(|(_, a)| sum(&scrape_ok(a), name, labels))
            .sum()
    }
}

fn mount_with_metrics(c: &MetricsCluster, mnt: &Path, metrics: &str) -> Mounted {
    std::fs::create_dir_all(mnt).unwrap();
    let out = rustre_command()
        .args(["mount", &c.mgs])
        .arg(mnt)
        .args(["-o", &format!("metrics={metrics}")])
        .stdin(Stdio::null())
        .output()
        .expect("rustre mount");
    assert!(
        out.status.success(),
        "rustre mount failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Mounted(mnt.to_path_buf())
}

#[test]
fn every_role_and_a_mount_serve_metrics_that_count_a_64_mib_write() {
    if fuse_or_tools_unavailable(&["promtool"]).is_some() {
        return;
    }
    let c = MetricsCluster::start();
    let mnt = c.path("mnt");
    let client_metrics = free_addr();
    let _mounted = mount_with_metrics(&c, &mnt, &client_metrics);

    // A directory whose files have 2 stripes of 1 MiB, one on each OST.
    cli_ok(&c.mgs, &["mkdir", "/d"]);
    cli_ok(&c.mgs, &["setstripe", "/d", "-c", "2", "-S", "1M"]);
    let write_bytes = "rustre_ost_write_bytes_total";
    let osts_before = c.oss_sum(write_bytes, &[]);
    let client_before = scrape_ok(&client_metrics);

    let data = random_bytes(WORKLOAD_BYTES as usize, 18);
    {
        let mut f = std::fs::File::create(mnt.join("d/big")).unwrap();
        f.write_all(&data).unwrap();
        f.sync_all().unwrap();
    }
    drop(data);
    let stat = cli_ok(&c.mgs, &["stat", "/d/big", "--json"]);
    let stat: serde_json::Value = serde_json::from_str(&stat).unwrap();
    assert_eq!(stat["layout"]["stripe_count"].as_u64(), Some(2), "{stat}");
    assert_eq!(stat["size"].as_u64(), Some(WORKLOAD_BYTES), "{stat}");

    // The OSTs: 64 MiB in all, half on each.
    let want = WORKLOAD_BYTES as f64;
    let settled = wait_until(WAIT, || {
        near(c.oss_sum(write_bytes, &[]) - osts_before, want)
    });
    let all = c.scrape_all();
    let per_ost: Vec<f64> = (0..OSTS)
        .map(|i| {
            let text = &all[&format!("oss{i}")];
            sum(text, write_bytes, &[("ost", &i.to_string())])
        })
        .collect();
    assert!(
        settled,
        "per-OST write bytes {per_ost:?} (before: {osts_before}) do not add up to {want}"
    );
    for (i, b) in per_ost.iter().enumerate() {
        assert!(
            near(*b, want / 2.0),
            "OST {i} got {b} bytes, not half of {want}"
        );
        let writes = sum(&all[&format!("oss{i}")], "rustre_ost_writes_total", &[]);
        assert!(writes >= 32.0, "OST {i}: only {writes} write requests");
    }

    // The mount: what the application wrote, what write-back sent, its OSS write calls.
    let client = scrape_ok(&client_metrics);
    let moved = |name: &str, labels: &[(&str, &str)]| {
        sum(&client, name, labels) - sum(&client_before, name, labels)
    };
    assert_eq!(
        moved("rustre_client_write_bytes_total", &[]),
        want,
        "{client}"
    );
    let written_back = moved("rustre_client_writeback_bytes_total", &[]);
    assert!(near(written_back, want), "write-back sent {written_back}");
    let oss_writes = moved(
        "rustre_rpc_client_requests_total",
        &[("service", "oss"), ("op", "Write")],
    );
    assert!(
        oss_writes >= 64.0,
        "{oss_writes} OSS writes for 64 stripe units"
    );
    assert!(
        sum(
            &client,
            "rustre_rpc_client_requests_total",
            &[("service", "mds")]
        ) > 0.0,
        "no MDS calls counted: {client}"
    );

    // The servers counted their side: the MDS its opens, the MGS its map requests, every
    // MDS answer timed, the live session of the mount.
    let mds = &all["mds"];
    let creates = sum(mds, "rustre_server_requests_total", &[("op", "Create")]);
    assert!(creates >= 1.0, "no Create counted by the MDS:\n{mds}");
    assert!(sum(mds, "rustre_server_request_duration_seconds_count", &[]) >= creates);
    assert!(
        sum(
            &all["mgs"],
            "rustre_server_requests_total",
            &[("op", "GetMap")]
        ) >= 1.0
    );
    let sessions = wait_until(WAIT, || {
        sum(&scrape_ok(&c.metrics[1].1), "rustre_mds_sessions", &[]) >= 1.0
    });
    assert!(sessions, "the mount's session is not counted");
    assert!(
        sum(mds, "rustre_mds_group_commit_fsync_seconds_count", &[]) >= 1.0,
        "no group commit counted:\n{mds}"
    );

    // promtool accepts what every role and the mount serve.
    for (name, text) in &all {
        promtool_accepts(name, text);
    }
    promtool_accepts("the mount", &client);
    let mut texts: Vec<&str> = all.values().map(String::as_str).collect();
    texts.push(&client);
    names_are_documented_and_charted(&texts);

    // `rustre top --once` shows every node and a row per OST, in 80 columns.
    let mut endpoints: Vec<String> = c
        .metrics
        .iter()
        .map(|(_, a)| format!("http://{a}"))
        .collect();
    endpoints.push(format!("http://{client_metrics}"));
    let mut args = vec!["top", "--once"];
    args.extend(endpoints.iter().map(String::as_str));
    let top = cli_ok(&c.mgs, &args);
    eprintln!("rustre top --once:\n{top}");
    for line in top.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}\n{top}"
        );
    }
    assert!(
        top.contains(&format!(
            "{} of {} nodes answering",
            endpoints.len(),
            endpoints.len()
        )),
        "{top}"
    );
    for i in 0..OSTS {
        let row = top
            .lines()
            .find(|l| l.split_whitespace().next() == Some(&i.to_string()))
            .unwrap_or_else(|| panic!("no row for OST {i}:\n{top}"));
        assert!(
            row.contains("32.0 MiB"),
            "OST {i} row does not show its 32 MiB: {row}\n{top}"
        );
    }
    assert!(top.contains("client"), "{top}");

    // A metrics address already taken fails the mount, leaving nothing mounted.
    let mnt2 = c.path("mnt2");
    std::fs::create_dir_all(&mnt2).unwrap();
    let out = rustre_command()
        .args(["mount", &c.mgs])
        .arg(&mnt2)
        .args(["-o", &format!("metrics={client_metrics}")])
        .stdin(Stdio::null())
        .output()
        .expect("rustre mount");
    let _guard = Mounted(mnt2.clone());
    assert!(
        !out.status.success(),
        "a second mount took the same metrics port"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics: cannot listen on"), "{err}");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap();
    assert!(!mounts.contains(mnt2.to_str().unwrap()), "{mounts}");
}

/// Every metric family served is listed in docs/operations.md, and so is every name the
/// Grafana dashboard (docs/grafana/rustre.json) queries (a family without samples yet, say
/// no refusal counted, is not served at all).
fn names_are_documented_and_charted(texts: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let docs = std::fs::read_to_string(root.join("docs/operations.md")).unwrap();
    let dashboard = std::fs::read_to_string(root.join("docs/grafana/rustre.json")).unwrap();
    let families: Vec<&str> = texts
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.len() >= 25, "only {families:?}");
    for f in &families {
        assert!(
            docs.contains(&format!("`{f}`")),
            "{f} is not in docs/operations.md"
        );
    }
    let charted = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("rustre_") && w.len() > "rustre_".len());
    let documented = |f: &str| docs.contains(&format!("`{f}`"));
    for name in charted {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| documented(f)))
            .unwrap_or(name);
        assert!(
            documented(family),
            "the dashboard queries {name}, which docs/operations.md does not list"
        );
    }
}

#[test]
fn rustre_local_serves_every_role_on_one_endpoint() {
    if Command::new("promtool").arg("--version").output().is_err() {
        unavailable_here("promtool is not installed (scripts/install-deps.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let metrics = free_addr();
    let (data, mgs) = (dir.path().join("data"), free_addr());
    let _local = Proc::start(
        "local",
        &[
            "local",
            "--data",
            data.to_str().unwrap(),
            "--listen",
            &mgs,
            "--metrics-listen",
            &metrics,
        ],
    );
    // A client command, for the MDS to answer something.
    assert!(wait_until(WAIT, || cli(&mgs, &["ls", "/"])
        .status
        .success()));
    let mut text = String::new();
    let every_role = wait_until(WAIT, || {
        text = scrape(&metrics).unwrap_or_default();
        ["mgs", "mds"]
            .iter()
            .all(|s| sum(&text, "rustre_server_requests_total", &[("service", s)]) > 0.0)
            && sum(&text, "rustre_mds_group_commit_fsync_seconds_count", &[]) > 0.0
            // Its two OSTs show (at 0) before their first request.
            && ["0", "1"].iter().all(|ost| {
                text.contains(&format!("rustre_ost_write_bytes_total{{ost=\"{ost}\"}} 0"))
            })
    });
    assert!(every_role, "not every role and OST counted:\n{text}");
    promtool_accepts("rustre local", &text);
    // Only /metrics is served.
    let other = std::net::TcpStream::connect(&metrics).and_then(|mut s| {
        s.write_all(b"GET / HTTP/1.1\r\n\r\n")?;
        let mut r = String::new();
        s.read_to_string(&mut r)?;
        Ok(r)
    });
    assert!(other.unwrap().starts_with("HTTP/1.1 404"));
}
