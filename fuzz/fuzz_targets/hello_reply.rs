//! Any bytes as the body of a `HelloReply` frame, `Result<ServerProof, Error>`, decoded with
//! the codec as the client does; a value that decodes must round-trip (see
//! `rustre_fuzz::decode_checked`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustre_proto::rpc::ServerProof;
use rustre_proto::Error;

fuzz_target!(|data: &[u8]| {
    rustre_fuzz::decode_checked::<Result<ServerProof, Error>>(data);
});
