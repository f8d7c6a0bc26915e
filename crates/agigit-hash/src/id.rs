//! The identifier newtypes.

use core::fmt;
use core::str::FromStr;

use crate::hasher::Hasher;
use crate::hex::{self, ParseIdError};
use crate::{HASH_LEN, HEX_LEN};

/// Number of bytes shown by [`Short`] (12 hex characters, like `git log --abbrev=12`).
const SHORT_LEN: usize = 6;

/// An abbreviated identifier for logs and messages: the first 12 hex characters.
///
/// Never parse it back into an identifier; it names nothing on its own.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Short<'a>(&'a [u8; HASH_LEN]);

impl fmt::Display for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 2 * SHORT_LEN];
        hex::encode_into(&self.0[..SHORT_LEN], &mut buf);
        // The buffer holds ASCII hex digits only.
        f.write_str(core::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for Short<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

macro_rules! sha256_id {
    ($(#[$meta:meta])* $name:ident, $expecting:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
        pub struct $name([u8; HASH_LEN]);

        impl $name {
            /// Length of the identifier in bytes.
            pub const LEN: usize = HASH_LEN;

            /// Wraps 32 bytes that already are a SHA-256 digest.
            pub const fn from_bytes(bytes: [u8; HASH_LEN]) -> Self {
                Self(bytes)
            }

            /// Wraps a slice of exactly 32 bytes.
            ///
            /// # Errors
            /// [`ParseIdError::InvalidByteLength`] when the slice has another length.
            pub fn from_slice(bytes: &[u8]) -> Result<Self, ParseIdError> {
                <[u8; HASH_LEN]>::try_from(bytes)
                    .map(Self)
                    .map_err(|_| ParseIdError::InvalidByteLength { found: bytes.len() })
            }

            /// SHA-256 of `data`.
            pub fn digest(data: impl AsRef<[u8]>) -> Self {
                let mut hasher = Hasher::new();
                hasher.update(data.as_ref());
                Self(hasher.finalize())
            }

            /// The digest a streaming [`Hasher`] has computed.
            pub fn from_hasher(hasher: Hasher) -> Self {
                Self(hasher.finalize())
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; HASH_LEN] {
                &self.0
            }

            /// The raw bytes, by value.
            pub const fn to_bytes(self) -> [u8; HASH_LEN] {
                self.0
            }

            /// The 64-character lowercase hex form (same as `Display`).
            pub fn to_hex(&self) -> String {
                self.to_string()
            }

            /// Writes the hex form into a stack buffer, for allocation-free formatting.
            pub fn to_hex_array(&self) -> [u8; HEX_LEN] {
                let mut buf = [0u8; HEX_LEN];
                hex::encode_into(&self.0, &mut buf);
                buf
            }

            /// An abbreviated form for logs: the first 12 hex characters.
            pub fn short(&self) -> Short<'_> {
                Short(&self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let buf = self.to_hex_array();
                f.write_str(core::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({}…)"), self.short())
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            /// Parses exactly 64 lowercase hex characters.
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                hex::decode(s).map(Self)
            }
        }

        impl From<[u8; HASH_LEN]> for $name {
            fn from(bytes: [u8; HASH_LEN]) -> Self {
                Self(bytes)
            }
        }

        impl From<$name> for [u8; HASH_LEN] {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl AsRef<[u8]> for $name {
            fn as_ref(&self) -> &[u8] {
                &self.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                if serializer.is_human_readable() {
                    let buf = self.to_hex_array();
                    let s = core::str::from_utf8(&buf).map_err(serde::ser::Error::custom)?;
                    serializer.serialize_str(s)
                } else {
                    serializer.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;

                impl<'de> serde::de::Visitor<'de> for Visitor {
                    type Value = $name;

                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }

                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$name, E> {
                        v.parse().map_err(E::custom)
                    }

                    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        $name::from_slice(v).map_err(E::custom)
                    }

                    fn visit_seq<A: serde::de::SeqAccess<'de>>(
                        self,
                        mut seq: A,
                    ) -> Result<$name, A::Error> {
                        let mut out = [0u8; HASH_LEN];
                        for (i, slot) in out.iter_mut().enumerate() {
                            *slot = seq
                                .next_element()?
                                .ok_or_else(|| serde::de::Error::invalid_length(i, &self))?;
                        }
                        if seq.next_element::<u8>()?.is_some() {
                            return Err(serde::de::Error::invalid_length(HASH_LEN + 1, &self));
                        }
                        Ok($name(out))
                    }
                }

                if deserializer.is_human_readable() {
                    deserializer.deserialize_str(Visitor)
                } else {
                    deserializer.deserialize_bytes(Visitor)
                }
            }
        }
    };
}

sha256_id!(
    /// The identifier of an agigit object: SHA-256 of its typed, canonical encoding
    /// (`agigit <kind> <len>\0<body>`, see `docs/format.md`).
    ///
    /// ```
    /// use agigit_hash::ObjectId;
    ///
    /// let id: ObjectId = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".parse()?;
    /// assert_eq!(id, ObjectId::digest(b"test"));
    /// assert_eq!(format!("{id:?}"), "ObjectId(9f86d081884c…)");
    /// assert_eq!(id.short().to_string(), "9f86d081884c");
    /// # Ok::<(), agigit_hash::ParseIdError>(())
    /// ```
    ObjectId,
    "an object id: 64 lowercase hex characters or 32 bytes"
);

sha256_id!(
    /// The SHA-256 of a blob's exact bytes, as Blossom servers name blobs (BUD-01).
    ///
    /// A distinct type from [`ObjectId`] so that an object id cannot be passed where the hash of
    /// stored bytes is meant: the bytes of a shard or an encrypted object hash to something else
    /// than the object they carry.
    BlobHash,
    "a blob hash: 64 lowercase hex characters or 32 bytes"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_test::{Configure, Token, assert_tokens};

    /// SHA-256("abc"), FIPS 180-2 appendix B.1.
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    /// SHA-256(""), FIPS 180-2.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn digest_known_answers() -> Result<(), ParseIdError> {
        assert_eq!(ObjectId::digest(b"abc"), ABC.parse()?);
        assert_eq!(BlobHash::digest(b""), EMPTY.parse()?);
        // Longer than one block, and not a multiple of it.
        let million_a = vec![b'a'; 1_000_000];
        assert_eq!(
            ObjectId::digest(&million_a).to_string(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
        );
        Ok(())
    }

    #[test]
    fn display_debug_short() -> Result<(), ParseIdError> {
        let id: ObjectId = ABC.parse()?;
        assert_eq!(id.to_string(), ABC);
        assert_eq!(id.to_hex(), ABC);
        assert_eq!(format!("{id:?}"), "ObjectId(ba7816bf8f01…)");
        assert_eq!(
            format!("{:?}", BlobHash::from(id.to_bytes())),
            "BlobHash(ba7816bf8f01…)"
        );
        assert_eq!(id.short().to_string(), "ba7816bf8f01");
        Ok(())
    }

    #[test]
    fn from_str_rejects_bad_input() {
        let cases: &[(&str, ParseIdError)] = &[
            ("", ParseIdError::InvalidLength { found: 0 }),
            (&ABC[..63], ParseIdError::InvalidLength { found: 63 }),
            (
                &format!("{ABC}0"),
                ParseIdError::InvalidLength { found: 65 },
            ),
            (
                &ABC.to_uppercase(),
                ParseIdError::InvalidChar {
                    index: 0,
                    found: 'B',
                },
            ),
            (
                &format!("{}g", &ABC[..63]),
                ParseIdError::InvalidChar {
                    index: 63,
                    found: 'g',
                },
            ),
            (
                &format!(" {}", &ABC[1..]),
                ParseIdError::InvalidChar {
                    index: 0,
                    found: ' ',
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                input.parse::<ObjectId>().as_ref(),
                Err(expected),
                "{input:?}"
            );
        }
    }

    #[test]
    fn from_slice_checks_length() {
        assert_eq!(
            ObjectId::from_slice(&[0; 31]),
            Err(ParseIdError::InvalidByteLength { found: 31 })
        );
        assert_eq!(
            ObjectId::from_slice(&[7; 32]),
            Ok(ObjectId::from_bytes([7; 32]))
        );
    }

    #[test]
    fn serde_is_hex_when_human_readable_and_bytes_otherwise() -> Result<(), ParseIdError> {
        let id: ObjectId = ABC.parse()?;
        assert_tokens(&id.readable(), &[Token::Str(ABC)]);
        let bytes: &'static [u8] = &[
            0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae,
            0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61,
            0xf2, 0x00, 0x15, 0xad,
        ];
        assert_tokens(&id.compact(), &[Token::Bytes(bytes)]);
        Ok(())
    }

    #[test]
    fn serde_json_rejects_bad_hex() {
        let err = serde_json::from_str::<ObjectId>("\"abc\"");
        assert!(err.is_err_and(|e| e.to_string().contains("expected 64")));
    }

    proptest! {
        #[test]
        fn hex_round_trip(bytes in any::<[u8; 32]>()) {
            let id = ObjectId::from_bytes(bytes);
            let text = id.to_string();
            prop_assert_eq!(text.len(), HEX_LEN);
            prop_assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert_eq!(text.parse::<ObjectId>(), Ok(id));
            let json = serde_json::to_string(&id).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(serde_json::from_str::<ObjectId>(&json).ok(), Some(id));
        }

        #[test]
        fn any_string_parses_or_errors(s in ".{0,70}") {
            // Never panics; succeeds exactly on 64 lowercase hex characters.
            let valid = s.len() == HEX_LEN
                && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            prop_assert_eq!(s.parse::<BlobHash>().is_ok(), valid);
        }

        #[test]
        fn order_is_byte_order(a in any::<[u8; 32]>(), b in any::<[u8; 32]>()) {
            prop_assert_eq!(ObjectId::from(a).cmp(&ObjectId::from(b)), a.cmp(&b));
            // and hex order agrees, so sorted hex lists and sorted ids match.
            prop_assert_eq!(ObjectId::from(a).to_string().cmp(&ObjectId::from(b).to_string()), a.cmp(&b));
        }
    }
}
