//! The migration worker: gives up migrations whose migrator went silent (their lease ran
//! out) and deletes the objects migrations retired, once no writer holds the file open (a
//! writer with the old layout meets the fence, `Stale`, as long as the old objects exist;
//! once gone, it could recreate one) and the grace has passed.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustre_proto::host::now_ms;
use rustre_proto::msg::oss::{ObjectId, OssOp};
use rustre_proto::msg::Creds;
use rustre_proto::Error;

use super::{abandon, Migration, Retired};
use crate::mds::error::MdsError;
use crate::mds::txn::Mutation;
use crate::mds::{replica, store, Mds};
use crate::schema;

/// How often the migration and retired records are scanned.
pub(in crate::mds) const MIGRATE_SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// An object of a file: its stripe and the OST holding it.
type StripeOst = (u32, u32);

/// Most records of each kind looked at per pass.
const SWEEP_BATCH: usize = 64;

/// One pass: expired migrations given up, retired objects deleted where they may be.
pub(in crate::mds) async fn sweep(mds: Arc<Mds>) -> Result<(), MdsError> {
    let now = now_ms();
    mds.txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
        let (s, e) = schema::prefix_range(schema::MIGRATE);
        for (k, v) in tx.range(&s, &e, SWEEP_BATCH)? {
            let Some(ino) = schema::parse_migrate(&k) else {
                continue;
            };
            let m: Migration = rustre_proto::codec::decode(&v)?;
            if m.until_ms <= now {
                tracing::warn!(ino, "migration lease ran out: given up");
                abandon(tx, ino, &m, now)?;
            }
        }
        Ok::<_, Error>(())
    })
    .await?;
    let due = mds
        .txn(Creds::root(), vec![], Mutation::ReadOnly, move |tx, _| {
            let (s, e) = schema::prefix_range(schema::RETIRED);
            let mut out = Vec::new();
            for (k, v) in tx.range(&s, &e, SWEEP_BATCH)? {
                let Some(ino) = schema::parse_retired(&k) else {
                    continue;
                };
                let r: Retired = rustre_proto::codec::decode(&v)?;
                if r.not_before_ms > now || replica::has_write_opens(tx, ino)? {
                    continue;
                }
                // Never an object the file's layout (or a migration in progress) uses now.
                let layout = store::get_inode(tx, ino)?.and_then(|i| i.attr.layout);
                let target: Option<Migration> = store::get(tx, &schema::migrate(ino))?;
                let in_use = |stripe: u32, ost: u32| {
                    let uses = |l: &rustre_proto::msg::Layout| {
                        stripe < l.stripe_count() && l.copies(stripe).iter().any(|c| c.1 == ost)
                    };
                    layout.as_ref().is_some_and(uses)
                        || target.as_ref().is_some_and(|m| uses(&m.to))
                };
                let (in_use, gone): (Vec<StripeOst>, Vec<StripeOst>) =
                    r.objects.iter().partition(|(s, o)| in_use(*s, *o));
                out.push((ino, in_use, gone));
            }
            Ok::<_, Error>(out)
        })
        .await?;
    for (ino, in_use, objects) in due {
        let mut deleted = Vec::new();
        for (stripe, ost) in objects {
            let object = ObjectId { ino, stripe };
            match mds
                .cluster
                .oss_call(ost, OssOp::Delete { object }, Bytes::new())
                .await
            {
                Ok(_) => deleted.push((stripe, ost)),
                Err(e) => tracing::debug!(ino, stripe, ost, "retired object delete deferred: {e}"),
            }
        }
        if !deleted.is_empty() {
            tracing::info!(ino, objects = ?deleted, "old objects of a migrated file deleted");
        }
        mds.txn(Creds::root(), vec![], Mutation::WRITE, move |tx, _| {
            let Some(mut now_r) = store::get::<Retired>(tx, &schema::retired(ino))? else {
                return Ok::<_, Error>(());
            };
            // Objects in use are the layout's again: not to delete, ever.
            now_r
                .objects
                .retain(|o| !deleted.contains(o) && !in_use.contains(o));
            let kept_new: Vec<(u32, u32)> = now_r.objects;
            if kept_new.is_empty() {
                tx.clear(&schema::retired(ino));
            } else {
                store::put(
                    tx,
                    &schema::retired(ino),
                    &Retired {
                        objects: kept_new,
                        not_before_ms: now_r.not_before_ms,
                    },
                )?;
            }
            Ok(())
        })
        .await?;
    }
    Ok(())
}
