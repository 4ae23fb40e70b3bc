//! Small conversions and replies shared by the FUSE operations ([`super::ops`]).

use fuser::{FopenFlags, Generation, ReplyEmpty, ReplyEntry, TimeOrNow};
use rustre_proto::msg::mds::TimeSet;

use super::{errno, file_attr, to_timestamp};

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
