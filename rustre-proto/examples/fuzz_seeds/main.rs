//! Writes the seed corpus of the fuzz targets (`fuzz/`, see docs/fuzzing.md): valid encoded
//! messages of every kind, so the fuzzers start from inputs that decode instead of having to
//! discover the format. `scripts/fuzz.sh` runs it before each fuzzing run:
//!
//! ```sh
//! cargo run -p rustre-proto --example fuzz_seeds -- fuzz/corpus
//! ```
//!
//! writes `fuzz/corpus/TARGET/seed-NAME` for each target, overwriting earlier seeds. Built
//! with the workspace, so a message change that breaks it fails the normal build.

use std::path::Path;

use rustre_proto::codec;
use rustre_proto::frame::{FrameKind, Header, Service};
use rustre_proto::msg::acl::{AclEntry, ExtAcl};
use rustre_proto::msg::fsck::{FsckAnswer, FsckFix, FsckOp, FSCK_KEPT_PAGE_MAX};
use rustre_proto::msg::mds::{
    AtimeUpdate, Change, ChangeBatch, DirEntry, FeedChange, FsStats, MdsOp, MdsRequest,
    MdsResponse, NamesChanged, Numbered, SetAttr, TimeSet, Touched, RENAME_NOREPLACE, XATTR_CREATE,
};
use rustre_proto::msg::mgs::{
    ClusterMap, LayoutDefaults, MdsInfo, MgsRequest, MgsResponse, NodeState, OstInfo, OstUuid,
};
use rustre_proto::msg::oss::{ObjectId, ObjectInfo, OssOp, OssRequest, OssResponse};
use rustre_proto::msg::{Attr, Capacity, Creds, FileKind, Layout, LayoutSpec, Timestamp};
use rustre_proto::rpc::{ClientProof, Hello, ServerProof};
use rustre_proto::Error;
use serde::Serialize;

mod mds;

use mds::{mds_requests, mds_responses};

fn main() -> std::io::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .expect("usage: fuzz_seeds OUTPUT_DIR");
    let out = Path::new(&out);
    let mut written = 0;
    let mut put = |target: &str, name: &str, bytes: &[u8]| -> std::io::Result<()> {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join(format!("seed-{name}")), bytes)?;
        written += 1;
        Ok(())
    };

    let hellos = [("hello", hello())];
    let hello_replies = [
        (
            "ok",
            enc(&Ok::<ServerProof, Error>(ServerProof {
                nonce: [7; 32],
                proof: [9; 32],
            })),
        ),
        (
            "refused",
            enc(&Err::<ServerProof, Error>(Error::Protocol(
                "wrong cluster".into(),
            ))),
        ),
    ];
    let auth = enc(&ClientProof {
        proof: [9; 32],
        admin: None,
    });
    let mgs_requests = mgs_requests();
    let mgs_responses = mgs_responses();
    let mds_requests = mds_requests();
    let mds_responses = mds_responses();
    let oss_requests = oss_requests();
    let oss_responses = oss_responses();

    for (name, b) in &hellos {
        put("hello", name, b)?;
    }
    for (name, b) in &hello_replies {
        put("hello_reply", name, b)?;
    }
    // The auth target reads a length byte, the body, then two nonces and a cluster name.
    let mut seed = vec![auth.len() as u8];
    seed.extend_from_slice(&auth);
    seed.extend_from_slice(&[1; 32]);
    seed.extend_from_slice(&[2; 32]);
    seed.extend_from_slice(b"rustre");
    put("auth", "proof", &seed)?;
    for (target, seeds) in [
        ("mds_request", &mds_requests),
        ("mds_checks", &mds_requests),
        ("mgs_request", &mgs_requests),
        ("oss_request", &oss_requests),
        ("mgs_response", &mgs_responses),
        ("mds_response", &mds_responses),
        ("oss_response", &oss_responses),
    ] {
        for (name, b) in seeds {
            put(target, name, b)?;
        }
    }

    // Frame headers of every kind and service, and whole conversations as byte streams.
    for kind in [
        FrameKind::Hello,
        FrameKind::HelloReply,
        FrameKind::Request,
        FrameKind::Response,
        FrameKind::Auth,
    ] {
        for service in [Service::Mgs, Service::Mds, Service::Oss] {
            let h = header(kind, service, 7, 100, 4096);
            put(
                "frame_header",
                &format!("{kind:?}-{service:?}"),
                &h.encode(),
            )?;
        }
    }
    for (service, requests, responses) in [
        (Service::Mgs, &mgs_requests, &mgs_responses),
        (Service::Mds, &mds_requests, &mds_responses),
        (Service::Oss, &oss_requests, &oss_responses),
    ] {
        // What a server reads: the handshake (Hello, Auth), then requests (an OSS write
        // carries a payload).
        let mut to_server = frame(FrameKind::Hello, service, 0, &hellos[0].1, &[]);
        to_server.extend(frame(FrameKind::Auth, service, 0, &auth, &[]));
        for (i, (name, body)) in requests.iter().enumerate() {
            let payload: &[u8] = if name == "write" {
                b"some file data"
            } else {
                &[]
            };
            to_server.extend(frame(
                FrameKind::Request,
                service,
                i as u64 + 1,
                body,
                payload,
            ));
        }
        // What a client reads: the handshake reply, then responses.
        let mut to_client = frame(FrameKind::HelloReply, service, 0, &hello_replies[0].1, &[]);
        for (i, (name, body)) in responses.iter().enumerate() {
            let payload: &[u8] = if name == "data" { b"data" } else { &[] };
            to_client.extend(frame(
                FrameKind::Response,
                service,
                i as u64 + 1,
                body,
                payload,
            ));
        }
        // The first byte is the reader's mode: 0x80 reads as the server does, 0x00 as the
        // client; low bits split the stream into small reads.
        for (mode, stream, who) in [(0x80u8, &to_server, "server"), (0x00, &to_client, "client")] {
            for (extra, how) in [(0u8, "whole"), (0x47, "chunks")] {
                let mut seed = vec![mode | extra];
                seed.extend_from_slice(stream);
                put("frame_stream", &format!("{who}-{service:?}-{how}"), &seed)?;
            }
        }
    }
    eprintln!("fuzz_seeds: {written} seeds under {}", out.display());
    Ok(())
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    codec::encode(v).expect("seed messages encode")
}

fn header(kind: FrameKind, service: Service, id: u64, body: u32, payload: u32) -> Header {
    Header {
        kind,
        service,
        flags: 0,
        request_id: id,
        body_len: body,
        payload_len: payload,
    }
}

fn frame(kind: FrameKind, service: Service, id: u64, body: &[u8], payload: &[u8]) -> Vec<u8> {
    let h = header(kind, service, id, body.len() as u32, payload.len() as u32);
    [&h.encode()[..], body, payload].concat()
}

fn hello() -> Vec<u8> {
    enc(&Hello {
        cluster: "rustre".into(),
        client: "fuzz-seed".into(),
        nonce: [1; 32],
    })
}

fn ts() -> Timestamp {
    Timestamp {
        sec: 1_700_000_000,
        nsec: 123,
    }
}

fn cap() -> Capacity {
    Capacity {
        total_bytes: 1 << 40,
        free_bytes: 1 << 39,
        avail_bytes: 1 << 38,
    }
}

fn spec() -> LayoutSpec {
    LayoutSpec {
        stripe_size: Some(1 << 20),
        stripe_count: Some(2),
        osts: Some(vec![0, 1]),
        replicas: Some(1),
    }
}

fn attr() -> Attr {
    Attr {
        ino: 42,
        kind: FileKind::File,
        perm: 0o644,
        nlink: 1,
        uid: 1000,
        gid: 1000,
        size: 12345,
        atime: ts(),
        mtime: ts(),
        ctime: ts(),
        rdev: 0,
        layout: Some(Layout {
            stripe_size: 1 << 20,
            osts: vec![0, 1, 2, 3],
            replicas: 2,
            stale: vec![3],
            version: 4,
            written: [0, 1].into_iter().collect(),
            allocated: vec![4096, 0],
        }),
        truncate_version: 2,
        acl: Some(Box::new(ExtAcl {
            group_obj: 4,
            users: vec![AclEntry { id: 65534, perm: 6 }],
            groups: vec![AclEntry { id: 100, perm: 5 }],
        })),
        project: 0,
        inline: false,
    }
}

fn mgs_requests() -> Vec<(String, Vec<u8>)> {
    let reqs = [
        (
            "register_ost",
            MgsRequest::RegisterOst {
                index: 1,
                addr: "oss1:9402".into(),
                capacity: cap(),
                disk: OstUuid::from_u128(0x0123_4567_89ab_4def_8011_2233_4455_6677),
            },
        ),
        (
            "register_mds",
            MgsRequest::RegisterMds {
                addr: "mds:9401".into(),
            },
        ),
        (
            "ost_heartbeat",
            MgsRequest::OstHeartbeat {
                index: 1,
                capacity: cap(),
            },
        ),
        (
            "mds_heartbeat",
            MgsRequest::MdsHeartbeat {
                addr: "mds:9401".into(),
            },
        ),
        ("get_map", MgsRequest::GetMap),
        ("replace_ost", MgsRequest::ReplaceOst { index: 1 }),
    ];
    reqs.iter().map(|(n, r)| (n.to_string(), enc(r))).collect()
}

fn mgs_responses() -> Vec<(String, Vec<u8>)> {
    let map = ClusterMap {
        epoch: 9,
        cluster_name: "rustre".into(),
        osts: vec![
            OstInfo {
                index: 0,
                addr: "oss0:9402".into(),
                state: NodeState::Up,
                capacity: cap(),
            },
            OstInfo {
                index: 1,
                addr: "oss1:9402".into(),
                state: NodeState::Down,
                capacity: cap(),
            },
        ],
        mds: vec![MdsInfo {
            addr: "mds:9401".into(),
            state: NodeState::Up,
        }],
        defaults: LayoutDefaults::default(),
    };
    let wrong_disk = MgsResponse::WrongDisk {
        bound: OstUuid::from_u128(0x0123_4567_89ab_4def_8011_2233_4455_6677),
    };
    let resps: [(&str, Result<MgsResponse, Error>); 5] = [
        ("ok", Ok(MgsResponse::Ok { epoch: 9 })),
        ("unknown", Ok(MgsResponse::Unknown)),
        ("map", Ok(MgsResponse::Map(map))),
        ("wrong_disk", Ok(wrong_disk)),
        ("error", Err(Error::Invalid("bad node address".into()))),
    ];
    resps.iter().map(|(n, r)| (n.to_string(), enc(r))).collect()
}

fn oss_requests() -> Vec<(String, Vec<u8>)> {
    let object = ObjectId { ino: 42, stripe: 1 };
    let ops = [
        (
            "read",
            OssOp::Read {
                object,
                offset: 1 << 20,
                len: 65536,
                must_exist: true,
                consistent: false,
            },
        ),
        (
            "write",
            OssOp::Write {
                object,
                offset: 4096,
                sync: true,
                crc: 0x1234_5678,
                version: 4,
            },
        ),
        (
            "truncate",
            OssOp::Truncate {
                object,
                size: 8192,
                version: 4,
            },
        ),
        ("sync", OssOp::Sync { object }),
        ("delete", OssOp::Delete { object }),
        (
            "delete_many",
            OssOp::DeleteMany {
                objects: vec![object],
            },
        ),
        ("size", OssOp::Size { object }),
        ("statfs", OssOp::StatFs),
        (
            "list",
            OssOp::List {
                after: Some(object),
                limit: 100,
            },
        ),
        ("scrub", OssOp::Scrub { object }),
        (
            "seek",
            OssOp::Seek {
                object,
                offset: 4096,
                data: true,
            },
        ),
        (
            "checksums",
            OssOp::Checksums {
                object,
                first: 1,
                count: 16,
            },
        ),
        (
            "repair",
            OssOp::Repair {
                object,
                offset: 8192,
                crc: 0x1234_5678,
                version: 4,
                seen: vec![0xdead_beef],
            },
        ),
    ];
    ops.into_iter()
        .map(|(n, op)| {
            let req = OssRequest {
                epoch: 9,
                ost: 1,
                op,
            };
            (n.to_string(), enc(&req))
        })
        .collect()
}

fn oss_responses() -> Vec<(String, Vec<u8>)> {
    let resps: [(&str, Result<OssResponse, Error>); 13] = [
        (
            "data",
            Ok(OssResponse::Data {
                len: 4,
                crcs: vec![0xdead_beef],
                version: 4,
            }),
        ),
        (
            "objects",
            Ok(OssResponse::Objects {
                objects: vec![ObjectInfo {
                    id: ObjectId { ino: 5, stripe: 1 },
                    size: 4096,
                    version: 4,
                }],
                done: true,
            }),
        ),
        (
            "scrubbed",
            Ok(OssResponse::Scrubbed {
                bad_blocks: vec![0, 7],
            }),
        ),
        (
            "old_epoch",
            Err(Error::OldEpoch {
                caller: 3,
                server: 9,
            }),
        ),
        ("size", Ok(OssResponse::Size(Some(8192)))),
        ("absent", Ok(OssResponse::Size(None))),
        ("capacity", Ok(OssResponse::Capacity(cap()))),
        ("done", Ok(OssResponse::Done)),
        (
            "written",
            Ok(OssResponse::Written {
                instance: 7,
                allocated: Some(4096),
            }),
        ),
        ("synced", Ok(OssResponse::Synced { instance: 7 })),
        (
            "deleted_many",
            Ok(OssResponse::DeletedMany {
                failed: vec![ObjectId { ino: 7, stripe: 1 }],
            }),
        ),
        (
            "checksums",
            Ok(OssResponse::Checksums {
                size: 8192,
                crcs: vec![1, 2],
            }),
        ),
        ("error", Err(Error::Unavailable("OST down".into()))),
    ];
    resps.iter().map(|(n, r)| (n.to_string(), enc(r))).collect()
}
