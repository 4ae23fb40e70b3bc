//! Small conversions and replies shared by the FUSE operations ([`super::ops`]).

use fuser::{
    FopenFlags, Generation, INodeNo, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry,
    TimeOrNow,
};
use rustre_proto::msg::mds::TimeSet;
use rustre_proto::Error;

use super::{errno, file_attr, file_type, placeholder_attr, raw_name, to_timestamp};
use crate::client::{Client, Listed};

pub(super) fn time_set(t: Option<TimeOrNow>) -> Option<TimeSet> {
    t.map(|t| match t {
        TimeOrNow::Now => TimeSet::Now,
        TimeOrNow::SpecificTime(st) => TimeSet::At(to_timestamp(st)),
    })
}

pub(super) fn open_flags(keep_cache: bool) -> FopenFlags {
    if keep_cache {
        FopenFlags::FOPEN_KEEP_CACHE
    } else {
        FopenFlags::empty()
    }
}

/// [`reply_entry`] for a call that made `name` in `parent` (mkdir, mknod, symlink, link):
/// the kernel keeps the new entry for the TTL `c` gives it now (`Client::name_ttl`: longer
/// than the mount's while the feeds vouch for it).
pub(super) fn reply_made(
    reply: ReplyEntry,
    c: &Client,
    (parent, name): (u64, &str),
    ttls: (std::time::Duration, std::time::Duration),
    result: Result<rustre_proto::msg::Attr, rustre_proto::Error>,
) {
    let entry_ttl = match result {
        Ok(_) => c.name_ttl(parent, name).of(ttls.1),
        Err(_) => ttls.1,
    };
    reply_entry(reply, (ttls.0, entry_ttl), result);
}

/// Replies to a call answered with an entry (lookup, mkdir, mknod, symlink, link).
pub(super) fn reply_entry(
    reply: ReplyEntry,
    ttls: (std::time::Duration, std::time::Duration),
    result: Result<rustre_proto::msg::Attr, rustre_proto::Error>,
) {
    match result {
        Ok(a) => reply.entry_with_ttls(&ttls.0, &ttls.1, &file_attr(&a), Generation(0)),
        Err(e) => reply.error(errno(e)),
    }
}

pub(super) fn reply_empty(reply: ReplyEmpty, result: Result<(), rustre_proto::Error>) {
    match result {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(e)),
    }
}

/// Replies to a readdir with the entries that fit.
pub(super) fn reply_listed(mut reply: ReplyDirectory, listed: Result<Vec<Listed>, Error>) {
    match listed {
        Ok(listed) => {
            for l in listed {
                let e = &l.entry;
                let name = raw_name(&e.name);
                if reply.add(INodeNo(e.ino), l.offset, file_type(e.kind), &name) {
                    break;
                }
            }
            reply.ok();
        }
        Err(e) => reply.error(errno(e)),
    }
}

/// Replies to a readdirplus with the entries that fit, their attributes cached for `ttl`.
pub(super) fn reply_listed_plus(
    mut reply: ReplyDirectoryPlus,
    ttl: std::time::Duration,
    listed: Result<Vec<Listed>, Error>,
) {
    match listed {
        Ok(listed) => {
            for l in listed {
                let e = &l.entry;
                let attr = match &e.attr {
                    Some(a) => file_attr(a),
                    None => placeholder_attr(e.ino, e.kind),
                };
                let name = raw_name(&e.name);
                if reply.add(INodeNo(e.ino), l.offset, &name, &ttl, &attr, Generation(0)) {
                    break;
                }
            }
            reply.ok();
        }
        Err(e) => reply.error(errno(e)),
    }
}
