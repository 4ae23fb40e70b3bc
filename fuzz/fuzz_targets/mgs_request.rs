//! Any bytes as the body of an MGS request, decoded with the codec as the MGS does; a value
//! that decodes must round-trip (see `rustre_fuzz::decode_checked`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustre_proto::msg::mgs::MgsRequest;

fuzz_target!(|data: &[u8]| {
    rustre_fuzz::decode_checked::<MgsRequest>(data);
});
