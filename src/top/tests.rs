//! Tests of `rustre top`'s reading and drawing.

use super::parse::{sample, totals};
use super::render::{frame, human};
use super::WIDTH;

const BEFORE: &str = r#"# HELP rustre_server_requests_total Requests.
# TYPE rustre_server_requests_total counter
rustre_server_requests_total{service="oss",op="Write"} 10
rustre_server_requests_total{service="mgs",op="GetMap"} 5
rustre_ost_write_bytes_total{ost="0"} 1048576
rustre_ost_write_bytes_total{ost="1"} 0
rustre_ost_writes_total{ost="0"} 1
rustre_ost_writes_total{ost="1"} 0
"#;

const NOW: &str = r#"rustre_server_requests_total{service="oss",op="Write"} 30
rustre_server_requests_total{service="mgs",op="GetMap"} 5
rustre_server_errors_total{service="oss",op="Write"} 2
rustre_ost_write_bytes_total{ost="0"} 3145728
rustre_ost_write_bytes_total{ost="1"} 2097152
rustre_ost_writes_total{ost="0"} 3
rustre_ost_writes_total{ost="1"} 2
rustre_ost_read_bytes_total{ost="1"} 4096 1700000000000
"#;

#[test]
fn samples_parse_with_labels_escapes_and_timestamps() {
    let s = sample(r#"a_total{x="1",y="q\"uo\\te"} 2.5 123"#).unwrap();
    assert_eq!(s.name, "a_total");
    assert_eq!(s.labels, vec![("x", "1".into()), ("y", "q\"uo\\te".into())]);
    assert_eq!(s.value, 2.5);
    assert_eq!(sample("b 7").unwrap().value, 7.0);
    assert_eq!(sample(r#"c{le="+Inf"} +Inf"#).unwrap().value, f64::INFINITY);
    assert!(sample("# HELP b x").is_none());
    assert!(sample(r#"d{x="unterminated} 1"#).is_none());
}

#[test]
fn totals_sum_over_operations_and_keep_osts_apart() {
    let t = totals(NOW);
    assert_eq!(t.services, vec!["mgs".to_string(), "oss".to_string()]);
    assert_eq!(t.server_ops, 35.0);
    assert_eq!(t.server_errors, 2.0);
    assert_eq!(t.osts.len(), 2);
    assert_eq!(t.osts[&1].write_bytes, 2097152.0);
    assert_eq!(t.osts[&1].read_bytes, 4096.0);
    assert!(!t.client);
}

#[test]
fn a_frame_shows_rates_per_node_and_per_ost_within_80_columns() {
    let endpoints = vec![
        "http://a-rather-long-host-name.example.com:9500".to_string(),
        "http://10.0.0.2:9500".to_string(),
    ];
    let before = vec![Ok(totals(BEFORE)), Err("x".to_string())];
    let now = vec![Ok(totals(NOW)), Err("connection refused".to_string())];
    let f = frame(&endpoints, &before, &now, 2.0);
    for line in f.lines() {
        assert!(line.chars().count() <= WIDTH, "too wide: {line:?}");
    }
    // 20 requests in 2 s; 4 MiB written in 2 s over both OSTs.
    let node = f.lines().find(|l| l.contains("mgs,oss")).expect(&f);
    assert!(node.contains("10.0"), "{node}");
    assert!(node.contains("2.0 MiB"), "{node}");
    assert!(f.contains("down: connection refused"), "{f}");
    let ost0 = f
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .expect(&f);
    assert!(
        ost0.contains("1.0 MiB") && ost0.contains("3.0 MiB"),
        "{ost0}"
    );
    let ost1 = f
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .expect(&f);
    assert!(
        ost1.contains("1.0 MiB") && ost1.contains("2.0 KiB"),
        "{ost1}"
    );
}

#[test]
fn sizes_are_human() {
    assert_eq!(human(0.0), "0 B");
    assert_eq!(human(1023.0), "1023 B");
    assert_eq!(human(1536.0), "1.5 KiB");
    assert_eq!(human(64.0 * 1048576.0), "64.0 MiB");
}

#[test]
fn a_mount_alone_shows_what_applications_moved_and_the_calls_it_made() {
    let before = "rustre_client_write_bytes_total 0\nrustre_rpc_client_requests_total{service=\"oss\",op=\"Write\"} 0\n";
    let now = "rustre_client_write_bytes_total 10485760\nrustre_rpc_client_requests_total{service=\"oss\",op=\"Write\"} 10\n";
    let f = frame(
        &["http://c:1".to_string()],
        &[Ok(totals(before))],
        &[Ok(totals(now))],
        1.0,
    );
    let row = f.lines().find(|l| l.contains("client")).expect(&f);
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[2], "10.0", "OPS/s: {row}");
    assert!(row.ends_with("10.0 MiB"), "WRITE/s: {row}");
    // All roles of `rustre local` fit the role column.
    let mut all = totals(NOW);
    all.client = true;
    let f = frame(
        &["http://l:1".to_string()],
        &[Ok(all.clone())],
        &[Ok(all)],
        1.0,
    );
    assert!(f.contains("mgs,oss,client"), "{f}");
}
