//! Any bytes as the body of an OSS request, decoded with the codec as the OSS does; a value
//! that decodes must round-trip (see `rustre_fuzz::decode_checked`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustre_proto::msg::oss::OssRequest;

fuzz_target!(|data: &[u8]| {
    rustre_fuzz::decode_checked::<OssRequest>(data);
});
