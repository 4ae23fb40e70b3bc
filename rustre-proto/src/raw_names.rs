//! File names and symlink targets are bytes on Linux, Strings in rustre's messages and
//! store: the one reversible mapping between the two, used wherever names cross the FUSE
//! boundary (and by the CLI when it prints them).
//!
//! A name that is valid UTF-8 is its own String, unchanged (every name stored before this
//! mapping existed stays what it was), unless it holds one of the 128 code points this
//! mapping uses as escapes, U+10FF80 to U+10FFFF (Plane 16's private use area; no script
//! uses them). Each byte that is not part of valid UTF-8 (always 0x80 or above), and each
//! byte of an escape code point that was in the name itself, becomes the escape
//! `U+10FF00 + byte`. Decoding turns every escape back into its byte, so
//! `decode(encode(b)) == b` for every byte string, and two different byte strings never
//! share a String. Length limits count the bytes a name stands for ([`decoded_len`]), so a
//! name of 255 Latin-1 bytes is as long as Linux allows, not longer.

use std::borrow::Cow;

/// The escape for byte `b` is this code point plus `b`.
const ESCAPE_BASE: u32 = 0x10_FF00;
/// The first escape (byte 0x80; bytes below 0x80 are always valid UTF-8).
const FIRST_ESCAPE: u32 = ESCAPE_BASE + 0x80;

fn is_escape(c: char) -> bool {
    c as u32 >= FIRST_ESCAPE
}

fn escape(b: u8) -> char {
    char::from_u32(ESCAPE_BASE + u32::from(b)).expect("U+10FF80..U+10FFFF are chars")
}

/// The String standing for the bytes `raw`; `raw` itself when it is valid UTF-8 without
/// escape code points.
pub fn encode(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    loop {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                push_valid(&mut out, valid);
                return out;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                push_valid(
                    &mut out,
                    std::str::from_utf8(valid).expect("checked up to here"),
                );
                let bad = e.error_len().unwrap_or(after.len());
                out.extend(after[..bad].iter().map(|b| escape(*b)));
                rest = &after[bad..];
            }
        }
    }
}

fn push_valid(out: &mut String, valid: &str) {
    for c in valid.chars() {
        if is_escape(c) {
            let mut buf = [0u8; 4];
            out.extend(c.encode_utf8(&mut buf).bytes().map(escape));
        } else {
            out.push(c);
        }
    }
}

/// The bytes `name` stands for: `name`'s own when it holds no escape.
pub fn decode(name: &str) -> Cow<'_, [u8]> {
    if !name.chars().any(is_escape) {
        return Cow::Borrowed(name.as_bytes());
    }
    let mut out = Vec::with_capacity(name.len());
    for c in name.chars() {
        if is_escape(c) {
            out.push((c as u32 - ESCAPE_BASE) as u8);
        } else {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        }
    }
    Cow::Owned(out)
}

/// How many bytes `name` stands for (`decode(name).len()`, without building it).
pub fn decoded_len(name: &str) -> usize {
    name.chars()
        .map(|c| if is_escape(c) { 1 } else { c.len_utf8() })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_names_are_unchanged() {
        for name in [
            "a",
            "café",
            "日本語",
            "a\nb",
            " lead",
            "x".repeat(255).as_str(),
        ] {
            assert_eq!(encode(name.as_bytes()), name);
            assert_eq!(&*decode(name), name.as_bytes());
            assert_eq!(decoded_len(name), name.len());
        }
    }

    #[test]
    fn invalid_bytes_and_escape_code_points_round_trip() {
        let cases: Vec<Vec<u8>> = vec![
            b"caf\xe9".to_vec(),
            b"\xff\xfe".to_vec(),
            b"\xc3".to_vec(),
            b"a\xc3(b".to_vec(),
            "\u{10FF80}x\u{10FFFF}".as_bytes().to_vec(),
            b"\xf4\x8f\xbe\x80".to_vec(),
            vec![0xe9; 255],
        ];
        for raw in cases {
            let s = encode(&raw);
            assert_eq!(*decode(&s), raw[..], "{raw:?} -> {s:?}");
            assert_eq!(decoded_len(&s), raw.len());
        }
        // The name made of the escape code point itself and the invalid bytes its encoding
        // spells are two names.
        let escape_itself = "\u{10FF80}".as_bytes();
        assert_ne!(encode(escape_itself), encode(&[0x80]));
    }

    #[test]
    fn every_short_byte_string_round_trips_and_no_two_share_a_string() {
        let mut seen = std::collections::HashMap::new();
        let bytes = [
            0x00u8, 0x41, 0x7f, 0x80, 0xbe, 0xbf, 0xc3, 0xe9, 0xf4, 0x8f, 0xff,
        ];
        for a in bytes {
            for b in bytes {
                for c in bytes {
                    let raw = vec![a, b, c];
                    let s = encode(&raw);
                    assert_eq!(*decode(&s), raw[..]);
                    if let Some(other) = seen.insert(s.clone(), raw.clone()) {
                        panic!("{raw:?} and {other:?} both encode to {s:?}");
                    }
                }
            }
        }
        // Random longer strings, seeded.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..10_000 {
            let len = (x % 40) as usize;
            let raw: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            assert_eq!(*decode(&encode(&raw)), raw[..]);
        }
    }
}
