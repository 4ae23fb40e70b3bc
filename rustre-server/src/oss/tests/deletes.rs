//! Deleting objects: one at a time and many in one call (how the MDS reclaims the objects
//! of destroyed files).

use rustre_proto::msg::oss::DELETE_MANY_MAX_OBJECTS;

use super::*;

#[tokio::test]
async fn oss_delete_then_read_gives_nothing() {
    let oss = start_oss(&[0]).await;
    let c = connect(&oss).await;
    let o = obj(77, 2);
    write(&c, 0, o, 0, &pattern(5000, 3)).await;
    // The read leaves the object's handle in the cache.
    assert_eq!(read(&c, 0, o, 0, 8192).await.len(), 5000);
    done(&c, 0, OssOp::Delete { object: o }).await;
    assert!(read(&c, 0, o, 0, 8192).await.is_empty());
    assert_eq!(size(&c, 0, o).await, None);
    // Deleting or syncing an absent object is fine.
    done(&c, 0, OssOp::Delete { object: o }).await;
    done(&c, 0, OssOp::Sync { object: o }).await;
    // A new object with the same id starts empty: no stale handle to the old file.
    write(&c, 0, o, 0, b"new").await;
    assert_eq!(read(&c, 0, o, 0, 8192).await, b"new");
    assert_eq!(size(&c, 0, o).await, Some(3));
    let path = oss.dirs[0].join("objects/4d/000000000000004d.2");
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    // Three bytes: their CRCs live in an attribute of the object file, no sidecar.
    let sidecar = oss.dirs[0].join("objects/4d/000000000000004d.2.sum");
    assert!(!sidecar.exists());
    done(&c, 0, OssOp::Delete { object: o }).await;
    assert!(!path.exists());
    assert!(!sidecar.exists());
    oss.stop().await;
}

/// One call deletes many objects, absent ones included, and names none as failed; more
/// than it may carry, or an invalid object among them, is refused before anything goes.
#[tokio::test]
async fn oss_delete_many_removes_every_named_object() {
    let oss = start_oss(&[0]).await;
    let c = connect(&oss).await;
    let objects: Vec<ObjectId> = (1..=20).map(|ino| obj(ino, 0)).collect();
    for (n, o) in objects.iter().enumerate().skip(2) {
        write(&c, 0, *o, 0, &pattern(100 * n, n as u8)).await;
    }
    let kept = obj(99, 0);
    write(&c, 0, kept, 0, b"stays").await;
    let too_many = OssOp::DeleteMany {
        objects: vec![obj(5, 0); DELETE_MANY_MAX_OBJECTS + 1],
    };
    let r = call(&c, 0, too_many, Bytes::new()).await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    let with_bad = OssOp::DeleteMany {
        objects: vec![obj(5, 0), obj(0, 0)],
    };
    let r = call(&c, 0, with_bad, Bytes::new()).await;
    assert!(matches!(r, Err(Error::Invalid(_))), "{r:?}");
    assert_eq!(size(&c, 0, obj(5, 0)).await, Some(400), "nothing went");

    let many = OssOp::DeleteMany {
        objects: objects.clone(),
    };
    match call(&c, 0, many, Bytes::new()).await.unwrap().0 {
        OssResponse::DeletedMany { failed } => assert!(failed.is_empty(), "{failed:?}"),
        other => panic!("answered {other:?}"),
    }
    for o in &objects {
        assert_eq!(size(&c, 0, *o).await, None, "{o:?}");
    }
    assert_eq!(read(&c, 0, kept, 0, 4096).await, b"stays");
    oss.stop().await;
}
