//! Any bytes as what arrives on a connection, read frame by frame as the server (header, then
//! the rest) or the client (`read_frame`) does, in chunks of varying size; each whole frame's
//! body is decoded as the type its kind and service announce. The first byte picks the mode
//! (see `rustre_fuzz::run_stream`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((&mode, stream)) = data.split_first() {
        rustre_fuzz::run_stream(mode, stream);
    }
});
