//! HTTP `Range` requests (RFC 9110 §14), as Blossom downloads use them: one byte range,
//! resolved against the blob's size.

/// What a `Range` header asks for, resolved against a size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// The whole body: no usable range (absent, malformed, another unit, or several ranges,
    /// which a server may answer in full).
    Full,
    /// Bytes `start..end` (`end` exclusive; never empty, never past the size).
    Part {
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// A well-formed range that lies outside the body (answer 416).
    Unsatisfiable,
}

impl ByteRange {
    /// Resolves the header value `value` (`bytes=a-b`, `bytes=a-`, `bytes=-n`) against `size`.
    pub fn parse(value: &str, size: u64) -> ByteRange {
        let Some(spec) = value.trim().strip_prefix("bytes=") else {
            return ByteRange::Full;
        };
        if spec.contains(',') {
            return ByteRange::Full;
        }
        let Some((a, z)) = spec.trim().split_once('-') else {
            return ByteRange::Full;
        };
        let number = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
        };
        let (a, z) = (a.trim(), z.trim());
        let parsed = match (a.is_empty(), z.is_empty()) {
            (true, false) => number(z).map(|n| (size.saturating_sub(n), size, n == 0)),
            (false, true) => number(a).map(|s| (s, size, false)),
            (false, false) => match (number(a), number(z)) {
                (Some(s), Some(e)) if s <= e => Some((s, e.saturating_add(1).min(size), false)),
                _ => None,
            },
            (true, true) => None,
        };
        match parsed {
            None => ByteRange::Full,
            Some((_, _, true)) => ByteRange::Unsatisfiable,
            Some((s, e, false)) if s >= size || s >= e => ByteRange::Unsatisfiable,
            Some((start, end, false)) => ByteRange::Part { start, end },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ByteRange::{self, Full, Part, Unsatisfiable};
    use proptest::prelude::*;

    #[test]
    fn ranges_resolve_like_rfc_9110() {
        let p = |v| ByteRange::parse(v, 10);
        assert_eq!(p("bytes=0-3"), Part { start: 0, end: 4 });
        assert_eq!(p("bytes=5-"), Part { start: 5, end: 10 });
        assert_eq!(p("bytes=-3"), Part { start: 7, end: 10 });
        assert_eq!(p("bytes=-30"), Part { start: 0, end: 10 });
        assert_eq!(p("bytes=8-100"), Part { start: 8, end: 10 });
        assert_eq!(p("bytes=10-"), Unsatisfiable);
        assert_eq!(p("bytes=-0"), Unsatisfiable);
        assert_eq!(p("bytes=0-1,4-5"), Full);
        assert_eq!(p("bytes=5-2"), Full);
        assert_eq!(p("items=0-1"), Full);
        assert_eq!(p("bytes=+1-2"), Full);
        assert_eq!(p("bytes=1-2-3"), Full);
        assert_eq!(ByteRange::parse("bytes=0-", 0), Unsatisfiable);
    }

    proptest! {
        /// Whatever the header, a part lies inside the body and is not empty.
        #[test]
        fn parts_stay_inside_the_body(value in "\\PC{0,40}", size in 0u64..1 << 40) {
            if let Part { start, end } = ByteRange::parse(&value, size) {
                prop_assert!(start < end && end <= size);
            }
        }

        /// A range written from a valid part reads back as it.
        #[test]
        fn written_ranges_read_back(size in 1u64..1 << 40, a in any::<u64>(), b in any::<u64>()) {
            let (start, last) = (a % size, b % size);
            let (start, last) = (start.min(last), start.max(last));
            let value = format!("bytes={start}-{last}");
            prop_assert_eq!(ByteRange::parse(&value, size), Part { start, end: last + 1 });
        }
    }
}
