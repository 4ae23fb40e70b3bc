//! Changes sent together ([`super::batch`]): run in order, each recorded under its own
//! request number so that a batch sent again replays what committed, and a batch the MDS
//! may not run refused whole.

use rustre_proto::msg::mds::{MdsOp, MdsResponse, Numbered, BATCH_MAX_OPS};
use rustre_proto::msg::{Creds, Ino, ROOT_INO};
use rustre_proto::Error;

use super::names_changed_tests::{create, mkdir};
use super::tests::{call_in, TestCluster};

fn unlink(name: &str) -> MdsOp {
    MdsOp::Unlink {
        parent: ROOT_INO,
        name: name.into(),
    }
}

fn rename(name: &str, new_name: &str) -> MdsOp {
    MdsOp::Rename {
        parent: ROOT_INO,
        name: name.into(),
        new_parent: ROOT_INO,
        new_name: new_name.into(),
        flags: 0,
    }
}

fn lookup(name: &str) -> MdsOp {
    MdsOp::Lookup {
        parent: ROOT_INO,
        name: name.into(),
    }
}

/// The inode `name` in the root leads to, if any.
async fn found(t: &TestCluster, name: &str) -> Option<Ino> {
    match t.call_as(Creds::root(), 0, lookup(name)).await {
        Ok(MdsResponse::Attr(a)) => Some(a.ino),
        Err(Error::NotFound) => None,
        other => panic!("{other:?}"),
    }
}

/// The answers of `ops` sent as one batch, numbered from `first_seq`.
async fn batch(t: &TestCluster, first_seq: u64, ops: &[MdsOp]) -> Vec<Result<MdsResponse, Error>> {
    let ops = ops
        .iter()
        .zip(first_seq..)
        .map(|(op, seq)| Numbered {
            seq,
            op: op.clone(),
        })
        .collect();
    match t.call_as(Creds::root(), 0, MdsOp::Batch { ops }).await {
        Ok(MdsResponse::Batch(answers)) => answers,
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_runs_in_order_and_sent_again_replays_what_committed() {
    let t = TestCluster::start(1).await;
    for name in ["a", "b", "c"] {
        t.create(name, 1, 1).await.unwrap();
    }
    let b = found(&t, "b").await.unwrap();
    // In order: `a` goes, then `b` takes its name (the other way round the unlink would
    // remove the renamed file); a name already gone fails alone.
    let ops = [unlink("a"), rename("b", "a"), unlink("gone"), unlink("c")];
    let first = batch(&t, 1_000, &ops).await;
    assert_eq!(first.len(), 4);
    assert!(matches!(first[0], Ok(MdsResponse::NamesChanged(_))));
    assert!(matches!(first[1], Ok(MdsResponse::NamesChanged(_))));
    assert!(matches!(first[2], Err(Error::NotFound)), "{:?}", first[2]);
    assert!(matches!(first[3], Ok(MdsResponse::NamesChanged(_))));
    assert_eq!(found(&t, "a").await, Some(b));
    assert_eq!(found(&t, "b").await, None);
    assert_eq!(found(&t, "c").await, None);
    // Sent again (a reply lost): the recorded answers, nothing run twice (the unlink of
    // `a` run again would remove the file renamed there).
    let again = batch(&t, 1_000, &ops).await;
    assert!(matches!(again[0], Ok(MdsResponse::NamesChanged(_))));
    assert!(matches!(again[1], Ok(MdsResponse::NamesChanged(_))));
    assert!(matches!(again[2], Err(Error::NotFound)));
    assert!(matches!(again[3], Ok(MdsResponse::NamesChanged(_))));
    assert_eq!(
        found(&t, "a").await,
        Some(b),
        "the renamed file survived the retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_mds_may_not_run_is_refused_whole() {
    let t = TestCluster::start(1).await;
    t.create("keep", 1, 1).await.unwrap();
    let refused = |r: Result<MdsResponse, Error>| matches!(r, Err(Error::Invalid(_)));
    let numbered = |ops: Vec<MdsOp>| -> Vec<Numbered> {
        ops.into_iter()
            .zip(5_000..)
            .map(|(op, seq)| Numbered { seq, op })
            .collect()
    };
    // Too many calls; a call that may not be batched; a read not last; a change not
    // numbered; a batch in a batch.
    let too_many = numbered(vec![unlink("keep"); BATCH_MAX_OPS + 1]);
    let symlink = MdsOp::Symlink {
        parent: ROOT_INO,
        name: "new".into(),
        target: "keep".into(),
    };
    let not_batchable = numbered(vec![unlink("keep"), symlink]);
    let read_first = numbered(vec![lookup("keep"), unlink("keep")]);
    let mut unnumbered = numbered(vec![unlink("other"), unlink("keep")]);
    unnumbered[1].seq = 0;
    let nested = numbered(vec![
        unlink("keep"),
        MdsOp::Batch {
            ops: numbered(vec![unlink("keep")]),
        },
    ]);
    for ops in [too_many, not_batchable, read_first, unnumbered, nested] {
        let r = t.call_as(Creds::root(), 0, MdsOp::Batch { ops }).await;
        assert!(refused(r.clone()), "{r:?}");
    }
    // Outside a session: nothing to record the changes under.
    let ops = numbered(vec![unlink("keep")]);
    assert!(refused(call_in(&t.mds(), 0, 0, MdsOp::Batch { ops }).await));
    assert!(
        found(&t, "keep").await.is_some(),
        "nothing of a refused batch ran"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rmdir_and_a_read_behind_changes_run_after_them() {
    let t = TestCluster::start(1).await;
    let d = mkdir(&t, ROOT_INO, "d").await.ino;
    let in_d = |name: &str| MdsOp::Unlink {
        parent: d,
        name: name.into(),
    };
    for name in ["x", "y"] {
        create(&t, d, name).await;
    }
    // The directory empties, then goes; the lookup last sees it gone.
    let rmdir = MdsOp::Rmdir {
        parent: ROOT_INO,
        name: "d".into(),
    };
    let ops = vec![
        Numbered {
            seq: 2_000,
            op: in_d("x"),
        },
        Numbered {
            seq: 2_001,
            op: in_d("y"),
        },
        Numbered {
            seq: 2_002,
            op: rmdir,
        },
        Numbered {
            seq: 0,
            op: lookup("d"),
        },
    ];
    let answers = match t.call_as(Creds::root(), 0, MdsOp::Batch { ops }).await {
        Ok(MdsResponse::Batch(answers)) => answers,
        other => panic!("{other:?}"),
    };
    assert_eq!(answers.len(), 4);
    let changed = |a: &Result<MdsResponse, Error>| matches!(a, Ok(MdsResponse::NamesChanged(_)));
    assert!(answers[..3].iter().all(changed), "{answers:?}");
    assert!(
        matches!(answers[3], Err(Error::NotFound)),
        "{:?}",
        answers[3]
    );
}
