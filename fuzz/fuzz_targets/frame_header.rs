//! Any 32 bytes as a frame header: `Header::decode` returns Ok or Err, never panics; what it
//! accepts is within the limits and encodes back to exactly the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustre_proto::frame::{Header, HEADER_BYTES};

fuzz_target!(|data: &[u8]| {
    let mut b = [0u8; HEADER_BYTES];
    let n = data.len().min(HEADER_BYTES);
    b[..n].copy_from_slice(&data[..n]);
    if let Ok(h) = Header::decode(&b) {
        rustre_fuzz::check_header(&h);
        assert_eq!(
            h.encode(),
            b,
            "an accepted header must encode to its own bytes"
        );
        assert_eq!(Header::decode(&h.encode()).ok(), Some(h));
    }
});
