//! Buffered, O_DIRECT and mmap I/O on the same file of a real mount, checked against a model
//! (issue 15: "one coherent view of a file's bytes on a mount").
//!
//! - [`stress`]: for [`stress::STRESS_TIME`], writers and readers on one file, each call
//!   taking one of the three ways, beside a thread calling fallocate(2) on ranges the others
//!   use. Every block a reader gets must be one its writer wrote and not older than the last
//!   write completed before the read began: no EIO, no SIGBUS, no stale block, no zeros.
//! - [`model`]: fsx's idea with the two ways fsx (the crate) lacks: one thread doing random
//!   writes, reads, truncates, fallocates in every mode, fsyncs and reopens, each I/O by a
//!   random way, checked against an in-memory copy of the file.

#[path = "../common/mod.rs"]
mod common;
mod model;
mod stress;
mod ways;
