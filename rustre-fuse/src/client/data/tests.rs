//! Tests of the striped data path: which failures mark copies stale or are waited out,
//! read checks and repairs, and how a read's answer is put together.

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
        assert!(e.worth_waiting(), "{e}");
    }
    for e in [
        Error::Corrupt("x".into()),
        Error::Io("disk".into()),
        Error::NoSpace,
        Error::Invalid("x".into()),
    ] {
        assert!(!e.worth_waiting(), "{e}");
    }
}

#[test]
fn failed_copies_of_written_stripes_are_marked() {
    let pieces = vec![
        vec![(0, Ok(None)), (3, Err(down()))],
        vec![(1, Err(Error::Fenced("lease".into()))), (4, Ok(None))],
        vec![(2, Ok(None)), (5, Ok(None))],
        vec![(0, Ok(None)), (3, Err(Error::TimedOut))],
    ];
    assert_eq!(failed_slots(&pieces), Ok(vec![1, 3]));
    let clean = vec![vec![(0, Ok(None)), (3, Ok(None))]];
    assert_eq!(failed_slots(&clean), Ok(vec![]));
}

/// A read that found a written stripe's object gone on one copy and the data on another
/// marks the first through the write rule; with no other copy it fails, EIO.
#[test]
fn a_copy_missing_a_written_object_is_marked_when_another_has_it() {
    let missing = || Err(Error::Missing("object 5.0".into()));
    let read = vec![(0, missing()), (3, Ok(None))];
    assert_eq!(failed_slots(&[read]), Ok(vec![0]));
    let alone = failed_slots(&[vec![(0, missing())]]).unwrap_err();
    assert!(matches!(alone, Error::Missing(_)), "{alone:?}");
    assert_eq!(alone.errno(), libc::EIO);
}

#[test]
fn a_stripe_with_no_copy_written_fails_with_its_first_error() {
    let pieces = vec![
        vec![(0, Ok(None)), (2, Err(down()))],
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
        (0, Ok(None)),
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
        assert!(!e.marks_copy_stale(), "{e:?}");
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
        assert!(e.marks_copy_stale(), "{e:?}");
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

/// True when `part` lies inside the allocation `whole` is a view of (no copy was made).
fn within(part: &Bytes, whole: &Bytes) -> bool {
    whole.as_ptr_range().contains(&part.as_ptr())
}

/// File bytes `[from, from + len)` of a pattern no two nearby bytes share.
fn pattern(from: usize, len: usize) -> Bytes {
    (from..from + len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn verified_data_is_handed_out_as_it_came() {
    let data = pattern(0, CHECKSUM_BLOCK as usize * 2 + 5);
    let resp = OssResponse::Data {
        len: data.len() as u32,
        crcs: checksum::block_crcs(&data),
        version: 1,
    };
    match check_read(resp, data.clone(), data.len()) {
        Ok(ReadCheck::Good(good)) => assert_eq!(good.as_ptr(), data.as_ptr(), "no copy"),
        other => panic!("good data refused: {other:?}"),
    }
}

/// A range one span holds whole, at any alignment, is a slice of that span's answer.
#[test]
fn a_read_inside_one_span_is_a_slice_of_the_answer() {
    let layout = Layout::striped(1 << 20, vec![0, 1]);
    let max = MAX_PAYLOAD_BYTES as usize;
    for (offset, len) in [
        (0u64, 4096usize),
        (5000, 4096),
        (1 << 20, 1 << 20),
        (100, 1),
    ] {
        let spans = read_spans(&extents(&layout, offset, len), max);
        assert_eq!(spans.len(), 1, "{offset} {len}");
        let s = spans[0];
        // The object's bytes from the span's start: stripe 0 holds file bytes 0.., stripe 1
        // file bytes 1 MiB.. (first row).
        let file_start = s.stripe as usize * (1 << 20) + s.object_offset as usize;
        let answer = pattern(file_start, s.len);
        let out = assemble(len, &spans, std::slice::from_ref(&answer));
        assert_eq!(out, pattern(offset as usize, len), "{offset} {len}");
        assert!(within(&out, &answer), "{offset} {len}: a slice, not a copy");
    }
}

#[test]
fn reads_over_several_spans_or_past_an_object_end_are_put_together() {
    let block = CHECKSUM_BLOCK as usize;
    // Two stripes of one block each: file bytes 2000..6000 straddle both objects.
    let layout = Layout::striped(block as u32, vec![0, 1]);
    let spans = read_spans(&extents(&layout, 2000, 4000), MAX_PAYLOAD_BYTES as usize);
    assert_eq!(spans.len(), 2);
    let answers = [pattern(0, block), pattern(block, block)];
    let out = assemble(4000, &spans, &answers);
    assert_eq!(out, pattern(2000, 4000));
    assert!(answers.iter().all(|a| !within(&out, a)), "a new buffer");

    // One span whose object ends inside the range (a short object): zeros after its end.
    let layout = Layout::striped(1 << 20, vec![0]);
    let spans = read_spans(&extents(&layout, 100, 8000), MAX_PAYLOAD_BYTES as usize);
    let short = pattern(0, 3000);
    let out = assemble(8000, &spans, std::slice::from_ref(&short));
    assert_eq!(&out[..2900], &short[100..]);
    assert!(out[2900..].iter().all(|b| *b == 0), "zeros past the end");
    assert!(assemble(0, &[], &[]).is_empty());
}
