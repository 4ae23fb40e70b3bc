//! The codec: every message body goes through these two functions, so the format (postcard)
//! can be swapped in one place. Bodies are already bounded by [`crate::frame::MAX_BODY_BYTES`]
//! before they reach `decode`, and postcard never allocates more than the input can describe.

use serde::{de::DeserializeOwned, Serialize};

use crate::error::Error;

/// Serializes a message body.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    postcard::to_stdvec(value).map_err(|e| Error::Protocol(format!("encode: {e}")))
}

/// Deserializes a message body; trailing bytes are an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let (value, rest) =
        postcard::take_from_bytes(bytes).map_err(|e| Error::Protocol(format!("decode: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::Protocol(format!(
            "decode: {} trailing bytes",
            rest.len()
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let v = (7u64, String::from("name"), vec![1u8, 2, 3]);
        let mut bytes = encode(&v).unwrap();
        assert_eq!(decode::<(u64, String, Vec<u8>)>(&bytes).unwrap(), v);
        bytes.push(0);
        assert!(decode::<(u64, String, Vec<u8>)>(&bytes).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // A length prefix announcing far more elements than bytes present.
        let bytes = [0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2];
        assert!(decode::<Vec<String>>(&bytes).is_err());
    }
}
