//! Lowercase hexadecimal: the one text form of every identifier.

use crate::{HASH_LEN, HEX_LEN};

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseIdError {
    /// The string does not have exactly [`HEX_LEN`] characters.
    #[error("expected {HEX_LEN} lowercase hex characters, found {found} bytes")]
    InvalidLength {
        /// Length of the input in bytes.
        found: usize,
    },
    /// A character other than `0-9` or `a-f`.
    #[error(
        "invalid character {found:?} at position {index}: identifiers are lowercase hex (0-9, a-f)"
    )]
    InvalidChar {
        /// Byte offset of the first offending character.
        index: usize,
        /// The offending character.
        found: char,
    },
    /// A byte slice that is not [`HASH_LEN`] bytes long.
    #[error("expected {HASH_LEN} bytes, found {found}")]
    InvalidByteLength {
        /// Length of the slice.
        found: usize,
    },
}

/// Writes `bytes` as lowercase hex into `out` (which must be twice as long).
pub(crate) fn encode_into(bytes: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), bytes.len() * 2);
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes exactly [`HEX_LEN`] lowercase hex characters.
pub(crate) fn decode(s: &str) -> Result<[u8; HASH_LEN], ParseIdError> {
    let bytes = s.as_bytes();
    if bytes.len() != HEX_LEN {
        return Err(ParseIdError::InvalidLength { found: bytes.len() });
    }
    let mut out = [0u8; HASH_LEN];
    for (i, (pair, slot)) in bytes.chunks_exact(2).zip(out.iter_mut()).enumerate() {
        let hi = nibble(pair[0]).ok_or_else(|| invalid_char(s, 2 * i))?;
        let lo = nibble(pair[1]).ok_or_else(|| invalid_char(s, 2 * i + 1))?;
        *slot = (hi << 4) | lo;
    }
    Ok(out)
}

/// The error for the byte at `index`, reported as the whole character it starts or belongs to.
fn invalid_char(s: &str, index: usize) -> ParseIdError {
    // `index` may fall inside a multi-byte character: step back to its first byte.
    let start = (0..=index)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    let found = s[start..]
        .chars()
        .next()
        .unwrap_or(char::REPLACEMENT_CHARACTER);
    ParseIdError::InvalidChar {
        index: start,
        found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reports_the_first_bad_character() {
        let mut s = "0".repeat(HEX_LEN);
        s.replace_range(5..6, "G");
        assert_eq!(
            decode(&s),
            Err(ParseIdError::InvalidChar {
                index: 5,
                found: 'G'
            })
        );
    }

    #[test]
    fn decode_reports_multibyte_characters_whole() {
        // 62 ASCII digits + 'é' (2 bytes) = 64 bytes.
        let s = format!("{}é", "0".repeat(HEX_LEN - 2));
        assert_eq!(
            decode(&s),
            Err(ParseIdError::InvalidChar {
                index: 62,
                found: 'é'
            })
        );
    }

    #[test]
    fn encode_matches_known_answer() {
        let mut out = [0u8; 8];
        encode_into(&[0x00, 0x1f, 0xa0, 0xff], &mut out);
        assert_eq!(&out, b"001fa0ff");
    }
}
