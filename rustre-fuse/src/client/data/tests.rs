//! Tests of the striped data path: which failures mark copies stale or are waited out,
//! read checks and repairs.

use super::*;

fn down() -> Error {
    Error::Unavailable("connection refused".into())
}

#[test]
fn answers_written_under_a_newer_layout_are_not_trusted() {
    let data = |version| OssResponse::Data {
        len: 0,
        crcs: vec![],
        version,
    };
    assert!(!written_under_newer_layout(&data(3), 3));
    assert!(!written_under_newer_layout(&data(0), 3));
    assert!(written_under_newer_layout(&data(4), 3));
    assert!(!written_under_newer_layout(&OssResponse::Done, 3));
}

#[test]
fn only_servers_away_are_waited_for() {
    for e in [
        down(),
        Error::TimedOut,
        Error::Fenced("lease".into()),
        Error::OldEpoch {
            caller: 1,
            server: 2,
        },
    ] {
        assert!(worth_waiting(&e), "{e}");
    }
    for e in [
        Error::Corrupt("x".into()),
        Error::Io("disk".into()),
        Error::NoSpace,
        Error::Invalid("x".into()),
    ] {
        assert!(!worth_waiting(&e), "{e}");
    }
}

#[test]
fn failed_copies_of_written_stripes_are_marked() {
    let pieces = vec![
        vec![(0, Ok(())), (3, Err(down()))],
        vec![(1, Err(Error::Fenced("lease".into()))), (4, Ok(()))],
        vec![(2, Ok(())), (5, Ok(()))],
        vec![(0, Ok(())), (3, Err(Error::TimedOut))],
    ];
    assert_eq!(failed_slots(&pieces), Ok(vec![1, 3]));
    let clean = vec![vec![(0, Ok(())), (3, Ok(()))]];
    assert_eq!(failed_slots(&clean), Ok(vec![]));
}

#[test]
fn a_stripe_with_no_copy_written_fails_with_its_first_error() {
    let pieces = vec![
        vec![(0, Ok(())), (2, Err(down()))],
        vec![(1, Err(Error::NoSpace)), (3, Err(down()))],
    ];
    assert_eq!(failed_slots(&pieces), Err(Error::NoSpace));
    // Unreplicated: the one copy's error, as before replication.
    assert_eq!(
        failed_slots(&[vec![(0, Err(Error::TimedOut))]]),
        Err(Error::TimedOut)
    );
    assert!(failed_slots(&[vec![]]).is_err(), "no live copy at all");
}

#[test]
fn request_errors_fail_instead_of_marking() {
    let pieces = vec![vec![
        (0, Ok(())),
        (2, Err(Error::Invalid("bad offset".into()))),
    ]];
    assert_eq!(
        failed_slots(&pieces),
        Err(Error::Invalid("bad offset".into()))
    );
    for e in [
        Error::Protocol("x".into()),
        Error::TooBig,
        Error::NotSupported,
    ] {
        assert!(!marks_stale(&e), "{e:?}");
    }
    for e in [
        down(),
        Error::TimedOut,
        Error::Fenced("x".into()),
        Error::Corrupt("x".into()),
        Error::Io("x".into()),
        Error::NoSpace,
        Error::OldEpoch {
            caller: 1,
            server: 2,
        },
    ] {
        assert!(marks_stale(&e), "{e:?}");
    }
}

fn answer(data: &[u8], crcs: Vec<u32>) -> (OssResponse, Bytes) {
    (
        OssResponse::Data {
            len: data.len() as u32,
            crcs,
            version: 1,
        },
        Bytes::copy_from_slice(data),
    )
}

#[test]
fn reads_are_verified_block_by_block() {
    let block = CHECKSUM_BLOCK as usize;
    let data = vec![5u8; block * 3 + 10];
    let crcs = checksum::block_crcs(&data);
    let (r, d) = answer(&data, crcs.clone());
    assert_eq!(
        check_read(r, d, block * 4),
        Ok(ReadCheck::Good(Bytes::from(data.clone())))
    );

    let mut flipped = data.clone();
    flipped[block] ^= 1;
    flipped[block * 3 + 2] ^= 1;
    let (r, d) = answer(&flipped, crcs.clone());
    match check_read(r, d, block * 4).unwrap() {
        ReadCheck::Bad { blocks, .. } => assert_eq!(blocks, vec![1, 3]),
        good => panic!("bad data passed: {good:?}"),
    }

    let (r, d) = answer(&data, crcs[..3].to_vec());
    assert!(check_read(r, d, block * 4).is_err(), "a checksum missing");
    let (r, d) = answer(&data, crcs);
    assert!(check_read(r, d, block * 2).is_err(), "more than asked");
    assert!(check_read(OssResponse::Done, Bytes::new(), block).is_err());
}

#[test]
fn only_blocks_the_good_copy_has_at_the_same_length_are_repaired() {
    let block = CHECKSUM_BLOCK as usize;
    // Blocks 1, 2 and 4 bad on a copy 5 blocks long; the good copy has the same length.
    assert_eq!(
        repair_ranges(&[1, 2, 4], block * 5, block * 5),
        vec![(block, block * 3), (block * 4, block * 5)]
    );
    // Same tail on both copies: the tail block is rewritten whole.
    assert_eq!(
        repair_ranges(&[2], block * 2 + 100, block * 2 + 100),
        vec![(block * 2, block * 2 + 100)]
    );
    // The good copy is shorter (it says the object ends earlier): nothing past its end,
    // and not a block it holds at another length.
    assert_eq!(repair_ranges(&[3], block * 4, block * 3), vec![]);
    assert_eq!(repair_ranges(&[2], block * 3, block * 2 + 100), vec![]);
    // The good copy is longer: the bad copy's tail is not a full block there.
    assert_eq!(repair_ranges(&[1], block + 10, block * 3), vec![]);
}
