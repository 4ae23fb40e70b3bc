//! Any bytes as the body of a `Hello` frame (the handshake), decoded with the codec as every
//! server does; a value that decodes must round-trip (see `rustre_fuzz::decode_checked`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustre_proto::rpc::Hello;

fuzz_target!(|data: &[u8]| {
    rustre_fuzz::decode_checked::<Hello>(data);
});
