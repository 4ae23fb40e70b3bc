//! [`InProcessMount`]: a mount served by a thread of the calling process, on the caller's
//! Tokio runtime, with no fork (`rustre local --mount` and tests).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::BackgroundSession;
use rustre_proto::auth::ClusterKey;
use rustre_proto::msg::mgs::NodeState;
use tokio::runtime::Handle;

use super::options::{check_mountpoint, MountArgs};
use super::syscall::{lazy_unmount, mount};
use super::{connect, serve_metrics, CONNECT_TIMEOUT, OST_POLL_INTERVAL, SESSION_CLOSE_TIMEOUT};
use crate::client::Client;

/// A mount served by a thread of this process (`rustre local --mount`).
pub struct InProcessMount {
    session: BackgroundSession,
    /// Stops the metrics endpoint of `metrics=` when dropped.
    _metrics: Option<tokio::sync::watch::Sender<bool>>,
    mountpoint: PathBuf,
    client: Arc<Client>,
}

impl InProcessMount {
    /// Connects to the cluster at `mgs` with `key` (the cluster's own; a `secret_file=`
    /// option is not read), waits until `osts` OSTs are up (they register a moment after a
    /// local cluster starts) and mounts it, serving from a background thread and running calls
    /// on the current runtime.
    pub async fn start(
        mgs: &str,
        mountpoint: &Path,
        opts: &[String],
        osts: usize,
        key: &ClusterKey,
    ) -> Result<Self, String> {
        let mut args = MountArgs::new(mgs, mountpoint, opts, true, None, None)?;
        args.mountpoint = check_mountpoint(&args.mountpoint)?;
        let metrics = match &args.options.metrics {
            Some(addr) => Some(serve_metrics(addr).await?.1),
            None => None,
        };
        let client = connect(mgs, &args.options.cluster, key).await?;
        let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
        loop {
            let map = client
                .cluster()
                .refresh()
                .await
                .map_err(|e| e.to_string())?;
            let up = map.osts.iter().filter(|o| o.state == NodeState::Up).count();
            if up >= osts {
                break;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("only {up} of {osts} OSTs came up"));
            }
            tokio::time::sleep(OST_POLL_INTERVAL).await;
        }
        let (c, rt) = (client.clone(), Handle::current());
        let a = args.clone();
        let session = tokio::task::spawn_blocking(move || {
            mount(c, rt, &a).and_then(|s| s.spawn().map_err(|e| format!("FUSE session: {e}")))
        })
        .await
        .map_err(|e| format!("mount task: {e}"))??;
        Ok(InProcessMount {
            session,
            _metrics: metrics,
            mountpoint: args.mountpoint,
            client,
        })
    }

    /// Where it is mounted.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// Detaches the mount, waits for the session to end and closes the MDS session.
    pub async fn stop(self) -> Result<(), String> {
        let detached = lazy_unmount(&self.mountpoint);
        let session = self.session;
        let joined = tokio::task::spawn_blocking(move || session.join())
            .await
            .map_err(|e| format!("session thread: {e}"))?;
        let _ = tokio::time::timeout(SESSION_CLOSE_TIMEOUT, self.client.close()).await;
        detached?;
        joined.map_err(|e| format!("FUSE session: {e}"))
    }
}
