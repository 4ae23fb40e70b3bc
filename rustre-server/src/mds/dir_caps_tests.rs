//! Directory capabilities on a running MDS ([`super::dir_caps`]), with two sessions over
//! real connections: another session's request naming a capped directory waits for the
//! holder to give it back (recalled on the holder's feed), for the holder's session to
//! end, or for [`RECALL_GIVE_UP`].

use std::sync::Arc;
use std::time::Duration;

use rustre_proto::msg::mds::{Change, MdsOp, MdsResponse};
use rustre_proto::msg::{Ino, ROOT_INO};
use rustre_proto::rpc::client::Peer;
use rustre_proto::Error;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::dir_caps::RECALL_GIVE_UP;
use super::tests::{call_in, TestCluster};

/// Longest a request that should go on at once may take here.
const PROMPT: Duration = Duration::from_secs(2);

async fn open_session(p: &Peer) -> u64 {
    let op = MdsOp::OpenSession {
        client: "caps".into(),
    };
    match call_in(p, 0, 0, op).await.unwrap() {
        MdsResponse::Session { id, .. } => id,
        other => panic!("{other:?}"),
    }
}

/// Makes `name` in the root through `session`: its inode and whether it came capped.
async fn mkdir(p: &Peer, session: u64, seq: u64, name: &str, want_cap: bool) -> (Ino, bool) {
    let op = MdsOp::Mkdir {
        parent: ROOT_INO,
        name: name.into(),
        perm: 0o755,
        umask: 0,
        want_cap,
    };
    match call_in(p, session, seq, op).await.unwrap() {
        MdsResponse::Created { attr, capped, .. } => (attr.ino, capped),
        other => panic!("{other:?}"),
    }
}

/// `op` in `session`, sent by a task of its own.
fn in_background(p: &Arc<Peer>, session: u64, op: MdsOp) -> JoinHandle<Result<MdsResponse, Error>> {
    let p = p.clone();
    tokio::spawn(async move { call_in(&p, session, 0, op).await })
}

fn lookup(parent: Ino, name: &str) -> MdsOp {
    MdsOp::Lookup {
        parent,
        name: name.into(),
    }
}

/// Follows the feed until it recalls `dir` from `session` (at most [`PROMPT`] twice).
async fn recalled(p: &Peer, session: u64, dir: Ino) {
    let deadline = Instant::now() + 2 * PROMPT;
    let (mut instance, mut after) = (0, 0);
    while Instant::now() < deadline {
        let op = MdsOp::Watch { instance, after };
        let MdsResponse::Changes(batch) = call_in(p, 0, 0, op).await.unwrap() else {
            panic!("not a feed answer");
        };
        let asked = batch
            .changes
            .iter()
            .any(|c| c.change == Change::Recall(dir) && c.request == (session, 0));
        if asked {
            return;
        }
        (instance, after) = (batch.instance, batch.last);
    }
    panic!("directory {dir} was never recalled from session {session}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_sessions_request_waits_until_the_holder_gives_the_directory_back() {
    let t = TestCluster::start(1).await;
    let p = t.mds();
    let (a, b) = (open_session(&p).await, open_session(&p).await);
    let (d, capped) = mkdir(&p, a, 1, "d", true).await;
    assert!(capped, "a new directory asked for comes capped");
    let (e, capped) = mkdir(&p, a, 2, "e", false).await;
    assert!(!capped, "not asked for");
    // The holder's own requests, and another session's in a directory not capped, go on.
    let started = Instant::now();
    assert!(matches!(
        call_in(&p, a, 0, lookup(d, "x")).await,
        Err(Error::NotFound)
    ));
    assert!(matches!(
        call_in(&p, b, 0, lookup(e, "x")).await,
        Err(Error::NotFound)
    ));
    assert!(started.elapsed() < PROMPT);
    // Another session's look into it waits, and the holder hears the recall.
    let waiting = in_background(&p, b, lookup(d, "x"));
    recalled(&p, a, d).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "went on before the capability was back"
    );
    // Given back by another session: nothing happens. By the holder: the request goes on.
    let back = MdsOp::ReturnDirCaps { dirs: vec![d] };
    call_in(&p, b, 0, back.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "given back by a session not holding it"
    );
    let returned = Instant::now();
    assert!(matches!(
        call_in(&p, a, 0, back).await,
        Ok(MdsResponse::Done)
    ));
    let answer = tokio::time::timeout(PROMPT, waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(answer, Err(Error::NotFound)), "{answer:?}");
    assert!(returned.elapsed() < PROMPT);
    // Recalled for good: the next look does not wait.
    let started = Instant::now();
    call_in(&p, b, 0, MdsOp::GetAttr { ino: d }).await.unwrap();
    assert!(started.elapsed() < PROMPT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_its_directory_recalls_it_and_an_ended_session_gives_it_back() {
    let t = TestCluster::start(1).await;
    let p = t.mds();
    let (a, b) = (open_session(&p).await, open_session(&p).await);
    let (d, capped) = mkdir(&p, a, 1, "d", true).await;
    assert!(capped);
    // Another session listing the root sees `d`'s attributes: it waits.
    let list = MdsOp::Readdir {
        ino: ROOT_INO,
        after: None,
        limit: 16,
        plus: true,
    };
    let waiting = in_background(&p, b, list);
    recalled(&p, a, d).await;
    assert!(!waiting.is_finished());
    let ended = Instant::now();
    call_in(&p, a, 0, MdsOp::CloseSession).await.unwrap();
    let answer = tokio::time::timeout(PROMPT, waiting)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(&answer, Ok(MdsResponse::Entries { entries, .. }) if entries.iter().any(|e| e.ino == d)),
        "{answer:?}"
    );
    assert!(ended.elapsed() < PROMPT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_holder_that_does_not_give_one_back_loses_all_after_the_give_up_time_and_rmdir_ends_one()
{
    let t = TestCluster::start(1).await;
    let p = t.mds();
    let (a, b) = (open_session(&p).await, open_session(&p).await);
    let (d, _) = mkdir(&p, a, 1, "d", true).await;
    let (gone, capped) = mkdir(&p, a, 2, "gone", true).await;
    assert!(capped);
    let (e, _) = mkdir(&p, a, 4, "e", true).await;
    // Removed by its holder: nothing is held for it any more.
    let rmdir = MdsOp::Rmdir {
        parent: ROOT_INO,
        name: "gone".into(),
    };
    call_in(&p, a, 3, rmdir).await.unwrap();
    let started = Instant::now();
    assert!(matches!(
        call_in(&p, b, 0, MdsOp::GetAttr { ino: gone }).await,
        Err(Error::NotFound | Error::Stale)
    ));
    assert!(started.elapsed() < PROMPT);
    // A holder that never answers: the request waits the give-up time, then goes on.
    let started = Instant::now();
    call_in(&p, b, 0, MdsOp::GetAttr { ino: d }).await.unwrap();
    let waited = started.elapsed();
    assert!(
        waited >= RECALL_GIVE_UP && waited < RECALL_GIVE_UP + PROMPT,
        "{waited:?}"
    );
    // Such a holder lost every capability: its other directory costs no second wait.
    let started = Instant::now();
    call_in(&p, b, 0, MdsOp::GetAttr { ino: e }).await.unwrap();
    assert!(started.elapsed() < PROMPT);
}
