//! Any bytes as the body of an MDS request, decoded with the codec as the MDS does; a value
//! that decodes must round-trip (see `rustre_fuzz::decode_checked`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustre_proto::msg::mds::MdsRequest;

fuzz_target!(|data: &[u8]| {
    rustre_fuzz::decode_checked::<MdsRequest>(data);
});
