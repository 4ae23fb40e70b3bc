//! Unit tests of the configuration file: a full example parses into every table, unknown
//! keys and bad values are errors naming the key (and the file, through `load`), instance
//! selection, and the example shipped in packaging/ stays valid.

use super::*;

const FULL: &str = r#"
cluster = "prod"
secret_file = "/etc/rustre/cluster.secret"
mgs_address = "mgs1:9400"

[mgs]
listen = "0.0.0.0:9400"
data = "/var/lib/rustre/mgs"
metrics_listen = "0.0.0.0:9500"

[mds.a]
listen = "0.0.0.0:9401"
advertise = "mds1:9401"
data = "/var/lib/rustre/mds"
relaxed = true
session_lease = 60

[oss.0]
listen = "0.0.0.0:9402"
advertise = "oss1:9402"
osts = [
    { index = 0, data = "/srv/rustre/ost0" },
    { index = 1, data = "/srv/rustre/ost1" },
]

[oss.1]
listen = "0.0.0.0:9402"
advertise = "oss2:9402"
osts = [{ index = 2, data = "/srv/rustre/ost2" }]

[mount]
mountpoint = "/mnt/rustre"
options = ["allow_other", "cache_size=1G"]

[local]
data = "/tmp/r"
osts = 3
"#;

#[test]
fn a_full_file_fills_every_table() {
    let c = Config::parse(FULL).unwrap();
    assert_eq!(c.cluster.as_deref(), Some("prod"));
    assert_eq!(c.mgs_address.as_deref(), Some("mgs1:9400"));
    let mgs = c.mgs.as_ref().unwrap();
    assert_eq!(mgs.metrics_listen.as_deref(), Some("0.0.0.0:9500"));
    let mds = c.mds_section(None).unwrap();
    assert_eq!(mds.session_lease, Some(60));
    assert_eq!(mds.relaxed, Some(true));
    let oss = c.oss_section(Some("0")).unwrap();
    assert_eq!(oss.osts.len(), 2);
    assert_eq!(oss.osts[1].index, 1);
    assert_eq!(c.mount.as_ref().unwrap().options.len(), 2);
    assert_eq!(c.local.as_ref().unwrap().osts, Some(3));
    assert_eq!(
        c.summary(),
        "mgs, mds.a, oss.0 (OSTs 0,1), oss.1 (OSTs 2), mount, local"
    );
}

#[test]
fn an_unknown_key_is_an_error_naming_it_and_the_file() {
    let text = FULL.replace("relaxed = true", "relaxd = true");
    let e = Config::parse(&text).unwrap_err();
    assert!(e.contains("relaxd"), "{e}");
    // A top-level typo too.
    let e = Config::parse("clustr = \"x\"\n").unwrap_err();
    assert!(e.contains("clustr"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rustre.toml");
    std::fs::write(
        &p,
        "[oss.0]\nlisten = \"h:1\"\nosts = [{ index = 0, dir = \"/x\" }]\n",
    )
    .unwrap();
    let e = Config::load(&p).unwrap_err();
    assert!(e.starts_with(&p.display().to_string()), "{e}");
    assert!(e.contains("dir"), "{e}");
}

#[test]
fn bad_values_are_refused() {
    for (text, needle) in [
        ("mgs_address = \"nohost\"", "mgs_address"),
        ("[mds.a]\nlisten = \"h:99999\"", "mds.a.listen"),
        ("[oss.x]\nlisten = \"h:1\"", "osts is empty"),
        ("[mgs]\nfdb_prefix = \"p\"", "fdb_cluster_file"),
        ("[mds.a]\ndata = \"/d\"\nfdb_cluster_file = \"/f\"", "exclude"),
        ("cluster = \"\"", "cannot be empty"),
        ("[mds.a]\nsession_lease = \"long\"", "session_lease"),
        (
            "[oss.a]\nosts = [{ index = 1, data = \"/a\" }]\n[oss.b]\nosts = [{ index = 1, data = \"/b\" }]",
            "OST 1 is served by both",
        ),
    ] {
        let e = Config::parse(text).unwrap_err();
        assert!(e.contains(needle), "{text:?}: {e}");
    }
}

#[test]
fn instances_are_chosen_by_name_or_alone() {
    let c = Config::parse(FULL).unwrap();
    assert!(c.oss_section(None).unwrap_err().contains("--instance"));
    let e = c.oss_section(Some("7")).unwrap_err();
    assert!(e.contains("[oss.7]") && e.contains("0, 1"), "{e}");
    let empty = Config::parse("").unwrap();
    assert!(empty.mds_section(None).unwrap().listen.is_none());
    assert_eq!(empty.summary(), "no role tables");
}

#[test]
fn flags_win_over_the_file() {
    assert_eq!(pick(Some(1), Some(2)), Some(1));
    assert_eq!(pick(None, Some(2)), Some(2));
    assert_eq!(pick::<u8>(None, None), None);
}

#[test]
fn the_packaged_example_is_valid() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/rustre.toml");
    let c = Config::load(&p).unwrap();
    assert!(c.mgs.is_some() && !c.mds.is_empty() && !c.oss.is_empty());
}

#[test]
fn a_missing_explicit_file_is_an_error() {
    let e = Config::find(Some(Path::new("/nonexistent/rustre.toml"))).unwrap_err();
    assert!(e.contains("/nonexistent/rustre.toml"), "{e}");
}
