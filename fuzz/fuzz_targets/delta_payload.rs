//! Arbitrary bytes → a delta payload, decoded without a base and against the fixed base the
//! seeds were encoded with: never panics, never allocates past the limit, and whatever decodes
//! matches its header and the output digest it records.
#![no_main]

use std::sync::OnceLock;

use agigit_delta::{
    DType, DecodeLimits, Tensor, decode_with_limits, inspect, output_digest, synth,
};
use libfuzzer_sys::fuzz_target;

/// The base `fuzz/seeds/delta_payload` was written against (see the crate's
/// `committed_payloads_still_decode` test).
fn base() -> &'static Tensor {
    static BASE: OnceLock<Tensor> = OnceLock::new();
    BASE.get_or_init(|| synth::tensor(DType::F32, &[8, 24], &synth::gaussian(10, 8 * 24, 0.02)))
}

fuzz_target!(|data: &[u8]| {
    let limits = DecodeLimits {
        max_tensor_bytes: 1 << 20,
    };
    for b in [None, Some(base().view())] {
        if let Ok(t) = decode_with_limits(data, b, limits) {
            let h = inspect(data).expect("a decoded payload has a header");
            assert_eq!((t.dtype(), t.shape()), (h.dtype, h.shape.as_slice()));
            assert!(t.data().len() <= limits.max_tensor_bytes);
            assert_eq!(output_digest(t.dtype(), t.shape(), t.data()), h.output);
        }
    }
});
