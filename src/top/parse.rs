//! Reading the Prometheus text format (0.0.4) that rustre's endpoints serve into the totals
//! `rustre top` shows: counters summed over the labels it does not show. Lines it cannot
//! read are skipped (a newer rustre may export more).

use std::collections::BTreeMap;

/// The counters of one node that `rustre top` turns into rates.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Totals {
    /// Services this node answers (`mgs`, `mds`, `oss`), from `rustre_server_requests`.
    pub services: Vec<String>,
    /// Requests the node's servers answered.
    pub server_ops: f64,
    /// Requests they answered with an error.
    pub server_errors: f64,
    /// Whether the node runs a client (a mount).
    pub client: bool,
    /// Bytes applications read and wrote through its client.
    pub client_read: f64,
    pub client_written: f64,
    /// Calls it made to servers (as a client, or a server calling another).
    pub client_calls: f64,
    /// Per OST index: read and write requests, bytes read and written.
    pub osts: BTreeMap<u32, OstTotals>,
}

/// The counters of one OST.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct OstTotals {
    pub reads: f64,
    pub writes: f64,
    pub read_bytes: f64,
    pub write_bytes: f64,
}

/// One sample: metric name, labels, value.
pub(crate) struct Sample<'a> {
    pub name: &'a str,
    pub labels: Vec<(&'a str, String)>,
    pub value: f64,
}

impl Sample<'_> {
    fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One sample line (`name{k="v",...} value [timestamp]`); `None` for comments, blank lines
/// and lines it cannot read.
pub(crate) fn sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line.find(|c: char| c == '{' || c.is_whitespace())?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches([',', ' ']);
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (key, r) = rest.split_once("=\"")?;
            let (value, r) = quoted(r)?;
            labels.push((key.trim(), value));
            rest = r;
        }
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// A label value up to its closing quote (escapes `\\`, `\"`, `\n` undone), and the rest.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

/// The totals of one scrape.
pub(crate) fn totals(text: &str) -> Totals {
    let mut t = Totals::default();
    for s in text.lines().filter_map(sample) {
        let ost = || s.label("ost").and_then(|o| o.parse::<u32>().ok());
        match s.name {
            "rustre_server_requests_total" => {
                t.server_ops += s.value;
                if let Some(svc) = s.label("service") {
                    if !t.services.iter().any(|x| x == svc) {
                        t.services.push(svc.to_string());
                    }
                }
            }
            "rustre_server_errors_total" => t.server_errors += s.value,
            "rustre_client_read_bytes_total" => {
                t.client = true;
                t.client_read += s.value;
            }
            "rustre_client_write_bytes_total" => {
                t.client = true;
                t.client_written += s.value;
            }
            "rustre_rpc_client_requests_total" => t.client_calls += s.value,
            "rustre_ost_reads_total"
            | "rustre_ost_writes_total"
            | "rustre_ost_read_bytes_total"
            | "rustre_ost_write_bytes_total" => {
                let Some(index) = ost() else { continue };
                let o = t.osts.entry(index).or_default();
                match s.name {
                    "rustre_ost_reads_total" => o.reads += s.value,
                    "rustre_ost_writes_total" => o.writes += s.value,
                    "rustre_ost_read_bytes_total" => o.read_bytes += s.value,
                    _ => o.write_bytes += s.value,
                }
            }
            _ => {}
        }
    }
    // Services in a steady order: mgs, mds, oss.
    t.services.sort_by_key(|s| match s.as_str() {
        "mgs" => 0,
        "mds" => 1,
        "oss" => 2,
        _ => 3,
    });
    t
}
