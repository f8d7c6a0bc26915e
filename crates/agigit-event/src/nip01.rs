//! NIP-01 event id computation, written here independently of the `nostr` crate.
//!
//! The id of an event is SHA-256 of the UTF-8 JSON array
//! `[0,"<pubkey hex>",<created_at>,<kind>,<tags>,"<content>"]` with no whitespace. Strings escape
//! `"` `\` and the control characters: `\n` `\r` `\t` `\b` `\f` in their short forms, every other
//! character below U+0020 as `\u00xx` (lowercase hex), and everything else verbatim (non-ASCII as
//! raw UTF-8, U+007F included). This is what `JSON.stringify` produces, and so what relays and
//! other clients compute.

use agigit_hash::Hasher;
use nostr::prelude::Tag;

/// The fields of an event that its id covers.
#[derive(Debug, Clone, Copy)]
pub struct IdFields<'a> {
    /// The author's x-only public key.
    pub pubkey: &'a [u8; 32],
    /// Seconds since the Unix epoch.
    pub created_at: u64,
    /// The event kind.
    pub kind: u16,
    /// The tags, each a list of strings.
    pub tags: &'a [Tag],
    /// The content.
    pub content: &'a str,
}

impl IdFields<'_> {
    /// The exact bytes whose SHA-256 is the event id.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.content.len());
        out.extend_from_slice(b"[0,\"");
        for byte in self.pubkey {
            out.extend_from_slice(&hex_byte(*byte));
        }
        out.extend_from_slice(b"\",");
        out.extend_from_slice(self.created_at.to_string().as_bytes());
        out.push(b',');
        out.extend_from_slice(self.kind.to_string().as_bytes());
        out.extend_from_slice(b",[");
        for (i, tag) in self.tags.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            for (j, value) in tag.as_slice().iter().enumerate() {
                if j > 0 {
                    out.push(b',');
                }
                write_json_string(&mut out, value);
            }
            out.push(b']');
        }
        out.extend_from_slice(b"],");
        write_json_string(&mut out, self.content);
        out.push(b']');
        out
    }

    /// The event id: SHA-256 of [`serialize`](Self::serialize).
    pub fn id(&self) -> [u8; 32] {
        let mut hasher = Hasher::new();
        hasher.update(&self.serialize());
        hasher.finalize()
    }
}

fn hex_byte(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0x0f)],
    ]
}

/// Appends `s` as a JSON string literal with NIP-01 escaping.
fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(b"\\u00");
                out.extend_from_slice(&hex_byte(b));
                start = i + 1;
                continue;
            }
            // Multi-byte UTF-8 sequences never contain bytes below 0x80: copy them verbatim.
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_exactly_what_nip01_says() {
        let mut out = Vec::new();
        write_json_string(
            &mut out,
            "a\"b\\c\nd\re\tf\u{8}g\u{c}h\u{0}i\u{1f}j\u{7f}é😀/",
        );
        assert_eq!(
            String::from_utf8(out).ok().as_deref(),
            Some("\"a\\\"b\\\\c\\nd\\re\\tf\\bg\\fh\\u0000i\\u001fj\u{7f}é😀/\"")
        );
    }
}
