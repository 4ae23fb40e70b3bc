//! The registry as a pure state machine: OSTs and MDS instances, their states and the
//! cluster-map epoch. No I/O and no clock of its own (every call takes `now`), so every rule
//! is tested deterministically; the service in `service.rs` adds locking and persistence.
//!
//! Rules:
//! - every change of membership, state, address or disk binding bumps the epoch by exactly one
//!   (a binding is then saved like any other change);
//! - a heartbeat only counts from a node that is registered and up; anything else is told to
//!   register again, which is what fences a node that was marked down (DESIGN, "Epochs and
//!   fencing");
//! - an OST index held by a different address that is up is refused (two OSSes claiming one
//!   OST would split its data); if that address is down, the new one takes the index over;
//! - an OST index is bound to the disk ([`OstUuid`]) that first registered it, and a
//!   registration offering another disk is refused ([`WrongDisk`]): an empty disk put in
//!   place of a lost one would serve holes where data was. Only [`Registry::replace_ost`]
//!   (an administrator, once the copies there are marked stale) drops the binding; the next
//!   registration binds the disk it offers. The binding is saved with the registry.

use std::collections::BTreeMap;
use std::time::Duration;

use rustre_proto::msg::mgs::{
    ClusterMap, LayoutDefaults, MdsInfo, NodeState, OstInfo, OstUuid, NODE_DOWN_AFTER_MS,
};
use rustre_proto::msg::Capacity;
use rustre_proto::Error;
use tokio::time::Instant;

use super::persist::{RegistryFile, SavedOst};
use crate::checks::{check_addr, check_ost_index, MAX_OSTS};

/// Most MDS instances remembered (down ones are forgotten first when full).
pub const MAX_MDS: usize = 256;
/// How long a node may go without a heartbeat before it is marked down.
pub const NODE_DOWN_AFTER: Duration = Duration::from_millis(NODE_DOWN_AFTER_MS);

#[derive(Debug, Clone)]
struct OstEntry {
    addr: String,
    state: NodeState,
    capacity: Capacity,
    last_beat: Instant,
    /// The disk bound to the index; `None` until a registration binds one (an OST saved by
    /// an MGS of an earlier version, or whose disk an administrator replaced).
    disk: Option<OstUuid>,
}

#[derive(Debug, Clone)]
struct MdsEntry {
    state: NodeState,
    last_beat: Instant,
}

/// What a successful registration did, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Registered {
    /// First time this node is seen.
    New,
    /// A known node came back up.
    Returned,
    /// A down OST's index moved to a new address.
    TookOver { from: String },
    /// The node was already up at this address; nothing changed.
    AlreadyUp,
}

/// A registration refused: the OST index is bound to disk `bound`, not the one offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongDisk {
    pub bound: OstUuid,
}

/// OSTs, MDS instances and the epoch.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    epoch: u64,
    osts: BTreeMap<u32, OstEntry>,
    mds: BTreeMap<String, MdsEntry>,
}

impl Registry {
    /// An empty registry at epoch 1 (a brand-new cluster).
    pub(crate) fn new() -> Registry {
        Registry {
            epoch: 1,
            osts: BTreeMap::new(),
            mds: BTreeMap::new(),
        }
    }

    /// The registry saved before a restart: every node is down until it registers again, and
    /// the epoch moves past the saved one (the states all changed, and no epoch a client may
    /// have seen is ever reused).
    pub(crate) fn restore(file: &RegistryFile, now: Instant) -> Registry {
        let osts = file
            .osts
            .iter()
            .map(|o| {
                let entry = OstEntry {
                    addr: o.addr.clone(),
                    state: NodeState::Down,
                    capacity: o.capacity,
                    last_beat: now,
                    disk: o.disk,
                };
                (o.index, entry)
            })
            .collect();
        let mds = file
            .mds
            .iter()
            .map(|addr| {
                let entry = MdsEntry {
                    state: NodeState::Down,
                    last_beat: now,
                };
                (addr.clone(), entry)
            })
            .collect();
        Registry {
            epoch: file.epoch.saturating_add(1),
            osts,
            mds,
        }
    }

    /// What is saved in the store: membership, addresses, disk bindings, last capacity and the
    /// epoch. States are not saved: after a restart every node is down until it registers
    /// again.
    pub(crate) fn to_file(&self, cluster: &str) -> RegistryFile {
        RegistryFile {
            cluster: cluster.to_string(),
            epoch: self.epoch,
            osts: self
                .osts
                .iter()
                .map(|(&index, o)| SavedOst {
                    index,
                    addr: o.addr.clone(),
                    capacity: o.capacity,
                    disk: o.disk,
                })
                .collect(),
            mds: self.mds.keys().cloned().collect(),
        }
    }

    /// The current epoch.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Moves the epoch forward to `epoch`, never back: the store saved this registry with a
    /// later epoch because another MGS over the same store saved one in the meantime.
    pub(crate) fn advance_epoch(&mut self, epoch: u64) {
        self.epoch = self.epoch.max(epoch);
    }

    fn bump(&mut self) {
        self.epoch = self.epoch.saturating_add(1);
    }

    /// Registers OST `index` served at `addr` from disk `disk`; `Ok(Err(_))` (nothing changed)
    /// when the index is bound to another disk.
    pub(crate) fn register_ost(
        &mut self,
        index: u32,
        addr: &str,
        disk: OstUuid,
        capacity: Capacity,
        now: Instant,
    ) -> Result<Result<Registered, WrongDisk>, Error> {
        check_addr(addr)?;
        check_ost_index(index)?;
        let Some(entry) = self.osts.get_mut(&index) else {
            if self.osts.len() >= MAX_OSTS {
                return Err(Error::Invalid(format!(
                    "the cluster already has the maximum of {MAX_OSTS} OSTs"
                )));
            }
            self.osts.insert(
                index,
                OstEntry {
                    addr: addr.to_string(),
                    state: NodeState::Up,
                    capacity,
                    last_beat: now,
                    disk: Some(disk),
                },
            );
            self.bump();
            return Ok(Ok(Registered::New));
        };
        if let Some(bound) = entry.disk.filter(|b| *b != disk) {
            return Ok(Err(WrongDisk { bound }));
        }
        let outcome = match (entry.addr == addr, entry.state) {
            (true, NodeState::Up) => Registered::AlreadyUp,
            (true, NodeState::Down) => Registered::Returned,
            (false, NodeState::Up) => {
                return Err(Error::Invalid(format!(
                    "address conflict: OST {index} is served by {} which is up; {addr} may \
                     take it over only once that one is marked down",
                    entry.addr
                )));
            }
            (false, NodeState::Down) => Registered::TookOver {
                from: std::mem::replace(&mut entry.addr, addr.to_string()),
            },
        };
        entry.state = NodeState::Up;
        entry.capacity = capacity;
        entry.last_beat = now;
        let newly_bound = entry.disk.is_none();
        if newly_bound {
            tracing::info!(index, %disk, "OST {index} bound to disk {disk}");
            entry.disk = Some(disk);
        }
        // A new binding must be saved, like any change that moves the epoch.
        if outcome != Registered::AlreadyUp || newly_bound {
            self.bump();
        }
        Ok(Ok(outcome))
    }

    /// Drops the disk bound to OST `index`, whose disk an administrator replaced: the next
    /// registration binds the disk it offers. Returns the disk that was bound (`None`: none
    /// was, nothing changed). Refused for an unknown OST, and for one that is up, whose disk
    /// is evidently in use.
    pub(crate) fn replace_ost(&mut self, index: u32) -> Result<Option<OstUuid>, Error> {
        check_ost_index(index)?;
        let Some(entry) = self.osts.get_mut(&index) else {
            return Err(Error::Invalid(format!(
                "OST {index} is not in the registry: there is no disk to replace"
            )));
        };
        if entry.state == NodeState::Up {
            return Err(Error::Invalid(format!(
                "OST {index} is up, served by {}: its disk is in use. Stop that OSS (the MGS \
                 marks the OST down {NODE_DOWN_AFTER_MS} ms after its last heartbeat) before \
                 replacing the disk",
                entry.addr
            )));
        }
        let old = entry.disk.take();
        if old.is_some() {
            self.bump();
        }
        Ok(old)
    }

    /// The disk bound to OST `index`, if any.
    #[cfg(test)]
    pub(crate) fn bound_disk(&self, index: u32) -> Option<OstUuid> {
        self.osts.get(&index).and_then(|o| o.disk)
    }

    /// Registers the MDS at `addr`. When the registry is full, the down MDS that beat last
    /// longest ago is forgotten to make room (MDS are identified by address only, so ones that
    /// moved would otherwise pile up forever).
    pub(crate) fn register_mds(&mut self, addr: &str, now: Instant) -> Result<Registered, Error> {
        check_addr(addr)?;
        if let Some(entry) = self.mds.get_mut(addr) {
            entry.last_beat = now;
            if entry.state == NodeState::Up {
                return Ok(Registered::AlreadyUp);
            }
            entry.state = NodeState::Up;
            self.bump();
            return Ok(Registered::Returned);
        }
        if self.mds.len() >= MAX_MDS {
            let oldest_down = self
                .mds
                .iter()
                .filter(|(_, m)| m.state == NodeState::Down)
                .min_by_key(|(_, m)| m.last_beat)
                .map(|(a, _)| a.clone());
            let Some(victim) = oldest_down else {
                return Err(Error::Invalid(format!(
                    "the cluster already has the maximum of {MAX_MDS} MDS instances up"
                )));
            };
            tracing::info!(mds = %victim, "forgetting a down MDS to make room");
            self.mds.remove(&victim);
        }
        let entry = MdsEntry {
            state: NodeState::Up,
            last_beat: now,
        };
        self.mds.insert(addr.to_string(), entry);
        self.bump();
        Ok(Registered::New)
    }

    /// A heartbeat of OST `index`; false when the OST must register again.
    pub(crate) fn ost_heartbeat(&mut self, index: u32, capacity: Capacity, now: Instant) -> bool {
        match self.osts.get_mut(&index) {
            Some(o) if o.state == NodeState::Up => {
                o.capacity = capacity;
                o.last_beat = now;
                true
            }
            _ => false,
        }
    }

    /// A heartbeat of the MDS at `addr`; false when it must register again.
    pub(crate) fn mds_heartbeat(&mut self, addr: &str, now: Instant) -> bool {
        match self.mds.get_mut(addr) {
            Some(m) if m.state == NodeState::Up => {
                m.last_beat = now;
                true
            }
            _ => false,
        }
    }

    /// Marks down every node that has not beaten for [`NODE_DOWN_AFTER`]; the epoch moves
    /// once for the whole sweep. Returns the nodes marked down, for the log.
    pub(crate) fn sweep(&mut self, now: Instant) -> Vec<String> {
        let late = |last: Instant| now.saturating_duration_since(last) > NODE_DOWN_AFTER;
        let mut down = Vec::new();
        for (index, o) in &mut self.osts {
            if o.state == NodeState::Up && late(o.last_beat) {
                o.state = NodeState::Down;
                down.push(format!("OST {index} at {}", o.addr));
            }
        }
        for (addr, m) in &mut self.mds {
            if m.state == NodeState::Up && late(m.last_beat) {
                m.state = NodeState::Down;
                down.push(format!("MDS at {addr}"));
            }
        }
        if !down.is_empty() {
            self.bump();
        }
        down
    }

    /// True when [`Registry::sweep`] at `now` would change something (checked without a
    /// copy, so the monitor only clones and persists when it must).
    pub(crate) fn sweep_due(&self, now: Instant) -> bool {
        let late = |last: Instant| now.saturating_duration_since(last) > NODE_DOWN_AFTER;
        self.osts
            .values()
            .any(|o| o.state == NodeState::Up && late(o.last_beat))
            || self
                .mds
                .values()
                .any(|m| m.state == NodeState::Up && late(m.last_beat))
    }

    /// The cluster map as clients see it.
    pub(crate) fn map(&self, cluster: &str, defaults: LayoutDefaults) -> ClusterMap {
        ClusterMap {
            epoch: self.epoch,
            cluster_name: cluster.to_string(),
            osts: self
                .osts
                .iter()
                .map(|(&index, o)| OstInfo {
                    index,
                    addr: o.addr.clone(),
                    state: o.state,
                    capacity: o.capacity,
                })
                .collect(),
            mds: self
                .mds
                .iter()
                .map(|(addr, m)| MdsInfo {
                    addr: addr.clone(),
                    state: m.state,
                })
                .collect(),
            defaults,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{MAX_ADDR_BYTES, MAX_OST_INDEX};

    /// The disk OST `index` registers from in these tests.
    fn disk(index: u32) -> OstUuid {
        OstUuid::from_u128(0xd15c_0000 + u128::from(index))
    }

    /// Registers OST `index` from its usual disk; a wrong disk fails the test.
    fn reg(
        r: &mut Registry,
        index: u32,
        addr: &str,
        capacity: Capacity,
        now: Instant,
    ) -> Result<Registered, Error> {
        r.register_ost(index, addr, disk(index), capacity, now)
            .map(|d| d.expect("the right disk"))
    }

    fn cap(free: u64) -> Capacity {
        Capacity {
            total_bytes: 100,
            free_bytes: free,
            avail_bytes: free,
        }
    }

    #[test]
    fn registration_bumps_epoch_only_on_change() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        assert_eq!(r.epoch(), 1);
        assert_eq!(reg(&mut r, 0, "a:1", cap(1), t0), Ok(Registered::New));
        assert_eq!(r.epoch(), 2);
        assert_eq!(reg(&mut r, 0, "a:1", cap(2), t0), Ok(Registered::AlreadyUp));
        assert_eq!(r.epoch(), 2);
        assert_eq!(r.register_mds("m:1", t0), Ok(Registered::New));
        assert_eq!(r.register_mds("m:1", t0), Ok(Registered::AlreadyUp));
        assert_eq!(r.epoch(), 3);
        let map = r.map("c", LayoutDefaults::default());
        assert_eq!(map.osts[0].capacity, cap(2));
        assert_eq!(map.mds[0].state, NodeState::Up);
    }

    #[test]
    fn sweep_marks_down_after_two_missed_beats_and_fences() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        reg(&mut r, 3, "a:1", cap(1), t0).unwrap();
        r.register_mds("m:1", t0).unwrap();
        let e = r.epoch();
        // Exactly at the limit is not late yet.
        assert!(r.sweep(t0 + NODE_DOWN_AFTER).is_empty());
        assert!(r.ost_heartbeat(3, cap(5), t0 + Duration::from_millis(2000)));
        let later = t0 + Duration::from_millis(2000) + NODE_DOWN_AFTER + Duration::from_millis(1);
        assert!(r.sweep_due(later));
        let down = r.sweep(later);
        assert_eq!(down.len(), 2, "{down:?}");
        assert_eq!(r.epoch(), e + 1, "one bump per sweep");
        assert!(!r.sweep_due(later));
        // Down nodes are told to register again; their beats do not count.
        assert!(!r.ost_heartbeat(3, cap(5), later));
        assert!(!r.mds_heartbeat("m:1", later));
        assert!(!r.ost_heartbeat(9, cap(5), later), "unknown OST");
        assert_eq!(
            reg(&mut r, 3, "a:1", cap(1), later),
            Ok(Registered::Returned)
        );
        assert_eq!(r.register_mds("m:1", later), Ok(Registered::Returned));
        assert_eq!(r.epoch(), e + 3);
        assert!(r.ost_heartbeat(3, cap(5), later));
    }

    #[test]
    fn address_conflict_and_takeover() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        reg(&mut r, 1, "a:1", cap(1), t0).unwrap();
        let e = r.epoch();
        let err = reg(&mut r, 1, "b:1", cap(1), t0).unwrap_err();
        assert!(
            matches!(&err, Error::Invalid(m) if m.contains("conflict")),
            "{err:?}"
        );
        assert_eq!(r.epoch(), e, "a refusal changes nothing");
        let later = t0 + NODE_DOWN_AFTER * 2;
        r.sweep(later);
        assert_eq!(
            reg(&mut r, 1, "b:1", cap(1), later),
            Ok(Registered::TookOver { from: "a:1".into() })
        );
        assert_eq!(r.map("c", LayoutDefaults::default()).osts[0].addr, "b:1");
        assert_eq!(r.epoch(), e + 2);
    }

    #[test]
    fn bad_input_refused() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        assert!(reg(&mut r, 0, "", cap(0), t0).is_err());
        assert!(reg(&mut r, 0, "a b:1", cap(0), t0).is_err());
        assert!(reg(&mut r, 0, &"x".repeat(MAX_ADDR_BYTES + 1), cap(0), t0).is_err());
        assert!(reg(&mut r, MAX_OST_INDEX + 1, "a:1", cap(0), t0).is_err());
        assert!(r.register_mds("a\n:1", t0).is_err());
        assert_eq!(r.epoch(), 1);
    }

    #[test]
    fn full_mds_registry_forgets_the_oldest_down_one() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        for i in 0..MAX_MDS {
            r.register_mds(&format!("m:{i}"), t0).unwrap();
        }
        assert!(r.register_mds("extra:1", t0).is_err(), "all up: refused");
        let later = t0 + NODE_DOWN_AFTER * 2;
        assert!(r.mds_heartbeat("m:7", later - NODE_DOWN_AFTER / 2));
        r.sweep(later);
        assert_eq!(r.register_mds("extra:1", later), Ok(Registered::New));
        let map = r.map("c", LayoutDefaults::default());
        assert_eq!(map.mds.len(), MAX_MDS);
        assert!(
            map.mds.iter().any(|m| m.addr == "m:7"),
            "the fresher one stays"
        );
    }

    #[test]
    fn restore_marks_everything_down_and_moves_the_epoch() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        reg(&mut r, 2, "a:1", cap(7), t0).unwrap();
        r.register_mds("m:1", t0).unwrap();
        let file = r.to_file("c");
        let back = Registry::restore(&file, t0);
        assert_eq!(back.epoch(), r.epoch() + 1);
        let map = back.map("c", LayoutDefaults::default());
        assert_eq!(map.osts.len(), 1);
        assert_eq!(map.osts[0].state, NodeState::Down);
        assert_eq!(map.osts[0].capacity, cap(7));
        assert_eq!(map.mds[0].state, NodeState::Down);
    }

    #[test]
    fn the_first_disk_binds_the_index_and_another_is_refused() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        let (a, b) = (OstUuid::from_u128(0xa), OstUuid::from_u128(0xb));
        assert_eq!(
            r.register_ost(2, "h:1", a, cap(1), t0),
            Ok(Ok(Registered::New))
        );
        assert_eq!(r.bound_disk(2), Some(a));
        let e = r.epoch();
        // Another disk is refused, up or down, at the same address or another; nothing
        // changes.
        let refused = Ok(Err(WrongDisk { bound: a }));
        assert_eq!(r.register_ost(2, "h:1", b, cap(1), t0), refused);
        r.sweep(t0 + NODE_DOWN_AFTER * 2);
        let e_down = r.epoch();
        assert_eq!(e_down, e + 1);
        let later = t0 + NODE_DOWN_AFTER * 2;
        assert_eq!(r.register_ost(2, "h:1", b, cap(1), later), refused);
        assert_eq!(r.register_ost(2, "other:1", b, cap(1), later), refused);
        assert_eq!(r.epoch(), e_down, "a refusal changes nothing");
        let map = r.map("c", LayoutDefaults::default());
        assert_eq!(
            map.osts[0].state,
            NodeState::Down,
            "a refused disk stays down"
        );
        // The bound disk comes back, even from another address.
        assert_eq!(
            r.register_ost(2, "other:1", a, cap(1), later),
            Ok(Ok(Registered::TookOver { from: "h:1".into() }))
        );
        // Another OST's binding is its own.
        assert_eq!(
            r.register_ost(3, "h:2", b, cap(1), later),
            Ok(Ok(Registered::New))
        );
    }

    #[test]
    fn replace_drops_the_binding_only_while_the_ost_is_down() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        let (a, b) = (OstUuid::from_u128(0xa), OstUuid::from_u128(0xb));
        r.register_ost(2, "h:1", a, cap(1), t0).unwrap().unwrap();
        let err = r.replace_ost(2).unwrap_err();
        assert!(err.to_string().contains("OST 2 is up"), "{err}");
        assert!(r.replace_ost(5).is_err(), "unknown OST");
        assert_eq!(r.bound_disk(2), Some(a));
        let later = t0 + NODE_DOWN_AFTER * 2;
        r.sweep(later);
        let e = r.epoch();
        assert_eq!(r.replace_ost(2), Ok(Some(a)));
        assert_eq!(r.epoch(), e + 1, "the dropped binding is a change to save");
        assert_eq!(r.bound_disk(2), None);
        // Again: nothing bound, nothing changes.
        assert_eq!(r.replace_ost(2), Ok(None));
        assert_eq!(r.epoch(), e + 1);
        // The next registration binds the new disk, and the old one is now refused.
        assert_eq!(
            r.register_ost(2, "h:1", b, cap(1), later),
            Ok(Ok(Registered::Returned))
        );
        assert_eq!(r.bound_disk(2), Some(b));
        assert_eq!(
            r.register_ost(2, "h:1", a, cap(1), later),
            Ok(Err(WrongDisk { bound: b }))
        );
    }

    #[test]
    fn bindings_survive_a_restore_and_unbound_ones_bind_on_registration() {
        let t0 = Instant::now();
        let mut r = Registry::new();
        let (a, b) = (OstUuid::from_u128(0xa), OstUuid::from_u128(0xb));
        r.register_ost(1, "h:1", a, cap(1), t0).unwrap().unwrap();
        r.register_ost(2, "h:2", b, cap(1), t0).unwrap().unwrap();
        let mut file = r.to_file("c");
        // As an MGS of an earlier version saved OST 2: with no disk.
        file.osts.iter_mut().find(|o| o.index == 2).unwrap().disk = None;
        let mut back = Registry::restore(&file, t0);
        assert_eq!(back.bound_disk(1), Some(a));
        assert_eq!(back.bound_disk(2), None);
        assert_eq!(
            back.register_ost(1, "h:1", b, cap(1), t0),
            Ok(Err(WrongDisk { bound: a }))
        );
        // The unbound OST binds whichever disk registers it first, while up too.
        let e = back.epoch();
        assert_eq!(
            back.register_ost(2, "h:2", a, cap(1), t0),
            Ok(Ok(Registered::Returned))
        );
        assert_eq!(back.bound_disk(2), Some(a));
        assert_eq!(back.epoch(), e + 1);
        assert_eq!(back.to_file("c").osts[1].disk, Some(a));
    }
}
