//! Whether the OSTs holding a file's stripes can take a range fallocate(2) asks for. Objects
//! are sparse and nothing is reserved on the OSTs: a mode-0 or KEEP_SIZE fallocate is only
//! checked against each OST's available space in the cluster map (docs/mount.md).

use std::collections::BTreeMap;

use rustre_proto::msg::mgs::ClusterMap;
use rustre_proto::msg::Layout;
use rustre_proto::Error;

/// Bytes of `[start, end)` of a file of layout `layout` that land on each OST, every copy
/// counted (the range as if nothing of it were written yet).
pub(super) fn bytes_per_ost(layout: &Layout, start: u64, end: u64) -> BTreeMap<u32, u64> {
    let mut need = BTreeMap::new();
    for stripe in 0..layout.stripe_count() {
        let bytes = layout
            .object_size(stripe, end)
            .saturating_sub(layout.object_size(stripe, start));
        if bytes == 0 {
            continue;
        }
        for (_, ost) in layout.copies(stripe) {
            *need.entry(ost).or_insert(0u64) += bytes;
        }
    }
    need
}

/// ENOSPC unless every OST of `layout` has room for its share of `[start, end)` by the
/// capacity `map` last heard from it. An OST the map does not know is taken as full.
pub(super) fn check_room(
    layout: &Layout,
    map: &ClusterMap,
    start: u64,
    end: u64,
) -> Result<(), Error> {
    for (ost, bytes) in bytes_per_ost(layout, start, end) {
        let avail = map.ost(ost).map_or(0, |o| o.capacity.avail_bytes);
        if bytes > avail {
            return Err(Error::NoSpace);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustre_proto::msg::mgs::{LayoutDefaults, NodeState, OstInfo};
    use rustre_proto::msg::Capacity;

    fn map(avail: &[u64]) -> ClusterMap {
        ClusterMap {
            epoch: 1,
            cluster_name: "t".into(),
            osts: avail
                .iter()
                .enumerate()
                .map(|(i, a)| OstInfo {
                    index: i as u32,
                    addr: String::new(),
                    state: NodeState::Up,
                    capacity: Capacity {
                        total_bytes: *a,
                        free_bytes: *a,
                        avail_bytes: *a,
                    },
                })
                .collect(),
            mds: Vec::new(),
            defaults: LayoutDefaults::default(),
        }
    }

    #[test]
    fn each_ost_gets_its_stripes_share_of_the_range() {
        let l = Layout::striped(1024, vec![0, 1]);
        // 1 KiB on OST 1 (bytes 1024..2048), then 512 more on OST 0 (2048..2560).
        let need = bytes_per_ost(&l, 1024, 2560);
        assert_eq!(need, BTreeMap::from([(0, 512), (1, 1024)]));
        assert!(check_room(&l, &map(&[512, 1024]), 1024, 2560).is_ok());
        assert!(matches!(
            check_room(&l, &map(&[511, 1 << 20]), 1024, 2560),
            Err(Error::NoSpace)
        ));
        // An OST missing from the map holds nothing.
        assert!(check_room(&l, &map(&[1 << 20]), 0, 4096).is_err());
    }

    #[test]
    fn every_copy_needs_room() {
        let mut l = Layout::striped(1024, vec![0, 1]);
        l.replicas = 2;
        l.osts = vec![0, 1, 1, 0];
        let need = bytes_per_ost(&l, 0, 4096);
        assert_eq!(need, BTreeMap::from([(0, 4096), (1, 4096)]));
    }
}
