//! Choosing a new file's layout: the caller's request, else the directory's default, else
//! the cluster's; OSTs picked round-robin among those that are up.

use std::sync::atomic::{AtomicUsize, Ordering};

use rustre_proto::msg::mgs::{ClusterMap, NodeState};
use rustre_proto::msg::{Layout, LayoutSpec};
use rustre_proto::Error;

/// Hands out OSTs round-robin so files spread evenly.
#[derive(Default)]
pub struct OstPicker {
    next: AtomicUsize,
}

impl OstPicker {
    /// The layout for a new file given the request, the directory default and the map.
    pub fn choose(
        &self,
        request: Option<&LayoutSpec>,
        dir_default: Option<&LayoutSpec>,
        map: &ClusterMap,
    ) -> Result<Layout, Error> {
        let pick = |f: fn(&LayoutSpec) -> Option<u32>| {
            request.and_then(f).or_else(|| dir_default.and_then(f))
        };
        let stripe_size = pick(|s| s.stripe_size).unwrap_or(map.defaults.stripe_size);
        let replicas = pick(|s| s.replicas).unwrap_or(map.defaults.replicas);
        if replicas != 1 {
            return Err(Error::Invalid(
                "replicated layouts are not available yet (replica count must be 1)".into(),
            ));
        }
        let explicit = request
            .and_then(|s| s.osts.clone())
            .or_else(|| dir_default.and_then(|s| s.osts.clone()));
        let osts = match explicit {
            Some(list) => {
                for i in &list {
                    if map.ost(*i).is_none() {
                        return Err(Error::Invalid(format!("OST {i} does not exist")));
                    }
                }
                let mut seen = list.clone();
                seen.sort_unstable();
                seen.dedup();
                if seen.len() != list.len() {
                    return Err(Error::Invalid("an OST is listed twice".into()));
                }
                list
            }
            None => {
                let mut up: Vec<u32> = map
                    .osts
                    .iter()
                    .filter(|o| o.state == NodeState::Up)
                    .map(|o| o.index)
                    .collect();
                if up.is_empty() {
                    return Err(Error::NoSpace);
                }
                up.sort_unstable();
                let want = match pick(|s| s.stripe_count).unwrap_or(map.defaults.stripe_count) {
                    0 => map.defaults.stripe_count.max(1),
                    n => n,
                } as usize;
                let count = want.min(up.len());
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..count).map(|i| up[(start + i) % up.len()]).collect()
            }
        };
        let layout = Layout {
            stripe_size,
            osts,
            replicas,
        };
        layout.validate()?;
        Ok(layout)
    }
}
