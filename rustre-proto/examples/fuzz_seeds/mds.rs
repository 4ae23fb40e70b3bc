//! The MDS's requests and answers of the seed corpus (split from `main.rs` by size).

use super::*;

pub(super) fn mds_requests() -> Vec<(String, Vec<u8>)> {
    let ops = [
        (
            "open_session",
            MdsOp::OpenSession {
                client: "host:123".into(),
            },
        ),
        ("renew_session", MdsOp::RenewSession),
        ("close_session", MdsOp::CloseSession),
        (
            "lookup",
            MdsOp::Lookup {
                parent: 1,
                name: "file".into(),
            },
        ),
        ("getattr", MdsOp::GetAttr { ino: 42 }),
        (
            "setattr",
            MdsOp::SetAttr {
                ino: 42,
                set: SetAttr {
                    perm: Some(0o600),
                    uid: Some(1),
                    gid: None,
                    size: Some(4096),
                    atime: Some(TimeSet::Now),
                    mtime: Some(TimeSet::At(ts())),
                    via_write_handle: true,
                },
            },
        ),
        (
            "create",
            MdsOp::Create {
                parent: 1,
                name: "new".into(),
                perm: 0o644,
                umask: 0o022,
                exclusive: true,
                open_flags: Some(O_RDWR),
                layout: Some(spec()),
            },
        ),
        (
            "mkdir",
            MdsOp::Mkdir {
                parent: 1,
                name: "dir".into(),
                perm: 0o755,
                umask: 0o022,
                want_cap: false,
            },
        ),
        (
            "mknod",
            MdsOp::Mknod {
                parent: 1,
                name: "fifo".into(),
                kind: FileKind::Fifo,
                perm: 0o644,
                umask: 0o022,
                rdev: 0,
            },
        ),
        (
            "symlink",
            MdsOp::Symlink {
                parent: 1,
                name: "link".into(),
                target: "../some/target".into(),
            },
        ),
        ("readlink", MdsOp::Readlink { ino: 43 }),
        (
            "link",
            MdsOp::Link {
                ino: 42,
                new_parent: 1,
                new_name: "hard".into(),
            },
        ),
        (
            "unlink",
            MdsOp::Unlink {
                parent: 1,
                name: "file".into(),
            },
        ),
        (
            "rmdir",
            MdsOp::Rmdir {
                parent: 1,
                name: "dir".into(),
            },
        ),
        (
            "rename",
            MdsOp::Rename {
                parent: 1,
                name: "a".into(),
                new_parent: 2,
                new_name: "b".into(),
                flags: RENAME_NOREPLACE,
            },
        ),
        (
            "readdir",
            MdsOp::Readdir {
                ino: 1,
                after: Some("m".into()),
                limit: 128,
                plus: true,
            },
        ),
        (
            "open",
            MdsOp::Open {
                ino: 42,
                flags: O_RDWR,
            },
        ),
        (
            "release",
            MdsOp::Release {
                inos: vec![42, 43, 42],
            },
        ),
        (
            "return_dir_caps",
            MdsOp::ReturnDirCaps { dirs: vec![42, 43] },
        ),
        (
            "batch",
            MdsOp::Batch {
                ops: vec![
                    Numbered {
                        seq: 7,
                        op: MdsOp::Unlink {
                            parent: 1,
                            name: "a".into(),
                        },
                    },
                    Numbered {
                        seq: 8,
                        op: MdsOp::Rename {
                            parent: 1,
                            name: "b".into(),
                            new_parent: 1,
                            new_name: "a".into(),
                            flags: 0,
                        },
                    },
                ],
            },
        ),
        (
            "report_size",
            MdsOp::ReportSize {
                ino: 42,
                size: 1 << 30,
                mtime: ts(),
                truncate_version: 2,
                written: [1].into_iter().collect(),
                allocated: vec![(1, 8192)],
            },
        ),
        ("access", MdsOp::Access { ino: 42, mask: 6 }),
        ("statfs", MdsOp::StatFs),
        (
            "getxattr",
            MdsOp::GetXattr {
                ino: 42,
                name: "user.a".into(),
            },
        ),
        (
            "setxattr",
            MdsOp::SetXattr {
                ino: 42,
                name: "user.a".into(),
                value: b"value".to_vec(),
                flags: XATTR_CREATE,
            },
        ),
        ("listxattr", MdsOp::ListXattr { ino: 42 }),
        (
            "removexattr",
            MdsOp::RemoveXattr {
                ino: 42,
                name: "user.a".into(),
            },
        ),
        (
            "set_dir_layout",
            MdsOp::SetDirLayout {
                ino: 1,
                spec: Some(LayoutSpec {
                    stripe_count: Some(u32::MAX),
                    ..LayoutSpec::default()
                }),
            },
        ),
        ("get_dir_layout", MdsOp::GetDirLayout { ino: 1 }),
        ("sync_meta", MdsOp::SyncMeta),
        (
            "mark_stale",
            MdsOp::MarkStale {
                ino: 5,
                slots: vec![3],
                version: 4,
            },
        ),
        ("move_copies", MdsOp::MoveCopies { ino: 5, ost: 2 }),
        ("mark_lost", MdsOp::MarkLost { ino: 5, ost: 2 }),
        (
            "watch",
            MdsOp::Watch {
                instance: 77,
                after: 1234,
            },
        ),
        (
            "quota_set",
            MdsOp::QuotaSet {
                ino: 43,
                limits: rustre_proto::msg::quota::QuotaLimits {
                    hard_bytes: 100 << 20,
                    soft_bytes: 90 << 20,
                    hard_inodes: 1000,
                    soft_inodes: 900,
                    grace_secs: 60,
                },
            },
        ),
        (
            "quota_reserve",
            MdsOp::QuotaReserve {
                ino: 42,
                end: 1 << 20,
                want: 5 << 20,
            },
        ),
        (
            "close_inline",
            MdsOp::CloseInline {
                ino: 42,
                size: 5000,
                mtime: ts(),
                truncate_version: 0,
                data: bytes::Bytes::from_static(b"bytes kept on the MDS"),
                set: SetAttr::default(),
            },
        ),
        ("read_inline", MdsOp::ReadInline { ino: 42 }),
        ("spill", MdsOp::Spill { ino: 42 }),
        ("open_dir", MdsOp::OpenDir { ino: 1, limit: 256 }),
        (
            "fsck_kept_bytes",
            MdsOp::Fsck(FsckOp::KeptBytes {
                after: 0,
                limit: FSCK_KEPT_PAGE_MAX,
            }),
        ),
        (
            "fsck_mend_kept_bytes",
            MdsOp::Fsck(FsckOp::Repair {
                fix: FsckFix::MendKeptBytes { ino: 42 },
                apply: false,
            }),
        ),
        (
            "report_and_setattr",
            MdsOp::ReportAndSetAttr {
                ino: 42,
                size: 12,
                mtime: ts(),
                truncate_version: 0,
                written: [0].into_iter().collect(),
                allocated: vec![(0, 4096)],
                set: SetAttr {
                    perm: Some(0o4755),
                    uid: Some(1000),
                    gid: Some(1000),
                    size: None,
                    atime: Some(TimeSet::At(ts())),
                    mtime: Some(TimeSet::At(ts())),
                    via_write_handle: false,
                },
            },
        ),
        (
            "accessed_many",
            MdsOp::AccessedMany {
                updates: vec![
                    AtimeUpdate {
                        ino: 42,
                        atime: ts(),
                        relative: true,
                    },
                    AtimeUpdate {
                        ino: 43,
                        atime: ts(),
                        relative: false,
                    },
                ],
            },
        ),
    ];
    ops.into_iter()
        .map(|(n, op)| {
            let req = MdsRequest {
                creds: Creds {
                    uid: 1000,
                    gid: 1000,
                    groups: vec![4, 27],
                },
                session: 5,
                seq: 17,
                op,
            };
            (n.to_string(), enc(&req))
        })
        .collect()
}

/// O_RDWR (the example does without a libc dependency).
const O_RDWR: i32 = 2;

pub(super) fn mds_responses() -> Vec<(String, Vec<u8>)> {
    let resps: [(&str, Result<MdsResponse, Error>); 22] = [
        (
            "session",
            Ok(MdsResponse::Session {
                id: 5,
                lease_ms: 30_000,
                inline_max: 65_536,
            }),
        ),
        ("attr", Ok(MdsResponse::Attr(attr()))),
        (
            "inline_data",
            Ok(MdsResponse::InlineData {
                attr: attr(),
                data: Some(bytes::Bytes::from_static(b"bytes kept on the MDS")),
            }),
        ),
        ("inline_refused", Ok(MdsResponse::InlineRefused)),
        (
            "dir_opened",
            Ok(MdsResponse::DirOpened {
                attr: attr(),
                parent: 1,
                entries: vec![DirEntry {
                    name: "a".into(),
                    ino: 42,
                    kind: FileKind::File,
                    attr: Some(attr()),
                }],
                eof: true,
            }),
        ),
        (
            "fsck_kept_bytes",
            Ok(MdsResponse::Fsck(FsckAnswer::KeptBytes {
                inos: vec![42, 43],
                done: true,
            })),
        ),
        ("target", Ok(MdsResponse::Target("../t".into()))),
        (
            "entries",
            Ok(MdsResponse::Entries {
                entries: vec![
                    DirEntry {
                        name: "a".into(),
                        ino: 42,
                        kind: FileKind::File,
                        attr: Some(attr()),
                    },
                    DirEntry {
                        name: "d".into(),
                        ino: 43,
                        kind: FileKind::Dir,
                        attr: None,
                    },
                ],
                eof: true,
            }),
        ),
        (
            "statfs",
            Ok(MdsResponse::StatFs(FsStats {
                capacity: cap(),
                files: 10,
                files_free: 1000,
            })),
        ),
        ("xattr", Ok(MdsResponse::Xattr(b"value".to_vec()))),
        (
            "xattr_names",
            Ok(MdsResponse::XattrNames(vec![
                "user.a".into(),
                "user.b".into(),
            ])),
        ),
        ("dir_layout", Ok(MdsResponse::DirLayout(Some(spec())))),
        (
            "changes",
            Ok(MdsResponse::Changes(ChangeBatch {
                instance: 77,
                last: 1240,
                lost: false,
                changes: vec![
                    FeedChange {
                        change: Change::Inode(42),
                        request: (5, 17),
                    },
                    FeedChange {
                        change: Change::Entry {
                            parent: 1,
                            name: "a".into(),
                        },
                        request: (5, 17),
                    },
                    FeedChange {
                        change: Change::All,
                        request: (0, 0),
                    },
                    FeedChange {
                        change: Change::Recall(42),
                        request: (5, 0),
                    },
                ],
            })),
        ),
        ("done", Ok(MdsResponse::Done)),
        ("error", Err(Error::NotFound)),
        (
            "reported_setattr",
            Ok(MdsResponse::ReportedSetAttr {
                attr: attr(),
                refused: None,
            }),
        ),
        (
            "created",
            Ok(MdsResponse::Created {
                attr: attr(),
                parent: Box::new(attr()),
                new: true,
                capped: true,
            }),
        ),
        ("attrs", Ok(MdsResponse::Attrs(vec![Some(attr()), None]))),
        (
            "names_changed_unlink",
            Ok(MdsResponse::NamesChanged(Box::new(NamesChanged {
                dirs: vec![attr()],
                source: Touched { ino: 9, attr: None },
                target: None,
            }))),
        ),
        (
            "names_changed_rename",
            Ok(MdsResponse::NamesChanged(Box::new(NamesChanged {
                dirs: vec![attr(), attr()],
                source: Touched {
                    ino: 7,
                    attr: Some(attr()),
                },
                target: Some(Touched {
                    ino: 8,
                    attr: Some(attr()),
                }),
            }))),
        ),
        (
            "batch",
            Ok(MdsResponse::Batch(vec![
                Ok(MdsResponse::NamesChanged(Box::new(NamesChanged {
                    dirs: vec![attr()],
                    source: Touched { ino: 9, attr: None },
                    target: None,
                }))),
                Err(Error::NotFound),
            ])),
        ),
        (
            "reported_setattr_refused",
            Ok(MdsResponse::ReportedSetAttr {
                attr: attr(),
                refused: Some(Error::NotPermitted),
            }),
        ),
    ];
    resps.iter().map(|(n, r)| (n.to_string(), enc(r))).collect()
}
