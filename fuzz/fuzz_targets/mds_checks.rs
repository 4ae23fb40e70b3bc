//! Any bytes as an MDS request body, decoded as the MDS does, then run through the MDS's pure
//! input checks from rustre-proto, each compared with the rule it documents: every name
//! through `validate_name`, and a layout request that names everything through
//! `Layout::validate` (as the MDS does with the layout it chooses).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustre_fuzz::decode_checked;
use rustre_proto::msg::mds::{MdsOp, MdsRequest};
use rustre_proto::msg::{
    validate_name, Layout, LayoutSpec, MAX_REPLICAS, MAX_STRIPE_COUNT, MAX_STRIPE_SIZE,
    MIN_STRIPE_SIZE, NAME_MAX_BYTES,
};

fuzz_target!(|data: &[u8]| {
    let Some(MdsRequest { op, .. }) = decode_checked::<MdsRequest>(data) else {
        return;
    };
    match &op {
        MdsOp::Lookup { name, .. }
        | MdsOp::Mkdir { name, .. }
        | MdsOp::Mknod { name, .. }
        | MdsOp::Symlink { name, .. }
        | MdsOp::Unlink { name, .. }
        | MdsOp::Rmdir { name, .. }
        | MdsOp::Link { new_name: name, .. } => name_rule(name),
        MdsOp::Create { name, layout, .. } => {
            name_rule(name);
            if let Some(spec) = layout {
                layout_rule(spec);
            }
        }
        MdsOp::Rename { name, new_name, .. } => {
            name_rule(name);
            name_rule(new_name);
        }
        MdsOp::Readdir {
            after: Some(name), ..
        } => name_rule(name),
        MdsOp::SetDirLayout {
            spec: Some(spec), ..
        } => layout_rule(spec),
        _ => {}
    }
});

/// `validate_name` accepts exactly the names its documentation describes.
fn name_rule(name: &str) {
    let ok = !name.is_empty()
        && name.len() <= NAME_MAX_BYTES
        && name != "."
        && name != ".."
        && !name.contains(['/', '\0']);
    assert_eq!(validate_name(name).is_ok(), ok, "name {name:?}");
}

/// `Layout::validate` accepts exactly the layouts within the protocol limits: sizes and
/// counts in range, every copy placed, copies of one stripe on distinct OSTs (no stale
/// slots here, so every stripe has a live copy).
fn layout_rule(spec: &LayoutSpec) {
    let (Some(stripe_size), Some(osts), Some(replicas)) =
        (spec.stripe_size, spec.osts.clone(), spec.replicas)
    else {
        return;
    };
    let shape_ok = (1..=MAX_REPLICAS).contains(&replicas)
        && !osts.is_empty()
        && osts.len().is_multiple_of(replicas as usize)
        && osts.len() / replicas as usize <= MAX_STRIPE_COUNT as usize;
    let distinct = shape_ok && {
        let count = osts.len() / replicas as usize;
        (0..count).all(|i| {
            let mut copies: Vec<u32> = (0..replicas as usize)
                .map(|r| osts[r * count + i])
                .collect();
            copies.sort_unstable();
            copies.dedup();
            copies.len() == replicas as usize
        })
    };
    let ok = (MIN_STRIPE_SIZE..=MAX_STRIPE_SIZE).contains(&stripe_size)
        && stripe_size.is_multiple_of(MIN_STRIPE_SIZE)
        && shape_ok
        && distinct;
    let layout = Layout {
        stripe_size,
        osts,
        replicas,
        stale: Vec::new(),
        version: 0,
        written: Default::default(),
        allocated: Vec::new(),
    };
    assert_eq!(layout.validate().is_ok(), ok, "{layout:?}");
}
