//! The simulated OSTs' disks as the fault plan and the checks see them, behind the OSS's
//! back: reading an object straight from its store, flipping a bit of one copy, and
//! comparing copies block by block, leaving out blocks that fail their checksum.

use std::collections::BTreeSet;

use rustre_proto::msg::oss::{ObjectId, CHECKSUM_BLOCK, LIST_MAX_OBJECTS};
use rustre_server::oss::{MemStore, ObjectStore, ReadData};

use crate::rng::Rng;

/// Bytes per read when an object is read straight from its store (a multiple of the
/// checksum block).
const STORE_READ_CHUNK: u32 = 1 << 20;

/// The bytes of object `id` as `store` holds them now (empty if it has none).
pub fn object_bytes(store: &MemStore, id: ObjectId) -> Vec<u8> {
    let size = store.size(id).ok().flatten().unwrap_or(0);
    let mut out = Vec::new();
    while (out.len() as u64) < size {
        let read = match store.read(id, out.len() as u64, STORE_READ_CHUNK) {
            Ok(r) => r,
            Err(e) => panic!("reading {id:?} from a simulated store: {e}"),
        };
        match read.data {
            ReadData::Bytes(b) if !b.is_empty() => out.extend_from_slice(&b),
            _ => break,
        }
    }
    out
}

/// Every object `store` holds, in id order.
fn objects(store: &MemStore) -> Vec<ObjectId> {
    let mut out = Vec::new();
    loop {
        let page = match store.list(out.last().copied(), LIST_MAX_OBJECTS) {
            Ok(p) => p,
            Err(e) => panic!("listing a simulated store: {e}"),
        };
        out.extend(page.objects.iter().map(|o| o.id));
        if page.done {
            return out;
        }
    }
}

/// A bit to flip, drawn from `rng`: an object of a random OST that has never had a bit
/// flipped (`flipped`) and whose two copies (the objects of the same id on two OSTs) are
/// byte for byte the same now, so that the other copy holds the good bytes; and a byte of
/// it. `None` when the OST holds no such object. Returns the OST and object, and the byte.
pub fn pick_flip(
    stores: &[impl AsRef<MemStore>],
    rng: &mut Rng,
    flipped: &BTreeSet<ObjectId>,
) -> Option<(usize, ObjectId, u64)> {
    let ost = rng.below(stores.len() as u64) as usize;
    let candidates: Vec<(ObjectId, u64)> = objects(stores[ost].as_ref())
        .into_iter()
        .filter(|id| !flipped.contains(id))
        .filter_map(|id| {
            let copies: Vec<Vec<u8>> = stores
                .iter()
                .filter(|s| matches!(s.as_ref().size(id), Ok(Some(_))))
                .map(|s| object_bytes(s.as_ref(), id))
                .collect();
            let same = copies.len() == 2 && copies[0] == copies[1] && !copies[0].is_empty();
            same.then(|| (id, copies[0].len() as u64))
        })
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let (id, size) = candidates[rng.below(candidates.len() as u64) as usize];
    Some((ost, id, rng.below(size)))
}

/// Whether the copies of object `id` in `stores` hold the same bytes wherever both pass
/// their checksums: same length, and every block that is sound on every copy equal. A block
/// that fails its checksum is never served, so a copy may keep a flipped bit until it is
/// read (and repaired) or rewritten.
pub fn same_where_sound(stores: &[&MemStore], id: ObjectId) -> bool {
    let mut bad = BTreeSet::new();
    for store in stores {
        match store.scrub(id) {
            Ok(blocks) => bad.extend(blocks),
            Err(e) => panic!("scrubbing {id:?} in a simulated store: {e}"),
        }
    }
    let copies: Vec<Vec<u8>> = stores.iter().map(|s| object_bytes(s, id)).collect();
    let block = CHECKSUM_BLOCK as usize;
    copies.iter().all(|c| c.len() == copies[0].len())
        && copies[0]
            .chunks(block)
            .enumerate()
            .filter(|(b, _)| !bad.contains(&(*b as u64)))
            .all(|(b, chunk)| {
                copies
                    .iter()
                    .all(|c| &c[b * block..b * block + chunk.len()] == chunk)
            })
}
