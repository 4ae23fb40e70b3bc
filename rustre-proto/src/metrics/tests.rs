//! Tests of the shared metrics: operation names, the endpoint and its client.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use super::http::{listen, parse_endpoint, scrape, METRICS_PATH};
use super::op_name;
use crate::msg::oss::{ObjectId, OssOp};

#[test]
fn op_names_are_variant_names() {
    let object = ObjectId { ino: 1, stripe: 0 };
    assert_eq!(op_name(&OssOp::Delete { object }), "Delete");
    assert_eq!(op_name(&OssOp::StatFs), "StatFs");
    assert_eq!(op_name(&5u32), super::UNKNOWN_OP);
}

#[test]
fn endpoints_parse() {
    let m = METRICS_PATH.to_string();
    assert_eq!(
        parse_endpoint("http://h:1").unwrap(),
        ("h:1".to_string(), m.clone())
    );
    assert_eq!(parse_endpoint("h:1/").unwrap(), ("h:1".to_string(), m));
    assert_eq!(
        parse_endpoint("http://h:1/x").unwrap(),
        ("h:1".to_string(), "/x".to_string())
    );
    assert!(parse_endpoint("https://h:1").is_err());
    assert!(parse_endpoint("").is_err());
}

#[tokio::test]
async fn the_endpoint_serves_the_registry_and_only_at_its_path() {
    let mut registry = Registry::default();
    let c = Counter::<u64>::default();
    registry.register(
        "rustre_test_things",
        "Things counted by the test",
        c.clone(),
    );
    c.inc_by(7);
    let (stop, shutdown) = watch::channel(false);
    let addr = listen("127.0.0.1:0", registry, shutdown).await.unwrap();
    let body = scrape(&format!("http://{addr}")).await.unwrap();
    assert!(
        body.contains("# TYPE rustre_test_things_total counter"),
        "{body}"
    );
    assert!(body.contains("rustre_test_things_total 7"), "{body}");
    let other = scrape(&format!("http://{addr}/other")).await.unwrap_err();
    assert!(other.to_string().contains("404"), "{other}");
    stop.send(true).unwrap();
}
