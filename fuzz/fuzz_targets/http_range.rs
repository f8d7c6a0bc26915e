//! `Range` header → the byte range a Blossom download serves: a part always lies inside the body.
#![no_main]

use agigit_relay::range::ByteRange;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (size, header) = match data.split_first_chunk::<8>() {
        Some((size, rest)) => (u64::from_le_bytes(*size), rest),
        None => (0, data),
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let ByteRange::Part { start, end } = ByteRange::parse(header, size) {
        assert!(
            start < end && end <= size,
            "{header:?} over {size}: {start}..{end}"
        );
    }
});
