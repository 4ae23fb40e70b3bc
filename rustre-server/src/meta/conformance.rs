//! The KV conformance suite: what every metadata backend must do, run against each one.
//!
//! [`run_suite`] exercises a [`Kv`] through its public API only: point reads and writes,
//! ordered range scans (big-endian integer keys in numeric order, start inclusive, end
//! exclusive, limit), read-your-own-writes, `clear_range`, `atomic_add`, rollback on `Err`,
//! FDB's size limits, lost updates under contention, write skew and phantoms under
//! serializable isolation, and group commit. Every check can fail on a wrong backend.
//!
//! Tests here: the suite on a fresh embedded store, reopen-after-drop and commit-survives-
//! SIGKILL on the embedded store, and the suite on FoundationDB when
//! `RUSTRE_FDB_CLUSTER_FILE` names a cluster file (feature `fdb`; skipped otherwise).
//!
//! All keys the suite touches live under [`SUITE_PREFIX`], which it clears before and after.

use super::limits::{MAX_KEY_BYTES, MAX_VALUE_BYTES};
use super::{Kv, KvError, Transaction};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;

/// Every key written by the suite starts with this.
const SUITE_PREFIX: &[u8] = b"t/";
/// One past the last key under [`SUITE_PREFIX`] (`'/' + 1 == '0'`).
const SUITE_END: &[u8] = b"t0";
/// Increments per thread in the lost-update test.
const COUNTER_INCREMENTS: u64 = 500;
/// Rounds of the write-skew and phantom tests.
const SKEW_ROUNDS: usize = 100;
/// Concurrent `durable()` callers in the group-commit test.
const DURABLE_CALLERS: usize = 64;

/// `t/{name}`.
fn key(name: &str) -> Vec<u8> {
    let mut k = SUITE_PREFIX.to_vec();
    k.extend_from_slice(name.as_bytes());
    k
}

/// `t/{section}/` followed by `n` big-endian, so keys sort in numeric order.
fn num_key(section: &str, n: u64) -> Vec<u8> {
    let mut k = key(section);
    k.push(b'/');
    k.extend_from_slice(&n.to_be_bytes());
    k
}

/// The interval holding every `num_key(section, _)`.
fn section(section: &str) -> (Vec<u8>, Vec<u8>) {
    let mut start = key(section);
    start.push(b'/');
    let mut end = key(section);
    end.push(b'/' + 1);
    (start, end)
}

/// Runs `f` as a transaction that must succeed.
fn tx<T>(kv: &Kv, f: impl FnMut(&mut dyn Transaction) -> Result<T, KvError>) -> T {
    match kv.transact(f) {
        Ok(v) => v,
        Err(e) => panic!("transaction failed: {e}"),
    }
}

/// Reads `key` in its own transaction.
fn read(kv: &Kv, k: &[u8]) -> Option<Vec<u8>> {
    tx(kv, |t| t.get(k))
}

/// A u64 stored big-endian (absent reads as 0).
fn get_u64(t: &mut dyn Transaction, k: &[u8]) -> Result<u64, KvError> {
    Ok(match t.get(k)? {
        Some(v) => u64::from_be_bytes(v.as_slice().try_into().expect("8-byte value")),
        None => 0,
    })
}

/// The keys of a range result.
fn keys(kvs: &[(Vec<u8>, Vec<u8>)]) -> Vec<Vec<u8>> {
    kvs.iter().map(|(k, _)| k.clone()).collect()
}

/// Removes everything the suite may have left behind.
fn reset(kv: &Kv) {
    tx(kv, |t| t.clear_range(SUITE_PREFIX, SUITE_END));
    let left = tx(kv, |t| t.range(SUITE_PREFIX, SUITE_END, 1));
    assert!(left.is_empty(), "clear_range left {left:?}");
}

/// Runs every check against `kv`. Blocking; spawns threads and a tokio runtime of its own.
pub(crate) fn run_suite(kv: &Kv) {
    run_serial_checks(kv);
    write_skew(kv);
    phantom(kv);
    group_commit(kv);
    reset(kv);
}

/// The checks a store that runs one transaction at a time can pass (the in-memory store):
/// all but those that hold two transactions open at once (write skew, phantoms).
fn run_serial_checks(kv: &Kv) {
    reset(kv);
    basic(kv);
    range_order(kv);
    read_your_writes(kv);
    clear_range(kv);
    atomic_add(kv);
    rollback(kv);
    limits(kv);
    lost_update(kv);
}

fn basic(kv: &Kv) {
    let k = key("basic");
    assert_eq!(read(kv, &k), None);
    tx(kv, |t| {
        t.set(&k, b"one");
        Ok(())
    });
    assert_eq!(read(kv, &k).as_deref(), Some(&b"one"[..]));
    tx(kv, |t| {
        t.set(&k, b"two");
        Ok(())
    });
    assert_eq!(read(kv, &k).as_deref(), Some(&b"two"[..]));
    // An empty value is a value, not an absent key.
    tx(kv, |t| {
        t.set(&k, b"");
        Ok(())
    });
    assert_eq!(read(kv, &k).as_deref(), Some(&b""[..]));
    tx(kv, |t| {
        t.clear(&k);
        Ok(())
    });
    assert_eq!(read(kv, &k), None);
    // Clearing an absent key is fine.
    tx(kv, |t| {
        t.clear(&k);
        Ok(())
    });
    assert_eq!(read(kv, &k), None);
    // clear_if_set removes a key that is there, in the transaction and after it, and
    // leaves an absent one absent.
    tx(kv, |t| {
        t.set(&k, b"three");
        Ok(())
    });
    let seen = tx(kv, |t| {
        t.clear_if_set(&k)?;
        t.get(&k)
    });
    assert_eq!(seen, None, "the transaction still saw the key");
    assert_eq!(read(kv, &k), None);
    tx(kv, |t| t.clear_if_set(&k));
    assert_eq!(read(kv, &k), None);
    // And one set earlier in the same transaction.
    tx(kv, |t| {
        t.set(&k, b"four");
        t.clear_if_set(&k)
    });
    assert_eq!(read(kv, &k), None);
}

fn range_order(kv: &Kv) {
    // Inserted out of order; byte-wise little-endian order would differ from numeric order.
    let nums = [256u64, 1, 1 << 40, 255, 0, 65_536, 2, u64::MAX];
    tx(kv, |t| {
        for n in nums {
            t.set(&num_key("r", n), &n.to_le_bytes());
        }
        Ok(())
    });
    let mut sorted = nums.to_vec();
    sorted.sort_unstable();
    let (start, end) = section("r");

    let all = tx(kv, |t| t.range(&start, &end, usize::MAX));
    let want: Vec<Vec<u8>> = sorted.iter().map(|&n| num_key("r", n)).collect();
    assert_eq!(keys(&all), want, "range must return keys in numeric order");
    for (k, v) in &all {
        let n = u64::from_be_bytes(k[k.len() - 8..].try_into().expect("8 bytes"));
        assert_eq!(v, &n.to_le_bytes().to_vec(), "value belongs to its key");
    }

    // Start inclusive, end exclusive.
    let mid = tx(kv, |t| t.range(&num_key("r", 2), &num_key("r", 256), 100));
    assert_eq!(keys(&mid), vec![num_key("r", 2), num_key("r", 255)]);
    // Bounds that fall between keys.
    let mid = tx(kv, |t| {
        t.range(&num_key("r", 3), &num_key("r", 65_537), 100)
    });
    assert_eq!(
        keys(&mid),
        vec![num_key("r", 255), num_key("r", 256), num_key("r", 65_536)]
    );
    // Limit: the first `limit` keys in order.
    let first3 = tx(kv, |t| t.range(&start, &end, 3));
    assert_eq!(keys(&first3), want[..3].to_vec());
    // Paging with the last key as cursor (how readdir uses it) visits everything once.
    let mut paged = Vec::new();
    let mut cursor = start.clone();
    loop {
        let page = tx(kv, |t| t.range(&cursor, &end, 3));
        let Some((last, _)) = page.last() else { break };
        cursor = last.clone();
        cursor.push(0);
        paged.extend(keys(&page));
    }
    assert_eq!(paged, want);
    // Limit 0, empty and inverted intervals read nothing.
    assert!(tx(kv, |t| t.range(&start, &end, 0)).is_empty());
    assert!(tx(kv, |t| t.range(&start, &start, 10)).is_empty());
    assert!(tx(kv, |t| t.range(&end, &start, 10)).is_empty());
    // Keys outside the section are not returned.
    tx(kv, |t| {
        t.set(&key("r"), b"outside");
        t.set(&end, b"outside");
        Ok(())
    });
    assert_eq!(keys(&tx(kv, |t| t.range(&start, &end, 100))), want);
}

fn read_your_writes(kv: &Kv) {
    let (start, end) = section("ryw");
    tx(kv, |t| {
        for n in [1u64, 2, 3] {
            t.set(&num_key("ryw", n), b"committed");
        }
        Ok(())
    });
    tx(kv, |t| {
        // New key, overwritten key, deleted key.
        t.set(&num_key("ryw", 4), b"new");
        t.set(&num_key("ryw", 2), b"changed");
        t.clear(&num_key("ryw", 3));
        assert_eq!(t.get(&num_key("ryw", 4))?.as_deref(), Some(&b"new"[..]));
        assert_eq!(t.get(&num_key("ryw", 2))?.as_deref(), Some(&b"changed"[..]));
        assert_eq!(t.get(&num_key("ryw", 3))?, None);
        let seen = t.range(&start, &end, 100)?;
        assert_eq!(
            seen,
            vec![
                (num_key("ryw", 1), b"committed".to_vec()),
                (num_key("ryw", 2), b"changed".to_vec()),
                (num_key("ryw", 4), b"new".to_vec()),
            ],
            "range must merge the transaction's own writes and deletes"
        );
        // A limit counts the merged view, not the stored one.
        assert_eq!(
            keys(&t.range(&start, &end, 2)?),
            vec![num_key("ryw", 1), num_key("ryw", 2)]
        );
        // Write, then delete, within the transaction: gone.
        t.set(&num_key("ryw", 5), b"short-lived");
        t.clear(&num_key("ryw", 5));
        assert_eq!(t.get(&num_key("ryw", 5))?, None);
        Ok(())
    });
    // And the same view once committed.
    let after = tx(kv, |t| t.range(&start, &end, 100));
    assert_eq!(
        keys(&after),
        vec![num_key("ryw", 1), num_key("ryw", 2), num_key("ryw", 4)]
    );
}

fn clear_range(kv: &Kv) {
    let (start, end) = section("cr");
    tx(kv, |t| {
        for n in 0..10u64 {
            t.set(&num_key("cr", n), b"v");
        }
        Ok(())
    });
    tx(kv, |t| {
        // Written in this transaction, inside the cleared interval: must go too.
        t.set(&num_key("cr", 5_000), b"same-tx");
        t.clear_range(&num_key("cr", 2), &num_key("cr", 6))?;
        t.clear_range(&num_key("cr", 100), &num_key("cr", 10_000))?;
        let left = t.range(&start, &end, 100)?;
        let want: Vec<Vec<u8>> = [0u64, 1, 6, 7, 8, 9]
            .iter()
            .map(|&n| num_key("cr", n))
            .collect();
        assert_eq!(keys(&left), want, "inside the transaction");
        // Written after the clear: stays.
        t.set(&num_key("cr", 3), b"after-clear");
        Ok(())
    });
    let left = tx(kv, |t| t.range(&start, &end, 100));
    let want: Vec<Vec<u8>> = [0u64, 1, 3, 6, 7, 8, 9]
        .iter()
        .map(|&n| num_key("cr", n))
        .collect();
    assert_eq!(
        keys(&left),
        want,
        "start removed, end kept, later write kept"
    );
    assert_eq!(
        read(kv, &num_key("cr", 3)).as_deref(),
        Some(&b"after-clear"[..])
    );
    // Inverted and empty intervals clear nothing.
    tx(kv, |t| {
        t.clear_range(&end, &start)?;
        t.clear_range(&start, &start)
    });
    assert_eq!(tx(kv, |t| t.range(&start, &end, 100)).len(), 7);
}

fn atomic_add(kv: &Kv) {
    let k = key("add");
    let le = |v: i64| v.to_le_bytes().to_vec();
    tx(kv, |t| t.atomic_add(&k, 5));
    assert_eq!(read(kv, &k), Some(le(5)), "absent counts as 0");
    tx(kv, |t| t.atomic_add(&k, -7));
    assert_eq!(read(kv, &k), Some(le(-2)));
    tx(kv, |t| {
        t.atomic_add(&k, 10)?;
        t.atomic_add(&k, 100)?;
        assert_eq!(t.get(&k)?, Some(le(108)), "read-your-own atomic adds");
        Ok(())
    });
    assert_eq!(read(kv, &k), Some(le(108)));
    // On a value set earlier in the same transaction.
    tx(kv, |t| {
        t.set(&k, &le(1_000));
        t.atomic_add(&k, 1)
    });
    assert_eq!(read(kv, &k), Some(le(1_001)));
    // Wraps like FDB's ADD.
    tx(kv, |t| {
        t.set(&k, &le(i64::MAX));
        t.atomic_add(&k, 1)
    });
    assert_eq!(read(kv, &k), Some(le(i64::MIN)));
}

#[derive(Debug, PartialEq)]
enum AbortError {
    Kv(KvError),
    Abort,
}

impl From<KvError> for AbortError {
    fn from(e: KvError) -> Self {
        AbortError::Kv(e)
    }
}

fn rollback(kv: &Kv) {
    let keep = key("rb-keep");
    let gone = key("rb-gone");
    tx(kv, |t| {
        t.set(&keep, b"before");
        Ok(())
    });
    let mut runs = 0;
    let r: Result<(), AbortError> = kv.transact(|t| {
        runs += 1;
        t.set(&gone, b"x");
        t.set(&keep, b"after");
        t.clear_range(SUITE_PREFIX, SUITE_END)?;
        t.atomic_add(&key("rb-add"), 1)?;
        Err(AbortError::Abort)
    });
    assert_eq!(
        r,
        Err(AbortError::Abort),
        "the closure's error is returned as is"
    );
    assert_eq!(runs, 1, "an abort is not retried");
    assert_eq!(read(kv, &gone), None);
    assert_eq!(read(kv, &key("rb-add")), None);
    assert_eq!(read(kv, &keep).as_deref(), Some(&b"before"[..]));
}

fn limits(kv: &Kv) {
    let big_key = vec![b'k'; MAX_KEY_BYTES + 1];
    let big_value = vec![0u8; MAX_VALUE_BYTES + 1];
    let ok = key("limit-ok");
    // Oversized writes fail the whole transaction even if the closure ignores them.
    let r = kv.transact(|t| {
        t.set(&ok, b"v");
        t.set(&big_key, b"v");
        Ok::<_, KvError>(())
    });
    assert!(
        matches!(r, Err(KvError::Storage(_))),
        "oversized key: {r:?}"
    );
    let r = kv.transact(|t| {
        t.set(&ok, b"v");
        t.set(&ok, &big_value);
        Ok::<_, KvError>(())
    });
    assert!(
        matches!(r, Err(KvError::Storage(_))),
        "oversized value: {r:?}"
    );
    assert_eq!(
        read(kv, &ok),
        None,
        "nothing of a failed transaction is applied"
    );
    // The largest allowed value is fine.
    let max_value = vec![7u8; MAX_VALUE_BYTES];
    tx(kv, |t| {
        t.set(&ok, &max_value);
        Ok(())
    });
    assert_eq!(read(kv, &ok), Some(max_value));
}

/// Two threads each do read-increment-write transactions on one counter: conflicts must be
/// detected and retried, so no increment is lost.
fn lost_update(kv: &Kv) {
    let k = key("counter");
    let attempts = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..COUNTER_INCREMENTS {
                    tx(kv, |t| {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        let v = get_u64(t, &k)?;
                        t.set(&k, &(v + 1).to_be_bytes());
                        Ok(())
                    });
                }
            });
        }
    });
    let total = tx(kv, |t| get_u64(t, &k));
    assert_eq!(total, 2 * COUNTER_INCREMENTS, "lost updates");
    eprintln!(
        "lost_update: {} attempts for {} increments",
        attempts.load(Ordering::Relaxed),
        2 * COUNTER_INCREMENTS
    );
}

/// Classic write skew: two on-call doctors, each may go off call only if the other is still
/// on call. Both transactions read both keys before either commits (a barrier makes them
/// overlap), so snapshot isolation would let both go off call; serializable must not.
fn write_skew(kv: &Kv) {
    let a = key("skew-a");
    let b = key("skew-b");
    let mut retried = 0;
    for round in 0..SKEW_ROUNDS {
        tx(kv, |t| {
            t.set(&a, &1u64.to_be_bytes());
            t.set(&b, &1u64.to_be_bytes());
            Ok(())
        });
        let barrier = Barrier::new(2);
        let retries = AtomicU64::new(0);
        std::thread::scope(|s| {
            for mine in [&a, &b] {
                let (a, b, barrier, retries) = (&a, &b, &barrier, &retries);
                s.spawn(move || {
                    let mut first = true;
                    tx(kv, |t| {
                        let on_call = get_u64(t, a)? + get_u64(t, b)?;
                        if first {
                            first = false;
                            // Both have read before either writes or commits.
                            barrier.wait();
                        } else {
                            retries.fetch_add(1, Ordering::Relaxed);
                        }
                        if on_call >= 2 {
                            t.set(mine, &0u64.to_be_bytes());
                        }
                        Ok(())
                    });
                });
            }
        });
        let on_call = tx(kv, |t| Ok(get_u64(t, &a)? + get_u64(t, &b)?));
        assert_eq!(
            on_call, 1,
            "write skew in round {round}: nobody left on call"
        );
        let r = retries.load(Ordering::Relaxed);
        assert!(
            r >= 1,
            "round {round}: overlapping transactions did not conflict"
        );
        retried += r;
    }
    eprintln!("write_skew: {SKEW_ROUNDS} rounds, {retried} retries");
}

/// Write skew through a range read: each transaction inserts a row only if the range is
/// empty. Without range conflict tracking both would insert.
fn phantom(kv: &Kv) {
    let (start, end) = section("ph");
    for round in 0..SKEW_ROUNDS {
        tx(kv, |t| t.clear_range(&start, &end));
        let barrier = Barrier::new(2);
        std::thread::scope(|s| {
            for me in 0..2u64 {
                let (start, end, barrier) = (&start, &end, &barrier);
                s.spawn(move || {
                    let mut first = true;
                    tx(kv, |t| {
                        let rows = t.range(start, end, 10)?;
                        if first {
                            first = false;
                            barrier.wait();
                        }
                        if rows.is_empty() {
                            t.set(&num_key("ph", me), b"row");
                        }
                        Ok(())
                    });
                });
            }
        });
        let rows = tx(kv, |t| t.range(&start, &end, 10));
        assert_eq!(rows.len(), 1, "phantom in round {round}: {:?}", keys(&rows));
    }
}

/// `durable()` always waits for a new sync; concurrent callers share syncs.
fn group_commit(kv: &Kv) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        for _ in 0..3 {
            let before = kv.group.syncs_done();
            kv.durable().await.expect("durable");
            assert!(
                kv.group.syncs_done() > before,
                "durable() returned without a sync that started after the call"
            );
        }

        let before = kv.group.syncs_done();
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(DURABLE_CALLERS));
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..DURABLE_CALLERS {
            let kv = kv.clone();
            let start = start.clone();
            tasks.spawn(async move {
                let k = num_key("gc", i as u64);
                let kv2 = kv.clone();
                tokio::task::spawn_blocking(move || {
                    tx(&kv2, |t| {
                        t.set(&k, b"v");
                        Ok(())
                    })
                })
                .await
                .expect("commit task");
                start.wait().await;
                kv.durable().await
            });
        }
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            r.expect("durable task").expect("durable");
            ok += 1;
        }
        assert_eq!(ok, DURABLE_CALLERS);
        let syncs = kv.group.syncs_done() - before;
        eprintln!("group_commit: {DURABLE_CALLERS} concurrent durable() calls, {syncs} syncs");
        assert!(syncs >= 1, "no sync ran");
        assert!(
            syncs < DURABLE_CALLERS as u64,
            "{syncs} syncs for {DURABLE_CALLERS} callers: not grouped"
        );
    });
}

/// Child side of `commit_survives_sigkill`: set when the test binary runs as the child.
const SIGKILL_CHILD_ENV: &str = "RUSTRE_KV_SIGKILL_CHILD_DIR";
/// Printed by the child once its commits have returned.
const SIGKILL_MARKER: &str = "RUSTRE-KV-COMMITTED";
/// Transactions the child commits before it is killed (a few KiB: all would still sit in
/// fjall's 8 KiB journal buffer if commits did not flush it).
const SIGKILL_COMMITS: u64 = 50;

#[test]
fn memory_conformance() {
    let kv = Kv::open_memory();
    run_serial_checks(&kv);
    group_commit(&kv);
    reset(&kv);
}

#[test]
fn embedded_conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = Kv::open_embedded(dir.path()).expect("open");
    run_suite(&kv);
}

#[test]
fn written_prefixes_are_shared_by_clones_of_a_local_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = Kv::open_embedded(dir.path()).expect("open");
    let other = kv.clone();
    assert!(kv.take_written(0x08), "a fresh handle knows nothing yet");
    assert!(!kv.take_written(0x08));
    let mut set = super::PrefixSet::default();
    set.add_key(&[0x08, 0, 0, 0, 0, 0, 0, 0, 7]);
    other.note_written(&set);
    assert!(kv.take_written(0x08), "a clone's write was missed");
    assert!(
        !other.take_written(0x08),
        "taken through one clone, taken for all"
    );
    kv.mark_written(0x08);
    assert!(other.take_written(0x08));
    // Another store's handle has its own.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let kv2 = Kv::open_embedded(dir2.path()).expect("open");
    assert!(kv2.take_written(0x08));
    assert!(!kv2.take_written(0x08));
    kv.mark_written(0x08);
    assert!(!kv2.take_written(0x08));
}

#[test]
fn embedded_reopen_keeps_synced_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let kv = Kv::open_embedded(dir.path()).expect("open");
        tx(&kv, |t| {
            for n in 0..100u64 {
                t.set(&num_key("reopen", n), &n.to_be_bytes());
            }
            t.atomic_add(&key("reopen-count"), 100)
        });
        kv.backend.sync().expect("sync");
    }
    let kv = Kv::open_embedded(dir.path()).expect("reopen");
    let (start, end) = section("reopen");
    let rows = tx(&kv, |t| t.range(&start, &end, 1_000));
    assert_eq!(rows.len(), 100);
    for (n, (k, v)) in rows.iter().enumerate() {
        assert_eq!(k, &num_key("reopen", n as u64));
        assert_eq!(v, &(n as u64).to_be_bytes().to_vec());
    }
    assert_eq!(
        read(&kv, &key("reopen-count")),
        Some(100i64.to_le_bytes().to_vec())
    );
}

/// `FjallStore::sync` fsyncs the active journal itself, relying on fjall's journal layout
/// (`{dir}/{id}.jnl`, highest id active, rotated with `id + 1`). Fail loudly if a fjall
/// update changes that layout.
#[test]
fn fjall_journal_layout() {
    use super::fjall_store::active_journal;
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = Kv::open_embedded(dir.path()).expect("open");
    let first = active_journal(dir.path())
        .expect("list")
        .expect("fjall 3 keeps its journals as {dir}/{id}.jnl");
    let before = std::fs::read(&first).expect("read journal");
    tx(&kv, |t| {
        t.set(&key("journal-probe"), b"probe-value-4f1c");
        Ok(())
    });
    kv.backend.sync().expect("sync");
    let after = std::fs::read(&first).expect("read journal");
    assert_ne!(
        before, after,
        "the commit did not go to the journal we fsync"
    );
    assert!(
        after.windows(16).any(|w| w == b"probe-value-4f1c"),
        "the committed value is not in {}",
        first.display()
    );
    assert_eq!(
        active_journal(dir.path()).expect("list").as_ref(),
        Some(&first),
        "a new, empty store has exactly one active journal"
    );
}

/// The child process of `commit_survives_sigkill`; does nothing in a normal test run.
#[test]
fn sigkill_child() {
    let Some(dir) = std::env::var_os(SIGKILL_CHILD_ENV) else {
        return;
    };
    let kv = Kv::open_embedded(std::path::Path::new(&dir)).expect("open");
    for n in 0..SIGKILL_COMMITS {
        tx(&kv, |t| {
            t.set(&num_key("killed", n), &n.to_be_bytes());
            Ok(())
        });
    }
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{SIGKILL_MARKER}").expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    // Wait to be killed; never sync, never drop the store.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Commits acknowledged without any sync survive a SIGKILL of the process (they reached the
/// OS page cache); see the durability notes in `fjall_store.rs`.
#[test]
fn commit_survives_sigkill() {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    if std::env::var_os(SIGKILL_CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "meta::conformance::sigkill_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(SIGKILL_CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("child stdout");
    let committed = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(SIGKILL_MARKER));
    // Child::kill sends SIGKILL.
    child.kill().expect("kill child");
    child.wait().expect("reap child");
    assert!(committed, "child exited before committing");

    let kv = Kv::open_embedded(dir.path()).expect("reopen after SIGKILL");
    let (start, end) = section("killed");
    let rows = tx(&kv, |t| t.range(&start, &end, 1_000));
    assert_eq!(
        rows.len() as u64,
        SIGKILL_COMMITS,
        "acknowledged commits lost on SIGKILL"
    );
}

#[cfg(feature = "fdb")]
#[test]
fn fdb_conformance() {
    let Some(cluster_file) = std::env::var_os("RUSTRE_FDB_CLUSTER_FILE") else {
        eprintln!("fdb_conformance skipped: RUSTRE_FDB_CLUSTER_FILE is not set");
        return;
    };
    let kv = Kv::open_fdb(
        std::path::Path::new(&cluster_file),
        b"rustre-test/conformance/",
    )
    .expect("open fdb");
    run_suite(&kv);
    // Other processes write FoundationDB: a prefix is never known unwritten.
    assert!(kv.take_written(0x08) && kv.take_written(0x08));
}
