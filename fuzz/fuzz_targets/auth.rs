//! Any bytes as the body of an `Auth` frame (the client's proof), decoded with the codec as
//! every server does; a value that decodes must round-trip, and checking the proof accepts it
//! exactly when it is the proof the key computes (the rest of the input is the nonces and
//! cluster name it is checked against).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rustre_proto::auth::{ClusterKey, Nonce, Side, NONCE_BYTES};
use rustre_proto::rpc::ClientProof;

fuzz_target!(|data: &[u8]| {
    // The body is the first `len` bytes, `len` from the first byte; nonces and the cluster
    // name come from what follows (zeros where the input is short).
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let (body, context) = rest.split_at((len as usize).min(rest.len()));
    let Some(ClientProof { proof, .. }) = rustre_fuzz::decode_checked::<ClientProof>(body) else {
        return;
    };
    let mut nonces = [0u8; 2 * NONCE_BYTES];
    let n = context.len().min(nonces.len());
    nonces[..n].copy_from_slice(&context[..n]);
    let cluster = String::from_utf8_lossy(&context[n..]);
    let client: Nonce = nonces[..NONCE_BYTES].try_into().unwrap();
    let server: Nonce = nonces[NONCE_BYTES..].try_into().unwrap();
    let key = ClusterKey::from_secret(b"fuzzing-secret-of-at-least-32-bytes").unwrap();
    for side in [Side::Client, Side::Server] {
        let expected = key.prove(side, &cluster, &client, &server);
        assert_eq!(
            key.verify(side, &cluster, &client, &server, &proof),
            proof == expected
        );
        assert!(key.verify(side, &cluster, &client, &server, &expected));
        // A proof of the wrong length is refused, not a panic.
        assert!(!key.verify(side, &cluster, &client, &server, &proof[..proof.len() / 2]));
    }
});
